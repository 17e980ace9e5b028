//! Helpers shared by the integration tests.

pub mod cli;
pub mod embeddings;
pub mod registry;
pub mod synthetic;
