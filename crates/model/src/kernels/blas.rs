//! The large matrix products of the CPU kernels, on an optimised BLAS when one is loaded.
//!
//! Why: profiled, the GEMMs are most of a transformer step (me5-small's shape: over 70% with
//! the fused kernels), and the `gemm` crate reaches 40–95 GFLOP/s on this machine's shapes
//! where OpenBLAS 0.3.31 reaches 120–155 (`BENCHMARKS.md`). The library is not linked at
//! build time: the prepared copy of PyPI's `scipy-openblas32` wheel (see
//! `data::prepare::openblas`) is opened at run time with [`load`], so the crate builds
//! anywhere and falls back to the `gemm` crate when no library is loaded.
//!
//! Threads: the BLAS runs single-threaded and the product is split over rayon's pool by
//! blocks of rows of the result, so there is one thread pool (no OpenBLAS threads spinning
//! beside rayon's on 2 cores). The blocks depend only on the sizes and the thread count, so a
//! run repeats bit for bit on the same machine and thread count; on another thread count the
//! rows at block edges may round differently (OpenBLAS's kernels treat edge rows apart).

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `cblas_sgemm` (row-major layout, transposes, sizes, alpha, A, lda, B, ldb, beta, C, ldc).
type Sgemm =
    unsafe extern "C" fn(i32, i32, i32, i32, i32, i32, f32, *const f32, i32, *const f32, i32, f32, *mut f32, i32);

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

/// Symbol names of the wheel's OpenBLAS (it prefixes every symbol with `scipy_`).
const SGEMM_SYMBOL: &[u8] = b"scipy_cblas_sgemm";
const THREADS_SYMBOL: &[u8] = b"scipy_openblas_set_num_threads";
const CONFIG_SYMBOL: &[u8] = b"scipy_openblas_get_config";
/// Joins OpenBLAS's worker threads (not prefixed: an internal symbol the library exports).
const SHUTDOWN_THREADS_SYMBOL: &[u8] = b"blas_thread_shutdown_";

struct Blas {
    sgemm: Sgemm,
    path: PathBuf,
    config: String,
    // Keeps the library mapped for the life of the process (the function pointers point into it).
    _library: libloading::Library,
}

static BLAS: OnceLock<Blas> = OnceLock::new();

/// Opens the OpenBLAS library at `path` (once per process; later calls with the same path
/// are no-ops, with another path an error) and routes the kernels' large products to it.
pub fn load(path: &Path) -> Result<()> {
    if let Some(blas) = BLAS.get() {
        if blas.path == path {
            return Ok(());
        }
        bail!(
            "a BLAS is already loaded from {}; cannot switch to {} in the same process",
            blas.path.display(),
            path.display()
        );
    }
    // SAFETY: loading runs the library's initialisers; the file is the sha256-checked copy
    // of a pinned wheel (data::prepare::openblas), whose initialisers only set up OpenBLAS.
    let library = unsafe { libloading::Library::new(path) }
        .with_context(|| format!("cannot load the BLAS library {}", path.display()))?;
    // SAFETY: the symbols have these C signatures in OpenBLAS's cblas.h / openblas_config.h.
    let (sgemm, set_threads, config) = unsafe {
        let sgemm: Sgemm = *library
            .get::<Sgemm>(SGEMM_SYMBOL)
            .with_context(|| format!("{} has no scipy_cblas_sgemm", path.display()))?;
        let set_threads = *library
            .get::<unsafe extern "C" fn(i32)>(THREADS_SYMBOL)
            .with_context(|| format!("{} has no scipy_openblas_set_num_threads", path.display()))?;
        let config = *library
            .get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(CONFIG_SYMBOL)
            .with_context(|| format!("{} has no scipy_openblas_get_config", path.display()))?;
        (sgemm, set_threads, config)
    };
    // SAFETY: the symbol, when present, has this signature in OpenBLAS's blas_server.c.
    let shutdown_threads = unsafe { library.get::<unsafe extern "C" fn() -> i32>(SHUTDOWN_THREADS_SYMBOL) }
        .ok()
        .map(|f| *f);
    // SAFETY: plain C calls without arguments that need to outlive them.
    let config = unsafe {
        set_threads(1);
        // Why: loading started one OpenBLAS thread per core, which spin-wait for work for
        // about 0.2 s before they sleep (profiled: 1.4% of a short transformer_tiny run,
        // beside the step's own threads). Single-threaded calls never wake them again, so
        // they are joined now; the library restarts them only for a multi-threaded call.
        if let Some(shutdown) = shutdown_threads {
            shutdown();
        }
        std::ffi::CStr::from_ptr(config()).to_string_lossy().into_owned()
    };
    let blas = Blas {
        sgemm,
        path: path.to_path_buf(),
        config,
        _library: library,
    };
    if BLAS.set(blas).is_err() {
        // Another thread loaded one first; accept it only if it is the same file.
        return load(path);
    }
    Ok(())
}

/// Which GEMM the kernels use: `"openblas"` once [`load`] succeeded, else `"gemm-crate"`.
/// Part of the frozen-state store's key and of a cell's log, since the two sum in different
/// orders (results agree to float rounding, not bit for bit).
pub fn backend() -> &'static str {
    if BLAS.get().is_some() { "openblas" } else { "gemm-crate" }
}

/// OpenBLAS's own description of the loaded build (version, kernel chosen for this CPU).
pub fn loaded_config() -> Option<&'static str> {
    BLAS.get().map(|b| b.config.as_str())
}

/// One operand: its pointer and (row, column) strides, one of which must be 1. Private to the
/// kernels: outside them, [`product`] takes slices.
#[derive(Clone, Copy)]
pub(super) struct Operand {
    /// First element.
    ptr: *const f32,
    /// Row stride.
    rs: usize,
    /// Column stride.
    cs: usize,
}

// SAFETY: an Operand is a read-only view handed to worker threads that only read it.
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

impl Operand {
    /// The matrix at `ptr` with (row, column) strides `(rs, cs)`.
    pub(super) fn strided(ptr: *const f32, (rs, cs): (usize, usize)) -> Self {
        Operand { ptr, rs, cs }
    }

    /// (transpose flag, leading dimension) for cblas, or None if neither stride is 1.
    fn cblas(&self) -> Option<(i32, i32)> {
        if self.cs == 1 {
            Some((NO_TRANS, self.rs.max(1) as i32))
        } else if self.rs == 1 {
            Some((TRANS, self.cs as i32))
        } else {
            None
        }
    }
}

struct Dst(*mut f32);
// SAFETY: each worker writes a disjoint block of rows.
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

/// dst (m × n, row-major, contiguous) = [dst +] lhs (m × k) · rhs (k × n), on rayon's threads.
///
/// # Safety
/// The pointers and strides must describe valid, non-overlapping matrices of these sizes.
pub(super) unsafe fn gemm(m: usize, n: usize, k: usize, dst: *mut f32, accumulate: bool, lhs: Operand, rhs: Operand) {
    if BLAS.get().is_none() || lhs.cblas().is_none() || rhs.cblas().is_none() {
        let threads = gemm::Parallelism::Rayon(rayon::current_num_threads());
        // SAFETY: forwarded from the caller.
        unsafe { gemm_crate((m, n, k), (dst, n), accumulate, 1.0, lhs, rhs, threads) };
        return;
    }
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    // Blocks of whole rows, at least 16 rows each, one or a few per thread.
    let block = m.div_ceil(threads).max(16);
    let dst = Dst(dst);
    // References, so the closure captures the Sync wrappers rather than their raw fields.
    let (dst, lhs, rhs) = (&dst, &lhs, &rhs);
    (0..m.div_ceil(block)).into_par_iter().for_each(|b| {
        let r0 = b * block;
        let rows = block.min(m - r0);
        // SAFETY: rows r0.. of lhs and dst are inside the caller's matrices; blocks are disjoint.
        unsafe {
            let block_lhs = Operand {
                ptr: lhs.ptr.add(r0 * lhs.rs),
                ..*lhs
            };
            gemm_on_this_thread((rows, n, k), dst.0.add(r0 * n), n, accumulate, 1.0, block_lhs, *rhs);
        }
    });
}

/// dst (m × n, row-major with row stride `dst_rs`) = [dst +] alpha · lhs (m × k) · rhs (k × n),
/// on the calling thread only: for callers that run many small products in parallel
/// themselves (the attention's per-(row, head) products, where OpenBLAS's single-threaded
/// kernel beats the `gemm` crate's).
///
/// # Safety
/// The pointers and strides must describe valid, non-overlapping matrices of these sizes.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_on_this_thread(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    alpha: f32,
    lhs: Operand,
    rhs: Operand,
) {
    let beta = if accumulate { 1.0 } else { 0.0 };
    if let (Some(blas), Some((ta, lda)), Some((tb, ldb))) = (BLAS.get(), lhs.cblas(), rhs.cblas()) {
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: forwarded from the caller; the library runs single-threaded (set in `load`).
        unsafe {
            (blas.sgemm)(
                ROW_MAJOR,
                ta,
                tb,
                m as i32,
                n as i32,
                k as i32,
                alpha,
                lhs.ptr,
                lda,
                rhs.ptr,
                ldb,
                beta,
                dst,
                dst_rs as i32,
            )
        };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm_crate(
            (m, n, k),
            (dst, dst_rs),
            accumulate,
            alpha,
            lhs,
            rhs,
            gemm::Parallelism::None,
        )
    }
}

/// out (m × n, row-major) = `lhs · rhs` for `lhs` (m × k) and `rhs` (k × n), each a slice read with
/// its (row, column) strides, one of them 1 (a row-major matrix or a transposed one), on
/// rayon's threads as the kernels run it: the safe entry point for tests and benchmarks.
/// Panics if a stride pair has no 1, a matrix reaches past its slice, or `out` is not m × n.
pub fn product_into(
    out: &mut [f32],
    (m, n, k): (usize, usize, usize),
    (lhs, lhs_strides): (&[f32], (usize, usize)),
    (rhs, rhs_strides): (&[f32], (usize, usize)),
) {
    let fits = |values: &[f32], (rows, cols): (usize, usize), (rs, cs): (usize, usize)| {
        (rs == 1 || cs == 1) && (rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < values.len())
    };
    assert!(
        out.len() == m * n && fits(lhs, (m, k), lhs_strides) && fits(rhs, (k, n), rhs_strides),
        "blas::product_into: {} values for a {m} × {n} result, a {m} × {k} matrix with strides {lhs_strides:?} in {} values and a {k} × {n} one \
         with strides {rhs_strides:?} in {} values: expected m × n values and one stride of 1 each, \
         inside the slices",
        out.len(),
        lhs.len(),
        rhs.len()
    );
    let (lhs, rhs) = (
        Operand::strided(lhs.as_ptr(), lhs_strides),
        Operand::strided(rhs.as_ptr(), rhs_strides),
    );
    // SAFETY: both operands lie inside their slices and `out` holds m × n (checked); `out` is
    // borrowed mutably, so it overlaps neither.
    unsafe { gemm(m, n, k, out.as_mut_ptr(), false, lhs, rhs) };
}

/// `a · bᵀ` for row-major `a` (m × k) and `b` (n × k): m × n, row-major. The safe entry point
/// for callers outside the kernels (retrieval scores queries against documents with it).
pub fn product_transposed(a: &[f32], b: &[f32], k: usize) -> Vec<f32> {
    assert!(
        k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k),
        "product_transposed: {} and {} values are not rows of {k}",
        a.len(),
        b.len()
    );
    let (m, n) = (a.len() / k, b.len() / k);
    let mut out = vec![0.0f32; m * n];
    let lhs = Operand {
        ptr: a.as_ptr(),
        rs: k,
        cs: 1,
    };
    // bᵀ is k × n: element (row r, column c) is b[c·k + r].
    let rhs = Operand {
        ptr: b.as_ptr(),
        rs: 1,
        cs: k,
    };
    // SAFETY: the slices hold m × k and n × k values, and `out` m × n; `out` is fresh.
    unsafe { gemm(m, n, k, out.as_mut_ptr(), false, lhs, rhs) };
    out
}

/// dst (row stride `dst_rs`) = [dst +] alpha · lhs·rhs with the `gemm` crate, on `threads`.
///
/// # Safety
/// As for [`gemm_on_this_thread`]: the pointers and strides must describe valid,
/// non-overlapping matrices of these sizes.
unsafe fn gemm_crate(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    accumulate: bool,
    alpha: f32,
    lhs: Operand,
    rhs: Operand,
    threads: gemm::Parallelism,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.ptr,
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            alpha,
            false,
            false,
            false,
            threads,
        )
    }
}

/// dst = [dst +] alpha · lhs·rhs in f64, lhs m × k and rhs k × n read through their (row,
/// column) strides, dst row-major with row stride `dst_rs`.
#[allow(clippy::too_many_arguments)]
fn reference_product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (&mut [f32], usize),
    accumulate: bool,
    alpha: f64,
    (lhs, lrs, lcs): (&[f32], usize, usize),
    (rhs, rrs, rcs): (&[f32], usize, usize),
) {
    for i in 0..m {
        for j in 0..n {
            let mut product = 0.0;
            for p in 0..k {
                product += f64::from(lhs[i * lrs + p * lcs]) * f64::from(rhs[p * rrs + j * rcs]);
            }
            let start = if accumulate {
                f64::from(dst[i * dst_rs + j])
            } else {
                0.0
            };
            dst[i * dst_rs + j] = (start + alpha * product) as f32;
        }
    }
}

/// Checks [`gemm`] on the backend in use against f64 products, on every combination of
/// transposed operands and accumulation and on shapes that do and do not split evenly into
/// row blocks: run after loading a library (`clirlab data prepare openblas`) and by the tests.
pub fn self_check() -> Result<()> {
    let mut state = 7u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    for &(m, n, k) in &[(1, 1, 1), (5, 3, 7), (37, 19, 23), (130, 64, 96)] {
        for (lhs_t, rhs_t, accumulate) in (0..8).map(|b| (b & 1 == 1, b & 2 == 2, b & 4 == 4)) {
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
            // A transposed operand is stored as its transpose, row-major.
            let (lrs, lcs) = if lhs_t { (1, m) } else { (k, 1) };
            let (rrs, rcs) = if rhs_t { (1, k) } else { (n, 1) };
            let lhs = Operand {
                ptr: a.as_ptr(),
                rs: lrs,
                cs: lcs,
            };
            let rhs = Operand {
                ptr: b.as_ptr(),
                rs: rrs,
                cs: rcs,
            };
            let tolerance = 1e-5 * (k as f32).sqrt();
            let check = |what: &str, got: &[f32], want: &[f32]| match got
                .iter()
                .zip(want)
                .find(|(g, w)| (*g - *w).abs() > tolerance * (1.0 + w.abs()))
            {
                Some((g, w)) => bail!(
                    "{} {what} self-check failed: {m}x{n}x{k} (lhs transposed {lhs_t}, rhs transposed {rhs_t}, \
                     accumulate {accumulate}): {g} where f64 gives {w}",
                    backend()
                ),
                None => Ok(()),
            };
            let mut want = start.clone();
            reference_product(
                (m, n, k),
                (&mut want, n),
                accumulate,
                1.0,
                (&a, lrs, lcs),
                (&b, rrs, rcs),
            );
            let mut got = start.clone();
            // SAFETY: the operands and the destination have the stated sizes.
            unsafe { gemm(m, n, k, got.as_mut_ptr(), accumulate, lhs, rhs) };
            check("GEMM", &got, &want)?;
            // One thread, a scale, and a destination wider than the product (row stride n + 3),
            // whose extra columns must stay as they were.
            let wide = n + 3;
            let start: Vec<f32> = (0..m * wide).map(|_| next()).collect();
            let mut want = start.clone();
            reference_product(
                (m, n, k),
                (&mut want, wide),
                accumulate,
                0.125,
                (&a, lrs, lcs),
                (&b, rrs, rcs),
            );
            let mut got = start;
            // SAFETY: as above; the destination is m × wide.
            unsafe { gemm_on_this_thread((m, n, k), got.as_mut_ptr(), wide, accumulate, 0.125, lhs, rhs) };
            check("one-thread GEMM", &got, &want)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_gemm_matches_f64_products() {
        // Unit tests never load a library: this is the `gemm` crate path.
        assert_eq!(backend(), "gemm-crate");
        self_check().unwrap();
    }
}
