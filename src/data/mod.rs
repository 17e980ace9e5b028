//! Data sets: the on-disk and in-memory format, and the built-in synthetic set.

pub mod format;
pub mod synthetic;

use crate::config::DataConfig;
use anyhow::{Result, bail};
use format::Dataset;

/// The data set a cell trains and evaluates on.
pub fn load(cfg: &DataConfig) -> Result<Dataset> {
    if cfg.dataset != synthetic::NAME {
        bail!(
            "key `data.dataset`: `{}` is not available; this build knows the built-in `{}` set",
            cfg.dataset,
            synthetic::NAME
        );
    }
    Ok(synthetic::generate(&cfg.synthetic, &cfg.languages))
}
