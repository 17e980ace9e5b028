//! The integration tests, one binary: each module is one area (the CLI end to end, trec_eval
//! and statistics references, data formats and preparation, sweeps, the report, the module
//! graph). Shared helpers live in `common`. Run one area with `cargo test --test it <module>::`.

mod backbone;
mod blas;
mod common;
mod compare;
mod data_format;
mod data_prepare;
mod export;
mod hostile;
mod import;
mod layers;
mod me5_prepare;
mod me5_reference;
mod measures;
mod ot_ablation;
mod own_encoder;
mod parsing;
mod quickstart;
mod references;
mod report;
mod robust;
mod sakai_reference;
mod seeds;
mod settings;
mod spec;
mod speed;
mod submit;
mod sweeps;
mod tensorboard;
mod trec_eval_reference;
