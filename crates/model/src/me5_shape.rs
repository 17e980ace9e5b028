//! A benchmark-only encoder of multilingual-E5-small's shape: post-LN BERT layers,
//! 12 × 384 wide, 12 heads of 32, feed-forward 1536 with erf GELU, LayerNorm ε = 1e-12,
//! learned positions (512), a key-padding mask. The token table is cut to 16,384 rows (the
//! real model's 250k rows would make the step an embedding-and-Adam benchmark); it has the
//! same projection head as the presets, so that the shared pooling, loss and optimiser apply.
//! Not a preset: `build_me5_shape` is for `examples/throughput.rs` and the profiles.

use super::arch::{Arch, Encoder};
use super::{Backend, OptimizerSettings, TrainableEncoder};
use dfdx::prelude::*;

type PostLnLayer<const M: usize, const F: usize> = (
    (Linear<M, M>, Linear<M, M>, Linear<M, M>, Linear<M, M>, LayerNorm1D<M>),
    (Linear<M, F>, Linear<F, M>, LayerNorm1D<M>),
);
type Modules<const V: usize, const M: usize, const F: usize, const L: usize, const S: usize> = (
    Embedding<V, M>,
    Embedding<S, M>,
    LayerNorm1D<M>,
    Repeated<PostLnLayer<M, F>, L>,
    Linear<M, M>,
);

const VOCAB: usize = 16384;
const DIM: usize = 384;
const HEADS: usize = 12;
const FF: usize = 1536;
const LAYERS: usize = 12;
const POSITIONS: usize = 512;
const EPS: f64 = 1e-12;

/// me5-small's layers, built from [`super::kernels`] (`CLIRLAB_KERNELS=reference` runs them
/// as plain dfdx compositions: the "before" of the benchmark).
pub(super) struct PostLn;

type Built<D> = <Modules<VOCAB, DIM, FF, LAYERS, POSITIONS> as BuildOnDevice<D, f32>>::Built;

impl Arch<DIM, DIM> for PostLn {
    type Built<D: Backend> = Built<D>;
    const VOCAB: usize = VOCAB;
    const MAX_LEN: Option<usize> = Some(POSITIONS);

    fn build<D: Backend>(dev: &D) -> Self::Built<D> {
        let mut m = dev.build_module::<Modules<VOCAB, DIM, FF, LAYERS, POSITIONS>, f32>();
        m.2.epsilon = EPS;
        for ((.., n1), (.., n2)) in &mut m.3.modules {
            n1.epsilon = EPS;
            n2.epsilon = EPS;
        }
        m
    }

    fn states<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        ids: Tensor<(usize, usize), usize, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, usize, Const<DIM>), f32, D, T> {
        let (rows, len) = *mask.shape();
        let dev = mask.device().clone();
        let positions: Vec<usize> = (0..rows).flat_map(|_| 0..len).collect();
        let positions = dev.tensor_from_vec(positions, (rows, len));
        let tokens = model.0.forward(ids);
        let x = model.1.forward(positions.put_tape(T::default())) + tokens;
        let mut x = D::layer_norm(&model.2, x);
        for ((wq, wk, wv, wo, n1), (ff1, ff2, n2)) in &model.3.modules {
            let a = D::self_attention([wq, wk, wv], x.with_empty_tape(), mask, HEADS);
            x = D::layer_norm(n1, D::linear_residual(wo, a, x));
            let h = D::linear_gelu_erf(ff1, x.with_empty_tape());
            x = D::layer_norm(n2, D::linear_residual(ff2, h, x));
        }
        x
    }

    fn project<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        pooled: Tensor<(usize, Const<DIM>), f32, D, T>,
    ) -> Tensor<(usize, Const<DIM>), f32, D, T> {
        model.4.forward(pooled)
    }
}

/// The me5-small-shaped encoder on the CPU, seeded.
pub fn build_me5_shape(seed: u64, opt: OptimizerSettings) -> Box<dyn TrainableEncoder> {
    Box::new(Encoder::<PostLn, Cpu, DIM, DIM>::new(Cpu::seed_from_u64(seed), opt))
}
