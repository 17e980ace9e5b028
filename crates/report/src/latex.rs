//! `tables.tex`: one booktabs table per task, ready to `\input`: the best mean of each metric
//! in bold, a superscript mark where a grid point differs from the baseline.

use super::mark;
use super::model::{ALPHA, ALPHA_STRICT, CONFIDENCE, Report};
use clirlab_stats::{self as stats, tex_escape as escape};
use std::fmt::Write as _;

/// The mark of a comparison shown equivalent to the baseline within the margin.
const EQUIVALENT_MARK: &str = "$^{\\approx}$";

fn latex_mark(p_adjusted: f64) -> &'static str {
    match mark(p_adjusted) {
        "‡" => "$^{\\ddagger}$",
        "†" => "$^{\\dagger}$",
        _ => "",
    }
}

/// The whole file.
pub fn tables(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "% clirlab report of {}: one table per task, to \\input{{tables.tex}}.\n% Needs \\usepackage{{booktabs}} \
         in the preamble.\n",
        r.title.replace('\n', " ")
    );
    for task in &r.tasks {
        let label = super::slug(&format!("{}-{}", r.title, task.name)).to_lowercase();
        let _ = writeln!(out, "\\begin{{table}}[t]\n\\centering\\small");
        let baseline = match r.baseline {
            Some(b) => format!(
                " {} / {}: differs from the baseline ({}) at corrected $p < {ALPHA}$ / ${ALPHA_STRICT}$ ({} test, {} \
                 correction over the comparisons with the baseline).",
                "$^{\\dagger}$",
                "$^{\\ddagger}$",
                escape(&r.variants[b].label),
                escape(r.test().name()),
                escape(r.correction().name())
            ),
            None => String::new(),
        };
        let equivalence = match r.equivalence_margin {
            Some(margin) => format!(
                " $^{{\\approx}}$: shown equivalent to the baseline within {margin} (two one-sided tests, \
                 corrected like the difference tests)."
            ),
            None => String::new(),
        };
        let seeds = if r.seed_aware() {
            " (in parentheses: between-seed sd of the mean; grid points with several seeds are tested with queries \
             and seeds random)"
        } else {
            " (seeds averaged per query)"
        };
        let _ = writeln!(
            out,
            "\\caption{{{}: task {}, mean over {} queries{seeds}; best in bold.{baseline}{equivalence}}}",
            escape(&r.title),
            escape(&task.name),
            task.queries
        );
        let _ = writeln!(out, "\\label{{tab:{label}}}");
        let _ = writeln!(out, "\\begin{{tabular}}{{l{}}}", "r".repeat(r.metrics.len()));
        out.push_str("\\toprule\n");
        let heads: Vec<String> = r.metrics.iter().map(|m| escape(m)).collect();
        let _ = writeln!(out, "Grid point & {} \\\\", heads.join(" & "));
        out.push_str("\\midrule\n");
        for (idx, row) in task.rows.iter().enumerate() {
            // The reference rows follow the grid's, below a rule of their own.
            if r.variants[row.variant].reference && (idx == 0 || !r.variants[task.rows[idx - 1].variant].reference) {
                out.push_str("\\midrule\n");
            }
            let mut name = escape(&r.variants[row.variant].label);
            if r.baseline == Some(row.variant) {
                name.push_str(" (baseline)");
            }
            let cells: Vec<String> = row
                .stats
                .iter()
                .enumerate()
                .map(|(m, s)| {
                    if !s.ci.mean.is_finite() {
                        return "--".to_string();
                    }
                    let value = format!("{:.3}", s.ci.mean);
                    let value = if task.is_best(m, idx) {
                        format!("\\textbf{{{value}}}")
                    } else {
                        value
                    };
                    let sig = s.vs_baseline.as_ref().map_or("", |c| latex_mark(c.p_adjusted));
                    let sig = match s.equivalence.map(|e| e.verdict) {
                        Some(stats::Verdict::Equivalent) => EQUIVALENT_MARK,
                        _ => sig,
                    };
                    if r.seed_aware() && s.seed_sd.is_finite() {
                        format!("{value}{sig} {{\\scriptsize ({:.3})}}", s.seed_sd)
                    } else {
                        format!("{value}{sig}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{name} & {} \\\\", cells.join(" & "));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        let _ = writeln!(
            out,
            "% {:.0}% intervals, p-values and effect sizes: summary.csv and comparisons.csv beside this file.",
            CONFIDENCE * 100.0
        );
        out.push_str("\\end{table}\n\n");
    }
    out
}
