//! The plain dfdx compositions the fused kernels replace: the parity baseline of the tests and
//! the path of devices without kernels of their own.

use super::States;
use dfdx::nn::modules::{Embedding, LayerNorm1D, Linear};
use dfdx::prelude::*;

/// Token embeddings plus learned position embeddings (position t of every row), as two
/// dfdx gathers and a broadcast-free sum: `positions[t] + tokens[ids[r, t]]`.
pub fn embed_with_positions<const V: usize, const S: usize, const M: usize, D: Device<f32>, T: Tape<f32, D>>(
    tokens: &Embedding<V, M, f32, D>,
    positions: &Embedding<S, M, f32, D>,
    ids: Tensor<(usize, usize), usize, D, T>,
) -> States<M, D, T> {
    let (rows, len) = *ids.shape();
    let at: Vec<usize> = (0..rows).flat_map(|_| 0..len).collect();
    let at = ids.device().tensor_from_vec(at, (rows, len));
    let token_part = tokens.forward(ids);
    positions.forward(at.put_tape(T::default())) + token_part
}

/// Layer norm over the last axis, as dfdx's `LayerNorm1D` computes it.
pub fn layer_norm<const M: usize, D: Device<f32>, T: Tape<f32, D>>(
    norm: &LayerNorm1D<M, f32, D>,
    x: States<M, D, T>,
) -> States<M, D, T> {
    norm.forward(x)
}

/// GELU with the exact erf formula.
pub fn gelu_erf<S: Shape, D: Device<f32>, T: Tape<f32, D>>(x: Tensor<S, f32, D, T>) -> Tensor<S, f32, D, T> {
    x.accurate_gelu()
}

/// GELU with the tanh approximation.
pub fn gelu_tanh<S: Shape, D: Device<f32>, T: Tape<f32, D>>(x: Tensor<S, f32, D, T>) -> Tensor<S, f32, D, T> {
    x.fast_gelu()
}

/// 4-d permutes, a broadcast bias, softmax and two batched products (the original
/// `Transformer` forward).
pub fn masked_attention<const M: usize, D: Device<f32>, T: Tape<f32, D>>(
    q: States<M, D, T>,
    k: States<M, D, T>,
    v: States<M, D, T>,
    key_mask: &Tensor<(usize, usize), f32, D>,
    heads: usize,
) -> States<M, D, T> {
    let (rows, len, _) = *q.shape();
    assert_eq!(M % heads, 0, "heads must divide the model dim");
    let dh = M / heads;
    let shape = (rows, len, heads, dh);
    let key_bias = (key_mask.clone() - 1.0) * 1e9;
    let q = q.reshape_like(&shape).permute::<_, Axes4<0, 2, 1, 3>>();
    let k = k.reshape_like(&shape).permute::<_, Axes4<0, 2, 3, 1>>();
    let v = v.reshape_like(&shape).permute::<_, Axes4<0, 2, 1, 3>>();
    let scores = q.matmul(k) * (1.0 / (dh as f32).sqrt());
    let bias = key_bias.broadcast_like::<_, Axes2<1, 2>>(scores.shape());
    let attention = (scores + bias).softmax::<Axis<3>>();
    attention
        .matmul(v)
        .permute::<_, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(rows, len, Const::<M>))
}

/// dfdx's 3-d `Linear` forward (one product per row).
pub fn linear<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    lin: &Linear<I, O, f32, D>,
    x: States<I, D, T>,
) -> States<O, D, T> {
    lin.forward(x)
}

/// Three `linear` projections of x, then `masked_attention`.
pub fn self_attention<const M: usize, D: Device<f32>, T: Tape<f32, D>>(
    [wq, wk, wv]: [&Linear<M, M, f32, D>; 3],
    x: States<M, D, T>,
    key_mask: &Tensor<(usize, usize), f32, D>,
    heads: usize,
) -> States<M, D, T> {
    let q = linear(wq, x.with_empty_tape());
    let k = linear(wk, x.with_empty_tape());
    masked_attention(q, k, linear(wv, x), key_mask, heads)
}
