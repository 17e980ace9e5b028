//! Layer 0 helpers that know nothing of models, experiments or the results layout: atomic
//! file output ([`fs`]), dotted key paths ([`dotted`]), lock files whose liveness policy is handed in by the caller
//! ([`lock`]), this host and process ([`host`]), readable slugs ([`slug`]) and fixed subsamples
//! ([`sample`]).

pub mod dotted;
pub mod fs;
pub mod host;
pub mod lock;
pub mod sample;
pub mod slug;
