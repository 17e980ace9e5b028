//! Planning: the experiment expanded into cells, each cell's `config.yaml` and `sweep.json`
//! written, and the data sets of the unfinished cells prepared before any cell runs.

use super::paths::{self, CellFile};
use super::provenance::provenance;
use super::records::{CellStatus, PlannedCell, SweepRecord};
use super::state::{JOB_ALIVE, cell_state, invalidate_damaged, linked_folder};
use crate::grid::{self, Cell, content_hash};
use crate::spec::LoadedExperiment;
use anyhow::{Context, Result};
use clirlab_data::format::Dataset;
use clirlab_data::{self as data, synthetic};
use clirlab_util::fs::{write_atomic, write_json_atomic};
use clirlab_util::lock::LockFile;
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
    // One planner at a time: two runs of different plans into one folder are told apart here.
    let _lock = LockFile::acquire(&dir.join(PLAN_LOCK), JOB_ALIVE)?;
    refuse_another_plan(loaded, &dir, &cells)?;
    for cell in &cells {
        if let Some(link) = linked_folder(&dir, &cell.id) {
            anyhow::bail!("cell {}: {link}", cell.id);
        }
    }
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

/// The lock a planning run holds while it reads and writes `sweep.json`.
const PLAN_LOCK: &str = "sweep.lock";

/// Refuses to plan into `dir` when its `sweep.json` holds another experiment file's plan
/// (same `name`, other cells): both would run into one folder, and the record and the report
/// would show only one of them.
fn refuse_another_plan(loaded: &LoadedExperiment, dir: &Path, cells: &[Cell]) -> Result<()> {
    if !paths::sweep_record(dir).is_file() {
        return Ok(());
    }
    let record = SweepRecord::read(dir)?;
    let same_file = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let planned: std::collections::BTreeSet<&str> = record.cells.iter().map(|c| c.id.as_str()).collect();
    let ours: std::collections::BTreeSet<&str> = cells.iter().map(|c| c.id.as_str()).collect();
    anyhow::ensure!(
        same_file(&record.source, &loaded.source) || planned == ours,
        "{}: holds the plan of {} (experiment `{}`); {} names the same experiment with another plan. \
         Give one of them another `name`, or run it with another --results",
        dir.display(),
        record.source.display(),
        record.experiment,
        loaded.source.display()
    );
    Ok(())
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
