//! The experiment specification: its schema ([`schema`]), its loading from layered sources
//! ([`load`]: defaults < file < `CLIRLAB_*` variables < `--set` flags) and its validation
//! ([`validate`]). Unknown keys are rejected; every error names the source (file,
//! environment or flag), the key path and what was expected.

pub mod load;
pub mod schema;
pub mod validate;

pub use load::{OPERATIONAL_ENV, load, load_schedule, parse_set_flag, schedule_dirs};
pub use schema::*;
