//! The training-throughput workload shared by `benchmarks/criterion/train_step.rs` and
//! `benchmarks/programs/throughput.rs`, so that both measure the same thing.

use clirlab::model::{DeviceSpec, OptimizerKind, OptimizerSettings, Preset, ResolvedDevice};
use clirlab::tokenizer::TokenBatch;

pub const PRESETS: [Preset; 5] = [
    Preset::Tiny,
    Preset::Small,
    Preset::Base,
    Preset::TransformerTiny,
    Preset::TransformerSmall,
];

/// The device named by `CLIRLAB_DEVICE` (as the experiment key `device`; default `auto`).
pub fn device() -> ResolvedDevice {
    let spec: DeviceSpec = std::env::var("CLIRLAB_DEVICE")
        .map(|s| s.parse().expect("CLIRLAB_DEVICE: auto, cpu, cuda or cuda:N"))
        .unwrap_or_default();
    spec.resolve().expect("CLIRLAB_DEVICE names a usable device")
}

/// AdamW, lr 1e-3, weight decay 0.01 (as `benchmarks/torch_throughput.py`).
pub fn settings() -> OptimizerSettings {
    OptimizerSettings {
        kind: OptimizerKind::Adamw,
        lr: 1e-3,
        weight_decay: 0.01,
    }
}

/// 32 query/passage pairs (64 rows) of 32 tokens with ids drawn deterministically from the
/// preset's vocabulary, past the two special tokens.
pub fn batch(preset: Preset) -> TokenBatch {
    let (rows, len, vocab) = (64, 32, preset.vocab_size());
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

/// An encoder and the batch it trains on.
#[allow(dead_code)]
pub struct Workload {
    pub encoder: Box<dyn clirlab::model::TrainableEncoder>,
    pub batch: TokenBatch,
}

/// me5-small's encoder shape (see `clirlab::model::build_me5_shape`) on 32 query/passage
/// pairs of 64 tokens.
#[allow(dead_code)]
pub fn me5_shape() -> Workload {
    let mut batch = batch(Preset::TransformerSmall);
    let (rows, len) = (64, 64);
    let mut state = 7u64;
    batch.ids = (0..rows * len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            2 + (state >> 33) as usize % (16384 - 2)
        })
        .collect();
    batch.mask = vec![1.0; rows * len];
    batch.len = len;
    Workload {
        encoder: clirlab::model::build_me5_shape(1, settings()),
        batch,
    }
}
