//! GFLOP/s of the CPU kernels' matrix products on me5-small's step shapes (4,096 token rows,
//! hidden 384, FFN 1,536: forward x·Wᵀ, backward dz·W and dzᵀ·x), on the library a cell would
//! use: `cargo run --release --example gemm_shapes` (OpenBLAS when prepared under the data
//! dir, `CLIRLAB_BLAS=off` for the `gemm` crate). `benchmarks/gemm_shapes.py` is PyTorch's side.

use clirlab::model::kernels::blas;
use std::time::Instant;

fn main() {
    let backend = clirlab::model::select_blas(false, false).expect("CLIRLAB_BLAS names a loadable library");
    println!("| product (m × n × k) | {backend} GFLOP/s |");
    println!("|---|---|");
    // (m, n, k, lhs transposed, rhs transposed), as `kernels::cpu_linear` calls them.
    let shapes = [
        ("x·Wᵀ", 4096, 384, 384, false, true),
        ("x·Wᵀ", 4096, 1152, 384, false, true),
        ("x·Wᵀ", 4096, 1536, 384, false, true),
        ("x·Wᵀ", 4096, 384, 1536, false, true),
        ("dz·W", 4096, 384, 384, false, false),
        ("dz·W", 4096, 384, 1152, false, false),
        ("dz·W", 4096, 384, 1536, false, false),
        ("dzᵀ·x", 384, 384, 4096, true, false),
        ("dzᵀ·x", 1536, 384, 4096, true, false),
        ("dzᵀ·x", 384, 1536, 4096, true, false),
    ];
    for (what, m, n, k, lhs_t, rhs_t) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let lhs = (&a[..], if lhs_t { (1, m) } else { (k, 1) });
        let rhs = (&b[..], if rhs_t { (1, k) } else { (n, 1) });
        let mut c = vec![0.0f32; m * n];
        let mut run = || blas::product_into(&mut c, (m, n, k), lhs, rhs);
        run();
        let reps = 10;
        let started = Instant::now();
        for _ in 0..reps {
            run();
        }
        let seconds = started.elapsed().as_secs_f64() / f64::from(reps);
        println!(
            "| {what} {m} × {n} × {k} | {:.1} |",
            2.0 * (m * n * k) as f64 / seconds / 1e9
        );
    }
}
