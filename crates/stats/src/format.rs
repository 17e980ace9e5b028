//! Renderings of comparison rows: Markdown, CSV, JSON and a LaTeX booktabs table.

use super::compare::Comparison;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;

/// Output format of [`format_comparisons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Markdown table followed by the families, tests and missing-query policies.
    Md,
    /// Every field of [`Comparison`], one row per comparison, with a header.
    Csv,
    /// A JSON array of objects with every field of [`Comparison`]; NaN and ±∞ become `null`.
    Json,
    /// A LaTeX `tabular` with booktabs rules (needs `\usepackage{booktabs}`).
    Tex,
}

impl FromStr for Format {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Md),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "tex" | "latex" => Ok(Format::Tex),
            _ => Err(crate::Error::UnknownFormat(s.to_string())),
        }
    }
}

/// Renders `rows` in `format`.
pub fn format_comparisons(rows: &[Comparison], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("comparisons serialize to JSON"),
        Format::Csv => csv_table(rows),
        Format::Md => markdown(rows),
        Format::Tex => tex(rows),
    }
}

fn csv_table(rows: &[Comparison]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        // serde-driven headers need a row; write them by hand for an empty table.
        w.write_record(CSV_HEADER).expect("in-memory CSV");
    }
    for r in rows {
        w.serialize(r).expect("comparison rows serialize to CSV");
    }
    let bytes = w.into_inner().expect("in-memory CSV");
    let safe = clirlab_util::csv_guard::neutralised(&bytes).expect("CSV just written reads back");
    String::from_utf8(safe).expect("CSV is UTF-8")
}

const CSV_HEADER: [&str; 25] = [
    "baseline",
    "system",
    "metric",
    "test",
    "method",
    "n",
    "filled_with_zero",
    "mean_baseline",
    "mean_system",
    "mean_diff",
    "statistic_name",
    "statistic",
    "df",
    "p_value",
    "p_adjusted",
    "correction",
    "family",
    "family_size",
    "effect_size",
    "hedges_g",
    "ci_low",
    "ci_high",
    "ci_method",
    "confidence",
    "missing_policy",
];

/// A number with `decimals` places; NaN as "–" and infinities as "±∞" (`tex` picks TeX forms).
fn num(v: f64, decimals: usize, tex: bool) -> String {
    let s = if v.is_nan() {
        return if tex { "--".into() } else { "–".into() };
    } else if v.is_infinite() {
        let sign = if v > 0.0 { "" } else { "-" };
        if tex {
            format!("${sign}\\infty$")
        } else {
            format!("{sign}∞")
        }
    } else {
        format!("{v:.decimals$}")
    };
    if tex && s.starts_with('-') && !s.contains('$') {
        format!("$-${}", &s[1..])
    } else {
        s
    }
}

/// p-values to 4 places, and "< 0.0001" below that.
fn pval(p: f64, tex: bool) -> String {
    if p.is_finite() && p < 1e-4 {
        if tex { "$<$0.0001".into() } else { "< 0.0001".into() }
    } else {
        num(p, 4, tex)
    }
}

fn ci(r: &Comparison, tex: bool) -> String {
    format!("[{}, {}]", num(r.ci_low, 4, tex), num(r.ci_high, 4, tex))
}

fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace('\n', " ")
}

fn notes(rows: &[Comparison]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    rows.iter()
        .filter_map(|r| {
            let note = format!(
                "{}: {} test; correction {} over {}; missing queries: {}; intervals: {:.0}% {}",
                r.metric,
                r.test.name(),
                r.correction.name(),
                r.family,
                match r.missing_policy {
                    super::compare::MissingPolicy::Error => "error",
                    super::compare::MissingPolicy::Zero => "scored 0 (trec_eval -c)",
                },
                r.confidence * 100.0,
                r.ci_method
            );
            seen.insert(note.clone()).then_some(note)
        })
        .collect()
}

fn markdown(rows: &[Comparison]) -> String {
    let mut out = String::from(
        "| metric | baseline | system | n | mean baseline | mean system | Δ mean | CI | statistic | p | p adj. | d_z | method |\n\
         |---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} = {} | {} | {} | {} | {} |",
            md_escape(&r.metric),
            md_escape(&r.baseline),
            md_escape(&r.system),
            r.n,
            num(r.mean_baseline, 4, false),
            num(r.mean_system, 4, false),
            num(r.mean_diff, 4, false),
            ci(r, false),
            r.statistic_name,
            num(r.statistic, 3, false),
            pval(r.p_value, false),
            pval(r.p_adjusted, false),
            num(r.effect_size, 3, false),
            md_escape(&r.method),
        );
    }
    out.push('\n');
    for note in notes(rows) {
        let _ = writeln!(out, "- {}", md_escape(&note));
    }
    out
}

/// Escapes the characters that are special in LaTeX text.
pub fn tex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '|' => out.push_str("\\textbar{}"),
            _ => out.push(c),
        }
    }
    out
}

fn tex(rows: &[Comparison]) -> String {
    let mut out = String::from(
        "\\begin{tabular}{lllrrrlrrrr}\n\\toprule\n\
         Metric & Baseline & System & $n$ & Baseline & System & CI of $\\Delta$ & Statistic & $p$ & $p_{\\mathrm{adj}}$ & $d_z$ \\\\\n\
         \\midrule\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{} & {} & {} & {} & {} & {} & {} & ${}={}$ & {} & {} & {} \\\\",
            tex_escape(&r.metric),
            tex_escape(&r.baseline),
            tex_escape(&r.system),
            r.n,
            num(r.mean_baseline, 4, true),
            num(r.mean_system, 4, true),
            ci(r, true),
            match r.statistic_name {
                "mean_diff" => "\\Delta",
                other => other,
            },
            num(r.statistic, 3, true).replace('$', ""),
            pval(r.p_value, true),
            pval(r.p_adjusted, true),
            num(r.effect_size, 3, true),
        );
    }
    out.push_str("\\bottomrule\n");
    for note in notes(rows) {
        let _ = writeln!(
            out,
            "\\multicolumn{{11}}{{l}}{{\\footnotesize {}}} \\\\",
            tex_escape(&note)
        );
    }
    out.push_str("\\end{tabular}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tex_escapes_specials() {
        assert_eq!(
            tex_escape("a_b & 50% #1 $x$ {y} ~^\\"),
            "a\\_b \\& 50\\% \\#1 \\$x\\$ \\{y\\} \\textasciitilde{}\\textasciicircum{}\\textbackslash{}"
        );
    }

    #[test]
    fn numbers_and_p_values() {
        assert_eq!(num(-0.5, 2, true), "$-$0.50");
        assert_eq!(num(f64::NAN, 2, false), "–");
        assert_eq!(num(f64::NEG_INFINITY, 2, true), "$-\\infty$");
        assert_eq!(pval(0.00001, false), "< 0.0001");
        assert_eq!(pval(0.04779, false), "0.0478");
    }

    #[test]
    fn parses_format_names() {
        assert_eq!("MD".parse::<Format>().unwrap(), Format::Md);
        assert_eq!("latex".parse::<Format>().unwrap(), Format::Tex);
        assert!(
            "xml"
                .parse::<Format>()
                .unwrap_err()
                .to_string()
                .contains("md, csv, json or tex")
        );
    }
}
