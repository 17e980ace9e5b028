//! GELU forward and backward on the CPU, elementwise, vectorised, over both threads.

use super::simd::{self, fmadd, multiversion};
use super::values;
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

#[inline(always)]
fn forward_impl<const FMA: bool>(kind: Kind, x: &[f32], y: &mut [f32]) {
    match kind {
        Kind::Erf => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * simd::normal_cdf::<FMA>(x);
            }
        }
        Kind::Tanh => {
            for (y, &x) in y.iter_mut().zip(x) {
                let u2 = -2.0 * SQRT_2_OVER_PI * fmadd::<FMA>(TANH_C * x, x * x, x);
                *y = x / (1.0 + simd::exp::<FMA>(u2));
            }
        }
    }
}

/// dx += dy · gelu'(x)
#[inline(always)]
fn backward_impl<const FMA: bool>(kind: Kind, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    match kind {
        Kind::Erf => {
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                let pdf = INV_SQRT_2PI * simd::exp::<FMA>(-0.5 * x * x);
                let d = fmadd::<FMA>(x, pdf, simd::normal_cdf::<FMA>(x));
                *dx = fmadd::<FMA>(dy, d, *dx);
            }
        }
        Kind::Tanh => {
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                let x2 = x * x;
                let u2 = -2.0 * SQRT_2_OVER_PI * fmadd::<FMA>(TANH_C * x, x2, x);
                let s = 1.0 / (1.0 + simd::exp::<FMA>(u2));
                let du = 2.0 * SQRT_2_OVER_PI * fmadd::<FMA>(3.0 * TANH_C, x2, 1.0);
                let d = fmadd::<FMA>(x * s * (1.0 - s), du, s);
                *dx = fmadd::<FMA>(dy, d, *dx);
            }
        }
    }
}

multiversion!(fn forward_chunk(kind: Kind, x: &[f32], y: &mut [f32]) = forward_impl);
multiversion!(fn backward_chunk(kind: Kind, x: &[f32], dy: &[f32], dx: &mut [f32]) = backward_impl);

/// y = gelu(x), elementwise.
pub fn forward(kind: Kind, x: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| forward_chunk(kind, x, y));
}

/// dx += dy · gelu'(x), elementwise.
pub fn backward(kind: Kind, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (x, dy))| backward_chunk(kind, x, dy, dx));
}

pub fn gelu<S: Shape, T: Tape<f32, Cpu>>(x: Tensor<S, f32, Cpu, T>, kind: Kind) -> Tensor<S, f32, Cpu, T> {
    let (x, mut tape) = x.split_tape();
    let shape = *x.shape();
    let input = values(&x);
    let mut out = vec![0.0f32; input.len()];
    forward(kind, &input, &mut out);
    let y = x.device().tensor_from_vec(out, shape);
    let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&x_ghost)?;
        grads.try_alloc_for(&y_ghost)?;
        // Two entries of the gradient map (x and y differ): their heap buffers stay put.
        let dy = grads.get_or_alloc_mut(&y_ghost)?;
        let dy: *const [f32] = &**dy as &[f32];
        let dx = grads.get_or_alloc_mut(&x_ghost)?;
        // SAFETY: x and y are different tensors (different ids), so different entries.
        backward(kind, &input, unsafe { &*dy }, dx);
        Ok(())
    });
    y.put_tape(tape)
}
