//! Reading `clirlab encode`'s JSON lines and comparing embeddings.

use std::collections::BTreeMap;

/// `{"id", "embedding"}` lines as id → vector.
pub fn embeddings(jsonl: &str) -> BTreeMap<String, Vec<f64>> {
    jsonl
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let v = row["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (row["id"].as_str().expect("id").to_string(), v)
        })
        .collect()
}

/// The cosine of two vectors.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}
