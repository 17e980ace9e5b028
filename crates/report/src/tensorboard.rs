//! `results/<experiment>/tensorboard/`: the training curves of every finished cell (one run per
//! cell, from its `train_log.csv`) and TensorBoard's HParams summary of the grid (the axes of
//! each cell's grid point and its final metrics), so that `tensorboard --logdir` compares grid
//! points. Written with the report, from the same finished records.

use super::model::Report;
use anyhow::{Context, Result};
use clirlab_experiment::run::paths::{self, CellFile};
use clirlab_util::tensorboard::{EventFile, Experiment, HParamInfo, ListValue, MetricInfo, MetricName, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The folder under a results folder.
pub const DIR: &str = "tensorboard";

/// `train_log.csv` column → TensorBoard tag.
const CURVES: [(&str, &str); 8] = [
    ("loss", "train/loss"),
    ("info_nce", "train/info_nce"),
    ("ot", "train/ot"),
    ("lr", "train/lr"),
    ("grad_norm", "train/grad_norm"),
    ("target_share", "train/target_cross_lingual_share"),
    ("cross_lingual", "train/cross_lingual_share"),
    ("val_ndcg10", "validation/nDCG@10"),
];

/// Writes the event files of a one-folder report into `<folder>/tensorboard/`.
pub fn write(r: &Report) -> Result<()> {
    let [folder] = r.folders.as_slice() else {
        return Ok(()); // a comparison of two folders: each has its own
    };
    let root = folder.dir.join(DIR);
    let variants: Vec<_> = r.variants.iter().filter(|v| !v.reference).collect();
    let axes: BTreeSet<&String> = variants.iter().flat_map(|v| v.assignment.keys()).collect();
    let mut metric_tags = BTreeSet::new();
    for v in &variants {
        for cell in &v.cells {
            let res = &cell.result;
            let mut file = EventFile::new(&root.join(&res.id), "clirlab");
            let log = paths::cell_file(&folder.dir, &res.id, CellFile::TrainLog);
            let mut last_step = 0;
            if log.is_file() {
                last_step = curves(&log, &mut file)?;
            }
            let mut hparams: BTreeMap<String, Value> = v
                .assignment
                .iter()
                .map(|(k, val)| (k.clone(), Value::from_json(val)))
                .collect();
            hparams.insert("seed".into(), Value::from_json(&res.seed.into()));
            file.session_start(hparams, &v.id);
            for (task, metrics) in &res.means {
                for (metric, value) in metrics {
                    let tag = format!("final/{task}/{metric}");
                    file.scalar(&tag, last_step, *value);
                    metric_tags.insert(tag);
                }
            }
            file.session_end();
            file.write()?;
        }
    }
    let hparam_infos = axes
        .iter()
        .map(|axis| {
            let values: BTreeSet<String> = variants
                .iter()
                .filter_map(|v| v.assignment.get(*axis))
                .map(|x| x.to_string())
                .collect();
            let numeric = variants
                .iter()
                .filter_map(|v| v.assignment.get(*axis))
                .all(|x| x.is_number());
            HParamInfo {
                name: (*axis).clone(),
                r#type: if numeric { 3 } else { 1 },
                domain_discrete: (!numeric).then(|| ListValue {
                    values: values
                        .iter()
                        .map(|s| Value::from_json(&serde_json::from_str(s).unwrap_or(serde_json::Value::Null)))
                        .collect(),
                }),
            }
        })
        .chain([HParamInfo {
            name: "seed".into(),
            r#type: 3,
            domain_discrete: None,
        }])
        .collect();
    let metric_infos = metric_tags
        .iter()
        .map(|tag| MetricInfo {
            name: Some(MetricName {
                group: String::new(),
                tag: tag.clone(),
            }),
            display_name: tag.trim_start_matches("final/").into(),
        })
        .collect();
    let mut file = EventFile::new(&root, "clirlab");
    file.hparams_experiment(Experiment {
        name: r.title.clone(),
        description: folder.record.source.display().to_string(),
        hparam_infos,
        metric_infos,
    });
    Ok(file.write()?)
}

/// The curves of one `train_log.csv` into `file`; the last step.
fn curves(log: &Path, file: &mut EventFile) -> Result<i64> {
    let mut reader = csv::Reader::from_path(log).with_context(|| format!("reading {}", log.display()))?;
    let header = reader.headers()?.clone();
    if header.is_empty() {
        // A zero-step (zero-shot) cell trains nothing: its log is empty, it has no curves.
        return Ok(0);
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let step_at = column("step").with_context(|| format!("{}: no column `step`", log.display()))?;
    let batch_at = column("batch_size");
    let mut last = 0;
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: row {}", log.display(), line + 2))?;
        let step: i64 = row[step_at].parse().with_context(|| {
            format!(
                "{}:{}: step {:?} is not an integer",
                log.display(),
                line + 2,
                &row[step_at]
            )
        })?;
        last = step;
        for (name, tag) in CURVES {
            let Some(at) = column(name) else { continue };
            // An empty field: no value at this step (validation between evaluations, OT off).
            let Ok(mut value) = row[at].parse::<f64>() else {
                continue;
            };
            if name == "cross_lingual" {
                // The count of cross-lingual pairs, as the share of the batch.
                let Some(batch) = batch_at.and_then(|b| row[b].parse::<f64>().ok()).filter(|b| *b > 0.0) else {
                    continue;
                };
                value /= batch;
            }
            file.scalar(tag, step, value);
        }
    }
    Ok(last)
}
