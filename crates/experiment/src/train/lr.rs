//! The learning-rate schedule (linear warm-up, then constant or linear decay) and the
//! optimizer settings of a training configuration.

use crate::spec::{Decay, TrainConfig};
use clirlab_model::OptimizerSettings;

/// Learning rate at `step`: linear warm-up to `lr`, then constant or linear decay to 0.
pub fn learning_rate(t: &TrainConfig, step: usize) -> f64 {
    if step < t.warmup_steps {
        return t.lr * (step + 1) as f64 / t.warmup_steps as f64;
    }
    match t.decay {
        Decay::None => t.lr,
        Decay::Linear => {
            let span = t.steps.saturating_sub(t.warmup_steps).max(1) as f64;
            t.lr * (1.0 - (step - t.warmup_steps) as f64 / span).max(0.0)
        }
    }
}

/// The optimizer of a training configuration, at its base learning rate.
pub fn optimizer_settings(t: &TrainConfig) -> OptimizerSettings {
    OptimizerSettings {
        kind: t.optimizer,
        lr: t.lr,
        weight_decay: t.weight_decay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay() {
        let t = TrainConfig {
            lr: 1.0,
            steps: 14,
            warmup_steps: 4,
            decay: Decay::Linear,
            ..TrainConfig::default()
        };
        assert_eq!(learning_rate(&t, 0), 0.25);
        assert_eq!(learning_rate(&t, 3), 1.0);
        assert_eq!(learning_rate(&t, 4), 1.0);
        assert!((learning_rate(&t, 9) - 0.5).abs() < 1e-12);
        assert!(learning_rate(&t, 13) > 0.0 && learning_rate(&t, 13) < 0.2);
        let flat = TrainConfig {
            decay: Decay::None,
            ..t
        };
        assert_eq!(learning_rate(&flat, 13), 1.0);
        let no_warmup = TrainConfig {
            warmup_steps: 0,
            decay: Decay::None,
            lr: 0.5,
            ..TrainConfig::default()
        };
        assert_eq!(learning_rate(&no_warmup, 0), 0.5);
    }

    #[test]
    fn settings_follow_the_config() {
        let t = TrainConfig::default();
        let s = optimizer_settings(&t);
        assert_eq!((s.kind, s.lr, s.weight_decay), (t.optimizer, t.lr, t.weight_decay));
    }
}
