//! The training step: the pooled embeddings of a batch on a tape (in length buckets), InfoNCE
//! plus the OT term, the backward pass, gradient clipping and the optimizer update of the
//! trainable parts.

use super::tuning::{Part, with_part};
use super::{Bert, LayerStates};
use crate::clipping::{GradNorm, clip_walked};
use crate::loss::{info_nce_loss, ot_surrogate};
use crate::tokenizer::TokenBatch;
use crate::{Backend, StepInput, StepLoss};
use anyhow::{Context, Result, ensure};
use dfdx::nn::ZeroGrads;
use dfdx::nn::tensor_collection::{RecursiveWalker, TensorCollection};
use dfdx::prelude::*;
use dfdx::tensor::OwnedTape;

/// Rows of a training batch run together, sorted by length ([`Bert::pooled_in_buckets`]).
pub(super) const STEP_BUCKET: usize = 16;

/// Pooled embeddings on a training tape: rows × M.
type TapedEmbeddings<const M: usize, D> = Tensor<(usize, Const<M>), f32, D, OwnedTape<f32, D>>;

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    /// Zeroed gradient buffers of the trainable tensors, marked as the tape's leaves.
    pub(super) fn fresh_grads(&self) -> Result<Gradients<f32, D>> {
        let mut grads = Gradients::leaky();
        for part in self.trainable_parts() {
            with_part!(part, m => m.try_zero_grads(&mut grads)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        Ok(grads)
    }

    /// [`TrainableEncoder::train_step`] on the calling thread: the stored states of the frozen
    /// layers (the OT term's student batch through the same layers), then the step.
    pub(super) fn train_step_here(&mut self, input: &StepInput) -> Result<StepLoss> {
        match self.frozen_depth() {
            Some(after_layer) => {
                // The OT term's student batch (bitext) runs through the same frozen layers.
                let stored = self.stored_states(input.batch, after_layer)?;
                let ot_stored = match &input.ot {
                    Some(term) => Some(self.stored_states(term.student, after_layer)?),
                    None => None,
                };
                let cached = LayerStates {
                    after_layer,
                    states: &stored,
                };
                let ot_cached = ot_stored.as_deref().map(|states| LayerStates { after_layer, states });
                self.step(input, Some(cached), ot_cached)
            }
            None => self.step(input, None, None),
        }
    }

    /// One optimizer step; `cached` are states of `input.batch`, `ot_cached` of the OT term's
    /// student batch (both after a layer at or below the lowest trainable one).
    pub(super) fn step(
        &mut self,
        input: &StepInput,
        cached: Option<LayerStates>,
        ot_cached: Option<LayerStates>,
    ) -> Result<StepLoss> {
        let result = self.step_inner(input, cached, ot_cached);
        if result.is_err() && self.grads.is_none() {
            // The failed step took the gradient buffers with it.
            self.grads = Some(self.fresh_grads()?);
        }
        result
    }

    fn step_inner(
        &mut self,
        input: &StepInput,
        cached: Option<LayerStates>,
        ot_cached: Option<LayerStates>,
    ) -> Result<StepLoss> {
        let (mut grads, loss) = self.loss_and_grads(input, cached, ot_cached)?;
        let grad_norm = self.clip(&mut grads, input.clip_norm)?;
        if loss.total.is_finite() && grad_norm.is_finite() {
            self.update(&grads)?;
        }
        for part in self.trainable_parts() {
            with_part!(part, m => m.try_zero_grads(&mut grads)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        self.grads = Some(grads);
        Ok(StepLoss { grad_norm, ..loss })
    }

    /// The pooled embeddings of every row of `batch` (rows × M, in the batch's order) on a tape
    /// that starts from `grads`. The rows run in buckets of [`STEP_BUCKET`] rows of similar
    /// length, each padded to its longest: a row's embedding does not depend on the rows it runs
    /// with, and a batch padded to its longest row spends about a third of its work on padding
    /// (Bible verses of 10 to 64 tokens).
    fn pooled_in_buckets(
        &self,
        batch: &TokenBatch,
        cached: Option<LayerStates>,
        grads: Gradients<f32, D>,
    ) -> Result<TapedEmbeddings<M, D>> {
        let len = batch.len;
        let lengths: Vec<usize> = batch
            .mask
            .chunks(len)
            .map(|row| row.iter().take_while(|m| **m > 0.0).count())
            .collect();
        let mut order: Vec<usize> = (0..batch.rows).collect();
        order.sort_by_key(|&r| (lengths[r], r));
        let mut grads = Some(grads);
        let mut pooled: Option<TapedEmbeddings<M, D>> = None;
        for bucket in order.chunks(STEP_BUCKET) {
            let sub_len = bucket.iter().map(|&r| lengths[r]).max().unwrap_or(1).max(1);
            let sub = TokenBatch {
                ids: rows_prefix(&batch.ids, bucket, len, sub_len),
                mask: rows_prefix(&batch.mask, bucket, len, sub_len),
                rows: bucket.len(),
                len: sub_len,
            };
            let sub_states = cached.map(|c| rows_prefix(c.states, bucket, len * M, sub_len * M));
            let sub_cached = cached.zip(sub_states.as_deref()).map(|(c, states)| LayerStates {
                after_layer: c.after_layer,
                states,
            });
            let inp = self.inputs(&sub)?;
            // The first bucket carries the step's gradients; the others join its tape.
            let tape_grads = grads.take().unwrap_or_else(Gradients::leaky);
            let states = self.taped_states(&inp, &sub, sub_cached, tape_grads)?;
            let part = self.pool(states, &inp.pool);
            pooled = Some(match pooled {
                None => part,
                Some(done) => (done, part).concat_along(Axis::<0>),
            });
        }
        // Back to the batch's order: row r was computed at position inverse[r].
        let mut inverse = vec![0usize; batch.rows];
        for (k, &r) in order.iter().enumerate() {
            inverse[r] = k;
        }
        let idx = self.dev.tensor_from_vec(inverse, (batch.rows,));
        Ok(pooled.context("an empty training batch")?.gather(idx))
    }

    /// The step's forward and backward pass: the gradients of InfoNCE + λ·OT (taken from
    /// `self.grads`, which the caller puts back) and the losses (`grad_norm` not yet measured).
    pub(super) fn loss_and_grads(
        &mut self,
        input: &StepInput,
        cached: Option<LayerStates>,
        ot_cached: Option<LayerStates>,
    ) -> Result<(Gradients<f32, D>, StepLoss)> {
        let batch = input.batch;
        let half = crate::query_rows(batch.rows, input.negatives)?;
        ensure!(
            self.fine_tune.top_layers > 0 || self.embeddings_train(),
            "nothing to train: no layer and no embedding table is trainable"
        );
        let grads = self.grads.take().context("gradients in use")?;
        let all = self.pooled_in_buckets(batch, cached, grads)?;
        let nce = info_nce_loss(&self.dev, all, half, input.negatives, input.temperature);
        let info_nce = f64::from(nce.array());
        let (loss, ot_value) = match &input.ot {
            None => (nce, None),
            Some(term) => {
                let s_inp = self.inputs(term.student)?;
                let student = self.taped_states(&s_inp, term.student, ot_cached, Gradients::leaky())?;
                let (surrogate, value) = ot_surrogate(&self.dev, student, &s_inp.mask.as_vec(), term)?;
                (nce + surrogate, Some(value))
            }
        };
        let total = info_nce
            + ot_value
                .map(|v| v * input.ot.as_ref().map_or(0.0, |t| t.weight))
                .unwrap_or(0.0);
        Ok((
            loss.backward(),
            StepLoss {
                total,
                info_nce,
                ot: ot_value,
                grad_norm: f64::NAN,
            },
        ))
    }

    /// Global gradient norm over the trainable tensors; scaled down to `clip` when above it.
    fn clip(&self, grads: &mut Gradients<f32, D>, clip: Option<f64>) -> Result<f64> {
        let parts = self.trainable_parts();
        clip_walked(grads, clip, |op| {
            for part in &parts {
                with_part!(part, m => walk_ref(*m, op))?;
            }
            Ok(())
        })
    }

    fn update(&mut self, grads: &Gradients<f32, D>) -> Result<()> {
        let err = |e| anyhow::anyhow!("optimizer update: {e:?}");
        if let Some(opt) = &mut self.opt_words {
            opt.update(&mut self.words, grads).map_err(err)?;
        }
        if let Some(opt) = &mut self.opt_rest {
            opt.update(&mut self.rest, grads).map_err(err)?;
        }
        let first = self.layers.len() - self.fine_tune.top_layers;
        for (opt, layer) in self.opt_layers.iter_mut().zip(&mut self.layers[first..]) {
            opt.update(layer, grads).map_err(err)?;
        }
        Ok(())
    }
}

/// Walks a module's tensors (by reference) with a [`GradNorm`].
fn walk_ref<C: TensorCollection<f32, D>, D: Backend>(m: &C, op: &mut GradNorm<'_, D>) -> Result<()> {
    C::iter_tensors(&mut RecursiveWalker { m, f: op }).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// The first `keep` values of each of `rows` (in that order) of a row-major table whose rows
/// are `row_width` values wide: a length bucket's share of a batch's ids, mask or states.
fn rows_prefix<T: Copy>(values: &[T], rows: &[usize], row_width: usize, keep: usize) -> Vec<T> {
    rows.iter()
        .flat_map(|&r| values[r * row_width..r * row_width + keep].iter().copied())
        .collect()
}
