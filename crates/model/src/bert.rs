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
//!
//! The submodules, by job: [`layers`] the modules and the forward pass, [`weights`] the
//! safetensors reading and writing and a checkpoint's base metadata, [`tuning`] which parts
//! train, [`step`] the training step and optimizer update, [`stored`] the use of a
//! [`frozen::StateStore`], [`interface`] the encoder traits implemented for it; [`folder`] reads a
//! checkpoint folder's configuration, [`encode`] (texts in, embeddings out) and [`export`] serve the command line.

use super::{AdamState, Backend, OptimizerSettings, ResolvedDevice, StepInput, StepLoss, TrainableEncoder};
use crate::tokenizer::TokenBatch;
use anyhow::{Result, bail, ensure};
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;
use layers::{EmbeddingRest, Layer, Words};
use std::path::{Path, PathBuf};
use stored::Frozen;
use weights::{META_BASE, read_header};

pub use folder::Pooling;
pub(crate) use layers::Stack;

pub mod encode;
pub mod export;
pub mod folder;
pub mod frozen;
mod interface;
mod layers;
mod step;
mod stored;
mod tuning;
mod weights;

/// The rows of the embedding tables a model uses (the first rows of each fixed-capacity
/// table; the rest stay zero and are never read or saved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableRows {
    vocab: usize,
    positions: usize,
    types: usize,
}

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

#[cfg(test)]
mod tests;
