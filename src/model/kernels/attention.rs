//! Masked multi-head self-attention on the CPU, fused per (row, head): the score product,
//! the padding bias, the softmax and the weighted sum of values run on one head's strided
//! columns of q, k and v (no 4-d permute copies), with the attention weights kept for the
//! backward. The (row, head) pairs are split over both threads; each runs its own small GEMMs
//! single-threaded (OpenBLAS when loaded, else the `gemm` crate).

use super::blas;
use super::simd::{self, SharedMut, multiversion};
use super::{States, values};
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
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    scale: f32,
) {
    debug_assert_eq!(dst_cs, 1, "attention results are row-major");
    let lhs = blas::Operand {
        ptr: lhs,
        rs: lhs_rs,
        cs: lhs_cs,
    };
    let rhs = blas::Operand {
        ptr: rhs,
        rs: rhs_rs,
        cs: rhs_cs,
    };
    // SAFETY: the caller's pointers and strides describe valid matrices.
    unsafe { blas::gemm_on_this_thread((m, n, k), dst, dst_rs, accumulate, scale, lhs, rhs) }
}

/// The sizes of one attention call.
#[derive(Clone, Copy)]
pub struct Dims {
    pub rows: usize,
    pub len: usize,
    pub heads: usize,
    /// The model dim (row stride of q, k, v and the output).
    pub m: usize,
}

impl Dims {
    fn dh(&self) -> usize {
        self.m / self.heads
    }
    /// Offset of (row b, head h)'s first element in a rows × len × m buffer.
    fn offset(&self, task: usize) -> usize {
        let (b, h) = (task / self.heads, task % self.heads);
        b * self.len * self.m + h * self.dh()
    }
}

/// Forward: the output (rows × len × m) and the attention weights (rows × heads × len × len).
pub fn forward(d: Dims, q: &[f32], k: &[f32], v: &[f32], mask: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (len, m, dh) = (d.len, d.m, d.dh());
    let scale = 1.0 / (dh as f32).sqrt();
    let mut out = vec![0.0f32; d.rows * len * m];
    let mut probs = vec![0.0f32; d.rows * d.heads * len * len];
    let out_ptr = SharedMut(out.as_mut_ptr());
    probs.par_chunks_mut(len * len).enumerate().for_each(|(task, p)| {
        let off = d.offset(task);
        let b = task / d.heads;
        let bias: Vec<f32> = mask[b * len..(b + 1) * len].iter().map(|m| (m - 1.0) * 1e9).collect();
        // The whole wrapper, not its raw-pointer field, must move into the closure.
        #[allow(clippy::redundant_locals)]
        let out_ptr = out_ptr;
        // SAFETY: in-bounds strided views of q, k, v; each task writes only its own (row,
        // head) block of `out`.
        unsafe {
            gemm(
                (len, len, dh),
                p.as_mut_ptr(),
                (len, 1),
                false,
                q[off..].as_ptr(),
                (m, 1),
                k[off..].as_ptr(),
                (1, m),
                scale,
            );
            softmax_rows(p, &bias);
            gemm(
                (len, dh, len),
                out_ptr.0.add(off),
                (m, 1),
                false,
                p.as_ptr(),
                (len, 1),
                v[off..].as_ptr(),
                (m, 1),
                1.0,
            );
        }
    });
    (out, probs)
}

/// The gradient buffers the backward accumulates into (rows × len × m each). They may alias
/// one another: each (row, head) task touches only its own block of each.
pub struct Grads {
    pub dq: *mut f32,
    pub dk: *mut f32,
    pub dv: *mut f32,
}

/// Backward: dq, dk, dv += the gradients of the forward's inputs given `dout`.
///
/// # Safety
/// `g`'s pointers are valid for rows × len × m floats each.
pub unsafe fn backward(d: Dims, q: &[f32], k: &[f32], v: &[f32], probs: &[f32], dout: &[f32], g: &Grads) {
    let (len, m, dh) = (d.len, d.m, d.dh());
    let scale = 1.0 / (dh as f32).sqrt();
    let (dq, dk, dv) = (SharedMut(g.dq), SharedMut(g.dk), SharedMut(g.dv));
    probs.par_chunks(len * len).enumerate().for_each_init(
        || vec![0.0f32; len * len],
        |ds, (task, p)| {
            let off = d.offset(task);
            let (dq, dk, dv) = (dq, dk, dv);
            // SAFETY: in-bounds strided views; each task writes only its own (row, head) block
            // of dq, dk and dv.
            unsafe {
                let dout = dout[off..].as_ptr();
                // dV += Pᵀ·dO
                gemm(
                    (len, dh, len),
                    dv.0.add(off),
                    (m, 1),
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
                    (1, m),
                    1.0,
                );
                softmax_backward(p, ds, len, scale);
                // dQ += dS·K, dK += dSᵀ·Q
                gemm(
                    (len, dh, len),
                    dq.0.add(off),
                    (m, 1),
                    true,
                    ds.as_ptr(),
                    (len, 1),
                    k[off..].as_ptr(),
                    (m, 1),
                    1.0,
                );
                gemm(
                    (len, dh, len),
                    dk.0.add(off),
                    (m, 1),
                    true,
                    ds.as_ptr(),
                    (1, len),
                    q[off..].as_ptr(),
                    (m, 1),
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
    assert_eq!(M % heads, 0, "heads must divide the model dim");
    assert_eq!(k.shape(), q.shape(), "keys and queries differ in shape");
    assert_eq!(v.shape(), q.shape(), "values and queries differ in shape");
    assert_eq!(*key_mask.shape(), (rows, len), "the key mask is rows × len");
    let d = Dims { rows, len, heads, m: M };
    let (q, tq) = q.split_tape();
    let (k, tk) = k.split_tape();
    let (v, tv) = v.split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let (qv, kv, vv, mask) = (values(&q), values(&k), values(&v), values(key_mask));
    let (out, probs) = forward(d, &qv, &kv, &vv, &mask);
    let y = q.device().tensor_from_vec(out, (rows, len, Const::<M>));
    let (qg, kg, vg, yg) = (q.ghost(), k.ghost(), v.ghost(), y.ghost());
    tape.add_backward_op(move |grads| {
        for ghost in [&qg, &kg, &vg, &yg] {
            grads.try_alloc_for(ghost)?;
        }
        // Buffers of the gradient map's entries stay put while others are borrowed.
        let dout = grads.get_or_alloc_mut(&yg)?;
        let dout: *const [f32] = &**dout as &[f32];
        let g = Grads {
            dq: grads.get_or_alloc_mut(&qg)?.as_mut_ptr(),
            dk: grads.get_or_alloc_mut(&kg)?.as_mut_ptr(),
            dv: grads.get_or_alloc_mut(&vg)?.as_mut_ptr(),
        };
        // SAFETY: each buffer holds rows × len × M floats (the tensors' sizes).
        unsafe { backward(d, &qv, &kv, &vv, &probs, &*dout, &g) };
        Ok(())
    });
    y.put_tape(tape)
}
