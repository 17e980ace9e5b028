//! Paired significance tests over per-query values, multiple-comparison corrections and
//! effect sizes. Definitions follow scipy (`ttest_rel`, `t.ppf`) and statsmodels
//! (`multipletests`).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The paired test of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    /// Student's paired t-test, two-sided.
    #[default]
    T,
}

/// Multiple-comparison correction over a family of p-values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    None,
    Bonferroni,
    #[default]
    Holm,
    /// Benjamini–Hochberg.
    Bh,
    /// Benjamini–Yekutieli.
    By,
}

/// Adjusted p-values in input order, as statsmodels `multipletests` computes them.
pub fn adjust(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut out = vec![0.0; m];
    match correction {
        Correction::None => out.copy_from_slice(p),
        Correction::Bonferroni => {
            for i in 0..m {
                out[i] = (p[i] * m as f64).min(1.0);
            }
        }
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                out[i] = running;
            }
        }
        Correction::Bh | Correction::By => {
            let c: f64 = if correction == Correction::By {
                (1..=m).map(|i| 1.0 / i as f64).sum()
            } else {
                1.0
            };
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min(p[i] * m as f64 * c / (rank + 1) as f64);
                out[i] = running.min(1.0);
            }
        }
    }
    out
}

/// A mean with its t-based confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Mean of `x` and its t-based interval at `confidence`; NaN bounds when n < 2.
pub fn mean_ci(x: &[f64], confidence: f64) -> MeanCi {
    if x.is_empty() {
        return MeanCi {
            mean: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let (mean, sd) = mean_sd(x);
    if x.len() < 2 {
        return MeanCi {
            mean,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let df = (x.len() - 1) as f64;
    let q = StudentsT::new(0.0, 1.0, df)
        .expect("df > 0")
        .inverse_cdf(0.5 + confidence / 2.0);
    let margin = q * sd / (x.len() as f64).sqrt();
    MeanCi {
        mean,
        low: mean - margin,
        high: mean + margin,
    }
}

/// Result of a paired t-test of y − x.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedT {
    pub t: f64,
    pub df: f64,
    pub p_value: f64,
    /// Mean difference y − x with its confidence interval.
    pub diff: MeanCi,
    /// Mean difference / sd of differences (Cohen's d_z).
    pub effect_size: f64,
}

pub fn paired_t(x: &[f64], y: &[f64], confidence: f64) -> Result<PairedT> {
    if x.len() != y.len() {
        bail!("paired t-test needs equal lengths, found {} and {}", x.len(), y.len());
    }
    if x.len() < 2 {
        bail!("paired t-test needs at least 2 pairs, found {}", x.len());
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| b - a).collect();
    let (mean, sd) = mean_sd(&d);
    let df = (d.len() - 1) as f64;
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    // Identical differences: no variance; t is 0 (no difference) or infinite.
    let (t, p_value, effect_size) = if sd == 0.0 {
        if mean == 0.0 {
            (0.0, 1.0, 0.0)
        } else {
            (mean.signum() * f64::INFINITY, 0.0, mean.signum() * f64::INFINITY)
        }
    } else {
        let t = mean / (sd / (d.len() as f64).sqrt());
        (t, 2.0 * (1.0 - dist.cdf(t.abs())), mean / sd)
    };
    Ok(PairedT {
        t,
        df,
        p_value,
        diff: mean_ci(&d, confidence),
        effect_size,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    pub test: TestKind,
    pub correction: Correction,
    pub confidence: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            test: TestKind::T,
            correction: Correction::Holm,
            confidence: 0.95,
        }
    }
}

/// One system against the baseline on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub system: String,
    pub metric: String,
    pub test: TestKind,
    pub n: usize,
    pub mean_baseline: f64,
    pub mean_system: f64,
    pub statistic: f64,
    pub p_value: f64,
    pub p_adjusted: f64,
    pub correction: Correction,
    pub family: String,
    pub effect_size: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Compares every system with `baseline` on `metric`; the queries of all systems must agree.
pub fn compare(
    per_system: &BTreeMap<String, BTreeMap<String, f64>>,
    metric: &str,
    baseline: &str,
    opts: &CompareOptions,
) -> Result<Vec<Comparison>> {
    let base = per_system
        .get(baseline)
        .ok_or_else(|| anyhow::anyhow!("baseline `{baseline}` has no values for {metric}"))?;
    let others: Vec<(&String, &BTreeMap<String, f64>)> =
        per_system.iter().filter(|(k, _)| k.as_str() != baseline).collect();
    let family = format!("{} comparisons against baseline {baseline} on {metric}", others.len());
    let mut rows = Vec::new();
    for (name, values) in others {
        if values.len() != base.len() || !values.keys().all(|q| base.contains_key(q)) {
            let only: Vec<&String> = values
                .keys()
                .filter(|q| !base.contains_key(*q))
                .chain(base.keys().filter(|q| !values.contains_key(*q)))
                .take(5)
                .collect();
            bail!("{metric}: `{name}` and baseline `{baseline}` have different queries (e.g. {only:?})");
        }
        let x: Vec<f64> = base.values().copied().collect();
        let y: Vec<f64> = base.keys().map(|q| values[q]).collect();
        let t = paired_t(&x, &y, opts.confidence)?;
        rows.push(Comparison {
            baseline: baseline.to_string(),
            system: name.clone(),
            metric: metric.to_string(),
            test: opts.test,
            n: x.len(),
            mean_baseline: x.iter().sum::<f64>() / x.len() as f64,
            mean_system: y.iter().sum::<f64>() / y.len() as f64,
            statistic: t.t,
            p_value: t.p_value,
            p_adjusted: t.p_value,
            correction: opts.correction,
            family: family.clone(),
            effect_size: t.effect_size,
            ci_low: t.diff.low,
            ci_high: t.diff.high,
        });
    }
    let adjusted = adjust(&rows.iter().map(|r| r.p_value).collect::<Vec<_>>(), opts.correction);
    for (row, p) in rows.iter_mut().zip(adjusted) {
        row.p_adjusted = p;
    }
    Ok(rows)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

pub fn format_comparisons(rows: &[Comparison], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).expect("comparisons serialize"),
        Format::Csv => {
            let mut out = String::from(
                "baseline,system,metric,test,n,mean_baseline,mean_system,statistic,p_value,p_adjusted,correction,family,effect_size,ci_low,ci_high\n",
            );
            for r in rows {
                let _ = writeln!(
                    out,
                    "{},{},{},{:?},{},{},{},{},{},{},{:?},\"{}\",{},{},{}",
                    r.baseline,
                    r.system,
                    r.metric,
                    r.test,
                    r.n,
                    r.mean_baseline,
                    r.mean_system,
                    r.statistic,
                    r.p_value,
                    r.p_adjusted,
                    r.correction,
                    r.family,
                    r.effect_size,
                    r.ci_low,
                    r.ci_high
                );
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sakai(name: &str) -> Vec<f64> {
        let path = format!("{}/../shared/testdata/sakai/{name}.csv", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn paired_t_matches_sakai_table() {
        let t = paired_t(&sakai("Y"), &sakai("X"), 0.95).unwrap();
        assert!((t.t - 2.1157598612734656).abs() < 1e-9, "{}", t.t);
        assert!((t.p_value - 0.04779676184496439).abs() < 1e-9);
        assert!((t.effect_size - 0.4730982873872994).abs() < 1e-9);
        assert!(((t.diff.high - t.diff.low) / 2.0 - 0.07419405526775592).abs() < 1e-9);
    }

    #[test]
    fn corrections_match_statsmodels() {
        let p = [0.01, 0.04, 0.03, 0.2];
        let close = |a: Vec<f64>, b: [f64; 4]| {
            a.iter()
                .zip(b)
                .for_each(|(x, y)| assert!((x - y).abs() < 1e-12, "{a:?}"))
        };
        close(adjust(&p, Correction::Bonferroni), [0.04, 0.16, 0.12, 0.8]);
        close(adjust(&p, Correction::Holm), [0.04, 0.09, 0.09, 0.2]);
        close(
            adjust(&p, Correction::Bh),
            [0.04, 0.05333333333333334, 0.05333333333333334, 0.2],
        );
        let c = 1.0 + 0.5 + 1.0 / 3.0 + 0.25;
        close(
            adjust(&p, Correction::By),
            [
                0.04 * c,
                0.05333333333333334 * c,
                0.05333333333333334 * c,
                (0.2 * c).min(1.0),
            ],
        );
    }

    #[test]
    fn identical_systems_give_p_one() {
        let t = paired_t(&[0.1, 0.2, 0.3], &[0.1, 0.2, 0.3], 0.95).unwrap();
        assert_eq!((t.t, t.p_value, t.effect_size), (0.0, 1.0, 0.0));
    }

    #[test]
    fn mismatched_queries_are_an_error() {
        let mut m = BTreeMap::new();
        m.insert(
            "a".to_string(),
            BTreeMap::from([("q1".to_string(), 0.1), ("q2".to_string(), 0.2)]),
        );
        m.insert(
            "b".to_string(),
            BTreeMap::from([("q1".to_string(), 0.1), ("q3".to_string(), 0.2)]),
        );
        let err = compare(&m, "AP", "a", &CompareOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("different queries"), "{err}");
    }
}
