//! The gradient of one me5-small training step, for a side-by-side check against PyTorch
//! (`benchmarks/torch_grad_check.py` computes the same on the same pairs):
//!
//! ```text
//! cargo run --release --example me5_grad_check -- PAIRS.tsv [TOP_LAYERS] [STEPS]
//! ```
//! PAIRS.tsv: rows `id<TAB>query<TAB>passage` (the first 32 are used). Prints, per step, the
//! InfoNCE loss (temperature 0.05) and the global gradient norm of the trainable layers, with
//! AdamW at lr 1e-4 (weight decay 0.01) between steps; no dropout, no clipping.

use anyhow::{Context, Result};
use clirlab::model::bert::{self, FineTune, encode};
use clirlab::model::{OptimizerKind, OptimizerSettings, ResolvedDevice, StepInput};
use clirlab::tokenizer::{Side, Tokenizer};

fn main() -> Result<()> {
    // The allocator settings of the `clirlab` binary, which the timings should share.
    clirlab::model::kernels::tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pairs = std::fs::read_to_string(args.first().context("usage: me5_grad_check PAIRS.tsv [TOP] [STEPS]")?)?;
    let top: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let steps: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let rows: Vec<(&str, &str)> = pairs
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.nth(1)?, f.next()?))
        })
        .take(32)
        .collect();
    let dir = encode::resolve_model("me5-small", true)?;
    let shape = clirlab::model::bert::folder::Shape::read(&dir)?;
    let tokenizer = Tokenizer::load_backbone(
        &dir.join("tokenizer.json"),
        ["query: ".into(), "passage: ".into()],
        u32::try_from(shape.pad_id)?,
        shape.vocab,
    )?;
    let texts: Vec<(&str, Side)> = rows
        .iter()
        .map(|(q, _)| (*q, Side::Query))
        .chain(rows.iter().map(|(_, p)| (*p, Side::Passage)))
        .collect();
    let batch = tokenizer.batch_sides(&texts, 64)?;
    let settings = OptimizerSettings {
        kind: OptimizerKind::Adamw,
        lr: 1e-4,
        weight_decay: 0.01,
    };
    let fine_tune = FineTune {
        top_layers: top,
        embeddings: false,
        word_embeddings: false,
    };
    let mut encoder = bert::load(&dir, None, fine_tune, settings, ResolvedDevice::Cpu)?;
    for step in 0..steps {
        let loss = encoder.train_step(&StepInput {
            batch: &batch,
            negatives: 0,
            temperature: 0.05,
            ot: None,
            clip_norm: None,
        })?;
        println!("step {step} loss {:.6} grad_norm {:.6}", loss.info_nce, loss.grad_norm);
    }
    Ok(())
}
