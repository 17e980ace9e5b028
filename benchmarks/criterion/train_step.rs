//! Training steps per second of each model preset (InfoNCE, AdamW, clipping) on the device
//! `CLIRLAB_DEVICE` names (default auto): `cargo bench --bench train_step`. The side-by-side comparison with PyTorch is
//! `benchmarks/throughput.sh` (see BENCHMARKS.md).

#[path = "../common/training.rs"]
mod training;

use clirlab::model::{self, StepInput};
use criterion::{Criterion, criterion_group};

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    let device = training::device();
    for preset in training::PRESETS {
        let mut encoder = model::build(preset, 1, training::settings(), device).expect("encoder on the device");
        let tokens = training::batch(preset);
        let input = StepInput {
            batch: &tokens,
            negatives: 0,
            temperature: 0.05,
            ot: None,
            clip_norm: Some(5.0),
        };
        group.bench_function(format!("{preset:?}/batch32x2/len32"), |b| {
            b.iter(|| encoder.train_step(&input).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);

/// criterion_main!'s `main`, after the allocator settings of the `clirlab` binary.
fn main() {
    clirlab::model::kernels::tune_malloc();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
