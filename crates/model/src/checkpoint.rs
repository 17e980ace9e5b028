//! The weight file of a preset checkpoint: every tensor of the model, as safetensors, written
//! atomically. (The pretrained backbone writes its own, smaller checkpoints: see [`super::bert`].)

use anyhow::Result;
use dfdx::prelude::*;
use std::path::Path;

/// Writes every tensor of `model` to `path` (temp file, then rename).
pub(super) fn save_weights<D: Device<f32>, M: TensorCollection<f32, D>>(model: &M, path: &Path) -> Result<()> {
    clirlab_util::fs::write_atomic_with(path, ".safetensors", |tmp| {
        model
            .save_safetensors(tmp)
            .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))
    })
}

/// Reads weights written by [`save_weights`] for a model of the same shape.
pub(super) fn load_weights<D: Device<f32>, M: TensorCollection<f32, D>>(model: &mut M, path: &Path) -> Result<()> {
    model
        .load_safetensors(path)
        .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", path.display()))
}
