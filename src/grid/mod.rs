//! The grid: an experiment expanded into cells ([`expand`]), each with a stable id ([`ids`]).
//!
//! A *variant* is one point of the grid (one value per axis); a *cell* is a variant trained
//! with one seed, with its fully resolved configuration.

pub mod expand;
pub mod ids;

pub use expand::{axis_keys, baseline_variant, expand};
pub use ids::content_hash;

use crate::model::DeviceSpec;
use crate::schedule::Schedule;
use crate::spec::{DataConfig, ModelConfig, OtConfig, RetrievalConfig, SamplerConfig, TrainConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything that determines a cell's numbers; it is what the cell id hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    pub data: DataConfig,
    pub schedule_name: String,
    pub schedule: Schedule,
    pub sampler: SamplerConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub ot: OtConfig,
    pub retrieval: RetrievalConfig,
    pub seed: u64,
    /// Where to train; an execution setting, left out of the cell id.
    #[serde(default, skip_serializing_if = "DeviceSpec::is_auto")]
    pub device: DeviceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub id: String,
    pub variant: String,
    /// The axis values of this cell's variant (axis key path → value).
    pub assignment: BTreeMap<String, Value>,
    /// Why the grid has this point: the product of the axes, or which `include` rule.
    pub reason: String,
    pub seed: u64,
    pub config: CellConfig,
}
