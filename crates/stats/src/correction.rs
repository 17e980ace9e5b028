//! Multiple-comparison corrections, as statsmodels `multipletests`.

use serde::{Deserialize, Serialize};

/// Multiple-comparison correction over a family of p-values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Raw p-values.
    None,
    /// `bonferroni`: min(1, m·p).
    Bonferroni,
    /// `holm`: step-down, running max of (m − i + 1)·p_(i), clipped to 1.
    #[default]
    Holm,
    /// `fdr_bh` (Benjamini–Hochberg): step-up, running min from the top of m·p_(i)/i.
    Bh,
    /// `fdr_by` (Benjamini–Yekutieli): BH times c(m) = Σ_{i=1..m} 1/i.
    By,
}

impl Correction {
    /// The name used in configs and output (`none`, `bonferroni`, `holm`, `bh`, `by`).
    pub fn name(self) -> &'static str {
        match self {
            Correction::None => "none",
            Correction::Bonferroni => "bonferroni",
            Correction::Holm => "holm",
            Correction::Bh => "bh",
            Correction::By => "by",
        }
    }
}

/// The family a correction runs over in a report (`stats.family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// The comparisons of one metric on one task (against the baseline; the pairwise matrix
    /// apart).
    #[default]
    Metric,
    /// Every comparison of the report at once: all tasks (languages included) and metrics
    /// (against the baseline; the pairwise matrix apart).
    Report,
}

impl Family {
    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            Family::Metric => "metric",
            Family::Report => "report",
        }
    }
}

/// Adjusted p-values in input order.
///
/// Definitions are those of statsmodels `multipletests(pvals, method=...)[1]` for `bonferroni`,
/// `holm`, `fdr_bh` and `fdr_by`: p-values are sorted ascending, the step-down (Holm) or
/// step-up (BH, BY) adjustments are made monotone in that order, and results are clipped to 1.
/// Tied p-values receive equal adjusted values. NaN inputs stay NaN and are left out of the
/// family size.
pub fn adjust(p: &[f64], correction: Correction) -> Vec<f64> {
    let mut out = vec![f64::NAN; p.len()];
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len() as f64;
    match correction {
        Correction::None => {
            for &i in &order {
                out[i] = p[i];
            }
        }
        Correction::Bonferroni => {
            for &i in &order {
                out[i] = (p[i] * m).min(1.0);
            }
        }
        Correction::Holm => {
            let mut running = 0.0f64;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(p[i] * (m - rank as f64));
                out[i] = running.min(1.0);
            }
        }
        Correction::Bh | Correction::By => {
            let c = if correction == Correction::By {
                (1..=order.len()).map(|i| 1.0 / i as f64).sum()
            } else {
                1.0
            };
            let mut running = f64::INFINITY;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min(p[i] * m * c / (rank + 1) as f64);
                out[i] = running.min(1.0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
    }

    // Expected values worked by hand from the statsmodels definitions (sorted p = 0.01, 0.02,
    // 0.03, 0.04, 0.30 for the input below, m = 5, c(5) = 137/60).
    const P: [f64; 5] = [0.03, 0.01, 0.30, 0.04, 0.02];

    #[test]
    fn bonferroni() {
        close(&adjust(&P, Correction::Bonferroni), &[0.15, 0.05, 1.0, 0.2, 0.1]);
    }

    #[test]
    fn holm() {
        // raw 5·0.01, 4·0.02, 3·0.03, 2·0.04, 1·0.30 = .05 .08 .09 .08 .30 → running max.
        close(&adjust(&P, Correction::Holm), &[0.09, 0.05, 0.30, 0.09, 0.08]);
    }

    #[test]
    fn benjamini_hochberg() {
        // raw m·p/i = .05 .05 .05 .05 .30 → running min from the top.
        close(&adjust(&P, Correction::Bh), &[0.05, 0.05, 0.30, 0.05, 0.05]);
    }

    #[test]
    fn benjamini_yekutieli() {
        let c = 137.0 / 60.0;
        close(
            &adjust(&P, Correction::By),
            &[0.05 * c, 0.05 * c, (0.30 * c).min(1.0), 0.05 * c, 0.05 * c],
        );
    }

    #[test]
    fn step_up_and_clipping() {
        // BH with an out-of-order raw sequence: raw = .04·3/1=.12, .045·3/2=.0675, .9·3/3=.9.
        close(&adjust(&[0.9, 0.04, 0.045], Correction::Bh), &[0.9, 0.0675, 0.0675]);
        close(&adjust(&[0.6, 0.7], Correction::Bonferroni), &[1.0, 1.0]);
        close(&adjust(&[0.6, 0.7], Correction::Holm), &[1.0, 1.0]);
    }

    #[test]
    fn ties_and_none() {
        close(&adjust(&[0.01, 0.01, 0.5], Correction::Holm), &[0.03, 0.03, 0.5]);
        close(&adjust(&P, Correction::None), &P);
        assert!(adjust(&[], Correction::Holm).is_empty());
    }
}
