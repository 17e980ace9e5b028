//! The architecture and its forward pass: the HuggingFace-named modules (LayerNorm, the
//! embedding tables, a post-LN layer), a batch's input tensors, and the passes from token ids
//! to token states and pooled, normalised embeddings, with or without a tape; and the same
//! modules as a fixed-depth [`Stack`] for the benchmark encoder of me5-small's shape.

use super::{Bert, FineTune, Flavour, LayerStates, Pooling, TINY_POSITIONS, TINY_VOCAB, TableRows};
use crate::tokenizer::TokenBatch;
use crate::{Backend, OptimizerSettings};
use anyhow::{Result, bail, ensure};
use dfdx::nn::modules::{LayerNorm1D, Linear};
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use dfdx::tensor::{OwnedTape, Storage};

/// Rows of the token-type table (BERT's two segments; XLM-R's one is the first).
pub(super) const TYPES: usize = 2;

/// LayerNorm with HuggingFace's tensor names (`weight`, `bias`); ε is the model's.
#[derive(Debug, Clone)]
pub(super) struct Norm<const M: usize, E: Dtype, D: Storage<E>> {
    pub(super) weight: Tensor<Rank1<M>, E, D>,
    pub(super) bias: Tensor<Rank1<M>, E, D>,
}

impl<const M: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for Norm<M, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = Norm<M, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(visitor: &mut V) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor("bias", |s| &s.bias, |s| &mut s.bias, TensorOptions::reset_to_zeros()),
            ),
            |(weight, bias)| Norm { weight, bias },
        )
    }
}

pub(super) type States<const M: usize, D, T> = Tensor<(usize, usize, Const<M>), f32, D, T>;

impl<const M: usize, D: Backend> Norm<M, f32, D> {
    pub(super) fn new(dev: &D) -> Self {
        Self {
            weight: dev.ones(),
            bias: dev.zeros(),
        }
    }

    /// The device's LayerNorm kernel (fused on the CPU: dfdx's `normalize` and the scale and
    /// shift were a tenth of an encoding's samples). The clones share the tensors' ids, so
    /// gradients accumulate into `weight` and `bias`.
    fn forward<T: Tape<f32, D>>(&self, x: States<M, D, T>, epsilon: f64) -> States<M, D, T> {
        let norm = LayerNorm1D {
            gamma: self.weight.clone(),
            beta: self.bias.clone(),
            epsilon,
        };
        D::layer_norm(&norm, x)
    }
}

/// The word-embedding table (`embeddings.word_embeddings.weight`), vocabulary × M.
#[derive(Debug, Clone)]
pub(super) struct Words<const N: usize, const M: usize, E: Dtype, D: Storage<E>> {
    pub(super) weight: Tensor<Rank2<N, M>, E, D>,
}

impl<const N: usize, const M: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for Words<N, M, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = Words<N, M, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(visitor: &mut V) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "word_embeddings.weight",
                |s| &s.weight,
                |s| &mut s.weight,
                TensorOptions::reset_to_zeros(),
            ),
            |weight| Words { weight },
        )
    }
}

/// Position and token-type tables (every text is type 0) and the embedding LayerNorm (under
/// `embeddings.`).
#[derive(Debug, Clone)]
pub(super) struct EmbeddingRest<const S: usize, const M: usize, E: Dtype, D: Storage<E>> {
    pub(super) position: Tensor<Rank2<S, M>, E, D>,
    pub(super) token_type: Tensor<Rank2<TYPES, M>, E, D>,
    pub(super) norm: Norm<M, E, D>,
}

impl<const S: usize, const M: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for EmbeddingRest<S, M, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = EmbeddingRest<S, M, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(visitor: &mut V) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "position_embeddings.weight",
                    |s| &s.position,
                    |s| &mut s.position,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "token_type_embeddings.weight",
                    |s| &s.token_type,
                    |s| &mut s.token_type,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::module("LayerNorm", |s| &s.norm, |s| &mut s.norm),
            ),
            |(position, token_type, norm)| EmbeddingRest {
                position,
                token_type,
                norm,
            },
        )
    }
}

/// One post-LN layer (under `encoder.layer.{l}.`).
#[derive(Debug, Clone)]
pub(super) struct Layer<const M: usize, const F: usize, E: Dtype, D: Storage<E>> {
    pub(super) query: Linear<M, M, E, D>,
    pub(super) key: Linear<M, M, E, D>,
    pub(super) value: Linear<M, M, E, D>,
    pub(super) attention_out: Linear<M, M, E, D>,
    pub(super) attention_norm: Norm<M, E, D>,
    intermediate: Linear<M, F, E, D>,
    pub(super) output: Linear<F, M, E, D>,
    pub(super) output_norm: Norm<M, E, D>,
}

impl<const M: usize, const F: usize, D: Device<f32>> TensorCollection<f32, D> for Layer<M, F, f32, D> {
    type To<E2: Dtype, D2: Device<E2>> = Layer<M, F, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, D>>(visitor: &mut V) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                (
                    Self::module("attention.self.query", |s| &s.query, |s| &mut s.query),
                    Self::module("attention.self.key", |s| &s.key, |s| &mut s.key),
                    Self::module("attention.self.value", |s| &s.value, |s| &mut s.value),
                    Self::module("attention.output.dense", |s| &s.attention_out, |s| &mut s.attention_out),
                ),
                (
                    Self::module(
                        "attention.output.LayerNorm",
                        |s| &s.attention_norm,
                        |s| &mut s.attention_norm,
                    ),
                    Self::module("intermediate.dense", |s| &s.intermediate, |s| &mut s.intermediate),
                    Self::module("output.dense", |s| &s.output, |s| &mut s.output),
                    Self::module("output.LayerNorm", |s| &s.output_norm, |s| &mut s.output_norm),
                ),
            ),
            |((query, key, value, attention_out), (attention_norm, intermediate, output, output_norm))| Layer {
                query,
                key,
                value,
                attention_out,
                attention_norm,
                intermediate,
                output,
                output_norm,
            },
        )
    }
}

impl<const M: usize, const F: usize, D: Backend> Layer<M, F, f32, D> {
    pub(super) fn new(dev: &D) -> Self {
        Self {
            query: dev.build_module::<dfdx::nn::builders::Linear<M, M>, f32>(),
            key: dev.build_module::<dfdx::nn::builders::Linear<M, M>, f32>(),
            value: dev.build_module::<dfdx::nn::builders::Linear<M, M>, f32>(),
            attention_out: dev.build_module::<dfdx::nn::builders::Linear<M, M>, f32>(),
            attention_norm: Norm::new(dev),
            intermediate: dev.build_module::<dfdx::nn::builders::Linear<M, F>, f32>(),
            output: dev.build_module::<dfdx::nn::builders::Linear<F, M>, f32>(),
            output_norm: Norm::new(dev),
        }
    }

    /// Self-attention over unpadded keys (`mask`: 1 on real tokens, 0 on padding), residual,
    /// LayerNorm; erf-GELU feed-forward, residual, LayerNorm. The products, the attention and
    /// the GELU are the device's fused [`Kernels`](crate::kernels::Kernels) (dfdx's own
    /// `accurate_gelu` has a wrong backward in 0.13).
    fn forward<const H: usize, T: Tape<f32, D>>(
        &self,
        x: States<M, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
        eps: f64,
    ) -> States<M, D, T> {
        let mixed = D::self_attention([&self.query, &self.key, &self.value], x.with_empty_tape(), mask, H);
        let x = self
            .attention_norm
            .forward(D::linear_residual(&self.attention_out, mixed, x), eps);
        let h = D::linear_gelu_erf(&self.intermediate, x.with_empty_tape());
        self.output_norm.forward(D::linear_residual(&self.output, h, x), eps)
    }
}

/// Input tensors of a batch.
pub(super) struct Inputs<D: Backend> {
    ids: Tensor<(usize, usize), usize, D>,
    positions: Tensor<(usize, usize), usize, D>,
    types: Tensor<(usize, usize), usize, D>,
    /// 1 on real tokens, 0 on padding (the attention's key mask).
    pub(super) mask: Tensor<(usize, usize), f32, D>,
    /// Each token's weight in the pooled vector (the mask for mean pooling, the first token
    /// for CLS pooling).
    pub(super) pool: Tensor<(usize, usize), f32, D>,
}

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    pub(super) fn assemble(
        dev: D,
        (flavour, rows): (Flavour, TableRows),
        words: Words<V, M, f32, D>,
        rest: EmbeddingRest<S, M, f32, D>,
        layers: Vec<Layer<M, F, f32, D>>,
        fine_tune: FineTune,
        settings: OptimizerSettings,
    ) -> Result<Self> {
        ensure!(H * DH == M, "heads × head dim must equal the hidden size");
        ensure!(
            fine_tune.top_layers <= layers.len(),
            "fine-tuning the top {} layers of a {}-layer encoder",
            fine_tune.top_layers,
            layers.len()
        );
        ensure!(
            rows.vocab <= V && rows.positions <= S && rows.types <= TYPES && rows.types > 0,
            "embedding tables of {rows:?} rows exceed this shape's {V}, {S} and {TYPES}"
        );
        ensure!(
            rows.positions > flavour.first_position,
            "a position table of {} rows cannot start texts at position {}",
            rows.positions,
            flavour.first_position
        );
        let mut model = Self {
            dev,
            flavour,
            rows,
            words,
            rest,
            layers,
            fine_tune,
            settings,
            opt_words: None,
            opt_rest: None,
            opt_layers: Vec::new(),
            grads: None,
            base: None,
            base_fingerprint: String::new(),
            frozen: None,
            head: None,
        };
        model.set_fine_tune(fine_tune)?;
        model.base_fingerprint = model.fingerprint();
        Ok(model)
    }

    pub(super) fn random(dev: D, layers: usize, fine_tune: FineTune, settings: OptimizerSettings) -> Result<Self> {
        let rows = TableRows {
            vocab: TINY_VOCAB.min(V),
            positions: TINY_POSITIONS.min(S),
            types: TYPES,
        };
        // The used rows random, the rest of each table zero.
        let table = |used: usize, capacity: usize| {
            let mut values = (dev.sample_normal_like(&(used, Const::<M>)) * 0.5).as_vec();
            values.resize(capacity * M, 0.0);
            values
        };
        let words = Words {
            weight: dev.tensor_from_vec(table(rows.vocab, V), (Const::<V>, Const::<M>)),
        };
        let rest = EmbeddingRest {
            position: dev.tensor_from_vec(table(rows.positions, S), (Const::<S>, Const::<M>)),
            token_type: dev.tensor_from_vec(table(rows.types, TYPES), (Const::<TYPES>, Const::<M>)),
            norm: Norm::new(&dev),
        };
        let layers = (0..layers).map(|_| Layer::new(&dev)).collect();
        Self::assemble(
            dev.clone(),
            (Flavour::default(), rows),
            words,
            rest,
            layers,
            fine_tune,
            settings,
        )
    }

    pub(super) fn inputs(&self, batch: &TokenBatch) -> Result<Inputs<D>> {
        let (rows, len) = (batch.rows, batch.len);
        ensure!(
            batch.ids.len() == rows * len && batch.mask.len() == rows * len,
            "a token batch whose ids or mask do not have rows × len entries"
        );
        ensure!(rows > 0 && len > 0, "an empty token batch");
        let vocab = self.rows.vocab;
        if let Some(bad) = batch.ids.iter().find(|id| **id >= vocab) {
            bail!("token id {bad} is outside the model's vocabulary of {vocab}");
        }
        let first = self.flavour.first_position;
        let positions = self.rows.positions - first;
        ensure!(
            len <= positions,
            "sequences of {len} tokens exceed the model's {positions} positions (lower model.max_len)"
        );
        for (r, row) in batch.mask.chunks(len).enumerate() {
            ensure!(row.iter().any(|m| *m > 0.0), "row {r} of the batch has no token");
        }
        let shape = (rows, len);
        let mask = self.dev.tensor_from_vec(batch.mask.clone(), shape);
        let pool = match self.flavour.pooling {
            Pooling::Mean => mask.clone(),
            Pooling::Cls => self
                .dev
                .tensor_from_vec((0..rows * len).map(|i| f32::from(i % len == 0)).collect(), shape),
        };
        Ok(Inputs {
            ids: self.dev.tensor_from_vec(batch.ids.clone(), shape),
            positions: self
                .dev
                .tensor_from_vec((0..rows).flat_map(|_| first..first + len).collect(), shape),
            types: self.dev.tensor_from_vec(vec![0; rows * len], shape),
            mask,
            pool,
        })
    }

    fn embeddings_frozen(&self, inp: &Inputs<D>) -> States<M, D, NoneTape> {
        let words = self.words.weight.clone().gather(inp.ids.clone());
        let positions = self.rest.position.clone().gather(inp.positions.clone());
        let types = self.rest.token_type.clone().gather(inp.types.clone());
        self.rest
            .norm
            .forward(words + positions + types, self.flavour.layer_norm_eps)
    }

    /// The embeddings on `tape`; frozen tables are plain gathers, outside the tape.
    fn embeddings_taped(&self, inp: &Inputs<D>, tape: OwnedTape<f32, D>) -> States<M, D, OwnedTape<f32, D>> {
        type T<D> = OwnedTape<f32, D>;
        let words = if self.fine_tune.word_embeddings {
            self.words.weight.retaped::<T<D>>().gather(inp.ids.clone())
        } else {
            self.words.weight.clone().gather(inp.ids.clone()).retaped::<T<D>>()
        };
        let rest = if self.fine_tune.embeddings {
            self.rest.position.retaped::<T<D>>().gather(inp.positions.clone())
                + self.rest.token_type.retaped::<T<D>>().gather(inp.types.clone())
        } else {
            (self.rest.position.clone().gather(inp.positions.clone())
                + self.rest.token_type.clone().gather(inp.types.clone()))
            .retaped::<T<D>>()
        };
        let (x, own) = (words + rest).split_tape();
        self.rest
            .norm
            .forward(x.put_tape(tape.merge(own)), self.flavour.layer_norm_eps)
    }

    pub(super) fn run_layers<T: Tape<f32, D>>(
        &self,
        mut x: States<M, D, T>,
        range: std::ops::Range<usize>,
        inp: &Inputs<D>,
    ) -> States<M, D, T> {
        for layer in &self.layers[range] {
            x = layer.forward::<H, T>(x, &inp.mask, self.flavour.layer_norm_eps);
        }
        x
    }

    /// States after `after` layers, no tape.
    pub(super) fn frozen_states(&self, inp: &Inputs<D>, after: usize) -> States<M, D, NoneTape> {
        self.run_layers(self.embeddings_frozen(inp), 0..after, inp)
    }

    pub(super) fn states_tensor(&self, batch: &TokenBatch, states: LayerStates) -> Result<States<M, D, NoneTape>> {
        ensure!(
            states.after_layer <= self.layers.len(),
            "states after layer {} of a {}-layer encoder",
            states.after_layer,
            self.layers.len()
        );
        ensure!(
            states.states.len() == batch.rows * batch.len * M,
            "cached states hold {} values, the batch needs {} × {} × {M}",
            states.states.len(),
            batch.rows,
            batch.len
        );
        Ok(self
            .dev
            .tensor_from_vec(states.states.to_vec(), (batch.rows, batch.len, Const::<M>)))
    }

    /// The final token states on a tape that starts where training starts.
    pub(super) fn taped_states(
        &self,
        inp: &Inputs<D>,
        batch: &TokenBatch,
        cached: Option<LayerStates>,
        grads: Gradients<f32, D>,
    ) -> Result<States<M, D, OwnedTape<f32, D>>> {
        let depth = self.layers.len();
        let first = self.first_trainable();
        if self.embeddings_train() {
            ensure!(cached.is_none(), "cached layer states need frozen embeddings");
            let carrier: Tensor<Rank0, f32, D> = self.dev.zeros();
            let (_, tape) = carrier.traced(grads).split_tape();
            return Ok(self.run_layers(self.embeddings_taped(inp, tape), 0..depth, inp));
        }
        let frozen = match cached {
            Some(states) => {
                ensure!(
                    states.after_layer <= first,
                    "cached states after layer {} are above the lowest trainable layer {first}",
                    states.after_layer
                );
                let x = self.states_tensor(batch, states)?;
                self.run_layers(x, states.after_layer..first, inp)
            }
            None => self.frozen_states(inp, first),
        };
        Ok(self.run_layers(frozen.traced(grads), first..depth, inp))
    }

    /// Pooling (the weighted mean of the token states under `weights`: the mask, or the first
    /// token), the Dense tanh projection where the model has one, and L2 normalisation.
    pub(super) fn pool<T: Tape<f32, D>>(
        &self,
        states: States<M, D, T>,
        weights: &Tensor<(usize, usize), f32, D>,
    ) -> Tensor<(usize, Const<M>), f32, D, T> {
        let (rows, len) = *weights.shape();
        let spread = weights.clone().broadcast_like::<_, Axis<2>>(&(rows, len, Const::<M>));
        let summed = (states * spread).sum::<(usize, Const<M>), Axis<1>>();
        let counts = weights
            .clone()
            .sum::<(usize,), Axis<1>>()
            .broadcast_like::<_, Axis<1>>(&(rows, Const::<M>));
        let pooled = summed / counts;
        let pooled = match &self.head {
            Some(head) => dfdx::nn::Module::forward(head, pooled).tanh(),
            None => pooled,
        };
        let norms = (pooled.with_empty_tape().square().sum::<(usize,), Axis<1>>() + 1e-12)
            .sqrt()
            .broadcast_like::<_, Axis<1>>(&(rows, Const::<M>));
        pooled / norms
    }
}

/// A fixed-depth stack of these modules (L layers, positions from 0, every token of type 0)
/// without [`Bert`]'s loading, freezing and step: the benchmark encoder of me5-small's shape
/// ([`crate::build_me5_shape`]) runs the same layers as the trained model.
#[derive(Debug, Clone)]
pub(crate) struct Stack<
    const V: usize,
    const S: usize,
    const M: usize,
    const F: usize,
    const L: usize,
    E: Dtype,
    D: Storage<E>,
> {
    words: Words<V, M, E, D>,
    rest: EmbeddingRest<S, M, E, D>,
    layers: Repeated<Layer<M, F, E, D>, L>,
}

impl<const V: usize, const S: usize, const M: usize, const F: usize, const L: usize, D: Device<f32>>
    TensorCollection<f32, D> for Stack<V, S, M, F, L, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Stack<V, S, M, F, L, E2, D2>;

    fn iter_tensors<V2: ModuleVisitor<Self, f32, D>>(
        visitor: &mut V2,
    ) -> Result<Option<Self::To<V2::E2, V2::D2>>, V2::Err> {
        visitor.visit_fields(
            (
                Self::module("embeddings", |s| &s.words, |s| &mut s.words),
                Self::module("embeddings", |s| &s.rest, |s| &mut s.rest),
                Self::module("encoder.layer", |s| &s.layers, |s| &mut s.layers),
            ),
            |(words, rest, layers)| Stack { words, rest, layers },
        )
    }
}

impl<const V: usize, const S: usize, const M: usize, const F: usize, const L: usize, D: Backend>
    Stack<V, S, M, F, L, f32, D>
{
    /// Random tables, dfdx's initialisation of the linear layers.
    pub(crate) fn new(dev: &D) -> Self {
        Self {
            words: Words {
                weight: dev.sample_normal(),
            },
            rest: EmbeddingRest {
                position: dev.sample_normal(),
                token_type: dev.sample_normal(),
                norm: Norm::new(dev),
            },
            layers: Repeated {
                modules: (0..L).map(|_| Layer::new(dev)).collect(),
            },
        }
    }

    /// Token states of `ids` (carrying the tape) under the key mask `mask`, with H heads and
    /// LayerNorm ε `eps`.
    pub(crate) fn states<const H: usize, T: Tape<f32, D>>(
        &self,
        ids: Tensor<(usize, usize), usize, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
        eps: f64,
    ) -> States<M, D, T> {
        let shape = *mask.shape();
        let (rows, len) = shape;
        let dev = mask.device().clone();
        let positions = dev.tensor_from_vec((0..rows).flat_map(|_| 0..len).collect(), shape);
        let types = dev.tensor_from_vec(vec![0; rows * len], shape);
        let (ids, tape) = ids.split_tape();
        let x = self.words.weight.clone().put_tape(tape).gather(ids)
            + self.rest.position.retaped::<T>().gather(positions)
            + self.rest.token_type.retaped::<T>().gather(types);
        let mut x = self.rest.norm.forward(x, eps);
        for layer in &self.layers.modules {
            x = layer.forward::<H, T>(x, mask, eps);
        }
        x
    }
}
