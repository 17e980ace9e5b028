//! The comparison layer behind `clirlab compare` and the experiment report: every system
//! against a baseline on one metric, with a multiple-comparison correction over that family.

use super::anova::{tukey_hsd, two_way_anova};
use super::bootstrap::{BootstrapMethod, BootstrapOptions, bootstrap_of};
use super::correction::{Correction, adjust};
use super::descriptive::{effect_sizes_of, mean, mean_ci};
use super::randomization::{RandomizationOptions, randomization_of};
use super::rng::stream_id;
use super::ttest::paired_t_of;
use super::wilcoxon::{WilcoxonOptions, ZeroMethod, wilcoxon_of};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The paired test of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    /// Student's paired t-test.
    #[default]
    T,
    /// Wilcoxon signed-rank test.
    Wilcoxon,
    /// Paired randomization (sign-flip) test of the mean difference.
    Randomization,
    /// Studentized paired bootstrap test with a bootstrap interval.
    Bootstrap,
    /// Two-way ANOVA without replication and Tukey's HSD over all pairs of systems.
    Tukey,
    /// The seed-aware test ([`seed_test`](super::seed_test)) that the report runs where a
    /// grid point has several seeds; it needs per-seed values, so it is never configured
    /// (`stats.unit` chooses it) and [`compare`] refuses it.
    #[serde(skip_deserializing)]
    Seeds,
}

impl TestKind {
    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            TestKind::T => "t",
            TestKind::Wilcoxon => "wilcoxon",
            TestKind::Randomization => "randomization",
            TestKind::Bootstrap => "bootstrap",
            TestKind::Tukey => "tukey",
            TestKind::Seeds => "seeds",
        }
    }
}

/// What to do with queries that some systems scored and others did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// Refuse to compare, naming the systems and queries.
    #[default]
    Error,
    /// Score a missing query 0 for that system, as `trec_eval -c` does, over the union of the
    /// queries of all systems on the metric.
    Zero,
}

impl MissingPolicy {
    /// The name as written in options and tables.
    pub fn name(self) -> &'static str {
        match self {
            MissingPolicy::Error => "error",
            MissingPolicy::Zero => "zero",
        }
    }
}

/// Options of [`compare`]. Deserializes with defaults for missing fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareOptions {
    /// The significance test.
    pub test: TestKind,
    /// Correction over the family; ignored for `tukey`, whose p-values already control the
    /// family-wise error rate over all pairs.
    pub correction: Correction,
    /// What to do with a query that a system lacks.
    pub missing: MissingPolicy,
    /// Monte Carlo sign vectors for `randomization` when there are more than 30 queries
    /// (fewer are enumerated exactly).
    pub permutations: usize,
    /// Resamples for `bootstrap`.
    pub bootstrap_samples: usize,
    /// Interval of `bootstrap`.
    pub bootstrap_ci: BootstrapMethod,
    /// Seed for `randomization` and `bootstrap`; each comparison draws from its own stream,
    /// derived from the metric, baseline and system names.
    pub seed: u64,
    /// Confidence level of the intervals (0.95 for 95%).
    pub confidence: f64,
    /// Zero differences in `wilcoxon`.
    pub zero_method: ZeroMethod,
    /// Worker threads for resampling (0: all available); results do not depend on it.
    pub threads: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            test: TestKind::T,
            correction: Correction::Holm,
            missing: MissingPolicy::Error,
            permutations: 10_000,
            bootstrap_samples: 10_000,
            bootstrap_ci: BootstrapMethod::Bca,
            seed: 42,
            confidence: 0.95,
            zero_method: ZeroMethod::Wilcox,
            threads: 0,
        }
    }
}

/// One system against the baseline on one metric (for `tukey`: one pair of systems).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The baseline system.
    pub baseline: String,
    /// The system compared with it.
    pub system: String,
    /// The metric compared.
    pub metric: String,
    /// The significance test.
    pub test: TestKind,
    /// How the p-value was obtained, e.g. `exact, 2^20 sign vectors` or
    /// `monte carlo, B = 10000, seed 42`.
    pub method: String,
    /// Queries compared.
    pub n: usize,
    /// Values of this pair filled with 0 under `missing = zero` (baseline plus system).
    pub filled_with_zero: usize,
    /// Mean of the baseline over the compared queries.
    pub mean_baseline: f64,
    /// Mean of the system over the compared queries.
    pub mean_system: f64,
    /// mean_system − mean_baseline.
    pub mean_diff: f64,
    /// Name of `statistic`: `t`, `W` (min(W+, W−)), `mean_diff`, or `q` (studentized range).
    pub statistic_name: &'static str,
    /// The test statistic (named by `statistic_name`).
    pub statistic: f64,
    /// Degrees of freedom of `statistic`, where it has them.
    pub df: Option<f64>,
    /// Unadjusted p-value.
    pub p_value: f64,
    /// p-value after `correction` over `family`.
    pub p_adjusted: f64,
    /// The multiple-comparison correction applied.
    pub correction: Correction,
    /// The family the correction runs over, in words.
    pub family: String,
    /// Comparisons in the family.
    pub family_size: usize,
    /// Cohen's d_z of the per-query differences.
    pub effect_size: f64,
    /// Hedges' g_z.
    pub hedges_g: f64,
    /// Lower end of the interval of the mean difference.
    pub ci_low: f64,
    /// Upper end of the interval of the mean difference.
    pub ci_high: f64,
    /// How the interval of the mean difference was obtained.
    pub ci_method: String,
    /// Confidence level of the interval.
    pub confidence: f64,
    /// The policy for missing queries that applied.
    pub missing_policy: MissingPolicy,
}

/// Compares every system in `per_system` (system → query id → value) with `baseline` on
/// `metric`.
///
/// The family is every other system against the baseline, corrected with
/// `opts.correction`; for `tukey` it is every pair of systems (baseline pairs first), with
/// Tukey's p-values reported as both raw and adjusted. Queries are aligned by id; with
/// [`MissingPolicy::Error`] a query missing from any system is an error that lists the
/// systems and query ids concerned. Returns no rows when the baseline is the only system.
pub fn compare(
    per_system: &BTreeMap<String, BTreeMap<String, f64>>,
    metric: &str,
    baseline: &str,
    opts: &CompareOptions,
) -> Result<Vec<Comparison>> {
    ensure!(
        opts.confidence > 0.0 && opts.confidence < 1.0,
        Setting,
        "confidence must lie strictly between 0 and 1, got {}",
        opts.confidence
    );
    ensure!(opts.permutations > 0, Setting, "permutations must be at least 1");
    ensure!(
        opts.bootstrap_samples > 0,
        Setting,
        "bootstrap_samples must be at least 1"
    );
    if !per_system.contains_key(baseline) {
        let known: Vec<&str> = per_system.keys().map(String::as_str).collect();
        fail!(
            Data,
            "metric {metric}: baseline `{baseline}` has no values (systems: {})",
            known.join(", ")
        );
    }
    let aligned = align(per_system, metric, opts.missing)?;
    let others: Vec<&String> = per_system.keys().filter(|s| *s != baseline).collect();
    if others.is_empty() {
        return Ok(Vec::new());
    }
    if opts.test == TestKind::Tukey {
        return tukey_rows(&aligned, metric, baseline, &others, opts);
    }
    ensure!(
        opts.test != TestKind::Seeds,
        Data,
        "metric {metric}: the seed-aware test needs per-seed values (stats::seed_test), not seed means"
    );
    let family = format!(
        "{} comparison{} against baseline {baseline} on metric {metric}",
        others.len(),
        if others.len() == 1 { "" } else { "s" }
    );
    let x = &aligned.values[baseline];
    let mut rows = Vec::with_capacity(others.len());
    for system in &others {
        let y = &aligned.values[system.as_str()];
        let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| b - a).collect();
        let stream = stream_id(&[metric, baseline, system]);
        let t_ci = mean_ci(&d, opts.confidence);
        let t_ci_method = "t".to_string();
        let (method, statistic_name, statistic, df, p_value, ci, ci_method) = match opts.test {
            TestKind::T => {
                let r = paired_t_of(&d, opts.confidence);
                (
                    format!("t, df = {}", r.df),
                    "t",
                    r.t,
                    Some(r.df),
                    r.p_value,
                    t_ci,
                    t_ci_method,
                )
            }
            TestKind::Wilcoxon => {
                let r = wilcoxon_of(
                    &d,
                    &WilcoxonOptions {
                        zero_method: opts.zero_method,
                        ..Default::default()
                    },
                );
                let how = if r.exact {
                    "exact".to_string()
                } else {
                    "normal approximation with tie and continuity corrections".to_string()
                };
                let zeros = match opts.zero_method {
                    ZeroMethod::Wilcox => "dropped",
                    ZeroMethod::Pratt => "ranked (pratt)",
                };
                let method = format!("{how}; {} zero differences {zeros}", r.n_zero);
                (method, "W", r.statistic, None, r.p_value, t_ci, t_ci_method)
            }
            TestKind::Randomization => {
                let r = randomization_of(
                    &d,
                    &RandomizationOptions {
                        permutations: opts.permutations,
                        seed: opts.seed,
                        threads: opts.threads,
                        ..Default::default()
                    },
                    stream,
                );
                let method = if r.exact {
                    format!("exact, 2^{} sign vectors", d.len())
                } else {
                    format!("monte carlo, B = {}, seed {}", r.evaluated, opts.seed)
                };
                (method, "mean_diff", r.mean_diff, None, r.p_value, t_ci, t_ci_method)
            }
            TestKind::Bootstrap => {
                let r = bootstrap_of(
                    &d,
                    &BootstrapOptions {
                        samples: opts.bootstrap_samples,
                        seed: opts.seed,
                        confidence: opts.confidence,
                        method: opts.bootstrap_ci,
                        threads: opts.threads,
                    },
                    stream,
                );
                let method = format!("studentized bootstrap, B = {}, seed {}", r.samples, opts.seed);
                let ci_method = match opts.bootstrap_ci {
                    BootstrapMethod::Percentile => "bootstrap percentile",
                    BootstrapMethod::Bca => "bootstrap bca",
                };
                let ci = super::descriptive::MeanCi {
                    mean: r.mean_diff,
                    low: r.ci_low,
                    high: r.ci_high,
                };
                (method, "t", r.t, None, r.p_value, ci, ci_method.to_string())
            }
            TestKind::Tukey | TestKind::Seeds => unreachable!("handled above"),
        };
        let effect = effect_sizes_of(&d);
        rows.push(Comparison {
            baseline: baseline.to_string(),
            system: system.to_string(),
            metric: metric.to_string(),
            test: opts.test,
            method,
            n: d.len(),
            filled_with_zero: aligned.filled[baseline] + aligned.filled[system.as_str()],
            mean_baseline: mean(x),
            mean_system: mean(y),
            mean_diff: effect.mean_diff,
            statistic_name,
            statistic,
            df,
            p_value,
            p_adjusted: p_value,
            correction: opts.correction,
            family: family.clone(),
            family_size: others.len(),
            effect_size: effect.d_z,
            hedges_g: effect.g_z,
            ci_low: ci.low,
            ci_high: ci.high,
            ci_method,
            confidence: opts.confidence,
            missing_policy: opts.missing,
        });
    }
    let adjusted = adjust(&rows.iter().map(|r| r.p_value).collect::<Vec<_>>(), opts.correction);
    for (row, p) in rows.iter_mut().zip(adjusted) {
        row.p_adjusted = p;
    }
    Ok(rows)
}

fn tukey_rows(
    aligned: &Aligned,
    metric: &str,
    baseline: &str,
    others: &[&String],
    opts: &CompareOptions,
) -> Result<Vec<Comparison>> {
    // Baseline first so that its pairs come first and read "baseline vs system".
    let names: Vec<&str> = std::iter::once(baseline)
        .chain(others.iter().map(|s| s.as_str()))
        .collect();
    let scores: Vec<Vec<f64>> = names.iter().map(|s| aligned.values[*s].clone()).collect();
    let n = scores[0].len();
    ensure!(
        n >= 2,
        Data,
        "metric {metric}: tukey needs at least 2 queries, found {n} (use another test)"
    );
    let anova = two_way_anova(&scores)?;
    let pairs = tukey_hsd(&anova, opts.confidence);
    let k = names.len();
    let family = format!(
        "all {} pairs of {k} systems on metric {metric} (Tukey HSD controls the family-wise error rate; no further correction)",
        pairs.len()
    );
    let method = format!(
        "tukey hsd, studentized range k = {k}, df = {}; anova F(systems) = {:.6}, p = {:.6}",
        anova.df_residual, anova.f_systems, anova.p_systems
    );
    Ok(pairs
        .iter()
        .map(|p| {
            let (a, b) = (names[p.i], names[p.j]);
            let d: Vec<f64> = scores[p.j].iter().zip(&scores[p.i]).map(|(y, x)| y - x).collect();
            let effect = effect_sizes_of(&d);
            Comparison {
                baseline: a.to_string(),
                system: b.to_string(),
                metric: metric.to_string(),
                test: TestKind::Tukey,
                method: method.clone(),
                n,
                filled_with_zero: aligned.filled[a] + aligned.filled[b],
                mean_baseline: anova.system_means[p.i],
                mean_system: anova.system_means[p.j],
                mean_diff: p.diff,
                statistic_name: "q",
                statistic: p.q,
                df: Some(anova.df_residual),
                p_value: p.p_value,
                p_adjusted: p.p_value,
                correction: Correction::None,
                family: family.clone(),
                family_size: pairs.len(),
                effect_size: effect.d_z,
                hedges_g: effect.g_z,
                ci_low: p.ci_low,
                ci_high: p.ci_high,
                ci_method: "tukey simultaneous".to_string(),
                confidence: opts.confidence,
                missing_policy: opts.missing,
            }
        })
        .collect())
}

/// Every system's values over one common, sorted list of query ids.
struct Aligned<'a> {
    values: BTreeMap<&'a str, Vec<f64>>,
    /// Values filled with 0, per system.
    filled: BTreeMap<&'a str, usize>,
}

/// How many ids an error message lists per system.
const SHOWN_IDS: usize = 10;

fn align<'a>(
    per_system: &'a BTreeMap<String, BTreeMap<String, f64>>,
    metric: &str,
    policy: MissingPolicy,
) -> Result<Aligned<'a>> {
    let queries: BTreeSet<&str> = per_system.values().flat_map(|q| q.keys().map(String::as_str)).collect();
    ensure!(
        !queries.is_empty(),
        Data,
        "metric {metric}: no per-query values to compare"
    );
    for (system, values) in per_system {
        if let Some((q, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
            fail!(
                Data,
                "metric {metric}: system `{system}` has a non-finite value ({v}) for query `{q}`"
            );
        }
    }
    let mut values = BTreeMap::new();
    let mut filled = BTreeMap::new();
    let mut problems = String::new();
    for (system, scores) in per_system {
        let missing: Vec<&str> = queries.iter().copied().filter(|q| !scores.contains_key(*q)).collect();
        if !missing.is_empty() && policy == MissingPolicy::Error {
            let shown = missing[..missing.len().min(SHOWN_IDS)].join(", ");
            let more = if missing.len() > SHOWN_IDS {
                format!(" and {} more", missing.len() - SHOWN_IDS)
            } else {
                String::new()
            };
            let _ = write!(
                problems,
                "\n  system `{system}` lacks {} of {} queries: {shown}{more}",
                missing.len(),
                queries.len()
            );
        }
        values.insert(
            system.as_str(),
            queries.iter().map(|q| scores.get(*q).copied().unwrap_or(0.0)).collect(),
        );
        filled.insert(system.as_str(), missing.len());
    }
    if !problems.is_empty() {
        fail!(
            Data,
            "metric {metric}: systems were scored on different queries (missing = error):{problems}\n  \
             set missing = zero to score missing queries 0, as trec_eval -c does"
        );
    }
    Ok(Aligned { values, filled })
}

/// Per-query values of systems: metric → system → query → value.
pub type MetricTable = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

/// Every system of `table` against the baseline on every metric, metrics in order: what
/// `clirlab compare` shows. The baseline is `baseline`, or else the first of `systems`.
pub fn compare_table(
    table: &MetricTable,
    systems: &[String],
    baseline: Option<&str>,
    opts: &CompareOptions,
) -> Result<Vec<Comparison>> {
    let Some(first) = systems.first() else {
        fail!(Data, "no systems to compare");
    };
    let baseline = baseline.unwrap_or(first);
    if !systems.iter().any(|s| s == baseline) {
        fail!(Data, "--baseline: no run is named `{baseline}` (runs: {systems:?})");
    }
    let mut rows = Vec::new();
    for (metric, per_system) in table {
        rows.extend(compare(per_system, metric, baseline, opts)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_compare_every_metric_against_the_baseline() {
        let values =
            |v: &[f64]| -> BTreeMap<String, f64> { v.iter().enumerate().map(|(i, x)| (format!("q{i}"), *x)).collect() };
        let mut table = MetricTable::new();
        for metric in ["map", "ndcg_cut_10"] {
            let per_system = table.entry(metric.to_string()).or_default();
            per_system.insert("a".into(), values(&[0.1, 0.2, 0.3, 0.4]));
            per_system.insert("b".into(), values(&[0.2, 0.3, 0.5, 0.4]));
        }
        let names = vec!["a".to_string(), "b".to_string()];
        let opts = CompareOptions::default();
        let rows = compare_table(&table, &names, None, &opts).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.baseline == "a" && r.system == "b"));
        assert_eq!(
            (rows[0].metric.as_str(), rows[1].metric.as_str()),
            ("map", "ndcg_cut_10")
        );
        let flipped = compare_table(&table, &names, Some("b"), &opts).unwrap();
        assert!(flipped.iter().all(|r| r.baseline == "b" && r.system == "a"));
        let err = compare_table(&table, &names, Some("c"), &opts).unwrap_err().to_string();
        assert!(err.contains("no run is named `c`"), "{err}");
        assert!(compare_table(&table, &[], None, &opts).is_err());
    }
}
