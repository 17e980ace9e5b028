//! One cell, end to end: under its lock, the tokenizer, training, retrieval of the test split
//! (in each of its `retrieval.settings`; the zero-shot set cross-lingually), per-query metrics
//! (and the multilingual setting's rank distance), and `result.json` last. Also the entry of
//! worker processes and cluster tasks (`clirlab run-cell`).

use super::paths::{self, CellFile};
use super::provenance::{device_label, provenance};
use super::records::{
    CellProvenance, CellResult, Provenance, SweepRecord, digest_outputs, failure, finished, write_result,
};
use super::state::{JOB_ALIVE, linked_folder, record_failure};
use crate::grid::{Cell, CellConfig, content_hash};
use crate::retrieval::{self, QueryGroup};
use crate::train;
use anyhow::{Context, Result, bail};
use clirlab_data::config::PairDesign;
use clirlab_data::format::{Dataset, Split};
use clirlab_data::{self as data, synthetic};
use clirlab_eval::cell::{RANK_DISTANCE, cell_metrics, language_task};
use clirlab_model::tokenizer::{Side, Tokenizer};
use clirlab_util::csv_guard::neutralise;
use clirlab_util::fs::write_atomic;
use clirlab_util::host::{now_unix, peak_memory_kib};
use clirlab_util::lock::LockFile;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// `run-cell` found its cell held by another live process: it did nothing (and, with
/// `--quiet`, says nothing, since a worker's output is the cell's `log.txt`, the holder's).
#[derive(Debug, thiserror::Error)]
#[error("cell {0} is being run by another process")]
pub struct HeldElsewhere(pub String);

/// Runs one planned cell in this process, under its lock; records a failure in `error.json`.
/// Returns `Ok(false)` when another live process holds the cell.
pub fn execute_cell(dir: &Path, cell: &Cell, dataset: &Dataset, artifacts: &Path, bar: &ProgressBar) -> Result<bool> {
    refuse_linked_folder(dir, &cell.id)?;
    let Some(_lock) = LockFile::try_acquire(&paths::cell_lock(dir, &cell.id), JOB_ALIVE)? else {
        return Ok(false);
    };
    execute_locked(dir, cell, dataset, artifacts, bar)?;
    Ok(true)
}

/// Nothing of a cell is written through a link out of the results folder.
fn refuse_linked_folder(dir: &Path, cell_id: &str) -> Result<()> {
    match linked_folder(dir, cell_id) {
        Some(link) => bail!("cell {cell_id}: {link}"),
        None => Ok(()),
    }
}

/// Runs cell `cell` while this process holds its lock; a failure is recorded in `error.json`.
fn execute_locked(dir: &Path, cell: &Cell, dataset: &Dataset, artifacts: &Path, bar: &ProgressBar) -> Result<()> {
    let _ = std::fs::remove_file(paths::cell_file(dir, &cell.id, CellFile::Error));
    // A panic inside training (a bug, or a library assertion) fails this cell only.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_cell(cell, dataset, &paths::cell_dir(dir, &cell.id), artifacts, bar)
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
            Ok(())
        }
        Err(err) => {
            let reason = format!("{err:#}");
            tracing::error!(cell = %cell.id, %reason, "cell failed");
            record_failure(dir, &cell.id, &reason)
        }
    }
}

/// `clirlab run-cell`: runs one planned cell of the sweep in `dir` (a worker's job, or a
/// cluster task's). The cell's `config.yaml` was written at planning.
pub fn run_planned_cell(dir: &Path, cell_id: &str) -> Result<()> {
    let path = paths::sweep_record(dir);
    let record = SweepRecord::read(dir)?;
    let planned = record
        .cells
        .iter()
        .find(|c| c.id == cell_id)
        .with_context(|| format!("{}: no cell `{cell_id}` in the plan", path.display()))?;
    let config_path = paths::cell_file(dir, cell_id, CellFile::Config);
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
    refuse_linked_folder(dir, cell_id)?;
    if finished(dir, cell_id).is_some() {
        return Ok(());
    }
    // The lock comes first: a worker that finds the cell held must not touch its `log.txt`
    // (its output, opened for appending by the launcher), which the holder writes.
    let Some(lock) = LockFile::try_acquire(&paths::cell_lock(dir, cell_id), JOB_ALIVE)? else {
        return Err(HeldElsewhere(cell_id.to_string()).into());
    };
    if finished(dir, cell_id).is_some() {
        return Ok(());
    }
    // This attempt's log starts empty (the launcher's append-mode handle writes from 0 again).
    let log = paths::cell_file(dir, cell_id, CellFile::Log);
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&log) {
        file.set_len(0).with_context(|| format!("emptying {}", log.display()))?;
    }
    let dataset = data::load(&cell.config.data, false)?;
    let results_root = dir.parent().context("results folder has no parent")?;
    execute_locked(
        dir,
        &cell,
        &dataset,
        &paths::artifacts_dir(results_root),
        &ProgressBar::hidden(),
    )?;
    drop(lock);
    if let Some(e) = failure(dir, cell_id) {
        bail!("cell {cell_id} failed: {}", e.reason);
    }
    Ok(())
}

/// The training text of a cell: monolingual pairs, the queries of its languages and, in the
/// rendered design, every rendering of its languages' training units (their passages too).
fn training_texts<'a>(cfg: &CellConfig, dataset: &'a Dataset) -> impl Iterator<Item = &'a str> + Send {
    let langs = cfg.data.languages.clone();
    let mono = dataset.mono.iter().flat_map(|p| [p.query.as_str(), p.passage.as_str()]);
    let cross = dataset
        .cross
        .iter()
        .filter(move |(lang, _)| langs.contains(lang))
        .flat_map(|(_, pairs)| pairs.iter().map(|p| p.query.as_str()));
    let rendered = cfg.data.train_pairs.design == PairDesign::Rendered;
    let langs = cfg.data.languages.clone();
    let units = dataset
        .units
        .iter()
        .filter(move |(lang, _)| rendered && langs.contains(lang))
        .flat_map(|(_, units)| units.iter().map(|u| u.text.as_str()));
    mono.chain(cross).chain(units)
}

/// The cell's tokenizer, trained on the training text of its languages. For prepared data
/// sets it is stored with the data (`<data_dir>/tokenizers/`) and reused by every cell with
/// the same data, languages and vocabulary size; the synthetic set is cheap to redo.
/// With `model.backbone`, the backbone's own tokenizer (and its prefixes).
pub(crate) fn tokenizer_for(cfg: &CellConfig, dataset: &Dataset) -> Result<Tokenizer> {
    if let Some(backbone) = &cfg.model.backbone {
        let dir = crate::train::backbone_dir(backbone)?;
        let shape = clirlab_model::bert::folder::Shape::read(&clirlab_model::bert::config_folder(&dir)?)?;
        return Tokenizer::load_backbone(
            &dir.join("tokenizer.json"),
            [
                cfg.model.prefix(Side::Query).to_string(),
                cfg.model.prefix(Side::Passage).to_string(),
            ],
            u32::try_from(shape.pad_id).context("a padding id beyond u32")?,
            shape.vocab,
        );
    }
    let vocab = cfg.model.preset.vocab_size();
    if dataset.card.synthetic {
        return Tokenizer::train(training_texts(cfg, dataset), vocab);
    }
    let key = content_hash(
        &(
            &dataset.card.name,
            &dataset.card.files,
            &cfg.data.languages,
            vocab,
            Tokenizer::VERSION,
            cfg.data.train_pairs.design,
        ),
        16,
    );
    let (dir, lock, path) = paths::tokenizer_cache(&data::data_dir(), &key);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = LockFile::acquire(&lock, JOB_ALIVE)?;
    if path.is_file() {
        return Tokenizer::load(&path);
    }
    let tokenizer = Tokenizer::train(training_texts(cfg, dataset), vocab)?;
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
    write_atomic(&CellFile::Config.at(cell_dir), serde_yaml::to_string(cfg)?.as_bytes())?;

    let tokenizer = tokenizer_for(cfg, dataset)?;
    tokenizer.save(&CellFile::Tokenizer.at(cell_dir))?;

    let train_paths = train::TrainPaths {
        checkpoint: &CellFile::Checkpoint.at(cell_dir),
        artifacts,
        job_alive: JOB_ALIVE,
    };
    let trained = train::train(cfg, dataset, &tokenizer, &train_paths, |row| {
        bar.inc(1);
        if row.step % 10 == 0 {
            bar.set_message(format!("loss {:.3}  p(t) {:.2}", row.loss, row.target_share));
        }
    })?;
    let train_seconds = started.elapsed().as_secs_f64();
    // Numbers only, so no field can start a spreadsheet formula (see util::csv_guard).
    let mut log = csv::Writer::from_writer(Vec::new());
    for row in &trained.log {
        log.serialize(row)?;
    }
    write_atomic(&CellFile::TrainLog.at(cell_dir), &log.into_inner()?)?;

    // One ranker for every evaluation of the trained encoder, so each text is encoded once.
    let dense = retrieval::Dense::new(trained.encoder.as_ref(), &tokenizer, cfg.model.max_len);
    let split = retrieval::run_split_with(&dense, dataset, &cfg.data, cfg.retrieval.top_k, Split::Test, &cell.id)?;
    let mut trec = Vec::new();
    split.run.write_trec(&mut trec)?;
    write_atomic(&CellFile::Run.at(cell_dir), &trec)?;
    // (task prefix, split run): the test split, in its other settings, then the zero-shot set if
    // any, whose tasks are prefixed with its name so that they are reported apart.
    let mut evaluated = vec![(String::new(), split)];
    evaluated.extend(other_settings(
        &dense,
        dataset,
        &cfg.data,
        &cfg.retrieval,
        &cell.id,
        cell_dir,
    )?);
    if let Some(zs) = &cfg.data.zero_shot {
        let zs_data_cfg = zs.data_config(&cfg.data);
        let zs_data = data::load(&zs_data_cfg, false)?;
        let zs_split = retrieval::run_split_with(
            &dense,
            &zs_data,
            &zs_data_cfg,
            cfg.retrieval.top_k,
            Split::Test,
            &cell.id,
        )?;
        let mut trec = Vec::new();
        zs_split.run.write_trec(&mut trec)?;
        write_atomic(&CellFile::ZeroShotRun.at(cell_dir), &trec)?;
        evaluated.push((format!("{}:", zs.dataset), zs_split));
    }

    let (metrics, means, n_queries) = evaluate(&evaluated)?;
    write_atomic(&CellFile::Metrics.at(cell_dir), &metrics)?;

    let result = CellResult {
        id: cell.id.clone(),
        variant: cell.variant.clone(),
        seed: cell.seed,
        schedule_name: cfg.schedule_name.clone(),
        dataset: cfg.data.dataset.clone(),
        synthetic: cfg.data.dataset == synthetic::NAME,
        means,
        queries: n_queries,
        final_loss: trained.log.last().map(|r| r.loss),
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
        outputs: digest_outputs(cell_dir)?,
        record_sha256: None,
    };
    write_result(&CellFile::Result.at(cell_dir), &result)?;
    Ok(result)
}

/// The test split of `dataset` in the settings of `retrieval` other than the cross-lingual one,
/// ranked by `ranker`, each run written to its file in `folder`: (task prefix, split run) pairs.
pub(crate) fn other_settings(
    ranker: &dyn retrieval::Ranker,
    dataset: &Dataset,
    data: &clirlab_data::DataConfig,
    retrieval: &crate::spec::RetrievalConfig,
    run_name: &str,
    folder: &Path,
) -> Result<Vec<(String, retrieval::SplitRun)>> {
    let runs = retrieval::settings::run_settings(
        ranker,
        dataset,
        data,
        retrieval.top_k,
        &retrieval.settings,
        Split::Test,
        run_name,
    )?;
    let mut out = Vec::new();
    for (setting, split) in runs {
        let mut trec = Vec::new();
        split.run.write_trec(&mut trec)?;
        write_atomic(&CellFile::setting_run(setting).at(folder), &trec)?;
        out.push((setting.task_prefix().to_string(), split));
    }
    Ok(out)
}

/// `<lang>/<task>` → metric → mean over queries.
pub(crate) type Means = BTreeMap<String, BTreeMap<String, f64>>;

/// The per-query metrics (`metrics.csv`), their means per language and task, and the number of
/// queries of `evaluated`: (task prefix, split run) pairs, the test split and the zero-shot set.
pub(crate) fn evaluate(evaluated: &[(String, retrieval::SplitRun)]) -> Result<(Vec<u8>, Means, usize)> {
    let mut metrics = csv::Writer::from_writer(Vec::new());
    metrics.write_record(["lang", "task", "query_id", "metric", "value"])?;
    let mut means: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut n_queries = 0;
    for (prefix, split) in evaluated {
        for QueryGroup {
            lang,
            task,
            query_ids: ids,
            qrels,
            rank_distance,
        } in &split.groups
        {
            // trec_eval refuses a run in which no judged query retrieved anything; every query
            // of such a group (BM25 across scripts) scores 0.
            let per_query = if ids.iter().any(|id| split.retrieved.contains(id)) {
                cell_metrics(qrels, &split.run)?
            } else {
                clirlab_eval::cell::CellMetric::ALL
                    .iter()
                    .map(|m| (*m, BTreeMap::new()))
                    .collect()
            };
            let task = format!("{prefix}{task}");
            n_queries += ids.len();
            // Ids and names come from the data: none may start a spreadsheet formula.
            let (lang_field, task_field) = (neutralise(lang), neutralise(&task));
            for (name, values) in &per_query {
                let mut sum = 0.0;
                for id in ids {
                    // Judged queries that retrieved nothing count as 0, as with `trec_eval -c`.
                    let v = values.get(id).copied().unwrap_or(0.0);
                    sum += v;
                    metrics.write_record([
                        lang_field.as_ref(),
                        task_field.as_ref(),
                        neutralise(id).as_ref(),
                        name.name(),
                        &format!("{v}"),
                    ])?;
                }
                means
                    .entry(language_task(lang, &task))
                    .or_default()
                    .insert(name.name().to_string(), sum / ids.len().max(1) as f64);
            }
            // Only the queries with a verse in two languages have a rank distance.
            let with_rd: Vec<(&String, f64)> = match rank_distance {
                Some(rd) => ids.iter().filter_map(|id| rd.get(id).map(|v| (id, *v))).collect(),
                None => Vec::new(),
            };
            for (id, v) in &with_rd {
                metrics.write_record([
                    lang_field.as_ref(),
                    task_field.as_ref(),
                    neutralise(id).as_ref(),
                    RANK_DISTANCE,
                    &format!("{v}"),
                ])?;
            }
            if !with_rd.is_empty() {
                means.entry(language_task(lang, &task)).or_default().insert(
                    RANK_DISTANCE.to_string(),
                    with_rd.iter().map(|(_, v)| v).sum::<f64>() / with_rd.len() as f64,
                );
            }
        }
    }
    Ok((metrics.into_inner()?, means, n_queries))
}
