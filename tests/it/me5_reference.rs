//! multilingual-E5-small through the binary against `tests/data/me5_small/reference.json`
//! (unless `CLIRLAB_OFFLINE=1`): `clirlab encode me5-small` prepares the model on first use,
//! embeds the 18 reference texts (queries with `--as query`, documents with `--as passage`, all
//! in one length-sorted padded batch), and every vector has cosine ≥ 0.9999 with `embedding_f32`.

use crate::common::cli::{command, root, text};
use std::collections::BTreeMap;

fn reference() -> serde_json::Value {
    let path = root().join("tests/data/me5_small/reference.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&json).expect("reference.json is JSON")
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn encode_me5_small_reproduces_the_reference_embeddings() {
    let reference = reference();
    let texts = reference["texts"].as_array().expect("texts");
    assert_eq!(texts.len(), 18);
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (i, item) in texts.iter().enumerate() {
        let full = item["text"].as_str().unwrap();
        let (side, body) = if let Some(body) = full.strip_prefix("query: ") {
            ("query", body)
        } else if let Some(body) = full.strip_prefix("passage: ") {
            ("passage", body)
        } else {
            panic!("reference text without a prefix: {full:?}")
        };
        assert!(
            !body.contains('\t') && !body.contains('\n'),
            "{body:?} does not fit a TSV row"
        );
        let id = format!("t{i}");
        files
            .entry(side)
            .or_insert_with(String::new)
            .push_str(&format!("{id}\t{body}\n"));
        expected.insert(id, floats(&item["embedding_f32"]));
    }
    let mut got = BTreeMap::new();
    for (side, rows) in &files {
        let input = tmp.path().join(format!("{side}.tsv"));
        let output = tmp.path().join(format!("{side}.jsonl"));
        std::fs::write(&input, rows).unwrap();
        let out = command(&[
            "--quiet",
            "encode",
            "me5-small",
            "--as",
            side,
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        for line in std::fs::read_to_string(&output).unwrap().lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
            got.insert(row["id"].as_str().unwrap().to_string(), floats(&row["embedding"]));
        }
    }
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    let mut worst = f64::INFINITY;
    for (id, want) in &expected {
        let cos = cosine(&got[id], want);
        assert!(cos >= 0.9999, "cosine {cos} for text {id}");
        worst = worst.min(cos);
    }
    eprintln!("me5-small reference: lowest cosine {worst:.9}");
}
