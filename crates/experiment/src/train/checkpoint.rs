//! The cell's checkpoint after training: the best validation weights, or the last ones.

use anyhow::Result;
use clirlab_model::TrainableEncoder;
use std::path::Path;

/// Leaves `encoder` holding the weights the cell keeps and `checkpoint` holding them on disk:
/// with a validated best (saved when it was reached) the encoder reloads it; without, the
/// last weights are saved.
pub fn keep_best(encoder: &mut dyn TrainableEncoder, checkpoint: &Path, validated: bool) -> Result<()> {
    if validated {
        encoder.load(checkpoint)
    } else {
        encoder.save(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clirlab_model::tokenizer::TokenBatch;
    use clirlab_model::{self as model, OptimizerKind, OptimizerSettings, Preset, ResolvedDevice};

    #[test]
    fn reloads_the_saved_best_or_saves_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let settings = OptimizerSettings {
            kind: OptimizerKind::Adamw,
            lr: 1e-2,
            weight_decay: 0.0,
        };
        let batch = TokenBatch {
            ids: vec![5, 6, 7, 8],
            mask: vec![1.0; 4],
            rows: 2,
            len: 2,
        };
        let mut best = model::build(Preset::Tiny, 1, settings, ResolvedDevice::Cpu).unwrap();
        keep_best(best.as_mut(), &path, false).unwrap();
        assert!(path.is_file());
        let saved = best.embed(&batch).unwrap();
        let mut other = model::build(Preset::Tiny, 2, settings, ResolvedDevice::Cpu).unwrap();
        assert_ne!(other.embed(&batch).unwrap(), saved);
        keep_best(other.as_mut(), &path, true).unwrap();
        assert_eq!(other.embed(&batch).unwrap(), saved);
    }
}
