//! Reference rows: `references: [bm25]` on the small quickstart adds a BM25 row to
//! the report, tested against the baseline in the same correction family; it is computed
//! once, reused on resume, recomputed when damaged; and an experiment without references
//! reports its grid as before. `zero_shot` without a backbone is refused, naming the flag.

use crate::common::cli::{SMALL, command, run_quickstart, text};
use std::path::Path;

/// `run` of the small quickstart (two schedules, one seed) into `results`, with `extra`.
fn run(results: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = SMALL.to_vec();
    args.extend_from_slice(&["--set", "seeds=[1]", "--set", "ablations.schedule=[constant, linear]"]);
    args.extend_from_slice(extra);
    run_quickstart(results, &args)
}

/// The rows of a CSV file as header → value maps.
fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .map(String::from)
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn a_bm25_row_is_reported_tested_and_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["--set", "references=[bm25]"]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("quickstart");
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let key = sweep["references"][0]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("bm25-"), "{key}");
    let folder = dir.join("references").join(&key);
    for f in ["config.yaml", "run.trec", "metrics.csv", "result.json"] {
        assert!(folder.join(f).is_file(), "{} lacks {f}", folder.display());
    }

    // summary.csv: the two grid points, then the reference, tested against the baseline.
    let rows = csv_rows(&dir.join("report/summary.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let reference = &rows[2];
    assert_eq!(reference["variant"], format!("references/{key}"));
    assert_eq!(reference["label"], "reference: BM25 (k1=1.2, b=0.75)");
    assert_eq!(reference["baseline"], "false");
    let mean: f64 = reference["nDCG@10_mean"].parse().unwrap();
    assert!((0.0..=1.0).contains(&mean), "{mean}");
    let p: f64 = reference["nDCG@10_p_value"].parse().unwrap();
    let p_adj: f64 = reference["nDCG@10_p_adjusted"].parse().unwrap();
    assert!(p.is_finite() && p_adj >= p, "{p} {p_adj}");
    // One correction family: the other grid point and the reference against the baseline.
    let comparisons = csv_rows(&dir.join("report/comparisons.csv"));
    let ndcg: Vec<_> = comparisons.iter().filter(|c| c["metric"] == "nDCG@10").collect();
    assert_eq!(ndcg.len(), 2, "{ndcg:?}");
    assert!(ndcg.iter().any(|c| c["system"] == format!("references/{key}")));
    assert!(ndcg.iter().all(|c| c["family_size"] == "2"), "{ndcg:?}");

    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(md.contains("| reference: BM25 (k1=1.2, b=0.75) | — |"), "{md}");
    assert!(md.contains("same correction family"), "{md}");
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    assert!(html.contains("reference: BM25 (k1=1.2, b=0.75)"));
    let tex = std::fs::read_to_string(dir.join("report/tables.tex")).unwrap();
    assert!(tex.contains("\\midrule\nreference: BM25"), "{tex}");

    // Resume: the reference is reused, not recomputed (a marker in its result.json survives;
    // the record loses its own digest, as an older version's, else the edit is damage).
    let result_path = folder.join("result.json");
    let metrics = std::fs::read_to_string(folder.join("metrics.csv")).unwrap();
    let mut result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&result_path).unwrap()).unwrap();
    assert!(
        result.as_object_mut().unwrap().remove("record_sha256").is_some(),
        "{result}"
    );
    result["seconds"] = serde_json::json!(12345.5);
    std::fs::write(&result_path, serde_json::to_string(&result).unwrap()).unwrap();
    let out = run(tmp.path(), &["--set", "references=[bm25]"]);
    assert!(out.status.success(), "{}", text(&out));
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&result_path).unwrap()).unwrap();
    assert_eq!(again["seconds"], 12345.5, "the reference was recomputed");
    assert_eq!(
        csv_rows(&dir.join("report/summary.csv")),
        rows,
        "the report changed on resume"
    );

    // A damaged reference is computed again, to the same numbers.
    std::fs::write(folder.join("metrics.csv"), "lang,task,query_id,metric,value\n").unwrap();
    let out = run(tmp.path(), &["--set", "references=[bm25]"]);
    assert!(out.status.success(), "{}", text(&out));
    let redone: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&result_path).unwrap()).unwrap();
    assert_ne!(redone["seconds"], 12345.5, "the damaged reference was reused");
    assert_eq!(std::fs::read_to_string(folder.join("metrics.csv")).unwrap(), metrics);

    // Without references, the grid is reported as it is, with nothing of the reference.
    let plain_tmp = tempfile::tempdir().unwrap();
    let out = run(plain_tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let plain = plain_tmp.path().join("quickstart");
    assert!(!plain.join("references").exists());
    let sweep = std::fs::read_to_string(plain.join("sweep.json")).unwrap();
    assert!(!sweep.contains("\"references\""), "{sweep}");
    let plain_md = std::fs::read_to_string(plain.join("report/report.md")).unwrap();
    assert!(!plain_md.contains("reference"), "{plain_md}");
    let plain_rows = csv_rows(&plain.join("report/summary.csv"));
    assert_eq!(plain_rows.len(), 2);
    // The grid's rows have the same means, intervals and unadjusted p-values either way.
    for (with, without) in rows.iter().zip(&plain_rows) {
        for (column, value) in without {
            if !column.ends_with("_p_adjusted") {
                assert_eq!(&with[column], value, "column {column}");
            }
        }
    }
}

#[test]
fn zero_shot_without_a_backbone_names_the_flag() {
    let out = command(&["plan", "experiments/quickstart.yaml", "--set", "references=[zero_shot]"])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--set references=[zero_shot]: key `references[0]`: expected `model.backbone` set"),
        "{err}"
    );
    let out = command(&["plan", "experiments/quickstart.yaml", "--set", "references=[lucene]"])
        .output()
        .unwrap();
    let err = text(&out);
    assert!(
        !out.status.success() && err.contains("lucene") && err.contains("bm25"),
        "{err}"
    );
}
