//! The preset architectures (mean-pooled embeddings, a small pre-LN transformer) and the
//! [`Encoder`] that gives any of them pooling, normalisation, the loss, clipping and the
//! optimizer step behind [`TrainableEncoder`].

use super::clipping::clip_gradients;
use super::kernels::StepRunner;
use super::loss::{info_nce_loss, ot_surrogate};
use super::{
    AdamState, Backend, Embedder, OptimizerSettings, Preset, StepInput, StepLoss, TrainableEncoder, adam_config,
    checkpoint,
};
use crate::tokenizer::TokenBatch;
use anyhow::{Context, Result};
use dfdx::prelude::*;
use std::path::Path;

/// Token ids and the padding mask of a batch, as tensors.
pub(super) type Inputs<D> = (Tensor<(usize, usize), usize, D>, Tensor<(usize, usize), f32, D>);

/// An encoder architecture: token states (rows × len × M) from ids and mask, and the
/// projection of pooled states to the output dimension P. Pooling, normalisation, losses and
/// optimisation are shared by every architecture (see [`Encoder`]).
pub(super) trait Arch<const M: usize, const P: usize>: 'static {
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
pub(super) struct MeanPool<const V: usize>;

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
pub(super) struct Transformer<
    const V: usize,
    const H: usize,
    const DH: usize,
    const F: usize,
    const L: usize,
    const S: usize,
>;

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
        let mut x = D::embed_with_positions(&model.0, &model.1, ids);
        for ((norm1, wq, wk, wv, wo), (norm2, ff1, ff2)) in &model.2.modules {
            let h = D::layer_norm(norm1, x.with_empty_tape());
            let mixed = D::self_attention([wq, wk, wv], h, mask, H);
            x = D::linear_residual(wo, mixed, x);
            let h = D::linear_gelu_tanh(ff1, D::layer_norm(norm2, x.with_empty_tape()));
            x = D::linear_residual(ff2, h, x);
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
pub(super) struct Encoder<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> {
    dev: D,
    model: A::Built<D>,
    grads: Option<Gradients<f32, D>>,
    opt: AdamState<A::Built<D>, D>,
}

/// The preset's encoder on `dev` (each of them runs its steps as `D` does: the bounds).
pub(super) fn build_on<D: Backend>(dev: D, preset: Preset, opt: OptimizerSettings) -> Box<dyn TrainableEncoder>
where
    Encoder<MeanPool<4096>, D, 64, 64>: StepRunner<D>,
    Encoder<MeanPool<16384>, D, 128, 128>: StepRunner<D>,
    Encoder<MeanPool<32768>, D, 256, 256>: StepRunner<D>,
    Encoder<Transformer<4096, 4, 16, 128, 2, 128>, D, 64, 64>: StepRunner<D>,
    Encoder<Transformer<16384, 4, 32, 256, 2, 128>, D, 128, 128>: StepRunner<D>,
{
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

impl<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> Encoder<A, D, M, P> {
    pub(super) fn new(dev: D, opt: OptimizerSettings) -> Self {
        let model = A::build(&dev);
        let grads = Some(model.alloc_grads());
        let opt = AdamState::new(&model, adam_config(opt));
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

    /// One optimizer step (the body of [`TrainableEncoder::train_step`]).
    fn step(&mut self, input: &StepInput) -> Result<StepLoss> {
        let batch = input.batch;
        let half = super::query_rows(batch.rows, input.negatives)?;
        let (ids, mask) = self.inputs(batch)?;
        let grads = self.grads.take().context("gradients in use")?;
        let all = self.encode(ids.traced(grads), mask);
        let nce = info_nce_loss(&self.dev, all, half, input.negatives, input.temperature);
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

impl<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> Embedder for Encoder<A, D, M, P>
where
    Self: StepRunner<D>,
{
    fn dim(&self) -> usize {
        P
    }

    fn embed(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        <Self as StepRunner<D>>::run_forward(self, |this| {
            let (ids, mask) = this.inputs(batch)?;
            Ok(this.encode(ids, mask).as_vec())
        })
    }
}

impl<A: Arch<M, P>, D: Backend, const M: usize, const P: usize> TrainableEncoder for Encoder<A, D, M, P>
where
    Self: StepRunner<D>,
{
    fn train_step(&mut self, input: &StepInput) -> Result<StepLoss> {
        <Self as StepRunner<D>>::run_step(self, |this| this.step(input))
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.opt.cfg.lr = lr;
    }

    fn token_states(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        <Self as StepRunner<D>>::run_forward(self, |this| {
            let (ids, mask) = this.inputs(batch)?;
            Ok(A::states(&this.model, ids, &mask).as_vec())
        })
    }

    fn state_dim(&self) -> usize {
        M
    }

    fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save_weights(&self.model, path)
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        checkpoint::load_weights(&mut self.model, path)
    }
}
