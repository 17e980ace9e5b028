//! Reference rows (`references`): BM25 and the zero-shot backbone, retrievers that are not grid
//! points. Each depends only on the data (data set, languages, split, the test-query sample,
//! the zero-shot evaluation set), `retrieval.top_k` and `retrieval.settings`, its own parameters and, for `zero_shot`, the
//! backbone and `model.max_len` — not on seeds or the grid — so it is computed once, into
//! `references/<name>-<content hash>/` (the files a cell writes: `run.trec` and the other
//! settings' runs, `metrics.csv`,
//! `result.json` last and atomically), under a lock, and reused while it is there and intact.

use super::cell::{evaluate, other_settings, tokenizer_for};
use super::paths::{self, CellFile};
use super::provenance::provenance;
use super::records::{PlannedReference, ReferenceResult, digest_outputs, finished_reference, write_reference_result};
use super::state::JOB_ALIVE;
use crate::grid::{CellConfig, content_hash};
use crate::retrieval::{self, Ranker, SplitRun};
use crate::schedule::Schedule;
use crate::spec::{Experiment, LoadedExperiment, OtConfig, Reference, RetrievalSetting, SamplerConfig, TrainConfig};
use crate::train;
use anyhow::{Context, Result};
use clirlab_data::format::{Dataset, Split};
use clirlab_data::{self as data, DataConfig};
use clirlab_util::fs::write_atomic;
use clirlab_util::lock::LockFile;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Bumped when the computation of a reference changes, so that old results are not reused.
const VERSION: u32 = 1;

/// Everything a reference's numbers depend on; its key hashes this.
#[derive(Serialize)]
struct KeyMaterial<'a> {
    version: u32,
    reference: &'a Reference,
    /// The data, without the training-pair cap (references do not train).
    data: DataConfig,
    top_k: usize,
    /// `retrieval.settings` when not the default (left out then, so that keys stay as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<&'a [RetrievalSetting]>,
    /// `zero_shot`: the model settings that shape its embeddings.
    backbone: Option<(String, usize)>,
}

/// The data settings a reference depends on.
fn reference_data(exp: &Experiment) -> DataConfig {
    DataConfig {
        max_train_pairs: None,
        train_pairs: Default::default(),
        ..exp.data.clone()
    }
}

/// The key (folder name) of `reference` in experiment `exp`.
pub fn key(exp: &Experiment, reference: &Reference) -> String {
    let backbone = match reference {
        Reference::ZeroShot => exp.model.backbone_identity().map(|b| (b, exp.model.max_len)),
        Reference::Bm25(_) => None,
    };
    let material = KeyMaterial {
        version: VERSION,
        reference,
        data: reference_data(exp),
        top_k: exp.retrieval.top_k,
        settings: (!RetrievalSetting::is_default_list(&exp.retrieval.settings)).then_some(&exp.retrieval.settings[..]),
        backbone,
    };
    format!("{}-{}", reference.name(), content_hash(&material, 12))
}

/// The label of `reference` in tables and plots.
pub fn label(exp: &Experiment, reference: &Reference) -> String {
    match reference {
        Reference::Bm25(p) => format!("reference: BM25 (k1={}, b={})", p.k1, p.b),
        Reference::ZeroShot => format!(
            "reference: zero-shot {}",
            exp.model.backbone.as_ref().map_or("backbone".into(), |b| b.label())
        ),
    }
}

/// The references of the experiment, as `sweep.json` lists them.
pub fn planned(loaded: &LoadedExperiment) -> Vec<PlannedReference> {
    let exp = &loaded.experiment;
    exp.references
        .iter()
        .map(|r| PlannedReference {
            key: key(exp, r),
            name: r.name().to_string(),
            label: label(exp, r),
        })
        .collect()
}

/// What [`ensure`] did with one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Found computed and intact: reused.
    Reused,
    /// Computed by this call.
    Computed,
    /// Its computation failed, for this reason.
    Failed(String),
}

/// Computes every reference of the experiment that the results folder `dir` does not hold
/// intact yet; returns (key, outcome) per reference. A failure is reported, not raised: the
/// cells' results stand without it.
pub fn ensure(loaded: &LoadedExperiment, dir: &Path, artifacts: &Path, progress: bool) -> Vec<(String, Outcome)> {
    let exp = &loaded.experiment;
    exp.references
        .iter()
        .map(|reference| {
            let key = key(exp, reference);
            let outcome = match ensure_one(exp, reference, &key, dir, artifacts, progress) {
                Ok(true) => Outcome::Computed,
                Ok(false) => Outcome::Reused,
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::error!(reference = %key, %reason, "reference failed");
                    Outcome::Failed(reason)
                }
            };
            (key, outcome)
        })
        .collect()
}

/// Computes reference `key` unless it is there intact; `Ok(true)` when it was computed.
fn ensure_one(
    exp: &Experiment,
    reference: &Reference,
    key: &str,
    dir: &Path,
    artifacts: &Path,
    progress: bool,
) -> Result<bool> {
    if finished_reference(dir, key).is_some() {
        return Ok(false);
    }
    let folder = paths::reference_dir(dir, key);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let _lock = LockFile::acquire(&paths::reference_lock(dir, key), JOB_ALIVE)?;
    // Another process may have computed it while this one waited for the lock.
    if finished_reference(dir, key).is_some() {
        return Ok(false);
    }
    let _ = std::fs::remove_file(CellFile::Result.at(&folder));
    let started = Instant::now();
    let run_provenance = provenance();
    let data_cfg = reference_data(exp);
    write_atomic(
        &CellFile::Config.at(&folder),
        serde_yaml::to_string(&serde_json::json!({
            "reference": reference,
            "label": label(exp, reference),
            "data": data_cfg,
            "retrieval": exp.retrieval,
            "model": matches!(reference, Reference::ZeroShot).then_some(&exp.model),
        }))?
        .as_bytes(),
    )?;
    let dataset = data::load(&data_cfg, progress)?;
    let zero_shot_set = data_cfg.zero_shot.as_ref().map(|zs| zs.data_config(&data_cfg));
    let evaluated = match reference {
        Reference::Bm25(p) => {
            let ranker = retrieval::Lexical { k1: p.k1, b: p.b };
            splits(
                &ranker,
                &dataset,
                &data_cfg,
                zero_shot_set.as_ref(),
                exp,
                key,
                &folder,
                progress,
            )?
        }
        Reference::ZeroShot => {
            let cfg = zero_shot_config(exp, data_cfg.clone());
            let tokenizer = tokenizer_for(&cfg, &dataset)?;
            let train_paths = train::TrainPaths {
                checkpoint: &CellFile::Checkpoint.at(&folder),
                artifacts,
                job_alive: JOB_ALIVE,
            };
            // No step runs: the pretrained encoder as it is.
            let trained = train::train(&cfg, &dataset, &tokenizer, &train_paths, |_| {})?;
            let ranker = retrieval::Dense::new(trained.encoder.as_ref(), &tokenizer, cfg.model.max_len);
            splits(
                &ranker,
                &dataset,
                &data_cfg,
                zero_shot_set.as_ref(),
                exp,
                key,
                &folder,
                progress,
            )?
        }
    };
    let (metrics, means, queries) = evaluate(&evaluated)?;
    write_atomic(&CellFile::Metrics.at(&folder), &metrics)?;
    let result = ReferenceResult {
        key: key.to_string(),
        name: reference.name().to_string(),
        label: label(exp, reference),
        dataset: data_cfg.dataset.clone(),
        means,
        queries,
        seconds: started.elapsed().as_secs_f64(),
        provenance: run_provenance,
        outputs: digest_outputs(&folder)?,
        record_sha256: None,
    };
    write_reference_result(&CellFile::Result.at(&folder), &result)?;
    tracing::info!(reference = %key, seconds = result.seconds, "reference computed");
    Ok(true)
}

/// The test split of the data set, in its other settings, then the zero-shot evaluation set if
/// any (its tasks prefixed with its name, as a cell's are), ranked by `ranker`; every run is
/// written to its file in `folder`, as a cell's are.
#[allow(clippy::too_many_arguments)]
fn splits(
    ranker: &dyn Ranker,
    dataset: &Dataset,
    data_cfg: &DataConfig,
    zero_shot_set: Option<&DataConfig>,
    exp: &Experiment,
    key: &str,
    folder: &Path,
    progress: bool,
) -> Result<Vec<(String, SplitRun)>> {
    let top_k = exp.retrieval.top_k;
    let test = retrieval::run_split_with(ranker, dataset, data_cfg, top_k, Split::Test, key)?;
    write_run(&test, &CellFile::Run.at(folder))?;
    let mut out = vec![(String::new(), test)];
    out.extend(other_settings(ranker, dataset, data_cfg, &exp.retrieval, key, folder)?);
    if let Some(zs_cfg) = zero_shot_set {
        let zs_data = data::load(zs_cfg, progress)?;
        let split = retrieval::run_split_with(ranker, &zs_data, zs_cfg, top_k, Split::Test, key)?;
        write_run(&split, &CellFile::ZeroShotRun.at(folder))?;
        out.push((format!("{}:", zs_cfg.dataset), split));
    }
    Ok(out)
}

/// Writes the run of `split` to `path`.
fn write_run(split: &SplitRun, path: &Path) -> Result<()> {
    let mut trec = Vec::new();
    split.run.write_trec(&mut trec)?;
    Ok(write_atomic(path, &trec)?)
}

/// The configuration of the zero-shot backbone: the experiment's model and data, no training
/// step (`train.steps: 0`, as a zero-shot grid cell), no OT, a fixed seed (nothing is drawn).
fn zero_shot_config(exp: &Experiment, data: DataConfig) -> CellConfig {
    CellConfig {
        data,
        schedule_name: "none".into(),
        schedule: Schedule::Constant { value: 0.0 },
        sampler: SamplerConfig::default(),
        model: exp.model.clone(),
        train: TrainConfig {
            steps: 0,
            eval_every: 0,
            patience: 0,
            ..exp.train.clone()
        },
        ot: OtConfig::default(),
        retrieval: exp.retrieval.clone(),
        seed: 0,
        device: exp.device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Bm25Params;

    #[test]
    fn keys_depend_on_the_data_and_parameters_only() {
        let mut exp = Experiment::default();
        let bm25 = Reference::Bm25(Bm25Params::default());
        let base = key(&exp, &bm25);
        assert!(base.starts_with("bm25-"), "{base}");
        // Seeds, training, the grid and the training-pair cap leave it alone.
        exp.seeds = vec![5, 6, 7];
        exp.train.steps = 7;
        exp.data.max_train_pairs = Some(10);
        exp.ablations.insert("train.lr".into(), vec![serde_json::json!(0.1)]);
        assert_eq!(key(&exp, &bm25), base);
        // The test-query sample, the languages and the parameters change it.
        exp.data.max_test_queries = Some(3);
        assert_ne!(key(&exp, &bm25), base);
        exp.data.max_test_queries = None;
        assert_ne!(key(&exp, &Reference::Bm25(Bm25Params { k1: 0.9, b: 0.4 })), base);
        exp.data.languages = vec!["sy".into()];
        assert_ne!(key(&exp, &bm25), base);
        // The retrieval settings change it, and the default list is the key of before.
        let plain = key(&exp, &bm25);
        exp.retrieval.settings = vec![RetrievalSetting::CrossLingual];
        assert_eq!(key(&exp, &bm25), plain);
        exp.retrieval.settings.push(RetrievalSetting::Multilingual);
        assert_ne!(key(&exp, &bm25), plain);
    }
}
