//! The helpers' errors, typed: a file operation that failed (with the path and what was being
//! done), a path or lock file the program refuses, and an event file that does not read back.

/// What went wrong in a helper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed: `what` names it and its path (`writing results/x.json`).
    #[error("{what}")]
    Io {
        /// The operation and its path.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path or lock file the program will not use as it is (a symbolic link where a folder
    /// belongs, a lock that is not one of this program's).
    #[error("{0}")]
    Refused(String),
    /// A TensorBoard event file whose records do not read back.
    #[error("{0}")]
    Corrupt(String),
    /// A value that does not serialise to JSON.
    #[error("serialising JSON")]
    Json(#[from] serde_json::Error),
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the operation of a failed I/O call: `io_result.doing(|| format!("writing {path}"))`.
pub(crate) trait Doing<T> {
    /// The result, its error as [`Error::Io`] with `what` as the operation.
    fn doing(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Doing<T> for std::result::Result<T, E> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: what(),
            source: e.into(),
        })
    }
}
