//! GELU forward and backward on the CPU, elementwise, vectorised, over both threads.

use super::grads::grad_buffers;
use super::simd::{self, fmadd, multiversion};
use super::{values, zeros};
use dfdx::prelude::*;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// x·Φ(x)
    Erf,
    /// x·σ(2u), u = √(2/π)(x + 0.044715x³): the same function as 0.5x(1 + tanh u), written so
    /// that it keeps its relative accuracy for negative x.
    Tanh,
}

const CHUNK: usize = 1 << 14;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const INV_SQRT_2PI: f32 = 0.398_942_3;
const TANH_C: f32 = 0.044_715;

/// (gelu(x), gelu'(x)).
#[inline(always)]
fn value_and_slope<const FMA: bool>(kind: Kind, x: f32) -> (f32, f32) {
    match kind {
        Kind::Erf => {
            let cdf = simd::normal_cdf::<FMA>(x);
            let pdf = INV_SQRT_2PI * simd::exp::<FMA>(-0.5 * x * x);
            (x * cdf, fmadd::<FMA>(x, pdf, cdf))
        }
        Kind::Tanh => {
            let x2 = x * x;
            let u2 = -2.0 * SQRT_2_OVER_PI * fmadd::<FMA>(TANH_C * x, x2, x);
            let denominator = 1.0 + simd::exp::<FMA>(u2);
            let s = 1.0 / denominator;
            let du = 2.0 * SQRT_2_OVER_PI * fmadd::<FMA>(3.0 * TANH_C, x2, 1.0);
            // x / (1 + e), as the GELU forward always rounded it (not x·s).
            (x / denominator, fmadd::<FMA>(x * s * (1.0 - s), du, s))
        }
    }
}

/// gelu(x) alone (no tape to feed): the slope's arithmetic is dead code here, which the
/// inlining removes (one exp per value for erf, not two).
#[inline(always)]
fn value<const FMA: bool>(kind: Kind, x: f32) -> f32 {
    value_and_slope::<FMA>(kind, x).0
}

/// x += bias (per row of bias.len() values, when given), then x = gelu(x) in place, and
/// slope = gelu'(x) when given: the backward then needs one product per value, and the
/// activation's input need not be kept. (Plain zips, one loop per case, so that LLVM
/// vectorises each.)
#[inline(always)]
fn forward_impl<const FMA: bool>(kind: Kind, x: &mut [f32], bias: &[f32], slope: Option<&mut [f32]>) {
    match (slope, bias.is_empty()) {
        (Some(slope), true) => {
            for (x, slope) in x.iter_mut().zip(slope) {
                (*x, *slope) = value_and_slope::<FMA>(kind, *x);
            }
        }
        (Some(slope), false) => {
            let rows = x.chunks_exact_mut(bias.len()).zip(slope.chunks_exact_mut(bias.len()));
            for (x, slope) in rows {
                for ((x, slope), &b) in x.iter_mut().zip(slope).zip(bias) {
                    (*x, *slope) = value_and_slope::<FMA>(kind, *x + b);
                }
            }
        }
        (None, true) => {
            for x in x.iter_mut() {
                *x = value::<FMA>(kind, *x);
            }
        }
        (None, false) => {
            for x in x.chunks_exact_mut(bias.len()) {
                for (x, &b) in x.iter_mut().zip(bias) {
                    *x = value::<FMA>(kind, *x + b);
                }
            }
        }
    }
}

/// dx += dy · slope
#[inline(always)]
fn backward_impl<const FMA: bool>(slope: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((dx, &s), &dy) in dx.iter_mut().zip(slope).zip(dy) {
        *dx = fmadd::<FMA>(dy, s, *dx);
    }
}

multiversion!(fn forward_chunk(kind: Kind, x: &mut [f32], bias: &[f32], slope: Option<&mut [f32]>) = forward_impl);
multiversion!(fn backward_chunk(slope: &[f32], dy: &[f32], dx: &mut [f32]) = backward_impl);

/// x = gelu(x + bias) in place (bias per row of bias.len() values; empty for none), and the
/// slopes gelu'(x + bias) into `slope` when given (same length as x).
pub fn forward(kind: Kind, x: &mut [f32], bias: &[f32], slope: Option<&mut [f32]>) {
    // Whole rows per chunk, so that a chunk starts at a bias row.
    let chunk = if bias.is_empty() {
        CHUNK
    } else {
        CHUNK.div_ceil(bias.len()) * bias.len()
    };
    match slope {
        Some(slope) => x
            .par_chunks_mut(chunk)
            .zip(slope.par_chunks_mut(chunk))
            .for_each(|(x, slope)| forward_chunk(kind, x, bias, Some(slope))),
        None => x.par_chunks_mut(chunk).for_each(|x| forward_chunk(kind, x, bias, None)),
    }
}

/// dy · slope, elementwise, into a new buffer (collected, so never zeroed first).
pub fn backward_new(slope: &[f32], dy: &[f32]) -> Vec<f32> {
    slope.par_iter().zip(dy).map(|(s, d)| d * s).collect()
}

/// dx += dy · slope, elementwise, from the forward's slopes.
pub fn backward(slope: &[f32], dy: &[f32], dx: &mut [f32]) {
    dx.par_chunks_mut(CHUNK)
        .zip(slope.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (slope, dy))| backward_chunk(slope, dy, dx));
}

pub fn gelu<S: Shape, T: Tape<f32, Cpu>>(x: Tensor<S, f32, Cpu, T>, kind: Kind) -> Tensor<S, f32, Cpu, T> {
    let (x, mut tape) = x.split_tape();
    let shape = *x.shape();
    let mut out = values(&x);
    if !T::OWNS_TAPE {
        forward(kind, &mut out, &[], None);
        return x.device().tensor_from_vec(out, shape).put_tape(tape);
    }
    let mut slope = zeros(out.len());
    forward(kind, &mut out, &[], Some(&mut slope));
    let y = x.device().tensor_from_vec(out, shape);
    let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        let [dy, dx] = grad_buffers!(grads, &y_ghost, &x_ghost);
        backward(&slope, dy, dx);
        Ok(())
    });
    y.put_tape(tape)
}
