//! The grid: an experiment expanded into cells ([`expand`]), each with a stable id ([`ids`]).
//!
//! A *variant* is one point of the grid (one value per axis); a *cell* is a variant trained
//! with one seed, with its fully resolved configuration.

pub mod expand;
pub mod ids;

pub use expand::{GridError, axis_keys, baseline_variant, expand};
pub use ids::content_hash;

use crate::schedule::Schedule;
use crate::spec::{DataConfig, ModelConfig, OtConfig, RetrievalConfig, SamplerConfig, TrainConfig};
use clirlab_model::DeviceSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything that determines a cell's numbers; it is what the cell id hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    /// The data set and languages.
    pub data: DataConfig,
    /// The schedule's label (its file name, or its kind).
    pub schedule_name: String,
    /// The resolved schedule.
    pub schedule: Schedule,
    /// How batches mix.
    pub sampler: SamplerConfig,
    /// The encoder.
    pub model: ModelConfig,
    /// The training settings.
    pub train: TrainConfig,
    /// The OT distillation settings.
    pub ot: OtConfig,
    /// Retrieval settings.
    pub retrieval: RetrievalConfig,
    /// The seed.
    pub seed: u64,
    /// Where to train; an execution setting, left out of the cell id.
    #[serde(default, skip_serializing_if = "DeviceSpec::is_auto")]
    pub device: DeviceSpec,
}

/// A grid point trained with one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The stable id (readable slug, seed, hash of the configuration).
    pub id: String,
    /// The id of its grid point (shared by its seeds).
    pub variant: String,
    /// The axis values of this cell's variant (axis key path → value).
    pub assignment: BTreeMap<String, Value>,
    /// Why the grid has this point: the product of the axes, or which `include` rule.
    pub reason: String,
    /// Its seed.
    pub seed: u64,
    /// Its resolved configuration.
    pub config: CellConfig,
}
