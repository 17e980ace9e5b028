//! Stable ids: the hash of a canonical configuration, and the readable slug of a grid point.
//! Ids are derived from the resolved configuration — a readable part from the axis values,
//! then a hash of the canonical JSON — so the same configuration gets the same id on any
//! machine, and changing a named schedule's file changes the id.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Hex SHA-256 of the canonical JSON (sorted keys) of `value`, first `len` characters.
pub fn content_hash<T: Serialize>(value: &T, len: usize) -> String {
    let canonical = serde_json::to_value(value)
        .and_then(|v| serde_json::to_vec(&v))
        .expect("config serializes");
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_string()
}

pub(crate) fn slug_value(v: &Value) -> String {
    let raw = match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        Value::Object(map) if map.values().all(|x| !x.is_object() && !x.is_array()) => map
            .iter()
            .map(|(k, x)| format!("{k}-{}", slug_value(x)))
            .collect::<Vec<_>>()
            .join("."),
        other => content_hash(other, 6),
    };
    clirlab_util::slug::slug(&raw, ".-", '-')
}

/// Readable part of a variant id, e.g. `schedule-linear_train.lr-0.001`.
pub(crate) fn variant_slug(assignment: &BTreeMap<String, Value>) -> String {
    if assignment.is_empty() {
        return "base".into();
    }
    let slug: Vec<String> = assignment
        .iter()
        .map(|(k, v)| format!("{}-{}", k, slug_value(v)))
        .collect();
    let mut s = slug.join("_");
    s.truncate(80);
    s
}
