//! One training step: the batch tokenized, the learning rate set, InfoNCE (+ λ·OT against the
//! teacher's token states of the step's bitext pairs) and one optimizer update.

use super::distill::BitextSampler;
use super::teacher::Teacher;
use crate::grid::CellConfig;
use crate::sampler::Batch;
use anyhow::{Result, bail};
use clirlab_model::ot::{PlanGradient, SinkhornSettings};
use clirlab_model::tokenizer::{Side, Tokenizer};
use clirlab_model::{OtTerm, StepInput, StepLoss, TrainableEncoder};

/// The OT term's source: the teacher, the bitext pairs to draw, and how to transport.
pub struct Distillation<'t, 'd> {
    /// The teacher whose token states the student is pulled towards.
    pub teacher: &'t Teacher,
    /// Draws the bitext pairs of each step.
    pub bitext: BitextSampler<'d>,
    /// Sinkhorn's settings.
    pub sinkhorn: SinkhornSettings,
    /// Gradients through the plan, or with the plan detached.
    pub gradient: PlanGradient,
}

impl<'t, 'd> Distillation<'t, 'd> {
    /// The distillation settings of `cfg` against `teacher`, drawing from `bitext`.
    pub fn new(cfg: &CellConfig, teacher: &'t Teacher, bitext: BitextSampler<'d>) -> Self {
        Self {
            teacher,
            bitext,
            sinkhorn: SinkhornSettings {
                epsilon: cfg.ot.epsilon,
                max_iter: cfg.ot.max_iter,
                tol: cfg.ot.tol,
            },
            gradient: if cfg.ot.detach_plan {
                PlanGradient::Detached
            } else {
                PlanGradient::Unrolled
            },
        }
    }
}

/// Where in training a step is: its index, learning rate and OT weight λ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepAt {
    /// The step's index.
    pub step: usize,
    /// Its learning rate.
    pub lr: f64,
    /// λ of the OT term (used only with distillation).
    pub ot_weight: f64,
}

/// Runs one step on `batch` at `at`. A non-finite loss or gradient norm is an error that says
/// what diverged.
pub fn step(
    encoder: &mut dyn TrainableEncoder,
    tokenizer: &Tokenizer,
    cfg: &CellConfig,
    batch: &Batch,
    at: StepAt,
    distill: Option<&mut Distillation>,
) -> Result<StepLoss> {
    let StepAt { step, lr, ot_weight } = at;
    let texts: Vec<(&str, Side)> = batch
        .pairs
        .iter()
        .map(|p| (p.query, Side::Query))
        .chain(batch.pairs.iter().map(|p| (p.passage, Side::Passage)))
        .chain(batch.negatives.iter().map(|n| (*n, Side::Passage)))
        .collect();
    let tokens = tokenizer.batch_sides(&texts, cfg.model.max_len)?;
    encoder.set_learning_rate(lr);
    let t = &cfg.train;
    let loss = match distill {
        Some(d) => {
            let picked = d.bitext.next_batch();
            let low: Vec<&str> = picked.iter().map(|p| p.query.as_str()).collect();
            let english: Vec<&str> = picked.iter().map(|p| p.passage.as_str()).collect();
            let student = tokenizer.batch_side(&low, Side::Query, cfg.model.max_len)?;
            let english = tokenizer.batch_side(&english, Side::Query, cfg.model.max_len)?;
            let teacher_states = d.teacher.encoder.token_states(&english)?;
            let term = OtTerm {
                student: &student,
                teacher_states: &teacher_states,
                teacher_mask: &english.mask,
                teacher_len: english.len,
                weight: ot_weight,
                sinkhorn: d.sinkhorn,
                cost: cfg.ot.cost,
                gradient: d.gradient,
            };
            encoder.train_step(&StepInput {
                batch: &tokens,
                negatives: batch.negatives.len(),
                temperature: cfg.model.temperature,
                ot: Some(term),
                clip_norm: t.clip_norm,
            })?
        }
        None => encoder.train_step(&StepInput {
            batch: &tokens,
            negatives: batch.negatives.len(),
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
    // The model skips the update of a non-finite gradient; left alone, every step could be
    // skipped and the cell "succeed" with its initial weights.
    if !loss.grad_norm.is_finite() {
        bail!(
            "training diverged: gradient norm is {} at step {step} (loss {}, InfoNCE {}, OT {:?}); raise model.temperature or ot.epsilon, or lower train.lr or ot.weight",
            loss.grad_norm,
            loss.total,
            loss.info_nce,
            loss.ot
        );
    }
    Ok(loss)
}
