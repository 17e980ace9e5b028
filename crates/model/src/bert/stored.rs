//! How the encoder uses a [`frozen::StateStore`]: the depth of the states it covers, reading
//! a batch's states from it (computing and adding the rows it lacks), and the forward pass
//! over the layers above them.

use super::{Bert, LayerStates, frozen};
use crate::Backend;
use crate::tokenizer::TokenBatch;
use anyhow::{Context, Result, ensure};
use std::path::Path;

/// The revision of the frozen forward's rounding, part of a state store's folder name: raised
/// whenever a change to the kernels changes the states' last bits, so that states computed
/// before are never mixed with new ones (2: LayerNorm through the fused kernel; 3: the
/// query/key/value projections as one product, the attention's products on OpenBLAS).
const STATE_NUMERICS: u32 = 3;

/// Rows per forward pass when the frozen layers compute the states a store lacks.
const STATE_CHUNK: usize = 16;

/// An attached state store and the depth of the states it holds.
pub(super) struct Frozen {
    after_layer: usize,
    store: std::sync::Mutex<frozen::StateStore>,
}

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    /// The depth of the attached store's states, while they are valid for this model (the
    /// layers below it and the embeddings frozen).
    pub(super) fn frozen_depth(&self) -> Option<usize> {
        let depth = self.frozen.as_ref()?.after_layer;
        (!self.embeddings_train() && depth <= self.first_trainable() && depth > 0).then_some(depth)
    }

    /// The states after `depth` layers of every row of `batch` (rows × len × M, zeros on the
    /// padding), read from the store; the rows it lacks are computed together, then stored.
    pub(super) fn stored_states(&self, batch: &TokenBatch, depth: usize) -> Result<Vec<f32>> {
        let frozen = self.frozen.as_ref().context("no state store attached")?;
        let (rows, len) = (batch.rows, batch.len);
        let mut out = vec![0.0f32; rows * len * M];
        let mut missing: Vec<(usize, frozen::Key, usize)> = Vec::new();
        let mut store = frozen
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("the state store's lock is poisoned"))?;
        for r in 0..rows {
            let mask = &batch.mask[r * len..(r + 1) * len];
            let tokens = mask.iter().take_while(|m| **m > 0.0).count();
            ensure!(
                tokens > 0 && mask[tokens..].iter().all(|m| *m == 0.0),
                "row {r} of the batch is not tokens followed by padding"
            );
            let key = frozen::key(&batch.ids[r * len..r * len + tokens]);
            let at = r * len * M;
            if !store.read_into(&key, tokens, &mut out[at..at + tokens * M])? {
                missing.push((r, key, tokens));
            }
        }
        // Computed in batches of similar length, each padded to its longest: a training batch's
        // rows range from a few tokens to `max_len`, and padding is most of a short row's cost.
        missing.sort_by_key(|m| (m.2, m.0));
        for chunk in missing.chunks(STATE_CHUNK) {
            let sub_len = chunk.iter().map(|m| m.2).max().unwrap_or(1);
            let mut sub = TokenBatch {
                ids: vec![0; chunk.len() * sub_len],
                mask: vec![0.0; chunk.len() * sub_len],
                rows: chunk.len(),
                len: sub_len,
            };
            for (k, (r, _, tokens)) in chunk.iter().enumerate() {
                sub.ids[k * sub_len..k * sub_len + tokens].copy_from_slice(&batch.ids[r * len..r * len + tokens]);
                sub.mask[k * sub_len..k * sub_len + tokens].fill(1.0);
            }
            let states = self.frozen_states(&self.inputs(&sub)?, depth).as_vec();
            for (k, (r, key, tokens)) in chunk.iter().enumerate() {
                let row = states[k * sub_len * M..(k * sub_len + tokens) * M].to_vec();
                out[r * len * M..(r * len + tokens) * M].copy_from_slice(&row);
                store.insert(*key, *tokens, row)?;
            }
        }
        Ok(out)
    }

    /// [`TrainableEncoder::token_states`] on the calling thread.
    pub(super) fn token_states_here(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        let depth = self.layers.len();
        let Some(after_layer) = self.frozen_depth() else {
            let inp = self.inputs(batch)?;
            return Ok(self.frozen_states(&inp, depth).as_vec());
        };
        let stored = self.stored_states(batch, after_layer)?;
        if after_layer == depth {
            return Ok(stored);
        }
        let inp = self.inputs(batch)?;
        let x = self.states_tensor(
            batch,
            LayerStates {
                after_layer,
                states: &stored,
            },
        )?;
        Ok(self.run_layers(x, after_layer..depth, &inp).as_vec())
    }

    /// [`BertEncoder::use_state_store`](super::BertEncoder::use_state_store).
    pub(super) fn attach_store(&mut self, root: &Path) -> Result<usize> {
        let depth = self.first_trainable();
        if self.embeddings_train() || depth == 0 {
            self.frozen = None;
            return Ok(0);
        }
        // The kernels (fused on either GEMM, reference, CUDA) round differently: their states
        // are kept apart.
        let kernels = if std::any::type_name::<D>().contains("Cuda") {
            "cuda"
        } else if crate::kernels::fused_on_cpu() {
            match crate::kernels::blas::backend() {
                "openblas" => "fused-openblas",
                _ => "fused",
            }
        } else {
            "reference"
        };
        let dir = root.join(format!(
            "{}-after{depth}-{kernels}-n{STATE_NUMERICS}",
            &self.base_fingerprint[..16]
        ));
        let store = frozen::StateStore::open(&dir, M)?;
        tracing::info!(store = %dir.display(), texts = store.len(), "frozen-layer states of the {depth} lower layers");
        self.frozen = Some(Frozen {
            after_layer: depth,
            store: std::sync::Mutex::new(store),
        });
        Ok(depth)
    }
}
