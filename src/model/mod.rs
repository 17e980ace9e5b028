//! The dual encoder (dfdx): token embeddings → masked mean pooling → projection → L2
//! normalisation, trained with InfoNCE over in-batch negatives.
//!
//! dfdx fixes tensor sizes at compile time, so model sizes are named presets; everything
//! outside this module sees an encoder only through [`TrainableEncoder`].
//!
//! It owns the presets and their architectures, the loss (InfoNCE + λ·OT through
//! [`crate::ot`]), gradient clipping and the optimizer update, the weight files of a
//! checkpoint, and the device a cell trains on ([`DeviceSpec`]).

use crate::ot::{self, PlanGradient, SinkhornSettings};
use crate::tokenizer::TokenBatch;
use anyhow::{Context, Result};
use dfdx::nn::DeviceBuildExt;
use dfdx::nn::tensor_collection::{RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef};
use dfdx::optim::Adam;
use dfdx::prelude::*;
use dfdx::tensor::{Storage, TensorToArray};
use kernels::Kernels;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use device::{DeviceError, DeviceSpec, ResolvedDevice};
pub use me5_shape::build_me5_shape;

pub mod bert;
mod device;
pub mod kernels;
mod me5_shape;

/// What the encoders need of a dfdx device (the CPU, or CUDA with the `cuda` feature).
trait Backend: Device<f32> + DeviceBuildExt + TensorToArray<(), f32, Array = f32> + ScaleInPlace + Kernels {}

impl<D: Device<f32> + DeviceBuildExt + TensorToArray<(), f32, Array = f32> + ScaleInPlace + Kernels> Backend for D {}

/// Scaling a gradient buffer in place, for clipping: dfdx has no public operation on a
/// gradient's own storage.
trait ScaleInPlace: Storage<f32> {
    fn scale_in_place(buf: &mut Self::Vec, factor: f32) -> Result<()>;
}

impl ScaleInPlace for Cpu {
    fn scale_in_place(buf: &mut Self::Vec, factor: f32) -> Result<()> {
        buf.iter_mut().for_each(|v| *v *= factor);
        Ok(())
    }
}

/// Through the host: clipping is rare enough (only steps over the threshold) that the copy is
/// cheaper than a kernel of our own.
#[cfg(feature = "cuda")]
impl ScaleInPlace for Cuda {
    fn scale_in_place(buf: &mut Self::Vec, factor: f32) -> Result<()> {
        let dev = buf.device();
        let mut host = dev
            .dtoh_sync_copy(&**buf)
            .map_err(|e| anyhow::anyhow!("gradient to host: {e:?}"))?;
        host.iter_mut().for_each(|v| *v *= factor);
        dev.htod_sync_copy_into(&host, &mut **buf)
            .map_err(|e| anyhow::anyhow!("gradient to device: {e:?}"))
    }
}

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
    /// Queries then their positive passages (rows i and i + n/2 match).
    pub batch: &'a TokenBatch,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// The OT distillation term, when it is on.
    pub ot: Option<OtTerm<'a>>,
    /// Global gradient-norm clipping threshold.
    pub clip_norm: Option<f64>,
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
    /// Token-level states (before pooling), rows × len × `state_dim()`, for OT distillation.
    fn token_states(&self, batch: &TokenBatch) -> Result<Vec<f32>>;
    /// Dimension of the token states.
    fn state_dim(&self) -> usize;
    /// Writes the weights to `path` (safetensors).
    fn save(&self, path: &Path) -> Result<()>;
    /// Reads weights written by [`TrainableEncoder::save`] for the same preset.
    fn load(&mut self, path: &Path) -> Result<()>;
}

/// Token ids and the padding mask of a batch, as tensors.
type Inputs<D> = (Tensor<(usize, usize), usize, D>, Tensor<(usize, usize), f32, D>);

/// An encoder architecture: token states (rows × len × M) from ids and mask, and the
/// projection of pooled states to the output dimension P. Pooling, normalisation, losses and
/// optimisation are shared by every architecture (see [`Encoder`]).
trait Arch<const M: usize, const P: usize>: 'static {
    type Built<D: Backend>: TensorCollection<f32, D>;
    const VOCAB: usize;
    /// Longest sequence the architecture accepts (position table size), if bounded.
    const MAX_LEN: Option<usize>;
    fn build<D: Backend>(dev: &D) -> Self::Built<D>;
    fn states<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        ids: Tensor<(usize, usize), usize, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, usize, Const<M>), f32, D, T>;
    fn project<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        pooled: Tensor<(usize, Const<M>), f32, D, T>,
    ) -> Tensor<(usize, Const<P>), f32, D, T>;
}

/// Token embeddings only: the mean of a text's token embeddings, projected.
struct MeanPool<const V: usize>;

impl<const V: usize, const M: usize, const P: usize> Arch<M, P> for MeanPool<V> {
    type Built<D: Backend> = <(Embedding<V, M>, Linear<M, P>) as BuildOnDevice<D, f32>>::Built;
    const VOCAB: usize = V;
    const MAX_LEN: Option<usize> = None;

    fn build<D: Backend>(dev: &D) -> Self::Built<D> {
        dev.build_module::<(Embedding<V, M>, Linear<M, P>), f32>()
    }

    fn states<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        ids: Tensor<(usize, usize), usize, D, T>,
        _mask: &Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, usize, Const<M>), f32, D, T> {
        model.0.forward(ids)
    }

    fn project<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        pooled: Tensor<(usize, Const<M>), f32, D, T>,
    ) -> Tensor<(usize, Const<P>), f32, D, T> {
        model.1.forward(pooled)
    }
}

/// A pre-norm transformer layer: masked multi-head self-attention, then a GELU feed-forward.
type Layer<const M: usize, const F: usize> = (
    (LayerNorm1D<M>, Linear<M, M>, Linear<M, M>, Linear<M, M>, Linear<M, M>),
    (LayerNorm1D<M>, Linear<M, F>, Linear<F, M>),
);
type TransformerModules<
    const V: usize,
    const M: usize,
    const P: usize,
    const F: usize,
    const L: usize,
    const S: usize,
> = (
    Embedding<V, M>,
    Embedding<S, M>,
    Repeated<Layer<M, F>, L>,
    LayerNorm1D<M>,
    Linear<M, P>,
);

/// Token and learned position embeddings, L transformer layers with H heads of DH dims
/// (M = H·DH) whose attention ignores padded keys, a final layer norm. dfdx's own
/// multi-head attention has no padding mask, hence this one.
struct Transformer<const V: usize, const H: usize, const DH: usize, const F: usize, const L: usize, const S: usize>;

impl<
    const V: usize,
    const M: usize,
    const P: usize,
    const H: usize,
    const DH: usize,
    const F: usize,
    const L: usize,
    const S: usize,
> Arch<M, P> for Transformer<V, H, DH, F, L, S>
{
    type Built<D: Backend> = <TransformerModules<V, M, P, F, L, S> as BuildOnDevice<D, f32>>::Built;
    const VOCAB: usize = V;
    const MAX_LEN: Option<usize> = Some(S);

    fn build<D: Backend>(dev: &D) -> Self::Built<D> {
        assert_eq!(
            H * DH,
            M,
            "transformer preset: heads × head dim must equal the model dim"
        );
        dev.build_module::<TransformerModules<V, M, P, F, L, S>, f32>()
    }

    fn states<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        ids: Tensor<(usize, usize), usize, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, usize, Const<M>), f32, D, T> {
        let (rows, len) = *mask.shape();
        let dev = mask.device().clone();
        let positions: Vec<usize> = (0..rows).flat_map(|_| 0..len).collect();
        let positions = dev.tensor_from_vec(positions, (rows, len));
        let tokens = model.0.forward(ids);
        let mut x = model.1.forward(positions.put_tape(T::default())) + tokens;
        for ((norm1, wq, wk, wv, wo), (norm2, ff1, ff2)) in &model.2.modules {
            let h = D::layer_norm(norm1, x.with_empty_tape());
            let q = D::linear(wq, h.with_empty_tape());
            let k = D::linear(wk, h.with_empty_tape());
            let v = D::linear(wv, h);
            let mixed = D::masked_attention(q, k, v, mask, H);
            x = D::linear(wo, mixed) + x;
            let h = D::linear_gelu_tanh(ff1, D::layer_norm(norm2, x.with_empty_tape()));
            x = D::linear(ff2, h) + x;
        }
        D::layer_norm(&model.3, x)
    }

    fn project<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        pooled: Tensor<(usize, Const<M>), f32, D, T>,
    ) -> Tensor<(usize, Const<P>), f32, D, T> {
        model.4.forward(pooled)
    }
}

/// An encoder of architecture `A`, with its optimizer state.
struct Encoder<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> {
    dev: D,
    model: A::Built<D>,
    grads: Option<Gradients<f32, D>>,
    opt: Adam<A::Built<D>, f32, D>,
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

fn build_on<D: Backend>(dev: D, preset: Preset, opt: OptimizerSettings) -> Box<dyn TrainableEncoder> {
    match preset {
        Preset::Tiny => Box::new(Encoder::<MeanPool<4096>, D, 64, 64>::new(dev, opt)),
        Preset::Small => Box::new(Encoder::<MeanPool<16384>, D, 128, 128>::new(dev, opt)),
        Preset::Base => Box::new(Encoder::<MeanPool<32768>, D, 256, 256>::new(dev, opt)),
        Preset::TransformerTiny => Box::new(Encoder::<Transformer<4096, 4, 16, 128, 2, 128>, D, 64, 64>::new(
            dev, opt,
        )),
        Preset::TransformerSmall => Box::new(Encoder::<Transformer<16384, 4, 32, 256, 2, 128>, D, 128, 128>::new(
            dev, opt,
        )),
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

impl<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> Encoder<A, D, M, P> {
    fn new(dev: D, opt: OptimizerSettings) -> Self {
        let model = A::build(&dev);
        let grads = Some(model.alloc_grads());
        let opt = Adam::new(&model, adam_config(opt));
        Self { dev, model, grads, opt }
    }

    fn inputs(&self, batch: &TokenBatch) -> Result<Inputs<D>> {
        if let Some(bad) = batch.ids.iter().find(|id| **id >= A::VOCAB) {
            anyhow::bail!(
                "token id {bad} is outside the model's vocabulary of {}: the tokenizer is larger than the preset",
                A::VOCAB
            );
        }
        if let Some(max) = A::MAX_LEN {
            anyhow::ensure!(
                batch.len <= max,
                "sequences of {} tokens exceed the preset's {max} positions (lower model.max_len)",
                batch.len
            );
        }
        let shape = (batch.rows, batch.len);
        Ok((
            self.dev.tensor_from_vec(batch.ids.clone(), shape),
            self.dev.tensor_from_vec(batch.mask.clone(), shape),
        ))
    }

    /// Masked mean pooling of the token states, projection and L2 normalisation.
    fn encode<T: Tape<f32, D>>(
        &self,
        ids: Tensor<(usize, usize), usize, D, T>,
        mask: Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, Const<P>), f32, D, T> {
        let (rows, len) = *mask.shape();
        let tokens = A::states(&self.model, ids, &mask);
        let spread = mask.clone().broadcast_like::<_, Axis<2>>(&(rows, len, Const::<M>));
        let summed = (tokens * spread).sum::<(usize, Const<M>), Axis<1>>();
        let counts = mask
            .sum::<(usize,), Axis<1>>()
            .broadcast_like::<_, Axis<1>>(&(rows, Const::<M>));
        let projected = A::project(&self.model, summed / counts);
        let norms = (projected.with_empty_tape().square().sum::<(usize,), Axis<1>>() + 1e-12)
            .sqrt()
            .broadcast_like::<_, Axis<1>>(&(rows, Const::<P>));
        projected / norms
    }
}

/// L2 normalisation along the last axis of a (rows, cols, D) tensor.
fn normalize_tokens<const N: usize, D: Backend, T: Tape<f32, D>>(
    x: Tensor<(usize, usize, Const<N>), f32, D, T>,
) -> Tensor<(usize, usize, Const<N>), f32, D, T> {
    let shape = *x.shape();
    let norms = (x.with_empty_tape().square().sum::<(usize, usize), Axis<2>>() + 1e-12)
        .sqrt()
        .broadcast_like::<_, Axis<2>>(&shape);
    x / norms
}

/// InfoNCE over in-batch negatives: rows `0..half` are queries, rows `half..2·half` their
/// positive passages; every other passage of the batch is a negative.
fn info_nce_loss<const P: usize, D: Backend, T: Tape<f32, D>>(
    dev: &D,
    all: Tensor<(usize, Const<P>), f32, D, T>,
    half: usize,
    temperature: f64,
) -> Tensor<Rank0, f32, D, T> {
    let queries = all.with_empty_tape().slice((0..half, ..));
    let passages = all.slice((half..2 * half, ..));
    let logits = queries.matmul(passages.permute::<_, Axes2<1, 0>>()) * (1.0 / temperature as f32);
    let mut targets = vec![0.0f32; half * half];
    for i in 0..half {
        targets[i * half + i] = 1.0;
    }
    cross_entropy_with_logits_loss(logits, dev.tensor_from_vec(targets, (half, half)))
}

/// The OT distillation term in the graph: λ·Σ G ⊙ C, whose gradient carries ∂⟨P, C⟩/∂C into
/// the student's token states (d/dC of Σ G ⊙ C is G), and the mean transport cost ⟨P, C⟩.
/// Rows of C are student tokens, columns teacher tokens: the taped operand goes first.
fn ot_surrogate<const M: usize, D: Backend, T: Tape<f32, D>>(
    dev: &D,
    student: Tensor<(usize, usize, Const<M>), f32, D, T>,
    student_mask: &[f32],
    term: &OtTerm,
) -> Result<(Tensor<Rank0, f32, D, T>, f64)> {
    let (pairs, s_len, _) = *student.shape();
    anyhow::ensure!(
        term.teacher_states.len() == pairs * term.teacher_len * M,
        "teacher states do not match the bitext batch"
    );
    let teacher = dev.tensor_from_vec(term.teacher_states.to_vec(), (pairs, term.teacher_len, Const::<M>));
    let cost = match term.cost {
        CostKind::Cosine => {
            let teacher = normalize_tokens(teacher);
            let sim = normalize_tokens(student).matmul(teacher.permute::<_, Axes3<0, 2, 1>>());
            sim.negate() + 1.0
        }
        CostKind::SquaredEuclidean => {
            let shape = (pairs, s_len, term.teacher_len);
            let ss = student
                .with_empty_tape()
                .square()
                .sum::<(usize, usize), Axis<2>>()
                .broadcast_like::<_, Axis<2>>(&shape);
            let tt = teacher
                .clone()
                .square()
                .sum::<(usize, usize), Axis<2>>()
                .broadcast_like::<_, Axis<1>>(&shape);
            let cross = student.matmul(teacher.permute::<_, Axes3<0, 2, 1>>());
            ss + tt - cross * 2.0
        }
    };
    let (value, grad) = transport_batch(
        &cost.as_vec(),
        pairs,
        s_len,
        term.teacher_len,
        student_mask,
        term.teacher_mask,
        term,
    )?;
    let grad = dev.tensor_from_vec(grad, (pairs, s_len, term.teacher_len));
    Ok(((cost * grad).sum::<Rank0, _>() * term.weight as f32, value))
}

/// Solves OT for every pair on its unpadded block of `cost` (pairs × r_len × c_len, rows
/// and columns masked by `row_mask` and `col_mask`) and returns the mean transport cost and
/// ∂(mean cost)/∂cost.
fn transport_batch(
    cost: &[f32],
    pairs: usize,
    r_len: usize,
    c_len: usize,
    row_mask: &[f32],
    col_mask: &[f32],
    term: &OtTerm,
) -> Result<(f64, Vec<f32>)> {
    let mut grad = vec![0.0f32; cost.len()];
    let mut total = 0.0;
    for b in 0..pairs {
        let n = row_mask[b * r_len..(b + 1) * r_len]
            .iter()
            .filter(|m| **m > 0.0)
            .count();
        let m = col_mask[b * c_len..(b + 1) * c_len]
            .iter()
            .filter(|m| **m > 0.0)
            .count();
        anyhow::ensure!(n > 0 && m > 0, "a bitext pair has an empty side");
        let block: Vec<f64> = (0..n)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| f64::from(cost[(b * r_len + i) * c_len + j]))
            .collect();
        anyhow::ensure!(
            block.iter().all(|c| c.is_finite()),
            "non-finite OT cost (diverged token states)"
        );
        let t = ot::sinkhorn(&block, n, m, term.sinkhorn, term.gradient);
        total += t.cost;
        for i in 0..n {
            for j in 0..m {
                grad[(b * r_len + i) * c_len + j] = (t.grad[i * m + j] / pairs as f64) as f32;
            }
        }
    }
    Ok((total / pairs as f64, grad))
}

/// Sum of squared gradient entries of every trainable tensor, and their in-place scaling.
/// Both run as tensor operations, so they stay on the device.
struct GradNorm<'a, D: Backend> {
    grads: &'a mut Gradients<f32, D>,
    scale: Option<f32>,
    sum_sq: f64,
    /// A scaling error (the visitor's own error type is the device's).
    failure: Option<anyhow::Error>,
}

impl<D: Backend> TensorVisitor<f32, D> for GradNorm<'_, D> {
    type Viewer = ViewTensorRef;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        t: &Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        self.grads.try_alloc_for(t)?;
        match self.scale {
            None => {
                let flat = self.grads.get(t).reshape_like(&(t.shape().num_elements(),));
                self.sum_sq += f64::from(flat.try_square()?.try_sum::<Rank0, _>()?.array());
            }
            Some(factor) => {
                if let Err(e) = D::scale_in_place(self.grads.get_or_alloc_mut(t)?, factor) {
                    self.failure = Some(e);
                }
            }
        }
        Ok(None)
    }
}

/// Global gradient norm; scales the gradients down to `clip` when it is exceeded.
fn clip_gradients<D: Backend, M: TensorCollection<f32, D>>(
    model: &M,
    grads: &mut Gradients<f32, D>,
    clip: Option<f64>,
) -> Result<f64> {
    let mut op = GradNorm {
        grads,
        scale: None,
        sum_sq: 0.0,
        failure: None,
    };
    M::iter_tensors(&mut RecursiveWalker { m: model, f: &mut op }).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let norm = op.sum_sq.sqrt();
    if let Some(max) = clip
        && norm > max
    {
        op.scale = Some((max / norm) as f32);
        M::iter_tensors(&mut RecursiveWalker { m: model, f: &mut op }).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if let Some(e) = op.failure {
            return Err(e);
        }
    }
    Ok(norm)
}

impl<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> Embedder for Encoder<A, D, M, P> {
    fn dim(&self) -> usize {
        P
    }

    fn embed(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        let (ids, mask) = self.inputs(batch)?;
        Ok(self.encode(ids, mask).as_vec())
    }
}

impl<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> TrainableEncoder for Encoder<A, D, M, P> {
    fn train_step(&mut self, input: &StepInput) -> Result<StepLoss> {
        let batch = input.batch;
        anyhow::ensure!(
            batch.rows >= 4 && batch.rows.is_multiple_of(2),
            "a training batch needs query/passage halves"
        );
        let half = batch.rows / 2;
        let (ids, mask) = self.inputs(batch)?;
        let grads = self.grads.take().context("gradients in use")?;
        let all = self.encode(ids.traced(grads), mask);
        let nce = info_nce_loss(&self.dev, all, half, input.temperature);
        let info_nce = f64::from(nce.array());

        let (loss, ot_value) = match &input.ot {
            None => (nce, None),
            Some(term) => {
                let (s_ids, s_mask) = self.inputs(term.student)?;
                // Student token states join the same graph through a second, merged tape.
                let student = A::states(&self.model, s_ids.leaky_traced(), &s_mask);
                let (surrogate, value) = ot_surrogate(&self.dev, student, &s_mask.as_vec(), term)?;
                (nce + surrogate, Some(value))
            }
        };
        let total = info_nce
            + ot_value
                .map(|v| v * input.ot.as_ref().map(|t| t.weight).unwrap_or(0.0))
                .unwrap_or(0.0);
        let mut grads = loss.backward();
        let grad_norm = clip_gradients(&self.model, &mut grads, input.clip_norm)?;
        if total.is_finite() && grad_norm.is_finite() {
            self.opt
                .update(&mut self.model, &grads)
                .map_err(|e| anyhow::anyhow!("optimizer update: {e:?}"))?;
        }
        self.model.zero_grads(&mut grads);
        self.grads = Some(grads);
        Ok(StepLoss {
            total,
            info_nce,
            ot: ot_value,
            grad_norm,
        })
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.opt.cfg.lr = lr;
    }

    fn token_states(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        let (ids, mask) = self.inputs(batch)?;
        Ok(A::states(&self.model, ids, &mask).as_vec())
    }

    fn state_dim(&self) -> usize {
        M
    }

    fn save(&self, path: &Path) -> Result<()> {
        crate::util::fs::write_atomic_with(path, ".safetensors", |tmp| {
            self.model
                .save_safetensors(tmp)
                .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))
        })
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        self.model
            .load_safetensors(path)
            .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", path.display()))
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
