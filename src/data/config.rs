//! The `data` section of an experiment: which data set, which query languages.

use super::synthetic::SyntheticConfig;
use serde::{Deserialize, Serialize};

/// The `data` section of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `synthetic` (built in) or the name of a prepared data set.
    pub dataset: String,
    /// Low-resource query languages.
    pub languages: Vec<String>,
    /// Sizes and seed of the built-in synthetic set.
    pub synthetic: SyntheticConfig,
    /// A data set only evaluated on, never trained on (e.g. `{dataset: udhr, languages: [swh]}`);
    /// its tasks are reported apart, prefixed with its name.
    pub zero_shot: Option<ZeroShot>,
    /// Evaluate on at most this many test queries per language, a sample drawn with a fixed
    /// seed (the same for every cell); absent: every test query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_test_queries: Option<usize>,
    /// Train on at most this many pairs of each pool (the English pairs, and the cross-lingual
    /// pairs of each language), a sample drawn with a fixed seed per pool (the same for every
    /// cell and seed, so that cells share it); absent: every training pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train_pairs: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "synthetic".into(),
            languages: vec!["sx".into()],
            synthetic: SyntheticConfig::default(),
            zero_shot: None,
            max_test_queries: None,
            max_train_pairs: None,
        }
    }
}

/// A data set evaluated on only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShot {
    /// Its name (as `data.dataset`).
    pub dataset: String,
    /// Its query languages.
    pub languages: Vec<String>,
}

impl ZeroShot {
    /// The data settings that select this evaluation set, the rest taken from `base`.
    pub fn data_config(&self, base: &DataConfig) -> DataConfig {
        DataConfig {
            dataset: self.dataset.clone(),
            languages: self.languages.clone(),
            ..base.clone()
        }
    }
}
