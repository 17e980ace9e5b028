//! One function per subcommand: each calls the library and prints for humans.

use super::args::{Command, DataCommand, ImportCommand};
use super::choice::Flag;
use crate::run::launcher::slurm::{self, SubmitOptions};
use crate::run::{self, CellStatus, paths};
use crate::spec::{self, schedule_dirs};
use crate::stats::CompareOptions;
use crate::{eval, grid, report};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// Runs `command`.
pub fn dispatch(command: Command, quiet: bool) -> Result<()> {
    match command {
        Command::Run {
            experiment,
            sets,
            results,
            jobs,
            retry_failed,
            fail_fast,
            gpus,
        } => run_experiment(
            experiment,
            &sets,
            results,
            run::RunOptions {
                quiet,
                jobs,
                retry_failed,
                fail_fast,
                gpus,
            },
        ),
        Command::Eval {
            qrels,
            run,
            per_query,
            complete,
            max_ret,
            rel_level,
            measures,
        } => {
            let qrels_path = qrels;
            let run_path = run;
            let qrels = eval::Qrels::from_path(&qrels_path)?;
            let run = eval::Run::from_path(&run_path)?;
            let measures = if measures.is_empty() {
                vec!["official".to_string()]
            } else {
                measures
            };
            let measures = eval::parse_measures(&measures)?;
            let opts = eval::EvalOptions {
                average_complete: complete,
                max_ret,
                rel_level,
            };
            let evaluation = eval::evaluate(&qrels, &run, &measures, &opts).with_context(|| {
                format!(
                    "evaluating run file {} against {}",
                    run_path.display(),
                    qrels_path.display()
                )
            })?;
            out_raw!("{}", evaluation.to_trec_eval_string(per_query));
            Ok(())
        }
        command @ Command::Compare { .. } => compare(command),
        Command::Data(DataCommand::Prepare { name, langs, data_dir })
            if name == crate::data::prepare::openblas::NAME =>
        {
            anyhow::ensure!(langs.is_empty(), "--langs applies to udhr, not to {name}");
            let data_dir = data_dir.unwrap_or_else(crate::data::data_dir);
            let library = crate::data::prepare::openblas::prepare_openblas(&data_dir, !quiet)?;
            crate::model::kernels::blas::load(&library)?;
            crate::model::kernels::blas::self_check()?;
            if !quiet {
                out!("{}", library.display());
                out!("  {}", crate::model::kernels::blas::loaded_config().unwrap_or_default());
            }
            Ok(())
        }
        Command::Data(DataCommand::Prepare { name, langs, data_dir }) if crate::data::prepare::me5::is_model(&name) => {
            anyhow::ensure!(langs.is_empty(), "--langs applies to udhr, not to the model {name}");
            let data_dir = data_dir.unwrap_or_else(crate::data::data_dir);
            let ready = crate::data::prepare::me5::prepare_model(&name, &data_dir, !quiet)?;
            if !quiet {
                out!("{}", ready.root.display());
                out!("  tensors: {}", ready.card.tensor_count);
                out!("  parameters: {}", ready.card.parameters);
            }
            Ok(())
        }
        Command::Data(DataCommand::Prepare { name, langs, data_dir }) => {
            let req = crate::data::prepare::PrepareRequest {
                name,
                langs,
                data_dir: data_dir.unwrap_or_else(crate::data::data_dir),
                progress: !quiet,
            };
            let ready = crate::data::prepare::prepare(&req)?;
            if !quiet {
                out!("{}", ready.root.display());
                for (key, n) in &ready.card.counts {
                    out!("  {key}: {n}");
                }
            }
            Ok(())
        }
        Command::Data(DataCommand::Import(import)) => {
            let root = import_data(import)?;
            if !quiet {
                out!("{}", root.display());
            }
            Ok(())
        }
        Command::Export { model, out } => {
            let exported = crate::model::bert::export::export(&model, &out, !quiet)?;
            if !quiet {
                out!("{}", out.display());
                for file in &exported.files {
                    out!("  {file}");
                }
            }
            Ok(())
        }
        Command::Encode {
            model,
            side: Flag(side),
            file,
            output,
            batch_size,
            max_len,
        } => {
            let req = crate::model::bert::encode::EncodeRequest {
                model: &model,
                side,
                input: &file,
                batch_size,
                max_len,
                progress: !quiet,
            };
            match output {
                Some(path) => crate::util::fs::write_atomic_with(&path, ".jsonl", |tmp| {
                    let file = std::fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    crate::model::bert::encode::encode_file(&req, &mut out)?;
                    std::io::Write::flush(&mut out).with_context(|| format!("writing {}", path.display()))
                }),
                None => {
                    let mut out = std::io::BufWriter::new(super::PipeEnd(std::io::stdout().lock()));
                    crate::model::bert::encode::encode_file(&req, &mut out)?;
                    std::io::Write::flush(&mut out).context("writing to stdout")
                }
            }
        }
        Command::Submit {
            experiment,
            backend: Flag(backend),
            sets,
            results,
            slurm,
            retry_failed,
            dry_run,
            wait,
        } => submit(
            experiment,
            &sets,
            results,
            SubmitOptions {
                backend,
                retry_failed,
                progress: !quiet,
                wait,
                slurm: slurm.into(),
            },
            dry_run,
            quiet,
        ),
        Command::RunCell { results_dir, cell_id } => match run::run_planned_cell(&results_dir, &cell_id) {
            // A worker's output is the cell's log.txt, which belongs to the holder: say nothing.
            Err(e) if quiet && e.is::<run::cell::HeldElsewhere>() => std::process::exit(1),
            other => other,
        },
        Command::Status { results_dir } => status(&results_dir),
        Command::Plan { experiment, sets } => plan(&experiment, &sets),
        Command::Report {
            results_dir,
            against,
            out,
        } => {
            let mut dirs = vec![results_dir.clone()];
            let default_out = match &against {
                Some(other) => report::comparison_dir(&results_dir, other),
                None => paths::report_dir(&results_dir),
            };
            dirs.extend(against);
            let out = out.unwrap_or(default_out);
            report::write_to(&dirs, &out)?;
            if !quiet {
                out!("{}", paths::ReportFile::Html.at(&out).display());
            }
            Ok(())
        }
        command @ Command::Power { .. } => power(command),
        Command::Schema { markdown } => {
            if markdown {
                out!("{}", spec::keys::markdown()?.trim_end());
            } else {
                out!("{}", serde_yaml::to_string(&spec::Experiment::default())?.trim_end());
            }
            Ok(())
        }
        Command::Schedule { name_or_file, points } => {
            if points < 2 {
                bail!("--points: expected at least 2, found {points}");
            }
            let here = PathBuf::from("experiments").join("_");
            let schedule = spec::load_schedule(&name_or_file, &schedule_dirs(&here))?;
            out!("{name_or_file}: {schedule:?}");
            out!("{:>6}  {:>6}", "t", "p(t)");
            for i in 0..points {
                let t = i as f64 / (points - 1) as f64;
                out!("{t:>6.3}  {:>6.4}", schedule.share(t));
            }
            Ok(())
        }
    }
}

/// The failed cells as lines for the error message.
fn failure_list(failed: &[(String, String)]) -> String {
    failed
        .iter()
        .map(|(id, why)| format!("  {id}: {why}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `clirlab run`: runs the experiment, then writes its report.
fn run_experiment(experiment: PathBuf, sets: &[String], results: PathBuf, opts: run::RunOptions) -> Result<()> {
    let loaded = spec::load(&experiment, sets)?;
    let outcome = run::run(&loaded, &results, opts)?;
    if !outcome.damaged.is_empty() {
        eprintln!(
            "{} finished cell(s) were damaged and ran again:\n{}",
            outcome.damaged.len(),
            failure_list(&outcome.damaged)
        );
    }
    report::write(&outcome.dir)?;
    if !opts.quiet && !outcome.references.is_empty() {
        let computed = outcome
            .references
            .iter()
            .filter(|(_, o)| *o == run::reference::Outcome::Computed)
            .count();
        let reused = outcome
            .references
            .iter()
            .filter(|(_, o)| *o == run::reference::Outcome::Reused)
            .count();
        out!("reference rows: {computed} computed, {reused} reused");
    }
    if !opts.quiet {
        out!(
            "{} cells trained, {} already finished, {} failed; report: {}",
            outcome.trained,
            outcome.skipped,
            outcome.failed.len(),
            paths::ReportFile::Markdown
                .at(&paths::report_dir(&outcome.dir))
                .display()
        );
    }
    if !outcome.failed.is_empty() {
        bail!(
            "{} cell(s) failed (logs in their cell folders; rerun with --retry-failed):\n{}",
            outcome.failed.len(),
            failure_list(&outcome.failed)
        );
    }
    Ok(())
}

/// `clirlab compare`: evaluates the runs, tests them against the baseline, prints the table.
fn compare(command: Command) -> Result<()> {
    let Command::Compare {
        qrels,
        runs,
        baseline,
        metrics,
        test: Flag(test),
        correction: Flag(correction),
        missing: Flag(missing),
        permutations,
        seed,
        format: Flag(format),
    } = command
    else {
        unreachable!("dispatch passes `compare` only");
    };
    let qrels = eval::Qrels::from_path(&qrels)?;
    let metrics = if metrics.is_empty() {
        vec!["map".into(), "ndcg_cut.10".into()]
    } else {
        metrics
    };
    let measures = eval::parse_measures(&metrics)?;
    let (names, table) = eval::per_query_table(&qrels, &runs, &measures)?;
    let opts = CompareOptions {
        test,
        correction,
        missing,
        permutations,
        seed,
        ..CompareOptions::default()
    };
    let rows = crate::stats::compare_table(&table, &names, baseline.as_deref(), &opts)?;
    out_raw!("{}", crate::stats::format_comparisons(&rows, format));
    Ok(())
}

/// `clirlab power`: the components (from a results folder or the flags), then the table.
fn power(command: Command) -> Result<()> {
    let Command::Power {
        results_dir,
        task,
        metric,
        var_query,
        var_residual,
        var_seed,
        deterministic_baseline,
        effect,
        alpha,
        comparisons,
        correction,
        power,
        max_seeds,
        max_queries,
    } = command
    else {
        unreachable!("dispatch passes `power` only");
    };
    let flags = [var_query, var_residual, var_seed];
    let (components, family, folder_correction) = match (&results_dir, flags) {
        (Some(dir), [None, None, None]) => {
            let report = report::model::build(std::slice::from_ref(dir))?;
            let (all, family, correction) = report.plan_components(task.as_deref(), &metric)?;
            let pooled = crate::stats::pooled_components(&all).expect("plan_components returns at least one");
            out!(
                "{}: {} seed-aware comparison{} of {metric} (family of {family}, {} correction), components averaged:",
                dir.display(),
                all.len(),
                if all.len() == 1 { "" } else { "s" },
                correction.name()
            );
            (pooled, Some(family), Some(correction))
        }
        (Some(_), _) => bail!("RESULTS_DIR or --var-query/--var-residual/--var-seed: give one, not both"),
        (None, [Some(q), Some(e), Some(v)]) => (
            crate::stats::PlanComponents {
                var_query: q,
                var_residual: e,
                var_seed: v,
                deterministic_baseline,
            },
            None,
            None,
        ),
        (None, _) => bail!("give RESULTS_DIR, or all three of --var-query, --var-residual and --var-seed"),
    };
    let components = crate::stats::PlanComponents {
        deterministic_baseline: components.deterministic_baseline || deterministic_baseline,
        ..components
    };
    let m = comparisons.or(family).unwrap_or(1);
    if m == 0 {
        bail!("--comparisons: expected at least 1, found 0");
    }
    let correction = correction.map(|Flag(c)| c).or(folder_correction).unwrap_or_default();
    let per = crate::stats::per_comparison_alpha(alpha, correction, m);
    let rows = crate::stats::power_table(&components, effect, per, power, max_seeds, max_queries)?;
    out!(
        "var_query {:.6}, var_residual {:.6}, var_seed {:.6}{}",
        components.var_query,
        components.var_residual,
        components.var_seed,
        if components.deterministic_baseline {
            " (deterministic baseline)"
        } else {
            ""
        }
    );
    out!(
        "effect {effect}, power {power}, alpha {alpha} over {m} comparison{} ({}): {per:.6} per comparison",
        if m == 1 { "" } else { "s" },
        correction.name()
    );
    // Power is not monotone in the number of queries: the peak is shown beside the smallest n.
    out!(
        "{:>5}  {:>9}  {:>13}  {:>16}",
        "seeds",
        "queries",
        "seed-only SE",
        "peak (queries)"
    );
    for r in rows {
        let q = r.queries.map_or_else(|| format!(">{max_queries}"), |q| q.to_string());
        let peak = format!("{:.3} ({})", r.peak_power, r.peak_queries);
        out!("{:>5}  {:>9}  {:>13.6}  {:>16}", r.seeds, q, r.seed_floor_se, peak);
    }
    if components.var_seed > 0.0 {
        out!(
            "With 1 seed the seed variance cannot be estimated: the figure counts it, the query-level test would not."
        );
    }
    Ok(())
}

/// `clirlab submit`: plans, writes the job script, submits it (or prints it with
/// `--dry-run`); with `--wait`, settles the cells and writes the report when the job ends.
fn submit(
    experiment: PathBuf,
    sets: &[String],
    results: PathBuf,
    opts: SubmitOptions,
    dry_run: bool,
    quiet: bool,
) -> Result<()> {
    let loaded = spec::load(&experiment, sets)?;
    let (retry_failed, wait) = (opts.retry_failed, opts.wait);
    let Some(prepared) = slurm::prepare(&loaded, &results, &opts)? else {
        out!(
            "{}: no cell to submit (all finished or running{})",
            loaded.experiment.name,
            if retry_failed {
                ""
            } else {
                "; failed ones need --retry-failed"
            }
        );
        return Ok(());
    };
    let dir = prepared.dir.display();
    if dry_run {
        out_raw!("{}", prepared.script);
        out!(
            "# dry run: {} cells; submit with: sbatch {}",
            prepared.cells.len(),
            slurm::sh(&prepared.script_path().to_string_lossy())?
        );
        return Ok(());
    }
    let job = slurm::submit(&prepared, wait)?;
    if quiet {
        // Just the id, for scripts (as `sbatch --parsable`).
        out!("{}", job.job_id);
    } else {
        out!(
            "submitted Slurm job {} ({} cells); logs in {}\nwatch: squeue -j {}   or   clirlab status {dir}",
            job.job_id,
            prepared.cells.len(),
            prepared.folder.display(),
            job.job_id
        );
    }
    if wait {
        let job_id = job.job_id.clone();
        job.wait()?;
        let failed = slurm::settle(&prepared, &job_id)?;
        // The reference rows are computed here, once, after the array (as `run` does).
        let artifacts = paths::artifacts_dir(&results);
        for (key, outcome) in run::reference::ensure(&loaded, &prepared.dir, &artifacts, !quiet) {
            if let run::reference::Outcome::Failed(reason) = outcome {
                eprintln!("reference {key} failed: {reason}");
            }
        }
        report::write(&prepared.dir)?;
        if !quiet {
            out!(
                "job {job_id} ended: {} of {} cells finished; report: {}",
                prepared.cells.len() - failed.len(),
                prepared.cells.len(),
                paths::ReportFile::Markdown
                    .at(&paths::report_dir(&prepared.dir))
                    .display()
            );
        }
        if !failed.is_empty() {
            bail!(
                "{} cell(s) failed (logs in {} and the cell folders; resubmit with --retry-failed):\n{}",
                failed.len(),
                prepared.folder.display(),
                failure_list(&failed)
            );
        }
    }
    Ok(())
}

/// `clirlab status`: the cells by state, and the latest Slurm job.
fn status(results_dir: &std::path::Path) -> Result<()> {
    // Only reads: a read-only results folder can be looked at.
    let record = run::current(results_dir, run::Check::Contents)?;
    let count = |s: CellStatus| record.cells.iter().filter(|c| c.status == s).count();
    let damaged = match count(CellStatus::Damaged) {
        0 => String::new(),
        n => format!(", {n} damaged (`run` trains them again)"),
    };
    out!(
        "{}: {} cells — {} done, {} running, {} failed, {} pending{damaged}",
        record.experiment,
        record.cells.len(),
        count(CellStatus::Done),
        count(CellStatus::Running),
        count(CellStatus::Failed),
        count(CellStatus::Pending)
    );
    if let Some((folder, job)) = slurm::latest_job(results_dir) {
        let queue = crate::run::queue::queue_summary(&job.job_id)
            .map(|q| format!(": {q}"))
            .unwrap_or_default();
        out!(
            "Slurm job {} ({} cells, {}){queue}; its tasks' logs: {}",
            job.job_id,
            job.cells.len(),
            folder.display(),
            paths::task_log_pattern(&folder, &job.job_id).display()
        );
    }
    for c in &record.cells {
        let status = serde_json::to_value(c.status)?;
        let why = c.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
        out!("{:<8} {}{why}", status.as_str().unwrap_or("?"), c.id);
    }
    Ok(())
}

/// `clirlab plan`: the cells an experiment expands to.
fn plan(experiment: &std::path::Path, sets: &[String]) -> Result<()> {
    let loaded = spec::load(experiment, sets)?;
    let cells = grid::expand(&loaded)?;
    let baseline = grid::baseline_variant(&loaded, &cells)?;
    out!("{}: {} cells", loaded.experiment.name, cells.len());
    for c in &cells {
        let axes: Vec<String> = c.assignment.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mark = if baseline.as_deref() == Some(c.variant.as_str()) {
            "  [baseline]"
        } else {
            ""
        };
        out!("{}  seed={}  {}{}  ({})", c.id, c.seed, axes.join(" "), mark, c.reason);
    }
    Ok(())
}

/// `clirlab data import ...`: reads the files and writes the data set.
fn import_data(import: ImportCommand) -> Result<PathBuf> {
    use crate::data::format::Split;
    use crate::data::import;
    let (bench, target) = match import {
        ImportCommand::Beir {
            dir,
            query_lang,
            target,
        } => {
            let options = import::BeirOptions {
                doc_lang: target.doc_lang.clone(),
                query_lang: query_lang.clone(),
            };
            let mut bench = import::read_beir(&dir, &options)?;
            if let Some(file) = &target.train_pairs {
                let query_lang = query_lang.as_deref().unwrap_or(&target.doc_lang);
                bench.pairs = import::read_pairs(file, &target.doc_lang, query_lang)?;
            }
            (bench, target)
        }
        ImportCommand::Trec {
            corpus,
            topics,
            qrels,
            target,
        } => {
            let pair = |flag: &str, raw: &str| -> Result<(String, PathBuf)> {
                let (key, file) = raw
                    .split_once('=')
                    .with_context(|| format!("{flag} {raw:?}: expected KEY=FILE"))?;
                Ok((key.to_string(), PathBuf::from(file)))
            };
            let topics = topics.iter().map(|t| pair("--topics", t)).collect::<Result<Vec<_>>>()?;
            let qrels = qrels
                .iter()
                .map(|q| {
                    let (split, file) = pair("--qrels", q)?;
                    let split = match split.as_str() {
                        "test" => Split::Test,
                        "validation" | "dev" => Split::Validation,
                        "train" => Split::Train,
                        other => bail!("--qrels {q:?}: split {other:?} is not test, validation or train"),
                    };
                    Ok((split, file))
                })
                .collect::<Result<Vec<_>>>()?;
            let files = import::TrecFiles {
                corpus,
                doc_lang: target.doc_lang.clone(),
                topics,
                qrels,
            };
            let mut bench = import::read_trec(&files)?;
            if let Some(file) = &target.train_pairs {
                bench.pairs = import::read_pairs(file, &target.doc_lang, &target.doc_lang)?;
            }
            (bench, target)
        }
    };
    let data_dir = target.data_dir.unwrap_or_else(crate::data::data_dir);
    import::write_imported(bench, &target.name, &target.task, &data_dir, target.replace)
}
