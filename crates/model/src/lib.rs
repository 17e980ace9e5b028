//! The dual encoder (dfdx): token embeddings → masked mean pooling → projection → L2
//! normalisation, trained with InfoNCE over in-batch negatives.
//!
//! dfdx fixes tensor sizes at compile time, so model sizes are named presets; everything
//! outside this module sees an encoder only through [`TrainableEncoder`].
//!
//! This file owns the encoder interface ([`TrainableEncoder`], the step's input and losses),
//! the preset names and the optimizer settings. The rooms: `arch` (the preset
//! architectures and their shared encoder), `loss` (InfoNCE + λ·OT through [`crate::ot`]),
//! `clipping` (the global gradient norm), `checkpoint` (a preset's weight file), `device`
//! (where a cell trains, [`DeviceSpec`]), [`kernels`] (fused CPU/GPU operations) and [`bert`]
//! (the pretrained backbone).

use crate::ot::{PlanGradient, SinkhornSettings};
use crate::tokenizer::TokenBatch;
use anyhow::Result;
use arch::build_on;
use clipping::ScaleInPlace;
use dfdx::nn::DeviceBuildExt;
use dfdx::prelude::*;
use dfdx::tensor::TensorToArray;
use kernels::Kernels;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use device::{DeviceError, DeviceSpec, ResolvedDevice, select_blas};
pub use me5_shape::build_me5_shape;

mod arch;
pub mod bert;
mod checkpoint;
mod clipping;
mod device;
pub mod kernels;
mod loss;
mod me5_shape;
pub mod ot;
pub mod tokenizer;

/// What the encoders need of a dfdx device (the CPU, or CUDA with the `cuda` feature).
trait Backend: Device<f32> + DeviceBuildExt + TensorToArray<(), f32, Array = f32> + ScaleInPlace + Kernels {}

impl<D: Device<f32> + DeviceBuildExt + TensorToArray<(), f32, Array = f32> + ScaleInPlace + Kernels> Backend for D {}

/// Named model sizes (`model.preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// vocabulary 4,096, embedding 64, output 64: seconds per cell, for tests and quickstarts.
    #[default]
    Tiny,
    /// vocabulary 16,384, embedding 128, output 128.
    Small,
    /// vocabulary 32,768, embedding 256, output 256.
    Base,
    /// vocabulary 4,096, 2 transformer layers of dim 64 (4 heads, feed-forward 128), ≤ 128 tokens.
    TransformerTiny,
    /// vocabulary 16,384, 2 transformer layers of dim 128 (4 heads, feed-forward 256), ≤ 128 tokens.
    TransformerSmall,
}

impl Preset {
    /// The longest sequence the preset accepts, if bounded (learned positions).
    pub fn max_len(self) -> Option<usize> {
        match self {
            Preset::TransformerTiny | Preset::TransformerSmall => Some(128),
            Preset::Tiny | Preset::Small | Preset::Base => None,
        }
    }

    /// The largest vocabulary the preset's embedding table holds.
    pub fn vocab_size(self) -> usize {
        match self {
            Preset::Tiny | Preset::TransformerTiny => 4096,
            Preset::Small | Preset::TransformerSmall => 16384,
            Preset::Base => 32768,
        }
    }
}

/// Optimizer settings handed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay in the gradient.
    Adam,
    /// Adam with decoupled weight decay.
    #[default]
    Adamw,
}

/// The optimizer of one update: its kind, learning rate and weight decay.
#[derive(Debug, Clone, Copy)]
pub struct OptimizerSettings {
    /// Adam or AdamW.
    pub kind: OptimizerKind,
    /// Learning rate of the step.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

/// An encoder that embeds texts (already tokenized) into L2-normalised vectors.
pub trait Embedder {
    /// Dimension of the embeddings.
    fn dim(&self) -> usize;
    /// One row of `dim()` values per text of the batch.
    fn embed(&self, batch: &TokenBatch) -> Result<Vec<f32>>;
}

/// How the OT cost between a teacher token and a student token is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    /// 1 − cos(teacher token, student token)
    #[default]
    Cosine,
    /// ‖teacher token − student token‖²
    SquaredEuclidean,
}

/// The OT distillation term of one training step: bitext pairs whose English side the
/// teacher has already encoded into token states.
pub struct OtTerm<'a> {
    /// Low-resource sides of the bitext pairs, as the student tokenizes them.
    pub student: &'a TokenBatch,
    /// Teacher token states of the English sides: rows × `teacher_len` × `state_dim()`.
    pub teacher_states: &'a [f32],
    /// 1 for a teacher token, 0 for padding: rows × `teacher_len`.
    pub teacher_mask: &'a [f32],
    /// Tokens per row of the teacher states.
    pub teacher_len: usize,
    /// λ: the OT term's weight at this step.
    pub weight: f64,
    /// The settings of the Sinkhorn solve.
    pub sinkhorn: SinkhornSettings,
    /// The token-to-token cost.
    pub cost: CostKind,
    /// How the gradient treats the transport plan.
    pub gradient: PlanGradient,
}

/// One training step's input.
pub struct StepInput<'a> {
    /// Queries, then their positive passages (rows i and i + n match), then `negatives` hard
    /// negative passages.
    pub batch: &'a TokenBatch,
    /// How many rows at the end of `batch` are hard negatives.
    pub negatives: usize,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// The OT distillation term, when it is on.
    pub ot: Option<OtTerm<'a>>,
    /// Global gradient-norm clipping threshold.
    pub clip_norm: Option<f64>,
}

/// The queries of a training batch of `rows` rows whose last `negatives` are hard negatives:
/// the rest must be at least two query/passage pairs.
fn query_rows(rows: usize, negatives: usize) -> anyhow::Result<usize> {
    let pairs = rows.saturating_sub(negatives);
    anyhow::ensure!(
        pairs >= 4 && pairs.is_multiple_of(2),
        "a training batch needs query/passage halves of at least 2 pairs before its {negatives} hard negatives, \
         found {rows} rows"
    );
    Ok(pairs / 2)
}

/// The losses of one step, before the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLoss {
    /// InfoNCE + λ·OT
    pub total: f64,
    /// The InfoNCE loss.
    pub info_nce: f64,
    /// Mean ⟨P, C⟩ over the bitext pairs, when the OT term is on.
    pub ot: Option<f64>,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// An [`Embedder`] that can be trained one step at a time, and distilled into.
pub trait TrainableEncoder: Embedder {
    /// One optimizer step; a non-finite loss skips the update and is returned as it is.
    fn train_step(&mut self, input: &StepInput) -> Result<StepLoss>;
    /// Sets the learning rate of the following steps (the schedule's value at this step).
    fn set_learning_rate(&mut self, lr: f64);
    /// Token-level states (before pooling), rows × len × `state_dim()`, for OT distillation
    /// (which reads only the real tokens: what padding positions hold is unspecified).
    fn token_states(&self, batch: &TokenBatch) -> Result<Vec<f32>>;
    /// Dimension of the token states.
    fn state_dim(&self) -> usize;
    /// Writes the weights to `path` (safetensors).
    fn save(&self, path: &Path) -> Result<()>;
    /// Reads weights written by [`TrainableEncoder::save`] for the same preset.
    fn load(&mut self, path: &Path) -> Result<()>;
}

/// Builds a freshly initialised encoder of `preset` on `device`, seeded.
pub fn build(
    preset: Preset,
    seed: u64,
    opt: OptimizerSettings,
    device: ResolvedDevice,
) -> Result<Box<dyn TrainableEncoder>> {
    match device {
        ResolvedDevice::Cpu => Ok(build_on(Cpu::seed_from_u64(seed), preset, opt)),
        #[cfg(feature = "cuda")]
        ResolvedDevice::Cuda(ordinal) => {
            let dev =
                Cuda::try_build(ordinal, seed).map_err(|e| anyhow::anyhow!("opening CUDA device {ordinal}: {e:?}"))?;
            Ok(build_on(dev, preset, opt))
        }
    }
}

/// dfdx's `Adam` for a model of type `M`, made `Send` and `Sync` so that a step can run on a
/// worker of rayon's pool ([`kernels::StepRunner`]). `Adam` is neither only because of
/// its `PhantomData<*const M>` marker; what it holds, its step count and two gradient sets
/// (tensors on `D`), is as `Send` and `Sync` as `D`'s buffers.
pub(crate) struct AdamState<M, D: Storage<f32>>(dfdx::optim::Adam<M, f32, D>);

// SAFETY: see the type's comment; the marker holds no pointer, the moments are `Gradients<f32, D>`.
unsafe impl<M, D: Storage<f32>> Send for AdamState<M, D> where Gradients<f32, D>: Send {}
// SAFETY: as for Send; `&Adam` gives only shared access to the same fields.
unsafe impl<M, D: Storage<f32>> Sync for AdamState<M, D> where Gradients<f32, D>: Sync {}

impl<M: TensorCollection<f32, D>, D: Device<f32>> AdamState<M, D> {
    /// Adam (or AdamW, by `cfg`) over `model`'s tensors, with zeroed moments.
    fn new(model: &M, cfg: AdamConfig) -> Self {
        Self(dfdx::optim::Adam::new(model, cfg))
    }
}

impl<M, D: Storage<f32>> std::ops::Deref for AdamState<M, D> {
    type Target = dfdx::optim::Adam<M, f32, D>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<M, D: Storage<f32>> std::ops::DerefMut for AdamState<M, D> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

fn adam_config(opt: OptimizerSettings) -> AdamConfig {
    let weight_decay = match (opt.kind, opt.weight_decay) {
        (_, 0.0) => None,
        (OptimizerKind::Adam, wd) => Some(WeightDecay::L2(wd)),
        (OptimizerKind::Adamw, wd) => Some(WeightDecay::Decoupled(wd)),
    };
    AdamConfig {
        lr: opt.lr,
        weight_decay,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: Vec<usize>, mask: Vec<f32>, rows: usize) -> TokenBatch {
        let len = ids.len() / rows;
        TokenBatch { ids, mask, rows, len }
    }

    fn settings() -> OptimizerSettings {
        OptimizerSettings {
            kind: OptimizerKind::Adamw,
            lr: 1e-2,
            weight_decay: 0.01,
        }
    }

    #[test]
    fn embeddings_are_unit_length_and_ignore_padding() {
        let enc = build(Preset::Tiny, 1, settings(), ResolvedDevice::Cpu).unwrap();
        let a = enc
            .embed(&batch(vec![5, 6, 0, 0], vec![1.0, 1.0, 0.0, 0.0], 1))
            .unwrap();
        let b = enc
            .embed(&batch(vec![5, 6, 9, 9, 9, 9], vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0], 1))
            .unwrap();
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "padding changed the embedding");
        }
    }

    #[test]
    fn transformer_padding_does_not_change_an_embedding() {
        let enc = build(Preset::TransformerTiny, 1, settings(), ResolvedDevice::Cpu).unwrap();
        let short = enc.embed(&batch(vec![5, 6, 7], vec![1.0; 3], 1)).unwrap();
        // The same text padded with different junk ids, alone and beside a longer text.
        let padded = enc
            .embed(&batch(vec![5, 6, 7, 9, 9, 9], vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0], 1))
            .unwrap();
        let in_batch = enc
            .embed(&batch(
                vec![5, 6, 7, 0, 0, 11, 12, 13, 14, 15],
                vec![1., 1., 1., 0., 0., 1., 1., 1., 1., 1.],
                2,
            ))
            .unwrap();
        for i in 0..64 {
            assert!((short[i] - padded[i]).abs() < 1e-5, "padding changed dim {i}");
            assert!((short[i] - in_batch[i]).abs() < 1e-5, "batching changed dim {i}");
        }
        let states = enc.token_states(&batch(vec![5, 6, 7], vec![1.0; 3], 1)).unwrap();
        let padded_states = enc
            .token_states(&batch(vec![5, 6, 7, 9], vec![1.0, 1.0, 1.0, 0.0], 1))
            .unwrap();
        for i in 0..3 * 64 {
            assert!((states[i] - padded_states[i]).abs() < 1e-5);
        }
        // Order matters to a transformer (positions), unlike to mean pooling.
        let reversed = enc.embed(&batch(vec![7, 6, 5], vec![1.0; 3], 1)).unwrap();
        assert!(short.iter().zip(&reversed).any(|(a, b)| (a - b).abs() > 1e-4));
    }

    #[test]
    fn transformer_trains_and_rejects_overlong_input() {
        let mut enc = build(Preset::TransformerTiny, 2, settings(), ResolvedDevice::Cpu).unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.extend([10 + i, 30, 31]);
        }
        for i in 0..4 {
            ids.extend([20 + i, 32, 33]);
        }
        let b = batch(ids, vec![1.0; 24], 8);
        let first = enc.train_step(&step(&b)).unwrap().total;
        let mut last = first;
        for _ in 0..60 {
            last = enc.train_step(&step(&b)).unwrap().total;
        }
        assert!(last < first * 0.5, "loss {first} → {last}");
        let long = batch(vec![1; 200], vec![1.0; 200], 1);
        assert!(enc.embed(&long).unwrap_err().to_string().contains("positions"));
    }

    #[test]
    fn same_seed_same_weights() {
        let b = batch(vec![1, 2, 3, 4], vec![1.0; 4], 2);
        assert_eq!(
            build(Preset::Tiny, 3, settings(), ResolvedDevice::Cpu)
                .unwrap()
                .embed(&b)
                .unwrap(),
            build(Preset::Tiny, 3, settings(), ResolvedDevice::Cpu)
                .unwrap()
                .embed(&b)
                .unwrap()
        );
        assert_ne!(
            build(Preset::Tiny, 3, settings(), ResolvedDevice::Cpu)
                .unwrap()
                .embed(&b)
                .unwrap(),
            build(Preset::Tiny, 4, settings(), ResolvedDevice::Cpu)
                .unwrap()
                .embed(&b)
                .unwrap()
        );
    }

    fn step(batch: &TokenBatch) -> StepInput<'_> {
        StepInput {
            batch,
            negatives: 0,
            temperature: 0.1,
            ot: None,
            clip_norm: None,
        }
    }

    #[test]
    fn info_nce_training_reduces_loss() {
        let mut enc = build(Preset::Tiny, 7, settings(), ResolvedDevice::Cpu).unwrap();
        // Four queries and their passages: ids 10+i ↔ 20+i.
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.extend([10 + i, 30]);
        }
        for i in 0..4 {
            ids.extend([20 + i, 31]);
        }
        let b = batch(ids, vec![1.0; 16], 8);
        let first = enc.train_step(&step(&b)).unwrap().total;
        let mut last = first;
        for _ in 0..50 {
            last = enc.train_step(&step(&b)).unwrap().total;
        }
        assert!(first > 1.0 && last < first * 0.5, "loss {first} → {last}");
    }

    #[test]
    fn hard_negative_rows_join_the_loss_and_leave_at_least_two_pairs() {
        let mut enc = build(Preset::Tiny, 7, settings(), ResolvedDevice::Cpu).unwrap();
        let b = batch(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10], vec![1.0; 10], 5);
        let with = enc
            .train_step(&StepInput {
                negatives: 1,
                ..step(&b)
            })
            .unwrap();
        assert!(with.total.is_finite() && with.grad_norm > 0.0);
        let e = enc
            .train_step(&StepInput {
                negatives: 2,
                ..step(&b)
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2 pairs before its 2 hard negatives"), "{e}");
    }

    #[test]
    fn clipping_reports_the_norm_and_bounds_the_update() {
        let b = batch(vec![1, 2, 3, 4, 5, 6, 7, 8], vec![1.0; 8], 4);
        let mut enc = build(Preset::Tiny, 1, settings(), ResolvedDevice::Cpu).unwrap();
        let free = enc.train_step(&step(&b)).unwrap();
        assert!(free.grad_norm.is_finite() && free.grad_norm > 0.0);
        let mut enc = build(Preset::Tiny, 1, settings(), ResolvedDevice::Cpu).unwrap();
        let clipped = enc
            .train_step(&StepInput {
                clip_norm: Some(1e-3),
                ..step(&b)
            })
            .unwrap();
        // Clipping happens after the norm is measured: the same batch reports the same norm.
        assert!((clipped.grad_norm - free.grad_norm).abs() < 1e-6 * free.grad_norm.max(1.0));
    }

    #[test]
    fn ot_term_pulls_student_tokens_to_the_teacher() {
        let teacher = build(Preset::Tiny, 3, settings(), ResolvedDevice::Cpu).unwrap();
        let mut student = build(Preset::Tiny, 4, settings(), ResolvedDevice::Cpu).unwrap();
        // English ids 40..44 and their "translations" 50..54, two pairs of two tokens each.
        let english = batch(vec![40, 41, 42, 43], vec![1.0; 4], 2);
        let low = batch(vec![50, 51, 52, 53], vec![1.0; 4], 2);
        let states = teacher.token_states(&english).unwrap();
        let nce = batch(vec![1, 2, 3, 4, 5, 6, 7, 8], vec![1.0; 8], 4);
        let mut costs = Vec::new();
        for _ in 0..40 {
            let term = OtTerm {
                student: &low,
                teacher_states: &states,
                teacher_mask: &english.mask,
                teacher_len: 2,
                weight: 10.0,
                sinkhorn: SinkhornSettings {
                    epsilon: 0.05,
                    max_iter: 100,
                    tol: 1e-6,
                },
                cost: CostKind::Cosine,
                gradient: PlanGradient::Unrolled,
            };
            let loss = student
                .train_step(&StepInput {
                    ot: Some(term),
                    ..step(&nce)
                })
                .unwrap();
            assert!((loss.total - loss.info_nce - 10.0 * loss.ot.unwrap()).abs() < 1e-3);
            costs.push(loss.ot.unwrap());
        }
        assert!(costs[39] < costs[0] * 0.5, "OT cost {} → {}", costs[0], costs[39]);
    }

    #[test]
    fn checkpoints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let b = batch(vec![1, 2, 3, 4], vec![1.0; 4], 2);
        let a = build(Preset::Tiny, 1, settings(), ResolvedDevice::Cpu).unwrap();
        a.save(&path).unwrap();
        let mut c = build(Preset::Tiny, 2, settings(), ResolvedDevice::Cpu).unwrap();
        assert_ne!(a.embed(&b).unwrap(), c.embed(&b).unwrap());
        c.load(&path).unwrap();
        assert_eq!(a.embed(&b).unwrap(), c.embed(&b).unwrap());
    }

    #[test]
    fn out_of_vocabulary_ids_are_an_error() {
        let enc = build(Preset::Tiny, 1, settings(), ResolvedDevice::Cpu).unwrap();
        let err = enc.embed(&batch(vec![5000], vec![1.0], 1)).unwrap_err().to_string();
        assert!(err.contains("outside the model's vocabulary"), "{err}");
    }
}
