//! Masked multi-head self-attention on the CPU, fused per (row, head): the score product,
//! the padding bias, the softmax and the weighted sum of values run on one head's strided
//! columns of q, k and v (no 4-d permute copies), with the attention weights kept for the
//! backward. The (row, head) pairs are split over both threads; each runs its own small GEMMs
//! single-threaded (OpenBLAS when loaded, else the `gemm` crate).

use super::grads::{self, grad_pointers};
use super::simd::{self, multiversion};
use super::{States, values, zeros};
use super::{blas, cpu_linear};
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;
use rayon::prelude::*;

/// Softmax of each row of `s` (len × len) after adding `bias` (one entry per key).
#[inline(always)]
fn softmax_rows_impl<const FMA: bool>(s: &mut [f32], bias: &[f32]) {
    let len = bias.len();
    for row in s.chunks_exact_mut(len) {
        let mut max = f32::NEG_INFINITY;
        for (x, &b) in row.iter_mut().zip(bias) {
            *x += b;
            max = max.max(*x);
        }
        for x in row.iter_mut() {
            *x = simd::exp::<FMA>(*x - max);
        }
        let inv = 1.0 / simd::sum(row);
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
}

/// dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)), in place of dP.
#[inline(always)]
fn softmax_backward_impl<const FMA: bool>(p: &[f32], dp: &mut [f32], len: usize, scale: f32) {
    for (p, dp) in p.chunks_exact(len).zip(dp.chunks_exact_mut(len)) {
        let dot = simd::dot::<FMA>(p, dp);
        for (d, &p) in dp.iter_mut().zip(p) {
            *d = scale * p * (*d - dot);
        }
    }
}

multiversion!(fn softmax_rows(s: &mut [f32], bias: &[f32]) = softmax_rows_impl);
multiversion!(fn softmax_backward(p: &[f32], dp: &mut [f32], len: usize, scale: f32) = softmax_backward_impl);

/// dst (m × n, row stride `dst_rs`) = [dst +] scale · lhs (m × k) · rhs (k × n), row/column
/// strides given; on this thread (see [`blas::gemm_on_this_thread`]).
///
/// # Safety
/// `lhs` (m × k) and `rhs` (k × n) with their strides must lie inside live allocations, and
/// `dst` with row stride `dst_rs` must be valid for writing m × n floats (and, with
/// `accumulate`, initialised) and overlap neither operand; no other thread may touch those
/// floats of `dst` meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: *const f32,
    lhs_strides: (usize, usize),
    rhs: *const f32,
    rhs_strides: (usize, usize),
    scale: f32,
) {
    debug_assert_eq!(dst_cs, 1, "attention results are row-major");
    let (lhs, rhs) = (
        blas::Operand::strided(lhs, lhs_strides),
        blas::Operand::strided(rhs, rhs_strides),
    );
    // SAFETY: the caller's pointers and strides describe valid matrices.
    unsafe { blas::gemm_on_this_thread((m, n, k), dst, dst_rs, accumulate, scale, lhs, rhs) }
}

/// A pointer that the parallel (row, head) tasks write through, each to its own block.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: the tasks that share it write disjoint blocks (see `forward` and `backward`).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The element `offset` floats on (a method, so that closures capture the Sync wrapper
    /// rather than its raw field).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The sizes of one attention call.
#[derive(Clone, Copy)]
pub struct Dims {
    pub rows: usize,
    pub len: usize,
    pub heads: usize,
    /// The model dim (the output's row stride).
    pub m: usize,
    /// The row stride of q, k and v and of their gradients: m when they are apart, 3m when
    /// they are the column blocks of one fused projection.
    pub stride: usize,
}

impl Dims {
    /// The sizes of an attention over `key_mask`'s rows × len tokens; panics unless `heads`
    /// divides `m`.
    fn new(
        key_mask: &Tensor<(usize, usize), f32, Cpu>,
        (rows, len): (usize, usize),
        heads: usize,
        m: usize,
        stride: usize,
    ) -> Self {
        assert_eq!(m % heads, 0, "heads must divide the model dim");
        assert_eq!(*key_mask.shape(), (rows, len), "the key mask is rows × len");
        Dims {
            rows,
            len,
            heads,
            m,
            stride,
        }
    }

    fn dh(&self) -> usize {
        self.m / self.heads
    }
    /// Offset of (row b, head h)'s first element in a rows × len × `row_stride` buffer.
    fn offset(&self, task: usize, row_stride: usize) -> usize {
        let (b, h) = (task / self.heads, task % self.heads);
        b * self.len * row_stride + h * self.dh()
    }
}

/// Forward: the output (rows × len × m) and the attention weights (rows × heads × len × len).
/// q, k and v have row stride `d.stride`.
pub fn forward(d: Dims, q: &[f32], k: &[f32], v: &[f32], mask: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (len, m, dh, stride) = (d.len, d.m, d.dh(), d.stride);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut out = zeros(d.rows * len * m);
    let mut probs = zeros(d.rows * d.heads * len * len);
    let out_ptr = SharedMut(out.as_mut_ptr());
    probs.par_chunks_mut(len * len).enumerate().for_each(|(task, p)| {
        let (off, out_off) = (d.offset(task, stride), d.offset(task, m));
        let b = task / d.heads;
        let bias: Vec<f32> = mask[b * len..(b + 1) * len].iter().map(|m| (m - 1.0) * 1e9).collect();
        // SAFETY: in-bounds strided views of q, k, v; each task writes only its own (row,
        // head) block of `out`.
        unsafe {
            gemm(
                (len, len, dh),
                p.as_mut_ptr(),
                (len, 1),
                false,
                q[off..].as_ptr(),
                (stride, 1),
                k[off..].as_ptr(),
                (1, stride),
                scale,
            );
            softmax_rows(p, &bias);
            gemm(
                (len, dh, len),
                out_ptr.at(out_off),
                (m, 1),
                false,
                p.as_ptr(),
                (len, 1),
                v[off..].as_ptr(),
                (stride, 1),
                1.0,
            );
        }
    });
    (out, probs)
}

/// The gradient buffers the backward accumulates into (rows × len, row stride `Dims::stride`,
/// each). They may alias one another: each (row, head) task touches only its own block of each.
struct Grads {
    dq: *mut f32,
    dk: *mut f32,
    dv: *mut f32,
}

/// Backward: dq, dk, dv += the gradients of the forward's inputs given `dout`.
///
/// # Safety
/// `g`'s pointers are valid for rows × len rows of `d.stride` floats each (less the column
/// offset of each).
unsafe fn backward(d: Dims, q: &[f32], k: &[f32], v: &[f32], probs: &[f32], dout: &[f32], g: &Grads) {
    let (len, m, dh, stride) = (d.len, d.m, d.dh(), d.stride);
    let scale = 1.0 / (dh as f32).sqrt();
    let (dq, dk, dv) = (SharedMut(g.dq), SharedMut(g.dk), SharedMut(g.dv));
    probs.par_chunks(len * len).enumerate().for_each_init(
        || vec![0.0f32; len * len],
        |ds, (task, p)| {
            let (off, out_off) = (d.offset(task, stride), d.offset(task, m));
            // SAFETY: in-bounds strided views; each task writes only its own (row, head) block
            // of dq, dk and dv.
            unsafe {
                let dout = dout[out_off..].as_ptr();
                // dV += Pᵀ·dO
                gemm(
                    (len, dh, len),
                    dv.at(off),
                    (stride, 1),
                    true,
                    p.as_ptr(),
                    (1, len),
                    dout,
                    (m, 1),
                    1.0,
                );
                // dP = dO·Vᵀ, then dS
                gemm(
                    (len, len, dh),
                    ds.as_mut_ptr(),
                    (len, 1),
                    false,
                    dout,
                    (m, 1),
                    v[off..].as_ptr(),
                    (1, stride),
                    1.0,
                );
                softmax_backward(p, ds, len, scale);
                // dQ += dS·K, dK += dSᵀ·Q
                gemm(
                    (len, dh, len),
                    dq.at(off),
                    (stride, 1),
                    true,
                    ds.as_ptr(),
                    (len, 1),
                    k[off..].as_ptr(),
                    (stride, 1),
                    1.0,
                );
                gemm(
                    (len, dh, len),
                    dk.at(off),
                    (stride, 1),
                    true,
                    ds.as_ptr(),
                    (1, len),
                    q[off..].as_ptr(),
                    (stride, 1),
                    1.0,
                );
            }
        },
    );
}

pub fn masked_attention<const M: usize, T: Tape<f32, Cpu>>(
    q: States<M, Cpu, T>,
    k: States<M, Cpu, T>,
    v: States<M, Cpu, T>,
    key_mask: &Tensor<(usize, usize), f32, Cpu>,
    heads: usize,
) -> States<M, Cpu, T> {
    let (rows, len, _) = *q.shape();
    assert_eq!(k.shape(), q.shape(), "keys and queries differ in shape");
    assert_eq!(v.shape(), q.shape(), "values and queries differ in shape");
    let d = Dims::new(key_mask, (rows, len), heads, M, M);
    let (q, tq) = q.split_tape();
    let (k, tk) = k.split_tape();
    let (v, tv) = v.split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let (qv, kv, vv, mask) = (values(&q), values(&k), values(&v), values(key_mask));
    let (out, probs) = forward(d, &qv, &kv, &vv, &mask);
    let y = q.device().tensor_from_vec(out, (rows, len, Const::<M>));
    let (qg, kg, vg, yg) = (q.ghost(), k.ghost(), v.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        let [dout, dq, dk, dv] = grad_pointers!(grads, &yg, &qg, &kg, &vg);
        // q, k and v may be one tensor (its gradients then add up in one buffer), but none is
        // the output, a new tensor; read_beside checks it.
        // SAFETY: entries of `grads`, taken just now, in this order.
        let (dout, [dq, dk, dv]) = unsafe { grads::read_beside(grads, dout, [dq, dk, dv]) };
        let g = Grads { dq, dk, dv };
        // SAFETY: each buffer holds rows × len × M floats (the tensors' sizes).
        unsafe { backward(d, &qv, &kv, &vv, &probs, dout, &g) };
        Ok(())
    });
    y.put_tape(tape)
}

/// Self-attention of `x` with its query, key and value projections run as one product
/// (rows·len × M)·(M × 3M): the weights side by side, so that the GEMM is three times as wide
/// (OpenBLAS: ≈ 115 GFLOP/s where three M-wide products reach ≈ 85 on me5-small's shape).
/// The attention reads q, k and v as column blocks of the product, and its backward writes
/// their gradients into one buffer, so the projections' backward is also one product for dx
/// and one for the three weight gradients.
pub fn self_attention<const M: usize, T: Tape<f32, Cpu>>(
    projections: [&Linear<M, M, f32, Cpu>; 3],
    x: States<M, Cpu, T>,
    key_mask: &Tensor<(usize, usize), f32, Cpu>,
    heads: usize,
) -> States<M, Cpu, T> {
    let (rows, len, _) = *x.shape();
    let d = Dims::new(key_mask, (rows, len), heads, M, 3 * M);
    let (x, mut tape) = x.split_tape();
    let xv = values(&x);
    let mut weights = Vec::with_capacity(3 * M * M);
    let mut biases = Vec::with_capacity(3 * M);
    for lin in projections {
        weights.extend(values(&lin.weight));
        biases.extend(values(&lin.bias));
    }
    let qkv = cpu_linear::forward(&xv, &weights, &biases, M, 3 * M);
    let (out, probs) = forward(d, &qkv, &qkv[M..], &qkv[2 * M..], &values(key_mask));
    let y = x.device().tensor_from_vec(out, (rows, len, Const::<M>));
    let (xg, yg) = (x.ghost(), y.ghost());
    let params = projections.map(|lin| (lin.weight.ghost(), lin.bias.ghost()));
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&xg)?;
        grads.try_alloc_for(&yg)?;
        for (w, b) in &params {
            grads.try_alloc_for(w)?;
            grads.try_alloc_for(b)?;
        }
        let mut dqkv = zeros(qkv.len());
        {
            let dout = grads.get_or_alloc_mut(&yg)?;
            let g = Grads {
                dq: dqkv.as_mut_ptr(),
                // SAFETY: column offsets inside the rows of 3M.
                dk: unsafe { dqkv.as_mut_ptr().add(M) },
                dv: unsafe { dqkv.as_mut_ptr().add(2 * M) },
            };
            // SAFETY: dqkv holds rows × len rows of 3M floats; dout is the output's gradient.
            unsafe { backward(d, &qkv, &qkv[M..], &qkv[2 * M..], &probs, dout, &g) };
        }
        let (mut dw, mut db) = (vec![0.0f32; weights.len()], vec![0.0f32; biases.len()]);
        let dx = grads.get_or_alloc_mut(&xg)?;
        cpu_linear::backward(&xv, &weights, &dqkv, M, 3 * M, dx, &mut dw, &mut db);
        // Each projection's rows of the stacked weight gradient, into its own entries.
        for (p, (w, b)) in params.iter().enumerate() {
            let dw_p = &dw[p * M * M..(p + 1) * M * M];
            grads
                .get_or_alloc_mut(w)?
                .iter_mut()
                .zip(dw_p)
                .for_each(|(g, d)| *g += d);
            let db_p = &db[p * M..(p + 1) * M];
            grads
                .get_or_alloc_mut(b)?
                .iter_mut()
                .zip(db_p)
                .for_each(|(g, d)| *g += d);
        }
        Ok(())
    });
    y.put_tape(tape)
}
