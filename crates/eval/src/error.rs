//! The evaluation crate's errors, typed, so a caller can tell a bad line of a file from an
//! unreadable file, a wrong measure or data that breaks the rules of qrels and runs.

use std::path::PathBuf;

/// A line of a qrels or run file that does not parse: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    /// The file (or the name that stands for it).
    pub file: String,
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl ParseError {
    /// The error of line `line` of `file`.
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// What went wrong in reading, building or evaluating qrels and runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of a file does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A file (or the named source) cannot be read.
    #[error("cannot read {what}")]
    Read {
        /// What was read: `qrels file PATH`, or a source's name.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A measure name that trec_eval does not know or this port does not implement, or
    /// parameters it cannot take.
    #[error("{0}")]
    Measure(String),
    /// A measure specification with parameters that do not parse.
    #[error("invalid measure {spec:?}: {reason}")]
    InvalidMeasure {
        /// The specification as given (`P.5,x`).
        spec: String,
        /// What is wrong with its parameters.
        reason: String,
    },
    /// Data that breaks the rules of qrels or runs (a document listed twice, a NaN score, an
    /// id with whitespace, no judged topic retrieved, two runs of one name).
    #[error("{0}")]
    Invalid(String),
    /// An error in evaluating one run file of several.
    #[error("evaluating run file {}", path.display())]
    InRun {
        /// The run file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The error of reading `what`.
    pub(crate) fn read(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Read { what, source }
    }
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
