//! The fine-tuning policy: the model as parts (word table, other embeddings, each layer), which
//! of them train under a [`FineTune`], and the optimizer state of those only.

use super::layers::{EmbeddingRest, Layer, Words};
use super::{Bert, FineTune};
use crate::{AdamState, Backend, adam_config};
use anyhow::Result;

/// A part of the model, for the visitors that walk parts one at a time.
pub(super) enum Part<'a, const V: usize, const S: usize, const M: usize, const F: usize, D: Backend> {
    Words(&'a Words<V, M, f32, D>),
    Rest(&'a EmbeddingRest<S, M, f32, D>),
    Layer(usize, &'a Layer<M, F, f32, D>),
}

impl<const V: usize, const S: usize, const M: usize, const F: usize, D: Backend> Part<'_, V, S, M, F, D> {
    pub(super) fn prefix(&self) -> String {
        match self {
            Part::Words(_) | Part::Rest(_) => "embeddings".into(),
            Part::Layer(l, _) => format!("encoder.layer.{l}"),
        }
    }
}

/// Calls `$body` with `$m` bound to the part's module (each arm its own type).
macro_rules! with_part {
    ($part:expr, $m:ident => $body:expr) => {
        match $part {
            Part::Words($m) => $body,
            Part::Rest($m) => $body,
            Part::Layer(_, $m) => $body,
        }
    };
}
pub(super) use with_part;

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    /// (Re)creates the optimizers and gradient buffers for the trainable parts.
    pub(super) fn set_fine_tune(&mut self, fine_tune: FineTune) -> Result<()> {
        let cfg = adam_config(self.settings);
        self.fine_tune = fine_tune;
        self.opt_words = fine_tune.word_embeddings.then(|| AdamState::new(&self.words, cfg));
        self.opt_rest = fine_tune.embeddings.then(|| AdamState::new(&self.rest, cfg));
        let first = self.first_trainable();
        self.opt_layers = self.layers[first..].iter().map(|l| AdamState::new(l, cfg)).collect();
        self.grads = Some(self.fresh_grads()?);
        Ok(())
    }

    pub(super) fn parts(&self) -> Vec<Part<'_, V, S, M, F, D>> {
        let mut parts = vec![Part::Words(&self.words), Part::Rest(&self.rest)];
        parts.extend(self.layers.iter().enumerate().map(|(l, m)| Part::Layer(l, m)));
        parts
    }

    pub(super) fn trainable_parts(&self) -> Vec<Part<'_, V, S, M, F, D>> {
        let first = self.first_trainable();
        self.parts()
            .into_iter()
            .filter(|p| match p {
                Part::Words(_) => self.fine_tune.word_embeddings,
                Part::Rest(_) => self.fine_tune.embeddings,
                Part::Layer(l, _) => *l >= first,
            })
            .collect()
    }

    pub(super) fn first_trainable(&self) -> usize {
        self.layers.len() - self.fine_tune.top_layers
    }

    pub(super) fn embeddings_train(&self) -> bool {
        self.fine_tune.embeddings || self.fine_tune.word_embeddings
    }
}
