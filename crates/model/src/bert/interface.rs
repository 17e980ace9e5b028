//! How the encoder answers [`Embedder`], [`TrainableEncoder`] and [`BertEncoder`]: each call
//! on the device's step runner, dispatched to the forward pass, the step, the weights' I/O and
//! the state store.

use super::layers::TYPES;
use super::tuning::{Part, with_part};
use super::{Bert, BertEncoder, FineTune, LayerStates};
use crate::kernels::StepRunner;
use crate::tokenizer::TokenBatch;
use crate::{Backend, Embedder, StepInput, StepLoss, TrainableEncoder};
use anyhow::{Result, ensure};
use std::path::Path;

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Embedder for Bert<V, S, M, H, DH, F, D>
where
    Self: StepRunner<D>,
{
    fn dim(&self) -> usize {
        M
    }

    fn embed(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        <Self as StepRunner<D>>::run_forward(self, |this| {
            let inp = this.inputs(batch)?;
            let depth = this.layers.len();
            let states = match this.frozen_depth() {
                Some(after_layer) => {
                    let stored = this.stored_states(batch, after_layer)?;
                    let x = this.states_tensor(
                        batch,
                        LayerStates {
                            after_layer,
                            states: &stored,
                        },
                    )?;
                    this.run_layers(x, after_layer..depth, &inp)
                }
                None => this.frozen_states(&inp, depth),
            };
            Ok(this.pool(states, &inp.pool).as_vec())
        })
    }
}

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    TrainableEncoder for Bert<V, S, M, H, DH, F, D>
where
    Self: StepRunner<D>,
{
    fn train_step(&mut self, input: &StepInput) -> Result<StepLoss> {
        <Self as StepRunner<D>>::run_step(self, |this| this.train_step_here(input))
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.settings.lr = lr;
        if let Some(opt) = &mut self.opt_words {
            opt.cfg.lr = lr;
        }
        if let Some(opt) = &mut self.opt_rest {
            opt.cfg.lr = lr;
        }
        for opt in &mut self.opt_layers {
            opt.cfg.lr = lr;
        }
    }

    /// With a state store attached, the stored states and the layers above them (none for a
    /// wholly frozen model, such as the pretrained OT teacher): the same values on every real
    /// token, zeros (or what the upper layers make of them) on the padding.
    fn token_states(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        <Self as StepRunner<D>>::run_forward(self, |this| this.token_states_here(batch))
    }

    fn state_dim(&self) -> usize {
        M
    }

    /// The trained tensors only, with the base model's path and fingerprint in the metadata
    /// (everything when the embeddings train: the word table is most of the model anyway).
    fn save(&self, path: &Path) -> Result<()> {
        self.save_trained(path)
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        self.load_checkpoint(path)
    }
}

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    BertEncoder for Bert<V, S, M, H, DH, F, D>
where
    Self: StepRunner<D>,
{
    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn fine_tune(&self) -> FineTune {
        self.fine_tune
    }

    fn num_trainable_params(&self) -> usize {
        let mut n = 0;
        for part in self.trainable_parts() {
            n += with_part!(part, m => dfdx::nn::NumParams::num_trainable_params(m));
            // The tables' unused rows are not the model's.
            n -= match part {
                Part::Words(_) => (V - self.rows.vocab) * M,
                Part::Rest(_) => (S - self.rows.positions + TYPES - self.rows.types) * M,
                Part::Layer(..) => 0,
            };
        }
        n
    }

    fn hidden_states(&self, batch: &TokenBatch, after_layer: usize) -> Result<Vec<f32>> {
        ensure!(
            after_layer <= self.layers.len(),
            "states after layer {after_layer} of a {}-layer encoder",
            self.layers.len()
        );
        let inp = self.inputs(batch)?;
        Ok(self.frozen_states(&inp, after_layer).as_vec())
    }

    fn embed_from_states(&self, batch: &TokenBatch, states: LayerStates) -> Result<Vec<f32>> {
        let inp = self.inputs(batch)?;
        let x = self.states_tensor(batch, states)?;
        let x = self.run_layers(x, states.after_layer..self.layers.len(), &inp);
        Ok(self.pool(x, &inp.pool).as_vec())
    }

    fn train_step_from_states(
        &mut self,
        input: &StepInput,
        states: Option<LayerStates>,
        ot_states: Option<LayerStates>,
    ) -> Result<StepLoss> {
        self.step(input, states, ot_states)
    }

    fn save_full(&self, path: &Path) -> Result<()> {
        self.save_whole(path)
    }

    fn use_state_store(&mut self, root: &Path) -> Result<usize> {
        self.attach_store(root)
    }
}
