//! The experiment specification: its schema ([`schema`]), its loading from layered sources
//! ([`load`]: defaults < file < `CLIRLAB_*` variables < `--set` flags), its validation
//! ([`validate`]), the checks of a file's text before it is parsed ([`preflight`]) and its error type ([`error::ConfigError`]), and the key reference generated from the schema ([`keys`]). Unknown keys are rejected;
//! every problem names the source (file, environment variable or flag), the key path, what
//! was expected and what was found.

pub mod error;
pub mod keys;
pub mod load;
pub mod preflight;
pub mod schema;
pub mod validate;

pub use error::{ConfigError, ConfigSource, Problem, ProblemKind};
pub use load::{OPERATIONAL_ENV, load, load_schedule, parse_set_flag, schedule_dirs};
pub use schema::*;
