//! clirlab: declarative experiments on curriculum schedules and optimal-transport distillation
//! for low-resource cross-lingual dense retrieval. See the README for the tour.

pub mod data;
pub mod fsutil;
pub mod model;
pub mod sampler;
pub mod schedule;
pub mod tokenizer;
