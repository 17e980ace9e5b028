//! Means, t-based intervals and standardized effect sizes of paired differences.

use crate::error::Result;
use statrs::distribution::{Continuous, ContinuousCDF, StudentsT};

/// A mean with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    /// The mean.
    pub mean: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// Standardized effect sizes of the paired differences `d = y − x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectSize {
    /// Mean of `d`.
    pub mean_diff: f64,
    /// Cohen's d_z: mean(d) / sd(d), sd with the n − 1 denominator.
    pub d_z: f64,
    /// Hedges' g_z: d_z · J with J = 1 − 3 / (4(n − 1) − 1), see [`hedges_correction`].
    pub g_z: f64,
}

pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Mean and sample standard deviation (n − 1 denominator; NaN for a single value).
pub(crate) fn mean_sd(x: &[f64]) -> (f64, f64) {
    let m = mean(x);
    // Two-pass variance: the one-pass formula cancels badly when |mean| ≫ sd.
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    (m, (ss / (x.len() as f64 - 1.0)).sqrt())
}

/// `y − x` element-wise, after checking that the pairs line up and are finite.
pub(crate) fn differences(x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
    ensure!(
        x.len() == y.len(),
        Data,
        "paired test needs equally many values, found {} (baseline) and {} (system)",
        x.len(),
        y.len()
    );
    ensure!(!x.is_empty(), Data, "paired test needs at least one pair, found none");
    if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
        let (side, i) = if i < x.len() {
            ("baseline", i)
        } else {
            ("system", i - x.len())
        };
        fail!(Data, "paired test: {side} value #{i} is not finite");
    }
    Ok(x.iter().zip(y).map(|(a, b)| b - a).collect())
}

/// Above this many degrees of freedom, [`t_quantile`] uses the Cornish–Fisher expansion.
const T_EXPANSION_DF: f64 = 1000.0;

/// Quantile of Student's t with `df` degrees of freedom.
///
/// statrs inverts the regularized incomplete beta function, which is only accurate to about
/// 1e-9 on some inputs; two Newton steps on the CDF bring it to full double precision. Its
/// inversion clamps its start to [0.0001, 0.9999] and does not return for very large df
/// (planning asks for df up to 10⁵ and more), so above [`T_EXPANSION_DF`] the quantile is the
/// Cornish–Fisher expansion in 1/df around the normal quantile (Abramowitz and Stegun
/// 26.7.5, four terms; the fifth is below 1e-13 there). No Newton step follows: statrs' CDF
/// is only good to about 1e-11 at such df, the expansion is better.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if df > T_EXPANSION_DF {
        return cornish_fisher_t(p, df);
    }
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    let mut t = dist.inverse_cdf(p);
    if t.is_finite() {
        for _ in 0..2 {
            let step = (dist.cdf(t) - p) / dist.pdf(t);
            if !step.is_finite() {
                break;
            }
            t -= step;
        }
    }
    t
}

/// The t quantile from the normal one by the Cornish–Fisher expansion in 1/df.
fn cornish_fisher_t(p: f64, df: f64) -> f64 {
    let z = statrs::distribution::Normal::standard().inverse_cdf(p);
    if !z.is_finite() {
        return z;
    }
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df
}

/// Mean of `x` and its t-based interval at `confidence` (e.g. 0.95).
///
/// The interval is mean ± t_{(1+confidence)/2, n−1} · sd / √n, as
/// `scipy.stats.t.interval(confidence, n-1, loc=mean, scale=sem)`. Its bounds are NaN when
/// n < 2 (no variance estimate) unless all values are equal, and the mean is NaN when `x` is
/// empty.
pub fn mean_ci(x: &[f64], confidence: f64) -> MeanCi {
    if x.is_empty() {
        return MeanCi {
            mean: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let m = mean(x);
    // Constant data: the interval collapses; this also covers n = 1 with d = 0.
    if x.iter().all(|&v| v == x[0]) && (x.len() > 1 || x[0] == 0.0) {
        return MeanCi {
            mean: m,
            low: m,
            high: m,
        };
    }
    if x.len() < 2 {
        return MeanCi {
            mean: m,
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let (_, sd) = mean_sd(x);
    let q = t_quantile(0.5 + confidence / 2.0, (x.len() - 1) as f64);
    let margin = q * sd / (x.len() as f64).sqrt();
    MeanCi {
        mean: m,
        low: m - margin,
        high: m + margin,
    }
}

/// Hedges' small-sample correction J = 1 − 3 / (4·df − 1) with df = n − 1.
///
/// This is the usual approximation to Γ(df/2) / (√(df/2) Γ((df−1)/2)) (Hedges 1981; Lakens
/// 2013, eq. 4 applied to d_z). It is 0 for n = 2 and NaN for n < 2.
pub fn hedges_correction(n: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    1.0 - 3.0 / (4.0 * (n - 1) as f64 - 1.0)
}

/// Mean difference, Cohen's d_z and Hedges' g_z of `d = y − x`.
///
/// d_z is 0 when every difference is zero and ±∞ when the differences are a nonzero constant;
/// it is NaN for a single nonzero difference (no standard deviation).
pub fn effect_sizes(x: &[f64], y: &[f64]) -> Result<EffectSize> {
    let d = differences(x, y)?;
    Ok(effect_sizes_of(&d))
}

pub(crate) fn effect_sizes_of(d: &[f64]) -> EffectSize {
    let n = d.len();
    let m = mean(d);
    if d.iter().all(|&v| v == 0.0) {
        return EffectSize {
            mean_diff: 0.0,
            d_z: 0.0,
            g_z: 0.0,
        };
    }
    if n < 2 {
        return EffectSize {
            mean_diff: m,
            d_z: f64::NAN,
            g_z: f64::NAN,
        };
    }
    let (_, sd) = mean_sd(d);
    let d_z = if sd == 0.0 { m.signum() * f64::INFINITY } else { m / sd };
    let j = hedges_correction(n);
    // J = 0 at n = 2 would turn an infinite d_z into NaN; a zero correction means "no estimate".
    let g_z = if j == 0.0 { 0.0 } else { d_z * j };
    EffectSize { mean_diff: m, d_z, g_z }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantile_matches_known_values() {
        // Closed forms: df = 1 is Cauchy, tan(π(p − ½)); df = 2 is (2p − 1) / √(2p(1 − p)).
        let q1 = t_quantile(0.975, 1.0);
        assert!((q1 - (std::f64::consts::PI * 0.475).tan()).abs() < 1e-10, "{q1}");
        let q2 = t_quantile(0.975, 2.0);
        assert!((q2 - 0.95 / (2.0f64 * 0.975 * 0.025).sqrt()).abs() < 1e-12, "{q2}");
        // A standard table value (t_{0.975, 19} = 2.0930).
        assert!((t_quantile(0.975, 19.0) - 2.0930).abs() < 5e-5);
        let dist = StudentsT::new(0.0, 1.0, 7.5).unwrap();
        for p in [0.001, 0.05, 0.5, 0.9, 0.999] {
            assert!((dist.cdf(t_quantile(p, 7.5)) - p).abs() < 1e-14);
        }
    }

    #[test]
    fn t_quantile_at_large_df_matches_scipy() {
        // scipy.stats.t.ppf: on both sides of the switch to the expansion, and far above it
        // (where statrs' own inversion does not return). Within 1e-11: statrs' CDF, which the
        // Newton steps below the switch solve, is good to about that.
        for (p, df, want) in [
            (0.975, 999.0, 1.9623414611334493),
            (0.975, 1001.0, 1.9623367052808798),
            (0.2, 5000.0, -0.8416931276635046),
            (0.975, 1e5, 1.9599877075346095),
            (0.2, 1e5, -0.8416248279969006),
            (0.975, 1e7, 1.959964221767205),
        ] {
            let got = t_quantile(p, df);
            assert!((got - want).abs() < 1e-11, "p {p}, df {df}: {got} against {want}");
        }
    }

    #[test]
    fn hedges_correction_values() {
        assert_eq!(hedges_correction(2), 0.0);
        assert!((hedges_correction(20) - (1.0 - 3.0 / 75.0)).abs() < 1e-15);
        assert!(hedges_correction(1).is_nan());
    }

    #[test]
    fn effect_sizes_hand_checked() {
        // d = [1, 2, 3]: mean 2, sd 1 → d_z 2, J = 1 − 3/7.
        let e = effect_sizes(&[0.0, 0.0, 0.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((e.mean_diff, e.d_z), (2.0, 2.0));
        assert!((e.g_z - 2.0 * (4.0 / 7.0)).abs() < 1e-15);
        let zero = effect_sizes(&[0.3], &[0.3]).unwrap();
        assert_eq!((zero.mean_diff, zero.d_z, zero.g_z), (0.0, 0.0, 0.0));
        let constant = effect_sizes(&[0.0, 0.0], &[0.5, 0.5]).unwrap();
        assert_eq!(constant.d_z, f64::INFINITY);
    }

    #[test]
    fn mean_ci_hand_checked() {
        // [1, 2, 3]: mean 2, sd 1, margin t_{0.975,2}/√3 with the closed-form df = 2 quantile.
        let ci = mean_ci(&[1.0, 2.0, 3.0], 0.95);
        let margin = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt() / 3f64.sqrt();
        assert!((ci.high - 2.0 - margin).abs() < 1e-12 && (2.0 - ci.low - margin).abs() < 1e-12);
        let single = mean_ci(&[0.4], 0.95);
        assert!(single.low.is_nan() && single.mean == 0.4);
    }

    #[test]
    fn differences_reject_bad_input() {
        assert!(differences(&[1.0], &[1.0, 2.0]).is_err());
        assert!(differences(&[], &[]).is_err());
        let err = differences(&[1.0, 2.0], &[1.0, f64::NAN]).unwrap_err().to_string();
        assert!(err.contains("system value #1"), "{err}");
    }
}
