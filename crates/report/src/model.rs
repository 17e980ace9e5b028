//! The report model: everything the writers show, computed once from one results folder or
//! two (compared). The writers (`plain_text`, `html`, `latex`, `plots`) only render it.
//!
//! Per-query values are averaged over the seeds of a grid point, then every statistic of a task
//! runs over the queries that all its systems were scored on, so that every comparison is
//! paired; queries left out that way are counted per folder and shown.
//!
//! Seeds: with `stats.unit: seeds` (the default), a comparison where either side has at least 2
//! seeds is made by the seed-aware test ([`stats::seed_test`]) on the per-seed values instead,
//! with the configured test's p kept beside it; the correction then runs over the family's
//! p-values as made. Such a report (any grid point with 2 seeds) also shows each grid point's
//! between-seed sd and each comparison's minimum detectable difference; a report whose grid
//! points all have one seed, or with `stats.unit: queries`, is the query-level one, unchanged.
//! The same test runs wherever a side's seed variance is known: reference rows (deterministic)
//! and one-seed grid points (which borrow the other side's seed variance) against a seeded
//! baseline, and every pair of the pairwise matrix.
//!
//! Languages: a task with queries of several languages is also reported per language, as a task
//! `<lang>/<task>` of its own (means, CIs, tests and corrections within it).

use anyhow::{Context, Result};
use clirlab_eval::cell::{CellMetric, RANK_DISTANCE, language_task, lower_is_better, task_order};
use clirlab_experiment::run::paths::{self, CellFile};
use clirlab_experiment::run::{self, CellResult, CellStatus, SweepRecord};
use clirlab_experiment::schedule::Schedule;
use clirlab_stats::{self as stats, CompareOptions, Comparison, Correction, Family, MeanCi, SeedTest, TestKind, Unit};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Confidence level of every interval in the report.
pub const CONFIDENCE: f64 = 0.95;

/// Significance level of the marks against the baseline and in the pairwise matrix.
pub const ALPHA: f64 = 0.05;

/// A stricter level, marked apart.
pub const ALPHA_STRICT: f64 = 0.01;

/// Power at which the minimum detectable difference of a comparison is given.
pub const POWER: f64 = 0.8;

/// Above this many systems in a task the pairwise matrix is left out: it grows quadratically,
/// and resampling tests over hundreds of pairs would dominate the time of writing the report.
pub const PAIRWISE_MAX_SYSTEMS: usize = 20;

/// One results folder.
pub struct Folder {
    /// The folder.
    pub dir: PathBuf,
    /// What its systems' labels start with when two folders are compared; empty otherwise.
    pub prefix: String,
    /// Its `sweep.json`.
    pub record: SweepRecord,
    /// Planned cells without a result, in plan order.
    pub missing: Vec<Missing>,
}

/// A planned cell without a result.
pub struct Missing {
    /// The cell id.
    pub id: String,
    /// Index into [`Report::variants`].
    pub variant: usize,
    /// Its state in words (`pending`, `failed`, …).
    pub status: &'static str,
    /// The error of a failed cell.
    pub error: Option<String>,
}

/// A grid point (of one folder), with its finished cells.
pub struct Variant {
    /// Unique over the report (prefixed with the folder when two are compared).
    pub id: String,
    /// The label shown in tables and plots.
    pub label: String,
    /// Index into [`Report::folders`].
    pub folder: usize,
    /// Its axis values (key path → value).
    pub assignment: BTreeMap<String, serde_json::Value>,
    /// The name of its curriculum schedule.
    pub schedule_name: String,
    /// Cells planned for it (one per seed).
    pub planned: usize,
    /// Its finished cells, in seed order.
    pub cells: Vec<Cell>,
    /// A reference row (BM25, the zero-shot backbone), not a grid point: no axis values, no
    /// cells, computed once; shown after the grid's rows and tested like them.
    pub reference: bool,
    /// (task, metric) → query id → one value per finished seed.
    values: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>>,
    /// (task, query id) → language.
    langs: BTreeMap<(String, String), String>,
}

/// A finished cell.
pub struct Cell {
    /// The cell's `result.json`.
    pub result: CellResult,
    /// (step, training loss) from `train_log.csv`.
    pub loss: Vec<(f64, f64)>,
}

/// A distinct curriculum schedule of the report.
pub struct ScheduleCurve {
    /// The label shown in tables and plots.
    pub label: String,
    /// The schedule.
    pub schedule: Schedule,
}

/// Mean of one metric with its interval, and the test against the baseline.
pub struct Stat {
    /// Mean over the task's queries with its interval.
    pub ci: MeanCi,
    /// The test against the baseline (none for the baseline itself, or without one).
    pub vs_baseline: Option<Comparison>,
    /// Sample sd over seeds of the grid point's per-seed means over the task's queries; NaN
    /// with one seed (or seeds scored on different queries).
    pub seed_sd: f64,
    /// Where `vs_baseline` is the seed-aware test: its details and the query-level p.
    pub seeds: Option<SeedStat>,
    /// In a seed-aware report: the smallest difference `vs_baseline` detects with power
    /// [`POWER`] at the per-comparison α of the correction ([`stats::per_comparison_alpha`])
    /// over the comparisons' family.
    pub mdd: Option<f64>,
    /// The SE and df of the difference `mdd` is computed from.
    pub difference_se_df: Option<(f64, f64)>,
    /// With `stats.equivalence_margin`: the TOST of `vs_baseline` and the verdict.
    pub equivalence: Option<Equivalence>,
}

/// Two one-sided tests of a comparison against the margin δ (`stats.equivalence_margin`), on
/// the SE and df of the test that made it (seed-aware, or the paired t on seed means).
#[derive(Debug, Clone, Copy)]
pub struct Equivalence {
    /// δ.
    pub margin: f64,
    /// The TOST p ([`stats::tost_p`]).
    pub p_tost: f64,
    /// Adjusted with the report's correction over the same family as the difference test.
    pub p_tost_adjusted: f64,
    /// Equivalent, different or inconclusive at [`ALPHA`].
    pub verdict: stats::Verdict,
}

/// The seed-aware side of a comparison.
#[derive(Clone)]
pub struct SeedStat {
    /// The seed-aware test.
    pub test: SeedTest,
    /// The configured test's unadjusted p on the seed-averaged values (queries only random).
    pub p_queries: f64,
    /// The configured (query-level) test.
    pub test_queries: TestKind,
}

/// One system on one task.
pub struct Row {
    /// Index into [`Report::variants`].
    pub variant: usize,
    /// One per metric, in [`Report::metrics`] order.
    pub stats: Vec<Stat>,
}

/// One system on the queries of one language of a task.
pub struct LangRow {
    /// The language.
    pub lang: String,
    /// Index into [`Report::variants`].
    pub variant: usize,
    /// Queries of the language.
    pub queries: usize,
    /// One per metric, in [`Report::metrics`] order.
    pub metrics: Vec<MeanCi>,
}

/// The results on one evaluation task (cross-lingual retrieval, or a prepared data set's task).
pub struct Task {
    /// The task's name.
    pub name: String,
    /// Queries every system of the task was scored on: all statistics use exactly these.
    pub queries: usize,
    /// Per folder: queries its systems were scored on that are not common to all systems.
    pub dropped: Vec<usize>,
    /// One row per system that has results on the task.
    pub rows: Vec<Row>,
    /// Per language and system.
    pub languages: Vec<LangRow>,
    /// Per metric (in [`Report::metrics`] order): every pair of rows (i < j) with
    /// `baseline` = row i and `system` = row j, corrected over all pairs; empty when the task has
    /// fewer than two or more than [`PAIRWISE_MAX_SYSTEMS`] systems; a metric the task has no
    /// value of has no pairs.
    pub pairwise: Vec<Vec<Comparison>>,
    /// Per metric (in [`Report::metrics`] order): whether the lower mean is the better (`RD`).
    pub lower_is_better: Vec<bool>,
}

impl Task {
    /// The row of `variant`.
    pub fn row(&self, variant: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.variant == variant)
    }

    /// Whether row `idx` has the best mean of metric `m` (the highest, or the lowest for a
    /// lower-is-better metric); ties are all best.
    pub fn is_best(&self, m: usize, idx: usize) -> bool {
        let means = self.rows.iter().map(|r| r.stats[m].ci.mean).filter(|x| x.is_finite());
        let best = if self.lower_is_better.get(m).copied().unwrap_or(false) {
            means.fold(f64::INFINITY, f64::min)
        } else {
            means.fold(f64::NEG_INFINITY, f64::max)
        };
        self.rows[idx].stats[m].ci.mean == best
    }

    /// The pairwise comparison of rows `i` and `j` (row positions, either order) on metric `m`.
    pub fn pair(&self, m: usize, i: usize, j: usize) -> Option<&Comparison> {
        let k = self.rows.len();
        if i == j || i >= k || j >= k {
            return None;
        }
        let (lo, hi) = (i.min(j), i.max(j));
        // Pairs are stored in order (0,1), (0,2), …, (1,2), …
        let index = lo * (2 * k - lo - 1) / 2 + (hi - lo - 1);
        self.pairwise.get(m)?.get(index)
    }
}

/// Everything a report shows, computed once from the results folders.
pub struct Report {
    /// Title of the report (the experiment's name or names).
    pub title: String,
    /// The results folders reported on.
    pub folders: Vec<Folder>,
    /// Report names of the metrics ([`CellMetric::ALL`], then `RD` when a multilingual setting
    /// was evaluated).
    pub metrics: Vec<String>,
    /// Every grid point of every folder.
    pub variants: Vec<Variant>,
    /// Index into `variants`.
    pub baseline: Option<usize>,
    /// The options of the significance tests.
    pub options: CompareOptions,
    /// `stats.unit` of the first folder.
    pub unit: Unit,
    /// `stats.family` of the first folder: what each correction runs over.
    pub family: Family,
    /// `stats.equivalence_margin` of the first folder.
    pub equivalence_margin: Option<f64>,
    /// The evaluation tasks, in order.
    pub tasks: Vec<Task>,
    /// The distinct schedules of the variants.
    pub schedules: Vec<ScheduleCurve>,
}

impl Report {
    /// Whether any folder holds synthetic data.
    pub fn synthetic(&self) -> bool {
        self.folders.iter().any(|f| f.record.synthetic)
    }

    /// The significance test in effect.
    pub fn test(&self) -> TestKind {
        self.options.test
    }

    /// The correction in effect (Tukey's p-values are already family-wise).
    pub fn correction(&self) -> Correction {
        if self.options.test == TestKind::Tukey {
            Correction::None
        } else {
            self.options.correction
        }
    }

    /// Whether seeds count (`stats.unit: seeds`) and some grid point has at least 2: the
    /// report then shows the seed columns.
    pub fn seed_aware(&self) -> bool {
        self.unit == Unit::Seeds && self.variants.iter().any(|v| v.cells.len() >= 2)
    }

    /// The planning components of every seed-aware comparison of `metric` (a report name,
    /// e.g. `nDCG@10`) on `task` (default: the only task), with the family size and the
    /// correction. Errors name the flag and list what there is.
    pub fn plan_components(
        &self,
        task: Option<&str>,
        metric: &str,
    ) -> Result<(Vec<stats::PlanComponents>, usize, Correction)> {
        let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        let task = match task {
            Some(t) => self
                .tasks
                .iter()
                .find(|x| x.name == t)
                .with_context(|| format!("--task: no task `{t}` in these results (tasks: {})", names.join(", ")))?,
            None if self.tasks.len() == 1 => &self.tasks[0],
            None => anyhow::bail!(
                "--task: these results have several tasks; name one of {}",
                names.join(", ")
            ),
        };
        let m = self
            .metrics
            .iter()
            .position(|x| x == metric)
            .with_context(|| format!("--metric: no metric `{metric}` (metrics: {})", self.metrics.join(", ")))?;
        let comparisons: Vec<&Stat> = task
            .rows
            .iter()
            .map(|r| &r.stats[m])
            .filter(|s| s.vs_baseline.is_some())
            .collect();
        let found: Vec<stats::PlanComponents> = comparisons
            .iter()
            .filter_map(|s| s.seeds.as_ref())
            .map(|d| stats::PlanComponents::from_test(&d.test))
            .collect();
        anyhow::ensure!(
            !found.is_empty(),
            "task {}, metric {metric}: no comparison was made by the seed-aware test (it needs a baseline, a grid \
             point with at least 2 seeds and stats.unit: seeds); give --var-query, --var-residual and --var-seed instead",
            task.name
        );
        Ok((found, comparisons.len(), self.correction()))
    }

    /// The families the corrections run over, in words (the report header says it).
    pub fn family_words(&self) -> String {
        let tasks = self.tasks.len();
        match self.family {
            Family::Metric => format!(
                "each family of the comparisons of one metric on one task against the baseline \
                 ({tasks} task{} × {} metrics, each its own family), and apart over all pairs of one metric on \
                 one task in the pairwise matrix (stats.family: metric)",
                if tasks == 1 { "" } else { "s" },
                self.metrics.len()
            ),
            Family::Report => format!(
                "one family of every comparison against the baseline in the report (all {tasks} task{} and {} \
                 metrics at once), and one of every pair of every pairwise matrix (stats.family: report)",
                if tasks == 1 { "" } else { "s" },
                self.metrics.len()
            ),
        }
    }

    /// Whether any row is a reference row.
    pub fn has_references(&self) -> bool {
        self.variants.iter().any(|v| v.reference)
    }

    /// Whether the report compares two folders.
    pub fn compared(&self) -> bool {
        self.folders.len() > 1
    }

    /// Every axis key of the grids, in order.
    pub fn axes(&self) -> Vec<String> {
        let keys: BTreeSet<&String> = self.variants.iter().flat_map(|v| v.assignment.keys()).collect();
        keys.into_iter().cloned().collect()
    }
}

/// The metric name handed to the tests; it also seeds the resampling tests, so it stays as
/// it always was: the metric, prefixed with the task when there are several.
fn test_name(tasks: usize, task: &str, metric: &str) -> String {
    if tasks > 1 {
        format!("{task}/{metric}")
    } else {
        metric.to_string()
    }
}

/// The label of a grid point from its axis values.
pub fn assignment_label(assignment: &BTreeMap<String, serde_json::Value>) -> String {
    if assignment.is_empty() {
        return "(single configuration)".into();
    }
    assignment
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An axis value as written in labels: strings bare, everything else as JSON.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn status_name(status: CellStatus) -> &'static str {
    match status {
        CellStatus::Failed => "failed",
        CellStatus::Running => "running",
        CellStatus::Done => "done, but its result could not be read",
        CellStatus::Pending => "not run",
        CellStatus::Damaged => "damaged (run it again)",
    }
}

/// The part of a cell's `config.yaml` the report needs.
#[derive(Deserialize)]
struct ScheduleOfCell {
    schedule_name: String,
    schedule: Schedule,
}

fn read_schedule(path: &Path) -> Result<ScheduleOfCell> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{}: keys `schedule_name` and `schedule`", path.display()))
}

fn read_metrics(path: &Path, v: &mut Variant) -> Result<()> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    for (line, record) in reader.records().enumerate() {
        let at = || format!("{}:{}", path.display(), line + 2);
        let record = record.with_context(at)?;
        anyhow::ensure!(
            record.len() == 5,
            "{}: expected 5 fields (lang,task,query_id,metric,value)",
            at()
        );
        let value: f64 = record[4]
            .parse()
            .with_context(|| format!("{}: expected a number in column `value`", at()))?;
        // A NaN would pass the parse and poison the grid point's means and tests.
        anyhow::ensure!(
            value.is_finite(),
            "{}: expected a finite number in column `value`, found {value}",
            at()
        );
        let (lang, task, query, metric) = (&record[0], &record[1], &record[2], &record[3]);
        v.langs.insert((task.to_string(), query.to_string()), lang.to_string());
        v.values
            .entry((task.to_string(), metric.to_string()))
            .or_default()
            .entry(query.to_string())
            .or_default()
            .push(value);
    }
    Ok(())
}

/// (step, loss) of a `train_log.csv`, found by column name.
fn read_loss(path: &Path) -> Result<Vec<(f64, f64)>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("reading {}", path.display()))?
        .clone();
    // A zero-shot cell takes no step: its log is empty, without even a header.
    if header.is_empty() && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Ok(Vec::new());
    }
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column `{name}`", path.display()))
    };
    let (step, loss) = (col("step")?, col("loss")?);
    let mut out = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let at = || format!("{}:{}", path.display(), line + 2);
        let record = record.with_context(at)?;
        let number = |i: usize, name: &str| -> Result<f64> {
            record
                .get(i)
                .unwrap_or("")
                .parse()
                .with_context(|| format!("{}: expected a number in column `{name}`", at()))
        };
        out.push((number(step, "step")?, number(loss, "loss")?));
    }
    Ok(out)
}

/// Label prefixes of compared folders: the experiment names, or, where they are the same, the
/// names of the folders holding them, or else A and B.
fn prefixes(dirs: &[PathBuf], records: &[SweepRecord]) -> Vec<String> {
    if records.len() < 2 {
        return vec![String::new(); records.len()];
    }
    let distinct = |names: &[String]| names.iter().collect::<BTreeSet<_>>().len() == names.len();
    let names: Vec<String> = records.iter().map(|r| r.experiment.clone()).collect();
    if distinct(&names) {
        return names;
    }
    let parents: Vec<String> = dirs
        .iter()
        .zip(records)
        .map(|(d, r)| {
            let parent = std::fs::canonicalize(d)
                .ok()
                .and_then(|p| {
                    p.parent()
                        .and_then(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            format!("{parent}/{}", r.experiment)
        })
        .collect();
    if distinct(&parents) {
        return parents;
    }
    (0..records.len())
        .map(|i| char::from(b'A' + i as u8).to_string())
        .collect()
}

/// Reads the folders (the first one's baseline and statistics settings apply) and computes
/// the report.
pub fn build(dirs: &[PathBuf]) -> Result<Report> {
    let records = dirs.iter().map(|d| SweepRecord::read(d)).collect::<Result<Vec<_>>>()?;
    let prefixes = prefixes(dirs, &records);
    let mut folders = Vec::new();
    let mut variants: Vec<Variant> = Vec::new();
    let mut schedules: Vec<ScheduleCurve> = Vec::new();
    for (f, (dir, record)) in dirs.iter().zip(records).enumerate() {
        let prefix = &prefixes[f];
        let mut missing = Vec::new();
        for planned in &record.cells {
            let id = if prefix.is_empty() {
                planned.variant.clone()
            } else {
                format!("{prefix}/{}", planned.variant)
            };
            let pos = match variants.iter().position(|v| v.id == id) {
                Some(p) => p,
                None => {
                    let label = assignment_label(&planned.assignment);
                    let config = read_schedule(&paths::cell_file(dir, &planned.id, CellFile::Config))?;
                    if !schedules.iter().any(|s| s.schedule == config.schedule) {
                        let clash = schedules.iter().any(|s| s.label == config.schedule_name);
                        schedules.push(ScheduleCurve {
                            label: if clash {
                                format!("{} ({label})", config.schedule_name)
                            } else {
                                config.schedule_name.clone()
                            },
                            schedule: config.schedule,
                        });
                    }
                    variants.push(Variant {
                        id,
                        label: if prefix.is_empty() {
                            label
                        } else {
                            format!("{prefix}: {label}")
                        },
                        folder: f,
                        assignment: planned.assignment.clone(),
                        schedule_name: config.schedule_name,
                        planned: 0,
                        cells: Vec::new(),
                        reference: false,
                        values: BTreeMap::new(),
                        langs: BTreeMap::new(),
                    });
                    variants.len() - 1
                }
            };
            let v = &mut variants[pos];
            v.planned += 1;
            // A cell whose outputs differ from its result.json is reported as damaged, not used.
            let intact =
                run::finished(dir, &planned.id).filter(|r| run::damage(dir, r, run::Check::Contents).is_none());
            let Some(result) = intact else {
                let (status, error) = run::checked_state(dir, &planned.id, run::Check::Contents);
                missing.push(Missing {
                    id: planned.id.clone(),
                    variant: pos,
                    status: status_name(status),
                    error: error.or_else(|| planned.error.clone()),
                });
                continue;
            };
            read_metrics(&paths::cell_file(dir, &planned.id, CellFile::Metrics), v)?;
            let loss = read_loss(&paths::cell_file(dir, &planned.id, CellFile::TrainLog))?;
            v.cells.push(Cell { result, loss });
        }
        folders.push(Folder {
            // `results/x/` and `./results/x` are one folder: the report says it the same way.
            dir: dir.components().collect(),
            prefix: prefix.clone(),
            record,
            missing,
        });
    }

    // The reference rows come after every grid point, so that tables list them apart.
    for (f, folder) in folders.iter_mut().enumerate() {
        for planned in folder.record.references.clone() {
            let id = if folder.prefix.is_empty() {
                format!("{}/{}", paths::REFERENCES, planned.key)
            } else {
                format!("{}/{}/{}", folder.prefix, paths::REFERENCES, planned.key)
            };
            let mut v = Variant {
                id,
                label: if folder.prefix.is_empty() {
                    planned.label.clone()
                } else {
                    format!("{}: {}", folder.prefix, planned.label)
                },
                folder: f,
                assignment: BTreeMap::new(),
                schedule_name: String::new(),
                planned: 1,
                cells: Vec::new(),
                reference: true,
                values: BTreeMap::new(),
                langs: BTreeMap::new(),
            };
            if run::finished_reference(&folder.dir, &planned.key).is_some() {
                let metrics = CellFile::Metrics.at(&paths::reference_dir(&folder.dir, &planned.key));
                read_metrics(&metrics, &mut v)?;
            } else {
                folder.missing.push(Missing {
                    id: format!("{}/{}", paths::REFERENCES, planned.key),
                    variant: variants.len(),
                    status: "not computed (or damaged): run again",
                    error: None,
                });
            }
            variants.push(v);
        }
    }

    let first = &folders[0].record;
    let options = CompareOptions {
        test: first.stats.test,
        correction: first.stats.correction,
        permutations: first.stats.permutations,
        bootstrap_samples: first.stats.bootstrap_samples,
        seed: first.stats.seed,
        confidence: CONFIDENCE,
        ..CompareOptions::default()
    };
    let baseline = first.baseline.as_ref().and_then(|b| {
        let id = if folders[0].prefix.is_empty() {
            b.clone()
        } else {
            format!("{}/{b}", folders[0].prefix)
        };
        variants.iter().position(|v| v.id == id && !v.cells.is_empty())
    });
    let mut metrics: Vec<String> = CellMetric::ALL.iter().map(|m| m.name().to_string()).collect();
    // The language bias exists only where a multilingual setting ran: no column otherwise.
    if variants
        .iter()
        .any(|v| v.values.keys().any(|(_, m)| m == RANK_DISTANCE))
    {
        metrics.push(RANK_DISTANCE.to_string());
    }
    refuse_disjoint_folders(&folders, &variants)?;
    split_languages(&mut variants);
    let mut task_names: Vec<String> = variants
        .iter()
        .flat_map(|v| v.values.keys().map(|(t, _)| t.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Each pooled task, then its languages apart.
    task_names.sort_by(|a, b| task_order(a).cmp(&task_order(b)));
    let unit = first.stats.unit;
    let (family, margin) = (first.stats.family, first.stats.equivalence_margin);
    let seed_aware = unit == Unit::Seeds && variants.iter().any(|v| v.cells.len() >= 2);
    let mut tasks = Vec::new();
    for name in &task_names {
        tasks.push(build_task(
            name,
            task_names.len(),
            &variants,
            folders.len(),
            &metrics,
            baseline,
            &options,
            seed_aware,
            margin,
        )?);
    }
    let correction = if options.test == TestKind::Tukey {
        Correction::None
    } else {
        options.correction
    };
    if family == Family::Report {
        correct_over_report(&mut tasks, correction);
    }
    if margin.is_some() {
        equivalence_verdicts(&mut tasks, family, correction);
    }
    let title = folders
        .iter()
        .map(|f| {
            if f.prefix.is_empty() {
                f.record.experiment.clone()
            } else {
                f.prefix.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" vs ");
    Ok(Report {
        title,
        folders,
        metrics,
        variants,
        baseline,
        options,
        unit,
        family,
        equivalence_margin: margin,
        tasks,
        schedules,
    })
}

/// Folders compared on different data sets that share no scored query have nothing to
/// compare: an error naming each folder's data set, not a report under the first one's name.
fn refuse_disjoint_folders(folders: &[Folder], variants: &[Variant]) -> Result<()> {
    let datasets: BTreeSet<&str> = folders.iter().map(|f| f.record.dataset.as_str()).collect();
    if folders.len() < 2 || datasets.len() < 2 {
        return Ok(());
    }
    let scored = |f: usize| -> BTreeSet<(&str, &str)> {
        variants
            .iter()
            .filter(|v| v.folder == f)
            .flat_map(|v| v.values.iter())
            .flat_map(|((task, _), queries)| queries.keys().map(move |q| (task.as_str(), q.as_str())))
            .collect()
    };
    let first = scored(0);
    let shared = (1..folders.len()).all(|f| scored(f).intersection(&first).next().is_some());
    let named: Vec<String> = folders
        .iter()
        .map(|f| format!("{} (data set `{}`)", f.dir.display(), f.record.dataset))
        .collect();
    anyhow::ensure!(
        shared,
        "{}: no query is scored in both; expected results folders on the same data set (or sharing its queries)",
        named.join(" and ")
    );
    Ok(())
}

/// Adds, for every task whose queries come from two or more languages, one task per language
/// (`<lang>/<task>`, [`language_task`]) with that language's queries only, so that each
/// language gets its own means, CIs and tests against the baseline (an effect pooled over
/// languages can hide one that only a low-resource language shows, or the reverse).
fn split_languages(variants: &mut [Variant]) {
    let mut languages: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for v in variants.iter() {
        for ((task, _), lang) in &v.langs {
            languages.entry(task).or_default().insert(lang);
        }
    }
    let several: BTreeSet<String> = languages
        .into_iter()
        .filter(|(_, langs)| langs.len() >= 2)
        .map(|(task, _)| task.to_string())
        .collect();
    for v in variants.iter_mut() {
        let mut split = Vec::new();
        for ((task, metric), per_query) in &v.values {
            if !several.contains(task) {
                continue;
            }
            for (query, values) in per_query {
                if let Some(lang) = v.langs.get(&(task.clone(), query.clone())) {
                    split.push((
                        language_task(lang, task),
                        metric.clone(),
                        query.clone(),
                        values.clone(),
                        lang.clone(),
                    ));
                }
            }
        }
        for (task, metric, query, values, lang) in split {
            v.values
                .entry((task.clone(), metric))
                .or_default()
                .insert(query.clone(), values);
            v.langs.insert((task, query), lang);
        }
    }
}

/// One variant's values on (task, metric) as seeds × `queries` (in order), or none when a
/// seed lacks one of the queries (the seeds cannot be lined up).
fn seed_rows(v: &Variant, task: &str, metric: &str, queries: &BTreeSet<&str>) -> Option<Vec<Vec<f64>>> {
    let per_query = v.values.get(&(task.to_string(), metric.to_string()))?;
    // A reference row is one run without cells.
    let seeds = if v.reference { 1 } else { v.cells.len() };
    let mut rows = vec![Vec::with_capacity(queries.len()); seeds];
    for q in queries {
        let values = per_query.get(*q)?;
        if values.len() != seeds {
            return None;
        }
        for (row, x) in rows.iter_mut().zip(values) {
            row.push(*x);
        }
    }
    Some(rows)
}

/// How a variant varies from run to run: a reference row (BM25, the zero-shot model) is
/// deterministic, a grid point is trained (even with one seed).
fn runs_of(v: &Variant) -> stats::Runs {
    if v.reference {
        stats::Runs::Deterministic
    } else {
        stats::Runs::Trained
    }
}

/// Puts the seed-aware test of `system` against `baseline` on (task, metric) in place of the
/// query-level comparison `c` (its family and correction are set by the caller), and returns
/// its details; none, leaving `c` as it is, where the seeds cannot be lined up or neither
/// side's seed variance is known (one trained seed against one, or against a reference).
fn seed_comparison(
    c: &mut Comparison,
    system: &Variant,
    baseline: &Variant,
    task: &str,
    metric: &str,
    common: &BTreeSet<&str>,
) -> Result<Option<SeedStat>> {
    let (Some(a), Some(b)) = (
        seed_rows(system, task, metric, common),
        seed_rows(baseline, task, metric, common),
    ) else {
        return Ok(None);
    };
    if a.is_empty() || b.is_empty() || common.is_empty() {
        return Ok(None);
    }
    let t = stats::seed_test_with(&a, &b, [runs_of(system), runs_of(baseline)], CONFIDENCE)?;
    let known = |s: &stats::SeedSource| matches!(s, stats::SeedSource::Own | stats::SeedSource::Borrowed);
    if !t.seed_source.iter().any(known) {
        return Ok(None);
    }
    let source = |side: &str, s: stats::SeedSource| match s {
        stats::SeedSource::Borrowed => {
            format!("; {side}'s seed variance borrowed from the other side (one seed cannot estimate its own)")
        }
        stats::SeedSource::Unknown => format!("; {side}'s seed variance unknown (one seed, nothing to borrow)"),
        stats::SeedSource::Own | stats::SeedSource::Deterministic => String::new(),
    };
    let count = |v: &Variant, rows: &[Vec<f64>]| {
        if v.reference {
            "deterministic".to_string()
        } else {
            rows.len().to_string()
        }
    };
    c.method = format!(
        "seed-aware t ({} x {} seeds, queries and seeds random{}{}), satterthwaite df = {:.2}; \
         se^2 = between seeds {:.3e} + query interaction {:.3e}; query-level {} test: p = {}",
        count(system, &a),
        count(baseline, &b),
        source("system", t.seed_source[0]),
        source("baseline", t.seed_source[1]),
        t.df,
        t.between_part,
        t.interaction_part,
        c.test.name(),
        c.p_value
    );
    let stat = SeedStat {
        test: t,
        p_queries: c.p_value,
        test_queries: c.test,
    };
    c.test = TestKind::Seeds;
    c.statistic_name = "t";
    c.statistic = t.t;
    c.df = Some(t.df);
    c.p_value = t.p_value;
    c.ci_low = t.ci_low;
    c.ci_high = t.ci_high;
    c.ci_method = "seed-aware t".to_string();
    Ok(Some(stat))
}

/// Replaces the query-level comparisons (against `baseline`, one family) by the seed-aware
/// test wherever a side's seed variance is known ([`seed_comparison`]: grid points with 2
/// seeds or more, one-seed grid points against a seeded baseline, reference rows), corrects
/// the family again, and returns the details and every row's minimum detectable difference,
/// by system id.
#[allow(clippy::too_many_arguments)]
fn seed_aware_rows(
    rows: &mut [Comparison],
    variants: &[Variant],
    baseline: usize,
    task: &str,
    metric: &str,
    common: &BTreeSet<&str>,
    means: &dyn Fn(&str) -> Option<Vec<f64>>,
    options: &CompareOptions,
) -> Result<(BTreeMap<String, SeedStat>, BTreeMap<String, MddBasis>)> {
    let mut details = BTreeMap::new();
    for c in rows.iter_mut() {
        let Some(v) = variants.iter().find(|v| v.id == c.system) else {
            continue;
        };
        if let Some(stat) = seed_comparison(c, v, &variants[baseline], task, metric, common)? {
            details.insert(c.system.clone(), stat);
        }
    }
    if !details.is_empty() {
        let adjusted = stats::adjust(&rows.iter().map(|c| c.p_value).collect::<Vec<_>>(), options.correction);
        for (c, p) in rows.iter_mut().zip(adjusted) {
            // Tukey's own rows are family-wise already; the seed-aware ones take the correction.
            if c.test != TestKind::Tukey {
                c.p_adjusted = p;
                c.correction = options.correction;
            }
        }
    }
    // Tukey's HSD is bounded like Bonferroni over the baseline's comparisons for planning.
    let correction = if options.test == TestKind::Tukey {
        Correction::Bonferroni
    } else {
        options.correction
    };
    let alpha = stats::per_comparison_alpha(ALPHA, correction, rows.len());
    let mut mdd = BTreeMap::new();
    for c in rows.iter() {
        let (se, df) = se_df(c, details.get(&c.system), means);
        mdd.insert(
            c.system.clone(),
            (stats::min_detectable_difference(se, df, alpha, POWER), se, df),
        );
    }
    Ok((details, mdd))
}

/// A comparison's MDD at its family's α, with the SE and df it is computed from.
type MddBasis = (f64, f64, f64);

/// The SE and df of comparison `c`'s difference: the seed-aware test's where it made it,
/// else the paired t's on the seed-averaged differences (`means` by system id).
fn se_df(c: &Comparison, seed: Option<&SeedStat>, means: &dyn Fn(&str) -> Option<Vec<f64>>) -> (f64, f64) {
    if let Some(d) = seed {
        return (d.test.se, d.test.df);
    }
    match (means(&c.system), means(&c.baseline)) {
        (Some(y), Some(x)) if x.len() >= 2 => {
            let d: Vec<f64> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
            let n = d.len() as f64;
            let m = d.iter().sum::<f64>() / n;
            let var = d.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
            ((var / n).sqrt(), n - 1.0)
        }
        _ => (f64::NAN, f64::NAN),
    }
}

/// The TOST p of comparison `c` against `margin` (unadjusted; the verdict is made once the
/// family is known, [`equivalence_verdicts`]).
fn equivalence_of(
    c: &Comparison,
    seed: Option<&SeedStat>,
    means: &dyn Fn(&str) -> Option<Vec<f64>>,
    margin: f64,
) -> Equivalence {
    let (se, df) = se_df(c, seed, means);
    let p = stats::tost_p(c.mean_diff, se, df, margin);
    Equivalence {
        margin,
        p_tost: p,
        p_tost_adjusted: p,
        verdict: stats::Verdict::of(c.p_adjusted, p, ALPHA),
    }
}

/// Corrects the TOST p-values of each family ([`Family`]: one metric of one task, or the
/// whole report) with the report's correction and sets every verdict from the difference
/// test's adjusted p and the adjusted TOST p.
fn equivalence_verdicts(tasks: &mut [Task], family: Family, correction: Correction) {
    let mut families: Vec<Vec<&mut Stat>> = Vec::new();
    for task in tasks.iter_mut() {
        let metrics = task.rows.first().map_or(0, |r| r.stats.len());
        let mut per_metric: Vec<Vec<&mut Stat>> = (0..metrics).map(|_| Vec::new()).collect();
        for row in task.rows.iter_mut() {
            for (m, stat) in row.stats.iter_mut().enumerate() {
                if stat.equivalence.is_some() && stat.vs_baseline.is_some() {
                    per_metric[m].push(stat);
                }
            }
        }
        families.extend(per_metric);
    }
    if family == Family::Report {
        let all: Vec<&mut Stat> = families.into_iter().flatten().collect();
        families = vec![all];
    }
    for members in families.iter_mut() {
        let raw: Vec<f64> = members
            .iter()
            .map(|s| s.equivalence.as_ref().map_or(f64::NAN, |e| e.p_tost))
            .collect();
        for (stat, p) in members.iter_mut().zip(stats::adjust(&raw, correction)) {
            let p_difference = stat.vs_baseline.as_ref().map_or(f64::NAN, |c| c.p_adjusted);
            if let Some(e) = stat.equivalence.as_mut() {
                e.p_tost_adjusted = p;
                e.verdict = stats::Verdict::of(p_difference, p, ALPHA);
            }
        }
    }
}

/// With `stats.family: report`, corrects every comparison against the baseline of the report
/// as one family, and every pair of the pairwise matrices as another (Tukey's HSD keeps its
/// own family-wise p-values).
fn correct_over_report(tasks: &mut [Task], correction: Correction) {
    let n_tasks = tasks.len();
    let mut vs: Vec<&mut Comparison> = Vec::new();
    let mut pairs: Vec<&mut Comparison> = Vec::new();
    let mut mdds: Vec<(&mut Option<f64>, (f64, f64))> = Vec::new();
    for task in tasks.iter_mut() {
        for row in task.rows.iter_mut() {
            for stat in row.stats.iter_mut() {
                let Some(c) = stat.vs_baseline.as_mut() else { continue };
                if let Some(se_df) = stat.difference_se_df
                    && c.test != TestKind::Tukey
                {
                    mdds.push((&mut stat.mdd, se_df));
                }
                vs.push(c);
            }
        }
        pairs.extend(task.pairwise.iter_mut().flatten());
    }
    // The MDDs at the per-comparison α of the whole report's family.
    let size = vs.iter().filter(|c| c.test != TestKind::Tukey).count();
    let alpha = stats::per_comparison_alpha(ALPHA, correction, size);
    for (mdd, (se, df)) in mdds {
        *mdd = Some(stats::min_detectable_difference(se, df, alpha, POWER));
    }
    for (members, what) in [(vs, "against the baseline"), (pairs, "of the pairwise matrices")] {
        let members: Vec<&mut Comparison> = members.into_iter().filter(|c| c.test != TestKind::Tukey).collect();
        let size = members.len();
        let family = format!("every comparison {what} in the report ({size}, over {n_tasks} tasks and all metrics)");
        let raw: Vec<f64> = members.iter().map(|c| c.p_value).collect();
        for (c, p) in members.into_iter().zip(stats::adjust(&raw, correction)) {
            c.p_adjusted = p;
            c.correction = correction;
            c.family = family.clone();
            c.family_size = size;
        }
    }
}

/// Per-query means over seeds of one variant on (task, metric), restricted to `queries`.
fn seed_means(v: &Variant, task: &str, metric: &str, queries: &BTreeSet<&str>) -> BTreeMap<String, f64> {
    v.values
        .get(&(task.to_string(), metric.to_string()))
        .into_iter()
        .flatten()
        .filter(|(q, _)| queries.contains(q.as_str()))
        .map(|(q, vals)| (q.clone(), vals.iter().sum::<f64>() / vals.len() as f64))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn build_task(
    name: &str,
    n_tasks: usize,
    variants: &[Variant],
    n_folders: usize,
    metrics: &[String],
    baseline: Option<usize>,
    options: &CompareOptions,
    seed_aware: bool,
    margin: Option<f64>,
) -> Result<Task> {
    // The systems of this task and the queries each was scored on (any metric).
    let members: Vec<usize> = (0..variants.len())
        .filter(|&i| variants[i].values.keys().any(|(t, _)| t == name))
        .collect();
    let queries_of = |i: usize| -> BTreeSet<&str> {
        variants[i]
            .values
            .iter()
            .filter(|((t, _), _)| t == name)
            .flat_map(|(_, q)| q.keys().map(String::as_str))
            .collect()
    };
    let mut common: Option<BTreeSet<&str>> = None;
    let mut per_folder: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); n_folders];
    for &i in &members {
        let q = queries_of(i);
        per_folder[variants[i].folder].extend(q.iter().copied());
        common = Some(match common {
            None => q,
            Some(c) => c.intersection(&q).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let dropped = per_folder
        .iter()
        .map(|q| q.len() - q.intersection(&common).count())
        .collect();

    // variant → metric → per-query means over the common queries.
    let means: BTreeMap<usize, Vec<BTreeMap<String, f64>>> = members
        .iter()
        .map(|&i| {
            let per_metric = metrics
                .iter()
                .map(|m| seed_means(&variants[i], name, m, &common))
                .collect();
            (i, per_metric)
        })
        .collect();
    let base_here = baseline.filter(|b| members.contains(b));
    let mut vs_baseline: Vec<Vec<Comparison>> = Vec::new();
    let mut seed_details: Vec<BTreeMap<String, SeedStat>> = vec![BTreeMap::new(); metrics.len()];
    let mut mdds: Vec<BTreeMap<String, MddBasis>> = vec![BTreeMap::new(); metrics.len()];
    let mut equivalences: Vec<BTreeMap<String, Equivalence>> = vec![BTreeMap::new(); metrics.len()];
    for (m, metric) in metrics.iter().enumerate() {
        let Some(b) = base_here else {
            vs_baseline.push(Vec::new());
            continue;
        };
        let per_system: BTreeMap<String, BTreeMap<String, f64>> = members
            .iter()
            .map(|&i| (variants[i].id.clone(), means[&i][m].clone()))
            .collect();
        // A metric without values on this task (`RD` outside the multilingual setting) has no test.
        let rows = if common.is_empty() || means.values().all(|per_metric| per_metric[m].is_empty()) {
            Vec::new()
        } else {
            stats::compare(&per_system, &test_name(n_tasks, name, metric), &variants[b].id, options)
                .with_context(|| format!("task {name}, metric {metric}"))?
        };
        // Tukey compares every pair; only the baseline's pairs belong here.
        let mut rows: Vec<Comparison> = rows.into_iter().filter(|c| c.baseline == variants[b].id).collect();
        let by_id = |id: &str| -> Option<Vec<f64>> {
            let i = members.iter().find(|&&i| variants[i].id == id)?;
            Some(means[i][m].values().copied().collect())
        };
        if seed_aware {
            (seed_details[m], mdds[m]) =
                seed_aware_rows(&mut rows, variants, b, name, metric, &common, &by_id, options)
                    .with_context(|| format!("task {name}, metric {metric}"))?;
        }
        if let Some(margin) = margin {
            for c in &rows {
                let e = equivalence_of(c, seed_details[m].get(&c.system), &by_id, margin);
                equivalences[m].insert(c.system.clone(), e);
            }
        }
        vs_baseline.push(rows);
    }

    let rows: Vec<Row> = members
        .iter()
        .map(|&i| Row {
            variant: i,
            stats: metrics
                .iter()
                .enumerate()
                .map(|(m, metric)| {
                    let values: Vec<f64> = means[&i][m].values().copied().collect();
                    let seed_sd = seed_rows(&variants[i], name, metric, &common)
                        .filter(|rows| rows.len() >= 2 && !common.is_empty())
                        .and_then(|rows| stats::seed_components(&rows).ok())
                        .map_or(f64::NAN, |c| c.seed_mean_sd);
                    Stat {
                        ci: stats::mean_ci(&values, CONFIDENCE),
                        vs_baseline: vs_baseline[m].iter().find(|c| c.system == variants[i].id).cloned(),
                        seed_sd,
                        seeds: seed_details[m].get(&variants[i].id).cloned(),
                        mdd: mdds[m].get(&variants[i].id).map(|m| m.0),
                        difference_se_df: mdds[m].get(&variants[i].id).map(|m| (m.1, m.2)),
                        equivalence: equivalences[m].get(&variants[i].id).copied(),
                    }
                })
                .collect(),
        })
        .collect();

    let mut languages = Vec::new();
    let langs: BTreeSet<&String> = members
        .iter()
        .flat_map(|&i| {
            variants[i]
                .langs
                .iter()
                .filter(|((t, q), _)| t == name && common.contains(q.as_str()))
                .map(|(_, l)| l)
        })
        .collect();
    for lang in langs {
        for &i in &members {
            let in_lang = |q: &String| variants[i].langs.get(&(name.to_string(), q.clone())) == Some(lang);
            let per_metric: Vec<Vec<f64>> = means[&i]
                .iter()
                .map(|per_query| per_query.iter().filter(|(q, _)| in_lang(q)).map(|(_, x)| *x).collect())
                .collect();
            languages.push(LangRow {
                lang: lang.clone(),
                variant: i,
                queries: per_metric.first().map_or(0, Vec::len),
                metrics: per_metric.iter().map(|x| stats::mean_ci(x, CONFIDENCE)).collect(),
            });
        }
    }

    let pairwise = if members.len() < 2 || members.len() > PAIRWISE_MAX_SYSTEMS || common.is_empty() {
        Vec::new()
    } else {
        let mut all = Vec::new();
        for (m, metric) in metrics.iter().enumerate() {
            if means.values().all(|per_metric| per_metric[m].is_empty()) {
                all.push(Vec::new());
                continue;
            }
            let system = |i: usize| (variants[i].id.clone(), means[&i][m].clone());
            let seeds = |base: usize, sys: usize, c: &mut Comparison| -> Result<()> {
                seed_comparison(c, &variants[sys], &variants[base], name, metric, &common).map(|_| ())
            };
            let seeds: Option<SeedAware> = if seed_aware { Some(&seeds) } else { None };
            all.push(pairwise(
                &members,
                &system,
                &test_name(n_tasks, name, metric),
                options,
                seeds,
            )?);
        }
        all
    };

    Ok(Task {
        name: name.to_string(),
        queries: common.len(),
        dropped,
        rows,
        languages,
        pairwise,
        lower_is_better: metrics.iter().map(|m| lower_is_better(m)).collect(),
    })
}

/// Made seed-aware in place: (baseline variant, system variant, the query-level comparison).
type SeedAware<'a> = &'a dyn Fn(usize, usize, &mut Comparison) -> Result<()>;

/// Every pair of `members` (in order) compared with the report's test, corrected over all
/// pairs with its correction (Tukey's HSD is family-wise over all pairs already). With
/// `seeds`, each pair is then given the seed-aware test where it applies, as the comparisons
/// against the baseline are, before the correction.
fn pairwise(
    members: &[usize],
    system: &dyn Fn(usize) -> (String, BTreeMap<String, f64>),
    metric: &str,
    options: &CompareOptions,
    seeds: Option<SeedAware>,
) -> Result<Vec<Comparison>> {
    let k = members.len();
    let n_pairs = k * (k - 1) / 2;
    let ids: Vec<String> = members.iter().map(|&i| system(i).0).collect();
    if options.test == TestKind::Tukey {
        let per_system: BTreeMap<String, BTreeMap<String, f64>> = members.iter().map(|&i| system(i)).collect();
        let rows = stats::compare(&per_system, metric, &ids[0], options)?;
        let mut out = Vec::with_capacity(n_pairs);
        for a in 0..k {
            for b in a + 1..k {
                let found = rows
                    .iter()
                    .find(|c| {
                        (c.baseline == ids[a] && c.system == ids[b]) || (c.baseline == ids[b] && c.system == ids[a])
                    })
                    .with_context(|| format!("metric {metric}: Tukey HSD lacks the pair {} and {}", ids[a], ids[b]))?;
                out.push(oriented(found.clone(), &ids[a]));
            }
        }
        return Ok(out);
    }
    let single = CompareOptions {
        correction: Correction::None,
        ..options.clone()
    };
    let mut out = Vec::with_capacity(n_pairs);
    for a in 0..k {
        for b in a + 1..k {
            let pair: BTreeMap<String, BTreeMap<String, f64>> =
                [system(members[a]), system(members[b])].into_iter().collect();
            let mut c = stats::compare(&pair, metric, &ids[a], &single)?.remove(0);
            if let Some(seeds) = seeds {
                seeds(members[a], members[b], &mut c)?;
            }
            out.push(c);
        }
    }
    let adjusted = stats::adjust(&out.iter().map(|c| c.p_value).collect::<Vec<_>>(), options.correction);
    let family = format!("all {n_pairs} pairs of {k} systems on metric {metric}");
    for (c, p) in out.iter_mut().zip(adjusted) {
        c.p_adjusted = p;
        c.correction = options.correction;
        c.family = family.clone();
        c.family_size = n_pairs;
    }
    Ok(out)
}

/// `c` with `baseline` = `first`, flipping the direction of its differences if needed.
fn oriented(mut c: Comparison, first: &str) -> Comparison {
    if c.baseline != first {
        std::mem::swap(&mut c.baseline, &mut c.system);
        std::mem::swap(&mut c.mean_baseline, &mut c.mean_system);
        c.mean_diff = -c.mean_diff;
        // Tukey's q is a magnitude; signed statistics change sign.
        if c.statistic_name != "q" {
            c.statistic = -c.statistic;
        }
        c.effect_size = -c.effect_size;
        c.hedges_g = -c.hedges_g;
        (c.ci_low, c.ci_high) = (-c.ci_high, -c.ci_low);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_shot_log_has_no_curve_and_a_headless_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("train_log.csv");
        std::fs::write(&log, "").unwrap();
        assert!(read_loss(&log).unwrap().is_empty());
        std::fs::write(&log, "step,loss\n0,1.5\n1,1.25\n").unwrap();
        assert_eq!(read_loss(&log).unwrap(), [(0.0, 1.5), (1.0, 1.25)]);
        std::fs::write(&log, "epoch,value\n0,1.5\n").unwrap();
        assert!(read_loss(&log).unwrap_err().to_string().contains("no column `step`"));
    }

    #[test]
    fn the_best_rank_distance_is_the_lowest() {
        let stat = |mean: f64| Stat {
            ci: MeanCi {
                mean,
                low: mean,
                high: mean,
            },
            vs_baseline: None,
            seed_sd: f64::NAN,
            seeds: None,
            mdd: None,
            difference_se_df: None,
            equivalence: None,
        };
        let task = Task {
            name: "multi:crossref".into(),
            queries: 3,
            dropped: vec![0],
            rows: [(0.4, 300.0), (0.6, 250.0), (f64::NAN, f64::NAN)]
                .into_iter()
                .enumerate()
                .map(|(variant, (ndcg, rd))| Row {
                    variant,
                    stats: vec![stat(ndcg), stat(rd)],
                })
                .collect(),
            languages: Vec::new(),
            pairwise: Vec::new(),
            lower_is_better: [CellMetric::Ndcg10.name(), RANK_DISTANCE]
                .iter()
                .map(|m| lower_is_better(m))
                .collect(),
        };
        assert_eq!(task.lower_is_better, [false, true]);
        // nDCG@10: the highest; RD: the lowest, never the highest; a missing value is never best.
        assert!(!task.is_best(0, 0) && task.is_best(0, 1) && !task.is_best(0, 2));
        assert!(!task.is_best(1, 0) && task.is_best(1, 1) && !task.is_best(1, 2));
    }

    /// Three systems with per-query values `base + offset`; every pair is found in either order.
    #[test]
    fn every_pair_is_found_in_either_order() {
        let ids = ["a", "b", "c"];
        let system = |i: usize| {
            let values = (0..8)
                .map(|q| (format!("q{q}"), (q % 3) as f64 * 0.1 + i as f64 * 0.05))
                .collect();
            (ids[i].to_string(), values)
        };
        for test in [TestKind::T, TestKind::Tukey] {
            let options = CompareOptions {
                test,
                ..CompareOptions::default()
            };
            let pairs = pairwise(&[0, 1, 2], &system, "m", &options, None).unwrap();
            assert_eq!(pairs.len(), 3);
            let task = Task {
                name: "t".into(),
                queries: 8,
                dropped: vec![0],
                rows: (0..3)
                    .map(|variant| Row {
                        variant,
                        stats: Vec::new(),
                    })
                    .collect(),
                languages: Vec::new(),
                pairwise: vec![pairs],
                lower_is_better: vec![false],
            };
            for (i, j) in [(0, 1), (0, 2), (1, 2)] {
                for (x, y) in [(i, j), (j, i)] {
                    let c = task.pair(0, x, y).unwrap();
                    assert_eq!((c.baseline.as_str(), c.system.as_str()), (ids[i], ids[j]), "{test:?}");
                    // The later system scores 0.05 higher per step.
                    assert!(
                        (c.mean_diff - 0.05 * (j - i) as f64).abs() < 1e-12,
                        "{test:?}: {}",
                        c.mean_diff
                    );
                }
            }
            assert!(task.pair(0, 1, 1).is_none() && task.pair(0, 0, 3).is_none());
        }
    }
}
