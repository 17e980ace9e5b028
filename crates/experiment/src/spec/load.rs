//! Loading an experiment: figment layers built-in defaults < the YAML file < `CLIRLAB_*`
//! environment variables (nested with `__`) < `--set key.path=value` flags; and loading named
//! schedules from `schedules/`.

use super::error::{ConfigError, ConfigSource, Problem, ProblemKind, from_figment};
use super::preflight;
use super::schema::{Experiment, LoadedExperiment};
use crate::schedule::Schedule;
use figment::providers::{Env, Format, Serialized, Yaml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use std::path::{Path, PathBuf};

/// `CLIRLAB_*` variables that steer the program (or its tests) rather than set experiment keys.
pub const OPERATIONAL_ENV: &[&str] = &[
    "log",
    "offline",
    "data_dir",
    "require_chromium",
    "kernels",
    "require_transformers",
    "python",
    "blas",
    "blas_under_test",
    // Read by the scripts (GPU build, Slurm CI), which run the program with them set.
    "cuda_arch",
    "cuda_env",
    "cuda_spec",
    "slurm_ci_dir",
    "slurm_ci_steps",
];

/// The `CLIRLAB_*` variables of the environment that set experiment keys, checked: a name
/// with an empty part (`CLIRLAB_TRAIN__`, `CLIRLAB___`) would be dropped by figment without
/// a word. Each bad name is a problem naming the variable.
fn env_key_problems() -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_lowercase();
        if OPERATIONAL_ENV.contains(&lower.as_str()) {
            continue;
        }
        if lower.is_empty()
            || lower
                .split("__")
                .any(|part| part.is_empty() || part.starts_with('_') || part.ends_with('_'))
        {
            let mut p = Problem::invalid(
                "",
                format!(
                    "a variable named {ENV_PREFIX}<SECTION>__<KEY> (e.g. CLIRLAB_TRAIN__STEPS) or one of {}",
                    OPERATIONAL_ENV
                        .iter()
                        .map(|v| format!("{ENV_PREFIX}{}", v.to_uppercase()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(format!("{name:?}, whose key has an empty part")),
            );
            p.source = Some(ConfigSource::Env(name.into_owned()));
            problems.push(p);
        }
    }
    problems
}

/// Every non-finite number of the merged configuration, as a problem naming its key and the
/// file, variable or flag that set it: JSON, through which cells are planned, has no NaN or
/// infinity, so one would come back as `null` and be blamed on another key.
fn non_finite_problems(figment: &Figment, file: &Path) -> Vec<Problem> {
    fn walk(value: &figment::value::Value, key: String, found: &mut Vec<(String, f64)>) {
        use figment::value::{Num, Value};
        match value {
            Value::Dict(_, map) => {
                for (k, v) in map {
                    walk(
                        v,
                        if key.is_empty() {
                            k.clone()
                        } else {
                            format!("{key}.{k}")
                        },
                        found,
                    );
                }
            }
            Value::Array(_, items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{key}[{i}]"), found);
                }
            }
            Value::Num(_, Num::F64(x)) if !x.is_finite() => found.push((key, *x)),
            Value::Num(_, Num::F32(x)) if !x.is_finite() => found.push((key, f64::from(*x))),
            _ => {}
        }
    }
    let Ok(value) = figment.extract::<figment::value::Value>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    walk(&value, String::new(), &mut found);
    found
        .into_iter()
        .map(|(key, x)| {
            let mut p = Problem::invalid(key.clone(), "a finite number", Some(x.to_string()));
            p.source = Some(source_of(metadata_for(figment, &key), &key, file));
            p
        })
        .collect()
}

/// The prefix of the environment variables that set experiment keys.
const ENV_PREFIX: &str = "CLIRLAB_";

/// The name of the metadata of a [`SetFlag`] provider starts so.
const SET_FLAG_NAME: &str = "--set ";

/// One `--set key.path=value` flag as a figment provider, so errors name it as their source:
/// the flag as written, its key path and its value.
struct SetFlag {
    flag: String,
    key: String,
    value: serde_yaml::Value,
}

impl Provider for SetFlag {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("{SET_FLAG_NAME}{}", self.flag))
    }
    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(&self.key, &self.value).data()
    }
}

/// A malformed `--set` flag: the flag names itself as the source.
fn bad_flag(flag: &str, expected: &str, found: Option<String>) -> ConfigError {
    Problem {
        source: Some(ConfigSource::SetFlag(flag.to_string())),
        key: String::new(),
        kind: ProblemKind::Invalid,
        expected: expected.to_string(),
        found,
    }
    .into()
}

/// Parses `key.path=value`; the value is read as YAML, so `0.1`, `true`, `[1, 2]` are typed.
pub fn parse_set_flag(flag: &str) -> Result<(String, serde_yaml::Value), ConfigError> {
    let Some((key, value)) = flag.split_once('=') else {
        return Err(bad_flag(flag, "key.path=value", None));
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad_flag(flag, "a dotted key path before `=`", Some(format!("{key:?}"))));
    }
    if preflight::too_deep(value).is_some() {
        return Err(bad_flag(
            flag,
            &format!("a YAML value nested at most {} deep", preflight::MAX_DEPTH),
            None,
        ));
    }
    let value: serde_yaml::Value = serde_yaml::from_str(value).map_err(|e| {
        bad_flag(
            flag,
            "a YAML value after `=`",
            Some(format!("{value:?} (the value is not valid YAML: {e})")),
        )
    })?;
    Ok((key.to_string(), value))
}

/// The `CLIRLAB_*` variable that sets `key` (figment lowercases the names and splits them at
/// `__`), if one does.
fn env_variable(key: &str) -> Option<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .find(|name| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.to_lowercase().split("__").collect::<Vec<_>>().join(".") == key)
        })
}

/// The source a provider's metadata names for a value at `key`; a value of the built-in
/// defaults (or of no known provider) is blamed on the experiment file, which could have set it.
fn source_of(metadata: Option<&Metadata>, key: &str, file: &Path) -> ConfigSource {
    let Some(m) = metadata else {
        return ConfigSource::File(file.to_path_buf());
    };
    if let Some(figment::Source::File(p)) = &m.source {
        return ConfigSource::File(p.clone());
    }
    if let Some(flag) = m.name.strip_prefix(SET_FLAG_NAME) {
        return ConfigSource::SetFlag(flag.to_string());
    }
    if m.name.contains("environment variable") {
        // The error may point at a key inside the variable's value, so try the parents too.
        let parts: Vec<&str> = key.split('.').collect();
        let found = (1..=parts.len())
            .rev()
            .find_map(|n| env_variable(&parts[..n].join(".")));
        return ConfigSource::Env(
            found.unwrap_or_else(|| format!("{ENV_PREFIX}{}", key.to_uppercase().replace('.', "__"))),
        );
    }
    ConfigSource::File(file.to_path_buf())
}

/// The provider that set `key` (or, when `key` is not a value of its own, its nearest parent).
fn metadata_for<'a>(figment: &'a Figment, key: &str) -> Option<&'a Metadata> {
    // A list entry (`references[1].bm25.k1`) is looked up as a path, and then by its parents.
    let key = key.replace('[', ".").replace(']', "");
    let parts: Vec<&str> = key.split('.').collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| figment.find_metadata(&parts[..n].join(".")))
}

/// Turns figment's errors into problems that name source, key path, expectation and finding.
fn describe(err: figment::Error, file: &Path) -> ConfigError {
    ConfigError::Invalid(
        err.into_iter()
            .map(|e| {
                let path = e.path.join(".");
                from_figment(&e, source_of(e.metadata.as_ref(), &path, file))
            })
            .collect(),
    )
}

/// Loads an experiment file with all layers applied and validates it. Every problem names
/// the source of the offending value: the file, the `CLIRLAB_*` variable or the `--set` flag.
pub fn load(path: &Path, sets: &[String]) -> Result<LoadedExperiment, ConfigError> {
    if path.is_dir() {
        let mut files: Vec<String> = std::fs::read_dir(path)
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
            .collect();
        files.sort();
        return Err(ConfigError::IsFolder {
            path: path.to_path_buf(),
            files,
        });
    }
    if let Some(err) = preflight::not_a_regular_file(path, "an experiment file (a YAML file)") {
        return Err(err);
    }
    if !path.is_file() {
        return Err(ConfigError::NotFound(path.to_path_buf()));
    }
    // Figment would take an empty file for the defaults and a duplicate key's last value.
    let (_, document) = preflight::read_checked(path)?;
    if preflight::is_empty(&document) {
        let mut p = Problem::other(
            "",
            "expected an experiment (a map of keys such as `name`, `train`, `seeds`), found an empty document".into(),
        );
        p.source = Some(ConfigSource::File(path.to_path_buf()));
        return Err(p.into());
    }
    let flags = sets
        .iter()
        .map(|s| parse_set_flag(s).map(|(key, value)| (s.clone(), key, value)))
        .collect::<Result<Vec<_>, _>>()?;
    // The default schedule stays out of the defaults layer: figment merges maps key by key,
    // and its keys would leak into an inline schedule of another kind.
    let mut defaults = serde_json::to_value(Experiment::default()).expect("the defaults serialize");
    defaults
        .as_object_mut()
        .expect("a struct serializes to a map")
        .remove("schedule");
    let mut figment = Figment::from(Serialized::defaults(defaults))
        .merge(Yaml::file_exact(path))
        .merge(Env::prefixed(ENV_PREFIX).split("__").ignore(OPERATIONAL_ENV));
    for (flag, key, value) in flags {
        figment = figment.merge(SetFlag { flag, key, value });
    }
    let problems = env_key_problems();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let mut experiment: Experiment = figment.extract().map_err(|e| describe(e, path))?;
    let problems = non_finite_problems(&figment, path);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    if experiment.name.is_empty() {
        experiment.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    // A folder backbone is read here (its fingerprint and layers), before the checks need them.
    if let Err(e) = experiment.model.resolve_backbone() {
        let mut p = Problem::other("model.backbone", format!("{e:#}"));
        p.source = Some(source_of(
            metadata_for(&figment, "model.backbone"),
            "model.backbone",
            path,
        ));
        return Err(ConfigError::Invalid(vec![p]));
    }
    experiment.validate().map_err(|err| match err {
        ConfigError::Invalid(problems) => ConfigError::Invalid(
            problems
                .into_iter()
                .map(|mut p| {
                    p.source = Some(source_of(metadata_for(&figment, &p.key), &p.key, path));
                    p
                })
                .collect(),
        ),
        other => other,
    })?;
    Ok(LoadedExperiment {
        experiment,
        source: path.to_path_buf(),
    })
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
pub fn load_schedule(name_or_path: &str, dirs: &[PathBuf]) -> Result<Schedule, ConfigError> {
    let direct = Path::new(name_or_path);
    // A FIFO would block the read for ever; a folder, a device or a link loop is not "not found".
    if let Some(err) = preflight::not_a_regular_file(direct, "a schedule file (a YAML file)") {
        return Err(err);
    }
    if direct.is_dir() && name_or_path.contains('/') {
        return Err(preflight::in_file(
            direct,
            "a folder, expected a schedule file (a YAML file)".into(),
        ));
    }
    let path = if direct.is_file() {
        direct.to_path_buf()
    } else {
        let file = format!("{name_or_path}.yaml");
        let looked: Vec<PathBuf> = dirs.iter().map(|d| d.join(&file)).collect();
        match looked.iter().find(|p| p.is_file()) {
            Some(p) => p.clone(),
            None => {
                return Err(ConfigError::ScheduleNotFound {
                    name: name_or_path.to_string(),
                    looked,
                });
            }
        }
    };
    if let Some(err) = preflight::not_a_regular_file(&path, "a schedule file (a YAML file)") {
        return Err(err);
    }
    let (text, document) = preflight::read_checked(&path)?;
    let in_file = |message: String| preflight::in_file(&path, message);
    if document.is_null() {
        return Err(in_file(
            "expected a schedule (a map such as `kind: linear`, `start: 0`, `end: 1`), found an empty document".into(),
        ));
    }
    let schedule: Schedule = serde_yaml::from_str(&text).map_err(|e| in_file(e.to_string()))?;
    schedule.validate().map_err(|e| in_file(e.to_string()))?;
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ScheduleSpec, TrainConfig};

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
        let err = load(
            &write(dir.path(), "ok.yaml", "seeds: [1]\n"),
            &["model.preset=huge".into()],
        )
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
    fn problems_name_the_layer_that_set_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "nan.yaml", "train:\n  lr: .nan\n  batch_size: 1\n");
        let err = load(&p, &["train.lr=-1".into()]).unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 2, "{err}");
        let lr = problems.iter().find(|p| p.key == "train.lr").unwrap();
        assert_eq!(lr.source, Some(ConfigSource::SetFlag("train.lr=-1".into())));
        assert_eq!((lr.expected.as_str(), lr.found.as_deref()), ("> 0", Some("-1")));
        let batch = problems.iter().find(|p| p.key == "train.batch_size").unwrap();
        assert_eq!(batch.source, Some(ConfigSource::File(p.clone())));
        assert_eq!(batch.found.as_deref(), Some("1"));
        let text = err.to_string();
        assert!(
            text.contains("--set train.lr=-1: key `train.lr`: expected > 0, found -1")
                && text.contains("nan.yaml: key `train.batch_size`: expected at least 2, found 1"),
            "{text}"
        );
        // A type error from a flag names the flag, with what was expected and found.
        let err = load(&p, &["train.steps=many".into()]).unwrap_err();
        let problem = &err.problems()[0];
        assert_eq!(problem.source, Some(ConfigSource::SetFlag("train.steps=many".into())));
        assert_eq!(
            (problem.key.as_str(), &problem.kind),
            ("train.steps", &ProblemKind::InvalidType)
        );
        assert!(problem.found.as_deref().unwrap().contains("many"), "{problem}");
    }

    #[test]
    fn names_are_one_folder_under_the_results_root() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["..", ".", ".hidden", "a/b"] {
            let p = write(dir.path(), "e.yaml", &format!("name: {name:?}\n"));
            let err = load(&p, &[]).unwrap_err();
            assert_eq!(err.problems()[0].key, "name", "{name}: {err}");
            assert!(err.to_string().contains("e.yaml: key `name`"), "{err}");
        }
        // A file named `..yaml` names its experiment `.` (its stem), refused too.
        let p = write(dir.path(), "..yaml", "seeds: [1]\n");
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(err.contains("key `name`") && err.contains("found \".\""), "{err}");
        let p = write(dir.path(), "ok.yaml", "name: v1.2\n");
        assert_eq!(load(&p, &[]).unwrap().experiment.name, "v1.2");
    }

    #[test]
    fn empty_files_duplicates_and_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "# nothing\n", "{}\n"] {
            let err = load(&write(dir.path(), "empty.yaml", text), &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("empty.yaml: expected an experiment") && err.contains("empty document"),
                "{err}"
            );
        }
        let p = write(dir.path(), "dup.yaml", "train:\n  lr: 0.1\n  lr: 0.2\n  lerning: 1\n");
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("dup.yaml: train: duplicate entry with key \"lr\" at line 2"),
            "{err}"
        );
        write(dir.path(), "exps/a.yaml", "seeds: [1]\n");
        let err = load(&dir.path().join("exps"), &[]).unwrap_err().to_string();
        assert!(
            err.contains("exps: a folder, expected an experiment file; it holds a.yaml"),
            "{err}"
        );
        let p = write(dir.path(), "s.yaml", "seeds: [1, 1]\nstats:\n  permutations: 0\n");
        let err = load(&p, &[]).unwrap_err();
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["seeds", "stats.permutations"], "{err}");
        assert!(
            err.to_string().contains("s.yaml: key `seeds`: expected distinct seeds"),
            "{err}"
        );
        let p = write(dir.path(), "w.yaml", "train:\n  steps: 5\n  warmup_steps: 6\n");
        let err = load(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("w.yaml: key `train.warmup_steps`") && err.contains("found 6"),
            "{err}"
        );
        write(dir.path(), "schedules/wide.yaml", "kind: linear\nstart: 2\nend: 1\n");
        let err = load_schedule("wide", &[dir.path().join("schedules")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("wide.yaml") && err.contains("`start`") && err.contains("[0, 1]"),
            "{err}"
        );
    }

    /// Pieces of YAML and of this schema, for the generated inputs.
    const YAML: &[&str] = &[
        "train",
        "model",
        "seeds",
        "ablations",
        "schedule",
        "name",
        "lr",
        "steps",
        "kind",
        "linear",
        ".",
        "=",
        ":",
        ": ",
        "\n",
        "\n  ",
        "  ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "0",
        "1",
        "0.1",
        "-3",
        "1e309",
        ".nan",
        ".inf",
        "~",
        "null",
        "true",
        "abc",
        "'",
        "\"",
        "&a ",
        "*a",
        "<<: ",
        "!!str ",
        "|",
        ">",
        "#",
        "%YAML 1.2\n",
        "---\n",
        "? ",
        "@",
        "`",
    ];

    #[test]
    fn generated_inputs_never_panic_and_every_error_names_its_source() {
        let mut fuzz = clirlab_util::fuzz::Fuzz::new(16);
        // `--set` flags alone, and with an experiment.
        for _ in 0..60_000 {
            let flag = fuzz.text(YAML, 12);
            if let Err(e) = parse_set_flag(&flag) {
                let source = Some(ConfigSource::SetFlag(flag.clone()));
                assert!(e.problems().iter().all(|p| p.source == source), "{flag:?}: {e}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "f.yaml", "seeds: [1]\n");
        for _ in 0..3_000 {
            let flag = format!("{}={}", fuzz.text(YAML, 3), fuzz.text(YAML, 6));
            if let Err(e) = load(&file, std::slice::from_ref(&flag)) {
                assert!(!e.problems().is_empty(), "{flag:?}: {e}");
                assert!(e.problems().iter().all(|p| p.source.is_some()), "{flag:?}: {e}");
            }
        }
        // Experiment files: the text checks, and the whole load.
        for i in 0..40_000 {
            let text = fuzz.text(YAML, 30);
            std::fs::write(&file, &text).unwrap();
            let outcome = if i % 4 == 0 {
                load(&file, &[]).map(|_| ())
            } else {
                preflight::read_checked(&file).map(|_| ())
            };
            if let Err(e) = outcome {
                assert!(!e.problems().is_empty(), "{text:?}: {e}");
                assert!(e.problems().iter().all(|p| p.source.is_some()), "{text:?}: {e}");
                assert!(e.to_string().contains("f.yaml"), "{text:?}: {e}");
            }
        }
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
        let deep = format!("a={}", "[".repeat(100_000));
        assert!(
            parse_set_flag(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested at most")
        );
        assert_eq!(parse_set_flag("a.b=0.5").unwrap().1, serde_yaml::Value::from(0.5));
    }
}

#[cfg(test)]
mod reference_tests {
    use super::super::schema::*;

    fn load_text(text: &str) -> (tempfile::TempDir, Result<Experiment, String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refs.yaml");
        std::fs::write(&path, text).unwrap();
        let loaded = crate::spec::load(&path, &[])
            .map(|l| l.experiment)
            .map_err(|e| e.to_string());
        (dir, loaded)
    }

    #[test]
    fn references_are_read_in_every_form() {
        let (_d, e) = load_text("model: {backbone: me5-small}\nreferences: [bm25, zero_shot]\n");
        let e = e.unwrap();
        assert_eq!(
            e.references,
            [Reference::Bm25(Bm25Params::default()), Reference::ZeroShot]
        );
        assert_eq!(Bm25Params::default(), Bm25Params { k1: 1.2, b: 0.75 });
        let (_d, e) = load_text("references: [{bm25: {k1: 0.9, b: 0.4}}, {bm25: {b: 0.3}}]\n");
        let e = e.unwrap_err();
        // The same reference twice is refused, naming the second entry.
        assert!(
            e.contains("refs.yaml: key `references[1]`: expected each reference once"),
            "{e}"
        );
        let (_d, e) = load_text("references: [{bm25: {k1: 0.9, b: 0.4}}]\n");
        let e = e.unwrap();
        assert_eq!(e.references, [Reference::Bm25(Bm25Params { k1: 0.9, b: 0.4 })]);
        // What is written reads back the same.
        let back: Experiment = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back.references, e.references);
        // No references by default, and none in the serialised experiment.
        let plain = Experiment::default();
        assert!(plain.references.is_empty());
        assert!(serde_json::to_value(&plain).unwrap().get("references").is_none());
    }

    #[test]
    fn retrieval_settings_are_read_checked_and_the_default_not_written() {
        let (_d, e) = load_text("retrieval: {settings: [multilingual, cross_lingual, monolingual]}\n");
        let e = e.unwrap();
        assert_eq!(
            e.retrieval.settings,
            [
                RetrievalSetting::Multilingual,
                RetrievalSetting::CrossLingual,
                RetrievalSetting::Monolingual
            ]
        );
        let written = serde_json::to_value(&e.retrieval).unwrap();
        assert_eq!(written["settings"][0], "multilingual");
        let plain = serde_json::to_value(RetrievalConfig::default()).unwrap();
        assert_eq!(plain, serde_json::json!({"top_k": 100}));
        let (_d, e) = load_text("retrieval: {settings: [cross_lingual, bilingual]}\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml") && e.contains("retrieval.settings") && e.contains("`bilingual`"),
            "{e}"
        );
        assert!(e.contains("`monolingual`") && e.contains("`multilingual`"), "{e}");
        let (_d, e) = load_text("retrieval: {settings: [monolingual]}\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml: key `retrieval.settings`: expected a list that includes `cross_lingual`"),
            "{e}"
        );
        let (_d, e) = load_text("retrieval: {settings: [cross_lingual, cross_lingual]}\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("key `retrieval.settings[1]`: expected each setting once"),
            "{e}"
        );
    }

    #[test]
    fn bad_references_name_the_file_key_and_expectation() {
        let (_d, e) = load_text("references: [bm52]\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml") && e.contains("references") && e.contains("bm25"),
            "{e}"
        );
        assert!(e.contains("bm52") && e.contains("zero_shot"), "{e}");
        let (_d, e) = load_text("references: [zero_shot]\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml: key `references[0]`: expected `model.backbone` set"),
            "{e}"
        );
        let (_d, e) = load_text("references: [{bm25: {k1: -1}}]\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml: key `references[0].bm25.k1`: expected a number >= 0, found -1"),
            "{e}"
        );
        let (_d, e) = load_text("references: [{bm25: {b: 1.5}}]\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml: key `references[0].bm25.b`: expected a number in [0, 1], found 1.5"),
            "{e}"
        );
        let (_d, e) = load_text("references: [{bm25: {k: 1}}]\n");
        let e = e.unwrap_err();
        assert!(
            e.contains("refs.yaml") && e.contains("unknown field") && e.contains("`k`"),
            "{e}"
        );
    }
}
