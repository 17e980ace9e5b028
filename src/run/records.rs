//! The records of a results folder: `sweep.json` ([`SweepRecord`]: the plan, each cell's
//! status, the statistics settings, provenance), a finished cell's `result.json`
//! ([`CellResult`]) and a failed cell's `error.json` ([`CellError`]).

use super::paths::{self, CellFile};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a cell stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Not run yet.
    Pending,
    /// A live process holds its lock.
    Running,
    /// Its `result.json` is there.
    Done,
    /// Its `error.json` is there.
    Failed,
}

/// One cell of the plan in `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedCell {
    /// The cell id.
    pub id: String,
    /// The id of its grid point.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// Its axis values.
    pub assignment: BTreeMap<String, serde_json::Value>,
    /// Its schedule's label.
    pub schedule_name: String,
    /// Why the grid has this cell's point.
    #[serde(default)]
    pub reason: String,
    /// Its status when the record was written.
    pub status: CellStatus,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where and with what a run happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// The crate version.
    pub clirlab_version: String,
    /// `git rev-parse HEAD`, when run inside a repository.
    pub git_commit: Option<String>,
    /// Whether `git diff HEAD` is non-empty.
    pub git_dirty: Option<bool>,
    /// SHA-256 (16 hex) of `git diff HEAD`, when the tree is dirty.
    pub git_diff_hash: Option<String>,
    /// The host name.
    pub host: String,
    /// The build or device the run used.
    pub device: String,
    /// Training threads.
    pub threads: usize,
    /// When it started (Unix seconds).
    pub started_unix: u64,
}

/// `sweep.json`: the plan, each cell's status, the statistics settings and provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The experiment's name.
    pub experiment: String,
    /// The experiment file.
    pub source: PathBuf,
    /// `data.dataset`.
    pub dataset: String,
    /// Whether the data set is the synthetic one.
    pub synthetic: bool,
    /// The baseline grid point's variant id, when the grid has several.
    pub baseline: Option<String>,
    /// The statistics settings of the report.
    pub stats: crate::spec::StatsConfig,
    /// `--jobs` of the run that planned.
    pub jobs: usize,
    /// Every cell of the plan.
    pub cells: Vec<PlannedCell>,
    /// Where the planning run happened.
    pub provenance: Provenance,
}

impl SweepRecord {
    /// Reads `<dir>/sweep.json`.
    pub fn read(dir: &Path) -> Result<SweepRecord> {
        let path = paths::sweep_record(dir);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a clirlab sweep record", path.display()))
    }
}

/// Per-cell provenance in `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellProvenance {
    /// The run's provenance, with the cell's device.
    #[serde(flatten)]
    pub run: Provenance,
    /// The cell's seed.
    pub seed: u64,
    /// The process that ran it.
    pub pid: u32,
    /// When it ended (Unix seconds).
    pub ended_unix: u64,
    /// Peak resident memory of the process that ran the cell (VmHWM), in KiB.
    pub peak_memory_kib: Option<u64>,
}

/// `result.json` of a finished cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell id.
    pub id: String,
    /// Its grid point.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// Its schedule's label.
    pub schedule_name: String,
    /// `data.dataset`.
    pub dataset: String,
    /// Whether the data set is the synthetic one.
    pub synthetic: bool,
    /// `<lang>/<task>` → metric → mean over queries.
    pub means: BTreeMap<String, BTreeMap<String, f64>>,
    /// Queries evaluated.
    pub queries: usize,
    /// The loss of the last step.
    pub final_loss: f64,
    /// Step whose weights were evaluated (the best validation step, or the last).
    pub kept_step: usize,
    /// Best validation nDCG@10, if validation ran.
    pub best_validation_ndcg10: Option<f64>,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Seconds of the whole cell.
    pub total_seconds: f64,
    /// Where and how it ran.
    pub provenance: CellProvenance,
}

/// `error.json` of a failed cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellError {
    /// The cell id.
    pub id: String,
    /// Why it failed.
    pub reason: String,
    /// When (Unix seconds).
    pub ended_unix: u64,
}

/// The finished result of `cell_id` in `dir`, if there is one for exactly that id.
pub fn finished(dir: &Path, cell_id: &str) -> Option<CellResult> {
    let text = std::fs::read_to_string(paths::cell_file(dir, cell_id, CellFile::Result)).ok()?;
    serde_json::from_str::<CellResult>(&text)
        .ok()
        .filter(|r| r.id == cell_id)
}

/// The recorded failure of `cell_id` in `dir`, if there is one for exactly that id.
pub fn failure(dir: &Path, cell_id: &str) -> Option<CellError> {
    let text = std::fs::read_to_string(paths::cell_file(dir, cell_id, CellFile::Error)).ok()?;
    serde_json::from_str::<CellError>(&text)
        .ok()
        .filter(|e| e.id == cell_id)
}
