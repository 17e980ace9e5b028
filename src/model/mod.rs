//! The dual encoder (dfdx): token embeddings → masked mean pooling → projection → L2
//! normalisation, trained with InfoNCE over in-batch negatives.
//!
//! dfdx fixes tensor sizes at compile time, so model sizes are named presets; everything
//! outside this module sees an encoder only through [`TrainableEncoder`].

use crate::tokenizer::TokenBatch;
use anyhow::{Context, Result};
use dfdx::optim::Adam;
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The compute device of this build (CPU unless built with the `cuda` feature).
#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
#[cfg(feature = "cuda")]
pub type Dev = Cuda;

/// Named model sizes (`model.preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// vocabulary 4,096, embedding 64, output 64: seconds per cell, for tests and quickstarts.
    #[default]
    Tiny,
    /// vocabulary 16,384, embedding 128, output 128.
    Small,
    /// vocabulary 32,768, embedding 256, output 256.
    Base,
}

impl Preset {
    /// The largest vocabulary the preset's embedding table holds.
    pub fn vocab_size(self) -> usize {
        match self {
            Preset::Tiny => 4096,
            Preset::Small => 16384,
            Preset::Base => 32768,
        }
    }
}

/// Optimizer settings handed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    /// Adam with decoupled weight decay.
    #[default]
    Adamw,
}

#[derive(Debug, Clone, Copy)]
pub struct OptimizerSettings {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
}

/// An encoder that embeds texts (already tokenized) into L2-normalised vectors.
pub trait Embedder {
    fn dim(&self) -> usize;
    /// One row of `dim()` values per text of the batch.
    fn embed(&self, batch: &TokenBatch) -> Result<Vec<f32>>;
}

/// An [`Embedder`] that can be trained one InfoNCE step at a time.
pub trait TrainableEncoder: Embedder {
    /// One optimizer step on a batch whose first half are queries and second half their
    /// positive passages (rows i and i + n/2 match); returns the loss before the update.
    fn train_step(&mut self, batch: &TokenBatch, temperature: f64) -> Result<f32>;
    fn set_learning_rate(&mut self, lr: f64);
    fn save(&self, path: &Path) -> Result<()>;
}

type EncoderArch<const V: usize, const M: usize, const P: usize> = (Embedding<V, M>, Linear<M, P>);
/// Token ids and the padding mask of a batch, as tensors.
type Inputs = (Tensor<(usize, usize), usize, Dev>, Tensor<(usize, usize), f32, Dev>);

type Built<const V: usize, const M: usize, const P: usize> = <EncoderArch<V, M, P> as BuildOnDevice<Dev, f32>>::Built;

struct MeanPoolEncoder<const V: usize, const M: usize, const P: usize> {
    dev: Dev,
    model: Built<V, M, P>,
    grads: Option<Gradients<f32, Dev>>,
    opt: Adam<Built<V, M, P>, f32, Dev>,
}

/// Builds a freshly initialised encoder of `preset`, seeded.
pub fn build(preset: Preset, seed: u64, opt: OptimizerSettings) -> Box<dyn TrainableEncoder> {
    match preset {
        Preset::Tiny => Box::new(MeanPoolEncoder::<4096, 64, 64>::new(seed, opt)),
        Preset::Small => Box::new(MeanPoolEncoder::<16384, 128, 128>::new(seed, opt)),
        Preset::Base => Box::new(MeanPoolEncoder::<32768, 256, 256>::new(seed, opt)),
    }
}

fn adam_config(opt: OptimizerSettings) -> AdamConfig {
    let weight_decay = match (opt.kind, opt.weight_decay) {
        (_, 0.0) => None,
        (OptimizerKind::Adam, wd) => Some(WeightDecay::L2(wd)),
        (OptimizerKind::Adamw, wd) => Some(WeightDecay::Decoupled(wd)),
    };
    AdamConfig {
        lr: opt.lr,
        weight_decay,
        ..Default::default()
    }
}

impl<const V: usize, const M: usize, const P: usize> MeanPoolEncoder<V, M, P> {
    fn new(seed: u64, opt: OptimizerSettings) -> Self {
        let dev = Dev::seed_from_u64(seed);
        let model = dev.build_module::<EncoderArch<V, M, P>, f32>();
        let grads = Some(model.alloc_grads());
        let opt = Adam::new(&model, adam_config(opt));
        Self { dev, model, grads, opt }
    }

    fn inputs(&self, batch: &TokenBatch) -> Result<Inputs> {
        if let Some(bad) = batch.ids.iter().find(|id| **id >= V) {
            anyhow::bail!(
                "token id {bad} is outside the model's vocabulary of {V}: the tokenizer is larger than the preset"
            );
        }
        let shape = (batch.rows, batch.len);
        Ok((
            self.dev.tensor_from_vec(batch.ids.clone(), shape),
            self.dev.tensor_from_vec(batch.mask.clone(), shape),
        ))
    }
}

/// Masked mean pooling, projection and L2 normalisation; `T` is the gradient tape (if any).
fn encode<const V: usize, const M: usize, const P: usize, T>(
    model: &Built<V, M, P>,
    ids: Tensor<(usize, usize), usize, Dev, T>,
    mask: Tensor<(usize, usize), f32, Dev>,
) -> Tensor<(usize, Const<P>), f32, Dev, T>
where
    T: Tape<f32, Dev> + Merge<NoneTape> + Merge<T>,
{
    let (rows, len) = *mask.shape();
    let tokens = model.0.forward(ids);
    let spread = mask.clone().broadcast_like::<_, Axis<2>>(&(rows, len, Const::<M>));
    let summed = (tokens * spread).sum::<(usize, Const<M>), Axis<1>>();
    let counts = mask
        .sum::<(usize,), Axis<1>>()
        .broadcast_like::<_, Axis<1>>(&(rows, Const::<M>));
    let projected = model.1.forward(summed / counts);
    let norms = (projected.with_empty_tape().square().sum::<(usize,), Axis<1>>() + 1e-12)
        .sqrt()
        .broadcast_like::<_, Axis<1>>(&(rows, Const::<P>));
    projected / norms
}

impl<const V: usize, const M: usize, const P: usize> Embedder for MeanPoolEncoder<V, M, P> {
    fn dim(&self) -> usize {
        P
    }

    fn embed(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        let (ids, mask) = self.inputs(batch)?;
        Ok(encode::<V, M, P, NoneTape>(&self.model, ids, mask).as_vec())
    }
}

impl<const V: usize, const M: usize, const P: usize> TrainableEncoder for MeanPoolEncoder<V, M, P> {
    fn train_step(&mut self, batch: &TokenBatch, temperature: f64) -> Result<f32> {
        anyhow::ensure!(
            batch.rows >= 4 && batch.rows.is_multiple_of(2),
            "a training batch needs query/passage halves"
        );
        let half = batch.rows / 2;
        let (ids, mask) = self.inputs(batch)?;
        let grads = self.grads.take().context("gradients in use")?;
        let all = encode::<V, M, P, _>(&self.model, ids.traced(grads), mask);
        let queries = all.with_empty_tape().slice((0..half, ..));
        let passages = all.slice((half..2 * half, ..));
        let logits = queries.matmul(passages.permute::<_, Axes2<1, 0>>()) * (1.0 / temperature as f32);
        let mut targets = vec![0.0f32; half * half];
        for i in 0..half {
            targets[i * half + i] = 1.0;
        }
        let targets = self.dev.tensor_from_vec(targets, (half, half));
        let loss = cross_entropy_with_logits_loss(logits, targets);
        let value = loss.array();
        let mut grads = loss.backward();
        if value.is_finite() {
            self.opt
                .update(&mut self.model, &grads)
                .map_err(|e| anyhow::anyhow!("optimizer update: {e:?}"))?;
        }
        self.model.zero_grads(&mut grads);
        self.grads = Some(grads);
        Ok(value)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.opt.cfg.lr = lr;
    }

    fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().context("checkpoint path has no parent")?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".safetensors")
            .tempfile_in(dir)?;
        self.model
            .save_safetensors(tmp.path())
            .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))?;
        tmp.persist(path)
            .with_context(|| format!("renaming into place: {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: Vec<usize>, mask: Vec<f32>, rows: usize) -> TokenBatch {
        let len = ids.len() / rows;
        TokenBatch { ids, mask, rows, len }
    }

    fn settings() -> OptimizerSettings {
        OptimizerSettings {
            kind: OptimizerKind::Adamw,
            lr: 1e-2,
            weight_decay: 0.01,
        }
    }

    #[test]
    fn embeddings_are_unit_length_and_ignore_padding() {
        let enc = build(Preset::Tiny, 1, settings());
        let a = enc
            .embed(&batch(vec![5, 6, 0, 0], vec![1.0, 1.0, 0.0, 0.0], 1))
            .unwrap();
        let b = enc
            .embed(&batch(vec![5, 6, 9, 9, 9, 9], vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0], 1))
            .unwrap();
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "padding changed the embedding");
        }
    }

    #[test]
    fn same_seed_same_weights() {
        let b = batch(vec![1, 2, 3, 4], vec![1.0; 4], 2);
        assert_eq!(
            build(Preset::Tiny, 3, settings()).embed(&b).unwrap(),
            build(Preset::Tiny, 3, settings()).embed(&b).unwrap()
        );
        assert_ne!(
            build(Preset::Tiny, 3, settings()).embed(&b).unwrap(),
            build(Preset::Tiny, 4, settings()).embed(&b).unwrap()
        );
    }

    #[test]
    fn info_nce_training_reduces_loss() {
        let mut enc = build(Preset::Tiny, 7, settings());
        // Four queries and their passages: ids 10+i ↔ 20+i.
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.extend([10 + i, 30]);
        }
        for i in 0..4 {
            ids.extend([20 + i, 31]);
        }
        let b = batch(ids, vec![1.0; 16], 8);
        let first = enc.train_step(&b, 0.1).unwrap();
        let mut last = first;
        for _ in 0..50 {
            last = enc.train_step(&b, 0.1).unwrap();
        }
        assert!(first > 1.0 && last < first * 0.5, "loss {first} → {last}");
    }

    #[test]
    fn out_of_vocabulary_ids_are_an_error() {
        let enc = build(Preset::Tiny, 1, settings());
        let err = enc.embed(&batch(vec![5000], vec![1.0], 1)).unwrap_err().to_string();
        assert!(err.contains("outside the model's vocabulary"), "{err}");
    }
}
