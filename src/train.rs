//! The training loop of one cell: hybrid batches from the sampler, InfoNCE steps on the
//! encoder, learning-rate warm-up, and a per-step log.

use crate::data::format::Dataset;
use crate::grid::CellConfig;
use crate::model::{self, OptimizerSettings, TrainableEncoder};
use crate::sampler::HybridSampler;
use crate::schedule::progress;
use crate::tokenizer::TextEncoder;
use anyhow::{Result, bail};
use serde::Serialize;

/// One row of `train_log.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRow {
    pub step: usize,
    pub progress: f64,
    pub target_share: f64,
    pub cross_lingual: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub loss: f32,
}

pub struct Trained {
    pub encoder: Box<dyn TrainableEncoder>,
    pub log: Vec<LogRow>,
}

/// Learning rate at `step`: linear warm-up to `lr`, then constant.
pub fn learning_rate(lr: f64, warmup_steps: usize, step: usize) -> f64 {
    if step < warmup_steps {
        lr * (step + 1) as f64 / warmup_steps as f64
    } else {
        lr
    }
}

/// Trains a fresh encoder for `cfg` on the training pairs of `dataset`; `on_step` is called
/// after every step (progress reporting). A non-finite loss fails the cell.
pub fn train(
    cfg: &CellConfig,
    dataset: &Dataset,
    tokenizer: &TextEncoder,
    mut on_step: impl FnMut(&LogRow),
) -> Result<Trained> {
    let cross: Vec<_> = cfg
        .data
        .languages
        .iter()
        .flat_map(|lang| dataset.cross.get(lang).into_iter().flatten())
        .collect();
    let t = &cfg.train;
    let mut sampler = HybridSampler::new(
        &dataset.mono,
        cross,
        cfg.schedule.clone(),
        cfg.sampler.mixing,
        t.batch_size,
        t.steps,
        cfg.seed,
    )?;
    let settings = OptimizerSettings {
        kind: t.optimizer,
        lr: t.lr,
        weight_decay: t.weight_decay,
    };
    // The model's initial weights and the sampler draw from separate seeded streams.
    let mut encoder = model::build(
        cfg.model.preset,
        cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED,
        settings,
    );
    let mut log = Vec::with_capacity(t.steps);
    for step in 0..t.steps {
        let batch = sampler.batch(step);
        let texts: Vec<&str> = batch
            .pairs
            .iter()
            .map(|p| p.query.as_str())
            .chain(batch.pairs.iter().map(|p| p.passage.as_str()))
            .collect();
        let tokens = tokenizer.batch(&texts, cfg.model.max_len)?;
        let lr = learning_rate(t.lr, t.warmup_steps, step);
        encoder.set_learning_rate(lr);
        let loss = encoder.train_step(&tokens, cfg.model.temperature)?;
        if !loss.is_finite() {
            bail!("training diverged: loss is {loss} at step {step} (lower train.lr or raise model.temperature)");
        }
        let row = LogRow {
            step,
            progress: progress(step, t.steps),
            target_share: batch.target_share,
            cross_lingual: batch.cross_lingual,
            batch_size: batch.pairs.len(),
            lr,
            loss,
        };
        on_step(&row);
        log.push(row);
    }
    Ok(Trained { encoder, log })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_linear_then_flat() {
        assert_eq!(learning_rate(1.0, 4, 0), 0.25);
        assert_eq!(learning_rate(1.0, 4, 3), 1.0);
        assert_eq!(learning_rate(1.0, 4, 10), 1.0);
        assert_eq!(learning_rate(0.5, 0, 0), 0.5);
    }
}
