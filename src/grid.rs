//! Expansion of an experiment's ablation axes into cells, and their stable ids.
//!
//! A *variant* is one point of the grid (one value per axis); a *cell* is a variant trained
//! with one seed. Ids are derived from the resolved configuration — a readable part from the
//! axis values, then a hash of the canonical JSON — so the same configuration gets the same
//! id on any machine, and changing a named schedule's file changes the id.

use crate::config::{
    DataConfig, Experiment, LoadedExperiment, ModelConfig, OtConfig, RetrievalConfig, SamplerConfig, ScheduleSpec,
    TrainConfig, load_schedule, schedule_dirs,
};
use crate::schedule::Schedule;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Everything that determines a cell's numbers; it is what the cell id hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    pub data: DataConfig,
    pub schedule_name: String,
    pub schedule: Schedule,
    pub sampler: SamplerConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub ot: OtConfig,
    pub retrieval: RetrievalConfig,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub id: String,
    pub variant: String,
    /// The axis values of this cell's variant (axis key path → value).
    pub assignment: BTreeMap<String, Value>,
    /// Why the grid has this point: the product of the axes, or which `include` rule.
    pub reason: String,
    pub seed: u64,
    pub config: CellConfig,
}

/// Every key path the grid varies: the ablation axes and the zipped ones.
pub fn axis_keys(exp: &Experiment) -> Vec<String> {
    exp.ablations
        .keys()
        .cloned()
        .chain(exp.zipped.iter().flat_map(|g| g.keys().cloned()))
        .collect()
}

/// The grid points with the reason each exists: the cartesian product of the ablation axes and
/// the zipped groups (each group one axis whose i-th point sets all its keys), minus the points
/// an `exclude` rule matches, plus the `include` points.
fn assignments(loaded: &LoadedExperiment) -> Result<Vec<(BTreeMap<String, Value>, String)>> {
    let exp = &loaded.experiment;
    let file = loaded.source.display();
    // Each dimension: its alternatives, each a set of (key → value).
    let mut dimensions: Vec<Vec<BTreeMap<String, Value>>> = exp
        .ablations
        .iter()
        .map(|(axis, values)| {
            values
                .iter()
                .map(|v| BTreeMap::from([(axis.clone(), v.clone())]))
                .collect()
        })
        .collect();
    for (g, group) in exp.zipped.iter().enumerate() {
        let lengths: BTreeSet<usize> = group.values().map(Vec::len).collect();
        if lengths.len() != 1 || lengths.contains(&0) {
            bail!("{file}: key `zipped[{g}]`: every list of a zipped group must have the same, non-zero length");
        }
        for key in group.keys() {
            if exp.ablations.contains_key(key) || exp.zipped[..g].iter().any(|other| other.contains_key(key)) {
                bail!("{file}: key `zipped[{g}].{key}`: the key is already an axis");
            }
        }
        let n = *lengths.first().expect("one length");
        dimensions.push(
            (0..n)
                .map(|i| group.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect())
                .collect(),
        );
    }
    let mut points: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
    for dimension in &dimensions {
        points = points
            .into_iter()
            .flat_map(|p| {
                dimension.iter().map(move |alt| {
                    let mut p = p.clone();
                    p.extend(alt.clone());
                    p
                })
            })
            .collect();
    }
    let axes = axis_keys(exp);
    for (r, rule) in exp.exclude.iter().enumerate() {
        if let Some(key) = rule.keys().find(|k| !axes.contains(k)) {
            bail!("{file}: key `exclude[{r}].{key}`: not an axis of the grid");
        }
    }
    let excluded = |p: &BTreeMap<String, Value>| {
        exp.exclude
            .iter()
            .any(|rule| rule.iter().all(|(k, v)| p.get(k) == Some(v)))
    };
    let mut out: Vec<(BTreeMap<String, Value>, String)> = points
        .into_iter()
        .filter(|p| !excluded(p))
        .map(|p| (p, "product of the axes".to_string()))
        .collect();
    for (i, point) in exp.include.iter().enumerate() {
        if out.iter().any(|(p, _)| p == point) {
            bail!("{file}: key `include[{i}]`: this point is already in the grid");
        }
        out.push((point.clone(), format!("include[{i}]")));
    }
    Ok(out)
}

/// Hex SHA-256 of the canonical JSON (sorted keys) of `value`, first `len` characters.
pub fn content_hash<T: Serialize>(value: &T, len: usize) -> String {
    let canonical = serde_json::to_value(value)
        .and_then(|v| serde_json::to_vec(&v))
        .expect("config serializes");
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_string()
}

fn slug_value(v: &Value) -> String {
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
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Readable part of a variant id, e.g. `schedule-linear_train.lr-0.001`.
fn variant_slug(assignment: &BTreeMap<String, Value>) -> String {
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

fn set_path(root: &mut Value, path: &str, value: Value) -> Result<()> {
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = node
            .as_object_mut()
            .with_context(|| format!("`{}` is not a section with keys", parts[..i].join(".")))?;
        if !map.contains_key(*part) {
            bail!("unknown key `{}`", parts[..=i].join("."));
        }
        if i + 1 == parts.len() {
            merge_into(map.get_mut(*part).expect("checked above"), value);
            return Ok(());
        }
        node = map.get_mut(*part).expect("checked above");
    }
    unreachable!("split yields at least one part")
}

/// An axis value that is a map merges into the section key by key (as the config layers
/// do); any other value replaces what was there.
fn merge_into(target: &mut Value, value: Value) {
    match (target, value) {
        (Value::Object(existing), Value::Object(new)) => {
            for (k, v) in new {
                match existing.get_mut(&k) {
                    Some(slot) => merge_into(slot, v),
                    None => {
                        existing.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Replaces a named schedule by its file's content, keeping the name as a label.
fn resolve_schedule(spec: &ScheduleSpec, loaded: &LoadedExperiment) -> Result<(String, Schedule)> {
    match spec {
        ScheduleSpec::Named(name) => Ok((name.clone(), load_schedule(name, &schedule_dirs(&loaded.source))?)),
        ScheduleSpec::Inline(s) => Ok((s.kind().to_string(), s.clone())),
    }
}

/// All cells of the experiment: the cartesian product of the axes, times the seeds.
pub fn expand(loaded: &LoadedExperiment) -> Result<Vec<Cell>> {
    let exp = &loaded.experiment;
    let file = loaded.source.display();
    let mut base = serde_json::to_value(exp)?;
    if let Some(map) = base.as_object_mut() {
        for key in [
            "ablations",
            "zipped",
            "exclude",
            "include",
            "seeds",
            "name",
            "description",
            "stats",
        ] {
            map.remove(key);
        }
    }
    // A named base schedule is inlined first, so axes like `schedule.rate` can refine it.
    let (base_name, base_schedule) = resolve_schedule(&exp.schedule, loaded)?;
    base["schedule"] = serde_json::to_value(&base_schedule)?;

    let assignments = assignments(loaded)?;
    let mut cells = Vec::new();
    for (assignment, reason) in assignments {
        let mut tree = base.clone();
        let mut schedule_name = base_name.clone();
        for (axis, value) in &assignment {
            set_path(&mut tree, axis, value.clone()).with_context(|| format!("{file}: key `ablations.{axis}`"))?;
            if axis.starts_with("schedule") {
                schedule_name = match (axis.as_str(), value) {
                    ("schedule", Value::String(name)) => name.clone(),
                    _ => format!("{schedule_name}+{}", slug_value(value)),
                };
            }
        }
        let spec: ScheduleSpec = serde_json::from_value(tree["schedule"].clone())
            .with_context(|| format!("{file}: key `schedule` after applying the axes"))?;
        let (_, schedule) =
            resolve_schedule(&spec, loaded).with_context(|| format!("{file}: key `ablations.schedule`"))?;
        schedule
            .validate()
            .map_err(|e| anyhow::anyhow!("{file}: schedule of variant {assignment:?}: {e}"))?;
        tree["schedule"] = serde_json::to_value(&schedule)?;
        let probe = Experiment {
            ablations: BTreeMap::new(),
            ..exp.clone()
        };
        let checked: Experiment = {
            let mut full = serde_json::to_value(&probe)?;
            for key in ["data", "sampler", "model", "train", "ot", "retrieval", "schedule"] {
                full[key] = tree[key].clone();
            }
            serde_json::from_value(full)
                .map_err(|e| anyhow::anyhow!("{file}: variant {}: {e}", variant_slug(&assignment)))?
        };
        checked
            .validate()
            .map_err(|p| anyhow::anyhow!("{file}: variant {}: {}", variant_slug(&assignment), p.join("; ")))?;
        let variant_config = (
            &checked.data,
            &schedule,
            &checked.sampler,
            &checked.model,
            &checked.train,
            &checked.ot,
            &checked.retrieval,
        );
        let variant = format!("{}_{}", variant_slug(&assignment), content_hash(&variant_config, 8));
        for seed in &exp.seeds {
            let config = CellConfig {
                data: checked.data.clone(),
                schedule_name: schedule_name.clone(),
                schedule: schedule.clone(),
                sampler: checked.sampler.clone(),
                model: checked.model.clone(),
                train: checked.train.clone(),
                ot: checked.ot.clone(),
                retrieval: checked.retrieval.clone(),
                seed: *seed,
            };
            let hashed = CellConfig {
                schedule_name: String::new(),
                ..config.clone()
            };
            let id = format!("{}_s{}_{}", variant_slug(&assignment), seed, content_hash(&hashed, 8));
            cells.push(Cell {
                reason: reason.clone(),
                id,
                variant: variant.clone(),
                assignment: assignment.clone(),
                seed: *seed,
                config,
            });
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &cells {
        if !seen.insert(&c.id) {
            bail!(
                "{file}: two cells resolve to the same configuration ({}); remove the duplicate axis value",
                c.id
            );
        }
    }
    Ok(cells)
}

/// The variant named by `stats.baseline` (a subset of axis values), if the grid has several.
pub fn baseline_variant(loaded: &LoadedExperiment, cells: &[Cell]) -> Result<Option<String>> {
    let wanted = &loaded.experiment.stats.baseline;
    let mut variants: Vec<&Cell> = Vec::new();
    for c in cells {
        if !variants.iter().any(|v| v.variant == c.variant) {
            variants.push(c);
        }
    }
    if variants.len() < 2 && wanted.is_empty() {
        return Ok(None);
    }
    if wanted.is_empty() {
        bail!(
            "{}: key `stats.baseline`: name the baseline grid point by its axis values, e.g. {{schedule: constant}}",
            loaded.source.display()
        );
    }
    // `--set stats.baseline.a.b=v` arrives nested: read nested maps as dotted axis paths,
    // unless the map itself is the value of an axis.
    fn flatten(
        prefix: &str,
        map: &BTreeMap<String, Value>,
        axes: &BTreeMap<String, Vec<Value>>,
        out: &mut BTreeMap<String, Value>,
    ) -> std::result::Result<(), String> {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                _ if axes.contains_key(&path) => {
                    out.insert(path, v.clone());
                }
                Value::Object(inner) => {
                    let inner: BTreeMap<String, Value> = inner.clone().into_iter().collect();
                    flatten(&path, &inner, axes, out)?;
                }
                _ => return Err(path),
            }
        }
        Ok(())
    }
    let mut flat = BTreeMap::new();
    let axes: BTreeMap<String, Vec<Value>> = axis_keys(&loaded.experiment)
        .into_iter()
        .map(|k| (k, Vec::new()))
        .collect();
    if let Err(path) = flatten("", wanted, &axes, &mut flat) {
        bail!(
            "{}: key `stats.baseline.{path}`: not an ablation axis",
            loaded.source.display()
        );
    }
    let wanted = &flat;
    let matching: Vec<&&Cell> = variants
        .iter()
        .filter(|c| wanted.iter().all(|(k, v)| c.assignment.get(k) == Some(v)))
        .collect();
    match matching.as_slice() {
        [one] => Ok(Some(one.variant.clone())),
        [] => bail!(
            "{}: key `stats.baseline`: no grid point has {}",
            loaded.source.display(),
            serde_json::to_string(wanted)?
        ),
        many => bail!(
            "{}: key `stats.baseline`: {} grid points match; add axis values until one does",
            loaded.source.display(),
            many.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use std::path::Path;

    fn experiment(dir: &Path, text: &str) -> LoadedExperiment {
        std::fs::create_dir_all(dir.join("schedules")).unwrap();
        std::fs::write(dir.join("schedules/ramp.yaml"), "kind: linear\nstart: 0\nend: 1\n").unwrap();
        let p = dir.join("e.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p, &[]).unwrap()
    }

    #[test]
    fn cartesian_product_times_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let e = experiment(
            dir.path(),
            "seeds: [1, 2]\nablations:\n  schedule: [ramp, {kind: constant, value: 0.5}]\n  train.lr: [0.001, 0.01, 0.1]\n",
        );
        let cells = expand(&e).unwrap();
        assert_eq!(cells.len(), 12);
        let variants: std::collections::BTreeSet<_> = cells.iter().map(|c| &c.variant).collect();
        assert_eq!(variants.len(), 6);
        let ramp = cells.iter().find(|c| c.assignment["schedule"] == "ramp").unwrap();
        assert_eq!(ramp.config.schedule, Schedule::Linear { start: 0.0, end: 1.0 });
        assert_eq!(ramp.config.schedule_name, "ramp");
        assert!(ramp.id.starts_with("schedule-ramp_train.lr-0.00"), "{}", ramp.id);
    }

    #[test]
    fn zipped_axes_exclusions_and_inclusions() {
        let dir = tempfile::tempdir().unwrap();
        let e = experiment(
            dir.path(),
            "ablations:\n  schedule: [ramp, {kind: constant, value: 0.5}]\n\
             zipped:\n  - {train.lr: [0.001, 0.01], train.warmup_steps: [5, 50]}\n\
             exclude:\n  - {schedule: ramp, train.lr: 0.01}\n\
             include:\n  - {train.lr: 0.1, model.temperature: 0.2}\n",
        );
        let cells = expand(&e).unwrap();
        // 2 schedules × 2 zipped points − 1 excluded + 1 included.
        assert_eq!(cells.len(), 4);
        for c in &cells {
            let lr = c.config.train.lr;
            let warmup = c.config.train.warmup_steps;
            assert!(
                (lr, warmup) == (0.001, 5) || (lr, warmup) == (0.01, 50) || c.reason == "include[0]",
                "{lr} {warmup}"
            );
            assert!(!(c.assignment.get("schedule") == Some(&"ramp".into()) && lr == 0.01));
        }
        let extra = cells.iter().find(|c| c.reason == "include[0]").unwrap();
        assert_eq!((extra.config.train.lr, extra.config.model.temperature), (0.1, 0.2));
        assert!(cells.iter().filter(|c| c.reason == "product of the axes").count() == 3);

        let bad = experiment(dir.path(), "zipped:\n  - {train.lr: [0.1, 0.2], train.steps: [10]}\n");
        assert!(expand(&bad).unwrap_err().to_string().contains("zipped[0]"));
        let bad = experiment(
            dir.path(),
            "ablations:\n  train.lr: [0.1]\nexclude:\n  - {train.steps: 10}\n",
        );
        assert!(expand(&bad).unwrap_err().to_string().contains("exclude[0].train.steps"));
        let bad = experiment(
            dir.path(),
            "ablations:\n  train.lr: [0.1]\ninclude:\n  - {train.lr: 0.1}\n",
        );
        assert!(expand(&bad).unwrap_err().to_string().contains("include[0]"));
    }

    #[test]
    fn ids_are_stable_and_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let text = "seeds: [1]\nablations:\n  schedule: [ramp]\n";
        let a = expand(&experiment(dir.path(), text)).unwrap();
        let b = expand(&experiment(dir.path(), text)).unwrap();
        assert_eq!(a[0].id, b[0].id);
        // Editing the named schedule's file changes the id.
        std::fs::write(
            dir.path().join("schedules/ramp.yaml"),
            "kind: linear\nstart: 0.1\nend: 1\n",
        )
        .unwrap();
        let p = dir.path().join("e.yaml");
        let c = expand(&load(&p, &[]).unwrap()).unwrap();
        assert_ne!(a[0].id, c[0].id);
        // A pinned id: the hash of the canonical config must not drift between machines or versions.
        assert_eq!(
            content_hash(&serde_json::json!({"b": 1, "a": [0.5, "x"]}), 12),
            content_hash(&serde_json::json!({"a": [0.5, "x"], "b": 1}), 12)
        );
    }

    #[test]
    fn bad_axes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = experiment(dir.path(), "ablations:\n  train.lerning_rate: [0.1]\n");
        let err = format!("{:#}", expand(&e).unwrap_err());
        assert!(
            err.contains("ablations.train.lerning_rate") && err.contains("unknown key"),
            "{err}"
        );
        let e = experiment(dir.path(), "ablations:\n  train.steps: [many]\n");
        let err = format!("{:#}", expand(&e).unwrap_err());
        assert!(err.contains("e.yaml") && err.contains("train.steps-many"), "{err}");
        let e = experiment(dir.path(), "ablations:\n  schedule: [missing]\n");
        let err = format!("{:#}", expand(&e).unwrap_err());
        assert!(err.contains("schedule `missing` not found"), "{err}");
    }

    #[test]
    fn baseline_is_found_by_axis_values() {
        let dir = tempfile::tempdir().unwrap();
        let e = experiment(
            dir.path(),
            "seeds: [1, 2]\nstats: {baseline: {schedule: ramp}}\nablations:\n  schedule: [ramp, {kind: constant, value: 0.5}]\n",
        );
        let cells = expand(&e).unwrap();
        let b = baseline_variant(&e, &cells).unwrap().unwrap();
        assert!(b.starts_with("schedule-ramp_"));
        let e = experiment(
            dir.path(),
            "ablations:\n  schedule: [ramp, {kind: constant, value: 0.5}]\n",
        );
        assert!(
            baseline_variant(&e, &expand(&e).unwrap())
                .unwrap_err()
                .to_string()
                .contains("stats.baseline")
        );
    }
}
