//! clirlab: declarative experiments on curriculum schedules and optimal-transport distillation
//! for low-resource cross-lingual dense retrieval. See the README for the tour and
//! `docs/architecture.md` for the house.
//!
//! The library is a workspace whose crates are its layers (Cargo keeps each from importing a
//! layer above it); this crate holds the command line ([`cli`]) and names every layer's modules
//! under one roof, so that `clirlab::eval::…` reads the same from the tests, benchmarks and
//! programs that use the library:
//!
//! | crate | modules here |
//! | --- | --- |
//! | `clirlab` | [`cli`] |
//! | `clirlab-report` | [`report`] |
//! | `clirlab-experiment` | [`run`], [`train`], [`retrieval`], [`grid`], [`spec`], [`sampler`], [`schedule`] |
//! | `clirlab-model` | [`model`], [`tokenizer`], [`ot`] |
//! | `clirlab-data` | [`data`] |
//! | `clirlab-eval`, `clirlab-stats`, `clirlab-util` | [`eval`], [`stats`], [`util`] |

#![warn(missing_docs)]

// `cli::args` alone allows undocumented items, since its doc comments are the `--help` text.
pub mod cli;

pub use clirlab_data as data;
pub use clirlab_eval as eval;
pub use clirlab_experiment::{grid, retrieval, run, sampler, schedule, spec, train};
pub use clirlab_model as model;
pub use clirlab_model::{ot, tokenizer};
pub use clirlab_report as report;
pub use clirlab_stats as stats;
pub use clirlab_util as util;
