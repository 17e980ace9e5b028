//! clirlab: declarative experiments on curriculum schedules and optimal-transport distillation
//! for low-resource cross-lingual dense retrieval. See the README for the tour.
//!
//! The modules are layered; each imports only the layers below it (a test keeps it so):
//!
//! | layer | modules |
//! | --- | --- |
//! | 6 | [`cli`] |
//! | 5 | [`report`] |
//! | 4 | [`run`] |
//! | 3 | [`train`], [`retrieval`] |
//! | 2 | [`model`], [`grid`], [`spec`] |
//! | 1 | [`data`], [`tokenizer`], [`sampler`] |
//! | 0 | [`eval`], [`stats`], [`schedule`], [`ot`], [`util`] |

#![warn(missing_docs)]

// Every public item is documented; `cli::args` alone allows undocumented items, since its
// doc comments are the `--help` text.

pub mod cli;
pub mod data;
pub mod eval;
pub mod grid;
pub mod model;
pub mod ot;
pub mod report;
pub mod retrieval;
pub mod run;
pub mod sampler;
pub mod schedule;
pub mod spec;
pub mod stats;
pub mod tokenizer;
pub mod train;
pub mod util;
