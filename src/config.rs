//! The experiment schema and its loading: figment layers
//! built-in defaults < the YAML file < `CLIRLAB_*` environment variables (nested with `__`)
//! < `--set key.path=value` flags. Unknown keys are rejected; every error names the source
//! (file, environment or flag), the key path and what was expected.

use crate::data::synthetic::SyntheticConfig;
use crate::model::{CostKind, DeviceSpec, OptimizerKind, Preset};
use crate::sampler::Mixing;
use crate::schedule::Schedule;
use crate::stats::{Correction, TestKind};
use anyhow::{Context, Result, bail};
use figment::providers::{Env, Format, Serialized, Yaml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// `CLIRLAB_*` variables that steer the program (or its tests) rather than set experiment keys.
pub const OPERATIONAL_ENV: &[&str] = &["log", "offline", "data_dir", "require_chromium"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Experiment {
    /// Names the results folder; defaults to the file's stem.
    pub name: String,
    pub description: String,
    pub data: DataConfig,
    /// A schedule name (a file `schedules/<name>.yaml`) or an inline schedule.
    pub schedule: ScheduleSpec,
    pub sampler: SamplerConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub ot: OtConfig,
    pub retrieval: RetrievalConfig,
    pub stats: StatsConfig,
    /// Where cells train: `auto` (CUDA when built with it and a GPU opens, else the CPU),
    /// `cpu`, `cuda` or `cuda:N`. Not part of cell ids.
    pub device: DeviceSpec,
    /// Every grid point is trained once per seed.
    pub seeds: Vec<u64>,
    /// Axes: a key path → the values it takes; the grid is their cartesian product.
    /// Nested maps (as `--set ablations.train.lr=[...]` produces) are read as dotted paths.
    #[serde(deserialize_with = "dotted_axes")]
    pub ablations: BTreeMap<String, Vec<serde_json::Value>>,
    /// Groups of key paths that vary together: in each group every list has the same length
    /// and the i-th values form one point; a group combines with the other axes as one axis.
    pub zipped: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
    /// Axes that apply only to the points where a predicate on other keys holds.
    pub conditional: Vec<ConditionalAxes>,
    /// Points to leave out: a point goes when it has every value of one rule (axis → value).
    pub exclude: Vec<BTreeMap<String, serde_json::Value>>,
    /// Extra points (key path → value), added after the product and the exclusions.
    pub include: Vec<BTreeMap<String, serde_json::Value>>,
    /// Named sub-grids whose union is the experiment's grid; the top-level grid keys above are
    /// shared by every one of them.
    pub grids: BTreeMap<String, GridSpec>,
}

/// One named sub-grid: the same grid keys as the top level of an experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridSpec {
    #[serde(deserialize_with = "dotted_axes")]
    pub ablations: BTreeMap<String, Vec<serde_json::Value>>,
    pub zipped: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
    pub conditional: Vec<ConditionalAxes>,
    pub exclude: Vec<BTreeMap<String, serde_json::Value>>,
    pub include: Vec<BTreeMap<String, serde_json::Value>>,
}

/// Axes (and zipped groups) crossed only with the points where every `when` test holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalAxes {
    /// Key path → the value it must have, or `{in: [...]}`, `{not: v}`, `{not_in: [...]}`;
    /// tested on the point's axis values, then on the experiment's resolved configuration.
    pub when: BTreeMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "dotted_axes")]
    pub ablations: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(default)]
    pub zipped: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
}

fn dotted_axes<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, Vec<serde_json::Value>>, D::Error> {
    fn walk<E: de::Error>(
        prefix: &str,
        map: serde_json::Map<String, serde_json::Value>,
        out: &mut BTreeMap<String, Vec<serde_json::Value>>,
    ) -> std::result::Result<(), E> {
        for (key, value) in map {
            let path = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                serde_json::Value::Array(values) => {
                    out.insert(path, values);
                }
                serde_json::Value::Object(inner) => walk(&path, inner, out)?,
                other => {
                    return Err(E::custom(format!(
                        "axis `{path}`: expected a list of values, found {other}"
                    )));
                }
            }
        }
        Ok(())
    }
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    let mut out = BTreeMap::new();
    walk::<D::Error>("", map, &mut out)?;
    Ok(out)
}

impl Default for Experiment {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            data: DataConfig::default(),
            schedule: ScheduleSpec::Inline(Schedule::Constant { value: 0.5 }),
            sampler: SamplerConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            ot: OtConfig::default(),
            retrieval: RetrievalConfig::default(),
            stats: StatsConfig::default(),
            device: DeviceSpec::Auto,
            seeds: vec![1],
            ablations: BTreeMap::new(),
            zipped: Vec::new(),
            conditional: Vec::new(),
            exclude: Vec::new(),
            include: Vec::new(),
            grids: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `synthetic` (built in) or the name of a prepared data set.
    pub dataset: String,
    /// Low-resource query languages.
    pub languages: Vec<String>,
    pub synthetic: SyntheticConfig,
    /// A data set only evaluated on, never trained on (e.g. `{dataset: udhr, languages: [swh]}`);
    /// its tasks are reported apart, prefixed with its name.
    pub zero_shot: Option<ZeroShot>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "synthetic".into(),
            languages: vec!["sx".into()],
            synthetic: SyntheticConfig::default(),
            zero_shot: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShot {
    pub dataset: String,
    pub languages: Vec<String>,
}

impl ZeroShot {
    /// The data settings that select this evaluation set, the rest taken from `base`.
    pub fn data_config(&self, base: &DataConfig) -> DataConfig {
        DataConfig {
            dataset: self.dataset.clone(),
            languages: self.languages.clone(),
            ..base.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    pub mixing: Mixing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub preset: Preset,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Tokens kept per text.
    pub max_len: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            preset: Preset::Tiny,
            temperature: 0.05,
            max_len: 32,
        }
    }
}

/// Learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    None,
    /// Linear from `lr` at the end of warm-up to 0 at the last step.
    #[default]
    Linear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    /// Linear warm-up from 0 to `lr` over this many steps.
    pub warmup_steps: usize,
    pub decay: Decay,
    /// Global gradient-norm clipping threshold (null: no clipping).
    pub clip_norm: Option<f64>,
    /// Evaluate nDCG@10 on the validation split of the target languages every this many
    /// steps (0: never) and keep the best checkpoint.
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement (0: never stop early).
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 200,
            batch_size: 32,
            optimizer: OptimizerKind::Adamw,
            lr: 2e-3,
            weight_decay: 0.01,
            warmup_steps: 10,
            decay: Decay::Linear,
            clip_norm: Some(5.0),
            eval_every: 0,
            patience: 0,
        }
    }
}

/// OT distillation from an English teacher retriever (OPTICAL-style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtConfig {
    pub enabled: bool,
    /// λ in InfoNCE + λ·OT.
    pub weight: f64,
    /// Optional curriculum of λ: λ(t) = weight · s(t), s an inline schedule.
    pub weight_schedule: Option<Schedule>,
    /// Entropic regularisation ε of Sinkhorn.
    pub epsilon: f64,
    pub max_iter: usize,
    /// Stop Sinkhorn when every row marginal is within `tol`.
    pub tol: f64,
    pub cost: CostKind,
    /// Stop gradients through the transport plan (∂/∂C = P).
    pub detach_plan: bool,
    /// Bitext pairs per step.
    pub batch_size: usize,
    /// Start the student from the teacher's weights (also when OT is off, so that an
    /// ablation of OT changes one thing only).
    pub init_from_teacher: bool,
    pub teacher: TeacherConfig,
}

impl Default for OtConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.1,
            weight_schedule: None,
            epsilon: 0.05,
            max_iter: 50,
            tol: 1e-3,
            cost: CostKind::Cosine,
            detach_plan: false,
            batch_size: 16,
            init_from_teacher: false,
            teacher: TeacherConfig::default(),
        }
    }
}

/// The English teacher: the same model preset trained on monolingual pairs only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            batch_size: 32,
            lr: 2e-3,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// Documents retrieved per query (at least 100, for R@100).
    pub top_k: usize,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self { top_k: 100 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// The baseline grid point, by its axis values, e.g. `{schedule: constant}`.
    pub baseline: BTreeMap<String, serde_json::Value>,
    /// t | wilcoxon | randomization | bootstrap | tukey
    pub test: TestKind,
    /// none | bonferroni | holm | bh | by
    pub correction: Correction,
    /// Monte Carlo permutations of the randomization test (exact enumeration for small n).
    pub permutations: usize,
    pub bootstrap_samples: usize,
    /// Seed of the randomization and bootstrap tests.
    pub seed: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            baseline: BTreeMap::new(),
            test: TestKind::T,
            correction: Correction::Holm,
            permutations: 10_000,
            bootstrap_samples: 10_000,
            seed: 42,
        }
    }
}

/// A schedule as written: a name to look up under `schedules/`, or inline.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleSpec {
    Named(String),
    Inline(Schedule),
}

impl Serialize for ScheduleSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ScheduleSpec::Named(name) => s.serialize_str(name),
            ScheduleSpec::Inline(schedule) => schedule.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = ScheduleSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a schedule name (a file under schedules/) or an inline schedule such as {kind: linear, start: 0, end: 1}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ScheduleSpec, E> {
                Ok(ScheduleSpec::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<ScheduleSpec, A::Error> {
                Schedule::deserialize(de::value::MapAccessDeserializer::new(map)).map(ScheduleSpec::Inline)
            }
        }
        d.deserialize_any(SpecVisitor)
    }
}

/// A loaded experiment and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    pub experiment: Experiment,
    pub source: PathBuf,
}

/// One `--set key.path=value` flag as a figment provider, so errors name it as their source.
struct SetFlag(String, serde_yaml::Value);

impl Provider for SetFlag {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("--set {}", self.0))
    }
    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(&self.0, &self.1).data()
    }
}

/// Parses `key.path=value`; the value is read as YAML, so `0.1`, `true`, `[1, 2]` are typed.
pub fn parse_set_flag(flag: &str) -> Result<(String, serde_yaml::Value)> {
    let (key, value) = flag
        .split_once('=')
        .with_context(|| format!("--set {flag}: expected key.path=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!("--set {flag}: expected a dotted key path before `=`");
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(value).with_context(|| format!("--set {flag}: the value is not valid YAML"))?;
    Ok((key.to_string(), value))
}

/// Turns figment's errors into lines that name source, key path and expectation.
fn describe(err: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(p)) => p.display().to_string(),
                    _ => m.name.to_string(),
                })
                .unwrap_or_else(|| "configuration".into());
            let path = e.path.join(".");
            if path.is_empty() {
                format!("{source}: {}", e.kind)
            } else {
                format!("{source}: key `{path}`: {}", e.kind)
            }
        })
        .collect();
    anyhow::anyhow!(lines.join("\n"))
}

/// Loads an experiment file with all layers applied and validates it.
pub fn load(path: &Path, sets: &[String]) -> Result<LoadedExperiment> {
    if !path.is_file() {
        bail!("{}: experiment file not found", path.display());
    }
    let flags = sets.iter().map(|s| parse_set_flag(s)).collect::<Result<Vec<_>>>()?;
    // The default schedule stays out of the defaults layer: figment merges maps key by key,
    // and its keys would leak into an inline schedule of another kind.
    let mut defaults = serde_json::to_value(Experiment::default())?;
    defaults
        .as_object_mut()
        .expect("a struct serializes to a map")
        .remove("schedule");
    let mut figment = Figment::from(Serialized::defaults(defaults))
        .merge(Yaml::file_exact(path))
        .merge(Env::prefixed("CLIRLAB_").split("__").ignore(OPERATIONAL_ENV));
    for (key, value) in flags {
        figment = figment.merge(SetFlag(key, value));
    }
    let mut experiment: Experiment = figment.extract().map_err(describe)?;
    if experiment.name.is_empty() {
        experiment.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    experiment.validate().map_err(|problems| {
        anyhow::anyhow!(
            problems
                .iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    Ok(LoadedExperiment {
        experiment,
        source: path.to_path_buf(),
    })
}

impl Experiment {
    /// The top-level grid keys as a grid of their own.
    pub fn top_grid(&self) -> GridSpec {
        GridSpec {
            ablations: self.ablations.clone(),
            zipped: self.zipped.clone(),
            conditional: self.conditional.clone(),
            exclude: self.exclude.clone(),
            include: self.include.clone(),
        }
    }

    /// Checks values that types cannot express; each problem names its key.
    pub fn validate(&self) -> std::result::Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg);
            }
        };
        check(
            !self.name.is_empty()
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            format!(
                "key `name`: expected letters, digits, '-', '_' or '.', found {:?}",
                self.name
            ),
        );
        check(
            !self.data.languages.is_empty(),
            "key `data.languages`: expected at least one language".into(),
        );
        if let Err(e) = self.data.synthetic.validate() {
            check(false, format!("key `data.synthetic`: {e}"));
        }
        if let ScheduleSpec::Inline(s) = &self.schedule
            && let Err(e) = s.validate()
        {
            check(false, format!("key `schedule`: {e}"));
        }
        check(
            self.model.temperature > 0.0,
            format!(
                "key `model.temperature`: expected > 0, found {}",
                self.model.temperature
            ),
        );
        check(
            self.model.max_len >= 1,
            "key `model.max_len`: expected at least 1".into(),
        );
        check(self.train.steps >= 1, "key `train.steps`: expected at least 1".into());
        check(
            self.train.batch_size >= 2,
            format!(
                "key `train.batch_size`: expected at least 2, found {}",
                self.train.batch_size
            ),
        );
        check(
            self.train.lr > 0.0 && self.train.lr.is_finite(),
            format!("key `train.lr`: expected > 0, found {}", self.train.lr),
        );
        check(
            self.train.weight_decay >= 0.0,
            "key `train.weight_decay`: expected ≥ 0".into(),
        );
        check(
            self.retrieval.top_k >= 100,
            format!(
                "key `retrieval.top_k`: expected at least 100 (R@100 needs it), found {}",
                self.retrieval.top_k
            ),
        );
        check(!self.seeds.is_empty(), "key `seeds`: expected at least one seed".into());
        if let Err(e) = self.device.check_build() {
            check(false, format!("key `device`: {e}"));
        }
        if let Some(c) = self.train.clip_norm {
            check(
                c > 0.0,
                format!("key `train.clip_norm`: expected > 0 or null, found {c}"),
            );
        }
        check(
            self.train.patience == 0 || self.train.eval_every > 0,
            "key `train.patience`: early stopping needs `train.eval_every` > 0".into(),
        );
        let ot = &self.ot;
        check(
            ot.weight >= 0.0 && ot.weight.is_finite(),
            format!("key `ot.weight`: expected ≥ 0, found {}", ot.weight),
        );
        check(
            ot.epsilon > 0.0 && ot.epsilon.is_finite(),
            format!("key `ot.epsilon`: expected > 0, found {}", ot.epsilon),
        );
        check(ot.max_iter >= 1, "key `ot.max_iter`: expected at least 1".into());
        check(ot.tol >= 0.0, format!("key `ot.tol`: expected ≥ 0, found {}", ot.tol));
        check(ot.batch_size >= 1, "key `ot.batch_size`: expected at least 1".into());
        check(
            ot.teacher.steps >= 1,
            "key `ot.teacher.steps`: expected at least 1".into(),
        );
        check(
            ot.teacher.batch_size >= 2,
            "key `ot.teacher.batch_size`: expected at least 2".into(),
        );
        check(ot.teacher.lr > 0.0, "key `ot.teacher.lr`: expected > 0".into());
        if let Some(s) = &ot.weight_schedule
            && let Err(e) = s.validate()
        {
            check(false, format!("key `ot.weight_schedule`: {e}"));
        }
        let grids = std::iter::once((String::new(), self.top_grid()))
            .chain(self.grids.iter().map(|(name, g)| (format!("grids.{name}."), g.clone())));
        for (at, grid) in grids {
            let conditional = grid
                .conditional
                .iter()
                .enumerate()
                .map(|(c, block)| (format!("{at}conditional[{c}]."), &block.ablations));
            for (at, axes) in std::iter::once((at.clone(), &grid.ablations)).chain(conditional) {
                for (axis, values) in axes {
                    check(
                        !values.is_empty(),
                        format!("key `{at}ablations.{axis}`: expected a non-empty list of values"),
                    );
                    check(
                        axis != "seeds" && axis != "ablations" && axis != "grids",
                        format!("key `{at}ablations.{axis}`: use `seeds` to replicate cells"),
                    );
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// Where named schedules are looked up for an experiment file: `schedules/` beside the
/// experiments folder, beside the file, then in the working directory.
pub fn schedule_dirs(experiment_file: &Path) -> Vec<PathBuf> {
    let dir = experiment_file.parent().unwrap_or(Path::new("."));
    let mut dirs = vec![
        dir.join("..").join("schedules"),
        dir.join("schedules"),
        PathBuf::from("schedules"),
    ];
    dirs.dedup();
    dirs
}

/// Loads a schedule from a file path, or by name from the first of `dirs` that has it.
pub fn load_schedule(name_or_path: &str, dirs: &[PathBuf]) -> Result<Schedule> {
    let direct = Path::new(name_or_path);
    let path = if direct.is_file() {
        direct.to_path_buf()
    } else {
        let file = format!("{name_or_path}.yaml");
        dirs.iter()
            .map(|d| d.join(&file))
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "schedule `{name_or_path}` not found: looked for {}",
                    dirs.iter()
                        .map(|d| d.join(&file).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let schedule: Schedule = serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    schedule
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "exp.yaml", "train:\n  steps: 50\n  lr: 0.01\n");
        let e = load(&p, &["train.lr=0.02".into(), "seeds=[3, 4]".into()])
            .unwrap()
            .experiment;
        assert_eq!(e.name, "exp");
        assert_eq!(e.train.steps, 50);
        assert_eq!(e.train.lr, 0.02);
        assert_eq!(e.seeds, vec![3, 4]);
        assert_eq!(e.train.batch_size, TrainConfig::default().batch_size);
    }

    #[test]
    fn misspelled_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "typo.yaml", "train:\n  lerning_rate: 0.01\n");
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("lerning_rate") && err.contains("typo.yaml") && err.contains("train"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_key_and_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.yaml", "train:\n  steps: many\n");
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("train.steps") && err.contains("expected"),
            "{err}"
        );
        let err = load(&write(dir.path(), "ok.yaml", ""), &["model.preset=huge".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--set") && err.contains("model.preset") && err.contains("huge"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "v.yaml",
            "retrieval:\n  top_k: 10\nschedule: {kind: step, milestones: [0.5], values: [0.1]}\n",
        );
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("retrieval.top_k") && err.contains("key `schedule`"),
            "{err}"
        );
    }

    #[test]
    fn schedules_inline_or_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "schedules/ramp.yaml", "kind: linear\nstart: 0\nend: 1\n");
        let p = write(dir.path(), "experiments/e.yaml", "schedule: ramp\n");
        let e = load(&p, &[]).unwrap().experiment;
        assert_eq!(e.schedule, ScheduleSpec::Named("ramp".into()));
        let s = load_schedule("ramp", &schedule_dirs(&p)).unwrap();
        assert_eq!(s, Schedule::Linear { start: 0.0, end: 1.0 });
        let err = load_schedule("nope", &schedule_dirs(&p)).unwrap_err().to_string();
        assert!(
            err.contains("schedule `nope` not found") && err.contains("nope.yaml"),
            "{err}"
        );
        let p = write(
            dir.path(),
            "experiments/i.yaml",
            "schedule: {kind: exponential, start: 0, end: 1, rate: 2}\n",
        );
        assert!(matches!(
            load(&p, &[]).unwrap().experiment.schedule,
            ScheduleSpec::Inline(Schedule::Exponential { .. })
        ));
    }

    #[test]
    fn set_flags_need_a_key_and_a_value() {
        assert!(
            parse_set_flag("novalue")
                .unwrap_err()
                .to_string()
                .contains("key.path=value")
        );
        assert!(parse_set_flag("a..b=1").is_err());
        assert_eq!(parse_set_flag("a.b=0.5").unwrap().1, serde_yaml::Value::from(0.5));
    }
}
