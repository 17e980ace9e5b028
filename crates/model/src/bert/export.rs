//! `clirlab export`: a backbone model (me5-small, a HuggingFace folder, or a trained cell's
//! folder) as a folder that HuggingFace `transformers` (`AutoModel`, `AutoTokenizer`) and
//! `sentence-transformers` load as they are.
//!
//! The folder: `model.safetensors` (every tensor, `BertModel` / `XLMRobertaModel` names),
//! the base model's `config.json`, `tokenizer.json` with its `tokenizer_config.json` (for
//! me5-small one naming XLM-R's tokenizer class), and the sentence-transformers modules
//! (Transformer → the model's pooling → L2 normalisation, with its prompts). It is written
//! beside its destination and renamed into place, so a folder at `OUT` is always complete.

use super::encode::{is_prepared_me5, load_for_inference, resolve_model, text_settings};
use super::{ME5_SMALL, Pooling, config_folder};
use crate::ResolvedDevice;
use anyhow::{Context, Result, ensure};
use serde_json::json;
use std::path::Path;

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Files written, relative to the export folder.
    pub files: Vec<String>,
}

/// Writes the model named by `model` (as `clirlab encode` names models) to the new folder `out`,
/// which must not exist yet.
pub fn export(model: &str, out: &Path, progress: bool) -> Result<Exported> {
    ensure!(
        !out.exists(),
        "{}: the export folder already exists (exports never overwrite)",
        out.display()
    );
    let source = resolve_model(model, progress)?;
    let ([query, passage], pooling) = text_settings(model, &source)?;
    let (encoder, _) = load_for_inference(&source, pooling, ResolvedDevice::Cpu)?;
    let pooling = pooling.unwrap_or_default();
    // A cell folder has the checkpoint and tokenizer but no config.json: its base has.
    let base = config_folder(&source)?;
    let config = base.join("config.json");
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".tmp-export-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
    let dir = staging.path();
    encoder.save_full(&dir.join("model.safetensors"))?;
    let copy = |from: &Path, name: &str| -> Result<()> {
        std::fs::copy(from, dir.join(name))
            .map(|_| ())
            .with_context(|| format!("copying {} into the export", from.display()))
    };
    copy(&config, "config.json")?;
    copy(&source.join("tokenizer.json"), "tokenizer.json")?;
    let write = |name: &str, value: serde_json::Value| -> Result<()> {
        let path = dir.join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
        }
        let mut text = serde_json::to_string_pretty(&value)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    let base_tokenizer_config = base.join("tokenizer_config.json");
    if base_tokenizer_config.is_file() {
        copy(&base_tokenizer_config, "tokenizer_config.json")?;
    } else if model == ME5_SMALL || is_prepared_me5(&base) {
        // multilingual-E5's own tokenizer class; without it `AutoTokenizer` would pick BERT's
        // WordPiece settings (lower-casing) for a `bert` config.
        write(
            "tokenizer_config.json",
            json!({
                "tokenizer_class": "XLMRobertaTokenizer",
                "model_max_length": 512,
                "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
            }),
        )?;
    }
    // A Dense module (LaBSE's tanh projection) is the base's, untrained: copied as it is.
    let dense = super::folder::SentenceTransformers::read(&base)?.dense;
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    let mut files = vec![
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
        "clirlab_export.json",
    ];
    if let Some(dense) = &dense {
        std::fs::create_dir_all(dir.join("2_Dense")).context("creating 2_Dense")?;
        for name in ["config.json", "model.safetensors"] {
            copy(&dense.join(name), &format!("2_Dense/{name}"))?;
        }
        modules.push(json!({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}));
        files.extend(["2_Dense/config.json", "2_Dense/model.safetensors"]);
    }
    let normalize = modules.len();
    modules.push(json!({
        "idx": normalize, "name": normalize.to_string(), "path": format!("{normalize}_Normalize"),
        "type": "sentence_transformers.models.Normalize",
    }));
    write("modules.json", serde_json::Value::Array(modules))?;
    write(
        "sentence_bert_config.json",
        json!({"max_seq_length": 512, "do_lower_case": false}),
    )?;
    write(
        "config_sentence_transformers.json",
        json!({
            "prompts": {"query": query, "passage": passage},
            "default_prompt_name": null,
            "similarity_fn_name": "cosine",
        }),
    )?;
    write(
        "1_Pooling/config.json",
        json!({
            "word_embedding_dimension": encoder.dim(),
            "pooling_mode_cls_token": pooling == Pooling::Cls,
            "pooling_mode_mean_tokens": pooling == Pooling::Mean,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
        }),
    )?;
    std::fs::create_dir_all(dir.join(format!("{normalize}_Normalize"))).context("creating the Normalize folder")?;
    write(
        "clirlab_export.json",
        json!({
            "source": source.to_string_lossy(),
            "clirlab_version": env!("CARGO_PKG_VERSION"),
            "note": format!(
                "{} pooling{}, then L2 normalisation; prefix queries with {query:?} and documents with {passage:?}",
                match pooling {
                    Pooling::Mean => "mean (over the attention mask)",
                    Pooling::Cls => "first-token",
                },
                if dense.is_some() { ", the Dense tanh projection" } else { "" }
            ),
        }),
    )?;
    let staged = staging.keep();
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", staged.display()))?;
    std::fs::rename(&staged, out).with_context(|| format!("renaming the export into place: {}", out.display()))?;
    Ok(Exported {
        files: files.iter().map(|f| f.to_string()).collect(),
    })
}
