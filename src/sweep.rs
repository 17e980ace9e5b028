//! Running an experiment: plan the cells, run each one that has no finished result (resume),
//! record status and provenance in `sweep.json`, then write the report.
//!
//! Results layout (`results/<experiment>/`):
//! `sweep.json`, `cells/<cell-id>/{config.yaml, tokenizer.json, train_log.csv, run.trec,
//! metrics.csv, result.json}`, `report/`. `result.json` is written last, atomically: its
//! presence with the cell's id means the cell is done.

use crate::config::LoadedExperiment;
use crate::data::format::Dataset;
use crate::data::{self, synthetic};
use crate::eval::cell::cell_metrics;
use crate::fsutil::{write_atomic, write_json_atomic};
use crate::grid::{self, Cell, CellConfig, content_hash};
use crate::retrieval::{self, QueryGroup};
use crate::tokenizer::TextEncoder;
use crate::train;
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Folder under the results root for artifacts shared across cells and experiments (teachers).
pub const ARTIFACTS: &str = ".artifacts";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    Pending,
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
    pub status: CellStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub clirlab_version: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub host: String,
    pub device: String,
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
    pub cells: Vec<PlannedCell>,
    pub provenance: Provenance,
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
    /// `<lang>/<task>` and `all` → metric → mean over queries.
    pub means: BTreeMap<String, BTreeMap<String, f64>>,
    pub queries: usize,
    pub final_loss: f64,
    /// Step whose weights were evaluated (the best validation step, or the last).
    pub kept_step: usize,
    pub best_validation_ndcg10: Option<f64>,
    pub train_seconds: f64,
    pub total_seconds: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub quiet: bool,
}

pub fn experiment_dir(results_root: &Path, experiment: &str) -> PathBuf {
    results_root.join(experiment)
}

/// The finished result of `cell_id` in `dir`, if there is one for exactly that id.
pub fn finished(dir: &Path, cell_id: &str) -> Option<CellResult> {
    let text = std::fs::read_to_string(dir.join("cells").join(cell_id).join("result.json")).ok()?;
    serde_json::from_str::<CellResult>(&text)
        .ok()
        .filter(|r| r.id == cell_id)
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn provenance() -> Provenance {
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Provenance {
        clirlab_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: commit,
        git_dirty: dirty,
        host,
        device: if cfg!(feature = "cuda") {
            "cuda".into()
        } else {
            "cpu".into()
        },
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// Summary of a finished `run`.
pub struct SweepOutcome {
    pub dir: PathBuf,
    pub trained: usize,
    pub skipped: usize,
    pub failed: Vec<(String, String)>,
}

/// Runs every unfinished cell of the experiment into `results_root/<name>/` and writes the report.
pub fn run(loaded: &LoadedExperiment, results_root: &Path, opts: RunOptions) -> Result<SweepOutcome> {
    let cells = grid::expand(loaded)?;
    let baseline = grid::baseline_variant(loaded, &cells)?;
    let dir = experiment_dir(results_root, &loaded.experiment.name);
    std::fs::create_dir_all(dir.join("cells")).with_context(|| format!("creating {}", dir.display()))?;
    let mut record = SweepRecord {
        experiment: loaded.experiment.name.clone(),
        source: loaded.source.clone(),
        dataset: loaded.experiment.data.dataset.clone(),
        synthetic: loaded.experiment.data.dataset == "synthetic",
        baseline,
        stats: loaded.experiment.stats.clone(),
        cells: cells
            .iter()
            .map(|c| PlannedCell {
                id: c.id.clone(),
                variant: c.variant.clone(),
                seed: c.seed,
                assignment: c.assignment.clone(),
                schedule_name: c.config.schedule_name.clone(),
                status: if finished(&dir, &c.id).is_some() {
                    CellStatus::Done
                } else {
                    CellStatus::Pending
                },
                error: None,
            })
            .collect(),
        provenance: provenance(),
    };
    write_json_atomic(&dir.join("sweep.json"), &record)?;

    let bars = MultiProgress::with_draw_target(if opts.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = bars.add(ProgressBar::new(cells.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} cells {msg}").expect("valid template"),
    );
    overall.set_prefix("sweep");
    let mut datasets: HashMap<String, Dataset> = HashMap::new();
    let (mut trained, mut skipped, mut failed) = (0, 0, Vec::new());
    for (i, cell) in cells.iter().enumerate() {
        overall.set_message(cell.id.clone());
        if record.cells[i].status == CellStatus::Done {
            tracing::info!(cell = %cell.id, "already finished: skipped");
            skipped += 1;
            overall.inc(1);
            continue;
        }
        let key = content_hash(&cell.config.data, 16);
        if !datasets.contains_key(&key) {
            datasets.insert(key.clone(), data::load(&cell.config.data)?);
        }
        let step_bar = bars.add(ProgressBar::new(cell.config.train.steps as u64));
        step_bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} steps {msg}").expect("valid template"),
        );
        step_bar.set_prefix("train");
        let outcome = run_cell(
            cell,
            &datasets[&key],
            &dir.join("cells").join(&cell.id),
            &results_root.join(ARTIFACTS),
            &step_bar,
        );
        step_bar.finish_and_clear();
        match outcome {
            Ok(result) => {
                tracing::info!(cell = %cell.id, seconds = result.total_seconds, "cell finished");
                record.cells[i].status = CellStatus::Done;
                trained += 1;
            }
            Err(err) => {
                let reason = format!("{err:#}");
                tracing::error!(cell = %cell.id, %reason, "cell failed");
                record.cells[i].status = CellStatus::Failed;
                record.cells[i].error = Some(reason.clone());
                failed.push((cell.id.clone(), reason));
            }
        }
        write_json_atomic(&dir.join("sweep.json"), &record)?;
        overall.inc(1);
    }
    overall.finish_and_clear();
    crate::report::write(&dir)?;
    Ok(SweepOutcome {
        dir,
        trained,
        skipped,
        failed,
    })
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

/// Trains, retrieves and evaluates one cell into `cell_dir`; `result.json` comes last.
pub fn run_cell(
    cell: &Cell,
    dataset: &Dataset,
    cell_dir: &Path,
    artifacts: &Path,
    bar: &ProgressBar,
) -> Result<CellResult> {
    let started = Instant::now();
    let cfg = &cell.config;
    std::fs::create_dir_all(cell_dir).with_context(|| format!("creating {}", cell_dir.display()))?;
    write_atomic(&cell_dir.join("config.yaml"), serde_yaml::to_string(cfg)?.as_bytes())?;

    let tokenizer = TextEncoder::train(training_texts(cfg, dataset), cfg.model.preset.vocab_size())?;
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

    let per_query = cell_metrics(&split.qrels, &split.run)?;
    let mut metrics = csv::Writer::from_writer(Vec::new());
    metrics.write_record(["lang", "task", "query_id", "metric", "value"])?;
    let mut means: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut n_queries = 0;
    for QueryGroup {
        lang,
        task,
        query_ids: ids,
    } in &split.groups
    {
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
                *means.entry("all".into()).or_default().entry(name.clone()).or_default() += v;
            }
            means
                .entry(format!("{lang}/{task}"))
                .or_default()
                .insert(name.clone(), sum / ids.len().max(1) as f64);
        }
    }
    if let Some(all) = means.get_mut("all") {
        for v in all.values_mut() {
            *v /= n_queries.max(1) as f64;
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
    };
    write_json_atomic(&cell_dir.join("result.json"), &result)?;
    Ok(result)
}
