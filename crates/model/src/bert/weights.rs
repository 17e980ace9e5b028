//! Safetensors I/O under HuggingFace `BertModel` names: reading a full model or a checkpoint
//! over its base, a Dense head, writing the whole model or the trained tensors, the
//! checkpoint's metadata (format, base path, base fingerprint) and the embedding tables' used
//! rows.

use super::layers::{EmbeddingRest, Layer, Norm, TYPES, Words};
use super::tuning::{Part, with_part};
use super::{Bert, FineTune, Flavour, TableRows};
use crate::{Backend, OptimizerSettings};
use anyhow::{Context, Result, bail, ensure};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

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

pub(super) const META_FORMAT: &str = "clirlab.format";
const FORMAT_FULL: &str = "clirlab-bert-full/1";
pub(super) const FORMAT_DELTA: &str = "clirlab-bert-delta/1";
pub(super) const META_BASE: &str = "clirlab.base";
const META_FINGERPRINT: &str = "clirlab.base_fingerprint";
const META_FINE_TUNE: &str = "clirlab.fine_tune";

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    /// Reads a model file: a full one, or a checkpoint of trained tensors over the base it
    /// names. Tensor names may carry a task model's prefix (`bert.`, `roberta.`).
    pub(super) fn load_file(
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
    pub(super) fn with_head(mut self, dense: Option<&Path>) -> Result<Self> {
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

    /// SHA-256 over the LayerNorm weights and every bias: small, and different for any two
    /// trained models (identifies the base of a checkpoint).
    pub(super) fn fingerprint(&self) -> String {
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

impl<const V: usize, const S: usize, const M: usize, const H: usize, const DH: usize, const F: usize, D: Backend>
    Bert<V, S, M, H, DH, F, D>
{
    /// [`TrainableEncoder::save`](crate::TrainableEncoder::save).
    pub(super) fn save_trained(&self, path: &Path) -> Result<()> {
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

    /// [`TrainableEncoder::load`](crate::TrainableEncoder::load).
    pub(super) fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let (meta, _) = read_header(path)?;
        let complete = meta.get(META_FORMAT).map(String::as_str) != Some(FORMAT_DELTA);
        if complete {
            // The frozen layers may be another model's now.
            self.frozen = None;
        }
        self.overlay(path, "", complete)
    }

    /// [`BertEncoder::save_full`](super::BertEncoder::save_full).
    pub(super) fn save_whole(&self, path: &Path) -> Result<()> {
        let mut meta = HashMap::new();
        meta.insert(META_FORMAT.into(), FORMAT_FULL.into());
        // What `transformers` asks of a safetensors file it loads.
        meta.insert("format".into(), "pt".into());
        self.write(path, self.parts(), meta)
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
pub(super) fn read_header(file: &Path) -> Result<Header> {
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
