//! A pretrained BERT-family post-LN encoder (multilingual-E5-small, or a HuggingFace folder of
//! `model_type` `bert` or `xlm-roberta`, read by [`folder`]) in dfdx, with the fine-tuning knobs
//! research needs: which layers train (the top N), whether the embeddings train, and a hook for
//! caching the frozen lower layers' token states.
//!
//! The forward pass: word + position (0..L-1 for BERT, from `pad_token_id + 1` for XLM-R) +
//! token-type-0 embeddings → LayerNorm; post-LN layers (self-attention with a key-padding mask,
//! residual, LayerNorm; erf-GELU feed-forward, residual, LayerNorm); mean over the mask (every
//! real token, special tokens included) or the first token; a sentence-transformers Dense
//! tanh projection where the folder has one (LaBSE); L2 normalisation. LayerNorm ε is the
//! model's (1e-12 for BERT and E5).
//!
//! Freezing keeps frozen tensors out of the tape: the frozen lower layers run without a tape
//! (a top-2 step costs about 2/12 of a full step's backward), a frozen word-embedding table is a
//! plain gather, and optimizer state (AdamW moments) exists only for trainable tensors (one
//! dfdx `Adam` per trainable part).
//!
//! Weights are read from and written to safetensors with HuggingFace `BertModel` tensor names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.{l}.attention.self.query.weight`, …;
//! linear weights [out, in]). A training checkpoint ([`TrainableEncoder::save`]) holds only the
//! trained tensors and names its base model (path and fingerprint) in the safetensors metadata;
//! [`BertEncoder::save_full`] writes the whole model.

use super::clipping::{GradNorm, clip_walked};
use super::kernels::StepRunner;
use super::loss::{info_nce_loss, ot_surrogate};
use super::{
    AdamState, Backend, Embedder, OptimizerSettings, ResolvedDevice, StepInput, StepLoss, TrainableEncoder, adam_config,
};
use crate::tokenizer::TokenBatch;
use anyhow::{Context, Result, bail, ensure};
use dfdx::nn::ZeroGrads;
use dfdx::nn::modules::{LayerNorm1D, Linear};
use dfdx::nn::tensor_collection::{
    ModuleVisitor, RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::*;
use dfdx::tensor::{OwnedTape, Storage};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use folder::Pooling;

pub mod export;
pub mod folder;
pub mod frozen;
pub mod text;

/// Which parts of the encoder train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FineTune {
    /// The top N layers train (0 ..= number of layers); the lower ones stay frozen.
    pub top_layers: usize,
    /// Position and token-type embeddings and the embedding LayerNorm.
    pub embeddings: bool,
    /// The word-embedding table (250,037 × 384 for me5-small).
    pub word_embeddings: bool,
}

impl FineTune {
    /// Every tensor trains.
    pub fn full(layers: usize) -> Self {
        Self {
            top_layers: layers,
            embeddings: true,
            word_embeddings: true,
        }
    }
}

/// Token states of a batch after `after_layer` layers (0: the embedding output), rows × len ×
/// `state_dim()`, as [`BertEncoder::hidden_states`] computes them: what a cache of the frozen
/// lower layers stores.
#[derive(Debug, Clone, Copy)]
pub struct LayerStates<'a> {
    /// Number of layers applied so far (0: the embedding output).
    pub after_layer: usize,
    /// The states: rows × len × `state_dim()` values.
    pub states: &'a [f32],
}

/// A BERT encoder: [`TrainableEncoder`] plus the layer-level hooks.
pub trait BertEncoder: TrainableEncoder {
    /// Number of encoder layers.
    fn num_layers(&self) -> usize;
    /// Which parts of the model train.
    fn fine_tune(&self) -> FineTune;
    /// Trainable parameters under the current [`FineTune`].
    fn num_trainable_params(&self) -> usize;
    /// Token states after the first `after_layer` layers, without a tape.
    fn hidden_states(&self, batch: &TokenBatch, after_layer: usize) -> Result<Vec<f32>>;
    /// Embeddings of a batch from its states after some layer (the rest of the forward pass).
    fn embed_from_states(&self, batch: &TokenBatch, states: LayerStates) -> Result<Vec<f32>>;
    /// [`TrainableEncoder::train_step`] starting from given states of `input.batch` and of the
    /// OT term's student batch (`ot_states`; each after a layer at or below the lowest
    /// trainable one; the embeddings must be frozen).
    fn train_step_from_states(
        &mut self,
        input: &StepInput,
        states: Option<LayerStates>,
        ot_states: Option<LayerStates>,
    ) -> Result<StepLoss>;
    /// Writes every tensor (HuggingFace `BertModel` names), e.g. for an export.
    fn save_full(&self, path: &Path) -> Result<()>;
    /// Keeps the token states after the frozen lower layers in a [`frozen::StateStore`] under
    /// `root` (one folder per base model and depth), so that training and embedding run only
    /// the layers above them. The numbers are the same as without the store. Nothing changes
    /// when no layer is frozen or an embedding table trains; loading a full checkpoint later
    /// detaches the store. Returns the number of frozen layers it covers.
    fn use_state_store(&mut self, root: &Path) -> Result<usize>;
}

/// The prepared multilingual-E5-small's name (`model.backbone: me5-small`, `clirlab encode
/// --model me5-small`): a folder under `<data_dir>/models/`.
pub const ME5_SMALL: &str = "me5-small";

/// The shapes this build runs, as (hidden, heads, feed-forward, most vocabulary rows, most
/// position rows). dfdx fixes a tensor's shape at compile time wherever its optimizers and
/// visitors walk it, so each width is compiled in and a model's embedding tables fill the first
/// rows of tables of a fixed capacity (the rest stay zero, are never read and are not saved).
/// They cover the BERT-family retrievers in use: MiniLM-L12 and multilingual-E5-small (384),
/// multilingual BERT, XLM-R, mE5 and AfroXLMR base (768) and large (1024), and the test-sized
/// one (32).
pub const SHAPES: [(usize, usize, usize, usize, usize); 5] = [
    (32, 4, 64, TINY_VOCAB_ROWS, TINY_POSITION_ROWS),
    (384, 12, 1536, VOCAB_ROWS, POSITION_ROWS),
    (768, 12, 3072, VOCAB_ROWS, POSITION_ROWS),
    (768, 12, 3072, LARGE_VOCAB_ROWS, POSITION_ROWS),
    (1024, 16, 4096, VOCAB_ROWS, POSITION_ROWS),
];

/// Vocabulary rows of the full-sized shapes: multilingual-E5's 250,037 (XLM-R has 250,002,
/// multilingual BERT 119,547).
const VOCAB_ROWS: usize = 250_037;
/// Vocabulary rows of the base width for larger vocabularies: LaBSE's 501,153 (a table of its
/// own, so that base models with the usual vocabulary do not carry twice the rows).
const LARGE_VOCAB_ROWS: usize = 501_153;
/// Position rows of the full-sized shapes: XLM-R's 514 (BERT's 512 fit).
const POSITION_ROWS: usize = 514;
/// Vocabulary and position rows of the test-sized shape.
const TINY_VOCAB_ROWS: usize = 1024;
const TINY_POSITION_ROWS: usize = 64;

/// Runs `$body` with `$b` the [`Bert`] type of `$shape`'s widths (`$path` names its config in
/// the error for a shape this build lacks).
macro_rules! with_shape {
    ($shape:expr, $path:expr, |$b:ident| $body:expr) => {
        match ($shape.hidden, $shape.heads, $shape.intermediate) {
            (32, 4, 64) => {
                type $b<D> = Bert<TINY_VOCAB_ROWS, TINY_POSITION_ROWS, 32, 4, 8, 64, D>;
                $body
            }
            (384, 12, 1536) => {
                type $b<D> = Bert<VOCAB_ROWS, POSITION_ROWS, 384, 12, 32, 1536, D>;
                $body
            }
            (768, 12, 3072) if $shape.vocab <= VOCAB_ROWS => {
                type $b<D> = Bert<VOCAB_ROWS, POSITION_ROWS, 768, 12, 64, 3072, D>;
                $body
            }
            (768, 12, 3072) => {
                type $b<D> = Bert<LARGE_VOCAB_ROWS, POSITION_ROWS, 768, 12, 64, 3072, D>;
                $body
            }
            (1024, 16, 4096) => {
                type $b<D> = Bert<VOCAB_ROWS, POSITION_ROWS, 1024, 16, 64, 4096, D>;
                $body
            }
            (hidden, heads, ff) => bail!(
                "{}: hidden_size {hidden}, num_attention_heads {heads}, intermediate_size {ff}: not a shape this \
                 build runs (hidden/heads/feed-forward: {})",
                $path.display(),
                SHAPES.map(|(m, h, f, _, _)| format!("{m}/{h}/{f}")).join(", ")
            ),
        }
    };
}

/// How a loaded model embeds beyond its tensors: where positions start, the LayerNorm ε
/// and the pooling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flavour {
    /// The position id of a text's first token (0 for BERT, `pad_token_id + 1` for XLM-R).
    pub first_position: usize,
    /// LayerNorm ε.
    pub layer_norm_eps: f64,
    /// Mean or first-token pooling.
    pub pooling: Pooling,
}

impl Default for Flavour {
    /// BERT's: positions from 0, ε 1e-12, mean pooling (multilingual-E5).
    fn default() -> Self {
        Self {
            first_position: 0,
            layer_norm_eps: 1e-12,
            pooling: Pooling::Mean,
        }
    }
}

/// The folder whose `config.json` describes the model of `dir`: `dir` itself, or for a trained
/// cell's folder (a checkpoint of trained tensors, no `config.json`) the base model's folder.
pub fn config_folder(dir: &Path) -> Result<PathBuf> {
    if dir.join("config.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let file = dir.join("model.safetensors");
    let (meta, _) = read_header(&file)?;
    match meta.get(META_BASE) {
        Some(base) => {
            let base_dir = Path::new(base).parent().unwrap_or(Path::new("."));
            ensure!(
                base_dir.join("config.json").is_file(),
                "{}: its base model's folder {} has no config.json",
                file.display(),
                base_dir.display()
            );
            Ok(base_dir.to_path_buf())
        }
        None => bail!("{}: no config.json beside the model", dir.display()),
    }
}

/// Loads an encoder from a model folder (`model.safetensors`, full or a checkpoint naming its
/// base, and the `config.json` of it or of its base). `pooling`: the experiment's choice, else
/// the folder's sentence-transformers pooling, else the mean.
pub fn load(
    dir: &Path,
    pooling: Option<Pooling>,
    fine_tune: FineTune,
    opt: OptimizerSettings,
    device: ResolvedDevice,
) -> Result<Box<dyn BertEncoder>> {
    let file = dir.join("model.safetensors");
    ensure!(
        file.is_file(),
        "{}: no model.safetensors in the model folder",
        dir.display()
    );
    let root = config_folder(dir)?;
    let shape = folder::Shape::read(&root)?;
    let st = folder::SentenceTransformers::read(&root)?;
    let pooling = pooling.or(st.pooling).unwrap_or_default();
    let flavour = Flavour {
        first_position: shape.first_position(),
        layer_norm_eps: shape.layer_norm_eps,
        pooling,
    };
    let config = root.join("config.json");
    let dense = st.dense.as_deref();
    with_shape!(shape, config, |B| match device {
        ResolvedDevice::Cpu => Ok(Box::new(
            B::load_file(Cpu::default(), &file, flavour, fine_tune, opt)?.with_head(dense)?,
        )),
        #[cfg(feature = "cuda")]
        ResolvedDevice::Cuda(ordinal) => {
            let dev =
                Cuda::try_build(ordinal, 0).map_err(|e| anyhow::anyhow!("opening CUDA device {ordinal}: {e:?}"))?;
            Ok(Box::new(
                B::load_file(dev, &file, flavour, fine_tune, opt)?.with_head(dense)?,
            ))
        }
    })
}

/// A randomly initialised small encoder of the same architecture (vocabulary 50, 32
/// positions, hidden 32, 4 heads of 8, feed-forward 64), for tests that need no weights.
pub fn tiny_random(
    seed: u64,
    layers: usize,
    fine_tune: FineTune,
    opt: OptimizerSettings,
) -> Result<Box<dyn BertEncoder>> {
    Ok(Box::new(TinyBert::random(
        Cpu::seed_from_u64(seed),
        layers,
        fine_tune,
        opt,
    )?))
}

/// The test-sized encoder: hidden 32, 4 heads of 8, feed-forward 64.
type TinyBert = Bert<TINY_VOCAB_ROWS, TINY_POSITION_ROWS, 32, 4, 8, 64, Cpu>;

/// Vocabulary and positions of [`tiny_random`].
const TINY_VOCAB: usize = 50;
const TINY_POSITIONS: usize = 32;

/// The rows of the embedding tables a model uses (the first rows of each table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableRows {
    vocab: usize,
    positions: usize,
    types: usize,
}

impl TableRows {
    /// The used rows of the table named `name` (a tensor name under `embeddings.`), if it is
    /// an embedding table.
    fn of(&self, name: &str) -> Option<usize> {
        if name.ends_with("word_embeddings.weight") {
            Some(self.vocab)
        } else if name.ends_with("position_embeddings.weight") {
            Some(self.positions)
        } else if name.ends_with("token_type_embeddings.weight") {
            Some(self.types)
        } else {
            None
        }
    }
}

/// The revision of the frozen forward's rounding, part of a state store's folder name: raised
/// whenever a change to the kernels changes the states' last bits, so that states computed
/// before are never mixed with new ones (2: LayerNorm through the fused kernel; 3: the
/// query/key/value projections as one product, the attention's products on OpenBLAS).
const STATE_NUMERICS: u32 = 3;

/// Rows per forward pass when the frozen layers compute the states a store lacks.
const STATE_CHUNK: usize = 16;

/// Rows of a training batch run together, sorted by length ([`Bert::pooled_in_buckets`]).
const STEP_BUCKET: usize = 16;

/// LayerNorm with HuggingFace's tensor names (`weight`, `bias`); ε is the model's.
#[derive(Debug, Clone)]
struct Norm<const M: usize, E: Dtype, D: Storage<E>> {
    weight: Tensor<Rank1<M>, E, D>,
    bias: Tensor<Rank1<M>, E, D>,
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

type States<const M: usize, D, T> = Tensor<(usize, usize, Const<M>), f32, D, T>;

/// Pooled embeddings on a training tape: rows × M.
type TapedEmbeddings<const M: usize, D> = Tensor<(usize, Const<M>), f32, D, OwnedTape<f32, D>>;

impl<const M: usize, D: Backend> Norm<M, f32, D> {
    fn new(dev: &D) -> Self {
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
struct Words<const N: usize, const M: usize, E: Dtype, D: Storage<E>> {
    weight: Tensor<Rank2<N, M>, E, D>,
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
struct EmbeddingRest<const S: usize, const M: usize, E: Dtype, D: Storage<E>> {
    position: Tensor<Rank2<S, M>, E, D>,
    token_type: Tensor<Rank2<TYPES, M>, E, D>,
    norm: Norm<M, E, D>,
}

/// Rows of the token-type table (BERT's two segments; XLM-R's one is the first).
const TYPES: usize = 2;

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
struct Layer<const M: usize, const F: usize, E: Dtype, D: Storage<E>> {
    query: Linear<M, M, E, D>,
    key: Linear<M, M, E, D>,
    value: Linear<M, M, E, D>,
    attention_out: Linear<M, M, E, D>,
    attention_norm: Norm<M, E, D>,
    intermediate: Linear<M, F, E, D>,
    output: Linear<F, M, E, D>,
    output_norm: Norm<M, E, D>,
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
    fn new(dev: &D) -> Self {
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
    /// the GELU are the device's fused [`Kernels`](super::kernels::Kernels) (dfdx's own
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
struct Inputs<D: Backend> {
    ids: Tensor<(usize, usize), usize, D>,
    positions: Tensor<(usize, usize), usize, D>,
    types: Tensor<(usize, usize), usize, D>,
    /// 1 on real tokens, 0 on padding (the attention's key mask).
    mask: Tensor<(usize, usize), f32, D>,
    /// Each token's weight in the pooled vector (the mask for mean pooling, the first token
    /// for CLS pooling).
    pool: Tensor<(usize, usize), f32, D>,
}

/// The encoder: hidden M = H·DH, feed-forward F, a runtime number of layers and runtime
/// vocabulary and position-table sizes.
struct Bert<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
{
    dev: D,
    flavour: Flavour,
    rows: TableRows,
    words: Words<V, M, f32, D>,
    rest: EmbeddingRest<S, M, f32, D>,
    layers: Vec<Layer<M, F, f32, D>>,
    fine_tune: FineTune,
    settings: OptimizerSettings,
    /// Optimizers of the trainable parts only.
    opt_words: Option<AdamState<Words<V, M, f32, D>, D>>,
    opt_rest: Option<AdamState<EmbeddingRest<S, M, f32, D>, D>>,
    /// One per trainable layer, from the lowest trainable one up.
    opt_layers: Vec<AdamState<Layer<M, F, f32, D>, D>>,
    grads: Option<Gradients<f32, D>>,
    /// Where the base weights came from, and their fingerprint (see [`Bert::fingerprint`]).
    base: Option<PathBuf>,
    base_fingerprint: String,
    /// The states after the frozen layers, when a store is attached.
    frozen: Option<Frozen>,
    /// A sentence-transformers Dense module after the pooling (tanh), frozen: LaBSE's.
    head: Option<Linear<M, M, f32, D>>,
}

/// An attached state store and the depth of the states it holds.
struct Frozen {
    after_layer: usize,
    store: std::sync::Mutex<frozen::StateStore>,
}

/// A part of the model, for the visitors that walk parts one at a time.
enum Part<'a, const V: usize, const S: usize, const M: usize, const F: usize, D: Backend> {
    Words(&'a Words<V, M, f32, D>),
    Rest(&'a EmbeddingRest<S, M, f32, D>),
    Layer(usize, &'a Layer<M, F, f32, D>),
}

impl<const V: usize, const S: usize, const M: usize, const F: usize, D: Backend> Part<'_, V, S, M, F, D> {
    fn prefix(&self) -> String {
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

const META_FORMAT: &str = "clirlab.format";
const FORMAT_FULL: &str = "clirlab-bert-full/1";
const FORMAT_DELTA: &str = "clirlab-bert-delta/1";
const META_BASE: &str = "clirlab.base";
const META_FINGERPRINT: &str = "clirlab.base_fingerprint";
const META_FINE_TUNE: &str = "clirlab.fine_tune";

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    fn assemble(
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

    /// (Re)creates the optimizers and gradient buffers for the trainable parts.
    fn set_fine_tune(&mut self, fine_tune: FineTune) -> Result<()> {
        let cfg = adam_config(self.settings);
        self.fine_tune = fine_tune;
        self.opt_words = fine_tune.word_embeddings.then(|| AdamState::new(&self.words, cfg));
        self.opt_rest = fine_tune.embeddings.then(|| AdamState::new(&self.rest, cfg));
        let first = self.first_trainable();
        self.opt_layers = self.layers[first..].iter().map(|l| AdamState::new(l, cfg)).collect();
        self.grads = Some(self.fresh_grads()?);
        Ok(())
    }

    /// Zeroed gradient buffers of the trainable tensors, marked as the tape's leaves.
    fn fresh_grads(&self) -> Result<Gradients<f32, D>> {
        let mut grads = Gradients::leaky();
        for part in self.trainable_parts() {
            with_part!(part, m => m.try_zero_grads(&mut grads)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        Ok(grads)
    }

    fn random(dev: D, layers: usize, fine_tune: FineTune, settings: OptimizerSettings) -> Result<Self> {
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

    /// Reads a model file: a full one, or a checkpoint of trained tensors over the base it
    /// names. Tensor names may carry a task model's prefix (`bert.`, `roberta.`).
    fn load_file(
        dev: D,
        file: &Path,
        flavour: Flavour,
        fine_tune: FineTune,
        settings: OptimizerSettings,
    ) -> Result<Self> {
        let (meta, shapes) = read_header(file)?;
        let format = meta.get(META_FORMAT).map(String::as_str);
        if format == Some(FORMAT_DELTA) {
            let base = meta
                .get(META_BASE)
                .with_context(|| format!("{}: a checkpoint without its base model", file.display()))?;
            let mut model = Self::load_file(dev, Path::new(base), flavour, fine_tune, settings)
                .with_context(|| format!("loading the base model of {}", file.display()))?;
            model.overlay(file, "", false)?;
            return Ok(model);
        }
        let words_name = "embeddings.word_embeddings.weight";
        let names = ["", "bert.", "roberta."]
            .into_iter()
            .find(|prefix| shapes.contains_key(&format!("{prefix}{words_name}")))
            .with_context(|| {
                format!(
                    "{}: no tensor `{words_name}` (nor under `bert.` or `roberta.`)",
                    file.display()
                )
            })?;
        let rows_of = |name: &str| -> Result<usize> {
            let full = format!("{names}embeddings.{name}.weight");
            let shape = shapes
                .get(&full)
                .with_context(|| format!("{}: no tensor `{full}`", file.display()))?;
            match shape.as_slice() {
                [rows, width] if *width == M && *rows > 0 => Ok(*rows),
                _ => bail!(
                    "{}: tensor `{full}` has shape {shape:?}, expected [rows, {M}] (hidden_size {M})",
                    file.display()
                ),
            }
        };
        let rows = TableRows {
            vocab: rows_of("word_embeddings")?,
            positions: rows_of("position_embeddings")?,
            types: rows_of("token_type_embeddings")?,
        };
        for (used, capacity, key) in [
            (rows.vocab, V, "vocab_size"),
            (rows.positions, S, "max_position_embeddings"),
            (rows.types, TYPES, "type_vocab_size"),
        ] {
            ensure!(
                used <= capacity,
                "{}: {used} rows for `{key}`, more than this build holds for hidden size {M} ({capacity})",
                file.display()
            );
        }
        let layers = (0..)
            .take_while(|l| shapes.contains_key(&format!("{names}encoder.layer.{l}.attention.self.query.weight")))
            .count();
        ensure!(
            layers > 0,
            "{}: no encoder layers (`{names}encoder.layer.0.…`)",
            file.display()
        );
        let words = Words { weight: dev.zeros() };
        let rest = EmbeddingRest {
            position: dev.zeros(),
            token_type: dev.zeros(),
            norm: Norm::new(&dev),
        };
        let layer_list = (0..layers).map(|_| Layer::new(&dev)).collect();
        let mut model = Self::assemble(
            dev.clone(),
            (flavour, rows),
            words,
            rest,
            layer_list,
            fine_tune,
            settings,
        )
        .with_context(|| format!("loading {}", file.display()))?;
        model.overlay(file, names, true)?;
        model.base = Some(std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()));
        model.base_fingerprint = model.fingerprint();
        Ok(model)
    }

    /// The model with the Dense module of the folder `dense` (`linear.weight`, `linear.bias` in
    /// its `model.safetensors`) after the pooling, when there is one. It does not train.
    fn with_head(mut self, dense: Option<&Path>) -> Result<Self> {
        let Some(dir) = dense else {
            return Ok(self);
        };
        let file = dir.join("model.safetensors");
        let mut head = self.dev.build_module::<dfdx::nn::builders::Linear<M, M>, f32>();
        with_tensors(&file, |tensors| {
            let mut loader = Loader {
                tensors,
                rows: self.rows,
                complete: true,
                loaded: 0,
                failure: None,
            };
            walk_mut(&mut head, "linear", &mut loader)?;
            match loader.failure {
                Some(e) => Err(e.context(format!("loading {}", file.display()))),
                None => Ok(()),
            }
        })?;
        self.head = Some(head);
        Ok(self)
    }

    /// Copies the tensors of `file` (named under `names`) into the model; with `complete`,
    /// every tensor must be there.
    fn overlay(&mut self, file: &Path, names: &str, complete: bool) -> Result<()> {
        let prefixes: Vec<String> = self
            .parts()
            .iter()
            .map(|part| format!("{names}{}", part.prefix()))
            .collect();
        let rows = self.rows;
        let Self {
            words, rest, layers, ..
        } = self;
        with_tensors(file, |tensors| {
            let mut loader = Loader {
                tensors,
                rows,
                complete,
                loaded: 0,
                failure: None,
            };
            walk_mut(words, &prefixes[0], &mut loader)?;
            walk_mut(rest, &prefixes[1], &mut loader)?;
            for (l, layer) in layers.iter_mut().enumerate() {
                walk_mut(layer, &prefixes[l + 2], &mut loader)?;
            }
            if let Some(e) = loader.failure {
                return Err(e.context(format!("loading {}", file.display())));
            }
            ensure!(
                loader.loaded > 0,
                "{}: no tensor of this model in the file",
                file.display()
            );
            Ok(())
        })?;
        if !complete {
            let meta = read_header(file)?.0;
            if let Some(print) = meta.get(META_FINGERPRINT)
                && *print != self.base_fingerprint
            {
                bail!(
                    "{}: the checkpoint was trained from another base model (fingerprint {print}, this base {})",
                    file.display(),
                    self.base_fingerprint
                );
            }
        }
        Ok(())
    }

    fn parts(&self) -> Vec<Part<'_, V, S, M, F, D>> {
        let mut parts = vec![Part::Words(&self.words), Part::Rest(&self.rest)];
        parts.extend(self.layers.iter().enumerate().map(|(l, m)| Part::Layer(l, m)));
        parts
    }

    fn trainable_parts(&self) -> Vec<Part<'_, V, S, M, F, D>> {
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

    fn first_trainable(&self) -> usize {
        self.layers.len() - self.fine_tune.top_layers
    }

    fn embeddings_train(&self) -> bool {
        self.fine_tune.embeddings || self.fine_tune.word_embeddings
    }

    /// SHA-256 over the LayerNorm weights and every bias: small, and different for any two
    /// trained models (identifies the base of a checkpoint).
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        let mut add = |t: Vec<f32>| t.iter().for_each(|v| hash.update(v.to_le_bytes()));
        add(self.rest.norm.weight.as_vec());
        add(self.rest.norm.bias.as_vec());
        for layer in &self.layers {
            for bias in [
                &layer.query.bias,
                &layer.key.bias,
                &layer.value.bias,
                &layer.attention_out.bias,
            ] {
                add(bias.as_vec());
            }
            add(layer.output.bias.as_vec());
            add(layer.attention_norm.weight.as_vec());
            add(layer.output_norm.weight.as_vec());
        }
        // Where positions start and ε change the states; the default (every model before
        // XLM-R's was) adds nothing, so fingerprints of earlier checkpoints still match.
        let Flavour {
            first_position,
            layer_norm_eps,
            pooling: _,
        } = self.flavour;
        if (first_position, layer_norm_eps) != (0, Flavour::default().layer_norm_eps) {
            hash.update(format!("positions from {first_position}, eps {layer_norm_eps:e}"));
        }
        format!("{:x}", hash.finalize())
    }

    fn inputs(&self, batch: &TokenBatch) -> Result<Inputs<D>> {
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

    fn run_layers<T: Tape<f32, D>>(
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
    fn frozen_states(&self, inp: &Inputs<D>, after: usize) -> States<M, D, NoneTape> {
        self.run_layers(self.embeddings_frozen(inp), 0..after, inp)
    }

    fn states_tensor(&self, batch: &TokenBatch, states: LayerStates) -> Result<States<M, D, NoneTape>> {
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
    fn taped_states(
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

    /// The depth of the attached store's states, while they are valid for this model (the
    /// layers below it and the embeddings frozen).
    fn frozen_depth(&self) -> Option<usize> {
        let depth = self.frozen.as_ref()?.after_layer;
        (!self.embeddings_train() && depth <= self.first_trainable() && depth > 0).then_some(depth)
    }

    /// The states after `depth` layers of every row of `batch` (rows × len × M, zeros on the
    /// padding), read from the store; the rows it lacks are computed together, then stored.
    fn stored_states(&self, batch: &TokenBatch, depth: usize) -> Result<Vec<f32>> {
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

    /// Pooling (the weighted mean of the token states under `weights`: the mask, or the first
    /// token), the Dense tanh projection where the model has one, and L2 normalisation.
    fn pool<T: Tape<f32, D>>(
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

    /// [`TrainableEncoder::token_states`] on the calling thread.
    fn token_states_here(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
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

    /// [`TrainableEncoder::train_step`] on the calling thread: the stored states of the frozen
    /// layers (the OT term's student batch through the same layers), then the step.
    fn train_step_here(&mut self, input: &StepInput) -> Result<StepLoss> {
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
    fn step(
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
    fn loss_and_grads(
        &mut self,
        input: &StepInput,
        cached: Option<LayerStates>,
        ot_cached: Option<LayerStates>,
    ) -> Result<(Gradients<f32, D>, StepLoss)> {
        let batch = input.batch;
        let half = super::query_rows(batch.rows, input.negatives)?;
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

    fn write(&self, path: &Path, parts: Vec<Part<'_, V, S, M, F, D>>, meta: HashMap<String, String>) -> Result<()> {
        let mut writer = Collector {
            tensors: Vec::new(),
            rows: self.rows,
        };
        for part in &parts {
            let prefix = part.prefix();
            with_part!(part, m => walk_named(*m, &prefix, &mut writer));
        }
        let views = writer
            .tensors
            .iter()
            .map(|(name, shape, bytes)| {
                ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| anyhow::anyhow!("tensor {name}: {e:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        clirlab_util::fs::write_atomic_with(path, ".safetensors", |tmp| {
            ::safetensors::tensor::serialize_to_file(views, &Some(meta), tmp)
                .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))
        })
    }
}

/// Walks a module's tensors (by reference, with their names under `prefix`) with a [`Collector`].
fn walk_named<C: TensorCollection<f32, D>, D: Backend>(m: &C, prefix: &str, writer: &mut Collector) {
    let walked: Result<_, std::convert::Infallible> = C::iter_tensors(&mut RecursiveWalker {
        m: (m, prefix.to_string()),
        f: writer,
    });
    let _ = walked;
}

/// Walks a module's tensors (by reference) with a [`GradNorm`].
fn walk_ref<C: TensorCollection<f32, D>, D: Backend>(m: &C, op: &mut GradNorm<'_, D>) -> Result<()> {
    C::iter_tensors(&mut RecursiveWalker { m, f: op }).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn walk_mut<C: TensorCollection<f32, D>, D: Backend>(m: &mut C, prefix: &str, loader: &mut Loader) -> Result<()> {
    C::iter_tensors(&mut RecursiveWalker {
        m: (m, prefix.to_string()),
        f: loader,
    })
    .map_err(|e: std::convert::Infallible| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// Runs `read` on the tensors of the safetensors file `file`, mapped into memory.
fn with_tensors<R>(file: &Path, read: impl FnOnce(&::safetensors::SafeTensors) -> Result<R>) -> Result<R> {
    let handle = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    // SAFETY: the map is only read, and lives only for `read`; clirlab never writes a model file
    // in place (its writes go to a temporary file renamed over the old one, which leaves this
    // mapping on the old file's pages).
    let buffer = unsafe { memmap2::Mmap::map(&handle) }.with_context(|| format!("mapping {}", file.display()))?;
    let tensors = ::safetensors::SafeTensors::deserialize(&buffer)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e:?}", file.display()))?;
    read(&tensors)
}

/// A safetensors file's metadata, and its tensors' shapes by name.
type Header = (HashMap<String, String>, HashMap<String, Vec<usize>>);

/// The metadata and tensor shapes of a safetensors file, without reading the tensors.
fn read_header(file: &Path) -> Result<Header> {
    use std::io::Read;
    let mut handle = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = handle.metadata()?.len();
    let mut prefix = [0u8; 8];
    handle
        .read_exact(&mut prefix)
        .with_context(|| format!("{}: too short for a safetensors file", file.display()))?;
    let n = u64::from_le_bytes(prefix);
    ensure!(
        n < size && n < 100_000_000,
        "{}: not a safetensors file (header of {n} bytes in a file of {size})",
        file.display()
    );
    let mut header = vec![0u8; n as usize];
    handle
        .read_exact(&mut header)
        .with_context(|| format!("{}: truncated header", file.display()))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).with_context(|| format!("{}: the header is not JSON", file.display()))?;
    let mut meta = HashMap::new();
    let mut shapes = HashMap::new();
    for (name, value) in json {
        if name == "__metadata__" {
            if let Some(map) = value.as_object() {
                for (k, v) in map {
                    meta.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            continue;
        }
        let shape = value
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| {
                s.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .with_context(|| format!("{}: tensor `{name}` has no shape", file.display()))?;
        shapes.insert(name, shape);
    }
    Ok((meta, shapes))
}

/// Collects (name, shape, little-endian bytes) of every visited tensor; of an embedding
/// table, the rows the model uses.
struct Collector {
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
    rows: TableRows,
}

impl<D: Backend> TensorVisitor<f32, D> for Collector {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        (t, name): (&Tensor<S, f32, D>, String),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        let mut shape: Vec<usize> = t.shape().concrete().into_iter().collect();
        let mut values = t.as_vec();
        if let Some(rows) = self.rows.of(&name) {
            values.truncate(rows * shape[1]);
            shape[0] = rows;
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors.push((name, shape, bytes));
        Ok(None)
    }
}

/// Copies tensors from a safetensors file by name (an embedding table into its used rows);
/// the first problem is kept in `failure`.
struct Loader<'a, 'data> {
    tensors: &'a ::safetensors::SafeTensors<'data>,
    rows: TableRows,
    complete: bool,
    loaded: usize,
    failure: Option<anyhow::Error>,
}

impl<D: Backend> TensorVisitor<f32, D> for Loader<'_, '_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        (t, name): (&mut Tensor<S, f32, D>, String),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if self.failure.is_some() {
            return Ok(None);
        }
        let view = match self.tensors.tensor(&name) {
            Ok(view) => view,
            Err(_) if !self.complete => return Ok(None),
            Err(_) => {
                self.failure = Some(anyhow::anyhow!("no tensor `{name}`"));
                return Ok(None);
            }
        };
        let mut want: Vec<usize> = t.shape().concrete().into_iter().collect();
        let capacity: usize = want.iter().product();
        if let Some(rows) = self.rows.of(&name) {
            want[0] = rows;
        }
        if view.dtype() != ::safetensors::Dtype::F32 || view.shape() != want.as_slice() {
            self.failure = Some(anyhow::anyhow!(
                "tensor `{name}` is {:?} {:?}, expected F32 {want:?}",
                view.dtype(),
                view.shape()
            ));
            return Ok(None);
        }
        let mut values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        values.resize(capacity, 0.0);
        t.copy_from(&values);
        self.loaded += 1;
        Ok(None)
    }
}

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
        let mut meta = HashMap::new();
        meta.insert(META_FINE_TUNE.into(), serde_json::to_string(&self.fine_tune)?);
        match &self.base {
            Some(base) if !self.fine_tune.word_embeddings => {
                meta.insert(META_FORMAT.into(), FORMAT_DELTA.into());
                meta.insert(META_BASE.into(), base.to_string_lossy().into_owned());
                meta.insert(META_FINGERPRINT.into(), self.base_fingerprint.clone());
                self.write(path, self.trainable_parts(), meta)
            }
            _ => {
                meta.insert(META_FORMAT.into(), FORMAT_FULL.into());
                self.write(path, self.parts(), meta)
            }
        }
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        let (meta, _) = read_header(path)?;
        let complete = meta.get(META_FORMAT).map(String::as_str) != Some(FORMAT_DELTA);
        if complete {
            // The frozen layers may be another model's now.
            self.frozen = None;
        }
        self.overlay(path, "", complete)
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
        let mut meta = HashMap::new();
        meta.insert(META_FORMAT.into(), FORMAT_FULL.into());
        // What `transformers` asks of a safetensors file it loads.
        meta.insert("format".into(), "pt".into());
        self.write(path, self.parts(), meta)
    }

    fn use_state_store(&mut self, root: &Path) -> Result<usize> {
        let depth = self.first_trainable();
        if self.embeddings_train() || depth == 0 {
            self.frozen = None;
            return Ok(0);
        }
        // The kernels (fused on either GEMM, reference, CUDA) round differently: their states
        // are kept apart.
        let kernels = if std::any::type_name::<D>().contains("Cuda") {
            "cuda"
        } else if super::kernels::fused_on_cpu() {
            match super::kernels::blas::backend() {
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

/// The first `keep` values of each of `rows` (in that order) of a row-major table whose rows
/// are `row_width` values wide: a length bucket's share of a batch's ids, mask or states.
fn rows_prefix<T: Copy>(values: &[T], rows: &[usize], row_width: usize, keep: usize) -> Vec<T> {
    rows.iter()
        .flat_map(|&r| values[r * row_width..r * row_width + keep].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests;
