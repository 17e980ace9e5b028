//! Validation during training: nDCG@10 on the validation split of the target languages at
//! evaluation steps, and early stopping on it.

use crate::grid::CellConfig;
use crate::retrieval;
use crate::spec::TrainConfig;
use anyhow::Result;
use clirlab_data::format::{Dataset, Split};
use clirlab_eval::cell::{CellMetric, cell_metrics};
use clirlab_model::TrainableEncoder;
use clirlab_model::tokenizer::Tokenizer;

/// Whether `step` evaluates on the validation split: every `eval_every` steps and the last
/// step (never with `eval_every` 0).
pub fn is_eval_step(t: &TrainConfig, step: usize) -> bool {
    t.eval_every > 0 && ((step + 1).is_multiple_of(t.eval_every) || step + 1 == t.steps)
}

/// Validation nDCG@10 over the target languages' validation queries.
pub fn validation_ndcg10(
    encoder: &dyn TrainableEncoder,
    tokenizer: &Tokenizer,
    dataset: &Dataset,
    cfg: &CellConfig,
) -> Result<f64> {
    let split = retrieval::run_split(encoder, tokenizer, dataset, cfg, Split::Validation, "validation")?;
    // Each (language, task) against its own judgments; the mean over every judged query.
    let (mut sum, mut count) = (0.0, 0);
    for group in &split.groups {
        let values = cell_metrics(&group.qrels, &split.run)?;
        let ndcg = &values[&CellMetric::Ndcg10];
        sum += group
            .query_ids
            .iter()
            .map(|q| ndcg.get(q).copied().unwrap_or(0.0))
            .sum::<f64>();
        count += group.query_ids.len();
    }
    anyhow::ensure!(count > 0, "no validation queries in the target languages");
    Ok(sum / count as f64)
}

/// What a validation value means for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The best so far: keep these weights.
    Improved,
    /// No better than the best; training goes on.
    Stale,
    /// No improvement in `patience` evaluations: stop.
    Stop,
}

/// The best validation value so far, the step that reached it, and early stopping.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    best: Option<f64>,
    kept_step: usize,
    stale: usize,
    patience: usize,
}

impl EarlyStopping {
    /// Before any evaluation of a run of `steps` steps: the kept step is the last one.
    /// `patience` 0 never stops.
    pub fn new(steps: usize, patience: usize) -> Self {
        Self {
            best: None,
            kept_step: steps.saturating_sub(1),
            stale: 0,
            patience,
        }
    }

    /// Records the validation value of `step`.
    pub fn record(&mut self, step: usize, value: f64) -> Verdict {
        if self.best.is_none_or(|b| value > b) {
            self.best = Some(value);
            self.kept_step = step;
            self.stale = 0;
            Verdict::Improved
        } else {
            self.stale += 1;
            if self.patience > 0 && self.stale >= self.patience {
                Verdict::Stop
            } else {
                Verdict::Stale
            }
        }
    }

    /// The best validation value, if any evaluation happened.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The step whose weights are kept: the best one, or the last step without evaluations.
    pub fn kept_step(&self) -> usize {
        self.kept_step
    }

    /// Evaluations since the last improvement.
    pub fn stale(&self) -> usize {
        self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_steps() {
        let t = TrainConfig {
            steps: 10,
            eval_every: 4,
            ..TrainConfig::default()
        };
        let steps: Vec<usize> = (0..10).filter(|&s| is_eval_step(&t, s)).collect();
        assert_eq!(steps, vec![3, 7, 9]);
        let never = TrainConfig { eval_every: 0, ..t };
        assert!((0..10).all(|s| !is_eval_step(&never, s)));
    }

    #[test]
    fn keeps_the_best_and_stops_after_patience() {
        let mut e = EarlyStopping::new(100, 2);
        assert_eq!((e.best(), e.kept_step()), (None, 99));
        assert_eq!(e.record(9, 0.5), Verdict::Improved);
        assert_eq!(e.record(19, 0.5), Verdict::Stale);
        assert_eq!(e.record(29, 0.7), Verdict::Improved);
        assert_eq!((e.best(), e.kept_step(), e.stale()), (Some(0.7), 29, 0));
        assert_eq!(e.record(39, 0.6), Verdict::Stale);
        assert_eq!(e.record(49, 0.6), Verdict::Stop);
        assert_eq!(e.kept_step(), 29);
        let mut patient = EarlyStopping::new(10, 0);
        patient.record(0, 1.0);
        assert!((1..50).all(|s| patient.record(s, 0.0) == Verdict::Stale));
    }
}
