//! The plain-text outputs: `report.md`, `summary.csv`, `cells.csv`, `comparisons.csv` and
//! `pairwise.csv`.

use super::model::{ALPHA, CONFIDENCE, Report};
use super::{fmt_p, missing_note};
use anyhow::Result;
use clirlab_stats::{self as stats, Comparison, Format};
use std::fmt::Write as _;

/// `summary.csv`: one row per grid point and task.
pub fn summary_csv(r: &Report) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["variant", "label", "task", "baseline", "seeds", "queries"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The seed columns only where seeds count, so one-seed summaries read as before.
    let seed_cols: &[&str] = if r.seed_aware() {
        &["seed_sd", "p_queries", "mdd"]
    } else {
        &[]
    };
    // The equivalence columns only where a margin is set.
    let tost_cols: &[&str] = if r.equivalence_margin.is_some() {
        &["p_tost", "verdict"]
    } else {
        &[]
    };
    for m in &r.metrics {
        for suffix in ["mean", "ci_low", "ci_high", "p_value", "p_adjusted", "effect_size"]
            .iter()
            .chain(seed_cols)
            .chain(tost_cols)
        {
            header.push(format!("{m}_{suffix}"));
        }
    }
    w.write_record(&header)?;
    for task in &r.tasks {
        for row in &task.rows {
            let v = &r.variants[row.variant];
            let mut record = vec![
                v.id.clone(),
                v.label.clone(),
                task.name.clone(),
                (r.baseline == Some(row.variant)).to_string(),
                if v.reference {
                    String::new()
                } else {
                    v.cells.len().to_string()
                },
                task.queries.to_string(),
            ];
            for s in &row.stats {
                record.extend([s.ci.mean.to_string(), s.ci.low.to_string(), s.ci.high.to_string()]);
                match &s.vs_baseline {
                    Some(c) => record.extend([
                        c.p_value.to_string(),
                        c.p_adjusted.to_string(),
                        c.effect_size.to_string(),
                    ]),
                    None => record.extend([String::new(), String::new(), String::new()]),
                }
                if r.seed_aware() {
                    record.push(finite(s.seed_sd));
                    record.push(s.seeds.as_ref().map_or_else(String::new, |d| d.p_queries.to_string()));
                    record.push(s.mdd.map_or_else(String::new, finite));
                }
                if r.equivalence_margin.is_some() {
                    match &s.equivalence {
                        Some(e) => record.extend([e.p_tost_adjusted.to_string(), e.verdict.name().to_string()]),
                        None => record.extend([String::new(), String::new()]),
                    }
                }
            }
            w.write_record(&record)?;
        }
    }
    Ok(clirlab_util::csv_guard::neutralised(&w.into_inner()?)?)
}

/// A number, or empty where it is undefined (NaN).
fn finite(x: f64) -> String {
    if x.is_nan() { String::new() } else { x.to_string() }
}

/// A number to 4 places, or — where it is undefined.
fn short(x: f64) -> String {
    if x.is_nan() { "—".into() } else { format!("{x:.4}") }
}

/// `cells.csv`: every finished cell's means per language and task.
pub fn cells_csv(r: &Report) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["cell", "variant", "seed", "schedule", "group"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(r.metrics.iter().cloned());
    header.extend(["final_loss".into(), "train_seconds".into()]);
    w.write_record(&header)?;
    for v in &r.variants {
        for cell in &v.cells {
            let c = &cell.result;
            for (group, means) in &c.means {
                let mut record = vec![
                    c.id.clone(),
                    v.id.clone(),
                    c.seed.to_string(),
                    c.schedule_name.clone(),
                    group.clone(),
                ];
                record.extend(
                    r.metrics
                        .iter()
                        .map(|m| means.get(m).map(|x| x.to_string()).unwrap_or_default()),
                );
                record.extend([
                    c.final_loss.map_or(String::new(), |l| l.to_string()),
                    format!("{:.2}", c.train_seconds),
                ]);
                w.write_record(&record)?;
            }
        }
    }
    Ok(clirlab_util::csv_guard::neutralised(&w.into_inner()?)?)
}

/// `comparisons.csv` (every test against the baseline) and `pairwise.csv` (every pair).
pub fn comparisons_csv(r: &Report) -> (String, String) {
    // Grouped by task then metric: one correction family after the other.
    let mut by_family: Vec<Comparison> = Vec::new();
    for task in &r.tasks {
        for m in 0..r.metrics.len() {
            by_family.extend(task.rows.iter().filter_map(|row| row.stats[m].vs_baseline.clone()));
        }
    }
    let pairs: Vec<Comparison> = r
        .tasks
        .iter()
        .flat_map(|t| t.pairwise.iter().flatten().cloned())
        .collect();
    (
        stats::format_comparisons(&by_family, Format::Csv),
        stats::format_comparisons(&pairs, Format::Csv),
    )
}

/// Text from data or configuration, safe in `report.md`: the characters that make HTML
/// (Markdown renders raw HTML) written as entities, as in `report.html`, and so are the
/// backticks, bars and line breaks that would end a code span, a table cell or a line. Quotes
/// stay: outside an attribute they are text (axis labels hold JSON).
fn md(s: &str) -> String {
    use super::html::{markup_entity, replace_chars};
    replace_chars(s, |c| match c {
        '`' => Some("&#96;"),
        '|' => Some("&#124;"),
        '\n' | '\r' => Some(" "),
        c => markup_entity(c),
    })
}

/// `report.md`.
pub fn markdown(r: &Report) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "# {} — clirlab report\n", md(&r.title))?;
    if r.synthetic() {
        writeln!(
            out,
            "> **Data: SYNTHETIC** — the built-in generated bilingual set, not real text.\n"
        )?;
    }
    for f in &r.folders {
        let rec = &f.record;
        let lead = if f.prefix.is_empty() {
            String::new()
        } else {
            format!("`{}` ({}): ", md(&f.prefix), md(&f.dir.display().to_string()))
        };
        writeln!(
            out,
            "- {lead}data set: `{}`; experiment file: `{}`",
            md(&rec.dataset),
            md(&rec.source.display().to_string())
        )?;
        let seeds = if r.seed_aware() {
            "seeds count as a source of variance where a grid point has at least 2"
        } else {
            "seeds of a grid point are averaged per query before testing"
        };
        writeln!(
            out,
            "- {lead}cells: {} planned, {} finished; {seeds}",
            rec.cells.len(),
            rec.cells.len() - f.missing.len()
        )?;
        let p = &rec.provenance;
        writeln!(
            out,
            "- {lead}provenance: clirlab {}, commit {}{}, host {}, device {}",
            md(&p.clirlab_version),
            md(p.git_commit.as_deref().unwrap_or("unknown")),
            if p.git_dirty == Some(true) { " (dirty)" } else { "" },
            md(&p.host),
            md(&p.device)
        )?;
    }
    match r.baseline {
        Some(b) => writeln!(
            out,
            "- baseline: `{}`; test: {:?} (paired, two-sided, over queries); correction: {:?} over {}; \
             effect size d_z = mean difference / sd of differences",
            md(&r.variants[b].label),
            r.test(),
            r.correction(),
            r.family_words()
        )?,
        None => writeln!(
            out,
            "- no baseline: a single grid point, or the baseline has no finished cell; no tests"
        )?,
    }
    if r.seed_aware() && r.baseline.is_some() {
        writeln!(
            out,
            "- seeds: where either side has at least 2 seeds, the comparison (against the baseline and in the pairwise \
             matrix) is the seed-aware t-test (queries and seeds random, a seed variance per system, satterthwaite \
             df; reference rows are deterministic; a grid point with one seed borrows the other side's seed variance, \
             as comparisons.csv says), corrected with the others; p (queries) is the {:?} test on seed means; seed sd = sd of the grid point's per-seed means; MDD = the \
             difference detected with {:.0}% power at the per-comparison alpha (alpha/m for holm, bonferroni, bh, \
             tukey)",
            r.options.test,
            super::model::POWER * 100.0
        )?;
    }
    if let Some(warning) = super::two_seed_warning(r) {
        writeln!(out, "- warning: {warning}")?;
    }
    if let Some(note) = super::references_note(r) {
        writeln!(out, "- {note}")?;
    }
    if let Some(note) = super::bias_note(r) {
        writeln!(out, "- {note}")?;
    }
    writeln!(out)?;
    writeln!(out, "## Summary (mean over queries; * = corrected p < {ALPHA})\n")?;
    // One table per metric, so that a table fits a terminal; summary.csv and
    // comparisons.csv hold every column (and the uncorrected p of the seed-aware tests).
    let seeds = r.seed_aware();
    for task in &r.tasks {
        writeln!(out, "### Task `{}` ({} queries)\n", md(&task.name), task.queries)?;
        if let Some(note) = super::dropped_note(r, task) {
            writeln!(out, "{}\n", md(&note))?;
        }
        for (m, metric) in r.metrics.iter().enumerate() {
            // A metric the task does not have (RD outside the multilingual setting).
            if task.rows.iter().all(|row| row.stats[m].ci.mean.is_nan()) {
                continue;
            }
            writeln!(out, "#### {metric}\n")?;
            let tests = if seeds {
                "p_adj | d_z | seed sd | p (queries) | MDD"
            } else {
                "p | p_adj | d_z"
            };
            // With stats.equivalence_margin, the TOST verdict of each comparison.
            let tests = match r.equivalence_margin {
                Some(margin) => format!("{tests} | vs δ = {margin}"),
                None => tests.to_string(),
            };
            writeln!(
                out,
                "| grid point | seeds | {metric} ({:.0}% CI) | {tests} |",
                CONFIDENCE * 100.0
            )?;
            writeln!(out, "|---|---|---|{}", "---|".repeat(tests.split('|').count()))?;
            for row in &task.rows {
                markdown_row(&mut out, r, row, &row.stats[m], seeds)?;
            }
            writeln!(out)?;
        }
    }
    writeln!(out, "## Per language and task\n")?;
    writeln!(out, "| grid point | language/task | {} |", r.metrics.join(" | "))?;
    writeln!(out, "|---|---|{}", "---|".repeat(r.metrics.len()))?;
    for task in &r.tasks {
        for l in &task.languages {
            write!(
                out,
                "| {} | {}/{} |",
                md(&r.variants[l.variant].label),
                md(&l.lang),
                md(&task.name)
            )?;
            for ci in &l.metrics {
                if ci.mean.is_nan() {
                    out.push_str(" — |");
                } else {
                    write!(out, " {:.4} |", ci.mean)?;
                }
            }
            writeln!(out)?;
        }
    }
    writeln!(out)?;
    let missing: Vec<String> = r
        .folders
        .iter()
        .flat_map(|f| f.missing.iter().map(move |m| (f, m)))
        .map(|(f, m)| {
            let id = if f.prefix.is_empty() {
                m.id.clone()
            } else {
                format!("{}/{}", f.prefix, m.id)
            };
            format!("- `{}`: {}", md(&id), md(&missing_note(m)))
        })
        .collect();
    if !missing.is_empty() {
        writeln!(out, "## Cells without results\n")?;
        writeln!(out, "{}\n", missing.join("\n"))?;
    }
    writeln!(
        out,
        "Files: `report.html` (tables and plots in one file), `tables.tex` (booktabs), `plots/*.svg`, \
         `summary.csv` (one row per grid point and task), `cells.csv` (one row per cell and language/task), \
         `comparisons.csv` (every test against the baseline), `pairwise.csv` (every pair of grid points)."
    )?;
    Ok(out)
}

/// One grid point's row of a metric's table in `report.md`.
fn markdown_row(
    out: &mut String,
    r: &Report,
    row: &super::model::Row,
    s: &super::model::Stat,
    seeds: bool,
) -> Result<()> {
    let v = &r.variants[row.variant];
    let seed_count = if v.reference {
        "—".to_string()
    } else {
        v.cells.len().to_string()
    };
    let baseline = if r.baseline == Some(row.variant) {
        " **(baseline)**"
    } else {
        ""
    };
    write!(out, "| {}{baseline} | {seed_count} |", md(&v.label))?;
    if s.ci.mean.is_nan() {
        let empty = if seeds { 6 } else { 4 } + usize::from(r.equivalence_margin.is_some());
        writeln!(out, "{}", " — |".repeat(empty))?;
        return Ok(());
    }
    write!(out, " {:.4} ± {:.4} |", s.ci.mean, (s.ci.high - s.ci.low) / 2.0)?;
    match &s.vs_baseline {
        Some(c) => {
            let mark = if c.p_adjusted < ALPHA { " *" } else { "" };
            if seeds {
                let q = s.seeds.as_ref().map_or(fmt_p(c.p_value), |d| fmt_p(d.p_queries));
                write!(
                    out,
                    " {}{mark} | {:+.3} | {} | {q} | {} |",
                    fmt_p(c.p_adjusted),
                    c.effect_size,
                    short(s.seed_sd),
                    short(s.mdd.unwrap_or(f64::NAN))
                )?;
            } else {
                write!(
                    out,
                    " {} | {}{mark} | {:+.3} |",
                    fmt_p(c.p_value),
                    fmt_p(c.p_adjusted),
                    c.effect_size
                )?;
            }
        }
        None if seeds => write!(out, " — | — | {} | — | — |", short(s.seed_sd))?,
        None => out.push_str(" — | — | — |"),
    }
    if r.equivalence_margin.is_some() {
        write!(out, " {} |", s.equivalence.as_ref().map_or("—", |e| e.verdict.name()))?;
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_text_from_data_is_escaped() {
        assert_eq!(
            super::md("<img src=x onerror=alert(3)>.yaml"),
            "&lt;img src=x onerror=alert(3)&gt;.yaml"
        );
        assert_eq!(super::md("a`b|c\nd"), "a&#96;b&#124;c d");
        // Ordinary names and labels are unchanged.
        assert_eq!(super::md("schedule=linear_0a1b2c3d/en"), "schedule=linear_0a1b2c3d/en");
        assert_eq!(super::md(r#"ot={"enabled":false}"#), r#"ot={"enabled":false}"#);
    }
}
