//! Data sets: the on-disk and in-memory format, and the built-in synthetic set.

pub mod format;
pub mod synthetic;
