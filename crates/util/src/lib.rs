//! Layer 0 helpers that know nothing of models, experiments or the results layout: atomic
//! file output and plain path names ([`fs`]), CSV fields made safe for spreadsheets ([`csv_guard`]), dotted key paths ([`dotted`]), lock files whose liveness policy is handed in by the caller
//! ([`lock`]), this host and process ([`host`]), readable slugs ([`slug`]), fixed subsamples
//! ([`sample`]) and TensorBoard event files ([`tensorboard`]); in test builds, generated inputs for the parsers' property tests (`fuzz`).

mod error;

pub mod csv_guard;
pub mod dotted;
pub mod fs;
pub mod fuzz;
pub mod host;
pub mod lock;
pub mod sample;
pub mod slug;
pub mod tensorboard;

pub use error::{Error, Result};
