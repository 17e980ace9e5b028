//! `report.html`: one self-contained page (inline CSS and SVG; no script, no network) with the
//! grid and provenance, the tables and the plots. Every text that comes from data or
//! configuration goes through [`escape`].

use super::model::{ALPHA, ALPHA_STRICT, CONFIDENCE, POWER, Report, Stat, Task};
use super::plots::{Plot, Section, colour};
use super::{dropped_note, fmt_p, mark, missing_note};
use clirlab_stats::MeanCi;
use clirlab_util::host::utc;
use std::fmt::Write as _;

/// `s` with every character that `entity` has a replacement for replaced.
pub(crate) fn replace_chars(s: &str, entity: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match entity(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    out
}

/// The entity of a character that makes HTML markup (`&`, `<`, `>`).
pub(crate) fn markup_entity(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

/// `s` safe as HTML text and as a quoted attribute value.
pub fn escape(s: &str) -> String {
    replace_chars(s, |c| match c {
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        c => markup_entity(c),
    })
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.5rem 2rem 4rem; color: #1d1d1f; line-height: 1.45; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1.08rem; margin-top: 1.6rem; }
code { font-size: .92em; background: #f4f4f6; padding: 0 .25em; border-radius: 3px; }
nav ul { columns: 3; padding-left: 1.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e3e3e3; text-align: right; vertical-align: top; }
th { background: #f6f6f8; border-bottom: 2px solid #bbb; }
td { white-space: nowrap; }
td.l, th.l { text-align: left; white-space: normal; }
tr.base td { background: #f3f7fc; }
tr.missing td { color: #8a8a8a; font-style: italic; }
small, .dim { color: #666; }
.best { font-weight: 700; }
sup.mark { font-weight: 700; margin-left: 1px; }
.up { color: #1a7f3c; } .down { color: #b3261e; }
.banner { background: #fff4d6; border: 1px solid #e8c36a; padding: .6rem .9rem; border-radius: 6px; font-weight: 600; }
.note { background: #f4f6fb; border-left: 4px solid #7d92c2; padding: .4rem .8rem; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: .35em; vertical-align: -.05em; }
figure { margin: 1.2rem 0 2rem; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .88rem; color: #444; max-width: 60rem; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; font-size: .92rem; }
dl.prov dt { color: #555; } dl.prov dd { margin: 0; }
"#;

fn num(x: f64) -> String {
    if x.is_finite() { format!("{x:.4}") } else { "—".into() }
}

/// `mean ± half-width` of an interval (the t intervals are symmetric).
fn mean_pm(ci: &MeanCi) -> String {
    if ci.low.is_finite() && ci.high.is_finite() {
        format!("{} ± {:.4}", num(ci.mean), (ci.high - ci.low) / 2.0)
    } else {
        num(ci.mean)
    }
}

fn swatch(i: usize) -> String {
    let c = colour(i);
    format!(
        r#"<span class="swatch" style="background:rgb({},{},{})"></span>"#,
        c.0, c.1, c.2
    )
}

/// One mean with its test; `lower_better` flips the colour of a difference (green: better);
/// `seeds` adds the seed-aware columns.
fn stat_cell(s: &Stat, best: bool, lower_better: bool, seeds: bool) -> String {
    let mut out = format!(
        r#"<td><span class="{}">{}</span>"#,
        if best { "best" } else { "" },
        mean_pm(&s.ci)
    );
    if let Some(c) = &s.vs_baseline {
        let m = mark(c.p_adjusted);
        if !m.is_empty() {
            let dir = if (c.mean_diff > 0.0) != lower_better {
                "up"
            } else {
                "down"
            };
            let _ = write!(out, r#"<sup class="mark {dir}">{m}</sup>"#);
        }
        let _ = write!(
            out,
            "<br><small>p<sub>adj</sub> {} · d<sub>z</sub> {:+.2}</small>",
            escape(&fmt_p(c.p_adjusted)),
            c.effect_size
        );
    }
    if let Some(e) = &s.equivalence {
        let _ = write!(
            out,
            "<br><small>{} within δ {} (TOST p<sub>adj</sub> {})</small>",
            e.verdict.name(),
            e.margin,
            escape(&fmt_p(e.p_tost_adjusted))
        );
    }
    if seeds {
        let num = |x: f64| {
            if x.is_nan() {
                "—".to_string()
            } else {
                format!("{x:.3}")
            }
        };
        let _ = write!(out, "<br><small>sd<sub>seed</sub> {}", num(s.seed_sd));
        if let Some(d) = &s.seeds {
            let _ = write!(out, " · p<sub>queries</sub> {}", escape(&fmt_p(d.p_queries)));
        }
        if let Some(mdd) = s.mdd {
            let _ = write!(out, " · MDD {}", num(mdd));
        }
        out.push_str("</small>");
    }
    out.push_str("</td>");
    out
}

fn provenance(out: &mut String, r: &Report) {
    for f in &r.folders {
        let rec = &f.record;
        let p = &rec.provenance;
        if !f.prefix.is_empty() {
            let _ = writeln!(out, "<h3>{}</h3>", escape(&f.prefix));
        }
        out.push_str("<dl class=\"prov\">\n");
        let commit = format!(
            "{}{}",
            p.git_commit.as_deref().unwrap_or("unknown"),
            if p.git_dirty == Some(true) { " (dirty)" } else { "" }
        );
        let rows = [
            ("results folder", f.dir.display().to_string()),
            ("experiment", rec.experiment.clone()),
            ("experiment file", rec.source.display().to_string()),
            ("data set", rec.dataset.clone()),
            ("clirlab", p.clirlab_version.clone()),
            ("git commit", commit),
            ("host", p.host.clone()),
            ("device", p.device.clone()),
            ("threads", p.threads.to_string()),
            ("started (UTC)", utc(p.started_unix)),
            (
                "cells",
                format!(
                    "{} planned, {} finished",
                    rec.cells.len(),
                    rec.cells.len() - f.missing.len()
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(out, "<dt>{k}</dt><dd><code>{}</code></dd>", escape(&v));
        }
        out.push_str("</dl>\n");
    }
}

fn grid(out: &mut String, r: &Report) {
    let axes = r.axes();
    out.push_str("<h2 id=\"grid\">Grid</h2>\n<table>\n<tr><th>#</th>");
    if r.compared() {
        out.push_str("<th class=\"l\">folder</th>");
    }
    for a in &axes {
        let _ = write!(out, "<th class=\"l\">{}</th>", escape(a));
    }
    // The schedule's name, unless it is an axis already.
    let schedule_column = !axes.iter().any(|a| a == "schedule");
    if schedule_column {
        out.push_str("<th class=\"l\">schedule</th>");
    }
    out.push_str("<th>seeds finished</th><th class=\"l\">status</th></tr>\n");
    // Reference rows are not grid points: the tables show them, the grid does not.
    for (i, v) in r.variants.iter().enumerate().filter(|(_, v)| !v.reference) {
        let done = v.cells.len();
        let (class, status) = if done == 0 {
            ("missing", "no finished cell")
        } else if done < v.planned {
            ("", "partly finished")
        } else {
            ("", "finished")
        };
        let base = if r.baseline == Some(i) { " (baseline)" } else { "" };
        let _ = write!(out, "<tr class=\"{class}\"><td>{}{}</td>", swatch(i), i + 1);
        if r.compared() {
            let _ = write!(out, "<td class=\"l\">{}</td>", escape(&r.folders[v.folder].prefix));
        }
        for a in &axes {
            let value = v.assignment.get(a).map(super::model::value_text).unwrap_or_default();
            let _ = write!(out, "<td class=\"l\">{}</td>", escape(&value));
        }
        if schedule_column {
            let _ = write!(out, "<td class=\"l\">{}</td>", escape(&v.schedule_name));
        }
        let _ = writeln!(
            out,
            "<td>{done} / {}</td><td class=\"l\">{status}{base}</td></tr>",
            v.planned
        );
    }
    out.push_str("</table>\n");
    let missing: Vec<String> = r
        .folders
        .iter()
        .flat_map(|f| f.missing.iter())
        .map(|m| {
            format!(
                "<li><code>{}</code> ({}): {}</li>",
                escape(&m.id),
                escape(&r.variants[m.variant].label),
                escape(&missing_note(m))
            )
        })
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "<h3 id=\"missing\">Cells without results ({})</h3>\n<p class=\"note\">The tables and plots use the \
             finished cells only.</p>\n<ul>\n{}\n</ul>",
            missing.len(),
            missing.join("\n")
        );
    }
}

fn method(out: &mut String, r: &Report) {
    out.push_str("<h2 id=\"method\">Statistics</h2>\n<ul>\n");
    let _ = writeln!(
        out,
        "<li>Each metric is averaged over the seeds of a grid point per query; means and {:.0}% t intervals are over \
         queries.</li>",
        CONFIDENCE * 100.0
    );
    match r.baseline {
        Some(b) => {
            let _ = writeln!(
                out,
                "<li>Baseline: {}<strong>{}</strong>. Test: <code>{}</code> (paired over queries, two-sided); \
                 correction: <code>{}</code> over the comparisons of one metric on one task against the baseline. \
                 <sup class=\"mark\">†</sup> corrected p &lt; {ALPHA}, <sup class=\"mark\">‡</sup> corrected p &lt; \
                 {ALPHA_STRICT} (<span class=\"up\">green</span>: higher than the baseline, <span \
                 class=\"down\">red</span>: lower); p<sub>adj</sub> is the corrected p-value, d<sub>z</sub> the mean \
                 difference over the standard deviation of the differences. The best mean of each column is in \
                 bold.</li>",
                swatch(b),
                escape(&r.variants[b].label),
                escape(r.test().name()),
                escape(r.correction().name())
            );
        }
        None => {
            out.push_str("<li>No baseline: a single grid point, or the baseline has no finished cell; no tests.</li>\n")
        }
    }
    if r.seed_aware() {
        let _ = writeln!(
            out,
            "<li>Seeds: a grid point with at least 2 seeds is compared with the baseline by the seed-aware t-test \
             (queries and seeds random, a seed variance per system, Satterthwaite df; a trained side with one seed \
             borrows the other side's seed variance; only the reference rows are deterministic), \
             corrected with the others; p<sub>queries</sub> is the <code>{}</code> test on the seed means. \
             sd<sub>seed</sub> is the standard deviation of the grid point's per-seed means; MDD the difference \
             detected with {:.0}% power at the per-comparison α (α/m for holm, bonferroni, bh and tukey).</li>",
            escape(r.options.test.name()),
            POWER * 100.0
        );
    }
    if let Some(warning) = super::two_seed_warning(r) {
        let _ = writeln!(out, "<li>Warning: {}</li>", escape(&warning));
    }
    if let Some(note) = super::references_note(r) {
        let _ = writeln!(out, "<li>{}</li>", escape(&note));
    }
    if let Some(note) = super::bias_note(r) {
        let _ = writeln!(
            out,
            "<li>{} Its marks are <span class=\"up\">green</span> for a lower value than the baseline's.</li>",
            escape(&note)
        );
    }
    if r.compared() {
        let _ = writeln!(
            out,
            "<li>Two results folders are compared: their grid points are the systems, named after their folder. \
             Every statistic of a task uses only the queries that all its systems were scored on. The statistics \
             settings and the baseline are those of <code>{}</code>.</li>",
            escape(&r.folders[0].prefix)
        );
    }
    out.push_str("</ul>\n");
}

/// Opens a table whose header is `lead` then a column per metric.
fn table_head(out: &mut String, r: &Report, lead: &str) {
    let _ = write!(out, "<table>\n<tr>{lead}");
    for m in &r.metrics {
        let _ = write!(
            out,
            "<th>{} <small>± {:.0}% CI</small></th>",
            escape(m),
            CONFIDENCE * 100.0
        );
    }
    out.push_str("</tr>\n");
}

fn summary(out: &mut String, r: &Report, t: usize, task: &Task) {
    let _ = writeln!(
        out,
        "<h3 id=\"task-{t}\">Task <code>{}</code>: {} queries</h3>",
        escape(&task.name),
        task.queries
    );
    if let Some(note) = dropped_note(r, task) {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&note));
    }
    table_head(out, r, "<th>#</th><th class=\"l\">grid point</th><th>seeds</th>");
    for (idx, row) in task.rows.iter().enumerate() {
        let v = &r.variants[row.variant];
        let is_base = r.baseline == Some(row.variant);
        let seeds = if v.reference {
            "—".to_string()
        } else {
            format!("{} / {}", v.cells.len(), v.planned)
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}{}</td><td class=\"l\">{}{}</td><td>{seeds}</td>",
            if is_base { "base" } else { "" },
            swatch(row.variant),
            row.variant + 1,
            escape(&v.label),
            if is_base { " <strong>(baseline)</strong>" } else { "" },
        );
        for (m, s) in row.stats.iter().enumerate() {
            let lower_better = task.lower_is_better.get(m).copied().unwrap_or(false);
            out.push_str(&stat_cell(s, task.is_best(m, idx), lower_better, r.seed_aware()));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn languages(out: &mut String, r: &Report, task: &Task) {
    if task.languages.is_empty() {
        return;
    }
    let _ = writeln!(out, "<h3>Per language, task <code>{}</code></h3>", escape(&task.name));
    table_head(
        out,
        r,
        "<th class=\"l\">language</th><th>#</th><th class=\"l\">grid point</th><th>queries</th>",
    );
    for l in &task.languages {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}{}</td><td class=\"l\">{}</td><td>{}</td>",
            escape(&l.lang),
            swatch(l.variant),
            l.variant + 1,
            escape(&r.variants[l.variant].label),
            l.queries
        );
        for ci in &l.metrics {
            let _ = write!(out, "<td>{}</td>", mean_pm(ci));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn figure(out: &mut String, p: &Plot) {
    // The SVG comes from plotters, which escapes the text it is given; it holds no script.
    let _ = writeln!(
        out,
        "<figure id=\"plot-{}\">\n{}\n<figcaption><strong>{}.</strong> {} <span class=\"dim\">(<code>plots/{}</code>)</span></figcaption>\n</figure>",
        escape(p.file.trim_end_matches(".svg")),
        p.svg.trim_end(),
        escape(&p.title),
        escape(&p.caption),
        escape(&p.file)
    );
}

/// The whole page.
pub fn page(r: &Report, plots: &[Plot]) -> String {
    let mut out = String::new();
    let title = format!("{} — clirlab report", r.title);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    if r.synthetic() {
        out.push_str(
            "<p class=\"banner\">Data: SYNTHETIC — the built-in generated bilingual set, not real text.</p>\n",
        );
    }
    out.push_str("<nav><ul>\n<li><a href=\"#grid\">Grid</a></li>\n<li><a href=\"#method\">Statistics</a></li>\n");
    for (t, task) in r.tasks.iter().enumerate() {
        let _ = writeln!(out, "<li><a href=\"#task-{t}\">Task {}</a></li>", escape(&task.name));
    }
    out.push_str(
        "<li><a href=\"#plots\">Plots</a></li>\n<li><a href=\"#provenance\">Provenance</a></li>\n</ul></nav>\n",
    );

    grid(&mut out, r);
    method(&mut out, r);
    out.push_str("<h2 id=\"results\">Results</h2>\n");
    if r.tasks.is_empty() {
        out.push_str("<p class=\"note\">No finished cell yet: nothing to show.</p>\n");
    }
    for (t, task) in r.tasks.iter().enumerate() {
        summary(&mut out, r, t, task);
        languages(&mut out, r, task);
    }

    out.push_str("<h2 id=\"plots\">Plots</h2>\n");
    for p in plots
        .iter()
        .filter(|p| matches!(p.section, Section::Schedules | Section::Loss))
    {
        figure(&mut out, p);
    }
    for (t, task) in r.tasks.iter().enumerate() {
        let _ = writeln!(out, "<h3>Task <code>{}</code></h3>", escape(&task.name));
        for p in plots.iter().filter(
            |p| matches!(p.section, Section::Metrics(i) | Section::Languages(i) | Section::Pairwise(i) if i == t),
        ) {
            figure(&mut out, p);
        }
        if task.pairwise.is_empty() && task.rows.len() > super::model::PAIRWISE_MAX_SYSTEMS {
            let _ = writeln!(
                out,
                "<p class=\"note\">No pairwise matrix: {} grid points are more than the {} it is drawn for \
                 (<code>pairwise.csv</code> is empty for this task).</p>",
                task.rows.len(),
                super::model::PAIRWISE_MAX_SYSTEMS
            );
        }
    }

    out.push_str("<h2 id=\"provenance\">Provenance</h2>\n");
    provenance(&mut out, r);
    out.push_str(
        "<h2>Files</h2>\n<p>Beside this page: <code>tables.tex</code> (booktabs tables), <code>plots/*.svg</code>, \
         <code>report.md</code>, <code>summary.csv</code> (one row per grid point and task), <code>cells.csv</code> \
         (one row per cell and language/task), <code>comparisons.csv</code> (every test against the baseline), \
         <code>pairwise.csv</code> (every pair of grid points).</p>\n</body>\n</html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script> it's"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; it&#39;s"
        );
        assert_eq!(escape("schedule=linear"), "schedule=linear");
    }

    #[test]
    fn unix_times_become_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    }
}
