//! The experiment report from finished cells: `report/report.md`, `summary.csv` (one row per
//! grid point), `cells.csv` (one row per trained cell) and `comparisons.csv` (every test).
//!
//! Per-query values are averaged over seeds before testing, so each comparison is paired
//! over queries; the correction family is all comparisons of one metric against the baseline.

use crate::eval::cell::CELL_METRICS;
use crate::fsutil::write_atomic;
use crate::stats::{self, CompareOptions, Comparison, Format};
use crate::sweep::{CellResult, CellStatus, SweepRecord, finished};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Confidence level of every interval in the report.
pub const CONFIDENCE: f64 = 0.95;

/// metric → query id → values (one per seed).
type PerQuery = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

struct Variant {
    id: String,
    label: String,
    cells: Vec<CellResult>,
    per_query: PerQuery,
    /// query id → "lang/task"
    groups: BTreeMap<String, String>,
}

fn read_metrics(path: &Path, into: &mut PerQuery, groups: &mut BTreeMap<String, String>) -> Result<()> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}:{}", path.display(), line + 2))?;
        let field = |i: usize| {
            record.get(i).with_context(|| {
                format!(
                    "{}:{}: expected 5 fields (lang,task,query_id,metric,value)",
                    path.display(),
                    line + 2
                )
            })
        };
        let value: f64 = field(4)?
            .parse()
            .with_context(|| format!("{}:{}: expected a number in column `value`", path.display(), line + 2))?;
        groups.insert(field(2)?.to_string(), format!("{}/{}", field(0)?, field(1)?));
        into.entry(field(3)?.to_string())
            .or_default()
            .entry(field(2)?.to_string())
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

fn seed_means(values: &BTreeMap<String, Vec<f64>>) -> BTreeMap<String, f64> {
    values
        .iter()
        .map(|(q, v)| (q.clone(), v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// Writes the report of the sweep in `dir` (works on a partly finished sweep).
pub fn write(dir: &Path) -> Result<()> {
    let sweep_path = dir.join("sweep.json");
    let record: SweepRecord = serde_json::from_str(
        &std::fs::read_to_string(&sweep_path).with_context(|| format!("reading {}", sweep_path.display()))?,
    )
    .with_context(|| format!("{}: not a clirlab sweep record", sweep_path.display()))?;

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
                    per_query: BTreeMap::new(),
                    groups: BTreeMap::new(),
                });
                variants.len() - 1
            }
        };
        let v = &mut variants[pos];
        read_metrics(
            &dir.join("cells").join(&planned.id).join("metrics.csv"),
            &mut v.per_query,
            &mut v.groups,
        )?;
        v.cells.push(result);
    }

    let metrics: Vec<&str> = CELL_METRICS.iter().map(|m| m.0).collect();
    let opts = CompareOptions {
        test: record.stats.test,
        correction: record.stats.correction,
        confidence: CONFIDENCE,
    };
    let baseline = record
        .baseline
        .as_ref()
        .filter(|b| variants.iter().any(|v| &v.id == *b));
    let mut comparisons: Vec<Comparison> = Vec::new();
    if let Some(base) = baseline {
        for metric in &metrics {
            let per_system: BTreeMap<String, BTreeMap<String, f64>> = variants
                .iter()
                .map(|v| (v.id.clone(), seed_means(&v.per_query[*metric])))
                .collect();
            comparisons.extend(stats::compare(&per_system, metric, base, &opts)?);
        }
    }
    let find = |variant: &str, metric: &str| comparisons.iter().find(|c| c.system == variant && c.metric == metric);

    // summary.csv: one row per grid point.
    let mut summary = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "variant".to_string(),
        "label".into(),
        "baseline".into(),
        "seeds".into(),
        "queries".into(),
    ];
    for m in &metrics {
        for suffix in ["mean", "ci_low", "ci_high", "p_value", "p_adjusted", "effect_size"] {
            header.push(format!("{m}_{suffix}"));
        }
    }
    summary.write_record(&header)?;
    let mut table = String::new();
    writeln!(
        table,
        "| grid point | seeds | {} |",
        metrics
            .iter()
            .map(|m| format!("{m} (95% CI) | p / p_adj | d_z"))
            .collect::<Vec<_>>()
            .join(" | ")
    )?;
    writeln!(table, "|---|---|{}", "---|---|---|".repeat(metrics.len()))?;
    for v in &variants {
        let is_base = baseline == Some(&v.id);
        let n_queries = v.per_query.get(metrics[0]).map(|q| q.len()).unwrap_or(0);
        let mut row = vec![
            v.id.clone(),
            v.label.clone(),
            is_base.to_string(),
            v.cells.len().to_string(),
            n_queries.to_string(),
        ];
        let mut md = format!(
            "| {}{} | {} |",
            v.label,
            if is_base { " **(baseline)**" } else { "" },
            v.cells.len()
        );
        for m in &metrics {
            let values: Vec<f64> = seed_means(&v.per_query[*m]).into_values().collect();
            let ci = stats::mean_ci(&values, CONFIDENCE);
            row.extend([format!("{}", ci.mean), format!("{}", ci.low), format!("{}", ci.high)]);
            write!(md, " {:.4} ({:.4}–{:.4}) |", ci.mean, ci.low, ci.high)?;
            match find(&v.id, m) {
                Some(c) => {
                    row.extend([
                        format!("{}", c.p_value),
                        format!("{}", c.p_adjusted),
                        format!("{}", c.effect_size),
                    ]);
                    write!(
                        md,
                        " {} / {}{} | {:+.3} |",
                        fmt_p(c.p_value),
                        fmt_p(c.p_adjusted),
                        if c.p_adjusted < 0.05 { " *" } else { "" },
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
        writeln!(table, "{md}")?;
    }

    // cells.csv: every trained cell's means.
    let mut cells_csv = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "cell".to_string(),
        "variant".into(),
        "seed".into(),
        "schedule".into(),
        "group".into(),
    ];
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
        let groups: std::collections::BTreeSet<&String> = v.groups.values().collect();
        for g in groups {
            let mut md = format!("| {} | {g} |", v.label);
            for m in &metrics {
                let vals: Vec<f64> = seed_means(&v.per_query[*m])
                    .into_iter()
                    .filter(|(q, _)| v.groups.get(q) == Some(g))
                    .map(|(_, x)| x)
                    .collect();
                write!(md, " {:.4} |", vals.iter().sum::<f64>() / vals.len().max(1) as f64)?;
            }
            writeln!(per_group, "{md}")?;
        }
    }

    let report_dir = dir.join("report");
    write_atomic(&report_dir.join("summary.csv"), &summary.into_inner()?)?;
    write_atomic(&report_dir.join("cells.csv"), &cells_csv.into_inner()?)?;
    write_atomic(
        &report_dir.join("comparisons.csv"),
        stats::format_comparisons(&comparisons, Format::Csv).as_bytes(),
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
        "- cells: {} planned, {} finished; seeds per grid point are averaged per query before testing",
        record.cells.len(),
        record.cells.len() - missing.len()
    )?;
    match baseline {
        Some(b) => writeln!(
            md,
            "- baseline: `{}`; test: {:?} (paired, two-sided, over queries); correction: {:?} within each metric's comparisons against the baseline; effect size d_z = mean difference / sd of differences",
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
    writeln!(
        md,
        "- provenance: clirlab {}, commit {}{}, host {}, device {}\n",
        record.provenance.clirlab_version,
        record.provenance.git_commit.as_deref().unwrap_or("unknown"),
        if record.provenance.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        },
        record.provenance.host,
        record.provenance.device
    )?;
    writeln!(
        md,
        "## Summary (mean over queries, {:.0}% CI; * = corrected p < 0.05)\n",
        CONFIDENCE * 100.0
    )?;
    writeln!(md, "{table}")?;
    writeln!(md, "## Per language and task\n")?;
    writeln!(md, "| grid point | language/task | {} |", metrics.join(" | "))?;
    writeln!(md, "|---|---|{}", "---|".repeat(metrics.len()))?;
    writeln!(md, "{per_group}")?;
    if !missing.is_empty() {
        writeln!(md, "## Cells without results\n")?;
        for (id, status, error) in &missing {
            let status = if *status == CellStatus::Failed {
                "failed"
            } else {
                "not run"
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
        "Files: `summary.csv` (one row per grid point), `cells.csv` (one row per cell and language/task), `comparisons.csv` (every test)."
    )?;
    write_atomic(&report_dir.join("report.md"), md.as_bytes())?;
    Ok(())
}
