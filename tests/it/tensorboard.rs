//! The TensorBoard files of a finished sweep read back with the `tensorboard` Python package:
//! every cell's curves (loss, InfoNCE, learning rate, gradient norm, cross-lingual share, …) and
//! final metrics, its HParams session (the grid point's axis values and seed), and the
//! experiment's HParams summary (axes → metrics). Needs Python with `tensorboard`
//! (`CLIRLAB_PYTHON`, else `python3`): it is ignored by a plain `cargo test`, and `.ci/run`
//! installs it and runs it.

use crate::common::cli::{command, text};

/// Reads `tensorboard/` with TensorBoard's own readers and prints one JSON object.
const READER: &str = r#"
import json, os, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2
root = sys.argv[1]
out = {"cells": {}, "experiment": None}
for dirpath, _, files in sorted(os.walk(root)):
    if not any("tfevents" in f for f in files):
        continue
    acc = ea.EventAccumulator(dirpath, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    hp = {}
    for tag, content in acc.PluginTagToContent("hparams").items():
        hp[tag] = plugin_data_pb2.HParamsPluginData.FromString(content)
    if dirpath == root:
        e = hp["_hparams_/experiment"].experiment
        out["experiment"] = {"hparams": sorted(h.name for h in e.hparam_infos),
                             "metrics": sorted(m.name.tag for m in e.metric_infos)}
        continue
    start = hp["_hparams_/session_start_info"].session_start_info
    scalars = {t: [(s.step, s.value) for s in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    out["cells"][os.path.basename(dirpath)] = {
        "hparams": {k: v.WhichOneof("kind") for k, v in start.hparams.items()},
        "group": start.group_name,
        "ended": hp["_hparams_/session_end_info"].session_end_info.status,
        "scalars": scalars,
    }
print(json.dumps(out))
"#;

#[test]
#[ignore = "needs Python with tensorboard (CLIRLAB_PYTHON); .ci/run installs it and runs it"]
fn tensorboard_reads_the_curves_and_the_hparams_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let out = command(&[
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        results,
        "--set",
        "train.steps=20",
        "--set",
        "train.eval_every=10",
        "--set",
        "data.synthetic.topics=8",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("quickstart/tensorboard");
    let script = tmp.path().join("read_tensorboard.py");
    std::fs::write(&script, READER).unwrap();
    let python = std::env::var("CLIRLAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let read = std::process::Command::new(&python)
        .arg(&script)
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{python} could not read {}: {}",
        root.display(),
        text(&read)
    );
    let got: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();

    let experiment = &got["experiment"];
    assert_eq!(experiment["hparams"], serde_json::json!(["schedule", "seed"]), "{got}");
    let metrics: Vec<&str> = experiment["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        metrics.contains(&"final/sx/related/nDCG@10") && metrics.len() == 4,
        "{metrics:?}"
    );

    let cells = got["cells"].as_object().unwrap();
    assert_eq!(cells.len(), 6, "3 schedules x 2 seeds: {got}");
    for (id, cell) in cells {
        assert_eq!(
            cell["hparams"],
            serde_json::json!({"schedule": "string_value", "seed": "number_value"}),
            "{id}"
        );
        assert_eq!(cell["ended"], 1, "{id}");
        let scalars = cell["scalars"].as_object().unwrap();
        for tag in [
            "train/loss",
            "train/info_nce",
            "train/lr",
            "train/grad_norm",
            "train/cross_lingual_share",
            "train/target_cross_lingual_share",
        ] {
            assert_eq!(scalars[tag].as_array().map(Vec::len), Some(20), "{id}: {tag}");
        }
        assert!(!scalars["validation/nDCG@10"].as_array().unwrap().is_empty(), "{id}");
        let share = &scalars["train/cross_lingual_share"];
        assert!(
            share
                .as_array()
                .unwrap()
                .iter()
                .all(|p| (0.0..=1.0).contains(&p[1].as_f64().unwrap())),
            "{id}: {share}"
        );
        // The final metrics equal the cell's result.json means.
        let result: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("quickstart/cells").join(id).join("result.json")).unwrap(),
        )
        .unwrap();
        let want = result["means"]["sx/related"]["nDCG@10"].as_f64().unwrap();
        let got = scalars["final/sx/related/nDCG@10"][0][1].as_f64().unwrap();
        assert!((want - got).abs() < 1e-6, "{id}: {got} vs {want}");
    }
}
