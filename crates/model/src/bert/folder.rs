//! A HuggingFace checkpoint folder of the BERT family, read before any weight is loaded:
//! `config.json` (the architecture), sentence-transformers' `1_Pooling/config.json` (pooling)
//! and `config_sentence_transformers.json` (prompts), and the folder's fingerprint. Every
//! problem names the file and the key.

use anyhow::{Context, Result, bail, ensure};
use clirlab_data::encoder_config::EncoderConfig;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The files a backbone folder must have.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Which architecture of the family (`model_type` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BERT, LaBSE, multilingual-E5, MiniLM: positions 0..L-1, two token types.
    Bert,
    /// XLM-R, AfroXLMR: positions start after the padding id, one token type.
    XlmRoberta,
}

/// How token states become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over every real token (special tokens included), as E5 and most
    /// sentence-transformers models.
    #[default]
    Mean,
    /// The first token's state (`[CLS]` / `<s>`).
    Cls,
}

/// The architecture of a checkpoint, from its `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// BERT or XLM-R.
    pub family: Family,
    /// Hidden size (`hidden_size`).
    pub hidden: usize,
    /// Attention heads (`num_attention_heads`).
    pub heads: usize,
    /// Feed-forward width (`intermediate_size`).
    pub intermediate: usize,
    /// Encoder layers (`num_hidden_layers`).
    pub layers: usize,
    /// Rows of the word-embedding table (`vocab_size`).
    pub vocab: usize,
    /// Rows of the position table (`max_position_embeddings`).
    pub positions: usize,
    /// Rows of the token-type table (`type_vocab_size`).
    pub token_types: usize,
    /// LayerNorm ε (`layer_norm_eps`).
    pub layer_norm_eps: f64,
    /// The padding token's id (`pad_token_id`).
    pub pad_id: usize,
}

impl Shape {
    /// The position id of a text's first token: 0 for BERT, `pad_token_id + 1` for XLM-R.
    pub fn first_position(&self) -> usize {
        match self.family {
            Family::Bert => 0,
            Family::XlmRoberta => self.pad_id + 1,
        }
    }

    /// The most tokens a text may have.
    pub fn max_tokens(&self) -> usize {
        self.positions.saturating_sub(self.first_position())
    }

    /// Reads and checks `<dir>/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        Self::from_config(&EncoderConfig::read(&path)?, &path)
    }

    /// Checks that a `config.json` describes an encoder this crate runs (`path` names it in
    /// errors).
    pub fn from_config(config: &EncoderConfig, path: &Path) -> Result<Self> {
        let file = path.display();
        let count = |value: Option<usize>, key: &str| {
            value.with_context(|| format!("{file}: key `{key}` is missing (expected a positive integer)"))
        };
        let family = match config.model_type.as_deref() {
            Some("bert") => Family::Bert,
            Some("xlm-roberta") => Family::XlmRoberta,
            Some(other) => bail!(
                "{file}: key `model_type`: `{other}` is not supported (expected `bert` or `xlm-roberta`: \
                 post-LN encoders with erf-GELU)"
            ),
            None => bail!("{file}: key `model_type` is missing (expected `bert` or `xlm-roberta`)"),
        };
        if let Some(act) = &config.hidden_act
            && act != "gelu"
        {
            bail!("{file}: key `hidden_act`: `{act}` is not supported (only erf-GELU, `gelu`)");
        }
        if let Some(kind) = &config.position_embedding_type
            && kind != "absolute"
        {
            bail!("{file}: key `position_embedding_type`: `{kind}` is not supported (only `absolute`)");
        }
        for (pre_ln, set) in [
            ("pre_layer_norm", config.pre_layer_norm),
            ("normalize_before", config.normalize_before),
        ] {
            if set == Some(true) {
                bail!("{file}: key `{pre_ln}`: pre-LN layers are not supported (post-LN only)");
            }
        }
        let hidden = count(config.hidden_size, "hidden_size")?;
        let heads = count(config.num_attention_heads, "num_attention_heads")?;
        ensure!(
            hidden % heads == 0,
            "{file}: key `num_attention_heads`: {heads} heads do not divide `hidden_size` {hidden}"
        );
        let pad_id = config.pad_token_id.unwrap_or(match family {
            Family::Bert => 0,
            Family::XlmRoberta => 1,
        });
        let shape = Self {
            family,
            hidden,
            heads,
            intermediate: count(config.intermediate_size, "intermediate_size")?,
            layers: count(config.num_hidden_layers, "num_hidden_layers")?,
            vocab: count(config.vocab_size, "vocab_size")?,
            positions: count(config.max_position_embeddings, "max_position_embeddings")?,
            token_types: config.type_vocab_size.unwrap_or(2),
            layer_norm_eps: config.layer_norm_eps.unwrap_or(1e-12),
            pad_id,
        };
        ensure!(
            shape.pad_id < shape.vocab,
            "{file}: key `pad_token_id`: {} is outside the vocabulary of {}",
            shape.pad_id,
            shape.vocab
        );
        ensure!(
            shape.max_tokens() >= 2,
            "{file}: key `max_position_embeddings`: {} leaves no room for a text",
            shape.positions
        );
        Ok(shape)
    }
}

/// What a sentence-transformers folder says about pooling and prompts, where it says it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceTransformers {
    /// From `1_Pooling/config.json` (or the folder `modules.json` names).
    pub pooling: Option<Pooling>,
    /// A Dense module after the pooling (LaBSE's tanh projection): its folder, holding
    /// `config.json` and `model.safetensors` (`linear.weight`, `linear.bias`).
    pub dense: Option<PathBuf>,
    /// The `query` and `passage` (or `document`) prompts of `config_sentence_transformers.json`.
    pub prompts: [Option<String>; 2],
}

impl SentenceTransformers {
    /// Reads the optional sentence-transformers files of `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut found = Self::default();
        let modules = dir.join("modules.json");
        let mut pooling_dir = dir.join("1_Pooling");
        if modules.is_file() {
            let list: Vec<Map<String, Value>> = read_json(&modules)?;
            for (i, module) in list.iter().enumerate() {
                let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
                let path = module.get("path").and_then(Value::as_str).unwrap_or("");
                match kind.rsplit('.').next().unwrap_or("") {
                    "Transformer" | "Normalize" => {}
                    "Pooling" => pooling_dir = dir.join(path),
                    "Dense" => {
                        ensure!(
                            found.dense.is_none(),
                            "{}: entry {i}: a second Dense module is not supported",
                            modules.display()
                        );
                        found.dense = Some(check_dense(&dir.join(path))?);
                    }
                    other => bail!(
                        "{}: entry {i} (`{kind}`): module `{other}` is not supported (Transformer, Pooling, \
                         Dense with tanh and Normalize are)",
                        modules.display()
                    ),
                }
            }
        }
        let pooling = pooling_dir.join("config.json");
        if pooling.is_file() {
            let config: Map<String, Value> = read_json(&pooling)?;
            let on = |key: &str| config.get(key).and_then(Value::as_bool) == Some(true);
            let modes: Vec<&str> = [
                "pooling_mode_cls_token",
                "pooling_mode_mean_tokens",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            ]
            .into_iter()
            .filter(|k| on(k))
            .collect();
            found.pooling = Some(match modes.as_slice() {
                ["pooling_mode_cls_token"] => Pooling::Cls,
                ["pooling_mode_mean_tokens"] => Pooling::Mean,
                _ => bail!(
                    "{}: pooling {modes:?} is not supported (exactly one of `pooling_mode_mean_tokens` and \
                     `pooling_mode_cls_token`)",
                    pooling.display()
                ),
            });
        }
        let st = dir.join("config_sentence_transformers.json");
        if st.is_file() {
            let config: Map<String, Value> = read_json(&st)?;
            if let Some(prompts) = config.get("prompts") {
                let prompts = prompts
                    .as_object()
                    .with_context(|| format!("{}: key `prompts`: expected a map of strings", st.display()))?;
                let prompt = |keys: &[&str]| -> Result<Option<String>> {
                    for key in keys {
                        if let Some(v) = prompts.get(*key) {
                            let s = v.as_str().with_context(|| {
                                format!("{}: key `prompts.{key}`: expected a string, found {v}", st.display())
                            })?;
                            return Ok(Some(s.to_string()));
                        }
                    }
                    Ok(None)
                };
                found.prompts = [prompt(&["query"])?, prompt(&["passage", "document"])?];
            }
        }
        Ok(found)
    }
}

/// Checks a sentence-transformers Dense module folder: a square projection with a bias and tanh
/// (LaBSE's), its weights in `model.safetensors`.
fn check_dense(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("config.json");
    let config: Map<String, Value> = read_json(&path)?;
    let file = path.display();
    let number = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_u64)
            .with_context(|| format!("{file}: key `{key}`: expected a positive integer"))
    };
    let (inputs, outputs) = (number("in_features")?, number("out_features")?);
    ensure!(
        inputs == outputs,
        "{file}: keys `in_features` {inputs} and `out_features` {outputs}: only a square projection is supported"
    );
    ensure!(
        config.get("bias").and_then(Value::as_bool).unwrap_or(true),
        "{file}: key `bias`: a projection without a bias is not supported"
    );
    let activation = config.get("activation_function").and_then(Value::as_str).unwrap_or("");
    ensure!(
        activation.ends_with(".Tanh"),
        "{file}: key `activation_function`: `{activation}` is not supported (only torch.nn.modules.activation.Tanh)"
    );
    let weights = dir.join("model.safetensors");
    ensure!(
        weights.is_file(),
        "{}: no model.safetensors (convert the module's weights to safetensors)",
        dir.display()
    );
    Ok(dir.to_path_buf())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not the JSON expected", path.display()))
}

/// Checks that `dir` is a backbone folder (its required files present) and returns its
/// absolute path.
pub fn check_folder(dir: &Path) -> Result<PathBuf> {
    ensure!(dir.is_dir(), "{}: not a folder", dir.display());
    for file in REQUIRED_FILES {
        ensure!(
            dir.join(file).is_file(),
            "{}: the model folder has no {file} (a HuggingFace folder needs {})",
            dir.display(),
            REQUIRED_FILES.join(", ")
        );
    }
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

/// The files of `dir` a fingerprint covers, relative to it: the required ones and those of its
/// sentence-transformers modules that change its embeddings (pooling, prompts, a Dense module),
/// where present.
fn fingerprinted_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = REQUIRED_FILES.iter().map(|s| s.to_string()).collect();
    names.extend(
        [
            "1_Pooling/config.json",
            "config_sentence_transformers.json",
            "modules.json",
        ]
        .map(String::from),
    );
    if let Ok(st) = SentenceTransformers::read(dir)
        && let Some(dense) = st.dense
        && let Ok(rel) = dense.strip_prefix(dir)
    {
        for name in ["config.json", "model.safetensors"] {
            names.push(rel.join(name).to_string_lossy().into_owned());
        }
    }
    names.retain(|name| dir.join(name).is_file());
    names
}

/// SHA-256 over the names and SHA-256s of the folder's [`fingerprinted_files`]: what a cell
/// trained from it depends on.
pub fn fingerprint(dir: &Path) -> Result<String> {
    let mut hash = Sha256::new();
    for name in fingerprinted_files(dir) {
        hash.update(name.as_bytes());
        hash.update(clirlab_data::format::sha256_of_file(&dir.join(&name))?.as_bytes());
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// [`fingerprint`], computed once per process for a folder whose fingerprinted files keep
/// their sizes and modification times (a grid expands the same folder for every point).
pub fn fingerprint_cached(dir: &Path) -> Result<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    /// A folder and the names, sizes and modification times of its fingerprinted files.
    type Stamp = (PathBuf, Vec<(String, u64, Option<std::time::SystemTime>)>);
    static SEEN: OnceLock<Mutex<HashMap<Stamp, String>>> = OnceLock::new();
    let stamp = fingerprinted_files(dir)
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((name, meta.len(), meta.modified().ok()))
        })
        .collect::<Result<Vec<_>>>()?;
    let key = (dir.to_path_buf(), stamp);
    let seen = SEEN.get_or_init(Default::default);
    if let Some(print) = seen.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(print);
    }
    let print = fingerprint(dir)?;
    if let Ok(mut m) = seen.lock() {
        m.insert(key, print.clone());
    }
    Ok(print)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(config: Value) -> Result<Shape> {
        let path = Path::new("m/config.json");
        Shape::from_config(&EncoderConfig::from_json(config.as_object().unwrap(), path)?, path)
    }

    fn bert() -> Value {
        json!({"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64,
               "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64, "hidden_act": "gelu"})
    }

    #[test]
    fn bert_and_xlm_r_configs_are_read_with_their_positions() {
        let b = shape(bert()).unwrap();
        assert_eq!(
            (b.family, b.first_position(), b.token_types, b.pad_id),
            (Family::Bert, 0, 2, 0)
        );
        assert_eq!(b.layer_norm_eps, 1e-12);
        let mut x = bert();
        x["model_type"] = json!("xlm-roberta");
        x["pad_token_id"] = json!(1);
        x["type_vocab_size"] = json!(1);
        x["layer_norm_eps"] = json!(1e-5);
        let x = shape(x).unwrap();
        assert_eq!(
            (x.family, x.first_position(), x.max_tokens()),
            (Family::XlmRoberta, 2, 62)
        );
        assert_eq!(x.layer_norm_eps, 1e-5);
    }

    #[test]
    fn unsupported_configs_name_the_file_and_key() {
        for (key, value, says) in [
            ("model_type", json!("gpt2"), "key `model_type`: `gpt2` is not supported"),
            ("hidden_act", json!("relu"), "key `hidden_act`: `relu`"),
            (
                "position_embedding_type",
                json!("relative_key"),
                "key `position_embedding_type`",
            ),
            ("num_attention_heads", json!(5), "5 heads do not divide"),
            (
                "vocab_size",
                json!("many"),
                "key `vocab_size`: expected a positive integer",
            ),
            ("pad_token_id", json!(100), "key `pad_token_id`: 100 is outside"),
        ] {
            let mut c = bert();
            c[key] = value;
            let err = shape(c).unwrap_err().to_string();
            assert!(err.starts_with("m/config.json: ") && err.contains(says), "{key}: {err}");
        }
        let mut c = bert();
        c.as_object_mut().unwrap().remove("hidden_size");
        let err = shape(c).unwrap_err().to_string();
        assert!(err.contains("key `hidden_size` is missing"), "{err}");
    }

    #[test]
    fn sentence_transformers_files_give_pooling_and_prompts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            SentenceTransformers::read(dir.path()).unwrap(),
            SentenceTransformers::default()
        );
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config_sentence_transformers.json"),
            r#"{"prompts": {"query": "q: ", "document": "d: "}}"#,
        )
        .unwrap();
        let st = SentenceTransformers::read(dir.path()).unwrap();
        assert_eq!(st.pooling, Some(Pooling::Cls));
        assert_eq!(st.prompts, [Some("q: ".into()), Some("d: ".into())]);
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("2_Dense")).unwrap();
        let dense = |activation: &str| {
            std::fs::write(
                dir.path().join("2_Dense/config.json"),
                format!(
                    r#"{{"in_features": 8, "out_features": 8, "bias": true, "activation_function": "torch.nn.modules.activation.{activation}"}}"#
                ),
            )
            .unwrap()
        };
        dense("ReLU");
        let err = SentenceTransformers::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("2_Dense/config.json: key `activation_function`"), "{err}");
        dense("Tanh");
        let err = SentenceTransformers::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no model.safetensors"), "{err}");
        std::fs::write(dir.path().join("2_Dense/model.safetensors"), b"x").unwrap();
        let st = SentenceTransformers::read(dir.path()).unwrap();
        assert_eq!(st.dense, Some(dir.path().join("2_Dense")));
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "path": "2_CNN", "type": "sentence_transformers.models.CNN"}]"#,
        )
        .unwrap();
        let err = SentenceTransformers::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("modules.json: entry 1") && err.contains("`CNN` is not supported"),
            "{err}"
        );
    }
}
