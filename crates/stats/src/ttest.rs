//! Student's paired t-test, as `scipy.stats.ttest_rel(y, x)` (two-sided).

use super::descriptive::{MeanCi, differences, effect_sizes_of, mean_ci, mean_sd};
use crate::error::Result;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Result of a paired t-test of `d = y − x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedT {
    /// t = mean(d) / (sd(d) / √n).
    pub t: f64,
    /// n − 1.
    pub df: f64,
    /// Two-sided p-value, 2 · P(T_df ≥ |t|).
    pub p_value: f64,
    /// Mean difference with its t-based confidence interval.
    pub diff: MeanCi,
    /// Cohen's d_z, mean(d) / sd(d).
    pub effect_size: f64,
}

/// Paired two-sided t-test of the system `y` against the baseline `x`.
///
/// Degenerate cases: all differences zero gives t = 0, p = 1; a nonzero constant difference
/// gives t = ±∞, p = 0 (scipy does the same); a single nonzero pair has no variance estimate,
/// so t and the interval are NaN and p = 1 (no evidence either way).
pub fn paired_t(x: &[f64], y: &[f64], confidence: f64) -> Result<PairedT> {
    let d = differences(x, y)?;
    Ok(paired_t_of(&d, confidence))
}

pub(crate) fn paired_t_of(d: &[f64], confidence: f64) -> PairedT {
    let n = d.len();
    let df = (n - 1) as f64;
    let diff = mean_ci(d, confidence);
    let effect_size = effect_sizes_of(d).d_z;
    let (m, sd) = mean_sd(d);
    let (t, p_value) = if d.iter().all(|&v| v == 0.0) {
        (0.0, 1.0)
    } else if n < 2 {
        (f64::NAN, 1.0)
    } else if sd == 0.0 {
        (m.signum() * f64::INFINITY, 0.0)
    } else {
        let t = m / (sd / (n as f64).sqrt());
        let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
        // The lower tail at −|t| keeps precision for tiny p, unlike 1 − cdf(|t|).
        (t, (2.0 * dist.cdf(-t.abs())).min(1.0))
    };
    PairedT {
        t,
        df,
        p_value,
        diff,
        effect_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_example() {
        // d = [1, 2, 3]: t = 2 / (1/√3) = 2√3; df = 2 has the closed-form CDF
        // F(t) = ½ + t / (2√(2 + t²)), so p = 1 − t/√(2 + t²).
        let r = paired_t(&[0.0; 3], &[1.0, 2.0, 3.0], 0.95).unwrap();
        let t = 2.0 * 3f64.sqrt();
        assert!((r.t - t).abs() < 1e-12);
        assert!(
            (r.p_value - (1.0 - t / (2.0 + t * t).sqrt())).abs() < 1e-12,
            "{}",
            r.p_value
        );
        assert_eq!(r.df, 2.0);
    }

    #[test]
    fn sign_follows_system_minus_baseline() {
        let r = paired_t(&[0.5, 0.6, 0.4], &[0.4, 0.4, 0.35], 0.95).unwrap();
        assert!(r.t < 0.0 && r.diff.mean < 0.0 && r.effect_size < 0.0);
    }

    #[test]
    fn degenerate_inputs() {
        let zero = paired_t(&[0.1, 0.2], &[0.1, 0.2], 0.95).unwrap();
        assert_eq!(
            (zero.t, zero.p_value, zero.diff.low, zero.diff.high),
            (0.0, 1.0, 0.0, 0.0)
        );
        let one = paired_t(&[0.1], &[0.3], 0.95).unwrap();
        assert!(one.t.is_nan() && one.p_value == 1.0);
        // Exactly representable so that the differences are exactly equal.
        let constant = paired_t(&[0.25, 0.5], &[0.5, 0.75], 0.95).unwrap();
        assert!(constant.t.is_infinite() && constant.p_value == 0.0);
    }
}
