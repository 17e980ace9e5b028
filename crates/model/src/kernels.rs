//! Fused transformer building blocks over dfdx tensors, each a dfdx operation with its own
//! backward: masked multi-head attention (also fused with its query/key/value projections),
//! LayerNorm, GELU (erf and tanh), a linear layer over token states that runs as one GEMM, and
//! the sum of token and position embeddings.
//!
//! [`Kernels`] is implemented by every device the crate supports. Its default methods are the
//! plain dfdx compositions (see [`reference`]); the CPU overrides them with hand-written kernels
//! (`cpu_*` files). The reference compositions stay as the parity baseline of the tests and as
//! the CUDA path.
//!
//! It also owns where a device runs a whole step ([`StepRunner`]: the CPU on a rayon worker)
//! and the allocator settings the CPU kernels want ([`tune_malloc`], a program's explicit call).
//!
//! Tapes: every function takes its activations with their tape (owned or none) and returns the
//! result with the merged tape; parameters are passed by reference, untaped, as dfdx's own
//! modules hold them. Gradients accumulate into the parameters' entries exactly as dfdx's
//! operations do, so a gradient set from `alloc_grads` works unchanged.

use dfdx::nn::modules::{Embedding, LayerNorm1D, Linear};
use dfdx::prelude::*;

pub mod reference;

mod attention;
pub mod blas;
mod cpu_linear;
mod embedding;
mod gelu;
mod grads;
mod layer_norm;
mod linear;
mod simd;

#[cfg(test)]
mod tests;

/// The element-wise sum of `partials` (each `len` values), added in their order, so that a
/// reduction over rayon's blocks is deterministic.
fn sum_in_order(len: usize, partials: &[Vec<f32>]) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for part in partials {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
    total
}

/// n zeros, written by rayon's threads. Why: a large `vec![0.0; n]` reuses a heap block and
/// memsets it on the calling thread while the other core waits; sequential memsets were
/// 3.5% of a me5-shape step's wall time (`benchmarks/runs/2026-12-02-zen1/`).
fn zeros(n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = Vec::with_capacity(n);
    out.spare_capacity_mut()
        .par_chunks_mut(1 << 16)
        .for_each(|chunk| chunk.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: all n elements of the capacity were just written.
    unsafe { out.set_len(n) };
    out
}

/// The values of a CPU tensor, copied from its buffer in one move (dfdx's `as_vec` walks an
/// index per element: 7% of a backbone cell's samples). The kernels' inputs are results of
/// operations, not strided views (broadcasts, permutes), so the buffer's order is the logical
/// one; their backward passes assume the same of the gradient buffers. A broadcast view (a
/// shorter buffer) panics here; tests check the order against `as_vec`.
fn values<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    let mut out = zeros(t.shape().num_elements());
    t.copy_into(&mut out);
    debug_assert!(
        out.iter()
            .map(|v| v.to_bits())
            .eq(t.as_vec().iter().map(|v| v.to_bits())),
        "a kernel input is a strided view"
    );
    out
}

/// Token states: rows × tokens × M.
pub type States<const M: usize, D, T> = Tensor<(usize, usize, Const<M>), f32, D, T>;

/// How device `D` runs a whole forward or training step of a model `self`: where its kernels
/// run it best. The CPU runs it on a worker of rayon's pool ([`on_pool`]), so a CPU model must
/// be `Send` and `Sync` (the compiler checks it where a model is built); CUDA runs it where it
/// is called, so its models need not be (dfdx 0.13's CUDA device is neither: cudarc 0.9 does
/// not declare its stream handle so).
pub trait StepRunner<D> {
    /// `f(self)`, for a step that changes the model (training).
    fn run_step<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R;
    /// `f(self)`, for a step that only reads it (a forward pass).
    fn run_forward<R: Send>(&self, f: impl FnOnce(&Self) -> R + Send) -> R;
}

impl<M: Send + Sync> StepRunner<Cpu> for M {
    fn run_step<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        on_pool(|| f(self))
    }

    fn run_forward<R: Send>(&self, f: impl FnOnce(&Self) -> R + Send) -> R {
        on_pool(|| f(self))
    }
}

#[cfg(feature = "cuda")]
impl<M> StepRunner<Cuda> for M {
    fn run_step<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        f(self)
    }

    fn run_forward<R: Send>(&self, f: impl FnOnce(&Self) -> R + Send) -> R {
        f(self)
    }
}

/// The fused transformer operations of a device.
pub trait Kernels: Device<f32> {
    /// Token embeddings plus learned position embeddings: `positions[t] + tokens[ids[r, t]]`
    /// for ids rows × len (len ≤ S). `tokens` and `positions` are different modules.
    fn embed_with_positions<const V: usize, const S: usize, const M: usize, T: Tape<f32, Self>>(
        tokens: &Embedding<V, M, f32, Self>,
        positions: &Embedding<S, M, f32, Self>,
        ids: Tensor<(usize, usize), usize, Self, T>,
    ) -> States<M, Self, T> {
        reference::embed_with_positions(tokens, positions, ids)
    }

    /// `LayerNorm1D` over the last axis of token states (biased variance, `norm.epsilon`).
    fn layer_norm<const M: usize, T: Tape<f32, Self>>(
        norm: &LayerNorm1D<M, f32, Self>,
        x: States<M, Self, T>,
    ) -> States<M, Self, T> {
        reference::layer_norm(norm, x)
    }

    /// GELU with the exact (erf) normal CDF: x·Φ(x), as BERT and PyTorch's default.
    fn gelu_erf<S: Shape, T: Tape<f32, Self>>(x: Tensor<S, f32, Self, T>) -> Tensor<S, f32, Self, T> {
        reference::gelu_erf(x)
    }

    /// GELU with the tanh approximation (dfdx's `fast_gelu`, PyTorch's `approximate="tanh"`).
    fn gelu_tanh<S: Shape, T: Tape<f32, Self>>(x: Tensor<S, f32, Self, T>) -> Tensor<S, f32, Self, T> {
        reference::gelu_tanh(x)
    }

    /// Multi-head self-attention of projected queries, keys and values (rows × len × M each,
    /// `heads` heads of M / heads dims, head h in columns h·M/heads..): softmax(q·kᵀ/√dh + bias)·v
    /// per row and head, where bias is −1e9 on keys whose `key_mask` entry is 0 (padding), so
    /// their weight is exactly 0. The heads are concatenated back into rows × len × M.
    fn masked_attention<const M: usize, T: Tape<f32, Self>>(
        q: States<M, Self, T>,
        k: States<M, Self, T>,
        v: States<M, Self, T>,
        key_mask: &Tensor<(usize, usize), f32, Self>,
        heads: usize,
    ) -> States<M, Self, T> {
        reference::masked_attention(q, k, v, key_mask, heads)
    }

    /// Self-attention of token states: `masked_attention` of x's query, key and value
    /// projections (`projections` in that order).
    fn self_attention<const M: usize, T: Tape<f32, Self>>(
        projections: [&Linear<M, M, f32, Self>; 3],
        x: States<M, Self, T>,
        key_mask: &Tensor<(usize, usize), f32, Self>,
        heads: usize,
    ) -> States<M, Self, T> {
        let [wq, wk, wv] = projections;
        let (q, k) = (
            Self::linear(wq, x.with_empty_tape()),
            Self::linear(wk, x.with_empty_tape()),
        );
        Self::masked_attention(q, k, Self::linear(wv, x), key_mask, heads)
    }

    /// `Linear` applied to every token state as one (rows·len × I)·(I × O) product. dfdx's own
    /// 3-d forward loops over the rows with one small product each, forward and backward.
    fn linear<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
    ) -> States<O, Self, T> {
        linear::linear(lin, x)
    }

    /// `linear(x) + residual` (a layer's output added back to its input).
    fn linear_residual<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
        residual: States<O, Self, T>,
    ) -> States<O, Self, T> {
        Self::linear(lin, x) + residual
    }

    /// `gelu_erf(linear(x))` (the feed-forward up-projection of BERT).
    fn linear_gelu_erf<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
    ) -> States<O, Self, T> {
        Self::gelu_erf(Self::linear(lin, x))
    }

    /// `gelu_tanh(linear(x))`.
    fn linear_gelu_tanh<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
    ) -> States<O, Self, T> {
        Self::gelu_tanh(Self::linear(lin, x))
    }
}

/// Makes glibc keep freed memory for reuse (no trimming, no per-allocation mmap) and gives
/// every thread the main heap (one arena): a training step frees and re-allocates the same
/// activation-sized buffers every time, and returning them to the kernel costs page faults and
/// zeroing on every step (15% of a step before). One arena, because a step runs on a rayon
/// worker ([`on_pool`]), and glibc unmaps a worker arena's empty 64 MiB heaps whatever the trim
/// threshold (me5-small's shape: 90,000 page faults per step, 10% slower than on the main heap).
///
/// A process-wide policy, so the library never applies it by itself: a program calls this
/// first thing in `main` (the `clirlab` binary, the examples and the step benchmark do), before
/// it starts a thread, since glibc fixes the number of arenas when a second thread first
/// allocates (called later, the thresholds still apply). It changes speed, never results.
/// Applied at most once; not with `CLIRLAB_KERNELS=reference`, so that the "before" of a
/// measurement keeps glibc's defaults. Returns whether the settings are applied (only glibc
/// on Linux has them).
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var_os("CLIRLAB_KERNELS").is_some_and(|v| v == "reference") {
                return;
            }
            // SAFETY: mallopt only changes the allocator's thresholds and takes its own lock.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
                // 32 MiB, glibc's largest (activations of me5-small's shape are ≤ 26 MB).
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
            MALLOC_TUNED.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    malloc_tuned()
}

static MALLOC_TUNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`tune_malloc`] applied the allocator settings in this process.
pub fn malloc_tuned() -> bool {
    MALLOC_TUNED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `f` on a thread of rayon's pool (at once if this is one) and waits for it. The kernels
/// split their loops over the pool: called from outside it, every loop is handed to the pool
/// and the caller sleeps until it is done, two futex round trips per loop, hundreds per step
/// (`transformer_tiny`: 15% of the step in scheduling, 20% more steps/s on a worker). From a
/// worker, a loop keeps one half and the other worker steals the rest.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Whether the CPU runs the fused kernels: yes unless `CLIRLAB_KERNELS=reference` (read once),
/// which selects the plain dfdx compositions, for before/after measurements in one binary.
pub fn fused_on_cpu() -> bool {
    static FUSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FUSED.get_or_init(|| std::env::var("CLIRLAB_KERNELS").map_or(true, |v| v != "reference"))
}

impl Kernels for Cpu {
    fn embed_with_positions<const V: usize, const S: usize, const M: usize, T: Tape<f32, Self>>(
        tokens: &Embedding<V, M, f32, Self>,
        positions: &Embedding<S, M, f32, Self>,
        ids: Tensor<(usize, usize), usize, Self, T>,
    ) -> States<M, Self, T> {
        if !fused_on_cpu() {
            return reference::embed_with_positions(tokens, positions, ids);
        }
        embedding::embed_with_positions(tokens, positions, ids)
    }

    fn layer_norm<const M: usize, T: Tape<f32, Self>>(
        norm: &LayerNorm1D<M, f32, Self>,
        x: States<M, Self, T>,
    ) -> States<M, Self, T> {
        if !fused_on_cpu() {
            return reference::layer_norm(norm, x);
        }
        layer_norm::layer_norm(norm, x)
    }

    fn gelu_erf<S: Shape, T: Tape<f32, Self>>(x: Tensor<S, f32, Self, T>) -> Tensor<S, f32, Self, T> {
        if !fused_on_cpu() {
            return reference::gelu_erf(x);
        }
        gelu::gelu(x, gelu::Kind::Erf)
    }

    fn gelu_tanh<S: Shape, T: Tape<f32, Self>>(x: Tensor<S, f32, Self, T>) -> Tensor<S, f32, Self, T> {
        if !fused_on_cpu() {
            return reference::gelu_tanh(x);
        }
        gelu::gelu(x, gelu::Kind::Tanh)
    }

    fn linear<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
    ) -> States<O, Self, T> {
        if !fused_on_cpu() {
            return reference::linear(lin, x);
        }
        cpu_linear::linear(lin, x, None, None)
    }

    fn linear_residual<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
        residual: States<O, Self, T>,
    ) -> States<O, Self, T> {
        if !fused_on_cpu() {
            return reference::linear(lin, x) + residual;
        }
        cpu_linear::linear(lin, x, None, Some(residual))
    }

    fn linear_gelu_erf<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
    ) -> States<O, Self, T> {
        if !fused_on_cpu() {
            return reference::gelu_erf(reference::linear(lin, x));
        }
        cpu_linear::linear(lin, x, Some(gelu::Kind::Erf), None)
    }

    fn linear_gelu_tanh<const I: usize, const O: usize, T: Tape<f32, Self>>(
        lin: &Linear<I, O, f32, Self>,
        x: States<I, Self, T>,
    ) -> States<O, Self, T> {
        if !fused_on_cpu() {
            return reference::gelu_tanh(reference::linear(lin, x));
        }
        cpu_linear::linear(lin, x, Some(gelu::Kind::Tanh), None)
    }

    fn masked_attention<const M: usize, T: Tape<f32, Self>>(
        q: States<M, Self, T>,
        k: States<M, Self, T>,
        v: States<M, Self, T>,
        key_mask: &Tensor<(usize, usize), f32, Self>,
        heads: usize,
    ) -> States<M, Self, T> {
        if !fused_on_cpu() {
            return reference::masked_attention(q, k, v, key_mask, heads);
        }
        attention::masked_attention(q, k, v, key_mask, heads)
    }

    fn self_attention<const M: usize, T: Tape<f32, Self>>(
        projections: [&Linear<M, M, f32, Self>; 3],
        x: States<M, Self, T>,
        key_mask: &Tensor<(usize, usize), f32, Self>,
        heads: usize,
    ) -> States<M, Self, T> {
        if !fused_on_cpu() {
            return reference::self_attention(projections, x, key_mask, heads);
        }
        attention::self_attention(projections, x, key_mask, heads)
    }
}

#[cfg(feature = "cuda")]
impl Kernels for Cuda {}
