//! Training steps per second of each preset, as a Markdown table:
//! `[CLIRLAB_DEVICE=cuda] cargo run --release --example throughput -- [STEPS] [WORKLOAD…]`.
//! Same batch as `benchmarks/torch_throughput.py`: 32 query/passage pairs of 32 tokens, InfoNCE
//! with temperature 0.05, AdamW (lr 1e-3, weight decay 0.01), gradient clipping at 5. The
//! workload `me5_small_shape` (CPU only) is me5-small's encoder shape on 32 pairs of 64 tokens.
//! Naming workloads runs only those; `CLIRLAB_KERNELS=reference` runs the plain dfdx
//! compositions instead of the fused CPU kernels.

#[path = "../common/training.rs"]
mod training;

use clirlab::model::{self, StepInput};
use std::time::Instant;

fn main() {
    // The allocator settings of the `clirlab` binary, which the timings should share.
    clirlab::model::kernels::tune_malloc();
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse().expect("STEPS is a number")).unwrap_or(30);
    let only: Vec<String> = args.collect();
    let device = training::device();
    // The prepared OpenBLAS when there is one (`clirlab data prepare openblas`), as in a cell.
    let gemm = model::select_blas(false, false).expect("CLIRLAB_BLAS names a loadable library");
    eprintln!("CPU matrix products: {gemm}");
    println!("| preset | dfdx steps/s ({device}) |");
    println!("|---|---|");
    let mut workloads: Vec<(String, Box<dyn FnOnce() -> training::Workload>)> = training::PRESETS
        .iter()
        .map(|&preset| {
            let name = serde_json::to_value(preset).unwrap().as_str().unwrap().to_string();
            let build: Box<dyn FnOnce() -> training::Workload> = Box::new(move || training::Workload {
                encoder: model::build(preset, 1, training::settings(), device).expect("encoder on the device"),
                batch: training::batch(preset),
            });
            (name, build)
        })
        .collect();
    workloads.push(("me5_small_shape".into(), Box::new(training::me5_shape)));
    for (name, build) in workloads {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let training::Workload { mut encoder, batch } = build();
        let input = StepInput {
            batch: &batch,
            negatives: 0,
            temperature: 0.05,
            ot: None,
            clip_norm: Some(5.0),
        };
        let warmup = if name == "me5_small_shape" { 1 } else { 3 };
        for _ in 0..warmup {
            encoder.train_step(&input).expect("warm-up step");
        }
        let started = Instant::now();
        for _ in 0..steps {
            encoder.train_step(&input).expect("step");
        }
        let rate = steps as f64 / started.elapsed().as_secs_f64();
        println!("| {name} | {rate:.3} |");
    }
}
