//! Wilcoxon signed-rank test, following `scipy.stats.wilcoxon` (two-sided).

use super::descriptive::differences;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// Treatment of zero differences, as scipy's `zero_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ZeroMethod {
    /// Drop zero differences before ranking (scipy's default).
    #[default]
    Wilcox,
    /// Rank zeros with the rest, then drop their ranks (Pratt 1959); the normal approximation
    /// is adjusted for the dropped ranks (Cureton 1967), as scipy does.
    Pratt,
}

/// Options of [`wilcoxon`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WilcoxonOptions {
    /// How zero differences are treated.
    pub zero_method: ZeroMethod,
    /// Continuity correction of the normal approximation (scipy's `correction=True`; scipy's
    /// default is `False`, ours is `true`).
    pub continuity: bool,
    /// Use the exact null distribution when at most this many nonzero differences remain and
    /// there are no ties or (with Pratt) zeros. scipy's `method="auto"` uses 50. Capped at 63.
    pub exact_max_n: usize,
}

impl Default for WilcoxonOptions {
    fn default() -> Self {
        Self {
            zero_method: ZeroMethod::Wilcox,
            continuity: true,
            exact_max_n: 50,
        }
    }
}

/// Result of [`wilcoxon`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilcoxon {
    /// min(W+, W−), scipy's two-sided statistic.
    pub statistic: f64,
    /// Sum of the ranks of positive differences (system above baseline).
    pub w_plus: f64,
    /// Sum of the ranks of negative differences.
    pub w_minus: f64,
    /// Number of nonzero differences.
    pub n_nonzero: usize,
    /// Number of zero differences (dropped for `wilcox`, ranked for `pratt`).
    pub n_zero: usize,
    /// The z-score of the normal approximation, `None` when the exact distribution was used.
    pub z: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the p-value comes from the exact null distribution.
    pub exact: bool,
}

/// Two-sided Wilcoxon signed-rank test of `d = y − x`.
///
/// Ranks are average ranks of |d| (scipy's `rankdata`). The statistic is min(W+, W−), as
/// scipy reports for `alternative="two-sided"`; scipy ranks `x − y`, which swaps W+ and W−
/// but leaves the statistic and p-value unchanged.
///
/// * Exact: with no ties among the ranked |d|, no zeros left in the ranking, and at most
///   `exact_max_n` nonzero differences, p = min(1, 2·P(W ≤ statistic)) under the exact null
///   distribution of W over the 2^n equally likely sign assignments.
///   This differs from scipy in one respect: scipy's `method="auto"` falls back to the normal
///   approximation whenever any difference is zero, whereas with `wilcox` the zeros are
///   dropped first and the exact distribution of the remaining differences is used.
/// * Otherwise the normal approximation: mean n(n+1)/4 and variance n(n+1)(2n+1)/24 over the
///   ranked count n, minus the Pratt adjustment n₀(n₀+1)/4 and n₀(n₀+1)(2n₀+1)/24 for n₀ zeros,
///   minus Σ(t³ − t)/48 over groups of t tied nonzero ranks; with the continuity correction the
///   statistic moves 0.5 towards the mean; p = 2·Φ(−|z|).
///
/// With no nonzero difference the statistic is 0 and p = 1.
pub fn wilcoxon(x: &[f64], y: &[f64], opts: &WilcoxonOptions) -> Result<Wilcoxon> {
    let d = differences(x, y)?;
    Ok(wilcoxon_of(&d, opts))
}

pub(crate) fn wilcoxon_of(d: &[f64], opts: &WilcoxonOptions) -> Wilcoxon {
    let n_zero = d.iter().filter(|&&v| v == 0.0).count();
    let ranked: Vec<f64> = match opts.zero_method {
        ZeroMethod::Wilcox => d.iter().copied().filter(|&v| v != 0.0).collect(),
        ZeroMethod::Pratt => d.to_vec(),
    };
    let n_nonzero = d.len() - n_zero;
    if n_nonzero == 0 {
        return Wilcoxon {
            statistic: 0.0,
            w_plus: 0.0,
            w_minus: 0.0,
            n_nonzero,
            n_zero,
            z: None,
            p_value: 1.0,
            exact: false,
        };
    }
    let (ranks, tie_groups) = average_ranks(&ranked);
    let (mut w_plus, mut w_minus) = (0.0, 0.0);
    for (v, r) in ranked.iter().zip(&ranks) {
        if *v > 0.0 {
            w_plus += r;
        } else if *v < 0.0 {
            w_minus += r;
        }
    }
    let statistic = f64::min(w_plus, w_minus);
    let zeros_ranked = opts.zero_method == ZeroMethod::Pratt && n_zero > 0;
    // Ties among nonzero |d| only; the zeros' own tie group is handled by the Pratt term.
    let nonzero_ties: Vec<usize> = tie_groups
        .iter()
        .filter(|g| !(zeros_ranked && g.zero))
        .map(|g| g.size)
        .collect();
    let has_ties = nonzero_ties.iter().any(|&t| t > 1);
    let exact = !has_ties && !zeros_ranked && n_nonzero <= opts.exact_max_n.min(63);
    if exact {
        let p = 2.0 * exact_lower_tail(n_nonzero, statistic.round() as usize);
        return Wilcoxon {
            statistic,
            w_plus,
            w_minus,
            n_nonzero,
            n_zero,
            z: None,
            p_value: p.min(1.0),
            exact: true,
        };
    }
    let count = ranked.len() as f64;
    let mut mean = count * (count + 1.0) / 4.0;
    let mut var24 = count * (count + 1.0) * (2.0 * count + 1.0);
    if zeros_ranked {
        let z0 = n_zero as f64;
        mean -= z0 * (z0 + 1.0) / 4.0;
        var24 -= z0 * (z0 + 1.0) * (2.0 * z0 + 1.0);
    }
    var24 -= 0.5 * nonzero_ties.iter().map(|&t| (t * t * t - t) as f64).sum::<f64>();
    let se = (var24 / 24.0).sqrt();
    let shift = if opts.continuity {
        0.5 * (statistic - mean).signum()
    } else {
        0.0
    };
    let (z, p_value) = if se > 0.0 {
        let z = (statistic - mean - shift) / se;
        let normal = Normal::standard();
        (z, (2.0 * normal.cdf(-z.abs())).min(1.0))
    } else {
        (0.0, 1.0)
    };
    Wilcoxon {
        statistic,
        w_plus,
        w_minus,
        n_nonzero,
        n_zero,
        z: Some(z),
        p_value,
        exact: false,
    }
}

struct TieGroup {
    size: usize,
    zero: bool,
}

/// Average (mid) ranks of |v|, 1-based, and the tie groups found.
fn average_ranks(v: &[f64]) -> (Vec<f64>, Vec<TieGroup>) {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()));
    let mut ranks = vec![0.0; v.len()];
    let mut groups = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let key = v[order[start]].abs();
        let mut end = start + 1;
        while end < order.len() && v[order[end]].abs() == key {
            end += 1;
        }
        // Ranks start..end (0-based) share their mean, (start + 1 + end) / 2 in 1-based terms.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        groups.push(TieGroup {
            size: end - start,
            zero: key == 0.0,
        });
        start = end;
    }
    (ranks, groups)
}

/// P(W+ ≤ w) for n untied nonzero differences: counts of subsets of {1..n} with each sum,
/// divided by 2^n. Counts stay below 2^63 for n ≤ 63, so u64 is exact.
fn exact_lower_tail(n: usize, w: usize) -> f64 {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0u64; max + 1];
    counts[0] = 1;
    for k in 1..=n {
        // Descending sums so each rank k is used at most once.
        for s in (k..=k * (k + 1) / 2).rev() {
            counts[s] += counts[s - k];
        }
    }
    let below: u64 = counts[..=w.min(max)].iter().sum();
    below as f64 / 2f64.powi(n as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(d: &[f64], zero_method: ZeroMethod, continuity: bool) -> Wilcoxon {
        wilcoxon_of(
            d,
            &WilcoxonOptions {
                zero_method,
                continuity,
                exact_max_n: 50,
            },
        )
    }

    #[test]
    fn exact_small_case() {
        // d = 1, 2, −3, 4, 5: W+ = 12, W− = 3. Subsets of {1..5} with sum ≤ 3: {}, {1}, {2},
        // {3}, {1,2} → 5/32, p = 10/32.
        let r = run(&[1.0, 2.0, -3.0, 4.0, 5.0], ZeroMethod::Wilcox, true);
        assert!(r.exact);
        assert_eq!((r.w_plus, r.w_minus, r.statistic), (12.0, 3.0, 3.0));
        assert_eq!(r.p_value, 10.0 / 32.0);
    }

    #[test]
    fn exact_distribution_is_symmetric_and_complete() {
        assert_eq!(exact_lower_tail(10, 55), 1.0);
        // P(W ≤ 27) + P(W ≤ 27) = 1 for n = 10 (max 55, symmetric about 27.5).
        assert!((2.0 * exact_lower_tail(10, 27) - 1.0).abs() < 1e-15);
        assert_eq!(exact_lower_tail(3, 0), 1.0 / 8.0);
    }

    #[test]
    fn normal_approximation_with_ties_by_hand() {
        // |d| = 1, 1, 2, 3 with signs +, −, +, +: ranks 1.5, 1.5, 3, 4. W+ = 8.5, W− = 1.5.
        // mean = 5, var = (4·5·9 − ½·(2³ − 2)) / 24 = 177/24; continuity: T + 0.5 − 5.
        let r = run(&[1.0, -1.0, 2.0, 3.0], ZeroMethod::Wilcox, true);
        assert!(!r.exact);
        let z = (1.5 - 5.0 + 0.5) / (177.0f64 / 24.0).sqrt();
        assert!((r.z.unwrap() - z).abs() < 1e-12);
        let p = 2.0 * Normal::standard().cdf(z);
        assert!((r.p_value - p).abs() < 1e-12);
    }

    #[test]
    fn pratt_keeps_zeros_in_ranking() {
        // d = 0, 1, −2, 3: ranks 1, 2, 3, 4 with the zero's rank dropped: W+ = 6, W− = 3.
        // count 4: mean 5 − 1·2/4 = 4.5, var24 = 4·5·9 − 1·2·3 = 174; no continuity.
        let r = run(&[0.0, 1.0, -2.0, 3.0], ZeroMethod::Pratt, false);
        assert_eq!((r.w_plus, r.w_minus, r.n_zero), (6.0, 3.0, 1));
        let z = (3.0 - 4.5) / (174.0f64 / 24.0).sqrt();
        assert!((r.z.unwrap() - z).abs() < 1e-12 && !r.exact);
        // The same data under `wilcox` drops the zero: ranks 1, 2, 3 → exact.
        let w = run(&[0.0, 1.0, -2.0, 3.0], ZeroMethod::Wilcox, false);
        assert_eq!((w.w_plus, w.w_minus), (4.0, 2.0));
        assert!(w.exact);
    }

    #[test]
    fn all_zero_and_single() {
        let r = run(&[0.0, 0.0, 0.0], ZeroMethod::Pratt, true);
        assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
        let one = run(&[0.2], ZeroMethod::Wilcox, true);
        assert_eq!((one.statistic, one.p_value), (0.0, 1.0));
    }

    #[test]
    fn large_sample_uses_normal_approximation() {
        let d: Vec<f64> = (1..=60)
            .map(|i| if i % 3 == 0 { -(i as f64) } else { i as f64 })
            .collect();
        let r = run(&d, ZeroMethod::Wilcox, true);
        assert!(!r.exact && r.p_value > 0.0 && r.p_value < 1.0);
        assert_eq!(r.w_plus + r.w_minus, 60.0 * 61.0 / 2.0);
    }
}
