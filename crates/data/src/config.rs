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
    /// Train on at most this many pairs of each pool (with `train_pairs.design: rendered`, the
    /// links of each language; else the English pairs, and the cross-lingual pairs of each
    /// language), a sample drawn with a fixed seed per pool (the same for every cell and seed,
    /// so that cells share it); absent: every training pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train_pairs: Option<usize>,
    /// What a training pair is, and which languages render it.
    pub train_pairs: TrainPairs,
}

/// The design of the training pairs (`data.train_pairs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainPairs {
    /// `rendered` (default) or `translation_vs_english`.
    pub design: PairDesign,
    /// With `rendered`: the link kinds trained on (e.g. `[crossref]`); empty: every kind the
    /// data set has.
    pub kinds: Vec<String>,
    /// With `rendered`: the cross-lingual (X-Y) renderings a link may get, one drawn per pair:
    /// `lr_en` (query in the language, passage in English), `en_lr` (the reverse) and `lr_lr`
    /// (passage in another selected language). Empty: `[lr_en]`.
    pub cross_lingual: Vec<CrossLingual>,
}

impl TrainPairs {
    /// The cross-lingual renderings in use (`[lr_en]` when none is named).
    pub fn cross_lingual(&self) -> Vec<CrossLingual> {
        if self.cross_lingual.is_empty() {
            vec![CrossLingual::LrEn]
        } else {
            self.cross_lingual.clone()
        }
    }
}

/// What the schedule's share chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PairDesign {
    /// One pool of relevance pairs (the data set's links) shared by every grid point; each
    /// drawn pair is rendered within one selected language (X-X: both sides in X) or across
    /// two (X-Y), and the schedule's share is the share of X-Y renderings. The hybrid-batch
    /// design: only the languages change along the share axis, never the pairs.
    #[default]
    Rendered,
    /// English pairs (paraphrases and cross-references) as the monolingual side and
    /// translations (a language's verse, its English verse) as the cross-lingual side. Here
    /// the share also switches the task and whether low-resource text is trained on at all;
    /// kept to reproduce earlier results.
    TranslationVsEnglish,
}

/// A cross-lingual rendering of a link (`data.train_pairs.cross_lingual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossLingual {
    /// Query in the selected language, passage in the pivot (English).
    LrEn,
    /// Query in the pivot, passage in the selected language.
    EnLr,
    /// Query in the selected language, passage in another selected language.
    LrLr,
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
            train_pairs: TrainPairs::default(),
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
