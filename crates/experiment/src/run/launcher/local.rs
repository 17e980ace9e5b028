//! Running an experiment on this machine: plan, then rounds in which every runnable cell runs,
//! in this process (`--jobs 1`) or in a pool of worker processes (`clirlab run-cell`), each
//! with its share of the cores and, with GPUs, its own device. Cells another process holds
//! are waited for, and run here if that process dies without finishing them.

use crate::grid::{Cell, content_hash};
use crate::run::cell::execute_cell;
use crate::run::paths::{self, CellFile};
use crate::run::plan::{load_unfinished_data, plan};
use crate::run::progress::{step_bar, sweep_bars};
use crate::run::records::{CellStatus, failure, finished};
use crate::run::state::{cell_running, cell_state, failed_cells, record_failure, refresh, wants_run};
use crate::spec::LoadedExperiment;
use anyhow::{Context, Result};
use clirlab_util::lock::{WAIT_REMINDER, describe_holder};
use indicatif::ProgressBar;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How `run` runs the cells.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// No progress bars.
    pub quiet: bool,
    /// Cells run at once; above 1 each runs in its own worker process.
    pub jobs: usize,
    /// Run cells that failed before (they are skipped otherwise).
    pub retry_failed: bool,
    /// Stop starting cells at the first failure.
    pub fail_fast: bool,
    /// GPUs to spread workers over (`CUDA_VISIBLE_DEVICES` = worker slot mod gpus).
    pub gpus: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            quiet: false,
            jobs: 1,
            retry_failed: false,
            fail_fast: false,
            gpus: 0,
        }
    }
}

/// Summary of a finished `run`.
pub struct SweepOutcome {
    /// The experiment's results folder.
    pub dir: PathBuf,
    /// Cells this run finished.
    pub trained: usize,
    /// Cells finished before this run.
    pub skipped: usize,
    /// Failed cells with their reasons.
    pub failed: Vec<(String, String)>,
    /// Finished cells found damaged and run again, with the reasons.
    pub damaged: Vec<(String, String)>,
    /// The reference rows, each with what this run did with it.
    pub references: Vec<(String, crate::run::reference::Outcome)>,
}

/// Runs every unfinished cell of the experiment into `results_root/<name>/` and refreshes
/// `sweep.json`. The report is not written here: the caller writes it (`report::write`).
pub fn run(loaded: &LoadedExperiment, results_root: &Path, opts: RunOptions) -> Result<SweepOutcome> {
    anyhow::ensure!(opts.jobs >= 1, "--jobs: expected at least 1");
    let (dir, record, cells, damaged) = plan(loaded, results_root, opts.jobs)?;
    let artifacts = paths::artifacts_dir(results_root);
    let (bars, overall) = sweep_bars(opts.quiet, cells.len());
    let mut attempted: HashSet<String> = HashSet::new();
    let mut failed_now: Vec<String> = Vec::new();
    let skipped = record.cells.iter().filter(|c| c.status == CellStatus::Done).count();
    let datasets = load_unfinished_data(loaded, &dir, &cells, !opts.quiet)?;
    let mut said_waiting = None;
    // The processes that train here (this one, its workers): a cell another process finished
    // meanwhile is not counted as trained by this run.
    let mut trainers: HashSet<u32> = HashSet::from([std::process::id()]);
    // Rounds: run what is runnable; cells another process holds are waited for, and run here
    // if that process dies without finishing them.
    loop {
        let states: Vec<CellStatus> = cells.iter().map(|c| cell_state(&dir, &c.id).0).collect();
        overall.set_position(states.iter().filter(|s| **s == CellStatus::Done).count() as u64);
        let todo: Vec<&Cell> = cells
            .iter()
            .zip(&states)
            .filter(|(c, s)| wants_run(**s, opts.retry_failed) && !attempted.contains(&c.id))
            .map(|(c, _)| c)
            .collect();
        let running = states.contains(&CellStatus::Running);
        if opts.fail_fast && !failed_now.is_empty() {
            break;
        }
        if todo.is_empty() {
            if !running {
                break;
            }
            overall.set_message("waiting for cells run by another process");
            if said_waiting.is_none_or(|t: std::time::Instant| t.elapsed() >= WAIT_REMINDER) {
                say_who_holds(&dir, &cells, &states)?;
                said_waiting = Some(std::time::Instant::now());
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        attempted.extend(todo.iter().map(|c| c.id.clone()));
        if opts.jobs == 1 {
            for cell in &todo {
                overall.set_message(cell.id.clone());
                let dataset = datasets
                    .get(&content_hash(&cell.config.data, 16))
                    .context("every runnable cell's data set is loaded before the rounds")?;
                let bar = step_bar(&bars, cell.config.train.steps);
                let ran = execute_cell(&dir, cell, dataset, &artifacts, &bar)?;
                bar.finish_and_clear();
                overall.inc(1);
                if ran && failure(&dir, &cell.id).is_some() {
                    failed_now.push(cell.id.clone());
                    if opts.fail_fast {
                        break;
                    }
                }
            }
        } else {
            failed_now.extend(run_workers(&dir, &todo, opts, &overall, &mut trainers)?);
        }
    }
    overall.finish_and_clear();
    // The references after the cells: they are computed once, and a run that stops early
    // (`--fail-fast`) leaves them for the next one.
    let references = if opts.fail_fast && !failed_now.is_empty() {
        Vec::new()
    } else {
        crate::run::reference::ensure(loaded, &dir, &artifacts, !opts.quiet)
    };
    let record = refresh(&dir)?;
    let mut failed = failed_cells(&record, None);
    for (key, outcome) in &references {
        if let crate::run::reference::Outcome::Failed(reason) = outcome {
            failed.push((format!("reference {key}"), reason.clone()));
        }
    }
    let trained = attempted
        .iter()
        .filter(|id| finished(&dir, id).is_some_and(|r| trainers.contains(&r.provenance.pid)))
        .count();
    Ok(SweepOutcome {
        dir,
        trained,
        skipped,
        failed,
        damaged,
        references,
    })
}

/// Says, for each cell another process runs, who holds it and since when: a wait on a lock
/// is never silent (a lock of a process that cannot be checked from here may be held for ever).
fn say_who_holds(dir: &Path, cells: &[Cell], states: &[CellStatus]) -> Result<()> {
    for (cell, _) in cells.iter().zip(states).filter(|(_, s)| **s == CellStatus::Running) {
        let lock = paths::cell_lock(dir, &cell.id);
        if let Some(holder) = describe_holder(&lock)? {
            // Straight to stderr, also under `--quiet`: a silent wait would look like a hang.
            eprintln!(
                "clirlab: cell {}: waiting for the cell, run by {holder} ({})",
                cell.id,
                lock.display()
            );
        }
    }
    Ok(())
}

/// Runs `todo` in up to `jobs` worker processes (`clirlab run-cell`), each with its share of
/// the cores and, with GPUs, its own device; their pids go into `trainers`. Returns the ids
/// of cells that failed.
fn run_workers(
    dir: &Path,
    todo: &[&Cell],
    opts: RunOptions,
    overall: &ProgressBar,
    trainers: &mut HashSet<u32>,
) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("locating the clirlab executable")?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads_per_cell = (cores / opts.jobs).max(1);
    let mut queue: std::collections::VecDeque<&Cell> = todo.iter().copied().collect();
    let mut running: Vec<(usize, String, Child)> = Vec::new();
    let mut failed = Vec::new();
    loop {
        while (failed.is_empty() || !opts.fail_fast) && running.len() < opts.jobs {
            let Some(cell) = queue.pop_front() else { break };
            let slot = (0..opts.jobs)
                .find(|s| running.iter().all(|(r, _, _)| r != s))
                .expect("a free slot");
            // Appending, not truncating: if another run holds the cell, its log is left as it
            // is (the worker empties it once it holds the lock itself).
            let log_path = paths::cell_file(dir, &cell.id, CellFile::Log);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            let mut cmd = Command::new(&exe);
            cmd.args(["run-cell", "--quiet"]).arg(dir).arg(&cell.id);
            cmd.env("RAYON_NUM_THREADS", threads_per_cell.to_string());
            cmd.env(
                "CLIRLAB_LOG",
                std::env::var("CLIRLAB_LOG").unwrap_or_else(|_| "info".into()),
            );
            if opts.gpus > 0 {
                cmd.env("CUDA_VISIBLE_DEVICES", (slot % opts.gpus).to_string());
            }
            cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
            let child = cmd
                .spawn()
                .with_context(|| format!("starting a worker for {}", cell.id))?;
            overall.set_message(cell.id.clone());
            trainers.insert(child.id());
            running.push((slot, cell.id.clone(), child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].2.try_wait()? {
                let (_, id, _) = running.remove(i);
                overall.inc(1);
                if finished(dir, &id).is_none() {
                    if failure(dir, &id).is_none() && !cell_running(dir, &id) {
                        // The worker died before it could record why (killed, out of memory).
                        record_failure(
                            dir,
                            &id,
                            &format!("worker process ended with {status} before finishing"),
                        )?;
                    }
                    if failure(dir, &id).is_some() {
                        failed.push(id);
                    }
                }
            } else {
                i += 1;
            }
        }
        if opts.fail_fast && !failed.is_empty() {
            for (_, _, child) in &mut running {
                let _ = child.kill();
                let _ = child.wait();
            }
            break;
        }
    }
    Ok(failed)
}
