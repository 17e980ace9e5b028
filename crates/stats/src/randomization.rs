//! Paired randomization (sign-flip) test of the mean difference, two-sided.
//!
//! Under H0 each per-query difference d_i = y_i − x_i is equally likely to have either sign.
//! The statistic is S = Σ s_i d_i over sign vectors s ∈ {±1}^n (equivalently the mean
//! difference); a sign vector is at least as extreme as the observed one when
//! |S| ≥ |S_obs| − tol with tol = 1e-9 · max(1, Σ|d_i|). The tolerance makes sign vectors
//! whose statistic equals the observed one in exact arithmetic count as extreme despite
//! floating-point rounding (on Sakai's Table 5.1 data the exact p is 69120/2^20 ≈ 0.0659,
//! while a plain `>=` on floating-point means gives about 0.0498); Σ|d_i| bounds every
//! S, so the tolerance stays far above accumulated rounding error yet far below any real gap.

use super::descriptive::{differences, mean};
use super::rng::{chunk_rng, run_chunks, thread_count};
use crate::error::Result;
use rand::RngCore;

/// Options of [`randomization_test`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomizationOptions {
    /// Random sign vectors B for the Monte Carlo test.
    pub permutations: usize,
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
    /// Enumerate all 2^n sign vectors when n is at most this (capped at 40).
    pub exact_max_n: usize,
    /// Worker threads (0: all available). Results do not depend on it.
    pub threads: usize,
}

impl Default for RandomizationOptions {
    fn default() -> Self {
        Self {
            permutations: 10_000,
            seed: 42,
            exact_max_n: 30,
            threads: 0,
        }
    }
}

/// Result of [`randomization_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Randomization {
    /// mean(y − x).
    pub mean_diff: f64,
    /// Exact: extreme / 2^n. Monte Carlo: (extreme + 1) / (B + 1).
    pub p_value: f64,
    /// Sign vectors at least as extreme as the observed one.
    pub extreme: u64,
    /// Sign vectors evaluated: 2^n when exact, B otherwise.
    pub evaluated: u64,
    /// Whether every sign vector was enumerated (else Monte Carlo).
    pub exact: bool,
}

/// Two-sided paired randomization test of the system `y` against the baseline `x`.
///
/// With n ≤ `exact_max_n` every sign vector is enumerated (meet in the middle: the subset
/// sums of each half are tabulated and one half sorted, so the cost is O(2^(n/2) · n)), and
/// p = extreme / 2^n. Otherwise B sign vectors are drawn from ChaCha8 seeded with `seed` and
/// p = (extreme + 1) / (B + 1), which counts the observed assignment once and never gives 0.
pub fn randomization_test(x: &[f64], y: &[f64], opts: &RandomizationOptions) -> Result<Randomization> {
    let d = differences(x, y)?;
    Ok(randomization_of(&d, opts, 0))
}

pub(crate) fn randomization_of(d: &[f64], opts: &RandomizationOptions, stream: u64) -> Randomization {
    let observed: f64 = d.iter().sum();
    let tol = 1e-9 * d.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
    let threshold = observed.abs() - tol;
    let n = d.len();
    let mean_diff = mean(d);
    if n <= opts.exact_max_n.min(40) {
        let evaluated = 1u64 << n;
        let extreme = if threshold <= 0.0 {
            evaluated
        } else {
            exact_count(d, threshold)
        };
        return Randomization {
            mean_diff,
            p_value: extreme as f64 / evaluated as f64,
            extreme,
            evaluated,
            exact: true,
        };
    }
    let b = opts.permutations;
    let extreme = if threshold <= 0.0 {
        b as u64
    } else {
        monte_carlo_count(d, threshold, b, opts.seed, stream, thread_count(opts.threads))
    };
    Randomization {
        mean_diff,
        p_value: (extreme + 1) as f64 / (b + 1) as f64,
        extreme,
        evaluated: b as u64,
        exact: false,
    }
}

/// Σ s_i d_i for every sign vector of `d`, indexed by the mask of flipped (negative) signs.
fn signed_sums(d: &[f64]) -> Vec<f64> {
    let mut sums = vec![0.0; 1 << d.len()];
    sums[0] = d.iter().sum();
    for mask in 1..sums.len() {
        // Each entry derives from one with a single sign fewer flipped: depth ≤ len, so rounding
        // stays at a few ulps of Σ|d|.
        sums[mask] = sums[mask & (mask - 1)] - 2.0 * d[mask.trailing_zeros() as usize];
    }
    sums
}

/// Number of sign vectors with |S| ≥ threshold (> 0), by meet in the middle.
fn exact_count(d: &[f64], threshold: f64) -> u64 {
    let (left, right) = d.split_at(d.len() / 2);
    // Splitting the total: S = S_left + S_right over independent halves.
    let a = signed_sums(left);
    let mut b = signed_sums(right);
    b.sort_by(f64::total_cmp);
    let len = b.len() as u64;
    a.iter()
        .map(|&s| {
            let at_least = len - b.partition_point(|&v| v < threshold - s) as u64;
            let at_most = b.partition_point(|&v| v <= -threshold - s) as u64;
            // threshold > 0, so the two sets are disjoint.
            at_least + at_most
        })
        .sum()
}

/// Permutations per chunk of Monte Carlo work (a unit of the deterministic RNG layout).
const MC_CHUNK: usize = 1024;

/// Number of B random sign vectors with |S| ≥ threshold.
///
/// Eight differences form a block with a 256-entry table of its signed sums, so one random
/// byte selects a block's contribution: n/8 table lookups per permutation instead of n sign
/// flips, and 64 sign bits come from each RNG draw.
fn monte_carlo_count(d: &[f64], threshold: f64, b: usize, seed: u64, stream: u64, threads: usize) -> u64 {
    let blocks = d.len().div_ceil(8);
    let mut table = vec![0.0f64; blocks * 256];
    for (blk, chunk) in d.chunks(8).enumerate() {
        let mut padded = [0.0; 8];
        padded[..chunk.len()].copy_from_slice(chunk);
        table[blk * 256..(blk + 1) * 256].copy_from_slice(&signed_sums(&padded));
    }
    let words = blocks.div_ceil(8);
    let full_words = blocks / 8;
    let chunks = b.div_ceil(MC_CHUNK);
    let table = &table;
    let counts = run_chunks(chunks, threads, |c| {
        let mut rng = chunk_rng(seed, stream, c);
        let perms = MC_CHUNK.min(b - c * MC_CHUNK);
        let mut extreme = 0u64;
        for _ in 0..perms {
            // Four partial sums keep the lookups independent of each other.
            let mut acc = [0.0f64; 4];
            for w in 0..full_words {
                let bits = rng.next_u64();
                let base = &table[w * 2048..(w + 1) * 2048];
                acc[0] += base[(bits & 0xff) as usize] + base[256 + ((bits >> 8) & 0xff) as usize];
                acc[1] += base[512 + ((bits >> 16) & 0xff) as usize] + base[768 + ((bits >> 24) & 0xff) as usize];
                acc[2] += base[1024 + ((bits >> 32) & 0xff) as usize] + base[1280 + ((bits >> 40) & 0xff) as usize];
                acc[3] += base[1536 + ((bits >> 48) & 0xff) as usize] + base[1792 + (bits >> 56) as usize];
            }
            if words > full_words {
                let bits = rng.next_u64();
                for (j, blk) in (full_words * 8..blocks).enumerate() {
                    acc[j % 4] += table[blk * 256 + ((bits >> (8 * j)) & 0xff) as usize];
                }
            }
            let s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            if s.abs() >= threshold {
                extreme += 1;
            }
        }
        extreme
    });
    counts.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over all sign vectors, for cross-checking.
    fn brute(d: &[f64], threshold: f64) -> u64 {
        (0u64..1 << d.len())
            .filter(|mask| {
                let s: f64 = d
                    .iter()
                    .enumerate()
                    .map(|(i, v)| if mask >> i & 1 == 1 { -v } else { *v })
                    .sum();
                s.abs() >= threshold
            })
            .count() as u64
    }

    #[test]
    fn exact_hand_checked() {
        // d = 1, 2, 3: sums ±1 ±2 ±3 ∈ {6, 4, 2, 0, 0, −2, −4, −6}; |S| ≥ 6 − tol: 2 of 8.
        let r = randomization_of(&[1.0, 2.0, 3.0], &RandomizationOptions::default(), 0);
        assert!(r.exact);
        assert_eq!((r.extreme, r.evaluated, r.p_value), (2, 8, 0.25));
        // d = 1, 1: sums 2, 0, 0, −2 → 2 of 4.
        let r = randomization_of(&[1.0, 1.0], &RandomizationOptions::default(), 0);
        assert_eq!(r.p_value, 0.5);
    }

    #[test]
    fn meet_in_the_middle_matches_brute_force() {
        let d: Vec<f64> = (0..13).map(|i| ((i * 7919) % 23) as f64 / 10.0 - 1.1).collect();
        // Every S is a multiple of 0.1 here; thresholds between lattice points avoid rounding ties.
        for threshold in [0.05, 0.75, 2.35, 5.05] {
            assert_eq!(exact_count(&d, threshold), brute(&d, threshold), "{threshold}");
        }
    }

    #[test]
    fn ties_with_observed_count_as_extreme() {
        // 0.1 + 0.2 and 0.3 differ in floating point; the tolerance makes |−0.1 − 0.2 + 0.3|
        // style ties count. d = 0.1, 0.2, −0.3: S_obs = 0 up to rounding → p = 1.
        let r = randomization_of(&[0.1, 0.2, -0.3], &RandomizationOptions::default(), 0);
        assert_eq!(r.p_value, 1.0);
        // d = 0.3, 0.1, 0.2: S_obs = 0.6; flipping 0.3 alone gives 0.0; flipping 0.1 and 0.2
        // gives 0 as well; extremes are only ±0.6: 2 of 8.
        let r = randomization_of(&[0.3, 0.1, 0.2], &RandomizationOptions::default(), 0);
        assert_eq!(r.extreme, 2);
    }

    fn sample(n: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 37 + 11) % 101) as f64 / 100.0 - 0.45).collect()
    }

    #[test]
    fn monte_carlo_is_seeded_and_thread_independent() {
        let d = sample(203);
        let opts = |seed, threads| RandomizationOptions {
            permutations: 3000,
            seed,
            exact_max_n: 0,
            threads,
        };
        let a = randomization_of(&d, &opts(9, 1), 5);
        let b = randomization_of(&d, &opts(9, 3), 5);
        assert_eq!(a, b);
        let c = randomization_of(&d, &opts(10, 1), 5);
        assert_ne!(a.extreme, c.extreme);
        assert!(!a.exact && a.evaluated == 3000);
        assert_eq!(a.p_value, (a.extreme + 1) as f64 / 3001.0);
    }

    #[test]
    fn monte_carlo_agrees_with_exact() {
        // n = 20 enumerated exactly, then estimated from 40,000 draws: the estimate must fall
        // within 5 standard errors of the exact p.
        let d: Vec<f64> = sample(20).iter().map(|v| v + 0.08).collect();
        let exact = randomization_of(&d, &RandomizationOptions::default(), 0);
        let mc = randomization_of(
            &d,
            &RandomizationOptions {
                permutations: 40_000,
                seed: 1,
                exact_max_n: 0,
                threads: 2,
            },
            0,
        );
        let se = (exact.p_value * (1.0 - exact.p_value) / 40_000.0).sqrt();
        assert!(exact.p_value > 0.001 && exact.p_value < 0.5, "{}", exact.p_value);
        assert!(
            (mc.p_value - exact.p_value).abs() < 5.0 * se,
            "{} vs {}",
            mc.p_value,
            exact.p_value
        );
    }

    #[test]
    fn block_tables_cover_ragged_tails() {
        // n = 70: one full 64-bit word plus a partial one with 6 differences; every sign
        // vector sum must stay within ±Σ|d|, and a large shift must give a tiny p.
        let d: Vec<f64> = sample(70).iter().map(|v| v + 0.6).collect();
        let r = randomization_of(
            &d,
            &RandomizationOptions {
                permutations: 2000,
                exact_max_n: 0,
                ..Default::default()
            },
            0,
        );
        assert_eq!(r.extreme, 0);
        assert_eq!(r.p_value, 1.0 / 2001.0);
    }

    #[test]
    fn zero_and_single_differences() {
        let r = randomization_of(&[0.0; 50], &RandomizationOptions::default(), 0);
        assert_eq!(r.p_value, 1.0);
        let r = randomization_of(&[0.4], &RandomizationOptions::default(), 0);
        assert_eq!(r.p_value, 1.0);
    }
}
