//! Paired bootstrap of the mean difference: confidence interval (percentile or BCa) and a
//! studentized bootstrap test.

use super::descriptive::{differences, mean, mean_sd};
use super::rng::{chunk_rng, run_chunks, thread_count};
use crate::error::Result;
use rand::distributions::{Distribution, Uniform};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// Kind of bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapMethod {
    /// Percentiles α/2 and 1 − α/2 of the bootstrap means.
    Percentile,
    /// Bias-corrected and accelerated (Efron 1987), acceleration from the jackknife.
    #[default]
    Bca,
}

/// Options of [`bootstrap_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapOptions {
    /// Bootstrap resamples B.
    pub samples: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Confidence level of the interval (0.95 for 95%).
    pub confidence: f64,
    /// Percentile or BCa interval.
    pub method: BootstrapMethod,
    /// Worker threads (0: all available). Results do not depend on it.
    pub threads: usize,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            samples: 10_000,
            seed: 42,
            confidence: 0.95,
            method: BootstrapMethod::Bca,
            threads: 0,
        }
    }
}

/// Result of [`bootstrap_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// mean(y − x).
    pub mean_diff: f64,
    /// Lower end of the interval of the mean difference.
    pub ci_low: f64,
    /// Upper end of the interval of the mean difference.
    pub ci_high: f64,
    /// Observed paired t statistic, the statistic of the bootstrap test.
    pub t: f64,
    /// (extreme + 1) / (B + 1).
    pub p_value: f64,
    /// Resamples whose null-centred t is at least as extreme as the observed t.
    pub extreme: u64,
    /// Resamples drawn.
    pub samples: usize,
    /// BCa bias correction z0 (NaN for the percentile method).
    pub z0: f64,
    /// BCa acceleration a (NaN for the percentile method).
    pub acceleration: f64,
}

/// Paired bootstrap of `d = y − x`: resamples queries with replacement B times.
///
/// * Interval: the percentile interval, or BCa with z0 = Φ⁻¹((#{θ* < θ̂} + #{θ* ≤ θ̂}) / 2B)
///   and jackknife acceleration a = Σu³ / (6 (Σu²)^{3/2}), u_i = (n − 1)(θ̄₍.₎ − θ₍ᵢ₎), as
///   `scipy.stats.bootstrap(method="BCa")`; percentiles interpolate linearly between order
///   statistics (numpy's default). BCa bounds are NaN when z0 is infinite (θ̂ outside every
///   resample), as in scipy.
/// * Test: Sakai's paired bootstrap test. Resamples of the centred differences d − d̄ give
///   t* = mean / (sd / √n); p = (1 + #{|t*| ≥ |t|}) / (B + 1) with the same 1e-9 relative
///   tolerance as the randomization test.
///
/// When every difference is zero: p = 1, interval [0, 0]. A nonzero constant difference gives
/// the point interval and p = 1/(B + 1), except for n = 1 where nothing can be inferred
/// (p = 1, interval NaN).
pub fn bootstrap_test(x: &[f64], y: &[f64], opts: &BootstrapOptions) -> Result<Bootstrap> {
    let d = differences(x, y)?;
    Ok(bootstrap_of(&d, opts, 0))
}

/// Resamples per chunk of work (a unit of the deterministic RNG layout).
const CHUNK: usize = 256;

pub(crate) fn bootstrap_of(d: &[f64], opts: &BootstrapOptions, stream: u64) -> Bootstrap {
    let n = d.len();
    let b = opts.samples.max(1);
    let (theta, sd) = mean_sd(d);
    let nf = n as f64;
    if d.iter().all(|&v| v == d[0]) {
        let zero = d[0] == 0.0;
        let undetermined = zero || n == 1;
        let bound = if !zero && n == 1 { f64::NAN } else { theta };
        return Bootstrap {
            mean_diff: theta,
            ci_low: bound,
            ci_high: bound,
            t: if zero {
                0.0
            } else if n == 1 {
                f64::NAN
            } else {
                theta.signum() * f64::INFINITY
            },
            p_value: if undetermined { 1.0 } else { 1.0 / (b + 1) as f64 },
            extreme: 0,
            samples: b,
            z0: f64::NAN,
            acceleration: f64::NAN,
        };
    }
    let t_obs = theta / (sd / nf.sqrt());
    let threshold = t_obs.abs() - 1e-9 * t_obs.abs().max(1.0);
    // Centred values: the test resamples them directly, and their sums square without the
    // cancellation that raw sums of d would suffer.
    let centred: Vec<f64> = d.iter().map(|v| v - theta).collect();
    // u32 indices: one RNG word per draw and the same stream on 32- and 64-bit targets.
    let pick = Uniform::new(0, u32::try_from(n).expect("fewer than 2^32 queries"));
    let chunks = b.div_ceil(CHUNK);
    let results = run_chunks(chunks, thread_count(opts.threads), |c| {
        let mut rng = chunk_rng(opts.seed, stream, c);
        let count = CHUNK.min(b - c * CHUNK);
        let mut means = Vec::with_capacity(count);
        let mut extreme = 0u64;
        for _ in 0..count {
            let (mut s, mut ss) = (0.0, 0.0);
            for _ in 0..n {
                let z = centred[pick.sample(&mut rng) as usize];
                s += z;
                ss += z * z;
            }
            let m = s / nf;
            let var = ((ss - s * m) / (nf - 1.0)).max(0.0);
            let t = if var > 0.0 {
                m / (var / nf).sqrt()
            } else if m == 0.0 {
                0.0
            } else {
                f64::INFINITY
            };
            if t.abs() >= threshold {
                extreme += 1;
            }
            means.push(theta + m);
        }
        (means, extreme)
    });
    let extreme: u64 = results.iter().map(|r| r.1).sum();
    let mut means: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - opts.confidence) / 2.0;
    let normal = Normal::standard();
    let (lo_q, hi_q, z0, acceleration) = match opts.method {
        BootstrapMethod::Percentile => (alpha, 1.0 - alpha, f64::NAN, f64::NAN),
        BootstrapMethod::Bca => {
            let below = means.partition_point(|&v| v < theta);
            let at_most = means.partition_point(|&v| v <= theta);
            let z0 = normal.inverse_cdf((below + at_most) as f64 / (2 * b) as f64);
            let a = jackknife_acceleration(d);
            let adjust = |z_alpha: f64| {
                let num = z0 + z_alpha;
                normal.cdf(z0 + num / (1.0 - a * num))
            };
            (
                adjust(normal.inverse_cdf(alpha)),
                adjust(normal.inverse_cdf(1.0 - alpha)),
                z0,
                a,
            )
        }
    };
    Bootstrap {
        mean_diff: theta,
        ci_low: percentile(&means, lo_q),
        ci_high: percentile(&means, hi_q),
        t: t_obs,
        p_value: (extreme + 1) as f64 / (b + 1) as f64,
        extreme,
        samples: b,
        z0,
        acceleration,
    }
}

/// Jackknife acceleration of the mean: leave-one-out means θ₍ᵢ₎ and u_i = (n−1)(θ̄₍.₎ − θ₍ᵢ₎).
fn jackknife_acceleration(d: &[f64]) -> f64 {
    let n = d.len() as f64;
    let total: f64 = d.iter().sum();
    let loo: Vec<f64> = d.iter().map(|v| (total - v) / (n - 1.0)).collect();
    let loo_mean = mean(&loo);
    let u: Vec<f64> = loo.iter().map(|t| (n - 1.0) * (loo_mean - t)).collect();
    let (s2, s3) = u.iter().fold((0.0, 0.0), |(s2, s3), v| (s2 + v * v, s3 + v * v * v));
    s3 / (6.0 * s2.powf(1.5))
}

/// Quantile `q` of sorted values with linear interpolation between order statistics
/// (numpy's default `linear` method); NaN when `q` is NaN.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..40).map(|i| ((i * 13) % 17) as f64 / 20.0).collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + 0.05 + ((i * 7) % 5) as f64 / 25.0 - 0.08)
            .collect();
        (x, y)
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 4.0, 8.0];
        // h = 3·0.5 = 1.5 → 2 + 0.5·2 = 3; h = 3·0.9 = 2.7 → 4 + 0.7·4 = 6.8.
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert!((percentile(&v, 0.9) - 6.8).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 8.0);
    }

    #[test]
    fn acceleration_hand_checked() {
        // For the mean, u_i = d_i − d̄: d = 0, 0, 3 → u = −1, −1, 2; Σu² = 6, Σu³ = 6.
        let a = jackknife_acceleration(&[0.0, 0.0, 3.0]);
        assert!((a - 6.0 / (6.0 * 6f64.powf(1.5))).abs() < 1e-15);
        assert!(jackknife_acceleration(&[1.0, 2.0, 3.0]).abs() < 1e-15);
    }

    #[test]
    fn seeded_and_thread_independent() {
        let (x, y) = data();
        let opts = |seed, threads| BootstrapOptions {
            samples: 2000,
            seed,
            threads,
            ..Default::default()
        };
        let a = bootstrap_test(&x, &y, &opts(3, 1)).unwrap();
        assert_eq!(a, bootstrap_test(&x, &y, &opts(3, 4)).unwrap());
        // Bootstrap means of these data lie on a lattice, so single bounds may coincide across
        // seeds; the resample counts and z0 do not.
        let b = bootstrap_test(&x, &y, &opts(4, 1)).unwrap();
        assert!(a.z0 != b.z0 || a.extreme != b.extreme, "{a:?} {b:?}");
    }

    #[test]
    fn intervals_bracket_the_mean_and_resemble_t() {
        let (x, y) = data();
        let t = crate::paired_t(&x, &y, 0.95).unwrap();
        for method in [BootstrapMethod::Percentile, BootstrapMethod::Bca] {
            let r = bootstrap_test(
                &x,
                &y,
                &BootstrapOptions {
                    method,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(r.ci_low < r.mean_diff && r.mean_diff < r.ci_high);
            // The bootstrap interval is slightly narrower than t's (√((n−1)/n) and z vs t),
            // within a few percent of its width here.
            let (w_t, w_b) = (t.diff.high - t.diff.low, r.ci_high - r.ci_low);
            assert!((w_b / w_t - 1.0).abs() < 0.1, "{method:?}: {w_b} vs {w_t}");
            // The studentized bootstrap p tracks the t-test p.
            assert!((r.p_value - t.p_value).abs() < 0.02, "{} vs {}", r.p_value, t.p_value);
        }
    }

    #[test]
    fn degenerate_inputs() {
        let zero = bootstrap_test(&[0.1, 0.2], &[0.1, 0.2], &BootstrapOptions::default()).unwrap();
        assert_eq!((zero.p_value, zero.ci_low, zero.ci_high, zero.t), (1.0, 0.0, 0.0, 0.0));
        let single = bootstrap_test(&[0.1], &[0.3], &BootstrapOptions::default()).unwrap();
        assert!(single.p_value == 1.0 && single.ci_low.is_nan());
    }
}
