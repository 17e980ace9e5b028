//! Configuration errors name the source of the offending value: the experiment
//! file, the `CLIRLAB_*` variable or the `--set` flag, with the key path and what was
//! expected and found.

use crate::common::cli::{command, text};

#[test]
fn a_bad_value_in_the_file_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("nan.yaml");
    std::fs::write(&exp, "train:\n  lr: .nan\n").unwrap();
    let out = command(&["plan", exp.to_str().unwrap()]).output().unwrap();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("nan.yaml: key `train.lr`: expected a finite number, found NaN"),
        "{err}"
    );
}

#[test]
fn a_bad_value_from_set_names_the_flag() {
    let out = command(&["plan", "experiments/quickstart.yaml", "--set", "train.lr=.nan"])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--set train.lr=.nan: key `train.lr`: expected a finite number, found NaN"),
        "{err}"
    );
    assert!(!err.contains("quickstart.yaml: key"), "blamed on the file: {err}");
    // A type error too.
    let out = command(&["plan", "experiments/quickstart.yaml", "--set", "train.steps=many"])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(
        err.contains("--set train.steps=many: key `train.steps`: invalid type") && err.contains("expected"),
        "{err}"
    );
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let out = command(&["plan", "experiments/quickstart.yaml"])
        .env("CLIRLAB_TRAIN__LR", "-1")
        .output()
        .unwrap();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("environment variable CLIRLAB_TRAIN__LR: key `train.lr`: expected > 0, found -1"),
        "{err}"
    );
    assert!(!err.contains("quickstart.yaml: key"), "blamed on the file: {err}");
    let out = command(&["plan", "experiments/quickstart.yaml"])
        .env("CLIRLAB_TRAIN__STEPS", "many")
        .output()
        .unwrap();
    let err = text(&out);
    assert!(
        err.contains("environment variable CLIRLAB_TRAIN__STEPS: key `train.steps`: invalid type"),
        "{err}"
    );
}

#[test]
fn the_last_layer_that_sets_a_key_is_blamed() {
    // The file sets a good value, the flag overrides it with a bad one.
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("ok.yaml");
    std::fs::write(&exp, "model:\n  temperature: 0.05\n").unwrap();
    let out = command(&["plan", exp.to_str().unwrap(), "--set", "model.temperature=-1"])
        .env("CLIRLAB_MODEL__TEMPERATURE", "0.1")
        .output()
        .unwrap();
    let err = text(&out);
    assert!(
        err.contains("--set model.temperature=-1: key `model.temperature`: expected > 0, found -1"),
        "{err}"
    );
}
