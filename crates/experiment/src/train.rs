//! Training one cell, in parts: hybrid batches from the sampler, one step ([`step`]: InfoNCE +
//! λ·OT against an English teacher, gradient clipping inside the encoder), the learning-rate
//! schedule ([`lr`]), validation and early stopping ([`validation`]), the best checkpoint
//! ([`checkpoint`]), the OT batch sampling ([`distill`]), hard negatives ([`negatives`]) and
//! the teacher stage ([`teacher`]), shared by every cell that needs the same teacher. [`train`] is the recipe that joins them.

pub mod checkpoint;
pub mod distill;
pub mod lr;
pub mod negatives;
pub mod step;
pub mod teacher;
pub mod validation;

pub use lr::learning_rate;
pub use teacher::{Teacher, TeacherRecord, teacher};

use crate::grid::CellConfig;
use crate::sampler::{BatchPlan, HybridSampler, PairSampler, PoolSpec, RenderedPool, RenderedSampler};
use crate::schedule::progress;
use crate::spec::schema::NegativeSource;
use anyhow::{Context, Result, bail};
use clirlab_data::config::PairDesign;
use clirlab_data::format::{Dataset, Pair};
use clirlab_model::tokenizer::Tokenizer;
use clirlab_model::{self as model, ResolvedDevice, TrainableEncoder};
use clirlab_util::lock::JobAlive;
use distill::{BitextSampler, ot_weight};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use step::{Distillation, StepAt};
use validation::{EarlyStopping, Verdict, is_eval_step, validation_ndcg10};

/// One row of `train_log.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRow {
    /// The step.
    pub step: usize,
    /// Training progress t in [0, 1].
    pub progress: f64,
    /// The schedule's target share p(t).
    pub target_share: f64,
    /// Cross-lingual pairs in the batch.
    pub cross_lingual: usize,
    /// Pairs in the batch.
    pub batch_size: usize,
    /// The learning rate.
    pub lr: f64,
    /// The total loss.
    pub loss: f64,
    /// The InfoNCE part of the loss.
    pub info_nce: f64,
    /// Mean ⟨P, C⟩ of the step's bitext pairs (empty when OT is off).
    pub ot: Option<f64>,
    /// λ at this step (empty when OT is off).
    pub ot_weight: Option<f64>,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
    /// Validation nDCG@10 in the target languages, at evaluation steps.
    pub val_ndcg10: Option<f64>,
}

/// A trained encoder with its log.
pub struct Trained {
    /// The encoder, with the kept weights loaded.
    pub encoder: Box<dyn TrainableEncoder>,
    /// One row per step run.
    pub log: Vec<LogRow>,
    /// Step whose weights were kept (best validation, or the last step).
    pub kept_step: usize,
    /// Best validation nDCG@10, if validation ran.
    pub best_validation: Option<f64>,
    /// The device it trained on.
    pub device: ResolvedDevice,
}

/// Where the cell keeps its checkpoint and finds shared artifacts, and how the liveness of
/// another host's lock is decided (the run layer's policy).
#[derive(Clone, Copy)]
pub struct TrainPaths<'a> {
    /// The cell's checkpoint (the best weights, or the last).
    pub checkpoint: &'a Path,
    /// The shared artifacts folder (teachers).
    pub artifacts: &'a Path,
    /// Asked about the Slurm job of a lock held on another host.
    pub job_alive: JobAlive,
}

/// The folder under the data folder that holds the backbones' frozen-layer state stores.
pub const STATE_STORES: &str = "states";

/// The cell's encoder before training: the pretrained backbone (prepared on first use), with
/// the layers `model.train_*` name trainable and a store of its frozen layers' states
/// (`<data_dir>/states/`), or the preset at the cell's seeded initial
/// weights.
pub fn build_encoder(cfg: &CellConfig, device: ResolvedDevice) -> Result<Box<dyn TrainableEncoder>> {
    let settings = lr::optimizer_settings(&cfg.train);
    let on_cpu = matches!(device, ResolvedDevice::Cpu);
    if let (Some(backbone), Some(fine_tune)) = (&cfg.model.backbone, cfg.model.fine_tune()) {
        let dir = backbone_dir(backbone)?;
        if on_cpu {
            let gemm = model::select_blas(true, false)?;
            tracing::info!(gemm, "CPU matrix products");
        }
        let mut encoder = model::bert::load(&dir, cfg.model.pooling, fine_tune, settings, device)?;
        // The frozen lower layers run once per text, for every cell on this data folder.
        encoder.use_state_store(&clirlab_data::data_dir().join(STATE_STORES))?;
        let encoder: Box<dyn TrainableEncoder> = encoder;
        return Ok(encoder);
    }
    if on_cpu {
        let gemm = model::select_blas(false, false)?;
        tracing::debug!(gemm, "CPU matrix products");
    }
    // The model's initial weights and the sampler draw from separate seeded streams.
    model::build(
        cfg.model.preset,
        cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED,
        settings,
        device,
    )
}

/// The folder of a cell's backbone (me5-small is prepared on first use). A folder backbone
/// must still hold the files the cell was planned with.
pub fn backbone_dir(backbone: &crate::spec::Backbone) -> Result<std::path::PathBuf> {
    let dir = model::bert::encode::resolve_model(&backbone.model_name(), false)?;
    if let crate::spec::Backbone::Folder(planned) = backbone {
        let now = model::bert::folder::fingerprint_cached(&dir)?;
        anyhow::ensure!(
            now == planned.sha256,
            "{}: the model folder's files changed since the sweep was planned (fingerprint {}, now {now}); \
             its cells would mix two models — plan the experiment again or restore the folder",
            dir.display(),
            planned.sha256
        );
    }
    Ok(dir)
}

/// The pairs of a training pool that a cell draws from: all, or `data.max_train_pairs` of them,
/// the same sample for every cell (seeded by the pool's name).
fn capped_pool<'a>(pairs: &'a [Pair], cap: Option<usize>, pool: &str) -> Vec<&'a Pair> {
    match cap {
        Some(n) if n < pairs.len() => {
            let seed = u64::from_str_radix(&crate::grid::content_hash(&("max_train_pairs", pool), 16), 16).unwrap_or(0);
            clirlab_util::sample::fixed_sample(pairs.len(), n, seed)
                .into_iter()
                .map(|i| &pairs[i])
                .collect()
        }
        _ => pairs.iter().collect(),
    }
}

/// What zero-shot mining of hard negatives needs: the untrained encoder and its tokenizer, and
/// where mined negatives are kept.
struct Miner<'e> {
    encoder: &'e dyn model::Embedder,
    tokenizer: &'e Tokenizer,
    paths: &'e TrainPaths<'e>,
}

/// Version of the mined-negatives files; part of their key.
const MINED_VERSION: u32 = 1;

impl Miner<'_> {
    /// The pool's negatives by the untrained model's cosine, read from the artifacts folder or
    /// mined there once (under a lock: cells running at once mine them once).
    fn zero_shot(
        &self,
        cfg: &CellConfig,
        dataset: &Dataset,
        pool: &RenderedPool,
        pivot: &str,
        k: usize,
    ) -> Result<HashMap<String, Vec<String>>> {
        let key = crate::grid::content_hash(
            &(
                MINED_VERSION,
                &dataset.card.name,
                &dataset.card.files,
                &cfg.data.languages,
                &cfg.data.train_pairs,
                cfg.data.max_train_pairs,
                cfg.model.backbone_identity(),
                cfg.model.max_len,
                k,
            ),
            16,
        );
        let artifacts = self.paths.artifacts;
        std::fs::create_dir_all(artifacts).with_context(|| format!("creating {}", artifacts.display()))?;
        let file = artifacts.join(format!("negatives-{key}.json"));
        let _lock = clirlab_util::lock::LockFile::acquire(
            &artifacts.join(format!("negatives-{key}.lock")),
            self.paths.job_alive,
        )?;
        if file.is_file() {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            return serde_json::from_str(&text).with_context(|| format!("{}: not mined negatives", file.display()));
        }
        let mined = negatives::mine_dense(pool, pivot, k, self.encoder, self.tokenizer, cfg.model.max_len)?;
        // In link order, so that the file is the same bytes every time.
        let ordered: std::collections::BTreeMap<_, _> = mined.iter().collect();
        clirlab_util::fs::write_atomic(&file, serde_json::to_string(&ordered)?.as_bytes())?;
        Ok(mined)
    }
}

/// The cell's sampler, in the design `data.train_pairs.design` names.
fn pair_sampler<'a>(cfg: &CellConfig, dataset: &'a Dataset, miner: &Miner) -> Result<PairSampler<'a>> {
    let t = &cfg.train;
    let cap = cfg.data.max_train_pairs;
    let pivot = dataset.card.pivot.as_str();
    let plan = BatchPlan {
        schedule: cfg.schedule.clone(),
        mixing: cfg.sampler.mixing,
        batch_size: t.batch_size,
        steps: t.steps,
    };
    match cfg.data.train_pairs.design {
        PairDesign::Rendered => {
            if let Some(h) = t.hard_negatives
                && h.k > 0
                && h.source == NegativeSource::Given
            {
                anyhow::ensure!(
                    !dataset.negatives.is_empty(),
                    "train.hard_negatives.source is `given`, but data set {} has no negatives \
                     (train/negatives.tsv; import a pairs file with negatives: `clirlab data import … --train-pairs`)",
                    dataset.card.name
                );
            }
            let cross_lingual = cfg.data.train_pairs.cross_lingual();
            let spec = PoolSpec {
                languages: &cfg.data.languages,
                pivot,
                kinds: &cfg.data.train_pairs.kinds,
                cross_lingual: &cross_lingual,
                max_per_language: cap,
            };
            let mut pool = RenderedPool::new(&dataset.links, &dataset.units, &spec)
                .with_context(|| format!("data set {}", dataset.card.name))?;
            let k = t.hard_negatives.map_or(0, |h| h.k);
            match t.hard_negatives.map(|h| h.source) {
                _ if k == 0 => {}
                Some(NegativeSource::Bm25) | None => {
                    let mined = negatives::mine_bm25(&pool, pivot, k);
                    let found = mined.values().filter(|n| !n.is_empty()).count();
                    tracing::info!(
                        links = mined.len(),
                        with_negatives = found,
                        "mined hard negatives with BM25"
                    );
                    pool.set_negatives(&mined);
                }
                Some(NegativeSource::ZeroShot) => {
                    let mined = miner.zero_shot(cfg, dataset, &pool, pivot, k)?;
                    tracing::info!(links = mined.len(), "hard negatives of the untrained model");
                    pool.set_negatives(&mined);
                }
                Some(NegativeSource::Given) => {
                    let given: HashMap<String, Vec<String>> =
                        dataset.negatives.iter().map(|(l, n)| (l.clone(), n.clone())).collect();
                    pool.set_negatives(&given);
                }
            }
            let sampler = RenderedSampler::new(pool, plan, cfg.seed)?.with_hard_negatives(k);
            Ok(PairSampler::Rendered(Box::new(sampler)))
        }
        PairDesign::TranslationVsEnglish => {
            // The pools in the order of data.languages, as the design always drew them.
            let cross: Vec<(&str, &Pair)> = cfg
                .data
                .languages
                .iter()
                .filter_map(|lang| dataset.cross.get_key_value(lang))
                .flat_map(|(lang, pairs)| {
                    capped_pool(pairs, cap, lang)
                        .into_iter()
                        .map(move |p| (lang.as_str(), p))
                })
                .collect();
            let mono = capped_pool(&dataset.mono, cap, "mono");
            let sampler = HybridSampler::new(mono, cross, pivot, plan, cfg.seed)?;
            Ok(PairSampler::TranslationVsEnglish(Box::new(sampler)))
        }
    }
}

/// Trains the cell's encoder (`train.steps: 0`: the model as it is, untrained). `on_step` is called after every step (progress reporting).
/// A non-finite loss or gradient norm fails the cell with that reason.
pub fn train(
    cfg: &CellConfig,
    dataset: &Dataset,
    tokenizer: &Tokenizer,
    paths: &TrainPaths,
    mut on_step: impl FnMut(&LogRow),
) -> Result<Trained> {
    let t = &cfg.train;
    let device = cfg.device.resolve()?;
    tracing::info!("training on {device} (device: {})", cfg.device);
    let mut encoder = build_encoder(cfg, device)?;
    let miner = Miner {
        encoder: encoder.as_ref(),
        tokenizer,
        paths,
    };
    let mut sampler = pair_sampler(cfg, dataset, &miner)?;

    let teacher = if cfg.ot.enabled || cfg.ot.init_from_teacher {
        Some(teacher(cfg, dataset, tokenizer, paths)?)
    } else {
        None
    };
    if let Some(teacher) = &teacher
        && cfg.ot.init_from_teacher
    {
        encoder.load(&teacher.checkpoint)?;
    }
    let bitext: Vec<&Pair> = cfg
        .data
        .languages
        .iter()
        .flat_map(|lang| dataset.bitext.get(lang).into_iter().flatten())
        .collect();
    let bitext = BitextSampler::new(bitext, cfg.ot.batch_size, cfg.seed);
    if cfg.ot.enabled && bitext.is_empty() {
        bail!(
            "ot.enabled: the dataset has no bitext for languages {:?}",
            cfg.data.languages
        );
    }
    // The teacher's token states are needed only for the OT term.
    let mut distill = teacher
        .as_ref()
        .filter(|_| cfg.ot.enabled)
        .map(|teacher| Distillation::new(cfg, teacher, bitext));

    let mut log = Vec::with_capacity(t.steps);
    let mut stopping = EarlyStopping::new(t.steps, t.patience);
    for step in 0..t.steps {
        let batch = sampler.batch(step)?;
        let lr = learning_rate(t, step);
        let tp = progress(step, t.steps);
        let weight = ot_weight(&cfg.ot, tp);
        let at = StepAt {
            step,
            lr,
            ot_weight: weight,
        };
        let loss = step::step(encoder.as_mut(), tokenizer, cfg, &batch, at, distill.as_mut())?;
        let val_ndcg10 = if is_eval_step(t, step) {
            Some(validation_ndcg10(encoder.as_ref(), tokenizer, dataset, cfg)?)
        } else {
            None
        };
        let row = LogRow {
            step,
            progress: tp,
            target_share: batch.target_share,
            cross_lingual: batch.cross_lingual,
            batch_size: batch.pairs.len(),
            lr,
            loss: loss.total,
            info_nce: loss.info_nce,
            ot: loss.ot,
            ot_weight: distill.as_ref().map(|_| weight),
            grad_norm: loss.grad_norm,
            val_ndcg10,
        };
        on_step(&row);
        log.push(row);
        if let Some(v) = val_ndcg10 {
            match stopping.record(step, v) {
                Verdict::Improved => encoder.save(paths.checkpoint)?,
                Verdict::Stale => {}
                Verdict::Stop => {
                    tracing::info!(
                        step,
                        "early stopping: no validation improvement in {} evaluations",
                        stopping.stale()
                    );
                    break;
                }
            }
        }
    }
    // A zero-shot cell (no step) evaluates the model as it is: nothing to keep.
    if t.steps > 0 {
        checkpoint::keep_best(encoder.as_mut(), paths.checkpoint, stopping.best().is_some())?;
    }
    Ok(Trained {
        encoder,
        log,
        kept_step: stopping.kept_step(),
        best_validation: stopping.best(),
        device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;
    use crate::spec::Experiment;
    use clirlab_data::synthetic;
    use clirlab_model::DeviceSpec;

    fn cell(steps: usize) -> CellConfig {
        let exp = Experiment::default();
        CellConfig {
            data: exp.data.clone(),
            schedule_name: "constant".into(),
            schedule: Schedule::Constant { value: 0.5 },
            sampler: exp.sampler.clone(),
            model: exp.model.clone(),
            train: crate::spec::TrainConfig {
                steps,
                batch_size: 8,
                ..exp.train.clone()
            },
            ot: exp.ot.clone(),
            retrieval: exp.retrieval.clone(),
            seed: 3,
            device: DeviceSpec::Cpu,
        }
    }

    #[test]
    fn a_capped_pool_is_the_same_sample_for_every_cell() {
        let pairs: Vec<Pair> = (0..50)
            .map(|i| Pair {
                id: format!("p{i}"),
                query: format!("q{i}"),
                passage: format!("d{i}"),
            })
            .collect();
        let ids = |v: Vec<&Pair>| v.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(capped_pool(&pairs, None, "sw").len(), 50);
        assert_eq!(capped_pool(&pairs, Some(80), "sw").len(), 50);
        let sw = ids(capped_pool(&pairs, Some(10), "sw"));
        assert_eq!(sw.len(), 10);
        assert_eq!(sw, ids(capped_pool(&pairs, Some(10), "sw")));
        assert_ne!(
            sw,
            ids(capped_pool(&pairs, Some(10), "tl")),
            "each pool has its own sample"
        );
    }

    #[test]
    fn each_task_is_evaluated_against_its_own_judgments() {
        // Two tasks judge the same queries (as the Bible's translation and crossref do): a
        // group holds its own task's judgments only.
        let cfg = cell(0);
        let mut dataset = synthetic::generate(&cfg.data.synthetic, &cfg.data.languages);
        let lang = cfg.data.languages[0].clone();
        let key = dataset
            .qrels
            .keys()
            .find(|(l, _, s)| *l == lang && s == "test")
            .cloned()
            .unwrap();
        let original = dataset.qrels[&key].clone();
        let other_doc = dataset.corpus["test"][0].id.clone();
        let mut other: Vec<_> = original
            .iter()
            .map(|j| clirlab_data::format::Judgment {
                query_id: j.query_id.clone(),
                doc_id: other_doc.clone(),
                relevance: 1,
            })
            .collect();
        other.dedup_by(|a, b| a.query_id == b.query_id);
        dataset
            .qrels
            .insert((lang.clone(), "other".into(), "test".into()), other);
        let texts: Vec<&str> = dataset.mono.iter().map(|p| p.query.as_str()).collect();
        let tokenizer = Tokenizer::train(texts.into_iter(), 256).unwrap();
        let encoder = build_encoder(&cfg, ResolvedDevice::Cpu).unwrap();
        let split = crate::retrieval::run_split(
            encoder.as_ref(),
            &tokenizer,
            &dataset,
            &cfg,
            clirlab_data::format::Split::Test,
            "r",
        )
        .unwrap();
        let group = |task: &str| split.groups.iter().find(|g| g.task == task).unwrap();
        let (first, second) = (group(&key.1), group("other"));
        assert_eq!(first.query_ids, second.query_ids);
        assert_eq!(first.qrels.num_judgments(), original.len());
        assert_eq!(second.qrels.num_judgments(), second.query_ids.len());
        assert_eq!(second.qrels.get(&second.query_ids[0], &other_doc), Some(1));
        assert!(
            original
                .iter()
                .filter(|j| j.doc_id != other_doc)
                .all(|j| second.qrels.get(&j.query_id, &j.doc_id).is_none()),
            "the other task's judgments stay out"
        );
    }

    /// Trains `cfg` on its synthetic data in a temporary folder: the outcome, the tokenizer
    /// and the folder (its checkpoint is `model.safetensors`).
    fn train_synthetic(
        cfg: &CellConfig,
        on_step: impl FnMut(&LogRow),
    ) -> (Result<Trained>, Tokenizer, tempfile::TempDir) {
        let dataset = synthetic::generate(&cfg.data.synthetic, &cfg.data.languages);
        let texts: Vec<&str> = dataset.mono.iter().map(|p| p.query.as_str()).collect();
        let tokenizer = Tokenizer::train(texts.into_iter(), 256).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("model.safetensors");
        let paths = TrainPaths {
            checkpoint: &checkpoint,
            artifacts: dir.path(),
            job_alive: clirlab_util::lock::no_scheduler,
        };
        (train(cfg, &dataset, &tokenizer, &paths, on_step), tokenizer, dir)
    }

    #[test]
    fn hard_negatives_change_the_loss_and_train() {
        let plain = cell(4);
        let mut hard = cell(4);
        hard.train.hard_negatives = Some(crate::spec::schema::HardNegatives {
            k: 1,
            ..Default::default()
        });
        let losses = |cfg: &CellConfig| -> Vec<f64> {
            let (trained, _, _dir) = train_synthetic(cfg, |_| {});
            trained.unwrap().log.iter().map(|r| r.info_nce).collect()
        };
        let (a, b) = (losses(&plain), losses(&hard));
        assert!(b.iter().all(|l| l.is_finite()));
        // The same first batch with one more column per query: a higher loss.
        assert!(b[0] > a[0], "{b:?} vs {a:?}");
    }

    #[test]
    fn zero_steps_evaluate_the_model_as_it_is() {
        let cfg = cell(0);
        let (trained, tokenizer, dir) = train_synthetic(&cfg, |_| panic!("no step runs"));
        let trained = trained.unwrap();
        let checkpoint = dir.path().join("model.safetensors");
        assert!(trained.log.is_empty());
        assert_eq!((trained.kept_step, trained.best_validation), (0, None));
        assert!(!checkpoint.exists(), "a zero-shot cell writes no checkpoint");
        // The untrained encoder is the one a cell with steps would start from.
        let fresh = build_encoder(&cfg, ResolvedDevice::Cpu).unwrap();
        let batch = tokenizer.batch(&["some text", "other words here"], 16).unwrap();
        assert_eq!(trained.encoder.embed(&batch).unwrap(), fresh.embed(&batch).unwrap());
        assert_eq!(progress(0, 0), 1.0);
    }

    #[test]
    fn a_non_finite_gradient_fails_the_cell() {
        // A temperature this small overflows the gradient while the loss stays finite.
        let mut cfg = cell(3);
        cfg.model.temperature = 1e-30;
        let (trained, _, _dir) = train_synthetic(&cfg, |_| {});
        let err = trained.err().expect("the cell fails");
        assert!(format!("{err:#}").contains("training diverged"), "{err:#}");
    }
}
