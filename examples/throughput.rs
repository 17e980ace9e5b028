//! Training steps per second of each preset, as a Markdown table:
//! `[CLIRLAB_DEVICE=cuda] cargo run --release --example throughput -- [STEPS]`. Same batch as
//! `benchmarks/torch_throughput.py`: 32 query/passage pairs of 32 tokens, InfoNCE with
//! temperature 0.05, AdamW (lr 1e-3, weight decay 0.01), gradient clipping at 5.

#[path = "../benches/common/training.rs"]
mod training;

use clirlab::model::{self, StepInput};
use std::time::Instant;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("STEPS is a number"))
        .unwrap_or(30);
    let device = training::device();
    println!("| preset | dfdx steps/s ({device}) |");
    println!("|---|---|");
    for preset in training::PRESETS {
        let mut encoder = model::build(preset, 1, training::settings(), device).expect("encoder on the device");
        let tokens = training::batch(preset);
        let input = StepInput {
            batch: &tokens,
            temperature: 0.05,
            ot: None,
            clip_norm: Some(5.0),
        };
        for _ in 0..3 {
            encoder.train_step(&input).expect("warm-up step");
        }
        let started = Instant::now();
        for _ in 0..steps {
            encoder.train_step(&input).expect("step");
        }
        let rate = steps as f64 / started.elapsed().as_secs_f64();
        println!(
            "| {} | {rate:.1} |",
            serde_json::to_value(preset).unwrap().as_str().unwrap()
        );
    }
}
