//! A cell's state, read from its files (the source of truth; `sweep.json` mirrors it; a
//! finished cell whose outputs differ from its `result.json` is damaged), the recording of
//! failures, the discarding of damaged results, and the liveness policy of the locks: a lock
//! of another host's process is live unless Slurm says its job has ended.

use super::paths::{self, CellFile};
use super::queue;
use super::records::{CellError, CellStatus, Check, SweepRecord, damage, failure, read_result};
use anyhow::{Context, Result};
use clirlab_util::fs::{write_atomic, write_json_atomic};
use clirlab_util::host::now_unix;
use clirlab_util::lock::{JobAlive, LockFile};
use std::path::Path;

/// How the run layer decides whether the owner of another host's lock is alive.
pub const JOB_ALIVE: JobAlive = queue::slurm_job_alive;

/// Whether a live process other than this one holds cell `cell_id` of `dir`.
pub fn cell_running(dir: &Path, cell_id: &str) -> bool {
    LockFile::held_by_live_process(&paths::cell_lock(dir, cell_id), JOB_ALIVE)
}

/// A cell's state, read from its files (the source of truth; `sweep.json` mirrors it); a
/// finished cell's outputs are checked to have their recorded sizes.
pub fn cell_state(dir: &Path, cell_id: &str) -> (CellStatus, Option<String>) {
    checked_state(dir, cell_id, Check::Sizes)
}

/// [`cell_state`], with a finished cell's outputs checked as closely as `check` says; a
/// damaged cell's reason says which file differs.
pub fn checked_state(dir: &Path, cell_id: &str, check: Check) -> (CellStatus, Option<String>) {
    if let Some(link) = linked_folder(dir, cell_id) {
        return (CellStatus::Damaged, Some(link));
    }
    let read = read_result(dir, cell_id);
    if let Ok(Some(result)) = read {
        match damage(dir, &result, check) {
            None => (CellStatus::Done, None),
            Some(reason) => (CellStatus::Damaged, Some(reason)),
        }
    } else if cell_running(dir, cell_id) {
        (CellStatus::Running, None)
    } else if let Err(reason) = read {
        // A truncated, foreign or edited record is not "pending": say so; it runs again.
        (CellStatus::Damaged, Some(reason))
    } else if let Some(e) = failure(dir, cell_id) {
        (CellStatus::Failed, Some(e.reason))
    } else {
        (CellStatus::Pending, None)
    }
}

/// Why the folder of cell `cell_id` in `dir` (or `cells/` itself) is not a plain folder of
/// the results folder but a symbolic link, whose target would be written and read through.
pub fn linked_folder(dir: &Path, cell_id: &str) -> Option<String> {
    [paths::cells_dir(dir), paths::cell_dir(dir, cell_id)]
        .into_iter()
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
        .map(|p| {
            format!(
                "{} is a symbolic link; expected a folder of the results folder (remove the link)",
                p.display()
            )
        })
}

/// Whether a cell in state `status` is to be run: pending ones, and failed ones on a retry.
pub fn wants_run(status: CellStatus, retry_failed: bool) -> bool {
    match status {
        CellStatus::Pending | CellStatus::Damaged => true,
        CellStatus::Failed => retry_failed,
        CellStatus::Running | CellStatus::Done => false,
    }
}

/// Records in `error.json` and `log.txt` that cell `id` failed, and why.
pub fn record_failure(dir: &Path, id: &str, reason: &str) -> Result<()> {
    let error = CellError {
        id: id.to_string(),
        reason: reason.to_string(),
        ended_unix: now_unix(),
    };
    write_json_atomic(&paths::cell_file(dir, id, CellFile::Error), &error)?;
    let log = paths::cell_file(dir, id, CellFile::Log);
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    text.push_str(&format!("cell failed: {reason}\n"));
    Ok(write_atomic(&log, text.as_bytes())?)
}

/// The plan of `dir` with every cell's state read from its files (outputs checked as `check`
/// says); writes nothing, so it works on a read-only folder (`status`).
pub fn current(dir: &Path, check: Check) -> Result<SweepRecord> {
    let mut record = SweepRecord::read(dir)?;
    for c in &mut record.cells {
        (c.status, c.error) = checked_state(dir, &c.id, check);
    }
    Ok(record)
}

/// Re-reads every cell's state from its files into `sweep.json`.
pub fn refresh(dir: &Path) -> Result<SweepRecord> {
    let record = current(dir, Check::Sizes)?;
    write_json_atomic(&paths::sweep_record(dir), &record)?;
    Ok(record)
}

/// Removes the `result.json` of every finished cell of `ids` in `dir` whose outputs are
/// damaged (checked by content), so that it runs again; returns those cells with the reasons.
pub fn invalidate_damaged<'a>(dir: &Path, ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<(String, String)>> {
    let mut damaged = Vec::new();
    for id in ids {
        if let (CellStatus::Damaged, Some(reason)) = checked_state(dir, id, Check::Contents) {
            // Nothing is removed through a link to outside the results folder.
            if let Some(link) = linked_folder(dir, id) {
                anyhow::bail!("cell {id}: {link}");
            }
            tracing::warn!(cell = %id, %reason, "the finished cell is damaged; it runs again");
            let path = paths::cell_file(dir, id, CellFile::Result);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {}
            }
            damaged.push((id.to_string(), reason));
        }
    }
    Ok(damaged)
}

/// The failed cells of `record` (restricted to `among` when given), with their reasons.
pub fn failed_cells(record: &SweepRecord, among: Option<&[String]>) -> Vec<(String, String)> {
    record
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Failed && among.is_none_or(|ids| ids.contains(&c.id)))
        .map(|c| (c.id.clone(), c.error.clone().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::records::CellResult;

    fn result(id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "variant": "v", "seed": 1, "schedule_name": "s", "dataset": "synthetic",
            "synthetic": true, "means": {}, "queries": 0, "final_loss": 0.0, "kept_step": 0,
            "best_validation_ndcg10": null, "train_seconds": 0.0, "total_seconds": 0.0,
            "provenance": {"clirlab_version": "0", "git_commit": null, "git_dirty": null,
                "git_diff_hash": null, "host": "h", "device": "cpu", "threads": 1,
                "started_unix": 0, "seed": 1, "pid": 1, "ended_unix": 0, "peak_memory_kib": null}
        })
    }

    #[test]
    fn cell_state_reads_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir_all(paths::cell_dir(dir, "a")).unwrap();
        assert_eq!(cell_state(dir, "a"), (CellStatus::Pending, None));
        // A live lock (pid 1 always exists on this host) means running.
        std::fs::write(paths::cell_lock(dir, "a"), "1").unwrap();
        assert_eq!(cell_state(dir, "a").0, CellStatus::Running);
        std::fs::remove_file(paths::cell_lock(dir, "a")).unwrap();
        record_failure(dir, "a", "out of memory").unwrap();
        assert_eq!(cell_state(dir, "a"), (CellStatus::Failed, Some("out of memory".into())));
        assert!(
            std::fs::read_to_string(paths::cell_file(dir, "a", CellFile::Log))
                .unwrap()
                .contains("cell failed: out of memory")
        );
        // A result for another id is damage, said with the file; one for this id wins over
        // the failure.
        let path = paths::cell_file(dir, "a", CellFile::Result);
        std::fs::write(&path, result("b").to_string()).unwrap();
        let (status, why) = cell_state(dir, "a");
        assert_eq!(status, CellStatus::Damaged);
        assert!(why.unwrap().contains("result.json: the record of cell \"b\""));
        // (A result of an older version records no digests: its outputs need only exist.)
        std::fs::write(&path, result("a").to_string()).unwrap();
        assert_eq!(cell_state(dir, "a").0, CellStatus::Damaged);
        for file in [CellFile::TrainLog, CellFile::Run, CellFile::Metrics] {
            std::fs::write(paths::cell_file(dir, "a", file), "x").unwrap();
        }
        assert_eq!(cell_state(dir, "a"), (CellStatus::Done, None));
        let _: CellResult = serde_json::from_value(result("a")).unwrap();
    }

    #[test]
    fn a_zero_shot_cell_reads_back_as_done() {
        // A zero-shot cell takes no step: no final loss. Its result.json must read back as
        // finished, or its cell is planned again forever and the report loses the baseline.
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir_all(paths::cell_dir(dir, "z")).unwrap();
        for file in [CellFile::TrainLog, CellFile::Run, CellFile::Metrics] {
            std::fs::write(paths::cell_file(dir, "z", file), "x").unwrap();
        }
        let mut recorded: CellResult = serde_json::from_value(result("z")).unwrap();
        recorded.final_loss = None;
        write_json_atomic(&paths::cell_file(dir, "z", CellFile::Result), &recorded).unwrap();
        let text = std::fs::read_to_string(paths::cell_file(dir, "z", CellFile::Result)).unwrap();
        assert!(text.contains("\"final_loss\": null"), "{text}");
        assert_eq!(cell_state(dir, "z"), (CellStatus::Done, None));
    }

    #[test]
    fn damaged_outputs_are_found_and_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let cell = paths::cell_dir(dir, "a");
        std::fs::create_dir_all(&cell).unwrap();
        let metrics = CellFile::Metrics.at(&cell);
        for file in [CellFile::TrainLog, CellFile::Run] {
            std::fs::write(file.at(&cell), "rows\n").unwrap();
        }
        std::fs::write(&metrics, "lang,task,query_id,metric,value\nen,t,q1,ndcg@10,0.5\n").unwrap();
        let mut recorded: CellResult = serde_json::from_value(result("a")).unwrap();
        recorded.outputs = crate::run::records::digest_outputs(&cell).unwrap();
        assert_eq!(recorded.outputs.len(), 3);
        let write_result = || write_json_atomic(&CellFile::Result.at(&cell), &recorded).unwrap();
        write_result();
        assert_eq!(checked_state(dir, "a", Check::Contents), (CellStatus::Done, None));
        // Half of metrics.csv gone, emptied, changed in place, deleted: each one is damage.
        std::fs::write(&metrics, "lang,task,query_id,metric,value\n").unwrap();
        let (status, why) = cell_state(dir, "a");
        assert_eq!(status, CellStatus::Damaged);
        assert!(why.unwrap().contains("metrics.csv has 32 bytes, result.json recorded"));
        std::fs::write(&metrics, "").unwrap();
        assert_eq!(cell_state(dir, "a").0, CellStatus::Damaged);
        std::fs::write(&metrics, "lang,task,query_id,metric,value\nen,t,q1,ndcg@10,0.9\n").unwrap();
        assert_eq!(cell_state(dir, "a").0, CellStatus::Done, "sizes alone cannot tell");
        let (status, why) = checked_state(dir, "a", Check::Contents);
        assert_eq!(status, CellStatus::Damaged);
        assert!(why.unwrap().contains("differs from its SHA-256"));
        // `current` only reads; `invalidate_damaged` discards the result so the cell runs again.
        std::fs::write(paths::sweep_record(dir), "{}").unwrap();
        assert!(current(dir, Check::Contents).is_err());
        let damaged = invalidate_damaged(dir, ["a"]).unwrap();
        assert_eq!(damaged.len(), 1);
        assert_eq!(cell_state(dir, "a").0, CellStatus::Pending);
        write_result();
        std::fs::remove_file(&metrics).unwrap();
        assert!(cell_state(dir, "a").1.unwrap().contains("metrics.csv is missing"));
    }

    #[test]
    fn a_folder_without_sweep_json_is_told_apart() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let err = |dir: &Path| SweepRecord::read(dir).unwrap_err().to_string();
        assert!(err(&root.join("nope")).contains("nope: no such folder; expected"));
        assert!(err(root).contains("holds no sweep.json; expected an experiment's results folder"));
        let exp = root.join("quickstart");
        std::fs::create_dir_all(paths::cell_dir(&exp, "c1")).unwrap();
        std::fs::write(paths::sweep_record(&exp), "{}").unwrap();
        std::fs::write(paths::cell_file(&exp, "c1", CellFile::Config), "").unwrap();
        let said = err(root);
        assert!(said.contains("a results root") && said.contains("quickstart"), "{said}");
        let said = err(&paths::cell_dir(&exp, "c1"));
        assert!(
            said.contains("a cell's folder") && said.ends_with("quickstart"),
            "{said}"
        );
    }

    #[test]
    fn only_pending_and_retried_failures_run() {
        assert!(wants_run(CellStatus::Pending, false));
        assert!(!wants_run(CellStatus::Failed, false));
        assert!(wants_run(CellStatus::Failed, true));
        assert!(!wants_run(CellStatus::Done, true));
        assert!(wants_run(CellStatus::Damaged, false));
        assert!(!wants_run(CellStatus::Running, true));
    }
}
