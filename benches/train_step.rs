//! Training steps per second of each model preset on the CPU (InfoNCE, AdamW, clipping):
//! `cargo bench --bench train_step`. The side-by-side comparison with PyTorch is
//! `benchmarks/throughput.sh` (see BENCHMARKS.md).

use clirlab::model::{self, OptimizerKind, OptimizerSettings, Preset, StepInput};
use clirlab::tokenizer::TokenBatch;
use criterion::{Criterion, criterion_group, criterion_main};

fn batch(vocab: usize, rows: usize, len: usize) -> TokenBatch {
    let mut state = 42u64;
    let ids = (0..rows * len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            2 + (state >> 33) as usize % (vocab - 2)
        })
        .collect();
    TokenBatch {
        ids,
        mask: vec![1.0; rows * len],
        rows,
        len,
    }
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    for preset in [
        Preset::Tiny,
        Preset::Small,
        Preset::Base,
        Preset::TransformerTiny,
        Preset::TransformerSmall,
    ] {
        let settings = OptimizerSettings {
            kind: OptimizerKind::Adamw,
            lr: 1e-3,
            weight_decay: 0.01,
        };
        let mut encoder = model::build(preset, 1, settings);
        let tokens = batch(preset.vocab_size(), 64, 32);
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
