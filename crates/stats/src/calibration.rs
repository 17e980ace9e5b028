//! A/A calibration of the seed-aware test: null comparisons simulated from the model of
//! [`seed_test_with`](super::seed_test_with), and the false-positive rate at α = 0.05 of that
//! test beside the query-level paired t on seed means. The unit test below holds the CI
//! version (a few thousand nulls per condition); `cargo run --release --example calibration`
//! prints the long table of `docs/statistics.md`.
//!
//! A null comparison: per query a true score μ_q (normal around 0.5, or uniform on
//! [−0.3, 1.3] and clamped to [0, 1] for bounded values with many 0s and 1s), per system and
//! query an interaction βu ~ N(0, σ_βu), per seed a shift v ~ N(0, σ_v of that system) and per
//! (seed, query) noise e ~ N(0, σ_e). Both systems share μ, so the null holds; a deterministic
//! reference is one run with no seed shift (its own noise is part of the interaction).

use super::rng::normal;
use super::seeds::{Runs, seed_test_with};
use crate::error::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One simulated condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// Seeds of the system.
    pub system_seeds: usize,
    /// Seeds of the baseline (1 for a deterministic one).
    pub baseline_seeds: usize,
    /// Whether the baseline is an untrained, deterministic reference.
    pub deterministic_baseline: bool,
    /// σ_v of the system.
    pub system_seed_sd: f64,
    /// σ_v of the baseline (ignored for a deterministic one).
    pub baseline_seed_sd: f64,
    /// σ_e, per (seed, query).
    pub noise_sd: f64,
    /// σ_βu, per (system, query).
    pub interaction_sd: f64,
    /// Queries.
    pub queries: usize,
    /// Values clamped to [0, 1], with many 0s and 1s.
    pub bounded: bool,
}

impl Condition {
    /// `seeds` a side, both with seed sd `seed_sd`, noise `noise_sd`, `queries` queries.
    pub fn equal(seeds: usize, seed_sd: f64, noise_sd: f64, queries: usize) -> Condition {
        Condition {
            system_seeds: seeds,
            baseline_seeds: seeds,
            deterministic_baseline: false,
            system_seed_sd: seed_sd,
            baseline_seed_sd: seed_sd,
            noise_sd,
            interaction_sd: 0.0,
            queries,
            bounded: false,
        }
    }

    /// One line describing the condition (the table's first columns).
    pub fn describe(&self) -> String {
        let baseline = if self.deterministic_baseline {
            "det".to_string()
        } else {
            self.baseline_seeds.to_string()
        };
        format!(
            "{} vs {baseline} seeds, sd_seed {}/{}, sd_noise {}, sd_inter {}, n {}{}",
            self.system_seeds,
            self.system_seed_sd,
            if self.deterministic_baseline {
                0.0
            } else {
                self.baseline_seed_sd
            },
            self.noise_sd,
            self.interaction_sd,
            self.queries,
            if self.bounded { ", bounded" } else { "" }
        )
    }
}

/// One system's seeds × queries table around the true scores `mu` shifted by `shift`.
fn table(rng: &mut ChaCha8Rng, c: &Condition, mu: &[f64], shift: f64, seeds: usize, seed_sd: f64) -> Vec<Vec<f64>> {
    let inter: Vec<f64> = mu.iter().map(|_| normal(rng) * c.interaction_sd).collect();
    (0..seeds)
        .map(|_| {
            let v = normal(rng) * seed_sd;
            mu.iter()
                .zip(&inter)
                .map(|(m, b)| {
                    let y = m + shift + b + v + normal(rng) * c.noise_sd;
                    if c.bounded { y.clamp(0.0, 1.0) } else { y }
                })
                .collect()
        })
        .collect()
}

/// One comparison drawn under condition `c` with the system's true scores shifted by
/// `effect` (0 for a null): (system rows, baseline rows).
pub fn draw(rng: &mut ChaCha8Rng, c: &Condition, effect: f64) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mu: Vec<f64> = (0..c.queries)
        .map(|_| {
            if c.bounded {
                -0.3 + 1.6 * rng.r#gen::<f64>()
            } else {
                0.5 + 0.2 * normal(rng)
            }
        })
        .collect();
    let a = table(rng, c, &mu, effect, c.system_seeds, c.system_seed_sd);
    let b = if c.deterministic_baseline {
        table(rng, c, &mu, 0.0, 1, 0.0)
    } else {
        table(rng, c, &mu, 0.0, c.baseline_seeds, c.baseline_seed_sd)
    };
    (a, b)
}

/// The runs of the two sides of condition `c`.
pub fn runs(c: &Condition) -> [Runs; 2] {
    let baseline = if c.deterministic_baseline {
        Runs::Deterministic
    } else {
        Runs::Trained
    };
    [Runs::Trained, baseline]
}

/// Rejection rates at `alpha` over `trials` comparisons drawn with `seed` under `c` with the
/// true difference `effect` (0: false-positive rates): (seed-aware test, query-level paired t
/// on the seed means).
pub fn rejection_rates(c: &Condition, effect: f64, trials: usize, alpha: f64, seed: u64) -> Result<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut seeds, mut queries) = (0usize, 0usize);
    for _ in 0..trials {
        let (a, b) = draw(&mut rng, c, effect);
        seeds += usize::from(seed_test_with(&a, &b, runs(c), 0.95)?.p_value < alpha);
        let q = seed_test_with(&[seed_means(&a)], &[seed_means(&b)], [Runs::Deterministic; 2], 0.95)?;
        queries += usize::from(q.p_value < alpha);
    }
    Ok((seeds as f64 / trials as f64, queries as f64 / trials as f64))
}

/// Per-query means over the seeds of a seeds × queries table.
pub fn seed_means(rows: &[Vec<f64>]) -> Vec<f64> {
    (0..rows[0].len())
        .map(|q| rows.iter().map(|r| r[q]).sum::<f64>() / rows.len() as f64)
        .collect()
}

/// The conditions the CI test holds to [0.03, 0.07]: each of the required cases (2, 3 and 5
/// seeds; unequal seed variance; a one-seed trained baseline; a deterministic reference;
/// bounded values; an interaction; n from 30 to 2,000), with a name.
pub fn calibrated_conditions() -> Vec<(&'static str, Condition)> {
    let eq = Condition::equal;
    let unequal = |seeds, sd, noise, n| Condition {
        baseline_seed_sd: 0.0,
        ..eq(seeds, sd, noise, n)
    };
    let one_seed = |seeds, sd, noise, n| Condition {
        baseline_seeds: 1,
        ..eq(seeds, sd, noise, n)
    };
    let reference = |seeds, sd, noise, inter, n| Condition {
        baseline_seeds: 1,
        deterministic_baseline: true,
        baseline_seed_sd: 0.0,
        interaction_sd: inter,
        ..eq(seeds, sd, noise, n)
    };
    vec![
        ("3 seeds", eq(3, 0.02, 0.05, 200)),
        ("5 seeds", eq(5, 0.01, 0.1, 200)),
        ("5 seeds, n 30", eq(5, 0.02, 0.05, 30)),
        ("3 seeds, n 2000", eq(3, 0.02, 0.05, 2000)),
        ("unequal seed sd, 2 seeds", unequal(2, 0.02, 0.05, 200)),
        ("unequal seed sd, 3 seeds", unequal(3, 0.02, 0.05, 200)),
        ("unequal seed sd, 5 seeds, n 2000", unequal(5, 0.04, 0.1, 2000)),
        ("one-seed trained baseline, 2 seeds", one_seed(2, 0.01, 0.1, 200)),
        ("one-seed trained baseline, 3 seeds", one_seed(3, 0.02, 0.05, 200)),
        ("deterministic reference, 3 seeds", reference(3, 0.01, 0.1, 0.1, 200)),
        (
            "deterministic reference, 5 seeds, n 2000",
            reference(5, 0.02, 0.05, 0.1, 2000),
        ),
        (
            "deterministic reference, 2 seeds, n 30",
            reference(2, 0.02, 0.1, 0.1, 30),
        ),
        (
            "deterministic reference, 3 seeds, n 2000",
            reference(3, 0.02, 0.1, 0.1, 2000),
        ),
        (
            "bounded values, 5 seeds",
            Condition {
                bounded: true,
                ..eq(5, 0.01, 0.2, 200)
            },
        ),
        (
            "interaction, 3 seeds",
            Condition {
                interaction_sd: 0.1,
                ..eq(3, 0.02, 0.1, 200)
            },
        ),
    ]
}

/// Conditions outside the band, shown in the table so that nobody reads the band as holding
/// everywhere, all with 2 seeds: 2 a side with little seed variance or with an interaction
/// (conservative: the df of one-df variances), and a deterministic reference against 2 seeds
/// whose seed variance dominates at large n (liberal: the df grow when the one-df estimate is
/// small by chance).
pub fn limit_conditions() -> Vec<(&'static str, Condition)> {
    let eq = Condition::equal;
    let reference = |seeds, sd, n| Condition {
        baseline_seeds: 1,
        deterministic_baseline: true,
        baseline_seed_sd: 0.0,
        interaction_sd: 0.1,
        ..eq(seeds, sd, 0.1, n)
    };
    vec![
        ("2 seeds, small seed sd", eq(2, 0.01, 0.1, 200)),
        ("2 seeds, no seed sd, n 30", eq(2, 0.0, 0.1, 30)),
        ("deterministic reference, 2 seeds, n 2000", reference(2, 0.02, 2000)),
        (
            "interaction, 2 seeds, n 30",
            Condition {
                interaction_sd: 0.1,
                ..eq(2, 0.02, 0.1, 30)
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::PlanComponents;
    use rayon::prelude::*;

    /// Nulls per condition in CI.
    const TRIALS: usize = 2000;

    fn rates(list: &[(&'static str, Condition)], seed: u64) -> Vec<(f64, f64)> {
        list.par_iter()
            .enumerate()
            .map(|(i, (_, c))| rejection_rates(c, 0.0, TRIALS, 0.05, seed + i as u64).unwrap())
            .collect()
    }

    /// The calibration table: every calibrated condition's false-positive rate at α = 0.05
    /// lies in [0.03, 0.07], the known limits stay where `docs/statistics.md` says.
    /// `cargo test --lib calibration -- --nocapture` prints it.
    #[test]
    fn a_a_false_positive_rates_lie_in_the_band() {
        let list = calibrated_conditions();
        let mut outside = Vec::new();
        println!("| condition | seed-aware | query-level |\n| --- | --- | --- |");
        for ((name, c), (seeds, queries)) in list.iter().zip(rates(&list, 2700)) {
            println!("| {name}: {} | {seeds:.3} | {queries:.3} |", c.describe());
            if !(0.03..=0.07).contains(&seeds) {
                outside.push(format!("{name}: {seeds}"));
            }
        }
        let limits = limit_conditions();
        for ((name, c), (seeds, queries)) in limits.iter().zip(rates(&limits, 2800)) {
            println!("| (limit) {name}: {} | {seeds:.3} | {queries:.3} |", c.describe());
            // Never worse than the documented limits.
            if !(0.005..=0.15).contains(&seeds) {
                outside.push(format!("{name} (limit): {seeds}"));
            }
        }
        assert!(outside.is_empty(), "outside the band: {outside:?}");
    }

    /// The planned power against a Monte Carlo of the real test on data drawn with those
    /// components (2,000 experiments each): within 0.03.
    #[test]
    fn planned_power_matches_a_monte_carlo_of_the_test() {
        for (c, s, n, effect) in [
            (
                // Seeds matter little, so power falls past a peak as n grows.
                PlanComponents {
                    var_query: 0.005,
                    var_residual: 0.001,
                    var_seed: 0.000_001,
                    deterministic_baseline: false,
                },
                2,
                4000,
                0.005,
            ),
            (
                PlanComponents {
                    var_query: 0.01,
                    var_residual: 0.01,
                    var_seed: 0.0001,
                    deterministic_baseline: false,
                },
                5,
                200,
                0.02,
            ),
            (
                PlanComponents {
                    var_query: 0.02,
                    var_residual: 0.01,
                    var_seed: 0.0002,
                    deterministic_baseline: true,
                },
                3,
                100,
                0.04,
            ),
        ] {
            let planned = c.power(effect, n, s, 0.05);
            // The simulation's interaction is per system: σ²_βu of the pair is split over the
            // sides; a deterministic reference's own per-query noise σ²_e is interaction too.
            let own_noise = if c.deterministic_baseline { c.var_residual } else { 0.0 };
            let inter = (c.var_query - own_noise) / 2.0;
            let cond = Condition {
                system_seeds: s,
                baseline_seeds: if c.deterministic_baseline { 1 } else { s },
                deterministic_baseline: c.deterministic_baseline,
                system_seed_sd: c.var_seed.sqrt(),
                baseline_seed_sd: c.var_seed.sqrt(),
                noise_sd: c.var_residual.sqrt(),
                interaction_sd: inter.sqrt(),
                queries: n,
                bounded: false,
            };
            let (simulated, _) = rejection_rates(&cond, effect, 2000, 0.05, 99).unwrap();
            assert!(
                (simulated - planned).abs() <= 0.03,
                "{c:?}, {s} seeds, n {n}: planned {planned}, simulated {simulated}"
            );
        }
    }
}
