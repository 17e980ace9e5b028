//! The statistics crate's errors, typed: values a test cannot take, settings out of range, and
//! names it does not know.

/// What a test or a comparison refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Values a test cannot take: too few pairs, systems, queries or seeds, non-finite values,
    /// systems scored on different queries, an unknown baseline.
    #[error("{0}")]
    Data(String),
    /// A setting out of its range: a confidence or α outside (0, 1), no permutations, a
    /// negative variance.
    #[error("{0}")]
    Setting(String),
    /// An output format this crate does not write.
    #[error("unknown format `{0}` (expected md, csv, json or tex)")]
    UnknownFormat(String),
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `ensure!(condition, Kind, "message {x}")`: returns `Error::Kind(message)` unless `condition`.
macro_rules! ensure {
    ($cond:expr, $kind:ident, $($message:tt)+) => {
        // The condition is negated whole: NaN fails every comparison, so it is refused too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let holds = $cond;
        if !holds {
            return Err($crate::Error::$kind(format!($($message)+)));
        }
    };
}

/// `fail!(Kind, "message {x}")`: returns `Error::Kind(message)`.
macro_rules! fail {
    ($kind:ident, $($message:tt)+) => {
        return Err($crate::Error::$kind(format!($($message)+)))
    };
}
