//! Nothing silent, nothing outside the results root: inputs that used to be
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

/// A small quickstart: few steps and topics, so that each check runs in seconds.
const SMALL: &[&str] = &["train.steps=30", "data.synthetic.topics=8"];

#[test]
fn a_non_finite_gradient_norm_fails_the_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = SMALL.to_vec();
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

#[test]
fn damaged_cells_are_reported_and_run_again_and_status_only_reads() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = SMALL.to_vec();
    sets.extend(["seeds=[1, 2]", "ablations.schedule=[constant]"]);
    let out = run_with(tmp.path(), &sets);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("quickstart");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let id = record["cells"][0]["id"].as_str().unwrap().to_string();
    let cell = dir.join("cells").join(&id);
    let metrics = std::fs::read_to_string(cell.join("metrics.csv")).unwrap();
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("result.json")).unwrap()).unwrap();
    assert!(result["outputs"]["metrics.csv"]["sha256"].is_string(), "{result}");
    let dir_arg = dir.to_str().unwrap();

    // Half of metrics.csv gone: status and report say so, sweep.json is not rewritten.
    std::fs::write(cell.join("metrics.csv"), &metrics[..metrics.len() / 2]).unwrap();
    let inode = std::fs::metadata(dir.join("sweep.json")).unwrap().ino();
    let out = command(&["status", dir_arg]).output().unwrap();
    let said = text(&out);
    assert!(
        out.status.success() && said.contains("1 damaged") && said.contains("metrics.csv has"),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(dir.join("sweep.json")).unwrap().ino(),
        inode,
        "status wrote sweep.json"
    );
    let out = command(&["report", dir_arg]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(md.contains(&id) && md.contains("damaged"), "{md}");

    // `run` trains it again, to the same numbers; so it does for a deleted metrics.csv.
    for damage in ["truncated", "deleted"] {
        if damage == "deleted" {
            std::fs::remove_file(cell.join("metrics.csv")).unwrap();
        }
        let out = run_with(tmp.path(), &sets);
        let said = text(&out);
        assert!(out.status.success(), "{damage}: {said}");
        assert!(
            said.contains("were damaged and ran again") && said.contains(&id),
            "{damage}: {said}"
        );
        assert_eq!(
            std::fs::read_to_string(cell.join("metrics.csv")).unwrap(),
            metrics,
            "{damage}"
        );
    }

    // A worker that finds its cell held by another live process (pid 1) leaves log.txt alone.
    std::fs::write(cell.join("log.txt"), "the holder's log\n").unwrap();
    std::fs::remove_file(cell.join("result.json")).unwrap();
    std::fs::write(dir.join("cells").join(format!("{id}.lock")), "1").unwrap();
    let out = command(&["run-cell", "--quiet", dir_arg, &id]).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(cell.join("log.txt")).unwrap(),
        "the holder's log\n"
    );
}

#[test]
fn eval_status_and_report_name_the_file_or_folder_at_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let (qrels, run) = (tmp.path().join("qrels.txt"), tmp.path().join("mine.trec"));
    std::fs::write(&qrels, "").unwrap();
    std::fs::write(&run, "1 Q0 d1 1 2.0 tag\n").unwrap();
    let out = command(&["eval", qrels.to_str().unwrap(), run.to_str().unwrap()])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(
        !out.status.success() && err.contains("qrels.txt:1: expected judgments"),
        "{err}"
    );
    std::fs::write(&qrels, "2 0 d1 1\n").unwrap();
    let out = command(&["eval", qrels.to_str().unwrap(), run.to_str().unwrap()])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(!out.status.success() && err.contains("mine.trec"), "{err}");
    for verb in ["status", "report"] {
        let out = command(&[verb, tmp.path().join("missing").to_str().unwrap()])
            .output()
            .unwrap();
        let err = text(&out);
        assert!(
            !out.status.success() && err.contains("no such folder; expected"),
            "{verb}: {err}"
        );
        let out = command(&[verb, tmp.path().to_str().unwrap()]).output().unwrap();
        let err = text(&out);
        assert!(
            !out.status.success() && err.contains("holds no sweep.json"),
            "{verb}: {err}"
        );
    }
}
