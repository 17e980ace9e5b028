//! The retrieval settings: `retrieval.settings: [cross_lingual, monolingual,
//! multilingual]` on the small quickstart (two synthetic languages; the synthetic ids
//! `sx:t0d15` ↔ `en:t0d15` align them) adds the groups `mono:` and
//! `multi:` with the multilingual rank distance `RD` to metrics.csv, their runs, and tasks in the
//! report (a BM25 reference row too); the cross-lingual rows stay what the default gives; and the
//! default, written out or not, leaves cell ids, run.trec and metrics.csv as they were.

use crate::common::cli::{SMALL, command, text};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `run` of the small quickstart (two schedules, one seed, languages sx and sy) into
/// `results`, with `extra`; returns the experiment's folder.
fn run(results: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&[
        "--set",
        "seeds=[1]",
        "--set",
        "ablations.schedule=[constant, linear]",
        "--set",
        "data.languages=[sx, sy]",
        // Five test documents per topic, so that some share a sub-topic: with fewer, a query's
        // only relevant document is its own and the monolingual setting has no judgment.
        "--set",
        "data.synthetic.docs_per_topic=20",
    ]);
    args.extend_from_slice(extra);
    let out = command(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    results.join("quickstart")
}

/// The cell ids of a results folder, sorted.
fn cell_ids(dir: &Path) -> Vec<String> {
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let mut ids: Vec<String> = sweep["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn three_settings_are_evaluated_and_reported_and_the_default_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = run(&tmp.path().join("plain"), &[]);
    let explicit = run(
        &tmp.path().join("explicit"),
        &["--set", "retrieval.settings=[cross_lingual]"],
    );
    let all = run(
        &tmp.path().join("all"),
        &[
            "--set",
            "retrieval.settings=[cross_lingual, monolingual, multilingual]",
            "--set",
            "references=[bm25]",
        ],
    );

    // The default written out is the default: the same ids, runs and metrics, no new file.
    let ids = cell_ids(&plain);
    assert_eq!(ids, cell_ids(&explicit));
    for id in &ids {
        let (a, b) = (plain.join("cells").join(id), explicit.join("cells").join(id));
        for f in ["run.trec", "metrics.csv", "config.yaml"] {
            assert_eq!(read(&a.join(f)), read(&b.join(f)), "{id}/{f}");
        }
        assert!(!read(&a.join("config.yaml")).contains("settings"));
        assert!(!a.join("run.mono.trec").exists() && !a.join("run.multi.trec").exists());
        assert!(!read(&a.join("metrics.csv")).contains(",RD,"));
    }
    assert!(!read(&plain.join("report/report.md")).contains("RD"));

    // Other settings are another configuration: other ids.
    let all_ids = cell_ids(&all);
    assert_eq!(all_ids.len(), 2);
    assert!(all_ids.iter().all(|id| !ids.contains(id)), "{all_ids:?}");
    for (id, plain_id) in all_ids.iter().zip(&ids) {
        let cell = all.join("cells").join(id);
        for f in ["run.trec", "run.mono.trec", "run.multi.trec"] {
            assert!(cell.join(f).is_file(), "{id} lacks {f}");
        }
        // The cross-lingual setting is what the default gave (the same training and run; the
        // run tag is the cell id).
        let untagged = |path: PathBuf| -> Vec<String> {
            read(&path)
                .lines()
                .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
                .collect()
        };
        let (run, plain_run) = (
            untagged(cell.join("run.trec")),
            untagged(plain.join("cells").join(plain_id).join("run.trec")),
        );
        assert!(run == plain_run, "{id}: run.trec differs from the default's");
        let metrics = read(&cell.join("metrics.csv"));
        let plain_metrics = read(&plain.join("cells").join(plain_id).join("metrics.csv"));
        let cross: Vec<&str> = metrics
            .lines()
            .filter(|l| l.split(',').nth(1) == Some("related"))
            .collect();
        let before: Vec<&str> = plain_metrics.lines().skip(1).collect();
        assert_eq!(cross, before, "{id}");
        // (lang, task, metric) of every row.
        let groups: BTreeSet<(String, String, String)> = metrics
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_string(), f[1].to_string(), f[3].to_string())
            })
            .collect();
        for (lang, task) in [
            ("sx", "mono:related"),
            ("sy", "mono:related"),
            ("en", "mono:related"),
            ("sx", "multi:related"),
            ("sy", "multi:related"),
        ] {
            assert!(
                groups.contains(&(lang.into(), task.into(), "nDCG@10".into())),
                "{lang}/{task} missing: {groups:?}"
            );
        }
        // RD only in the multilingual setting, and no English queries there.
        let rd: BTreeSet<(&str, &str)> = groups
            .iter()
            .filter(|(_, _, m)| m == "RD")
            .map(|(l, t, _)| (l.as_str(), t.as_str()))
            .collect();
        assert_eq!(rd, BTreeSet::from([("sx", "multi:related"), ("sy", "multi:related")]));
        assert!(!groups.iter().any(|(l, t, _)| l == "en" && t.starts_with("multi:")));
        for l in metrics.lines().filter(|l| l.contains(",RD,")) {
            let v: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
            assert!(v >= 0.0, "{l}");
        }
        // No query ranks its own text in either new setting.
        for f in ["run.mono.trec", "run.multi.trec"] {
            for line in read(&cell.join(f)).lines() {
                let w: Vec<&str> = line.split(' ').collect();
                assert_ne!(w[0], w[2], "{f}: {line}");
            }
        }
        let result: serde_json::Value = serde_json::from_str(&read(&cell.join("result.json"))).unwrap();
        assert!(result["means"]["sx/multi:related"]["RD"].is_number(), "{result}");
        assert!(result["outputs"]["run.multi.trec"].is_object(), "{result}");
    }
    // The BM25 reference is evaluated in the same settings.
    let refs: Vec<PathBuf> = std::fs::read_dir(all.join("references"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(refs.len(), 1);
    assert!(refs[0].join("run.multi.trec").is_file());
    assert!(read(&refs[0].join("metrics.csv")).contains("multi:related"));

    // The report: a task per setting, RD tested against the baseline, lower is better.
    let md = read(&all.join("report/report.md"));
    for task in ["related", "mono:related", "multi:related"] {
        assert!(md.contains(&format!("### Task `{task}`")), "{task}: {md}");
    }
    assert!(md.contains("RD (95% CI)") && md.contains("lower is better"), "{md}");
    let summary = read(&all.join("report/summary.csv"));
    let mut reader = csv::Reader::from_reader(summary.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let multi: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[col("task")] == "multi:related").collect();
    assert_eq!(multi.len(), 3, "two grid points and the reference: {summary}");
    for r in &multi {
        let mean: f64 = r[col("RD_mean")].parse().unwrap();
        assert!(mean >= 0.0, "{summary}");
    }
    // The linear grid point is tested against the constant baseline on RD.
    assert!(
        multi.iter().any(|r| r[col("RD_p_value")].parse::<f64>().is_ok()),
        "{summary}"
    );
    let comparisons = read(&all.join("report/comparisons.csv"));
    assert!(
        comparisons.lines().any(|l| l.contains("multi:related/RD")),
        "{comparisons}"
    );
    let html = read(&all.join("report/report.html"));
    assert!(html.contains("mono:related") && html.contains("multi:related") && html.contains("lower is better"));
    let tex = read(&all.join("report/tables.tex"));
    assert!(tex.contains("multi:related") && tex.contains("RD"), "{tex}");
}

#[test]
fn unknown_or_incomplete_settings_are_refused_naming_the_key() {
    for (value, wanted) in [
        ("[cross_lingual, bilingual]", "bilingual"),
        ("[monolingual]", "cross_lingual"),
        ("[cross_lingual, monolingual, monolingual]", "each setting once"),
    ] {
        let out = command(&[
            "plan",
            "experiments/quickstart.yaml",
            "--set",
            &format!("retrieval.settings={value}"),
        ])
        .output()
        .unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "{value}: {t}");
        assert!(t.contains("retrieval.settings") && t.contains(wanted), "{value}: {t}");
    }
    let out = command(&[
        "plan",
        "experiments/quickstart.yaml",
        "--set",
        "retrieval.settings=[cross_lingual, bilingual]",
    ])
    .output()
    .unwrap();
    let t = text(&out);
    assert!(t.contains("monolingual") && t.contains("multilingual"), "{t}");
}
