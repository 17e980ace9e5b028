//! Helpers shared by the integration tests.

pub mod cli;
pub mod registry;
pub mod synthetic;
