//! The HuggingFace `config.json` of a BERT-family encoder (`BertConfig`, `XLMRobertaConfig`):
//! the keys this project reads or writes, one typed struct for the me5-small preparation that
//! writes it and the encoder that reads it. Reading checks each key's type and range and names
//! the file and the key in every error; whether the architecture is one the encoder runs is the
//! encoder's question (`clirlab_model::bert::folder::Shape`).

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The sizes of multilingual-e5-small; the pinned file must have exactly these.
pub const EXPECTED_SIZES: Sizes = Sizes {
    hidden: 384,
    layers: 12,
    heads: 12,
    ffn: 1536,
    vocab_rows: 250_037,
    positions: 512,
    token_types: 2,
};

/// The architecture sizes of a BERT-family encoder (as an E5S1 header records them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// Hidden (model) width.
    pub hidden: u32,
    /// Number of encoder layers.
    pub layers: u32,
    /// Attention heads per layer.
    pub heads: u32,
    /// Inner width of the feed-forward block.
    pub ffn: u32,
    /// Rows of the word-embedding table.
    pub vocab_rows: u32,
    /// Rows of the position-embedding table (maximum sequence length).
    pub positions: u32,
    /// Rows of the token-type embedding table.
    pub token_types: u32,
}

/// A `config.json`. Keys absent from the file are `None`; reading takes only the keys the
/// encoder uses (the others, such as the dropout rates, are there for `transformers` when the
/// preparation writes the file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// `BertModel` for a plain encoder (written only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// `bert` or `xlm-roberta` among those the encoder runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// Rows of the word-embedding table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    /// Hidden width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
    /// Encoder layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_hidden_layers: Option<usize>,
    /// Attention heads per layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_attention_heads: Option<usize>,
    /// Feed-forward width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate_size: Option<usize>,
    /// The feed-forward activation (`gelu`: erf-GELU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Written only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_dropout_prob: Option<f64>,
    /// Written only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_probs_dropout_prob: Option<f64>,
    /// Rows of the position table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_position_embeddings: Option<usize>,
    /// Rows of the token-type table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_vocab_size: Option<usize>,
    /// Written only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_range: Option<f64>,
    /// LayerNorm ε.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_norm_eps: Option<f64>,
    /// The padding token's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<usize>,
    /// `absolute` for learned positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
    /// Written only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
    /// Pre-LN layers (some BERT variants): read so that the encoder can refuse them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_layer_norm: Option<bool>,
    /// Pre-LN layers under another name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize_before: Option<bool>,
}

impl EncoderConfig {
    /// The `BertModel` config of a post-LN BERT of these sizes, as the me5-small preparation
    /// writes it.
    pub fn bert(sizes: &Sizes, layer_norm_eps: f64, pad_token_id: usize) -> Self {
        let n = |v: u32| Some(v as usize);
        Self {
            architectures: Some(vec!["BertModel".into()]),
            model_type: Some("bert".into()),
            vocab_size: n(sizes.vocab_rows),
            hidden_size: n(sizes.hidden),
            num_hidden_layers: n(sizes.layers),
            num_attention_heads: n(sizes.heads),
            intermediate_size: n(sizes.ffn),
            hidden_act: Some("gelu".into()),
            hidden_dropout_prob: Some(0.1),
            attention_probs_dropout_prob: Some(0.1),
            max_position_embeddings: n(sizes.positions),
            type_vocab_size: n(sizes.token_types),
            initializer_range: Some(0.02),
            layer_norm_eps: Some(layer_norm_eps),
            pad_token_id: Some(pad_token_id),
            position_embedding_type: Some("absolute".into()),
            torch_dtype: Some("float32".into()),
            pre_layer_norm: None,
            normalize_before: None,
        }
    }

    /// multilingual-E5-small's: 12 layers of 384, 12 heads, feed-forward 1536, 250,037 word
    /// rows, 512 positions, 2 token types, ε 1e-12, padding id 1.
    pub fn me5_small() -> Self {
        Self::bert(&EXPECTED_SIZES, 1e-12, 1)
    }

    /// Reads `path` (a `config.json`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Map<String, Value> =
            serde_json::from_str(&text).with_context(|| format!("{}: not a JSON object", path.display()))?;
        Self::from_json(&config, path)
    }

    /// The keys the encoder uses, from a parsed `config.json` (`path` names it in errors).
    pub fn from_json(config: &Map<String, Value>, path: &Path) -> Result<Self> {
        let file = path.display();
        let text = |key: &str| -> Result<Option<String>> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => bail!("{file}: key `{key}`: expected a string, found {other}"),
            }
        };
        let count = |key: &str| -> Result<Option<usize>> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(n) if n > 0 => Ok(Some(n as usize)),
                    _ => bail!("{file}: key `{key}`: expected a positive integer, found {v}"),
                },
            }
        };
        let layer_norm_eps = match config.get("layer_norm_eps") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(e) if e > 0.0 && e < 1.0 => Some(e),
                _ => bail!("{file}: key `layer_norm_eps`: expected a small positive number, found {v}"),
            },
        };
        let pad_token_id = match config.get("pad_token_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .with_context(|| format!("{file}: key `pad_token_id`: expected a token id, found {v}"))?
                    as usize,
            ),
        };
        // Only `true` matters (a pre-LN model is refused); anything else reads as post-LN.
        let flag = |key: &str| config.get(key).and_then(Value::as_bool);
        Ok(Self {
            model_type: text("model_type")?,
            hidden_act: text("hidden_act")?,
            position_embedding_type: text("position_embedding_type")?,
            pre_layer_norm: flag("pre_layer_norm"),
            normalize_before: flag("normalize_before"),
            hidden_size: count("hidden_size")?,
            num_attention_heads: count("num_attention_heads")?,
            layer_norm_eps,
            pad_token_id,
            intermediate_size: count("intermediate_size")?,
            num_hidden_layers: count("num_hidden_layers")?,
            vocab_size: count("vocab_size")?,
            max_position_embeddings: count("max_position_embeddings")?,
            type_vocab_size: count("type_vocab_size")?,
            ..Self::default()
        })
    }

    /// The file's bytes: pretty JSON with the keys in alphabetical order, and a final newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        // Through a `Value`, whose map keeps its keys sorted: the layout the preparation has
        // always written (the prepared folder's hashes cover it).
        let mut bytes = serde_json::to_vec_pretty(&serde_json::to_value(self)?)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me5_small_reads_back_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let written = EncoderConfig::me5_small();
        std::fs::write(&path, written.to_bytes().unwrap()).unwrap();
        let read = EncoderConfig::read(&path).unwrap();
        let used = EncoderConfig {
            architectures: None,
            hidden_dropout_prob: None,
            attention_probs_dropout_prob: None,
            initializer_range: None,
            torch_dtype: None,
            ..written
        };
        assert_eq!(read, used);
    }

    #[test]
    fn a_wrong_type_names_the_file_and_the_key() {
        let config = serde_json::json!({"model_type": "bert", "hidden_size": "wide"});
        let e = EncoderConfig::from_json(config.as_object().unwrap(), Path::new("m/config.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m/config.json: key `hidden_size`: expected a positive integer, found \"wide\""
        );
    }

    #[test]
    fn me5_small_is_written_as_it_always_was() {
        // The prepared folder's hashes, and so its fingerprint and cell ids, cover these bytes.
        let want = r#"{
  "architectures": [
    "BertModel"
  ],
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "torch_dtype": "float32",
  "type_vocab_size": 2,
  "vocab_size": 250037
}
"#;
        assert_eq!(
            String::from_utf8(EncoderConfig::me5_small().to_bytes().unwrap()).unwrap(),
            want
        );
    }
}
