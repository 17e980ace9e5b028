//! OpenBLAS for the CPU kernels (unless `CLIRLAB_OFFLINE=1`): the pinned `scipy-openblas32`
//! wheel is really fetched into a temporary data directory, and its products are checked
//! against f64 on every operand layout, in a process of their own (a loaded BLAS is
//! process-wide, and the other tests of this binary must keep the built-in GEMM's numbers).

use clirlab::data::prepare::openblas;
use clirlab::model::kernels::blas;
use std::process::Command;

const UNDER_TEST: &str = "CLIRLAB_BLAS_UNDER_TEST";

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn openblas_is_prepared_and_matches_f64_products() {
    let dir = tempfile::tempdir().unwrap();
    let library = openblas::prepare_openblas(dir.path(), false).unwrap();
    assert_eq!(openblas::prepared_library(dir.path()).unwrap(), library);
    // Prepared once: a second call reuses the folder.
    let before = std::fs::metadata(&library).unwrap().modified().unwrap();
    openblas::prepare_openblas(dir.path(), false).unwrap();
    assert_eq!(std::fs::metadata(&library).unwrap().modified().unwrap(), before);
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "blas::products_on_the_loaded_library",
            "--nocapture",
        ])
        .env(UNDER_TEST, &library)
        .status()
        .unwrap();
    assert!(status.success(), "the OpenBLAS checks failed (output above)");
}

#[test]
#[ignore = "run by openblas_is_prepared_and_matches_f64_products, in a process of its own"]
fn products_on_the_loaded_library() {
    let library = std::env::var(UNDER_TEST).expect("set by the calling test");
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task lists this process's threads")
            .count()
    };
    let threads_before = threads();
    blas::load(std::path::Path::new(&library)).unwrap();
    // OpenBLAS's own worker threads (one per core beyond the first, started as it loads)
    // are joined again: the kernels call it single-threaded, from rayon's threads.
    assert_eq!(threads(), threads_before, "OpenBLAS's threads outlive the load");
    assert_eq!(blas::backend(), "openblas");
    assert!(blas::loaded_config().unwrap().contains("OpenBLAS"));
    let (m, n, k) = (301, 67, 129);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
    let mut want = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                .sum::<f64>() as f32;
        }
    }
    // Repeatable on a thread count (rows are split, never the sum), and right on any.
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut c = vec![0.0f32; m * n];
        pool.install(|| blas::product_into(&mut c, (m, n, k), (&a, (k, 1)), (&b, (n, 1))));
        c
    };
    for threads in [1, 2, 3] {
        let c = on(threads);
        assert_eq!(c, on(threads), "{threads} threads: not repeatable");
        for (g, w) in c.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{threads} threads: {g} vs {w}");
        }
    }
    blas::self_check().unwrap();
}

/// The kernels' malloc settings are a program's choice: linking the library applies nothing,
/// and the explicit call applies them (glibc only; not with `CLIRLAB_KERNELS=reference`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn malloc_is_tuned_by_the_explicit_call_only() {
    use clirlab::model::kernels;
    assert!(!kernels::malloc_tuned(), "the library tuned malloc without being asked");
    let wanted = std::env::var_os("CLIRLAB_KERNELS").is_none_or(|v| v != "reference");
    assert_eq!(kernels::tune_malloc(), wanted);
    assert_eq!(kernels::malloc_tuned(), wanted);
}
