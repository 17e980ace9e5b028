//! multilingual-E5-small against `../shared/testdata/me5_small/reference.json`: token ids
//! identical, cosine ≥ 0.9999 with `embedding_f32` for every text.
//!
//! Needs the prepared model (`clirlab data prepare me5-small`); it is looked up by
//! [`prepared_model`] alone, so preparing on first use only changes that function.

use clirlab::model::ResolvedDevice;
use clirlab::model::bert::text::{self, BertTokenizer};
use std::path::PathBuf;

/// The prepared me5-small folder: `$CLIRLAB_DATA_DIR/models/me5-small`, else `data/models/me5-small`.
fn prepared_model() -> PathBuf {
    match text::resolve_model("me5-small") {
        Ok(dir) => dir,
        Err(e) => panic!(
            "{e:#}\n(this test needs the prepared model; point CLIRLAB_DATA_DIR at the data folder that holds it)"
        ),
    }
}

fn reference() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/me5_small/reference.json");
    let path = if path.is_file() {
        path
    } else {
        PathBuf::from("/work/shared/testdata/me5_small/reference.json")
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference.json is JSON")
}

#[test]
fn me5_small_reproduces_the_reference_embeddings() {
    let dir = prepared_model();
    let (model, _) = text::load_for_inference(&dir, ResolvedDevice::Cpu).expect("loading the prepared model");
    let tokenizer = BertTokenizer::load(&dir.join("tokenizer.json")).expect("loading the tokenizer");
    let reference = reference();
    let texts = reference["texts"].as_array().expect("texts");
    assert_eq!(texts.len(), 18);
    let mut cosines = Vec::new();
    let mut all_ids = Vec::new();
    for item in texts {
        let text = item["text"].as_str().unwrap();
        let want: Vec<usize> = item["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let ids = tokenizer.ids(text, 512).unwrap();
        assert_eq!(ids, want, "token ids of {text:?}");
        let embedding = model.embed(&tokenizer.batch(&[ids.as_slice()])).unwrap();
        let expected: Vec<f32> = item["embedding_f32"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(embedding.len(), expected.len());
        let dot: f64 = embedding
            .iter()
            .zip(&expected)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let na: f64 = embedding.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = expected.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
        cosines.push(dot / (na * nb));
        all_ids.push(ids);
    }
    let min = cosines.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    eprintln!("me5-small reference cosines: min {min:.7}, mean {mean:.7}");
    for (item, cos) in texts.iter().zip(&cosines) {
        assert!(*cos >= 0.9999, "cosine {cos} for {:?}", item["text"]);
    }
    // All 18 in length-sorted, padded batches: the same vectors.
    let batched = text::embed_sorted(model.as_ref(), &tokenizer, &all_ids, 5, |_| {}).unwrap();
    for (i, (item, row)) in texts.iter().zip(&batched).enumerate() {
        let alone = model.embed(&tokenizer.batch(&[all_ids[i].as_slice()])).unwrap();
        let dot: f32 = alone.iter().zip(row).map(|(a, b)| a * b).sum();
        assert!(dot > 0.99999, "batching changed {:?} (cosine {dot})", item["text"]);
    }
}
