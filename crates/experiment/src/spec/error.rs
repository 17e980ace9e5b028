//! The configuration error: every problem names its source (the experiment or schedule file,
//! the `CLIRLAB_*` variable, or the `--set key=value` flag), the key path, what was expected
//! and what was found.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// An experiment or schedule file.
    File(PathBuf),
    /// A `CLIRLAB_*` environment variable, by its name (e.g. `CLIRLAB_TRAIN__LR`).
    Env(String),
    /// A `--set key.path=value` flag, as written after `--set`.
    SetFlag(String),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Env(name) => write!(f, "environment variable {name}"),
            ConfigSource::SetFlag(flag) => write!(f, "--set {flag}"),
        }
    }
}

/// What kind of problem a [`Problem`] is; mirrors figment's error kinds, plus the checks of
/// [`Experiment::validate`](super::Experiment::validate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A value of the wrong type (a string where a number belongs).
    InvalidType,
    /// A value of the right type that is not accepted.
    InvalidValue,
    /// A list or map with too many or too few entries.
    InvalidLength,
    /// A variant name that the key does not know.
    UnknownVariant,
    /// A key that the schema does not have (a typo, usually).
    UnknownField,
    /// A required key that is absent.
    MissingField,
    /// A key given twice.
    DuplicateField,
    /// A value the schema accepts by type but the experiment cannot use (out of range,
    /// inconsistent with another key).
    Invalid,
    /// A message from a deserializer that fits none of the above, kept as written.
    Other(String),
}

impl ProblemKind {
    fn label(&self) -> Option<&'static str> {
        Some(match self {
            ProblemKind::InvalidType => "invalid type",
            ProblemKind::InvalidValue => "invalid value",
            ProblemKind::InvalidLength => "invalid length",
            ProblemKind::UnknownVariant => "unknown variant",
            ProblemKind::UnknownField => "unknown field",
            ProblemKind::MissingField => "missing field",
            ProblemKind::DuplicateField => "duplicate field",
            ProblemKind::Invalid | ProblemKind::Other(_) => return None,
        })
    }
}

/// One problem of a configuration: its source, key path, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the offending value came from; `None` until [`load`](super::load) attributes it
    /// (a check of an experiment built in memory has no source).
    pub source: Option<ConfigSource>,
    /// The dotted key path (`train.lr`); empty for the document as a whole.
    pub key: String,
    /// What kind of problem it is.
    pub kind: ProblemKind,
    /// What the key expects (`> 0`, `u64`, `one of auto, cpu`); empty for
    /// [`ProblemKind::Other`].
    pub expected: String,
    /// What was found, when there is a value to show.
    pub found: Option<String>,
}

impl Problem {
    /// A value that fails a check: `key` expects `expected`, and `found` was given.
    pub fn invalid(key: impl Into<String>, expected: impl Into<String>, found: Option<String>) -> Self {
        Problem {
            source: None,
            key: key.into(),
            kind: ProblemKind::Invalid,
            expected: expected.into(),
            found,
        }
    }

    /// A problem of `key` told by a message of its own (a schedule's check says which
    /// parameter is wrong and why).
    pub fn other(key: impl Into<String>, message: String) -> Self {
        Problem {
            source: None,
            key: key.into(),
            kind: ProblemKind::Other(message),
            expected: String::new(),
            found: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(source) = &self.source {
            write!(f, "{source}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        if let ProblemKind::Other(message) = &self.kind {
            return f.write_str(message);
        }
        if let Some(label) = self.kind.label() {
            write!(f, "{label}: ")?;
        }
        write!(f, "expected {}", self.expected)?;
        if let Some(found) = &self.found {
            write!(f, ", found {found}")?;
        }
        Ok(())
    }
}

/// An error loading an experiment or a schedule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The experiment file does not exist (or is not a file).
    #[error("{}: experiment file not found", .0.display())]
    NotFound(PathBuf),
    /// An experiment path that is a folder; its YAML files are listed.
    #[error("{}: a folder, expected an experiment file{}", path.display(), if files.is_empty() { " (it holds no .yaml file)".to_string() } else { format!("; it holds {}", files.join(", ")) })]
    IsFolder {
        /// The folder.
        path: PathBuf,
        /// The `.yaml` files in it, by name.
        files: Vec<String>,
    },
    /// A named schedule is in none of the folders looked in.
    #[error("schedule `{name}` not found: looked for {}", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    ScheduleNotFound {
        /// The schedule's name as written.
        name: String,
        /// The files looked for, in order.
        looked: Vec<PathBuf>,
    },
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// One or more values are wrong; one line per problem.
    #[error("{}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems with their sources and key paths (empty for a missing or unreadable file).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

impl From<Problem> for ConfigError {
    fn from(problem: Problem) -> Self {
        ConfigError::Invalid(vec![problem])
    }
}

/// One figment error as a [`Problem`]; `source` names the provider of the offending value.
pub(super) fn from_figment(e: &figment::Error, source: ConfigSource) -> Problem {
    use figment::error::Kind;
    let mut key = e.path.join(".");
    let join = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let (kind, expected, found) = match &e.kind {
        Kind::InvalidType(actual, expected) => (ProblemKind::InvalidType, expected.clone(), Some(actual.to_string())),
        Kind::InvalidValue(actual, expected) => (ProblemKind::InvalidValue, expected.clone(), Some(actual.to_string())),
        Kind::InvalidLength(n, expected) => (ProblemKind::InvalidLength, expected.clone(), Some(n.to_string())),
        Kind::UnknownVariant(name, known) => (
            ProblemKind::UnknownVariant,
            format!("one of {}", join(known)),
            Some(format!("`{name}`")),
        ),
        Kind::UnknownField(name, known) => {
            let expected = if known.is_empty() {
                "no fields".to_string()
            } else {
                format!("one of {}", join(known))
            };
            // The key path names the unknown key itself.
            key = if key.is_empty() {
                name.clone()
            } else {
                format!("{key}.{name}")
            };
            (ProblemKind::UnknownField, expected, Some(format!("`{name}`")))
        }
        Kind::MissingField(name) => {
            key = if key.is_empty() {
                name.to_string()
            } else {
                format!("{key}.{name}")
            };
            (ProblemKind::MissingField, format!("a value for `{name}`"), None)
        }
        Kind::DuplicateField(name) => (ProblemKind::DuplicateField, format!("`{name}` once"), None),
        Kind::Message(message) => match message
            .strip_prefix("expected ")
            .and_then(|rest| rest.rsplit_once(", found "))
        {
            Some((expected, found)) => (ProblemKind::Invalid, expected.to_string(), Some(found.to_string())),
            None => (ProblemKind::Other(message.clone()), String::new(), None),
        },
        other => (ProblemKind::Other(other.to_string()), String::new(), None),
    };
    Problem {
        source: Some(source),
        key,
        kind,
        expected,
        found,
    }
}
