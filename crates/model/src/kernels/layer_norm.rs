//! LayerNorm over the last axis on the CPU: one pass per row forward (mean, biased variance,
//! normalise, scale and shift), one pass per row backward, rows split over both threads.

#![allow(clippy::too_many_arguments)]

use super::grads::grad_buffers;
use super::simd::{self, fmadd, multiversion};
use super::{States, values, zeros};
use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;
use rayon::prelude::*;

/// Rows per parallel task.
const ROWS: usize = 64;

/// y = γ·x̂ + β with x̂ = (x − μ)/√(σ² + ε) per row of `m`; keeps x̂ and 1/√(σ² + ε).
#[inline(always)]
fn forward_impl<const FMA: bool>(
    m: usize,
    eps: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let inv_m = 1.0 / m as f32;
    for (((x, y), xh), rs) in x
        .chunks_exact(m)
        .zip(y.chunks_exact_mut(m))
        .zip(xhat.chunks_exact_mut(m))
        .zip(rstd.iter_mut())
    {
        let mean = simd::sum(x) * inv_m;
        for (h, &v) in xh.iter_mut().zip(x) {
            *h = v - mean;
        }
        let var = simd::dot::<FMA>(xh, xh) * inv_m;
        let r = 1.0 / (var + eps).sqrt();
        *rs = r;
        for (((y, h), &g), &b) in y.iter_mut().zip(xh.iter_mut()).zip(gamma).zip(beta) {
            *h *= r;
            *y = fmadd::<FMA>(g, *h, b);
        }
    }
}

/// dx += r·(g − mean(g) − x̂·mean(g·x̂)) with g = γ·dy; dγ += dy·x̂, dβ += dy (per task).
#[inline(always)]
fn backward_impl<const FMA: bool>(
    m: usize,
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    scratch: &mut [f32],
) {
    let inv_m = 1.0 / m as f32;
    for (((xh, &r), dy), dx) in xhat
        .chunks_exact(m)
        .zip(rstd)
        .zip(dy.chunks_exact(m))
        .zip(dx.chunks_exact_mut(m))
    {
        for (((g, &d), &gm), ((dg, db), &h)) in scratch
            .iter_mut()
            .zip(dy)
            .zip(gamma)
            .zip(dgamma.iter_mut().zip(dbeta.iter_mut()).zip(xh))
        {
            *g = d * gm;
            *dg = fmadd::<FMA>(d, h, *dg);
            *db += d;
        }
        let mean_g = simd::sum(scratch) * inv_m;
        let mean_gx = simd::dot::<FMA>(scratch, xh) * inv_m;
        for ((dx, &g), &h) in dx.iter_mut().zip(scratch.iter()).zip(xh) {
            *dx = fmadd::<FMA>(r, g - mean_g - h * mean_gx, *dx);
        }
    }
}

multiversion!(fn forward_rows(
    m: usize,
    eps: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
) = forward_impl);

multiversion!(fn backward_rows(
    m: usize,
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    scratch: &mut [f32],
) = backward_impl);

/// Forward over all rows: (y, x̂, 1/σ).
pub fn forward(m: usize, eps: f32, x: &[f32], gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / m;
    let (mut y, mut xhat, mut rstd) = (zeros(x.len()), zeros(x.len()), vec![0.0; rows]);
    y.par_chunks_mut(ROWS * m)
        .zip(xhat.par_chunks_mut(ROWS * m))
        .zip(rstd.par_chunks_mut(ROWS))
        .zip(x.par_chunks(ROWS * m))
        .for_each(|(((y, xh), rs), x)| forward_rows(m, eps, x, gamma, beta, y, xh, rs));
    (y, xhat, rstd)
}

/// Backward over all rows: accumulates into dx, dγ and dβ.
pub fn backward(
    m: usize,
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let partial = dx
        .par_chunks_mut(ROWS * m)
        .zip(xhat.par_chunks(ROWS * m).zip(rstd.par_chunks(ROWS)))
        .zip(dy.par_chunks(ROWS * m))
        .map(|((dx, (xh, rs)), dy)| {
            let mut acc = vec![0.0f32; 3 * m];
            let (dg, rest) = acc.split_at_mut(m);
            let (db, scratch) = rest.split_at_mut(m);
            backward_rows(m, xh, rs, gamma, dy, dx, dg, db, scratch);
            acc.truncate(2 * m);
            acc
        })
        .collect::<Vec<_>>();
    // Summed in block order, not by rayon's reduce, whose grouping follows the work stealing:
    // the same inputs give the same bits on every run.
    let partial = super::sum_in_order(2 * m, &partial);
    dgamma.iter_mut().zip(&partial[..m]).for_each(|(g, p)| *g += p);
    dbeta.iter_mut().zip(&partial[m..]).for_each(|(g, p)| *g += p);
}

pub fn layer_norm<const M: usize, T: Tape<f32, Cpu>>(
    norm: &LayerNorm1D<M, f32, Cpu>,
    x: States<M, Cpu, T>,
) -> States<M, Cpu, T> {
    let (x, mut tape) = x.split_tape();
    let shape = *x.shape();
    let gamma = values(&norm.gamma);
    let (y, xhat, rstd) = forward(M, norm.epsilon as f32, &values(&x), &gamma, &values(&norm.beta));
    let y = x.device().tensor_from_vec(y, shape);
    let (x_ghost, y_ghost) = (x.ghost(), y.ghost());
    let (g_ghost, b_ghost) = (norm.gamma.ghost(), norm.beta.ghost());
    tape.add_backward_op(move |grads| {
        // Panics if gamma and beta are one tensor.
        let [dy, dg, db, dx] = grad_buffers!(grads, &y_ghost, &g_ghost, &b_ghost, &x_ghost);
        backward(M, &xhat, &rstd, &gamma, dy, dx, dg, db);
        Ok(())
    });
    y.put_tape(tape)
}
