//! clirlab: declarative experiments on curriculum schedules and optimal-transport distillation
//! for low-resource cross-lingual dense retrieval. See the README for the tour.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod data;
pub mod eval;
pub mod fsutil;
pub mod grid;
pub mod model;
pub mod ot;
pub mod report;
pub mod retrieval;
pub mod sampler;
pub mod schedule;
pub mod stats;
pub mod sweep;
pub mod tokenizer;
pub mod train;
