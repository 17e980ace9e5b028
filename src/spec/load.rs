//! Loading an experiment: figment layers built-in defaults < the YAML file < `CLIRLAB_*`
//! environment variables (nested with `__`) < `--set key.path=value` flags; and loading named
//! schedules from `schedules/`.

use super::schema::{Experiment, LoadedExperiment};
use crate::schedule::Schedule;
use anyhow::{Context, Result, bail};
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
];

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
