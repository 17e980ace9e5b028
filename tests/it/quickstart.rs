//! End to end through the binary: the quickstart at a reduced size into a temporary results
//! folder, the report's contents, resume, and configuration errors.

use crate::common::cli;

use cli::{SMALL, clirlab, command, text};
use std::path::Path;
use std::process::Output;

fn run_small(results: &Path) -> Output {
    cli::run_quickstart(results, SMALL)
}

#[test]
fn quickstart_runs_reports_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_small(tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("quickstart");

    // Every cell finished with all its files.
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let cells = sweep["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6, "3 schedules x 2 seeds");
    for c in cells {
        assert_eq!(c["status"], "done");
        let cell = dir.join("cells").join(c["id"].as_str().unwrap());
        for f in [
            "config.yaml",
            "tokenizer.json",
            "train_log.csv",
            "run.trec",
            "metrics.csv",
            "result.json",
        ] {
            assert!(cell.join(f).is_file(), "{} lacks {f}", cell.display());
        }
        // `device: auto` resolves to the CPU in a CPU build, and the cell records it.
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cell.join("result.json")).unwrap()).unwrap();
        if cfg!(not(feature = "cuda")) {
            assert_eq!(result["provenance"]["device"], "cpu");
        }
        let run = std::fs::read_to_string(cell.join("run.trec")).unwrap();
        let first: Vec<&str> = run.lines().next().unwrap().split_whitespace().collect();
        assert_eq!((first.len(), first[1], first[3]), (6, "Q0", "1"), "TREC run format");
    }

    // summary.csv: one row per grid point, finite means, CIs and p-values; one baseline.
    let mut reader = csv::Reader::from_path(dir.join("report/summary.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let mut baselines = 0;
    for row in &rows {
        let is_base = &row[col("baseline")] == "true";
        baselines += usize::from(is_base);
        assert_eq!(&row[col("seeds")], "2");
        for metric in ["nDCG@10", "RR@10", "R@100", "AP"] {
            let mean: f64 = row[col(&format!("{metric}_mean"))].parse().unwrap();
            let lo: f64 = row[col(&format!("{metric}_ci_low"))].parse().unwrap();
            let hi: f64 = row[col(&format!("{metric}_ci_high"))].parse().unwrap();
            assert!(
                mean.is_finite() && lo <= mean && mean <= hi && (0.0..=1.0).contains(&mean),
                "{metric}: {lo} {mean} {hi}"
            );
            if !is_base {
                let p: f64 = row[col(&format!("{metric}_p_value"))].parse().unwrap();
                let p_adj: f64 = row[col(&format!("{metric}_p_adjusted"))].parse().unwrap();
                let d: f64 = row[col(&format!("{metric}_effect_size"))].parse().unwrap();
                assert!(
                    (0.0..=1.0).contains(&p) && p <= p_adj && p_adj <= 1.0 && d.is_finite(),
                    "{metric}: {p} {p_adj} {d}"
                );
            }
        }
    }
    assert_eq!(baselines, 1);
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        report.contains("SYNTHETIC") && report.contains("(baseline)") && report.contains("Holm"),
        "{report}"
    );
    for schedule in ["constant", "linear", "exponential"] {
        assert!(
            report.contains(&format!("schedule={schedule}")),
            "{schedule} missing from the report"
        );
    }

    // A second identical run trains nothing and leaves every result untouched.
    let before = std::fs::read_to_string(dir.join("report/summary.csv")).unwrap();
    let out = run_small(tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let out = {
        let mut args = vec![
            "run",
            "experiments/quickstart.yaml",
            "--results",
            tmp.path().to_str().unwrap(),
        ];
        args.extend_from_slice(SMALL);
        clirlab(&args)
    };
    assert!(
        text(&out).contains("0 cells trained, 6 already finished"),
        "{}",
        text(&out)
    );
    assert_eq!(before, std::fs::read_to_string(dir.join("report/summary.csv")).unwrap());
}

#[test]
fn same_seed_same_numbers() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        let mut args = vec![
            "run",
            "experiments/quickstart.yaml",
            "--quiet",
            "--results",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(SMALL);
        args.extend_from_slice(&[
            "--set",
            "seeds=[5]",
            "--set",
            "ablations.schedule=[linear]",
            "--set",
            "stats.baseline.schedule=linear",
        ]);
        let out = clirlab(&args);
        assert!(out.status.success(), "{}", text(&out));
    }
    let read = |d: &Path| std::fs::read_to_string(d.join("quickstart/report/cells.csv")).unwrap();
    let strip_time = |s: String| {
        s.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip_time(read(a.path())), strip_time(read(b.path())));
}

#[test]
fn misspelled_key_names_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("typo.yaml");
    std::fs::write(&exp, "train:\n  stpes: 10\n").unwrap();
    let out = clirlab(&["plan", exp.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("stpes") && err.contains("typo.yaml") && err.contains("train"),
        "{err}"
    );
    std::fs::write(&exp, "device: gpu\n").unwrap();
    let err = text(&clirlab(&["plan", exp.to_str().unwrap()]));
    assert!(
        err.contains("device") && err.contains("expected auto, cpu, cuda or cuda:N"),
        "{err}"
    );
}

#[test]
fn plan_and_schedule_print_without_running() {
    let out = clirlab(&["plan", "experiments/quickstart.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = text(&out);
    assert!(s.contains("6 cells") && s.contains("[baseline]"), "{s}");
    let out = clirlab(&["schedule", "linear", "--points", "3"]);
    let s = text(&out);
    assert!(
        out.status.success() && s.contains("0.500") && s.contains("1.0000"),
        "{s}"
    );
    let out = clirlab(&["schedule", "no-such-schedule"]);
    assert!(!out.status.success() && text(&out).contains("not found"));
}

#[test]
fn environment_layer_sets_keys() {
    let out = command(&["plan", "experiments/quickstart.yaml"])
        .env("CLIRLAB_SEEDS", "[1, 2, 3]")
        .output()
        .unwrap();
    assert!(text(&out).contains("9 cells"), "{}", text(&out));
    let out = command(&["plan", "experiments/quickstart.yaml"])
        .env("CLIRLAB_TRAIN__STPES", "3")
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("stpes"), "{}", text(&out));
}
