//! A benchmark-only encoder of multilingual-E5-small's shape: post-LN BERT layers,
//! 12 × 384 wide, 12 heads of 32, feed-forward 1536 with erf GELU, LayerNorm ε = 1e-12,
//! learned positions (512) and token type 0, a key-padding mask: the modules and forward pass
//! of [`super::bert`], so that what is measured is what trains. The token table is cut to
//! 16,384 rows (the real model's 250k rows would make the step an embedding-and-Adam
//! benchmark); it has the same projection head as the presets, so that the shared pooling,
//! loss and optimiser apply. Not a preset: `build_me5_shape` is for `benchmarks/programs/throughput.rs`
//! and the profiles.

use super::arch::{Arch, Encoder};
use super::bert::Stack;
use super::{Backend, OptimizerSettings, TrainableEncoder};
use dfdx::prelude::*;

const VOCAB: usize = 16384;
const DIM: usize = 384;
const HEADS: usize = 12;
const FF: usize = 1536;
const LAYERS: usize = 12;
const POSITIONS: usize = 512;
const EPS: f64 = 1e-12;

/// me5-small's layers: the BERT encoder's own modules and forward pass (its fused
/// [`super::kernels`]; `CLIRLAB_KERNELS=reference` runs them as plain dfdx compositions, the
/// "before" of the benchmark), and a projection head.
pub(super) struct PostLn;

impl Arch<DIM, DIM> for PostLn {
    type Built<D: Backend> = (
        Stack<VOCAB, POSITIONS, DIM, FF, LAYERS, f32, D>,
        dfdx::nn::modules::Linear<DIM, DIM, f32, D>,
    );
    const VOCAB: usize = VOCAB;
    const MAX_LEN: Option<usize> = Some(POSITIONS);

    fn build<D: Backend>(dev: &D) -> Self::Built<D> {
        (Stack::new(dev), dev.build_module::<Linear<DIM, DIM>, f32>())
    }

    fn states<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        ids: Tensor<(usize, usize), usize, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, usize, Const<DIM>), f32, D, T> {
        model.0.states::<HEADS, T>(ids, mask, EPS)
    }

    fn project<D: Backend, T: Tape<f32, D>>(
        model: &Self::Built<D>,
        pooled: Tensor<(usize, Const<DIM>), f32, D, T>,
    ) -> Tensor<(usize, Const<DIM>), f32, D, T> {
        model.1.forward(pooled)
    }
}

/// The me5-small-shaped encoder on the CPU, seeded.
pub fn build_me5_shape(seed: u64, opt: OptimizerSettings) -> Box<dyn TrainableEncoder> {
    Box::new(Encoder::<PostLn, Cpu, DIM, DIM>::new(Cpu::seed_from_u64(seed), opt))
}
