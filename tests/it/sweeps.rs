//! Sweeps that survive: parallel workers give the same numbers, a `kill -9` at any moment
//! followed by the same `run` completes the sweep with identical results, stale locks are
//! taken over, failed cells are skipped until `--retry-failed`, and `status` tells the state.

use crate::common::cli;

use cli::{SMALL, command, text};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `plan` or `run` of the small quickstart these tests share, with `extra` arguments.
fn small<'a>(verb: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![verb, "experiments/quickstart.yaml"];
    args.extend_from_slice(SMALL);
    // Cells long enough for a kill to land mid-sweep (a later --set wins).
    args.extend_from_slice(&["--set", "train.steps=80"]);
    args.extend_from_slice(extra);
    args
}

fn run_args<'a>(results: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = small("run", &["--quiet", "--results", results]);
    args.extend_from_slice(extra);
    args
}

/// cell id → metrics.csv content of every cell of a results folder.
fn metrics(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir.join("quickstart/cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| {
            let id = p.file_name().unwrap().to_string_lossy().into_owned();
            (id, std::fs::read_to_string(p.join("metrics.csv")).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn parallel_and_interrupted_sweeps_match_an_uninterrupted_one() {
    let reference = tempfile::tempdir().unwrap();
    let out = command(&run_args(reference.path().to_str().unwrap(), &[]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let expected = metrics(reference.path());
    assert_eq!(expected.len(), 6);

    let parallel = tempfile::tempdir().unwrap();
    let out = command(&run_args(parallel.path().to_str().unwrap(), &["--jobs", "2"]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(metrics(parallel.path()) == expected, "--jobs 2 changed the numbers");

    // kill -9 the whole run (parent and workers) once some but not all cells are done.
    let interrupted = tempfile::tempdir().unwrap();
    let results = interrupted.path().to_str().unwrap();
    let mut child = command(&run_args(results, &["--jobs", "2"]))
        .process_group(0)
        .spawn()
        .unwrap();
    let cells = interrupted.path().join("quickstart/cells");
    let started = Instant::now();
    loop {
        let done = std::fs::read_dir(&cells)
            .map(|d| {
                d.filter(|e| e.as_ref().unwrap().path().join("result.json").exists())
                    .count()
            })
            .unwrap_or(0);
        if done >= 1 || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pgid = child.id().to_string();
    Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    let _ = child.wait();
    let out = command(&["status", &format!("{results}/quickstart")]).output().unwrap();
    assert!(out.status.success() && text(&out).contains("6 cells"), "{}", text(&out));

    let out = command(&run_args(results, &["--jobs", "2"])).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let resumed = metrics(interrupted.path());
    let differing: Vec<&String> = resumed
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a.0)
        .collect();
    assert!(
        resumed.len() == expected.len() && differing.is_empty(),
        "resume after kill -9 changed {differing:?}"
    );
    let out = command(&["status", &format!("{results}/quickstart")]).output().unwrap();
    assert!(
        text(&out).contains("6 done, 0 running, 0 failed, 0 pending"),
        "{}",
        text(&out)
    );
}

#[test]
fn stale_locks_are_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let out = command(&small("plan", &["--set", "seeds=[1]"])).output().unwrap();
    let first_id = text(&out)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // A lock left behind by a process that no longer exists.
    std::fs::create_dir_all(tmp.path().join("quickstart/cells")).unwrap();
    std::fs::write(
        tmp.path().join(format!("quickstart/cells/{first_id}.lock")),
        "2147483646",
    )
    .unwrap();
    let out = command(&run_args(results, &["--set", "seeds=[1]"])).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let ids: Vec<String> = text(&command(&small("plan", &["--set", "seeds=[1]"])).output().unwrap())
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for id in ids {
        assert!(
            tmp.path().join(format!("quickstart/cells/{id}/result.json")).is_file(),
            "{id} not run"
        );
        assert!(
            !tmp.path().join(format!("quickstart/cells/{id}.lock")).exists(),
            "{id} lock left behind"
        );
    }
}

#[test]
fn failed_cells_wait_for_retry_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let extra = [
        "--set",
        "seeds=[1]",
        "--set",
        "ablations.schedule=[constant]",
        "--set",
        "ablations.model.temperature=[0.05, 1e-40]",
        "--set",
        "stats.baseline.model.temperature=0.05",
    ];
    let out = command(&run_args(results, &extra)).output().unwrap();
    assert!(
        !out.status.success() && text(&out).contains("--retry-failed"),
        "{}",
        text(&out)
    );
    let failed_dir = std::fs::read_dir(tmp.path().join("quickstart/cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("error.json").exists())
        .expect("a failed cell");
    assert!(
        std::fs::read_to_string(failed_dir.join("log.txt"))
            .unwrap()
            .contains("diverged")
    );
    let stamp = std::fs::metadata(failed_dir.join("error.json"))
        .unwrap()
        .modified()
        .unwrap();

    // Without the flag the failed cell is reported, not run again.
    let out = command(&run_args(results, &extra)).output().unwrap();
    assert!(
        !out.status.success() && text(&out).contains("1 cell(s) failed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::metadata(failed_dir.join("error.json"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp
    );
    let status = text(&command(&["status", &format!("{results}/quickstart")]).output().unwrap());
    assert!(
        status.contains("1 done") && status.contains("1 failed") && status.contains("diverged"),
        "{status}"
    );

    // With it, the cell runs again (and fails again, for the same reason).
    std::thread::sleep(Duration::from_millis(1100));
    let mut retry = extra.to_vec();
    retry.push("--retry-failed");
    let out = command(&run_args(results, &retry)).output().unwrap();
    assert!(!out.status.success());
    assert_ne!(
        std::fs::metadata(failed_dir.join("error.json"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp
    );
}

/// A result names the code that computed it: the commit clirlab was built from, also when the
/// program runs from inside another git repository.
#[test]
fn provenance_names_the_build_not_the_folder_run_from() {
    let tmp = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(tmp.path())
            .output()
            .expect("git runs")
    };
    assert!(git(&["init", "-q"]).status.success());
    let empty = [
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.org",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    ];
    assert!(git(&empty).status.success());
    let other = String::from_utf8_lossy(&git(&["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_string();
    let experiment = cli::root().join("experiments/quickstart.yaml");
    let mut args = vec!["run", experiment.to_str().unwrap(), "--quiet", "--results", "r"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&["--set", "seeds=[1]", "--set", "ablations.schedule=[constant]"]);
    let out = command(&args).current_dir(tmp.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let cells = tmp.path().join("r/quickstart/cells");
    let cell = std::fs::read_dir(&cells)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("result.json").is_file())
        .expect("a finished cell");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("result.json")).unwrap()).unwrap();
    let recorded = &result["provenance"]["git_commit"];
    assert_ne!(
        recorded.as_str(),
        Some(other.as_str()),
        "the folder's commit was recorded"
    );
    match clirlab::run::provenance::built_from_commit() {
        None => assert!(recorded.is_null(), "{recorded}"),
        Some(built) => assert_eq!(recorded.as_str(), Some(built.as_str())),
    }
}
