//! Planning: the experiment expanded into cells, each cell's `config.yaml` and `sweep.json`
//! written, and the data sets of the unfinished cells prepared before any cell runs.

use super::paths::{self, CellFile};
use super::provenance::provenance;
use super::records::{CellStatus, PlannedCell, SweepRecord};
use super::state::{cell_state, invalidate_damaged};
use crate::data::format::Dataset;
use crate::data::{self, synthetic};
use crate::grid::{self, Cell, content_hash};
use crate::spec::LoadedExperiment;
use crate::util::fs::{write_atomic, write_json_atomic};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `sweep.json` record of `cells`, their states read from the files of `dir`.
pub fn sweep_record(
    loaded: &LoadedExperiment,
    dir: &Path,
    cells: &[Cell],
    baseline: Option<String>,
    jobs: usize,
) -> SweepRecord {
    SweepRecord {
        experiment: loaded.experiment.name.clone(),
        source: loaded.source.clone(),
        dataset: loaded.experiment.data.dataset.clone(),
        synthetic: loaded.experiment.data.dataset == synthetic::NAME,
        baseline,
        stats: loaded.experiment.stats.clone(),
        jobs,
        cells: cells
            .iter()
            .map(|c| {
                let (status, error) = cell_state(dir, &c.id);
                PlannedCell {
                    id: c.id.clone(),
                    variant: c.variant.clone(),
                    seed: c.seed,
                    assignment: c.assignment.clone(),
                    schedule_name: c.config.schedule_name.clone(),
                    reason: c.reason.clone(),
                    status,
                    error,
                }
            })
            .collect(),
        references: super::reference::planned(loaded),
        provenance: provenance(),
    }
}

/// A planned results folder: its path, `sweep.json`, the cells, and the finished cells found
/// damaged (with the reasons), whose results were discarded so that they run again.
pub type Planned = (PathBuf, SweepRecord, Vec<Cell>, Vec<(String, String)>);

/// Expands the experiment, writes each cell's `config.yaml` and `sweep.json`.
pub fn plan(loaded: &LoadedExperiment, results_root: &Path, jobs: usize) -> Result<Planned> {
    let cells = grid::expand(loaded)?;
    let baseline = grid::baseline_variant(loaded, &cells)?;
    let dir = paths::experiment_dir(results_root, &loaded.experiment.name)?;
    let cells_dir = paths::cells_dir(&dir);
    std::fs::create_dir_all(&cells_dir).with_context(|| format!("creating {}", dir.display()))?;
    // A finished cell whose outputs were damaged since (deleted, truncated) is run again.
    let damaged = invalidate_damaged(&dir, cells.iter().map(|c| c.id.as_str()))?;
    for cell in &cells {
        let path = paths::cell_file(&dir, &cell.id, CellFile::Config);
        let yaml = serde_yaml::to_string(&cell.config)?;
        if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
            write_atomic(&path, yaml.as_bytes())?;
        }
    }
    let record = sweep_record(loaded, &dir, &cells, baseline, jobs);
    write_json_atomic(&paths::sweep_record(&dir), &record)?;
    Ok((dir, record, cells, damaged))
}

/// Loads the data set of every unfinished cell, once each (preparing registry data sets on
/// first use), so that no worker or cluster task has to fetch anything. Keyed by data config hash.
pub fn load_unfinished_data(
    loaded: &LoadedExperiment,
    dir: &Path,
    cells: &[Cell],
    progress: bool,
) -> Result<HashMap<String, Dataset>> {
    let mut datasets = HashMap::new();
    for cell in cells {
        let key = content_hash(&cell.config.data, 16);
        if !datasets.contains_key(&key) && cell_state(dir, &cell.id).0 != CellStatus::Done {
            let loaded_data = data::load(&cell.config.data, progress)
                .with_context(|| format!("{}: data of cell {}", loaded.source.display(), cell.id))?;
            datasets.insert(key, loaded_data);
            if let Some(zs) = &cell.config.data.zero_shot {
                data::load(&zs.data_config(&cell.config.data), progress)?;
            }
        }
    }
    Ok(datasets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_writes_configs_and_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(
            &file,
            "ablations:\n  train.lr: [0.001, 0.002]\nseeds: [1, 2]\nstats:\n  baseline: {train.lr: 0.001}\n",
        )
        .unwrap();
        let loaded = crate::spec::load(&file, &[]).unwrap();
        let root = dir.path().join("results");
        let (exp_dir, record, cells, _) = plan(&loaded, &root, 3).unwrap();
        assert_eq!(exp_dir, root.join("p"));
        assert_eq!(cells.len(), 4);
        assert_eq!(record.jobs, 3);
        assert!(record.cells.iter().all(|c| c.status == CellStatus::Pending));
        assert!(
            record
                .baseline
                .as_deref()
                .is_some_and(|b| b.starts_with("train.lr-0.001"))
        );
        for c in &cells {
            let yaml = std::fs::read_to_string(paths::cell_file(&exp_dir, &c.id, CellFile::Config)).unwrap();
            assert_eq!(yaml, serde_yaml::to_string(&c.config).unwrap());
        }
        let reread = SweepRecord::read(&exp_dir).unwrap();
        assert_eq!(
            reread.cells.iter().map(|c| &c.id).collect::<Vec<_>>(),
            cells.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
        // Planning again is stable: same ids, configs untouched.
        let (_, again, _, _) = plan(&loaded, &root, 1).unwrap();
        assert_eq!(
            again.cells.iter().map(|c| &c.id).collect::<Vec<_>>(),
            record.cells.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
    }
}
