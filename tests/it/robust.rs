//! Nothing silent, nothing outside the results root (issue 16): inputs that used to be
//! accepted silently, or to write outside `--results`, fail with an error naming the file,
//! flag or variable and the key or line, or are handled as documented.

use crate::common::cli::{command, run_quickstart, text};

/// `run` of the quickstart into `results` with extra `--set` flags.
fn run_with(results: &std::path::Path, sets: &[&str]) -> std::process::Output {
    let args: Vec<String> = sets.iter().flat_map(|s| ["--set".to_string(), s.to_string()]).collect();
    run_quickstart(results, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_name_that_is_not_one_folder_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    for name in ["..", "."] {
        let out = run_with(&results, &[&format!("name={name}")]);
        let err = text(&out);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("--set name=") && err.contains("key `name`"), "{err}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "{name}: wrote {err}");
    }
}

/// The small quickstart of the issue's reproductions.
const ISSUE: &[&str] = &["train.steps=30", "data.synthetic.topics=8"];

#[test]
fn a_non_finite_gradient_norm_fails_the_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = ISSUE.to_vec();
    sets.extend(["model.temperature=1e-30", "seeds=[1]"]);
    let out = run_with(tmp.path(), &sets);
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("gradient norm is NaN") || err.contains("gradient norm is inf"),
        "{err}"
    );
}

#[test]
fn bad_files_flags_and_variables_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = |args: &[&str]| {
        let out = command(&[&["plan"], args].concat()).output().unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        text(&out)
    };
    let err = plan(&[
        "experiments/quickstart.yaml",
        "--set",
        "schedule={kind: linear, start: 2, end: 1}",
    ]);
    assert!(
        err.contains("--set schedule=") && err.contains("`start` must be a share in [0, 1], found 2"),
        "{err}"
    );
    let empty = tmp.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let err = plan(&[empty.to_str().unwrap()]);
    assert!(err.contains("empty.yaml: expected an experiment"), "{err}");
    let err = plan(&["experiments"]);
    assert!(
        err.contains("experiments: a folder") && err.contains("quickstart.yaml"),
        "{err}"
    );
    let err = plan(&[
        "experiments/quickstart.yaml",
        "--set",
        "train.warmup_steps=31",
        "--set",
        "train.steps=30",
    ]);
    assert!(
        err.contains("--set train.warmup_steps=31: key `train.warmup_steps`"),
        "{err}"
    );
    let out = command(&["plan", "experiments/quickstart.yaml"])
        .env("CLIRLAB_LOG", "info,[[[")
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("CLIRLAB_LOG"),
        "{}",
        text(&out)
    );
}
