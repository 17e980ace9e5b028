//! Training steps per second of each model preset on the CPU (InfoNCE, AdamW, clipping):
//! `cargo bench --bench train_step`. The side-by-side comparison with PyTorch is
//! `benchmarks/throughput.sh` (see BENCHMARKS.md).

#[path = "common/training.rs"]
mod training;

use clirlab::model::{self, StepInput};
use criterion::{Criterion, criterion_group, criterion_main};

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    for preset in training::PRESETS {
        let mut encoder = model::build(preset, 1, training::settings());
        let tokens = training::batch(preset);
        let input = StepInput {
            batch: &tokens,
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
criterion_main!(benches);
