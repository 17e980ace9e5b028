//! The training loop of one cell: hybrid batches from the sampler, InfoNCE (+ λ·OT against an
//! English teacher) steps on the encoder, warm-up then decay of the learning rate, gradient
//! clipping, validation in the target languages with best-checkpoint selection and early
//! stopping, and a per-step log. Also the teacher stage, shared by every cell that needs the
//! same teacher (content-addressed artifact, trained once, guarded by a lock file).

use crate::config::{Decay, TrainConfig};
use crate::data::format::{Dataset, Pair};
use crate::eval::cell::cell_metrics;
use crate::fsutil::{LockFile, write_json_atomic};
use crate::grid::{CellConfig, content_hash};
use crate::model::{self, OptimizerSettings, OtTerm, ResolvedDevice, StepInput, TrainableEncoder};
use crate::ot::{PlanGradient, SinkhornSettings};
use crate::retrieval;
use crate::sampler::HybridSampler;
use crate::schedule::{Schedule, progress};
use crate::tokenizer::TextEncoder;
use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One row of `train_log.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRow {
    pub step: usize,
    pub progress: f64,
    pub target_share: f64,
    pub cross_lingual: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub loss: f64,
    pub info_nce: f64,
    /// Mean ⟨P, C⟩ of the step's bitext pairs (empty when OT is off).
    pub ot: Option<f64>,
    /// λ at this step (empty when OT is off).
    pub ot_weight: Option<f64>,
    pub grad_norm: f64,
    /// Validation nDCG@10 in the target languages, at evaluation steps.
    pub val_ndcg10: Option<f64>,
}

pub struct Trained {
    pub encoder: Box<dyn TrainableEncoder>,
    pub log: Vec<LogRow>,
    /// Step whose weights were kept (best validation, or the last step).
    pub kept_step: usize,
    pub best_validation: Option<f64>,
    pub device: ResolvedDevice,
}

/// Learning rate at `step`: linear warm-up to `lr`, then constant or linear decay to 0.
pub fn learning_rate(t: &TrainConfig, step: usize) -> f64 {
    if step < t.warmup_steps {
        return t.lr * (step + 1) as f64 / t.warmup_steps as f64;
    }
    match t.decay {
        Decay::None => t.lr,
        Decay::Linear => {
            let span = t.steps.saturating_sub(t.warmup_steps).max(1) as f64;
            t.lr * (1.0 - (step - t.warmup_steps) as f64 / span).max(0.0)
        }
    }
}

/// Where the cell keeps its checkpoint and finds shared artifacts.
pub struct TrainPaths<'a> {
    pub checkpoint: &'a Path,
    pub artifacts: &'a Path,
}

fn settings(t: &TrainConfig) -> OptimizerSettings {
    OptimizerSettings {
        kind: t.optimizer,
        lr: t.lr,
        weight_decay: t.weight_decay,
    }
}

/// Validation nDCG@10 over the target languages' validation queries.
fn validate(
    encoder: &dyn TrainableEncoder,
    tokenizer: &TextEncoder,
    dataset: &Dataset,
    cfg: &CellConfig,
) -> Result<f64> {
    let split = retrieval::run_split(encoder, tokenizer, dataset, cfg, "validation", "validation")?;
    let values = cell_metrics(&split.qrels, &split.run)?;
    let ndcg = &values["nDCG@10"];
    let ids: Vec<&String> = split.groups.iter().flat_map(|g| &g.query_ids).collect();
    anyhow::ensure!(!ids.is_empty(), "no validation queries in the target languages");
    Ok(ids.iter().map(|q| ndcg.get(*q).copied().unwrap_or(0.0)).sum::<f64>() / ids.len() as f64)
}

/// Trains the cell's encoder. `on_step` is called after every step (progress reporting).
/// A non-finite loss fails the cell with that reason.
pub fn train(
    cfg: &CellConfig,
    dataset: &Dataset,
    tokenizer: &TextEncoder,
    paths: &TrainPaths,
    mut on_step: impl FnMut(&LogRow),
) -> Result<Trained> {
    let cross: Vec<_> = cfg
        .data
        .languages
        .iter()
        .flat_map(|lang| dataset.cross.get(lang).into_iter().flatten())
        .collect();
    let t = &cfg.train;
    let mut sampler = HybridSampler::new(
        &dataset.mono,
        cross,
        cfg.schedule.clone(),
        cfg.sampler.mixing,
        t.batch_size,
        t.steps,
        cfg.seed,
    )?;
    let device = cfg.device.resolve()?;
    tracing::info!("training on {device} (device: {})", cfg.device);
    // The model's initial weights and the sampler draw from separate seeded streams.
    let mut encoder = model::build(
        cfg.model.preset,
        cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED,
        settings(t),
        device,
    )?;

    let needs_teacher = cfg.ot.enabled || cfg.ot.init_from_teacher;
    let teacher = if needs_teacher {
        Some(teacher(cfg, dataset, tokenizer, paths.artifacts)?)
    } else {
        None
    };
    if let Some(teacher) = &teacher
        && cfg.ot.init_from_teacher
    {
        encoder.load(&teacher.checkpoint)?;
    }
    // The teacher's token states are needed only for the OT term.
    let distill_from = teacher.as_ref().filter(|_| cfg.ot.enabled);
    let bitext: Vec<&Pair> = cfg
        .data
        .languages
        .iter()
        .flat_map(|lang| dataset.bitext.get(lang).into_iter().flatten())
        .collect();
    if cfg.ot.enabled && bitext.is_empty() {
        bail!(
            "ot.enabled: the dataset has no bitext for languages {:?}",
            cfg.data.languages
        );
    }
    let mut bitext_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x00B1_7EC7);
    let sinkhorn = SinkhornSettings {
        epsilon: cfg.ot.epsilon,
        max_iter: cfg.ot.max_iter,
        tol: cfg.ot.tol,
    };
    let gradient = if cfg.ot.detach_plan {
        PlanGradient::Detached
    } else {
        PlanGradient::Unrolled
    };

    let mut log = Vec::with_capacity(t.steps);
    let (mut best, mut kept_step, mut stale) = (None::<f64>, t.steps.saturating_sub(1), 0);
    for step in 0..t.steps {
        let batch = sampler.batch(step);
        let texts: Vec<&str> = batch
            .pairs
            .iter()
            .map(|p| p.query.as_str())
            .chain(batch.pairs.iter().map(|p| p.passage.as_str()))
            .collect();
        let tokens = tokenizer.batch(&texts, cfg.model.max_len)?;
        let lr = learning_rate(t, step);
        encoder.set_learning_rate(lr);
        let tp = progress(step, t.steps);

        let ot_weight = cfg.ot.weight
            * cfg
                .ot
                .weight_schedule
                .as_ref()
                .map(|s: &Schedule| s.share(tp))
                .unwrap_or(1.0);
        let loss = match distill_from {
            Some(teacher) => {
                let picked: Vec<&Pair> =
                    index::sample(&mut bitext_rng, bitext.len(), cfg.ot.batch_size.min(bitext.len()))
                        .into_iter()
                        .map(|i| bitext[i])
                        .collect();
                let low: Vec<&str> = picked.iter().map(|p| p.query.as_str()).collect();
                let english: Vec<&str> = picked.iter().map(|p| p.passage.as_str()).collect();
                let student = tokenizer.batch(&low, cfg.model.max_len)?;
                let english = tokenizer.batch(&english, cfg.model.max_len)?;
                let teacher_states = teacher.encoder.token_states(&english)?;
                let term = OtTerm {
                    student: &student,
                    teacher_states: &teacher_states,
                    teacher_mask: &english.mask,
                    teacher_len: english.len,
                    weight: ot_weight,
                    sinkhorn,
                    cost: cfg.ot.cost,
                    gradient,
                };
                let input = StepInput {
                    batch: &tokens,
                    temperature: cfg.model.temperature,
                    ot: Some(term),
                    clip_norm: t.clip_norm,
                };
                encoder.train_step(&input)?
            }
            None => encoder.train_step(&StepInput {
                batch: &tokens,
                temperature: cfg.model.temperature,
                ot: None,
                clip_norm: t.clip_norm,
            })?,
        };
        if !loss.total.is_finite() {
            bail!(
                "training diverged: loss is {} at step {step} (InfoNCE {}, OT {:?}); lower train.lr or raise model.temperature",
                loss.total,
                loss.info_nce,
                loss.ot
            );
        }
        let is_eval = t.eval_every > 0 && ((step + 1) % t.eval_every == 0 || step + 1 == t.steps);
        let val_ndcg10 = if is_eval {
            Some(validate(encoder.as_ref(), tokenizer, dataset, cfg)?)
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
            ot_weight: distill_from.map(|_| ot_weight),
            grad_norm: loss.grad_norm,
            val_ndcg10,
        };
        on_step(&row);
        log.push(row);
        if let Some(v) = val_ndcg10 {
            if best.is_none_or(|b| v > b) {
                best = Some(v);
                kept_step = step;
                stale = 0;
                encoder.save(paths.checkpoint)?;
            } else {
                stale += 1;
                if t.patience > 0 && stale >= t.patience {
                    tracing::info!(step, "early stopping: no validation improvement in {stale} evaluations");
                    break;
                }
            }
        }
    }
    if best.is_some() {
        encoder.load(paths.checkpoint)?;
    } else {
        encoder.save(paths.checkpoint)?;
    }
    Ok(Trained {
        encoder,
        log,
        kept_step,
        best_validation: best,
        device,
    })
}

/// `teacher.json` beside a teacher checkpoint: what it is and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeacherRecord {
    pub key: String,
    pub preset: String,
    pub dataset: String,
    pub tokenizer_hash: String,
    pub config: crate::config::TeacherConfig,
    pub final_loss: f64,
    pub train_seconds: f64,
    pub clirlab_version: String,
}

/// A loaded teacher.
pub struct Teacher {
    pub encoder: Box<dyn TrainableEncoder>,
    pub checkpoint: PathBuf,
}

/// The English teacher of `cfg`: trained on monolingual pairs only, with the cell's preset,
/// tokenizer, temperature and length. Stored under `artifacts/teacher-<hash>/`, keyed by
/// everything that determines its weights, and trained once even when several cells (or
/// processes) need it at the same time.
pub fn teacher(cfg: &CellConfig, dataset: &Dataset, tokenizer: &TextEncoder, artifacts: &Path) -> Result<Teacher> {
    let tc = &cfg.ot.teacher;
    let tokenizer_hash = content_hash(&tokenizer.to_json()?, 16);
    let key = content_hash(&(&cfg.data, &cfg.model, tc, &tokenizer_hash), 16);
    let dir = artifacts.join(format!("teacher-{key}"));
    let checkpoint = dir.join("model.safetensors");
    let record_path = dir.join("teacher.json");
    std::fs::create_dir_all(artifacts).with_context(|| format!("creating {}", artifacts.display()))?;
    let _lock = LockFile::acquire(&artifacts.join(format!("teacher-{key}.lock")))?;
    let mut encoder = model::build(cfg.model.preset, tc.seed, settings(&cfg.train), cfg.device.resolve()?)?;
    if record_path.is_file() && checkpoint.is_file() {
        encoder.load(&checkpoint)?;
        return Ok(Teacher { encoder, checkpoint });
    }
    let started = std::time::Instant::now();
    let teacher_cfg = CellConfig {
        schedule_name: "teacher".into(),
        schedule: Schedule::Constant { value: 0.0 },
        train: TrainConfig {
            steps: tc.steps,
            batch_size: tc.batch_size,
            lr: tc.lr,
            eval_every: 0,
            patience: 0,
            ..cfg.train.clone()
        },
        ot: crate::config::OtConfig {
            enabled: false,
            init_from_teacher: false,
            ..cfg.ot.clone()
        },
        seed: tc.seed,
        ..cfg.clone()
    };
    std::fs::create_dir_all(&dir)?;
    let trained = train(
        &teacher_cfg,
        dataset,
        tokenizer,
        &TrainPaths {
            checkpoint: &checkpoint,
            artifacts,
        },
        |_| {},
    )?;
    let record = TeacherRecord {
        key,
        preset: format!("{:?}", cfg.model.preset).to_lowercase(),
        dataset: cfg.data.dataset.clone(),
        tokenizer_hash,
        config: tc.clone(),
        final_loss: trained.log.last().map(|r| r.loss).unwrap_or(f64::NAN),
        train_seconds: started.elapsed().as_secs_f64(),
        clirlab_version: env!("CARGO_PKG_VERSION").into(),
    };
    // Written last: its presence means the teacher is complete.
    write_json_atomic(&record_path, &record)?;
    tracing::info!(teacher = %dir.display(), "teacher trained");
    Ok(Teacher {
        encoder: trained.encoder,
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay() {
        let t = TrainConfig {
            lr: 1.0,
            steps: 14,
            warmup_steps: 4,
            decay: Decay::Linear,
            ..TrainConfig::default()
        };
        assert_eq!(learning_rate(&t, 0), 0.25);
        assert_eq!(learning_rate(&t, 3), 1.0);
        assert_eq!(learning_rate(&t, 4), 1.0);
        assert!((learning_rate(&t, 9) - 0.5).abs() < 1e-12);
        assert!(learning_rate(&t, 13) > 0.0 && learning_rate(&t, 13) < 0.2);
        let flat = TrainConfig {
            decay: Decay::None,
            ..t
        };
        assert_eq!(learning_rate(&flat, 13), 1.0);
        let no_warmup = TrainConfig {
            warmup_steps: 0,
            decay: Decay::None,
            lr: 0.5,
            ..TrainConfig::default()
        };
        assert_eq!(learning_rate(&no_warmup, 0), 0.5);
    }
}
