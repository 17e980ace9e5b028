//! The experiment report of a results folder, or the comparison of two, in `report/`:
//! `report.html` (one self-contained file: tables, inline SVG plots, no script, no network),
//! `tables.tex` (booktabs), `plots/*.svg`, `report.md`, `summary.csv` (one row per grid point
//! and task), `cells.csv` (one row per trained cell and language/task), `comparisons.csv`
//! (every test against the baseline) and `pairwise.csv` (every pair of grid points).
//!
//! Per-query values are averaged over seeds before testing, so each comparison is paired
//! over queries. Tasks are kept apart (the same query can be judged for several tasks); the
//! correction family is all comparisons of one metric on one task against the baseline (and,
//! for the pairwise matrix, all pairs of one metric on one task).
//!
//! [`model`] computes everything once; the writers only render it. Every file is written
//! atomically, and the same results give byte-identical files.

mod html;
mod latex;
/// The report's content, computed from the records.
pub mod model;
mod plain_text;
mod plots;
mod tensorboard;

use anyhow::{Context, Result};
use clirlab_experiment::run::paths::{self, ReportFile};
use clirlab_util::fs::write_atomic;
use model::{Missing, Report, Task};
use std::path::{Path, PathBuf};

pub use model::CONFIDENCE;

/// Writes the report of the sweep in `dir` to `dir/report/` (works on a partly finished sweep).
pub fn write(dir: &Path) -> Result<()> {
    write_to(&[dir.to_path_buf()], &paths::report_dir(dir))
}

/// Where `clirlab report DIR --against OTHER` writes by default: `DIR/report-vs-<OTHER's name>`.
pub fn comparison_dir(dir: &Path, other: &Path) -> PathBuf {
    let name = std::fs::canonicalize(other)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "other".into());
    paths::comparison_report_dir(dir, &slug(&name))
}

/// Writes the report of the results folders `dirs` (one, or two compared) into `out`.
pub fn write_to(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let report = model::build(dirs)?;
    let plots = plots::render(&report)?;
    let plot_dir = out.join(paths::PLOTS);
    // Inside a results folder, nothing is written through a link to elsewhere; a folder the
    // user named (`--out`) is theirs, but its `plots/` is ours.
    let owned_from = dirs.iter().find(|d| out.starts_with(d)).map_or(out, PathBuf::as_path);
    clirlab_util::fs::refuse_links_below(owned_from, &plot_dir)?;
    std::fs::create_dir_all(&plot_dir).with_context(|| format!("creating {}", plot_dir.display()))?;
    // One report at a time into a folder: the leftovers of one that was killed are cleaned.
    let _lock =
        clirlab_util::lock::LockFile::acquire(&out.join(REPORT_LOCK), clirlab_experiment::run::state::JOB_ALIVE)?;
    for folder in [out, plot_dir.as_path()] {
        clirlab_util::fs::remove_temporaries(folder)?;
    }
    for p in &plots {
        write_atomic(&plot_dir.join(&p.file), p.svg.as_bytes())?;
    }
    remove_stale_plots(&plot_dir, &plots, owned_from != out)?;
    write_atomic(&ReportFile::SummaryCsv.at(out), &plain_text::summary_csv(&report)?)?;
    write_atomic(&ReportFile::CellsCsv.at(out), &plain_text::cells_csv(&report)?)?;
    let (vs, pairs) = plain_text::comparisons_csv(&report);
    write_atomic(&ReportFile::ComparisonsCsv.at(out), vs.as_bytes())?;
    write_atomic(&ReportFile::PairwiseCsv.at(out), pairs.as_bytes())?;
    write_atomic(&ReportFile::TablesTex.at(out), latex::tables(&report).as_bytes())?;
    write_atomic(&ReportFile::Html.at(out), html::page(&report, &plots).as_bytes())?;
    write_atomic(&ReportFile::Markdown.at(out), plain_text::markdown(&report)?.as_bytes())?;
    tensorboard::write(&report)?;
    Ok(())
}

/// The lock a report holds while it writes its folder.
const REPORT_LOCK: &str = ".report.lock";

/// The list of the plots a report wrote, in its `plots/` folder: the next report removes only
/// those (a folder given with `--out` may hold the user's own SVG files).
const PLOT_MANIFEST: &str = ".plots";

/// Plots of an earlier report that this one no longer has (a task gone) would mislead: those
/// the earlier report's manifest lists are removed, then this report's list is written. A
/// folder without a manifest (an older version's report) loses its other SVG files only
/// where clirlab owns it (`owned`: inside a results folder).
fn remove_stale_plots(plot_dir: &Path, plots: &[plots::Plot], owned: bool) -> Result<()> {
    let manifest = plot_dir.join(PLOT_MANIFEST);
    let earlier: Vec<String> = match std::fs::read_to_string(&manifest) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && owned => std::fs::read_dir(plot_dir)
            .with_context(|| format!("reading {}", plot_dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", manifest.display())),
    };
    for name in earlier {
        // A damaged or hostile manifest names nothing outside the plots folder.
        let ours = clirlab_util::fs::plain_component(&name) && name.ends_with(".svg");
        if ours && !plots.iter().any(|p| p.file == name) {
            let path = plot_dir.join(&name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {}
            }
        }
    }
    let list: String = plots.iter().map(|p| format!("{}\n", p.file)).collect();
    Ok(write_atomic(&manifest, list.as_bytes())?)
}

/// A p-value for tables: 4 decimals, scientific below 1e-4.
pub(crate) fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "—".into()
    } else if p < 1e-15 {
        "<1e-15".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The significance mark of a test against the baseline: ‡ (corrected p < 0.01), † (< 0.05), or none.
pub(crate) fn mark(p_adjusted: f64) -> &'static str {
    if p_adjusted < model::ALPHA_STRICT {
        "‡"
    } else if p_adjusted < model::ALPHA {
        "†"
    } else {
        ""
    }
}

/// A file-name-safe form of `s`: letters, digits, `-` and `_`; anything else becomes `_`.
pub(crate) fn slug(s: &str) -> String {
    clirlab_util::slug::slug(s, "-_", '_')
}

/// The caution a report gives when a grid point has exactly 2 seeds: with 1 df per seed
/// variance the seed-aware test is outside its calibrated range (docs/statistics.md).
pub(crate) fn two_seed_warning(r: &Report) -> Option<String> {
    (r.seed_aware() && r.variants.iter().any(|v| v.cells.len() == 2)).then(|| {
        "a grid point has 2 seeds; with 1 df per seed variance the seed-aware test is not calibrated \
         (conservative when the seed variance is small, liberal against a reference when it dominates): use 3 \
         seeds or more (docs/statistics.md)"
            .to_string()
    })
}

/// What the report says of its reference rows, when it has any.
pub(crate) fn references_note(r: &Report) -> Option<String> {
    r.has_references().then(|| {
        "Rows marked `reference:` are not grid points: BM25 (lexical, over the words of the texts) and the \
         pretrained backbone without training, each computed once per data set. They are compared with the \
         baseline by the same test as the grid points and are part of the same correction family."
            .to_string()
    })
}

/// Why a planned cell has no result, in words.
pub(crate) fn missing_note(m: &Missing) -> String {
    match &m.error {
        Some(e) => format!("{} — {e}", m.status),
        None => m.status.to_string(),
    }
}

/// How many queries the comparison of `task` left out, per folder; `None` when none.
/// What the language-bias column means, when the report has one.
pub(crate) fn bias_note(r: &Report) -> Option<String> {
    r.metrics.iter().any(|m| clirlab_eval::cell::lower_is_better(m)).then(|| {
        format!(
            "{}: language bias of the multilingual setting (tasks multi:…), the mean over a query's relevant verses \
             and pairs of languages of the distance between their ranks in the pooled ranking; lower is better \
             (less biased), so its best mean is the lowest. Tasks mono:… are the monolingual setting.",
            clirlab_eval::cell::RANK_DISTANCE
        )
    })
}

pub(crate) fn dropped_note(r: &Report, task: &Task) -> Option<String> {
    if task.dropped.iter().all(|&d| d == 0) {
        return None;
    }
    let parts: Vec<String> = task
        .dropped
        .iter()
        .zip(&r.folders)
        .map(|(d, f)| {
            let name = if f.prefix.is_empty() {
                &f.record.experiment
            } else {
                &f.prefix
            };
            format!("{d} from {name}")
        })
        .collect();
    Some(format!(
        "Compared over the {} queries that every system was scored on; queries left out: {}.",
        task.queries,
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_and_slugs_format() {
        assert_eq!(fmt_p(0.01234), "0.0123");
        assert_eq!(fmt_p(2.5e-7), "2.5e-7");
        assert_eq!(fmt_p(0.0), "<1e-15");
        assert_eq!(slug("udhr:related/x y"), "udhr_related_x_y");
    }

    #[test]
    fn marks_follow_the_levels() {
        assert_eq!(mark(0.001), "‡");
        assert_eq!(mark(0.02), "†");
        assert_eq!(mark(0.2), "");
        assert_eq!(mark(f64::NAN), "");
    }
}
