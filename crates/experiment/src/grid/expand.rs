//! Expansion of an experiment's grid (axes, zipped groups, conditional blocks, exclusions,
//! inclusions, named sub-grids) into cells, and the choice of the baseline grid point.

use super::ids::{content_hash, slug_value, variant_slug};
use super::{Cell, CellConfig};
use crate::schedule::Schedule;
use crate::spec::{Experiment, GridSpec, LoadedExperiment, ScheduleSpec, load_schedule, schedule_dirs};
use anyhow::{Context, Result, bail};
use clirlab_model::DeviceSpec;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A grid point: axis key path → value.
type Point = BTreeMap<String, Value>;

/// A grid's layers: (key prefix for messages, grid keys) — the shared top level, then the sub-grid.
type Layers = Vec<(String, GridSpec)>;

/// The named sub-grids with the top-level grid keys each shares (`None`: no sub-grids).
fn grids(exp: &Experiment) -> Vec<(Option<&str>, Layers)> {
    let top = (String::new(), exp.top_grid());
    if exp.grids.is_empty() {
        return vec![(None, vec![top])];
    }
    exp.grids
        .iter()
        .map(|(name, g)| {
            (
                Some(name.as_str()),
                vec![top.clone(), (format!("grids.{name}."), g.clone())],
            )
        })
        .collect()
}

/// Every key path the grid varies: axes, zipped and conditional ones, in every sub-grid.
pub fn axis_keys(exp: &Experiment) -> Vec<String> {
    let mut keys = BTreeSet::new();
    for (_, layers) in grids(exp) {
        for (_, g) in layers {
            let conditional = g
                .conditional
                .iter()
                .flat_map(|c| c.ablations.keys().chain(c.zipped.iter().flat_map(|z| z.keys())));
            keys.extend(
                g.ablations
                    .keys()
                    .chain(g.zipped.iter().flat_map(|z| z.keys()))
                    .chain(conditional)
                    .cloned(),
            );
        }
    }
    keys.into_iter().collect()
}

/// A grid whose axes cannot be combined; each names the key path of the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    /// A key varied by two axes (or zipped groups).
    #[error("key `{key}`: the key is already an axis")]
    AlreadyAnAxis {
        /// The key path of the second entry that varies it.
        key: String,
    },
    /// A zipped group whose lists differ in length (or are empty).
    #[error("key `{key}`: every list of a zipped group must have the same, non-zero length, found lengths {lengths:?}")]
    ZippedLengths {
        /// The key path of the group.
        key: String,
        /// The lengths of its lists.
        lengths: Vec<usize>,
    },
    /// A `when` test `in`/`not_in` whose argument is not a list.
    #[error("`{op}` expects a list of values, found {found}")]
    NotAList {
        /// The test (`in` or `not_in`).
        op: String,
        /// The argument as written.
        found: Value,
    },
}

/// One dimension per axis and per zipped group; each alternative is a set of (key → value).
/// `taken` collects the keys so far, so a key varied twice is an error that names it.
fn dimensions(
    at: &str,
    ablations: &BTreeMap<String, Vec<Value>>,
    zipped: &[BTreeMap<String, Vec<Value>>],
    taken: &mut BTreeSet<String>,
) -> std::result::Result<Vec<Vec<Point>>, GridError> {
    let mut dims = Vec::new();
    for (axis, values) in ablations {
        if !taken.insert(axis.clone()) {
            return Err(GridError::AlreadyAnAxis {
                key: format!("{at}ablations.{axis}"),
            });
        }
        dims.push(
            values
                .iter()
                .map(|v| Point::from([(axis.clone(), v.clone())]))
                .collect(),
        );
    }
    for (g, group) in zipped.iter().enumerate() {
        let lengths: BTreeSet<usize> = group.values().map(Vec::len).collect();
        if lengths.len() != 1 || lengths.contains(&0) {
            return Err(GridError::ZippedLengths {
                key: format!("{at}zipped[{g}]"),
                lengths: group.values().map(Vec::len).collect(),
            });
        }
        for key in group.keys() {
            if !taken.insert(key.clone()) {
                return Err(GridError::AlreadyAnAxis {
                    key: format!("{at}zipped[{g}].{key}"),
                });
            }
        }
        let n = *lengths.first().expect("one length");
        dims.push(
            (0..n)
                .map(|i| group.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect())
                .collect(),
        );
    }
    Ok(dims)
}

fn cross(points: Vec<(Point, String)>, dims: &[Vec<Point>]) -> Vec<(Point, String)> {
    dims.iter().fold(points, |points, dimension| {
        points
            .into_iter()
            .flat_map(|(p, why)| {
                dimension.iter().map(move |alt| {
                    let mut p = p.clone();
                    p.extend(alt.clone());
                    (p, why.clone())
                })
            })
            .collect()
    })
}

/// Numbers compare by value (YAML's `1` and `1.0` are the same setting).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// A `when` test of a conditional block.
enum Test {
    Is(Value),
    Not(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
}

impl Test {
    fn parse(v: &Value) -> std::result::Result<Test, GridError> {
        let Value::Object(map) = v else {
            return Ok(Test::Is(v.clone()));
        };
        let [(op, arg)] = map.iter().collect::<Vec<_>>()[..] else {
            return Ok(Test::Is(v.clone()));
        };
        let list = |arg: &Value| {
            arg.as_array().cloned().ok_or_else(|| GridError::NotAList {
                op: op.to_string(),
                found: arg.clone(),
            })
        };
        match op.as_str() {
            "not" => Ok(Test::Not(arg.clone())),
            "in" => Ok(Test::In(list(arg)?)),
            "not_in" => Ok(Test::NotIn(list(arg)?)),
            _ => Ok(Test::Is(v.clone())),
        }
    }

    fn holds(&self, value: &Value) -> bool {
        match self {
            Test::Is(x) => same_value(value, x),
            Test::Not(x) => !same_value(value, x),
            Test::In(xs) => xs.iter().any(|x| same_value(value, x)),
            Test::NotIn(xs) => !xs.iter().any(|x| same_value(value, x)),
        }
    }
}

/// Reads a key's value at a grid point: the point's own axis value, else the experiment's
/// configuration with the point applied (a named schedule compares by its name).
struct Lookup<'a> {
    base: &'a Value,
    base_schedule: Value,
    loaded: &'a LoadedExperiment,
}

impl Lookup<'_> {
    fn value(&self, point: &Point, key: &str) -> Result<Option<Value>> {
        if let Some(v) = point.get(key) {
            return Ok(Some(v.clone()));
        }
        if key == "schedule" {
            return Ok(Some(self.base_schedule.clone()));
        }
        let mut tree = self.base.clone();
        apply_point(&mut tree, point, self.loaded)?;
        Ok(key.split('.').try_fold(&tree, |node, part| node.get(part)).cloned())
    }
}

/// The points of one grid with the reason each exists: the cartesian product of its axes and
/// zipped groups (each group one axis whose i-th point sets all its keys), each conditional
/// block crossed with the points its `when` tests accept, minus the points an `exclude` rule
/// matches, plus the `include` points. `layers` are the shared top level and the sub-grid.
fn assignments(name: Option<&str>, layers: &[(String, GridSpec)], lookup: &Lookup) -> Result<Vec<(Point, String)>> {
    let file = lookup.loaded.source.display();
    let fail = |e: GridError| anyhow::anyhow!("{file}: {e}");
    let origin = match name {
        Some(name) => format!("grid `{name}`: product of the axes"),
        None => "product of the axes".to_string(),
    };
    let mut taken = BTreeSet::new();
    let mut points = vec![(Point::new(), origin)];
    for (at, grid) in layers {
        points = cross(
            points,
            &dimensions(at, &grid.ablations, &grid.zipped, &mut taken).map_err(fail)?,
        );
    }
    let unconditional = taken.clone();
    for (at, grid) in layers {
        for (c, block) in grid.conditional.iter().enumerate() {
            let at = format!("{at}conditional[{c}]");
            let mut keys = unconditional.clone();
            let dims = dimensions(&format!("{at}."), &block.ablations, &block.zipped, &mut keys).map_err(fail)?;
            let block_keys: Vec<String> = keys.difference(&unconditional).cloned().collect();
            taken.extend(block_keys.iter().cloned());
            let mut tests = Vec::new();
            for (key, test) in &block.when {
                let test = Test::parse(test).map_err(|e| anyhow::anyhow!("{file}: key `{at}.when.{key}`: {e}"))?;
                if lookup.value(&Point::new(), key)?.is_none() && !taken.contains(key) && !key.starts_with("schedule.")
                {
                    bail!("{file}: key `{at}.when.{key}`: unknown key");
                }
                tests.push((key, test));
            }
            let condition = serde_json::to_string(&block.when)?;
            let mut next = Vec::new();
            let before = points.len();
            let mut matched = false;
            for (point, why) in points {
                let mut holds = true;
                for (key, test) in &tests {
                    let value = lookup
                        .value(&point, key)
                        .with_context(|| format!("{file}: key `{at}.when.{key}`"))?;
                    holds &= value.is_some_and(|v| test.holds(&v));
                }
                if !holds {
                    next.push((point, why));
                    continue;
                }
                matched = true;
                if let Some(key) = block_keys.iter().find(|k| point.contains_key(*k)) {
                    bail!("{file}: key `{at}`: `{key}` is already set at a point this block applies to");
                }
                next.extend(cross(vec![(point, format!("{why}; {at} (when {condition})"))], &dims));
            }
            if !matched && before > 0 {
                matches_nothing(
                    name,
                    &at,
                    &format!("{file}: key `{at}.when`: no point of the grid passes {condition}"),
                )?;
            }
            points = next;
        }
    }
    for (at, grid) in layers {
        for (r, rule) in grid.exclude.iter().enumerate() {
            if let Some(key) = rule.keys().find(|k| !taken.contains(*k)) {
                bail!("{file}: key `{at}exclude[{r}].{key}`: not an axis of the grid");
            }
        }
    }
    let excluded = |p: &Point| {
        layers
            .iter()
            .flat_map(|(_, g)| &g.exclude)
            .any(|rule| rule.iter().all(|(k, v)| p.get(k).is_some_and(|x| same_value(x, v))))
    };
    for (at, grid) in layers {
        for (r, rule) in grid.exclude.iter().enumerate() {
            let hits = |p: &Point| rule.iter().all(|(k, v)| p.get(k).is_some_and(|x| same_value(x, v)));
            if !points.iter().any(|(p, _)| hits(p)) {
                let rule = serde_json::to_string(rule)?;
                matches_nothing(
                    name,
                    at,
                    &format!("{file}: key `{at}exclude[{r}]`: the rule {rule} matches no point of the grid"),
                )?;
            }
        }
    }
    let before = points.len();
    points.retain(|(p, _)| !excluded(p));
    let includes = layers.iter().any(|(_, g)| !g.include.is_empty());
    if before > 0 && points.is_empty() && !includes {
        let rules: Vec<String> = layers
            .iter()
            .filter(|(_, g)| !g.exclude.is_empty())
            .map(|(at, _)| format!("`{at}exclude`"))
            .collect();
        bail!(
            "{file}: key {}: expected rules that leave at least one of the {before} grid points, found rules that remove all of them",
            rules.join(", ")
        );
    }
    for (at, grid) in layers {
        for (i, point) in grid.include.iter().enumerate() {
            if points.iter().any(|(p, _)| p == point) {
                bail!("{file}: key `{at}include[{i}]`: this point is already in the grid");
            }
            points.push((point.clone(), format!("{at}include[{i}]")));
        }
    }
    Ok(points)
}

/// A rule (`exclude`, a conditional's `when`) that matches no point of a grid: a value that
/// is not on its axis, a typo. An error, unless the rule is the shared top level's and the
/// experiment has sub-grids (it may match in another): then a warning.
fn matches_nothing(grid: Option<&str>, at: &str, message: &str) -> Result<()> {
    match grid {
        Some(grid) if !at.starts_with("grids.") => {
            tracing::warn!(grid, "{message} of sub-grid `{grid}`");
            Ok(())
        }
        _ => bail!("{message}; expected a rule that some grid point matches (a value on its axis)"),
    }
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

/// Sets a point's axis values in a configuration tree. A schedule named by an axis is read
/// from its file at once, so later axes such as `schedule.rate` refine it.
fn apply_point(tree: &mut Value, point: &Point, loaded: &LoadedExperiment) -> Result<()> {
    for (axis, value) in point {
        match (axis.as_str(), value) {
            ("schedule", Value::String(name)) => {
                let spec = ScheduleSpec::Named(name.clone());
                tree["schedule"] = serde_json::to_value(resolve_schedule(&spec, loaded)?.1)?;
            }
            _ => set_path(tree, axis, value.clone()).with_context(|| format!("key `ablations.{axis}`"))?,
        }
    }
    Ok(())
}

/// An axis value that is a map merges into the section key by key (as the config layers
/// do); any other value, or a map of another `kind` (a different schedule), replaces what was
/// there.
fn merge_into(target: &mut Value, value: Value) {
    match (target, value) {
        (Value::Object(existing), Value::Object(new))
            if new.get("kind").is_none_or(|kind| existing.get("kind") == Some(kind)) =>
        {
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

/// All cells of the experiment: the points of each grid (the union over named sub-grids),
/// times the seeds.
pub fn expand(loaded: &LoadedExperiment) -> Result<Vec<Cell>> {
    let exp = &loaded.experiment;
    let mut base = serde_json::to_value(exp)?;
    if let Some(map) = base.as_object_mut() {
        for key in Experiment::grid_keys() {
            map.remove(&key);
        }
        for key in ["seeds", "name", "description", "stats"] {
            map.remove(key);
        }
    }
    // A named base schedule is inlined first, so axes like `schedule.rate` can refine it.
    let (base_name, base_schedule) = resolve_schedule(&exp.schedule, loaded)?;
    base["schedule"] = serde_json::to_value(&base_schedule)?;

    let lookup = Lookup {
        base: &base,
        base_schedule: match &exp.schedule {
            ScheduleSpec::Named(name) => Value::String(name.clone()),
            ScheduleSpec::Inline(s) => serde_json::to_value(s)?,
        },
        loaded,
    };
    let mut cells: Vec<Cell> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (name, layers) in grids(exp) {
        let grid_cells = grid_cells(loaded, &base, &base_name, &assignments(name, &layers, &lookup)?)?;
        // The union of sub-grids: a configuration two grids share is one cell, for both reasons.
        for (digest, cell) in grid_cells {
            match index.get(&digest) {
                Some(&i) => {
                    let existing: &mut Cell = &mut cells[i];
                    existing.reason = format!("{}; {}", existing.reason, cell.reason);
                }
                None => {
                    index.insert(digest, cells.len());
                    cells.push(cell);
                }
            }
        }
    }
    Ok(cells)
}

/// The experiment `probe` (without grids) with the sections of the configuration `tree`.
fn experiment_of(probe: &Value, tree: &Value) -> serde_json::Result<Experiment> {
    let mut full = probe.clone();
    for key in ["data", "sampler", "model", "train", "ot", "retrieval", "schedule"] {
        full[key] = tree[key].clone();
    }
    serde_json::from_value(full)
}

/// The cells of one grid's points, each with the digest of its configuration: each point
/// applied to the base configuration, checked, and trained once per seed.
fn grid_cells(
    loaded: &LoadedExperiment,
    base: &Value,
    base_name: &str,
    assignments: &[(Point, String)],
) -> Result<Vec<(String, Cell)>> {
    let exp = &loaded.experiment;
    let file = loaded.source.display();
    let mut cells = Vec::new();
    // Configuration digest → cell id: two points of one grid must differ in what they train.
    let mut seen = std::collections::HashMap::new();
    for (assignment, reason) in assignments {
        let mut tree = base.clone();
        let mut schedule_name = base_name.to_string();
        apply_point(&mut tree, assignment, loaded).with_context(|| format!("{file}: variant {assignment:?}"))?;
        for (axis, value) in assignment {
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
        let probe = serde_json::to_value(exp.without_grids())?;
        let mut checked: Experiment = experiment_of(&probe, &tree).map_err(|e| {
            // Name the axis whose value does not fit: the first that fails applied alone.
            let culprit = assignment.iter().find(|(axis, value)| {
                let mut alone = base.clone();
                let single: Point = [((*axis).clone(), (*value).clone())].into();
                apply_point(&mut alone, &single, loaded).is_ok() && experiment_of(&probe, &alone).is_err()
            });
            match culprit {
                Some((axis, value)) => {
                    // Axis values travel as JSON, which has no NaN or infinity.
                    let hint = if value.is_null() {
                        " (`.nan`, `.inf` and `~` are all null in an axis)"
                    } else {
                        ""
                    };
                    anyhow::anyhow!("{file}: key `ablations.{axis}`: value {value}{hint}: {e}")
                }
                None => anyhow::anyhow!("{file}: variant {}: {e}", variant_slug(assignment)),
            }
        })?;
        checked
            .model
            .resolve_backbone()
            .with_context(|| format!("{file}: key `model.backbone` of variant {}", variant_slug(assignment)))?;
        checked.validate().map_err(|e| {
            let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{file}: variant {}: {}", variant_slug(assignment), problems.join("; "))
        })?;
        let variant_config = (
            &checked.data,
            &schedule,
            &checked.sampler,
            &checked.model,
            &checked.train,
            &checked.ot,
            &checked.retrieval,
        );
        let variant = format!("{}_{}", variant_slug(assignment), content_hash(&variant_config, 8));
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
                device: exp.device,
            };
            let hashed = CellConfig {
                schedule_name: String::new(),
                device: DeviceSpec::Auto,
                ..config.clone()
            };
            let digest = content_hash(&hashed, 64);
            let id = format!("{}_s{}_{}", variant_slug(assignment), seed, &digest[..8]);
            if let Some(other) = seen.insert(digest.clone(), id.clone()) {
                bail!("{file}: cells {other} and {id} resolve to the same configuration; remove the duplicate point");
            }
            cells.push((
                digest,
                Cell {
                    reason: reason.clone(),
                    id,
                    variant: variant.clone(),
                    assignment: assignment.clone(),
                    seed: *seed,
                    config,
                },
            ));
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
    let axes: BTreeSet<String> = axis_keys(&loaded.experiment).into_iter().collect();
    let mut flat = BTreeMap::new();
    if let Err((path, _)) = clirlab_util::dotted::flatten_dotted("", wanted, &|path, _| axes.contains(path), &mut flat)
    {
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
    // With sub-grids a point of one grid can be a sub-point of another's; the exact one wins.
    let exact: Vec<&&Cell> = matching
        .iter()
        .copied()
        .filter(|c| c.assignment.len() == wanted.len())
        .collect();
    match (matching.as_slice(), exact.as_slice()) {
        ([one], _) | (_, [one]) => Ok(Some(one.variant.clone())),
        ([], _) => bail!(
            "{}: key `stats.baseline`: no grid point has {}",
            loaded.source.display(),
            serde_json::to_string(wanted)?
        ),
        (many, _) => bail!(
            "{}: key `stats.baseline`: {} grid points match; add axis values until one does",
            loaded.source.display(),
            many.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load;
    use std::path::Path;

    #[test]
    fn experiments_without_backbone_keep_their_ids() {
        // The cell ids of `experiments/quickstart.yaml` since training pairs have a design
        // (`data.train_pairs`): the rendered design trains other pairs than the earlier one, so
        // cells of the earlier design must not count as its finished cells.
        let loaded = load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/quickstart.yaml"),
            &[],
        )
        .unwrap();
        let mut ids: Vec<String> = expand(&loaded).unwrap().into_iter().map(|c| c.id).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "schedule-constant_s1_590c86ae",
                "schedule-constant_s2_c502f8a3",
                "schedule-exponential_s1_b2820bd3",
                "schedule-exponential_s2_bf3f83c0",
                "schedule-linear_s1_5fefa0ec",
                "schedule-linear_s2_527989d6",
            ]
        );
        let model = serde_json::to_value(&loaded.experiment.model).unwrap();
        let keys: Vec<&String> = model.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["max_len", "preset", "temperature"]);
        let data = serde_json::to_value(&loaded.experiment.data).unwrap();
        assert!(data.get("max_test_queries").is_none());
        // The default `retrieval.settings` is not written either.
        let retrieval = serde_json::to_value(&loaded.experiment.retrieval).unwrap();
        let keys: Vec<&String> = retrieval.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["top_k"]);
    }

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
            "ablations:\n  train.lr: [0.1, 0.2]\nexclude:\n  - {train.lr: 0.1}\n  - {train.lr: 0.2}\n",
        );
        let err = expand(&bad).unwrap_err().to_string();
        assert!(
            err.contains("key `exclude`") && err.contains("remove all of them"),
            "{err}"
        );
        let bad = experiment(
            dir.path(),
            "ablations:\n  train.lr: [0.1]\ninclude:\n  - {train.lr: 0.1}\n",
        );
        assert!(expand(&bad).unwrap_err().to_string().contains("include[0]"));
    }

    #[test]
    fn conditional_axes_apply_where_their_predicate_holds() {
        let dir = tempfile::tempdir().unwrap();
        // On an axis value: OT weights only where OT is on.
        let e = experiment(
            dir.path(),
            "ablations:\n  ot.enabled: [false, true]\n\
             conditional:\n  - when: {ot.enabled: true}\n    ablations: {ot.weight: [0.1, 1.0]}\n",
        );
        let cells = expand(&e).unwrap();
        assert_eq!(cells.len(), 3);
        let off = cells.iter().find(|c| !c.config.ot.enabled).unwrap();
        assert!(!off.assignment.contains_key("ot.weight"));
        assert_eq!(off.reason, "product of the axes");
        let weights: BTreeSet<String> = cells
            .iter()
            .filter(|c| c.config.ot.enabled)
            .map(|c| c.config.ot.weight.to_string())
            .collect();
        assert_eq!(weights, BTreeSet::from(["0.1".to_string(), "1".to_string()]));
        assert!(
            cells
                .iter()
                .any(|c| c.reason.contains("conditional[0] (when {\"ot.enabled\":true})"))
        );

        // On a named schedule, by name or by a field of its file; `in`, `not` and an exclusion on
        // a conditional key.
        for when in [
            "{schedule: ramp}",
            "{schedule.kind: linear}",
            "{schedule: {in: [ramp, other]}}",
        ] {
            let e = experiment(
                dir.path(),
                &format!(
                    "ablations:\n  schedule: [ramp, {{kind: constant, value: 0.5}}]\n\
                     conditional:\n  - when: {when}\n    zipped: [{{train.lr: [0.1, 0.2, 0.3], train.warmup_steps: [1, 2, 3]}}]\n\
                     exclude:\n  - {{train.lr: 0.3}}\n"
                ),
            );
            let cells = expand(&e).unwrap();
            assert_eq!(cells.len(), 3, "{when}");
            assert!(
                cells
                    .iter()
                    .all(|c| (c.config.schedule_name == "ramp") == c.assignment.contains_key("train.lr"))
            );
        }
        // A test on the base configuration (no axis varies it).
        let e = experiment(
            dir.path(),
            "ablations:\n  train.lr: [0.1, 0.2]\n\
             conditional:\n  - when: {train.steps: {not: 123456}}\n    ablations: {model.temperature: [0.05, 0.1]}\n",
        );
        assert_eq!(expand(&e).unwrap().len(), 4);

        let bad = experiment(
            dir.path(),
            "conditional:\n  - when: {train.stepz: 1}\n    ablations: {train.lr: [0.1]}\n",
        );
        assert!(
            expand(&bad)
                .unwrap_err()
                .to_string()
                .contains("conditional[0].when.train.stepz`: unknown key")
        );
        let bad = experiment(
            dir.path(),
            "ablations:\n  train.lr: [0.1]\nconditional:\n  - when: {train.lr: 0.1}\n    ablations: {train.lr: [0.2]}\n",
        );
        assert!(
            expand(&bad)
                .unwrap_err()
                .to_string()
                .contains("conditional[0].ablations.train.lr")
        );
        let bad = experiment(
            dir.path(),
            "conditional:\n  - when: {train.lr: {in: 0.1}}\n    ablations: {train.steps: [2]}\n",
        );
        assert!(expand(&bad).unwrap_err().to_string().contains("expects a list"));
    }

    #[test]
    fn named_sub_grids_are_united() {
        let dir = tempfile::tempdir().unwrap();
        let e = experiment(
            dir.path(),
            "schedule: ramp\ntrain: {lr: 0.01}\nseeds: [1, 2]\n\
             ablations:\n  model.temperature: [0.05]\n\
             grids:\n  schedules:\n    ablations: {schedule: [ramp, {kind: constant, value: 0.5}]}\n\
             \x20 rates:\n    ablations: {train.lr: [0.01, 0.1]}\n",
        );
        let cells = expand(&e).unwrap();
        // 2 schedules + 2 rates, one point shared (ramp at lr 0.01), times 2 seeds.
        assert_eq!(cells.len(), 6);
        assert!(cells.iter().all(|c| c.config.model.temperature == 0.05));
        let shared: Vec<&Cell> = cells.iter().filter(|c| c.reason.contains("; ")).collect();
        assert_eq!(
            shared.len(),
            2,
            "{:#?}",
            cells.iter().map(|c| &c.reason).collect::<Vec<_>>()
        );
        assert_eq!(
            shared[0].reason,
            "grid `rates`: product of the axes; grid `schedules`: product of the axes"
        );
        assert!(axis_keys(&e.experiment).contains(&"train.lr".to_string()));

        let bad = experiment(
            dir.path(),
            "ablations:\n  train.lr: [0.1]\ngrids:\n  a:\n    ablations: {train.lr: [0.2]}\n",
        );
        assert!(
            expand(&bad)
                .unwrap_err()
                .to_string()
                .contains("grids.a.ablations.train.lr")
        );
        let typo = dir.path().join("typo.yaml");
        std::fs::write(&typo, "grids:\n  a:\n    ablation: {train.lr: [0.2]}\n").unwrap();
        let err = format!("{:#}", load(&typo, &[]).map(|_| ()).unwrap_err());
        assert!(err.contains("typo.yaml") && err.contains("ablation"), "{err}");
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
        assert!(
            err.contains("e.yaml: key `ablations.train.steps`: value \"many\""),
            "{err}"
        );
        // A non-finite axis value is refused when the file loads, with its key and position.
        std::fs::write(dir.path().join("e.yaml"), "ablations:\n  train.lr: [0.1, .nan]\n").unwrap();
        let err = load(&dir.path().join("e.yaml"), &[]).unwrap_err().to_string();
        assert!(
            err.contains("e.yaml: key `ablations.train.lr[1]`: expected a finite number, found NaN"),
            "{err}"
        );
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

/// The backbone keys of the experiment schema, checked through loading and expansion.
#[cfg(test)]
mod backbone_keys {
    use super::expand;
    use crate::spec::{Backbone, load};
    use std::path::{Path, PathBuf};

    fn quickstart() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/quickstart.yaml")
    }

    fn problems(sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        match load(&quickstart(), &sets) {
            Ok(_) => String::new(),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn backbone_keys_parse_with_defaults() {
        let sets = ["model.backbone=me5-small".to_string()];
        let e = load(&quickstart(), &sets).unwrap().experiment;
        assert_eq!(e.model.backbone, Some(Backbone::Me5Small));
        let ft = e.model.fine_tune().unwrap();
        assert_eq!((ft.top_layers, ft.embeddings, ft.word_embeddings), (12, false, false));
        let sets: Vec<String> = [
            "model.backbone=me5-small",
            "model.train_layers=2",
            "model.train_embeddings=true",
            "model.train_word_embeddings=true",
            "data.max_test_queries=100",
            "train.steps=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let loaded = load(&quickstart(), &sets).unwrap();
        let ft = loaded.experiment.model.fine_tune().unwrap();
        assert_eq!((ft.top_layers, ft.embeddings, ft.word_embeddings), (2, true, true));
        assert_eq!(loaded.experiment.data.max_test_queries, Some(100));
        assert_eq!(
            loaded.experiment.model.prefix(clirlab_model::tokenizer::Side::Query),
            "query: "
        );
        // The keys are part of the cell ids.
        let ids = expand(&loaded).unwrap();
        let plain = expand(&load(&quickstart(), &sets[..5]).unwrap()).unwrap();
        assert_ne!(ids[0].id, plain[0].id);
        // And ablatable (an axis must name a key the resolved config has: set it at top level).
        let axis = [
            "ablations.model.train_layers=[1, 2]".to_string(),
            sets[0].clone(),
            sets[1].clone(),
        ];
        assert_eq!(expand(&load(&quickstart(), &axis).unwrap()).unwrap().len(), 12);
    }

    #[test]
    fn bad_combinations_name_the_key() {
        for (sets, key) in [
            (&["model.train_layers=2"][..], "model.train_layers"),
            (&["model.train_embeddings=false"][..], "model.train_embeddings"),
            (&["model.train_word_embeddings=true"][..], "model.train_word_embeddings"),
            (&["model.backbone=me5-small", "model.preset=small"][..], "model.preset"),
            (
                &["model.backbone=me5-small", "model.train_layers=13"][..],
                "model.train_layers",
            ),
            (
                &["model.backbone=me5-small", "ot.init_from_teacher=true"][..],
                "ot.init_from_teacher",
            ),
            (
                &["model.backbone=me5-small", "ot.enabled=true", "ot.teacher.steps=10"][..],
                "ot.teacher",
            ),
            (&["model.backbone=me5-small", "model.max_len=1"][..], "model.max_len"),
            (&["train.steps=0", "train.eval_every=5"][..], "train.eval_every"),
            (&["model.backbone=me5-large"][..], "backbone"),
        ] {
            let found = problems(sets);
            assert!(
                found.contains(key),
                "{sets:?}: expected an error naming `{key}`, got {found:?}"
            );
        }
        assert_eq!(problems(&["train.steps=0"]), "");
        // OT distillation from the pretrained model is a backbone cell like another.
        assert_eq!(problems(&["model.backbone=me5-small", "ot.enabled=true"]), "");
    }
}
