//! The experiment report from finished cells: `report/report.md`, `summary.csv` (one row per
//! grid point and task), `cells.csv` (one row per trained cell and language/task) and
//! `comparisons.csv` (every test).
//!
//! Per-query values are averaged over seeds before testing, so each comparison is paired
//! over queries. Tasks are kept apart (the same query can be judged for several tasks); the
//! correction family is all comparisons of one metric on one task against the baseline.

use crate::eval::cell::CELL_METRICS;
use crate::fsutil::write_atomic;
use crate::stats::{self, CompareOptions, Comparison, Format};
use crate::sweep::{CellResult, CellStatus, SweepRecord, finished};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// Confidence level of every interval in the report.
pub const CONFIDENCE: f64 = 0.95;

/// query id → values (one per seed).
type Values = BTreeMap<String, Vec<f64>>;

struct Variant {
    id: String,
    label: String,
    cells: Vec<CellResult>,
    /// (task, metric) → per-query values.
    values: BTreeMap<(String, String), Values>,
    /// (task, query id) → language.
    langs: BTreeMap<(String, String), String>,
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

fn label(assignment: &BTreeMap<String, serde_json::Value>) -> String {
    if assignment.is_empty() {
        return "(single configuration)".into();
    }
    assignment
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn seed_means(values: Option<&Values>) -> BTreeMap<String, f64> {
    values
        .into_iter()
        .flatten()
        .map(|(q, v)| (q.clone(), v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

fn fmt_p(p: f64) -> String {
    if p < 1e-15 {
        "<1e-15".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// Writes the report of the sweep in `dir` (works on a partly finished sweep).
pub fn write(dir: &Path) -> Result<()> {
    let record = SweepRecord::read(dir)?;

    let mut variants: Vec<Variant> = Vec::new();
    let mut missing = Vec::new();
    for planned in &record.cells {
        let Some(result) = finished(dir, &planned.id) else {
            missing.push((planned.id.clone(), planned.status, planned.error.clone()));
            continue;
        };
        let pos = match variants.iter().position(|v| v.id == planned.variant) {
            Some(p) => p,
            None => {
                variants.push(Variant {
                    id: planned.variant.clone(),
                    label: label(&planned.assignment),
                    cells: Vec::new(),
                    values: BTreeMap::new(),
                    langs: BTreeMap::new(),
                });
                variants.len() - 1
            }
        };
        let v = &mut variants[pos];
        read_metrics(&dir.join("cells").join(&planned.id).join("metrics.csv"), v)?;
        v.cells.push(result);
    }

    let metrics: Vec<&str> = CELL_METRICS.iter().map(|m| m.0).collect();
    let tasks: BTreeSet<String> = variants
        .iter()
        .flat_map(|v| v.values.keys().map(|(t, _)| t.clone()))
        .collect();
    let opts = CompareOptions {
        test: record.stats.test,
        correction: record.stats.correction,
        permutations: record.stats.permutations,
        bootstrap_samples: record.stats.bootstrap_samples,
        seed: record.stats.seed,
        confidence: CONFIDENCE,
        ..CompareOptions::default()
    };
    let baseline = record
        .baseline
        .as_ref()
        .filter(|b| variants.iter().any(|v| &v.id == *b));
    // (task, metric) → comparisons against the baseline.
    let mut comparisons: BTreeMap<(String, String), Vec<Comparison>> = BTreeMap::new();
    if let Some(base) = baseline {
        for task in &tasks {
            for metric in &metrics {
                let key = (task.clone(), metric.to_string());
                let per_system: BTreeMap<String, BTreeMap<String, f64>> = variants
                    .iter()
                    .map(|v| (v.id.clone(), seed_means(v.values.get(&key))))
                    .collect();
                let name = if tasks.len() > 1 {
                    format!("{task}/{metric}")
                } else {
                    metric.to_string()
                };
                comparisons.insert(key, stats::compare(&per_system, &name, base, &opts)?);
            }
        }
    }
    let find = |task: &str, metric: &str, variant: &str| {
        comparisons
            .get(&(task.to_string(), metric.to_string()))
            .and_then(|c| c.iter().find(|c| c.system == variant))
    };

    // summary.csv: one row per grid point and task.
    let mut summary = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["variant", "label", "task", "baseline", "seeds", "queries"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in &metrics {
        for suffix in ["mean", "ci_low", "ci_high", "p_value", "p_adjusted", "effect_size"] {
            header.push(format!("{m}_{suffix}"));
        }
    }
    summary.write_record(&header)?;
    let mut tables = String::new();
    for task in &tasks {
        writeln!(tables, "### Task `{task}`\n")?;
        let heads: Vec<String> = metrics
            .iter()
            .map(|m| format!("{m} ({:.0}% CI) | p / p_adj | d_z", CONFIDENCE * 100.0))
            .collect();
        writeln!(tables, "| grid point | seeds | queries | {} |", heads.join(" | "))?;
        writeln!(tables, "|---|---|---|{}", "---|---|---|".repeat(metrics.len()))?;
        for v in &variants {
            let is_base = baseline == Some(&v.id);
            let n_queries = v
                .values
                .get(&(task.clone(), metrics[0].to_string()))
                .map(|q| q.len())
                .unwrap_or(0);
            let mut row = vec![
                v.id.clone(),
                v.label.clone(),
                task.clone(),
                is_base.to_string(),
                v.cells.len().to_string(),
                n_queries.to_string(),
            ];
            let mut md = format!(
                "| {}{} | {} | {n_queries} |",
                v.label,
                if is_base { " **(baseline)**" } else { "" },
                v.cells.len()
            );
            for m in &metrics {
                let values: Vec<f64> = seed_means(v.values.get(&(task.clone(), m.to_string())))
                    .into_values()
                    .collect();
                let ci = stats::mean_ci(&values, CONFIDENCE);
                row.extend([ci.mean.to_string(), ci.low.to_string(), ci.high.to_string()]);
                write!(md, " {:.4} ({:.4}–{:.4}) |", ci.mean, ci.low, ci.high)?;
                match find(task, m, &v.id) {
                    Some(c) => {
                        row.extend([
                            c.p_value.to_string(),
                            c.p_adjusted.to_string(),
                            c.effect_size.to_string(),
                        ]);
                        let mark = if c.p_adjusted < 0.05 { " *" } else { "" };
                        write!(
                            md,
                            " {} / {}{mark} | {:+.3} |",
                            fmt_p(c.p_value),
                            fmt_p(c.p_adjusted),
                            c.effect_size
                        )?;
                    }
                    None => {
                        row.extend([String::new(), String::new(), String::new()]);
                        md.push_str(" — | — |");
                    }
                }
            }
            summary.write_record(&row)?;
            writeln!(tables, "{md}")?;
        }
        writeln!(tables)?;
    }

    // cells.csv: every trained cell's means; the per language and task table.
    let mut cells_csv = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["cell", "variant", "seed", "schedule", "group"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(metrics.iter().map(|m| m.to_string()));
    header.extend(["final_loss".into(), "train_seconds".into()]);
    cells_csv.write_record(&header)?;
    let mut per_group = String::new();
    for v in &variants {
        for c in &v.cells {
            for (group, means) in &c.means {
                let mut row = vec![
                    c.id.clone(),
                    v.id.clone(),
                    c.seed.to_string(),
                    c.schedule_name.clone(),
                    group.clone(),
                ];
                row.extend(
                    metrics
                        .iter()
                        .map(|m| means.get(*m).map(|x| x.to_string()).unwrap_or_default()),
                );
                row.extend([c.final_loss.to_string(), format!("{:.2}", c.train_seconds)]);
                cells_csv.write_record(&row)?;
            }
        }
        let groups: BTreeSet<(String, String)> = v
            .langs
            .iter()
            .map(|((task, _), lang)| (lang.clone(), task.clone()))
            .collect();
        for (lang, task) in groups {
            let mut md = format!("| {} | {lang}/{task} |", v.label);
            for m in &metrics {
                let vals: Vec<f64> = seed_means(v.values.get(&(task.clone(), m.to_string())))
                    .into_iter()
                    .filter(|(q, _)| v.langs.get(&(task.clone(), q.clone())) == Some(&lang))
                    .map(|(_, x)| x)
                    .collect();
                write!(md, " {:.4} |", vals.iter().sum::<f64>() / vals.len().max(1) as f64)?;
            }
            writeln!(per_group, "{md}")?;
        }
    }

    let all_comparisons: Vec<Comparison> = comparisons.into_values().flatten().collect();
    let report_dir = dir.join("report");
    write_atomic(&report_dir.join("summary.csv"), &summary.into_inner()?)?;
    write_atomic(&report_dir.join("cells.csv"), &cells_csv.into_inner()?)?;
    write_atomic(
        &report_dir.join("comparisons.csv"),
        stats::format_comparisons(&all_comparisons, Format::Csv).as_bytes(),
    )?;

    let mut md = String::new();
    writeln!(md, "# {} — clirlab report\n", record.experiment)?;
    if record.synthetic {
        writeln!(
            md,
            "> **Data: SYNTHETIC** — the built-in generated bilingual set, not real text.\n"
        )?;
    }
    writeln!(
        md,
        "- data set: `{}`; experiment file: `{}`",
        record.dataset,
        record.source.display()
    )?;
    writeln!(
        md,
        "- cells: {} planned, {} finished; seeds of a grid point are averaged per query before testing",
        record.cells.len(),
        record.cells.len() - missing.len()
    )?;
    match baseline {
        Some(b) => writeln!(
            md,
            "- baseline: `{}`; test: {:?} (paired, two-sided, over queries); correction: {:?} within the comparisons \
             of one metric on one task against the baseline; effect size d_z = mean difference / sd of differences",
            variants
                .iter()
                .find(|v| &v.id == b)
                .map(|v| v.label.as_str())
                .unwrap_or(b),
            record.stats.test,
            record.stats.correction
        )?,
        None => writeln!(
            md,
            "- no baseline: a single grid point, or the baseline has no finished cell; no tests"
        )?,
    }
    let p = &record.provenance;
    writeln!(
        md,
        "- provenance: clirlab {}, commit {}{}, host {}, device {}\n",
        p.clirlab_version,
        p.git_commit.as_deref().unwrap_or("unknown"),
        if p.git_dirty == Some(true) { " (dirty)" } else { "" },
        p.host,
        p.device
    )?;
    writeln!(md, "## Summary (mean over queries; * = corrected p < 0.05)\n")?;
    write!(md, "{tables}")?;
    writeln!(md, "## Per language and task\n")?;
    writeln!(md, "| grid point | language/task | {} |", metrics.join(" | "))?;
    writeln!(md, "|---|---|{}", "---|".repeat(metrics.len()))?;
    writeln!(md, "{per_group}")?;
    if !missing.is_empty() {
        writeln!(md, "## Cells without results\n")?;
        for (id, status, error) in &missing {
            let status = match status {
                CellStatus::Failed => "failed",
                CellStatus::Running => "running",
                _ => "not run",
            };
            writeln!(
                md,
                "- `{id}`: {status}{}",
                error.as_ref().map(|e| format!(" — {e}")).unwrap_or_default()
            )?;
        }
        writeln!(md)?;
    }
    writeln!(
        md,
        "Files: `summary.csv` (one row per grid point and task), `cells.csv` (one row per cell and language/task), \
         `comparisons.csv` (every test)."
    )?;
    write_atomic(&report_dir.join("report.md"), md.as_bytes())?;
    Ok(())
}
