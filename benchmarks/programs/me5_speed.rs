//! Speed of the me5-small encoder on this machine (needs the prepared model):
//!
//! ```text
//! cargo run --release --example me5_speed -- forward       # texts/s, batch 32 × 40 tokens
//! cargo run --release --example me5_speed -- top2 3        # s/step, 32 pairs × 64 tokens, top 2 layers
//! cargo run --release --example me5_speed -- top2-cached 3 # the same from given layer-10 states
//! cargo run --release --example me5_speed -- no-words 2    # every layer and embedding but the word table
//! cargo run --release --example me5_speed -- full 2        # everything (AdamW over 118M parameters)
//! ```
//! Peak memory: run it under `/usr/bin/time -v`.
//!
//! `CLIRLAB_DEVICE` picks the device as the experiment key `device` does (default `auto`; on
//! CUDA the step runs dfdx's device-generic operations); `ME5_SPEED_MODEL=DIR` times the model
//! folder DIR instead of the prepared me5-small (e.g. one of random weights made by
//! `benchmarks/me5_random_model.py` where the real weights cannot be fetched).

use anyhow::{Context, Result};
use clirlab::model::bert::{self, FineTune, encode};
use clirlab::model::{DeviceSpec, OptimizerKind, OptimizerSettings, StepInput};
use clirlab::tokenizer::TokenBatch;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn batch(rng: &mut impl Rng, rows: usize, len: usize) -> TokenBatch {
    let mut ids = Vec::with_capacity(rows * len);
    for _ in 0..rows {
        ids.push(0);
        ids.extend((0..len - 2).map(|_| rng.gen_range(5..250_000)));
        ids.push(2);
    }
    TokenBatch {
        ids,
        mask: vec![1.0; rows * len],
        rows,
        len,
    }
}

fn main() -> Result<()> {
    // The allocator settings of the `clirlab` binary, which the timings should share.
    clirlab::model::kernels::tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("forward");
    let repeats: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let device = match std::env::var("CLIRLAB_DEVICE") {
        Ok(v) => v.parse::<DeviceSpec>().with_context(|| format!("CLIRLAB_DEVICE={v}"))?,
        Err(_) => DeviceSpec::Auto,
    }
    .resolve()?;
    let dir = match std::env::var_os("ME5_SPEED_MODEL") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => encode::resolve_model("me5-small", true)?,
    };
    let fine_tune = match mode {
        "forward" => FineTune {
            top_layers: 0,
            embeddings: false,
            word_embeddings: false,
        },
        "top2" | "top2-cached" => FineTune {
            top_layers: 2,
            embeddings: false,
            word_embeddings: false,
        },
        "no-words" => FineTune {
            top_layers: 12,
            embeddings: true,
            word_embeddings: false,
        },
        "full" => FineTune::full(12),
        other => anyhow::bail!("unknown mode {other}: forward | top2 | top2-cached | no-words | full"),
    };
    let settings = OptimizerSettings {
        kind: OptimizerKind::Adamw,
        lr: 5e-5,
        weight_decay: 0.01,
    };
    // As every cell does: OpenBLAS when it is prepared, else the built-in GEMM.
    eprintln!(
        "device {device}; CPU matrix products: {}",
        clirlab::model::select_blas(false, false)?
    );
    let started = Instant::now();
    let mut model =
        bert::load(&dir, None, fine_tune, settings, device).with_context(|| format!("loading {}", dir.display()))?;
    eprintln!(
        "loaded in {:.1} s; trainable parameters: {}",
        started.elapsed().as_secs_f64(),
        model.num_trainable_params()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    if mode == "forward" {
        let b = batch(&mut rng, 32, 40);
        model.embed(&b)?;
        let t = Instant::now();
        for _ in 0..repeats {
            model.embed(&b)?;
        }
        let s = t.elapsed().as_secs_f64() / repeats as f64;
        println!("forward batch 32 × 40 tokens: {s:.3} s/batch, {:.1} texts/s", 32.0 / s);
        return Ok(());
    }
    let b = batch(&mut rng, 64, 64);
    let input = StepInput {
        batch: &b,
        negatives: 0,
        temperature: 0.05,
        ot: None,
        clip_norm: Some(1.0),
    };
    if mode == "top2-cached" {
        let t = Instant::now();
        let states = model.hidden_states(&b, 10)?;
        eprintln!("layer-10 states of the batch: {:.2} s", t.elapsed().as_secs_f64());
        let cached = Some(bert::LayerStates {
            after_layer: 10,
            states: &states,
        });
        model.train_step_from_states(&input, cached, None)?;
        let t = Instant::now();
        for _ in 0..repeats {
            model.train_step_from_states(&input, cached, None)?;
        }
        let s = t.elapsed().as_secs_f64() / repeats as f64;
        println!("train step top2 from cached layer-10 states, 32 pairs × 64 tokens: {s:.3} s/step");
        return Ok(());
    }
    let t = Instant::now();
    let first = model.train_step(&input)?;
    eprintln!("first step {:.2} s, loss {:.4}", t.elapsed().as_secs_f64(), first.total);
    let t = Instant::now();
    for _ in 0..repeats {
        model.train_step(&input)?;
    }
    let s = t.elapsed().as_secs_f64() / repeats as f64;
    println!("train step {mode}, 32 pairs × 64 tokens: {s:.3} s/step");
    Ok(())
}
