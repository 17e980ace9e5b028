//! A linear layer over token states on the CPU with the bias (and optionally GELU) fused:
//! forward one GEMM plus one pass for bias and activation; backward the activation's
//! derivative, two GEMMs (dx, dW) and a column sum (db), instead of dfdx's per-row products and
//! broadcast-add backward.

use super::blas;
use super::gelu::{self, Kind};
use super::grads::grad_buffers;
use super::simd::multiversion;
use super::{States, values, zeros};
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;
use rayon::prelude::*;

const ROWS: usize = 64;

/// dst (m × n, row-major) = [dst +] lhs · rhs with the given (row, column) strides, on all
/// threads (see [`blas`] for which library).
///
/// # Safety
/// `lhs` (m × k) and `rhs` (k × n) with their strides must lie inside live allocations, and
/// `dst` must be valid for writing m × n floats (and, with `accumulate`, initialised) and
/// overlap neither operand.
unsafe fn gemm_rayon(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    accumulate: bool,
    lhs: *const f32,
    lhs_strides: (usize, usize),
    rhs: *const f32,
    rhs_strides: (usize, usize),
) {
    let (lhs, rhs) = (
        blas::Operand::strided(lhs, lhs_strides),
        blas::Operand::strided(rhs, rhs_strides),
    );
    // SAFETY: the caller's pointers and strides describe valid matrices.
    unsafe { blas::gemm(m, n, k, dst, accumulate, lhs, rhs) }
}

#[inline(always)]
fn add_bias_impl<const FMA: bool>(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        for (y, b) in row.iter_mut().zip(bias) {
            *y += b;
        }
    }
}

#[inline(always)]
fn column_sums_impl<const FMA: bool>(dz: &[f32], acc: &mut [f32]) {
    for row in dz.chunks_exact(acc.len()) {
        for (a, d) in acc.iter_mut().zip(row) {
            *a += d;
        }
    }
}

#[inline(always)]
fn add_bias_residual_impl<const FMA: bool>(y: &mut [f32], bias: &[f32], residual: &[f32]) {
    for (row, r) in y.chunks_exact_mut(bias.len()).zip(residual.chunks_exact(bias.len())) {
        for ((y, b), r) in row.iter_mut().zip(bias).zip(r) {
            *y = (*y + b) + r;
        }
    }
}

multiversion!(fn add_bias(y: &mut [f32], bias: &[f32]) = add_bias_impl);
multiversion!(fn add_bias_residual(y: &mut [f32], bias: &[f32], residual: &[f32]) = add_bias_residual_impl);
multiversion!(fn column_sums(dz: &[f32], acc: &mut [f32]) = column_sums_impl);

/// x·Wᵀ for x (n × i) and W (o × i), row-major.
pub fn product(x: &[f32], w: &[f32], i: usize, o: usize) -> Vec<f32> {
    let n = x.len() / i;
    if i == 0 {
        return vec![0.0f32; n * o];
    }
    // Not zeroed first (the zeroing was 2–4% of a step): a product that does not accumulate
    // writes every element of its destination, in both backends.
    let mut z = Vec::with_capacity(n * o);
    // SAFETY: x is n × i, w is o × i (read as its transpose), z has room for n × o; with
    // k = i > 0 and no accumulation every element is written before `set_len`.
    unsafe {
        gemm_rayon((n, o, i), z.as_mut_ptr(), false, x.as_ptr(), (i, 1), w.as_ptr(), (1, i));
        z.set_len(n * o);
    }
    z
}

/// z = x·Wᵀ + b for x (n × i) and W (o × i), row-major.
pub fn forward(x: &[f32], w: &[f32], b: &[f32], i: usize, o: usize) -> Vec<f32> {
    let mut z = product(x, w, i, o);
    z.par_chunks_mut(ROWS * o).for_each(|z| add_bias(z, b));
    z
}

/// dx += dz·W, dW += dzᵀ·x, db += Σ_rows dz.
#[allow(clippy::too_many_arguments)]
pub fn backward(x: &[f32], w: &[f32], dz: &[f32], i: usize, o: usize, dx: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
    let n = x.len() / i;
    // SAFETY: dz is n × o, w is o × i, x is n × i; dx n × i, dw o × i.
    unsafe {
        gemm_rayon(
            (n, i, o),
            dx.as_mut_ptr(),
            true,
            dz.as_ptr(),
            (o, 1),
            w.as_ptr(),
            (i, 1),
        );
        gemm_rayon(
            (o, i, n),
            dw.as_mut_ptr(),
            true,
            dz.as_ptr(),
            (1, o),
            x.as_ptr(),
            (i, 1),
        );
    }
    let sums = dz
        .par_chunks(ROWS * o)
        .map(|dz| {
            let mut acc = vec![0.0f32; o];
            column_sums(dz, &mut acc);
            acc
        })
        .collect::<Vec<_>>();
    // Summed in block order, not by rayon's reduce, whose grouping follows the work stealing:
    // the same inputs give the same bits on every run.
    let sums = super::sum_in_order(o, &sums);
    db.iter_mut().zip(&sums).for_each(|(d, s)| *d += s);
}

/// `lin` on every token state, then `act` (if any), then + `residual` (if any; not with an
/// activation). The residual is added in the bias pass, (x·Wᵀ + b) + r, as the unfused sum
/// rounds it, and its gradient is the output's, as for dfdx's add.
pub fn linear<const I: usize, const O: usize, T: Tape<f32, Cpu>>(
    lin: &Linear<I, O, f32, Cpu>,
    x: States<I, Cpu, T>,
    act: Option<Kind>,
    residual: Option<States<O, Cpu, T>>,
) -> States<O, Cpu, T> {
    let (x, mut tape) = x.split_tape();
    let (rows, len, _) = *x.shape();
    let residual = residual.map(|r| {
        assert_eq!(*r.shape(), (rows, len, Const::<O>), "the residual is rows × len × O");
        assert!(act.is_none(), "a residual after an activation is not fused");
        let (r, tr) = r.split_tape();
        tape = std::mem::take(&mut tape).merge(tr);
        r
    });
    let (xv, w, b) = (values(&x), values(&lin.weight), values(&lin.bias));
    // With an activation, the bias is added in its pass, and only its slopes are kept for
    // the backward (when there is one).
    let (y, slope) = match (act, &residual) {
        (None, None) => (forward(&xv, &w, &b, I, O), None),
        (None, Some(r)) => {
            let mut z = product(&xv, &w, I, O);
            let r = values(r);
            z.par_chunks_mut(ROWS * O)
                .zip(r.par_chunks(ROWS * O))
                .for_each(|(z, r)| add_bias_residual(z, &b, r));
            (z, None)
        }
        (Some(kind), _) => {
            let mut y = product(&xv, &w, I, O);
            let mut slope = T::OWNS_TAPE.then(|| zeros(y.len()));
            gelu::forward(kind, &mut y, &b, slope.as_deref_mut());
            (y, slope)
        }
    };
    let y = x.device().tensor_from_vec(y, (rows, len, Const::<O>));
    let (xg, yg, wg, bg) = (x.ghost(), y.ghost(), lin.weight.ghost(), lin.bias.ghost());
    let rg = residual.map(|r| r.ghost());
    tape.add_backward_op(move |grads| {
        {
            let [dy, dw, db, dx] = grad_buffers!(grads, &yg, &wg, &bg, &xg);
            match &slope {
                Some(slope) => {
                    backward(&xv, &w, &gelu::backward_new(slope, dy), I, O, dx, dw, db);
                }
                None => backward(&xv, &w, dy, I, O, dx, dw, db),
            }
        }
        // After x's entry is released: the residual may be x itself.
        if let Some(rg) = &rg {
            let [dy, dr] = grad_buffers!(grads, &yg, rg);
            dr.par_chunks_mut(ROWS * O)
                .zip(dy.par_chunks(ROWS * O))
                .for_each(|(dr, dy)| dr.iter_mut().zip(dy).for_each(|(r, d)| *r += d));
        }
        Ok(())
    });
    y.put_tape(tape)
}
