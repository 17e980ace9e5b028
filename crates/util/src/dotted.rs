//! Nested maps read as dotted key paths (`{train: {lr: [..]}}` → `train.lr`), as `--set a.b=v`
//! and nested YAML produce them.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Flattens `map` into `out`, joining keys with `.` under `prefix`: a value for which
/// `leaf(path, value)` holds is kept at its path, any other map is walked into. Anything
/// else is an error that returns its path and value.
pub fn flatten_dotted<'a>(
    prefix: &str,
    map: impl IntoIterator<Item = (&'a String, &'a Value)>,
    leaf: &dyn Fn(&str, &Value) -> bool,
    out: &mut BTreeMap<String, Value>,
) -> Result<(), (String, Value)> {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if leaf(&path, value) {
            out.insert(path, value.clone());
        } else if let Value::Object(inner) = value {
            flatten_dotted(&path, inner as &Map<String, Value>, leaf, out)?;
        } else {
            return Err((path, value.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_maps_become_dotted_paths() {
        let value = serde_json::json!({"train": {"lr": [1, 2], "ot": {"weight": [0.1]}}, "seeds": [1]});
        let mut out = BTreeMap::new();
        flatten_dotted("", value.as_object().unwrap(), &|_, v| v.is_array(), &mut out).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["seeds", "train.lr", "train.ot.weight"]);
        let bad = serde_json::json!({"train": {"lr": 0.1}});
        let err = flatten_dotted("", bad.as_object().unwrap(), &|_, v| v.is_array(), &mut out).unwrap_err();
        assert_eq!(err, ("train.lr".to_string(), serde_json::json!(0.1)));
    }
}
