//! The OT ablation through the binary at a reduced size, and fault isolation of a diverging cell.

use crate::common::cli;

use cli::{clirlab, text};

const SMALL: &[&str] = &[
    "--set",
    "data.dataset=synthetic",
    "--set",
    "data.languages=[sx]",
    "--set",
    "train.steps=20",
    "--set",
    "train.eval_every=10",
    "--set",
    "train.batch_size=16",
    "--set",
    "ot.teacher.steps=20",
    "--set",
    "ot.batch_size=4",
    "--set",
    "data.synthetic.topics=8",
    "--set",
    "data.synthetic.docs_per_topic=12",
];

#[test]
fn ot_ablation_shares_one_teacher_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run",
        "experiments/ot_ablation.yaml",
        "--quiet",
        "--results",
        tmp.path().to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    let out = clirlab(&args);
    assert!(out.status.success(), "{}", text(&out));

    // One teacher for all six cells, complete with its provenance record.
    let teachers: Vec<_> = std::fs::read_dir(tmp.path().join(".artifacts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(teachers.len(), 1, "{teachers:?}");
    assert!(teachers[0].join("model.safetensors").is_file() && teachers[0].join("teacher.json").is_file());

    let dir = tmp.path().join("ot_ablation");
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    for cell in sweep["cells"].as_array().unwrap() {
        let id = cell["id"].as_str().unwrap();
        let log = std::fs::read_to_string(dir.join("cells").join(id).join("train_log.csv")).unwrap();
        let header: Vec<&str> = log.lines().next().unwrap().split(',').collect();
        let ot_col = header.iter().position(|h| *h == "ot").unwrap();
        let val_col = header.iter().position(|h| *h == "val_ndcg10").unwrap();
        let rows: Vec<Vec<&str>> = log.lines().skip(1).map(|l| l.split(',').collect()).collect();
        let enabled = cell["assignment"]["ot"]["enabled"].as_bool().unwrap();
        for r in &rows {
            assert_eq!(!r[ot_col].is_empty(), enabled, "{id}: OT column");
            if !r[ot_col].is_empty() {
                assert!(r[ot_col].parse::<f64>().unwrap().is_finite());
            }
        }
        assert!(
            rows.iter().filter(|r| !r[val_col].is_empty()).count() >= 1,
            "{id}: no validation"
        );
        assert!(dir.join("cells").join(id).join("model.safetensors").is_file());
    }
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        report.contains("(baseline)") && report.contains("\"weight\":1.0"),
        "{report}"
    );
}

#[test]
fn a_diverging_cell_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        tmp.path().to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    // A vanishing temperature overflows the logits: that grid point diverges.
    args.extend_from_slice(&[
        "--set",
        "ablations.model.temperature=[0.05, 1e-40]",
        "--set",
        "seeds=[1]",
    ]);
    args.extend_from_slice(&[
        "--set",
        "ablations.schedule=[constant]",
        "--set",
        "stats.baseline.model.temperature=0.05",
    ]);
    let out = clirlab(&args);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("1 cell(s) failed") && text(&out).contains("diverged"),
        "{}",
        text(&out)
    );
    let dir = tmp.path().join("quickstart");
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let statuses: Vec<&str> = sweep["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "done").count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 1, "{statuses:?}");
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        report.contains("Cells without results") && report.contains("failed"),
        "{report}"
    );
}
