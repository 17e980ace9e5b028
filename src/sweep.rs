//! Running an experiment: plan the cells, run each one that has no finished result (resume),
//! in this process or in parallel worker processes, record status and provenance, then write
//! the report.
//!
//! Results layout (`results/<experiment>/`): `sweep.json` (plan, status, provenance) and
//! `cells/<cell-id>/` with `config.yaml` (written at planning), `tokenizer.json`,
//! `train_log.csv`, `model.safetensors`, `run.trec`, `metrics.csv`, `log.txt`, `error.json`
//! (a failed cell) and `result.json` — written last, atomically: its presence with the cell's
//! id means the cell is done. A cell being run holds `cells/<cell-id>.lock` (the owner's pid and
//! host, see [`LockFile`]); the lock of a process that is gone is taken over.

use crate::config::LoadedExperiment;
use crate::data::format::Dataset;
use crate::data::{self, synthetic};
use crate::eval::cell::cell_metrics;
use crate::fsutil::{LockFile, write_atomic, write_json_atomic};
use crate::grid::{self, Cell, CellConfig, content_hash};
use crate::model::ResolvedDevice;
use crate::retrieval::{self, QueryGroup};
use crate::tokenizer::TextEncoder;
use crate::train;
use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Folder under the results root for artifacts shared across cells and experiments (teachers).
pub const ARTIFACTS: &str = ".artifacts";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedCell {
    pub id: String,
    pub variant: String,
    pub seed: u64,
    pub assignment: BTreeMap<String, serde_json::Value>,
    pub schedule_name: String,
    /// Why the grid has this cell's point.
    #[serde(default)]
    pub reason: String,
    pub status: CellStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where and with what a run happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub clirlab_version: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// SHA-256 (16 hex) of `git diff HEAD`, when the tree is dirty.
    pub git_diff_hash: Option<String>,
    pub host: String,
    pub device: String,
    pub threads: usize,
    pub started_unix: u64,
}

/// `sweep.json`: the plan, each cell's status, the statistics settings and provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRecord {
    pub experiment: String,
    pub source: PathBuf,
    pub dataset: String,
    pub synthetic: bool,
    pub baseline: Option<String>,
    pub stats: crate::config::StatsConfig,
    pub jobs: usize,
    pub cells: Vec<PlannedCell>,
    pub provenance: Provenance,
}

impl SweepRecord {
    /// Reads `<dir>/sweep.json`.
    pub fn read(dir: &Path) -> Result<SweepRecord> {
        let path = dir.join("sweep.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a clirlab sweep record", path.display()))
    }
}

/// Per-cell provenance in `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellProvenance {
    #[serde(flatten)]
    pub run: Provenance,
    pub seed: u64,
    pub pid: u32,
    pub ended_unix: u64,
    /// Peak resident memory of the process that ran the cell (VmHWM), in KiB.
    pub peak_memory_kib: Option<u64>,
}

/// `result.json` of a finished cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub id: String,
    pub variant: String,
    pub seed: u64,
    pub schedule_name: String,
    pub dataset: String,
    pub synthetic: bool,
    /// `<lang>/<task>` → metric → mean over queries.
    pub means: BTreeMap<String, BTreeMap<String, f64>>,
    pub queries: usize,
    pub final_loss: f64,
    /// Step whose weights were evaluated (the best validation step, or the last).
    pub kept_step: usize,
    pub best_validation_ndcg10: Option<f64>,
    pub train_seconds: f64,
    pub total_seconds: f64,
    pub provenance: CellProvenance,
}

/// `error.json` of a failed cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellError {
    pub id: String,
    pub reason: String,
    pub ended_unix: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
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

pub fn experiment_dir(results_root: &Path, experiment: &str) -> PathBuf {
    results_root.join(experiment)
}

pub fn cell_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join("cells").join(id)
}

fn lock_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("cells").join(format!("{id}.lock"))
}

/// The finished result of `cell_id` in `dir`, if there is one for exactly that id.
pub fn finished(dir: &Path, cell_id: &str) -> Option<CellResult> {
    let text = std::fs::read_to_string(cell_dir(dir, cell_id).join("result.json")).ok()?;
    serde_json::from_str::<CellResult>(&text)
        .ok()
        .filter(|r| r.id == cell_id)
}

fn failure(dir: &Path, cell_id: &str) -> Option<CellError> {
    let text = std::fs::read_to_string(cell_dir(dir, cell_id).join("error.json")).ok()?;
    serde_json::from_str::<CellError>(&text)
        .ok()
        .filter(|e| e.id == cell_id)
}

/// A cell's state, read from its files (the source of truth; `sweep.json` mirrors it).
pub fn cell_state(dir: &Path, cell_id: &str) -> (CellStatus, Option<String>) {
    if finished(dir, cell_id).is_some() {
        (CellStatus::Done, None)
    } else if LockFile::held_by_live_process(&lock_path(dir, cell_id)) {
        (CellStatus::Running, None)
    } else if let Some(e) = failure(dir, cell_id) {
        (CellStatus::Failed, Some(e.reason))
    } else {
        (CellStatus::Pending, None)
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Provenance of this process: version, git state, host, device, threads.
pub fn provenance() -> Provenance {
    let commit = git(&["rev-parse", "HEAD"]);
    let diff = commit.as_ref().and_then(|_| git(&["diff", "HEAD"]));
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Provenance {
        clirlab_version: env!("CARGO_PKG_VERSION").into(),
        git_dirty: diff.as_ref().map(|d| !d.is_empty()),
        git_diff_hash: diff.filter(|d| !d.is_empty()).map(|d| content_hash(&d, 16)),
        git_commit: commit,
        host,
        device: if cfg!(feature = "cuda") {
            format!(
                "cuda build (CUDA_VISIBLE_DEVICES={})",
                std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default()
            )
        } else {
            "cpu build".into()
        },
        threads: threads(),
        started_unix: now_unix(),
    }
}

/// The device a cell trained on, with the GPUs visible to its process.
fn device_label(device: ResolvedDevice) -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(visible) if device != ResolvedDevice::Cpu => format!("{device} (CUDA_VISIBLE_DEVICES={visible})"),
        _ => device.to_string(),
    }
}

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Summary of a finished `run`.
pub struct SweepOutcome {
    pub dir: PathBuf,
    pub trained: usize,
    pub skipped: usize,
    pub failed: Vec<(String, String)>,
}

/// Expands the experiment, writes each cell's `config.yaml` and `sweep.json`.
pub fn plan(loaded: &LoadedExperiment, results_root: &Path, jobs: usize) -> Result<(PathBuf, SweepRecord, Vec<Cell>)> {
    let cells = grid::expand(loaded)?;
    let baseline = grid::baseline_variant(loaded, &cells)?;
    let dir = experiment_dir(results_root, &loaded.experiment.name);
    std::fs::create_dir_all(dir.join("cells")).with_context(|| format!("creating {}", dir.display()))?;
    for cell in &cells {
        let path = cell_dir(&dir, &cell.id).join("config.yaml");
        let yaml = serde_yaml::to_string(&cell.config)?;
        if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
            write_atomic(&path, yaml.as_bytes())?;
        }
    }
    let record = SweepRecord {
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
                let (status, error) = cell_state(&dir, &c.id);
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
        provenance: provenance(),
    };
    write_json_atomic(&dir.join("sweep.json"), &record)?;
    Ok((dir, record, cells))
}

/// Re-reads every cell's state from its files into `sweep.json`.
pub fn refresh(dir: &Path) -> Result<SweepRecord> {
    let mut record = SweepRecord::read(dir)?;
    for c in &mut record.cells {
        (c.status, c.error) = cell_state(dir, &c.id);
    }
    write_json_atomic(&dir.join("sweep.json"), &record)?;
    Ok(record)
}

fn bars(quiet: bool, cells: usize) -> (MultiProgress, ProgressBar) {
    let bars = MultiProgress::with_draw_target(if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = bars.add(ProgressBar::new(cells as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} cells {msg}").expect("valid template"),
    );
    overall.set_prefix("sweep");
    (bars, overall)
}

/// Records in `error.json` and `log.txt` that cell `id` failed, and why.
pub fn record_failure(dir: &Path, id: &str, reason: &str) -> Result<()> {
    let error = CellError {
        id: id.to_string(),
        reason: reason.to_string(),
        ended_unix: now_unix(),
    };
    write_json_atomic(&cell_dir(dir, id).join("error.json"), &error)?;
    let log = cell_dir(dir, id).join("log.txt");
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    text.push_str(&format!("cell failed: {reason}\n"));
    write_atomic(&log, text.as_bytes())
}

/// Runs one planned cell in this process, under its lock; records a failure in `error.json`.
/// Returns `Ok(false)` when another live process holds the cell.
fn execute_cell(dir: &Path, cell: &Cell, dataset: &Dataset, artifacts: &Path, bar: &ProgressBar) -> Result<bool> {
    let Some(_lock) = LockFile::try_acquire(&lock_path(dir, &cell.id))? else {
        return Ok(false);
    };
    let _ = std::fs::remove_file(cell_dir(dir, &cell.id).join("error.json"));
    // A panic inside training (a bug, or a library assertion) fails this cell only.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_cell(cell, dataset, &cell_dir(dir, &cell.id), artifacts, bar)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(anyhow::anyhow!(
            "panicked: {}",
            what.unwrap_or_else(|| "unknown".into())
        ))
    });
    match outcome {
        Ok(result) => {
            tracing::info!(cell = %cell.id, seconds = result.total_seconds, "cell finished");
            Ok(true)
        }
        Err(err) => {
            let reason = format!("{err:#}");
            tracing::error!(cell = %cell.id, %reason, "cell failed");
            record_failure(dir, &cell.id, &reason)?;
            Ok(true)
        }
    }
}

/// Whether a cell in state `status` is to be run: pending ones, and failed ones on a retry.
pub fn wants_run(status: CellStatus, retry_failed: bool) -> bool {
    match status {
        CellStatus::Pending => true,
        CellStatus::Failed => retry_failed,
        CellStatus::Running | CellStatus::Done => false,
    }
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

/// Runs every unfinished cell of the experiment into `results_root/<name>/` and writes the report.
pub fn run(loaded: &LoadedExperiment, results_root: &Path, opts: RunOptions) -> Result<SweepOutcome> {
    anyhow::ensure!(opts.jobs >= 1, "--jobs: expected at least 1");
    let (dir, record, cells) = plan(loaded, results_root, opts.jobs)?;
    let artifacts = results_root.join(ARTIFACTS);
    let (bars, overall) = bars(opts.quiet, cells.len());
    let mut attempted: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut failed_now: Vec<String> = Vec::new();
    let skipped = record.cells.iter().filter(|c| c.status == CellStatus::Done).count();
    let datasets = load_unfinished_data(loaded, &dir, &cells, !opts.quiet)?;
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
                let step_bar = bars.add(ProgressBar::new(cell.config.train.steps as u64));
                step_bar.set_style(
                    ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} steps {msg}")
                        .expect("valid template"),
                );
                step_bar.set_prefix("train");
                let ran = execute_cell(&dir, cell, dataset, &artifacts, &step_bar)?;
                step_bar.finish_and_clear();
                overall.inc(1);
                if ran && failure(&dir, &cell.id).is_some() {
                    failed_now.push(cell.id.clone());
                    if opts.fail_fast {
                        break;
                    }
                }
            }
        } else {
            failed_now.extend(run_workers(&dir, &todo, opts, &overall)?);
        }
    }
    overall.finish_and_clear();
    let record = refresh(&dir)?;
    crate::report::write(&dir)?;
    let failed: Vec<(String, String)> = record
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Failed)
        .map(|c| (c.id.clone(), c.error.clone().unwrap_or_default()))
        .collect();
    let trained = attempted.iter().filter(|id| finished(&dir, id).is_some()).count();
    Ok(SweepOutcome {
        dir,
        trained,
        skipped,
        failed,
    })
}

/// Runs `todo` in up to `jobs` worker processes (`clirlab run-cell`), each with its share of
/// the cores and, with GPUs, its own device. Returns the ids of cells that failed.
fn run_workers(dir: &Path, todo: &[&Cell], opts: RunOptions, overall: &ProgressBar) -> Result<Vec<String>> {
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
            let log = std::fs::File::create(cell_dir(dir, &cell.id).join("log.txt"))?;
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
                    if failure(dir, &id).is_none() && !LockFile::held_by_live_process(&lock_path(dir, &id)) {
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

/// `clirlab run-cell`: runs one planned cell of the sweep in `dir` (a worker's job, or a
/// cluster task's). The cell's `config.yaml` was written at planning.
pub fn run_planned_cell(dir: &Path, cell_id: &str) -> Result<()> {
    let path = dir.join("sweep.json");
    let record = SweepRecord::read(dir)?;
    let planned = record
        .cells
        .iter()
        .find(|c| c.id == cell_id)
        .with_context(|| format!("{}: no cell `{cell_id}` in the plan", path.display()))?;
    let config_path = cell_dir(dir, cell_id).join("config.yaml");
    let config: CellConfig = serde_yaml::from_str(
        &std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?,
    )
    .with_context(|| format!("{}: not a cell configuration", config_path.display()))?;
    let cell = Cell {
        reason: planned.reason.clone(),
        id: planned.id.clone(),
        variant: planned.variant.clone(),
        assignment: planned.assignment.clone(),
        seed: planned.seed,
        config,
    };
    if finished(dir, cell_id).is_some() {
        return Ok(());
    }
    let dataset = data::load(&cell.config.data, false)?;
    let results_root = dir.parent().context("results folder has no parent")?;
    if !execute_cell(
        dir,
        &cell,
        &dataset,
        &results_root.join(ARTIFACTS),
        &ProgressBar::hidden(),
    )? {
        bail!("cell {cell_id} is being run by another process");
    }
    if let Some(e) = failure(dir, cell_id) {
        bail!("cell {cell_id} failed: {}", e.reason);
    }
    Ok(())
}

fn training_texts<'a>(cfg: &CellConfig, dataset: &'a Dataset) -> impl Iterator<Item = &'a str> + Send {
    let langs = cfg.data.languages.clone();
    let mono = dataset.mono.iter().flat_map(|p| [p.query.as_str(), p.passage.as_str()]);
    let cross = dataset
        .cross
        .iter()
        .filter(move |(lang, _)| langs.contains(lang))
        .flat_map(|(_, pairs)| pairs.iter().map(|p| p.query.as_str()));
    mono.chain(cross)
}

/// The cell's tokenizer, trained on the training text of its languages. For prepared data
/// sets it is stored with the data (`<data_dir>/tokenizers/`) and reused by every cell with
/// the same data, languages and vocabulary size; the synthetic set is cheap to redo.
fn tokenizer_for(cfg: &CellConfig, dataset: &Dataset) -> Result<TextEncoder> {
    let vocab = cfg.model.preset.vocab_size();
    if dataset.card.synthetic {
        return TextEncoder::train(training_texts(cfg, dataset), vocab);
    }
    let key = content_hash(
        &(
            &dataset.card.name,
            &dataset.card.files,
            &cfg.data.languages,
            vocab,
            TextEncoder::VERSION,
        ),
        16,
    );
    let dir = data::data_dir().join("tokenizers");
    let path = dir.join(format!("{key}.json"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = LockFile::acquire(&dir.join(format!("{key}.lock")))?;
    if path.is_file() {
        return TextEncoder::load(&path);
    }
    let tokenizer = TextEncoder::train(training_texts(cfg, dataset), vocab)?;
    tokenizer.save(&path)?;
    Ok(tokenizer)
}

/// Trains, retrieves and evaluates one cell into `cell_dir`; `result.json` comes last.
pub fn run_cell(
    cell: &Cell,
    dataset: &Dataset,
    cell_dir: &Path,
    artifacts: &Path,
    bar: &ProgressBar,
) -> Result<CellResult> {
    let started = Instant::now();
    let run_provenance = provenance();
    let cfg = &cell.config;
    std::fs::create_dir_all(cell_dir).with_context(|| format!("creating {}", cell_dir.display()))?;
    write_atomic(&cell_dir.join("config.yaml"), serde_yaml::to_string(cfg)?.as_bytes())?;

    let tokenizer = tokenizer_for(cfg, dataset)?;
    tokenizer.save(&cell_dir.join("tokenizer.json"))?;

    let paths = train::TrainPaths {
        checkpoint: &cell_dir.join("model.safetensors"),
        artifacts,
    };
    let trained = train::train(cfg, dataset, &tokenizer, &paths, |row| {
        bar.inc(1);
        if row.step % 10 == 0 {
            bar.set_message(format!("loss {:.3}  p(t) {:.2}", row.loss, row.target_share));
        }
    })?;
    let train_seconds = started.elapsed().as_secs_f64();
    let mut log = csv::Writer::from_writer(Vec::new());
    for row in &trained.log {
        log.serialize(row)?;
    }
    write_atomic(&cell_dir.join("train_log.csv"), &log.into_inner()?)?;

    let split = retrieval::run_split(trained.encoder.as_ref(), &tokenizer, dataset, cfg, "test", &cell.id)?;
    let mut trec = Vec::new();
    split.run.write_trec(&mut trec)?;
    write_atomic(&cell_dir.join("run.trec"), &trec)?;
    // (task prefix, split run): the test split, then the zero-shot set if any, whose tasks are
    // prefixed with its name so that they are reported apart.
    let mut evaluated = vec![(String::new(), split)];
    if let Some(zs) = &cfg.data.zero_shot {
        let zs_cfg = CellConfig {
            data: zs.data_config(&cfg.data),
            ..cfg.clone()
        };
        let zs_data = data::load(&zs_cfg.data, false)?;
        let zs_split = retrieval::run_split(
            trained.encoder.as_ref(),
            &tokenizer,
            &zs_data,
            &zs_cfg,
            "test",
            &cell.id,
        )?;
        let mut trec = Vec::new();
        zs_split.run.write_trec(&mut trec)?;
        write_atomic(&cell_dir.join("run.zero_shot.trec"), &trec)?;
        evaluated.push((format!("{}:", zs.dataset), zs_split));
    }

    let mut metrics = csv::Writer::from_writer(Vec::new());
    metrics.write_record(["lang", "task", "query_id", "metric", "value"])?;
    let mut means: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut n_queries = 0;
    for (prefix, split) in &evaluated {
        let per_query = cell_metrics(&split.qrels, &split.run)?;
        for QueryGroup {
            lang,
            task,
            query_ids: ids,
        } in &split.groups
        {
            let task = format!("{prefix}{task}");
            n_queries += ids.len();
            for (name, values) in &per_query {
                let mut sum = 0.0;
                for id in ids {
                    // Judged queries that retrieved nothing count as 0, as with `trec_eval -c`.
                    let v = values.get(id).copied().unwrap_or(0.0);
                    sum += v;
                    metrics.write_record([
                        lang.as_str(),
                        task.as_str(),
                        id.as_str(),
                        name.as_str(),
                        &format!("{v}"),
                    ])?;
                }
                means
                    .entry(format!("{lang}/{task}"))
                    .or_default()
                    .insert(name.clone(), sum / ids.len().max(1) as f64);
            }
        }
    }
    write_atomic(&cell_dir.join("metrics.csv"), &metrics.into_inner()?)?;

    let result = CellResult {
        id: cell.id.clone(),
        variant: cell.variant.clone(),
        seed: cell.seed,
        schedule_name: cfg.schedule_name.clone(),
        dataset: cfg.data.dataset.clone(),
        synthetic: cfg.data.dataset == synthetic::NAME,
        means,
        queries: n_queries,
        final_loss: trained.log.last().map(|r| r.loss).unwrap_or(f64::NAN),
        kept_step: trained.kept_step,
        best_validation_ndcg10: trained.best_validation,
        train_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        provenance: CellProvenance {
            run: Provenance {
                device: device_label(trained.device),
                ..run_provenance
            },
            seed: cell.seed,
            pid: std::process::id(),
            ended_unix: now_unix(),
            peak_memory_kib: peak_memory_kib(),
        },
    };
    write_json_atomic(&cell_dir.join("result.json"), &result)?;
    Ok(result)
}
