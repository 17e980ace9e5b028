//! The seed-aware paired test, its variance components, and power (minimum detectable
//! difference, and the queries × seeds a planned experiment needs).
//!
//! Why it exists: a grid point trained with several seeds is several models. Averaging them per
//! query and running a paired test over queries treats the queries as the only source of
//! variance, so one lucky seed can look like a significant advantage. This module owns the
//! test that counts both.
//!
//! **Model.** Score of grid point g, seed s, query q:
//! `y(g,s,q) = μ + β_g + u_q + (βu)_{gq} + v_{g,s} + e_{g,s,q}` with the grid point fixed and
//! the query (`u`, `βu`), the seed within a grid point (`v`, variance σ²_v,g) and the residual
//! (`e`, variance σ²_e,g) random.
//!
//! **Estimator** (Welch-type, one seed variance per system). System A (S_A seeds × n queries)
//! against baseline B (S_B seeds × the same n queries). With `ȳ_g·q` the mean over seeds and
//! `ȳ_gs·` the mean over queries:
//!
//! * d = mean_q(ȳ_A·q − ȳ_B·q), the difference of grand means.
//! * Var(d) = σ²_βu/n + Σ_g (σ²_v,g + σ²_e,g/n)/S_g. The seed effects are shared by every
//!   query, so they do not shrink with n.
//! * Mean squares of each system's S_g × n two-way table: MS_seed,g = n·var_s(ȳ_gs·)
//!   (df S_g − 1, expectation σ²_e,g + n·σ²_v,g) and the two-way residual MS_res,g
//!   (df (S_g − 1)(n − 1), expectation σ²_e,g); V_Q = var_q(D) of D_q = ȳ_A·q − ȳ_B·q (df n − 1,
//!   expectation σ²_βu + Σ_g σ²_e,g/S_g). Each system keeps its own mean squares: grid points'
//!   between-seed sd differ by two orders of magnitude, and pooling them made the test liberal.
//! * SE² = between + interaction, with c_g = 1/S_g:
//!   - between = Σ_g c_g·MS_seed,g/n: seed to seed a system's mean moves by σ²_v,g + σ²_e,g/n;
//!   - interaction = max(0, V_Q/n − Σ_g c_g·MS_res,g/n): σ²_βu/n, which every seed shares.
//! * t = d/SE with the Satterthwaite (1946) df of that linear combination, every mean square
//!   with its own df: ν = SE⁴ / Σ_i (a_i·M_i)²/df_i over the terms (c_g·MS_seed,g/n, S_g − 1)
//!   and, when the interaction is kept, (V_Q/n, n − 1) and (c_g·MS_res,g/n, (S_g − 1)(n − 1)).
//!   The interaction is a *difference* of mean squares: giving it n − 1 df as if it were one
//!   mean square overstated ν up to threefold. In ν only (not in SE), each seed term is read
//!   at an upper bound (× df/χ²_df(0.4)): its plug-in value is below its expectation more
//!   often than not, and ν then rises just when t is largest. Two-sided p from Student's t.
//!
//! **Which side has a seed variance.** Only an untrained reference (BM25, the zero-shot
//! model: [`Runs::Deterministic`]) has none: its c_g is 0 and its own per-query deviations
//! are part of the interaction. A trained side with one seed has one but cannot estimate it: it
//! borrows the other side's mean squares (c of the other side += 1/1), which assumes the two
//! seed variances are equal ([`SeedSource::Borrowed`]; the report says so). Where neither side
//! can give one (one trained seed against one trained seed or a deterministic reference), the
//! test is the paired t-test on the queries and the result says the seed variance is
//! [`SeedSource::Unknown`].
//!
//! **Calibration** (`docs/statistics.md`, and the A/A test below): the false-positive rate at
//! α = 0.05 stays within [0.03, 0.07] with 3 and 5 seeds over equal and unequal seed variance,
//! a one-seed trained baseline, a deterministic reference, bounded values and an interaction,
//! n from 30 to 2,000. Known limits, all with 2 seeds (1 df per seed variance): the df are
//! conservative (0.01–0.03) when the seed variance is small next to the noise or an
//! interaction, and a deterministic reference against 2 seeds is liberal (0.10) when the seed
//! variance dominates at n = 2,000. A permutation over seeds cannot help there: 2 + 2 seeds
//! have 6 arrangements. Use 3 seeds or more.
//!
//! With σ²_v = 0 and one seed each, or no seed variance on either side, the test is exactly the
//! paired t-test.

use super::descriptive::{mean, mean_sd};
use crate::error::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// What the report's tests treat as random (`stats.unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Queries and seeds: [`seed_test`] for every comparison whose grid point has at least 2
    /// seeds, the configured test beside it (and for grid points with one seed).
    #[default]
    Seeds,
    /// Queries only: the configured test on the seed-averaged values (the behaviour before
    /// seeds counted).
    Queries,
}

impl Unit {
    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Seeds => "seeds",
            Unit::Queries => "queries",
        }
    }
}

/// The per-seed means of one system's S × n table and its variance components.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeedComponents {
    /// Seeds (rows).
    pub seeds: usize,
    /// Queries (columns).
    pub queries: usize,
    /// Sample sd (S − 1) of the per-seed means over queries: how much the grid point's mean
    /// moves from seed to seed. NaN with one seed.
    pub seed_mean_sd: f64,
    /// n · variance of the seed means (expectation σ²_e + n·σ²_v); NaN with one seed.
    pub ms_seed: f64,
    /// Two-way residual mean square (expectation σ²_e); NaN with one seed or one query.
    pub ms_residual: f64,
    /// σ̂²_v = max(0, (MS_seed − MS_res)/n); 0 with one seed (not estimable).
    pub var_seed: f64,
    /// σ̂²_e = MS_res; NaN where MS_res is.
    pub var_residual: f64,
}

/// Variance components of one system's per-seed, per-query scores (`rows[s][q]`).
pub fn seed_components(rows: &[Vec<f64>]) -> Result<SeedComponents> {
    let s = rows.len();
    ensure!(s >= 1, Data, "at least one seed is needed");
    let n = rows[0].len();
    ensure!(n >= 1, Data, "at least one query is needed");
    ensure!(
        rows.iter().all(|r| r.len() == n),
        Data,
        "every seed needs a value for each of the {n} queries"
    );
    ensure!(
        rows.iter().flatten().all(|x| x.is_finite()),
        Data,
        "per-seed values must be finite"
    );
    let seed_means: Vec<f64> = rows.iter().map(|r| mean(r)).collect();
    if s == 1 {
        return Ok(SeedComponents {
            seeds: 1,
            queries: n,
            seed_mean_sd: f64::NAN,
            ms_seed: f64::NAN,
            ms_residual: f64::NAN,
            var_seed: 0.0,
            var_residual: f64::NAN,
        });
    }
    let grand = mean(&seed_means);
    let query_means: Vec<f64> = (0..n)
        .map(|q| rows.iter().map(|r| r[q]).sum::<f64>() / s as f64)
        .collect();
    let (_, seed_mean_sd) = mean_sd(&seed_means);
    let ms_seed = n as f64 * seed_mean_sd * seed_mean_sd;
    let ms_residual = if n < 2 {
        f64::NAN
    } else {
        let ss: f64 = rows
            .iter()
            .zip(&seed_means)
            .map(|(r, sm)| {
                r.iter()
                    .zip(&query_means)
                    .map(|(y, qm)| (y - sm - qm + grand).powi(2))
                    .sum::<f64>()
            })
            .sum();
        ss / ((s - 1) * (n - 1)) as f64
    };
    // With one query the residual is confounded with the seed effect: count all of it as seed.
    let noise = if ms_residual.is_nan() { 0.0 } else { ms_residual };
    Ok(SeedComponents {
        seeds: s,
        queries: n,
        seed_mean_sd,
        ms_seed,
        ms_residual,
        var_seed: ((ms_seed - noise) / n as f64).max(0.0),
        var_residual: ms_residual,
    })
}

/// How one side of a comparison varies from one run to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runs {
    /// Trained: each seed is another model (a grid point), even where only one seed ran.
    Trained,
    /// Untrained and deterministic (BM25, the zero-shot model): one run, no seed variance.
    Deterministic,
}

/// Where the seed variance of one side of a [`SeedTest`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedSource {
    /// Its own seeds (at least 2).
    Own,
    /// The other side's seeds: one trained seed cannot estimate its own seed variance, so
    /// the two are taken as equal.
    Borrowed,
    /// None: a deterministic reference.
    Deterministic,
    /// Unknown: one trained seed and nothing to borrow from; not counted in the SE.
    Unknown,
}

impl SeedSource {
    /// The name used in output.
    pub fn name(self) -> &'static str {
        match self {
            SeedSource::Own => "own",
            SeedSource::Borrowed => "borrowed",
            SeedSource::Deterministic => "deterministic",
            SeedSource::Unknown => "unknown",
        }
    }
}

/// Result of [`seed_test`]: system A against baseline B with queries and seeds random.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeedTest {
    /// d = mean over queries of (seed mean of A − seed mean of B).
    pub mean_diff: f64,
    /// √(between part + interaction part).
    pub se: f64,
    /// var_q(D)/n: the paired t-test's squared SE on the seed means.
    pub query_part: f64,
    /// Σ c_g·MS_seed,g/n over the sides whose seed variance is known (own or borrowed): how
    /// much the difference moves from one draw of seeds to another. 0 when none is.
    pub between_part: f64,
    /// max(0, var_q(D)/n − Σ c_g·MS_res,g/n): the query × system interaction that every seed
    /// shares; the whole query part when no seed variance is known.
    pub interaction_part: f64,
    /// Σ c_g·σ̂²_v,g: what the seeds add beyond per-query noise (informational, and planning).
    pub seed_part: f64,
    /// d / SE.
    pub t: f64,
    /// Satterthwaite degrees of freedom (every mean square with its own df).
    pub df: f64,
    /// Two-sided p, 2 · P(T_df ≥ |t|).
    pub p_value: f64,
    /// Lower end of the interval of d (`confidence`).
    pub ci_low: f64,
    /// Upper end of the interval of d.
    pub ci_high: f64,
    /// The system's components.
    pub system: SeedComponents,
    /// The baseline's components.
    pub baseline: SeedComponents,
    /// σ̂²_v of one system for planning: the mean of the sides' own estimates, weighted by
    /// their S_g − 1; 0 where no side has 2 seeds.
    pub var_seed: f64,
    /// σ̂²_e likewise; NaN where no side has it.
    pub var_residual: f64,
    /// Whether (system, baseline) estimated their own seed variance (at least 2 seeds).
    pub seed_part_estimated: [bool; 2],
    /// Where the seed variance of (system, baseline) came from.
    pub seed_source: [SeedSource; 2],
}

impl SeedTest {
    /// Whether a side's seed variance was borrowed or is unknown: the report warns that one
    /// trained seed cannot estimate its own.
    pub fn one_seed_warning(&self) -> bool {
        self.seed_source
            .iter()
            .any(|s| matches!(s, SeedSource::Borrowed | SeedSource::Unknown))
    }
}

/// The TOST p-value (two one-sided tests, Schuirmann 1987) of a difference `d` with standard
/// error `se` and `df` degrees of freedom against the equivalence margin `margin` (> 0): the
/// larger of the one-sided p-values of H0: Δ ≤ −δ and H0: Δ ≥ δ, so that p < α exactly when
/// the (1 − 2α) interval lies inside (−δ, δ). NaN where `se` or `df` is not usable; with
/// SE = 0, 0 inside the margin and 1 outside.
pub fn tost_p(d: f64, se: f64, df: f64, margin: f64) -> f64 {
    if !(d.is_finite() && se.is_finite() && se >= 0.0 && df > 0.0 && margin > 0.0) {
        return f64::NAN;
    }
    if se == 0.0 {
        return if d.abs() < margin { 0.0 } else { 1.0 };
    }
    let t = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    let lower = 1.0 - t.cdf((d + margin) / se);
    let upper = t.cdf((d - margin) / se);
    lower.max(upper)
}

/// The equivalence verdict of one comparison against a margin δ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// TOST rejects |Δ| ≥ δ: the difference is shown to be smaller than δ.
    Equivalent,
    /// The (corrected) difference test rejects Δ = 0.
    Different,
    /// Neither: the data cannot tell.
    Inconclusive,
}

impl Verdict {
    /// The word shown in tables.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Equivalent => "equivalent",
            Verdict::Different => "different",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// From the difference test's (adjusted) p and the TOST p (adjusted over the same family)
    /// at `alpha`. A significant difference inside the margin is reported as different (it is
    /// real, and small); a NaN p counts as not rejected.
    pub fn of(p_difference: f64, p_tost: f64, alpha: f64) -> Verdict {
        if p_difference < alpha {
            Verdict::Different
        } else if p_tost < alpha {
            Verdict::Equivalent
        } else {
            Verdict::Inconclusive
        }
    }
}

/// Satterthwaite (1946) df of `total` = Σ ±value_i, a linear combination of independent mean
/// squares, with (value_i, df_i) in `terms` (each value already multiplied by its coefficient;
/// its sign does not matter, it is squared): total² / Σ value_i²/df_i; `fallback` when no
/// term carries variance.
pub fn satterthwaite(total: f64, terms: impl IntoIterator<Item = (f64, f64)>, fallback: f64) -> f64 {
    let denom: f64 = terms
        .into_iter()
        .filter(|(v, df)| *df > 0.0 && v.is_finite())
        .map(|(v, df)| v * v / df)
        .sum();
    if denom > 0.0 && total > 0.0 {
        total * total / denom
    } else {
        fallback
    }
}

/// Quantile of χ²_df at which a seed mean square is read for the df (see [`test_df`]), chosen
/// by the A/A calibration (`docs/statistics.md`): the median left a deterministic reference
/// against 3 seeds at n = 2,000 at 0.066–0.074; 0.25 made 2–3 seeds with a query × system
/// interaction conservative (0.013–0.027).
pub const SEED_DF_QUANTILE: f64 = 0.4;

/// df/χ²_df(`SEED_DF_QUANTILE`): how much larger than its estimate a mean square with `df`
/// degrees of freedom is read for the df (3.64 at 1 df, 1.96 at 2, 1.45 at 4, 1.012 at 1,000).
pub fn seed_df_factor(df: f64) -> f64 {
    if df.is_nan() || df <= 0.0 || df.is_infinite() {
        return 1.0;
    }
    match statrs::distribution::ChiSquared::new(df) {
        Ok(chi) => df / chi.inverse_cdf(SEED_DF_QUANTILE),
        Err(_) => 1.0,
    }
}

/// The df of the seed-aware test: Satterthwaite over `seed_terms` (c·MS_seed/n, S − 1) plus
/// the interaction (`interaction`, made of `interaction_terms`), each seed term read at an
/// upper bound (× `factor(df)`, [`seed_df_factor`]; a caller that draws many tests computes it
/// once) for the df only (the SE keeps the unbiased estimates).
/// Why: a seed mean square has 1–4 df and is below its expectation more often than not (1 df:
/// 68% of the time); when it is small by chance the plug-in ν jumps towards the interaction's
/// n − 1 just when t is largest, which made a deterministic reference against 3 seeds liberal
/// at n = 2,000 (0.074 at α = 0.05; 0.059 now) and against 2 seeds 0.147 (0.096 now). With
/// seed terms alone of equal df, ν is unchanged (the factor cancels).
fn test_df(
    seed_terms: &[(f64, f64)],
    interaction: f64,
    interaction_terms: &[(f64, f64)],
    factor: impl Fn(f64) -> f64,
) -> f64 {
    let scaled = seed_terms.iter().map(|&(v, df)| (v * factor(df), df));
    let fallback: f64 = seed_terms.iter().map(|t| t.1).sum();
    let total = scaled.clone().map(|t| t.0).sum::<f64>() + interaction;
    let kept: &[(f64, f64)] = if interaction > 0.0 { interaction_terms } else { &[] };
    satterthwaite(total, scaled.chain(kept.iter().copied()), fallback)
}

/// Two-sided p of t with `df` degrees of freedom; 1 for t = 0 or NaN, 0 for ±∞.
fn two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || t == 0.0 {
        return 1.0;
    }
    if t.is_infinite() {
        return 0.0;
    }
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    (2.0 * dist.cdf(-t.abs())).min(1.0)
}

/// Student t quantile (df may be fractional).
fn t_inv(p: f64, df: f64) -> f64 {
    super::descriptive::t_quantile(p, df)
}

/// The seed-aware paired test of `system` (S_A rows of n per-query values, one per seed)
/// against `baseline` (S_B rows over the same n queries in the same order), both trained
/// ([`seed_test_with`] with [`Runs::Trained`] twice).
pub fn seed_test(system: &[Vec<f64>], baseline: &[Vec<f64>], confidence: f64) -> Result<SeedTest> {
    seed_test_with(system, baseline, [Runs::Trained, Runs::Trained], confidence)
}

/// The seed-aware paired test, two-sided, with a `confidence` interval of the difference;
/// `runs` says how (system, baseline) vary from run to run. A deterministic side must have
/// exactly one row. See the module comment for the estimator.
///
/// Degenerate cases follow the paired t-test: all differences zero and no seed variance gives
/// t = 0, p = 1; a nonzero difference with SE = 0 gives t = ±∞, p = 0; one query with no
/// seed part gives t = NaN, p = 1.
pub fn seed_test_with(
    system: &[Vec<f64>],
    baseline: &[Vec<f64>],
    runs: [Runs; 2],
    confidence: f64,
) -> Result<SeedTest> {
    ensure!(
        confidence > 0.0 && confidence < 1.0,
        Setting,
        "confidence must lie strictly between 0 and 1, got {confidence}"
    );
    let a = seed_components(system)?;
    let b = seed_components(baseline)?;
    ensure!(
        a.queries == b.queries,
        Data,
        "system and baseline must share their queries: {} against {}",
        a.queries,
        b.queries
    );
    let sides = [&a, &b];
    for (side, (c, r)) in ["system", "baseline"].iter().zip(sides.iter().zip(runs)) {
        ensure!(
            r == Runs::Trained || c.seeds == 1,
            Data,
            "the {side} is deterministic but has {} runs; a deterministic system has one",
            c.seeds
        );
    }
    let n = a.queries;
    let avg = |rows: &[Vec<f64>], q: usize| rows.iter().map(|r| r[q]).sum::<f64>() / rows.len() as f64;
    let diffs: Vec<f64> = (0..n).map(|q| avg(system, q) - avg(baseline, q)).collect();
    let (d, sd) = mean_sd(&diffs);
    let nf = n as f64;
    let query_part = if n < 2 { f64::NAN } else { sd * sd / nf };
    let seed_source = [0, 1].map(|g| {
        let (own, other) = (sides[g], sides[1 - g]);
        match runs[g] {
            Runs::Deterministic => SeedSource::Deterministic,
            Runs::Trained if own.seeds >= 2 => SeedSource::Own,
            Runs::Trained if runs[1 - g] == Runs::Trained && other.seeds >= 2 => SeedSource::Borrowed,
            Runs::Trained => SeedSource::Unknown,
        }
    });
    // c_h = Σ 1/S_g over the sides g whose seed variance side h's mean squares carry.
    let mut coef = [0.0f64; 2];
    for g in 0..2 {
        match seed_source[g] {
            SeedSource::Own => coef[g] += 1.0 / sides[g].seeds as f64,
            SeedSource::Borrowed => coef[1 - g] += 1.0 / sides[g].seeds as f64,
            SeedSource::Deterministic | SeedSource::Unknown => {}
        }
    }
    let known: Vec<(f64, &SeedComponents)> = (0..2).filter(|&h| coef[h] > 0.0).map(|h| (coef[h], sides[h])).collect();
    // With one query the residual is confounded with the seed effect: none of it is noise.
    let noise = |c: &SeedComponents| if c.ms_residual.is_nan() { 0.0 } else { c.ms_residual };
    let seed_part: f64 = known.iter().map(|(k, c)| k * c.var_seed).sum();
    let (between_part, interaction_part, df) = if known.is_empty() {
        // No seed variance is known: the paired t-test on the queries.
        (0.0, query_part, (n.max(2) - 1) as f64)
    } else {
        let between: f64 = known.iter().map(|(k, c)| k * c.ms_seed / nf).sum();
        let residual: f64 = known.iter().map(|(k, c)| k * noise(c) / nf).sum();
        let interaction = if n < 2 { 0.0 } else { (query_part - residual).max(0.0) };
        // Satterthwaite (1946): each mean square of the combination with its own df.
        let seed_terms: Vec<(f64, f64)> = known
            .iter()
            .map(|(k, c)| (k * c.ms_seed / nf, c.seeds as f64 - 1.0))
            .collect();
        let mut interaction_terms = vec![(query_part, nf - 1.0)];
        interaction_terms.extend(
            known
                .iter()
                .map(|(k, c)| (k * noise(c) / nf, (c.seeds as f64 - 1.0) * (nf - 1.0))),
        );
        (
            between,
            interaction,
            test_df(&seed_terms, interaction, &interaction_terms, seed_df_factor),
        )
    };
    let var = between_part + interaction_part;
    let se = var.sqrt();
    let undefined = n < 2 && between_part == 0.0;
    let t = if undefined {
        if diffs.iter().all(|&x| x == 0.0) { 0.0 } else { f64::NAN }
    } else if se == 0.0 {
        if d == 0.0 { 0.0 } else { d.signum() * f64::INFINITY }
    } else {
        d / se
    };
    let half = if undefined {
        f64::NAN
    } else {
        t_inv(0.5 + confidence / 2.0, df) * se
    };
    // Planning figures of one system: the sides' own estimates, weighted by their df.
    let own: Vec<&SeedComponents> = sides.iter().copied().filter(|c| c.seeds >= 2).collect();
    let total: f64 = own.iter().map(|c| c.seeds as f64 - 1.0).sum();
    let weighted = |f: fn(&SeedComponents) -> f64| -> f64 {
        own.iter().map(|c| (c.seeds as f64 - 1.0) * f(c)).sum::<f64>() / total
    };
    let var_seed = if total > 0.0 { weighted(|c| c.var_seed) } else { 0.0 };
    let var_residual = if total > 0.0 && n >= 2 {
        weighted(|c| c.ms_residual)
    } else {
        f64::NAN
    };
    Ok(SeedTest {
        mean_diff: d,
        se,
        query_part,
        between_part,
        interaction_part,
        seed_part,
        t,
        df,
        p_value: two_sided_p(t, df),
        ci_low: d - half,
        ci_high: d + half,
        system: a,
        baseline: b,
        var_seed,
        var_residual,
        seed_part_estimated: [a.seeds >= 2, b.seeds >= 2],
        seed_source,
    })
}

/// The per-comparison α that a family correction implies for planning: α for `none`, α/m for
/// Bonferroni and Holm (Holm's first step, the conservative bound), Benjamini–Hochberg and
/// Tukey (the first step again), and α/(m·H_m) for Benjamini–Yekutieli.
pub fn per_comparison_alpha(alpha: f64, correction: super::Correction, family_size: usize) -> f64 {
    use super::Correction as C;
    let m = family_size.max(1) as f64;
    match correction {
        C::None => alpha,
        C::Bonferroni | C::Holm | C::Bh => alpha / m,
        C::By => alpha / (m * (1..=family_size.max(1)).map(|i| 1.0 / i as f64).sum::<f64>()),
    }
}

/// The smallest true difference a two-sided test at `alpha` with standard error `se` and `df`
/// degrees of freedom detects with probability `power`: (t_{1−α/2,df} + t_{power,df})·SE (the
/// usual approximation, which ignores the far rejection tail). NaN where `se` or `df` is not
/// usable.
pub fn min_detectable_difference(se: f64, df: f64, alpha: f64, power: f64) -> f64 {
    if !(se.is_finite() && df.is_finite() && df > 0.0 && alpha > 0.0 && alpha < 1.0 && power > 0.0 && power < 1.0) {
        return f64::NAN;
    }
    (t_inv(1.0 - alpha / 2.0, df) + t_inv(power, df)) * se
}

/// Variance components of a comparison, for planning: per system (the grid point and the
/// baseline are taken alike).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanComponents {
    /// Variance over queries of the true per-query difference (σ²_βu, the system × query
    /// interaction of the pair).
    pub var_query: f64,
    /// Per-(seed, query) residual variance of one system, σ²_e.
    pub var_residual: f64,
    /// Between-seed variance of one system's mean, σ²_v.
    pub var_seed: f64,
    /// Whether the baseline is deterministic (one run, no seed or residual variance).
    pub deterministic_baseline: bool,
}

impl PlanComponents {
    /// Estimates from a finished comparison: its pooled σ̂²_e and σ̂²_v, and σ²_βu as
    /// n·(query part) minus the residual noise it holds, truncated at zero.
    pub fn from_test(t: &SeedTest) -> PlanComponents {
        let sides = [&t.system, &t.baseline];
        let var_residual = if t.var_residual.is_nan() { 0.0 } else { t.var_residual };
        let var_seed = t.var_seed;
        let n = t.system.queries as f64;
        let noise: f64 = sides
            .iter()
            .filter(|c| c.seeds >= 2)
            .map(|c| var_residual / c.seeds as f64)
            .sum();
        let var_query = if t.query_part.is_nan() {
            0.0
        } else {
            (n * t.query_part - noise).max(0.0)
        };
        PlanComponents {
            var_query,
            var_residual,
            var_seed,
            deterministic_baseline: !t.seed_part_estimated[1],
        }
    }

    /// Expected SE and Satterthwaite df of the seed-aware test with `n` queries and `s`
    /// seeds per grid point (the baseline too, unless deterministic), the mean squares at
    /// their expectations as [`seed_test_with`] combines them: the between part
    /// Σ (σ²_e/n + σ²_v)/s with s − 1 df per side and, where σ²_βu > 0, the interaction
    /// σ²_βu/n as V_Q/n (n − 1 df) less the residual noise ((s − 1)(n − 1) df per side). With
    /// one seed the variance is the same (a seed's luck is real even where it cannot be
    /// estimated) and the df are the paired t's, n − 1.
    pub fn se_df(&self, n: usize, s: usize) -> (f64, f64) {
        let (nf, sf) = (n as f64, s as f64);
        let sides = if self.deterministic_baseline { 1.0 } else { 2.0 };
        let per_side = (self.var_residual / nf + self.var_seed) / sf;
        let between = sides * per_side;
        let interaction = self.var_query / nf;
        let var = between + interaction;
        let df = if s >= 2 {
            let seed_terms = vec![(per_side, sf - 1.0); sides as usize];
            let noise = self.var_residual / (sf * nf);
            let mut interaction_terms = vec![(interaction + sides * noise, nf - 1.0)];
            interaction_terms.extend(vec![(noise, (sf - 1.0) * (nf - 1.0)); sides as usize]);
            test_df(&seed_terms, interaction, &interaction_terms, seed_df_factor)
        } else {
            nf - 1.0
        };
        (var.sqrt(), df)
    }

    /// Power of the seed-aware test at `alpha` for a true difference `effect` with `n`
    /// queries and `s` seeds per grid point. The test's SE and df are themselves random (with
    /// few seeds, very much so), so a formula at their expected values is optimistic; this
    /// draws the test's mean squares instead (MS_seed,g, MS_res,g and V_Q as scaled χ² with
    /// their df, [`POWER_DRAWS`] draws from a fixed seed), combines them exactly as
    /// [`seed_test_with`] does, and averages the probability that d ~ N(effect, SE²) falls
    /// beyond the critical value (both tails). With one seed the test is the paired t:
    /// noncentral t with n − 1 df.
    pub fn power(&self, effect: f64, n: usize, s: usize, alpha: f64) -> f64 {
        self.power_with(effect, n, s, &CriticalValues::new(alpha))
    }

    fn power_with(&self, effect: f64, n: usize, s: usize, crit: &CriticalValues) -> f64 {
        let (se, df) = self.se_df(n, s);
        if se == 0.0 {
            return if effect != 0.0 { 1.0 } else { crit.alpha };
        }
        if s < 2 {
            return noncentral_t_power(effect.abs() / se, df, crit.at(df));
        }
        let (nf, sf) = (n as f64, s as f64);
        let sides = if self.deterministic_baseline { 1 } else { 2 };
        let (k_seed, k_res, k_q) = (sf - 1.0, (sf - 1.0) * (nf - 1.0), nf - 1.0);
        let e_seed = self.var_residual + nf * self.var_seed;
        let e_q = self.var_query + sides as f64 * self.var_residual / sf;
        let mut rng = ChaCha8Rng::seed_from_u64(0x005e_ed0f_90e5);
        let phi = |x: f64| 0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2);
        let mut total = 0.0;
        let factor = seed_df_factor(k_seed);
        let (mut seed_terms, mut interaction_terms) = (Vec::with_capacity(sides), Vec::with_capacity(sides + 1));
        for _ in 0..POWER_DRAWS {
            seed_terms.clear();
            interaction_terms.clear();
            let (mut between, mut residual) = (0.0, 0.0);
            for _ in 0..sides {
                let ms = e_seed * chi_square(&mut rng, k_seed) / k_seed / (sf * nf);
                let mr = self.var_residual * chi_square(&mut rng, k_res) / k_res / (sf * nf);
                between += ms;
                residual += mr;
                seed_terms.push((ms, k_seed));
                interaction_terms.push((mr, k_res));
            }
            let vq = e_q * chi_square(&mut rng, k_q) / k_q / nf;
            interaction_terms.push((vq, k_q));
            let interaction = (vq - residual).max(0.0);
            let var = between + interaction;
            let df = test_df(&seed_terms, interaction, &interaction_terms, |_| factor);
            let c = crit.at(df) * var.sqrt();
            total += phi((effect.abs() - c) / se) + phi((-effect.abs() - c) / se);
        }
        total / POWER_DRAWS as f64
    }

    /// The search of [`power_table`] for `s` seeds: the smallest n in 2..=`max_queries` whose
    /// power reaches `power` (none if no n does), and the largest power over that range with
    /// its n. Power is not monotone in n (as n grows the df fall towards those of the seed
    /// part), so the search does not bisect [2, max]: a grid of about 30 points a decade finds
    /// the first point that reaches the target and the best one, then the gap before the
    /// first (within 8%, where power rises) is bisected and the neighbourhood of the
    /// best is searched by ternary search.
    pub fn search_queries(&self, effect: f64, s: usize, alpha: f64, power: f64, max_queries: usize) -> QuerySearch {
        let crit = CriticalValues::new(alpha);
        let at = |n: usize| self.power_with(effect, n, s, &crit);
        let mut grid: Vec<usize> = vec![2];
        while *grid.last().expect("non-empty") < max_queries {
            let last = *grid.last().expect("non-empty");
            grid.push(((last as f64 * 1.08).ceil() as usize).max(last + 1).min(max_queries));
        }
        let values: Vec<f64> = grid.iter().map(|&n| at(n)).collect();
        let smallest = values.iter().position(|&p| p >= power).map(|i| {
            if i == 0 {
                return grid[0];
            }
            let (mut lo, mut hi) = (grid[i - 1], grid[i]);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if at(mid) >= power { hi = mid } else { lo = mid }
            }
            hi
        });
        let best = (0..grid.len())
            .max_by(|&a, &b| values[a].total_cmp(&values[b]))
            .expect("non-empty");
        let (mut lo, mut hi) = (grid[best.saturating_sub(1)], grid[(best + 1).min(grid.len() - 1)]);
        while hi - lo > 2 {
            let (m1, m2) = (lo + (hi - lo) / 3, hi - (hi - lo) / 3);
            if at(m1) < at(m2) { lo = m1 } else { hi = m2 }
        }
        let (peak_queries, peak_power) = (lo..=hi)
            .chain([grid[best]])
            .map(|n| (n, at(n)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty");
        QuerySearch {
            smallest,
            peak_queries,
            peak_power,
        }
    }

    /// The fewest queries (from 2, up to `max_queries`) that reach `power` with `s` seeds, or
    /// none ([`PlanComponents::search_queries`]).
    pub fn queries_needed(&self, effect: f64, s: usize, alpha: f64, power: f64, max_queries: usize) -> Option<usize> {
        self.search_queries(effect, s, alpha, power, max_queries).smallest
    }
}

/// Draws of the test's mean squares per power figure ([`PlanComponents::power`]).
pub const POWER_DRAWS: usize = 2000;

/// t_{1−α/2,ν} on a grid of ν (log-spaced from 1 to 10⁶, interpolated in ln ν), so that a
/// power figure does not invert the t distribution once per draw.
struct CriticalValues {
    alpha: f64,
    values: Vec<f64>,
}

impl CriticalValues {
    const POINTS: usize = 400;
    const MAX_LN: f64 = 13.815_510_557_964_274; // ln 10⁶

    fn new(alpha: f64) -> CriticalValues {
        let values = (0..=Self::POINTS)
            .map(|i| t_inv(1.0 - alpha / 2.0, (i as f64 * Self::MAX_LN / Self::POINTS as f64).exp()))
            .collect();
        CriticalValues { alpha, values }
    }

    fn at(&self, df: f64) -> f64 {
        let x = (df.max(1.0).ln() / Self::MAX_LN * Self::POINTS as f64).min(Self::POINTS as f64);
        let i = (x.floor() as usize).min(Self::POINTS - 1);
        let f = x - i as f64;
        self.values[i] * (1.0 - f) + self.values[i + 1] * f
    }
}

/// A χ² draw with `k` df: 2·Gamma(k/2) by Marsaglia and Tsang (2000), boosted for k < 2.
fn chi_square(rng: &mut ChaCha8Rng, k: f64) -> f64 {
    let shape = k / 2.0;
    let (a, boost) = if shape < 1.0 {
        (shape + 1.0, rng.r#gen::<f64>().powf(1.0 / shape))
    } else {
        (shape, 1.0)
    };
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = super::rng::normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.r#gen();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return 2.0 * d * v * boost;
        }
    }
}

/// P(|T| > `crit`) for T noncentral t with `df` degrees of freedom and noncentrality
/// `lambda`: E_W[Φ(λ − c·√W) + Φ(−λ − c·√W)] over W ~ χ²_df/df, integrated numerically
/// (Simpson's rule on ln W); the normal where df is beyond 10⁶.
pub fn noncentral_t_power(lambda: f64, df: f64, crit: f64) -> f64 {
    let phi = |x: f64| 0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2);
    let tails = |w: f64| phi(lambda - crit * w.sqrt()) + phi(-lambda - crit * w.sqrt());
    if df > 1e6 {
        return tails(1.0);
    }
    // ln W has sd about √(2/df) for large df, and a long left tail for small df.
    let width = 12.0 * (2.0 / df).sqrt();
    let (lo, hi) = if df <= 20.0 {
        (-40.0, 5.0)
    } else {
        (-width * 1.5, width)
    };
    let k = df / 2.0;
    let log_norm = k * (df / 2.0).ln() - statrs::function::gamma::ln_gamma(k);
    let steps = 600;
    let h = (hi - lo) / steps as f64;
    let (mut mass, mut acc) = (0.0, 0.0);
    for i in 0..=steps {
        let y = lo + i as f64 * h;
        let w = y.exp();
        let density = (log_norm + k * y - k * w).exp();
        let weight = if i == 0 || i == steps {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        mass += weight * density;
        acc += weight * density * tails(w);
    }
    (acc / mass).clamp(0.0, 1.0)
}

/// What [`PlanComponents::search_queries`] found for one number of seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QuerySearch {
    /// The smallest number of queries reaching the power, or none within the bound.
    pub smallest: Option<usize>,
    /// The number of queries of the highest power within the bound.
    pub peak_queries: usize,
    /// That power.
    pub peak_power: f64,
}

/// One line of [`power_table`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerRow {
    /// Seeds per grid point.
    pub seeds: usize,
    /// The fewest queries reaching the power, or none within the bound.
    pub queries: Option<usize>,
    /// The number of queries where power peaks within the bound (it can fall after).
    pub peak_queries: usize,
    /// The power there.
    pub peak_power: f64,
    /// The seed part of the SE alone (it does not shrink with queries).
    pub seed_floor_se: f64,
}

/// The largest `--max-seeds` and `--max-queries` a power table searches: beyond them a
/// table would take minutes and plan nothing anyone runs.
pub const MAX_SEEDS: usize = 100;
/// See [`MAX_SEEDS`].
pub const MAX_QUERIES: usize = 10_000_000;

/// Checks planning inputs; every message names the flag.
fn check_plan(c: &PlanComponents, effect: f64, alpha: f64, power: f64) -> Result<()> {
    for (name, v) in [
        ("--var-query", c.var_query),
        ("--var-residual", c.var_residual),
        ("--var-seed", c.var_seed),
    ] {
        ensure!(
            v.is_finite() && v >= 0.0,
            Setting,
            "{name}: expected a variance >= 0, found {v}"
        );
    }
    ensure!(
        c.var_query + c.var_residual + c.var_seed > 0.0,
        Setting,
        "--var-query, --var-residual, --var-seed: at least one must be > 0"
    );
    ensure!(
        effect.is_finite() && effect > 0.0,
        Setting,
        "--effect: expected a difference > 0, found {effect}"
    );
    ensure!(
        alpha > 0.0 && alpha < 1.0,
        Setting,
        "--alpha: expected a level in (0, 1), found {alpha}"
    );
    ensure!(
        power > 0.0 && power < 1.0,
        Setting,
        "--power: expected a probability in (0, 1), found {power}"
    );
    Ok(())
}

/// For 1..=`max_seeds` seeds per grid point: the queries needed to detect `effect` with
/// `power` at the per-comparison `alpha` (up to `max_queries`).
pub fn power_table(
    c: &PlanComponents,
    effect: f64,
    alpha: f64,
    power: f64,
    max_seeds: usize,
    max_queries: usize,
) -> Result<Vec<PowerRow>> {
    check_plan(c, effect, alpha, power)?;
    ensure!(
        (1..=MAX_SEEDS).contains(&max_seeds),
        Setting,
        "--max-seeds: expected 1 to {MAX_SEEDS}, found {max_seeds}"
    );
    ensure!(
        (2..=MAX_QUERIES).contains(&max_queries),
        Setting,
        "--max-queries: expected 2 to {MAX_QUERIES}, found {max_queries}"
    );
    let sides = if c.deterministic_baseline { 1.0 } else { 2.0 };
    Ok((1..=max_seeds)
        .map(|s| {
            let found = c.search_queries(effect, s, alpha, power, max_queries);
            PowerRow {
                seeds: s,
                queries: found.smallest,
                peak_queries: found.peak_queries,
                peak_power: found.peak_power,
                seed_floor_se: (sides * c.var_seed / s as f64).sqrt(),
            }
        })
        .collect())
}

/// The mean of several comparisons' components (e.g. every seed-aware comparison of one
/// metric): the planning figure for a new grid point like them. None from none.
pub fn pooled_components(all: &[PlanComponents]) -> Option<PlanComponents> {
    if all.is_empty() {
        return None;
    }
    let k = all.len() as f64;
    let avg = |f: fn(&PlanComponents) -> f64| all.iter().map(f).sum::<f64>() / k;
    Some(PlanComponents {
        var_query: avg(|c| c.var_query),
        var_residual: avg(|c| c.var_residual),
        var_seed: avg(|c| c.var_seed),
        deterministic_baseline: all.iter().all(|c| c.deterministic_baseline),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::normal;
    use crate::{Correction, paired_t};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// nDCG@5 of systems X and Y on 20 topics: Sakai (2018), Table 5.1, as in
    /// `tests/data/sakai/{X,Y}.csv`.
    const X: [f64; 20] = [
        0.7, 0.3, 0.2, 0.6, 0.4, 0.4, 0.0, 0.7, 0.1, 0.3, 0.5, 0.4, 0.0, 0.6, 0.5, 0.3, 0.1, 0.5, 0.2, 0.1,
    ];
    const Y: [f64; 20] = [
        0.5, 0.1, 0.0, 0.2, 0.4, 0.3, 0.0, 0.5, 0.3, 0.3, 0.4, 0.4, 0.1, 0.4, 0.2, 0.1, 0.1, 0.6, 0.3, 0.2,
    ];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn one_seed_each_is_the_paired_t_test_on_sakai_x_vs_y() {
        let r = seed_test(&[X.to_vec()], &[Y.to_vec()], 0.95).unwrap();
        assert!(close(r.t, 2.1157598612734656, 1e-12), "{}", r.t);
        assert!(close(r.p_value, 0.04779676184496439, 1e-12), "{}", r.p_value);
        assert_eq!(r.df, 19.0);
        assert_eq!(r.seed_part, 0.0);
        assert_eq!(r.seed_part_estimated, [false, false]);
        // The interval is the paired t interval: margin 0.07419405526775592.
        assert!(close(r.ci_high - r.mean_diff, 0.07419405526775592, 1e-12));
        let t = paired_t(&Y, &X, 0.95).unwrap();
        assert!(close(r.t, t.t, 1e-12) && close(r.p_value, t.p_value, 1e-15));
    }

    #[test]
    fn identical_seeds_have_no_seed_part_and_give_the_paired_t_test() {
        // Three copies of X: σ̂²_v = 0 (MS_seed = MS_res = 0), so the test is the paired t.
        let a = vec![X.to_vec(); 3];
        let r = seed_test(&a, &[Y.to_vec()], 0.95).unwrap();
        assert!(close(r.t, 2.1157598612734656, 1e-12), "{}", r.t);
        assert_eq!((r.df, r.seed_part), (19.0, 0.0));
        assert_eq!(r.system.seed_mean_sd, 0.0);
        assert_eq!(r.seed_part_estimated, [true, false]);
    }

    #[test]
    fn components_of_a_small_table_match_a_hand_computation() {
        // Seeds × queries: [[1, 2, 3], [2, 4, 3]]. Seed means 2, 3; grand 2.5; query means
        // 1.5, 3, 3. MS_seed = 3 · 0.5 = 1.5. Residuals ±(0.5, 0.5, −1)/…: y − sm − qm + g:
        // seed 0: (1−2−1.5+2.5, 2−2−3+2.5, 3−2−3+2.5) = (0, −0.5, 0.5); seed 1 the negatives.
        // SS = 1, MS_res = 1 / (1·2) = 0.5. σ̂²_v = (1.5 − 0.5)/3 = 1/3.
        let c = seed_components(&[vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 3.0]]).unwrap();
        assert!(close(c.ms_seed, 1.5, 1e-12));
        assert!(close(c.ms_residual, 0.5, 1e-12));
        assert!(close(c.var_seed, 1.0 / 3.0, 1e-12));
        assert!(close(c.seed_mean_sd, 0.5f64.sqrt(), 1e-12));
        // Against a deterministic baseline of zeros (c = 1/2): D = (1.5, 3, 3), var_q = 0.75,
        // query part 0.25. Between part k·MS_seed/n = 0.5·1.5/3 = 0.25 (1 df); interaction part
        // 0.25 − k·MS_res/n = 0.25 − 0.5·0.5/3 = 1/6 (2 df); SE² = 5/12; d = 2.5. The seed
        // part k·σ̂²_v = 1/6 is reported.
        let r = seed_test_with(
            &[vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 3.0]],
            &[vec![0.0; 3]],
            [Runs::Trained, Runs::Deterministic],
            0.95,
        )
        .unwrap();
        assert!(close(r.query_part, 0.25, 1e-12) && close(r.seed_part, 1.0 / 6.0, 1e-12));
        assert!(close(r.between_part, 0.25, 1e-12) && close(r.interaction_part, 1.0 / 6.0, 1e-12));
        assert!(close(r.t, 2.5 / (5.0f64 / 12.0).sqrt(), 1e-12));
        // Satterthwaite over every mean square: MS_seed/(2n) = 0.25 (1 df, read ×3.636, at
        // χ²_1's 40% quantile 0.275), V_Q/n = 0.25 (2 df), MS_res/(2n) = 1/12
        // ((2 − 1)(3 − 1) = 2 df); the interaction 1/6 is their difference and does not get 2
        // df of its own.
        let f = seed_df_factor(1.0);
        assert!(close(f, 1.0 / 0.274_995_897_728_455_9, 1e-9), "{f}");
        let df = (0.25 * f + 1.0 / 6.0).powi(2) / ((0.25 * f).powi(2) + 0.0625 / 2.0 + (1.0f64 / 12.0).powi(2) / 2.0);
        assert!(close(r.df, df, 1e-12), "{} vs {df}", r.df);
        let p = 2.0 * StudentsT::new(0.0, 1.0, df).unwrap().cdf(-r.t);
        assert!(close(r.p_value, p, 1e-14));
        assert!(close(r.ci_high - r.mean_diff, t_inv(0.975, df) * r.se, 1e-12));
    }

    #[test]
    fn a_negative_estimate_is_truncated_at_zero() {
        // Seed means equal (MS_seed = 0) but residual noise: σ̂²_v would be negative.
        let c = seed_components(&[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        assert_eq!(c.ms_seed, 0.0);
        assert!(c.ms_residual > 0.0);
        assert_eq!(c.var_seed, 0.0);
    }

    #[test]
    fn degenerate_and_bad_inputs() {
        let zero = seed_test(&[vec![0.5; 4], vec![0.5; 4]], &[vec![0.5; 4]], 0.95).unwrap();
        assert_eq!((zero.t, zero.p_value), (0.0, 1.0));
        let shift = seed_test(&[vec![0.6; 4], vec![0.6; 4]], &[vec![0.5; 4]], 0.95).unwrap();
        assert_eq!((shift.t, shift.p_value), (f64::INFINITY, 0.0));
        let one = seed_test(&[vec![0.6]], &[vec![0.5]], 0.95).unwrap();
        assert!(one.t.is_nan() && one.p_value == 1.0);
        assert!(seed_test(&[vec![0.1, 0.2]], &[vec![0.1]], 0.95).is_err());
        assert!(seed_test(&[vec![0.1, 0.2], vec![0.1]], &[vec![0.1, 0.2]], 0.95).is_err());
        assert!(seed_test(&[], &[vec![0.1]], 0.95).is_err());
        assert!(seed_test(&[vec![f64::NAN]], &[vec![0.1]], 0.95).is_err());
        assert!(seed_test(&[vec![0.1]], &[vec![0.1]], 1.0).is_err());
    }

    #[test]
    fn per_comparison_alpha_of_each_correction() {
        assert_eq!(per_comparison_alpha(0.05, Correction::None, 4), 0.05);
        assert_eq!(per_comparison_alpha(0.05, Correction::Holm, 4), 0.0125);
        assert_eq!(per_comparison_alpha(0.05, Correction::Bonferroni, 4), 0.0125);
        assert_eq!(per_comparison_alpha(0.05, Correction::Bh, 4), 0.0125);
        let by = 0.05 / (2.0 * 1.5);
        assert!(close(per_comparison_alpha(0.05, Correction::By, 2), by, 1e-15));
        assert_eq!(per_comparison_alpha(0.05, Correction::Holm, 0), 0.05);
    }

    #[test]
    fn minimum_detectable_difference_known_answer() {
        // Large df: (z_{0.975} + z_{0.8}) · SE = (1.959964 + 0.841621) · SE.
        let mdd = min_detectable_difference(0.01, 1e7, 0.05, 0.8);
        assert!(close(mdd, 0.0280158, 1e-6), "{mdd}");
        // df 19: t_{0.975} = 2.093024, t_{0.8} = 0.860954.
        let mdd = min_detectable_difference(1.0, 19.0, 0.05, 0.8);
        assert!(close(mdd, 2.093024 + 0.860954, 1e-5), "{mdd}");
        assert!(min_detectable_difference(f64::NAN, 19.0, 0.05, 0.8).is_nan());
        assert!(min_detectable_difference(1.0, 0.0, 0.05, 0.8).is_nan());
    }

    #[test]
    fn planning_counts_the_seed_part_that_queries_cannot_remove() {
        let c = PlanComponents {
            var_query: 0.02,
            var_residual: 0.01,
            var_seed: 0.0004,
            deterministic_baseline: false,
        };
        // SE² with 50 queries, 3 seeds: (0.02 + 2·0.01/3)/50 + 2·0.0004/3.
        let (se, _) = c.se_df(50, 3);
        assert!(close(se * se, (0.02 + 0.02 / 3.0) / 50.0 + 0.0008 / 3.0, 1e-15));
        // δ = 0.03: with one seed the seed part 0.0008 already exceeds (δ/2.8)² ≈ 0.000115.
        assert_eq!(c.queries_needed(0.03, 1, 0.05, 0.8, 100_000), None);
        let n10 = c.queries_needed(0.03, 10, 0.05, 0.8, 100_000).unwrap();
        assert!(c.power(0.03, n10, 10, 0.05) >= 0.8 && c.power(0.03, n10 - 1, 10, 0.05) < 0.8);
        // More seeds never need more queries.
        let n20 = c.queries_needed(0.03, 20, 0.05, 0.8, 100_000).unwrap();
        assert!(n20 <= n10);
        // Without seed variance, one seed and a deterministic baseline: about the paired-t n,
        // (2.8 · σ/δ)² with σ² = 0.03 → 7.84 · 0.03 / 0.0009 ≈ 261, a little more for t.
        let flat = PlanComponents {
            var_seed: 0.0,
            deterministic_baseline: true,
            ..c
        };
        let n = flat.queries_needed(0.03, 1, 0.05, 0.8, 100_000).unwrap();
        assert!((261..=266).contains(&n), "{n}");
    }

    #[test]
    fn power_tables_and_their_errors() {
        let c = PlanComponents {
            var_query: 0.02,
            var_residual: 0.01,
            var_seed: 0.0004,
            deterministic_baseline: false,
        };
        let rows = power_table(&c, 0.03, 0.05, 0.8, 10, 100_000).unwrap();
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0].queries, None);
        assert!(close(rows[1].seed_floor_se, (2.0 * 0.0004f64 / 2.0).sqrt(), 1e-15));
        assert_eq!(rows[9].queries, c.queries_needed(0.03, 10, 0.05, 0.8, 100_000));
        let bad = |c: PlanComponents, effect: f64, alpha: f64| {
            power_table(&c, effect, alpha, 0.8, 3, 100).unwrap_err().to_string()
        };
        assert!(bad(PlanComponents { var_seed: -1.0, ..c }, 0.03, 0.05).contains("--var-seed"));
        assert!(bad(c, 0.0, 0.05).contains("--effect"));
        assert!(bad(c, 0.03, 1.5).contains("--alpha"));
        let zero = PlanComponents {
            var_query: 0.0,
            var_residual: 0.0,
            var_seed: 0.0,
            ..c
        };
        assert!(bad(zero, 0.03, 0.05).contains("at least one"));
        assert!(power_table(&c, 0.03, 0.05, 0.8, 0, 100).is_err());
        let pooled = pooled_components(&[c, PlanComponents { var_seed: 0.0008, ..c }]).unwrap();
        assert!(close(pooled.var_seed, 0.0006, 1e-15) && !pooled.deterministic_baseline);
        assert!(pooled_components(&[]).is_none());
    }

    #[test]
    fn plan_components_recover_the_simulated_ones() {
        // 2000 queries, 8 seeds per side: the estimates come close to the truth.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (sq, se_, sv) = (0.1f64, 0.05f64, 0.03f64);
        let n = 2000;
        let inter: Vec<f64> = (0..n).map(|_| normal(&mut rng) * sq).collect();
        let table = |rng: &mut ChaCha8Rng, shift: &[f64]| -> Vec<Vec<f64>> {
            (0..8)
                .map(|_| {
                    let v = normal(rng) * sv;
                    shift.iter().map(|x| x + v + normal(rng) * se_).collect()
                })
                .collect()
        };
        let a = table(&mut rng, &inter);
        let b = table(&mut rng, &vec![0.0; n]);
        let c = PlanComponents::from_test(&seed_test(&a, &b, 0.95).unwrap());
        assert!(close(c.var_query, sq * sq, 0.002), "{c:?}");
        assert!(close(c.var_residual, se_ * se_, 0.0002), "{c:?}");
        // σ²_v from 2 × 7 df is rough: within a factor of 2.5.
        assert!(c.var_seed > sv * sv / 2.5 && c.var_seed < sv * sv * 2.5, "{c:?}");
    }

    #[test]
    fn a_one_seed_trained_side_borrows_and_a_deterministic_one_has_none() {
        let a = vec![vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 3.0]];
        let zero = vec![vec![0.0; 3]];
        // Trained baseline with one seed: c_A = 1/2 + 1 (it borrows A's mean squares).
        let r = seed_test(&a, &zero, 0.95).unwrap();
        assert_eq!(r.seed_source, [SeedSource::Own, SeedSource::Borrowed]);
        assert!(r.one_seed_warning());
        assert!(close(r.between_part, 1.5 * 1.5 / 3.0, 1e-12), "{}", r.between_part);
        // Interaction 0.25 − 1.5·0.5/3 = 0: dropped, the df are the seed part's 1.
        assert_eq!((r.interaction_part, r.df), (0.0, 1.0));
        let det = seed_test_with(&a, &zero, [Runs::Trained, Runs::Deterministic], 0.95).unwrap();
        assert_eq!(det.seed_source, [SeedSource::Own, SeedSource::Deterministic]);
        assert!(!det.one_seed_warning());
        // One trained seed each: nothing to borrow, the paired t-test, and the warning.
        let one = seed_test(&[X.to_vec()], &[Y.to_vec()], 0.95).unwrap();
        assert_eq!(one.seed_source, [SeedSource::Unknown; 2]);
        assert!(one.one_seed_warning());
        let err = seed_test_with(&a, &a, [Runs::Trained, Runs::Deterministic], 0.95).unwrap_err();
        assert!(
            err.to_string().contains("baseline is deterministic but has 2 runs"),
            "{err}"
        );
    }

    #[test]
    fn each_system_keeps_its_own_seed_variance() {
        // A's seeds differ by a shift, B's do not: B's MS_seed is 0, A's is not pooled with it.
        let a = vec![X.to_vec(), X.iter().map(|x| x + 0.1).collect()];
        let b = vec![Y.to_vec(), Y.to_vec()];
        let r = seed_test(&a, &b, 0.95).unwrap();
        // MS_seed,A = 20 · var(0, 0.1) = 20 · 0.005 = 0.1; between = 0.1/(20·2).
        assert!(close(r.system.ms_seed, 0.1, 1e-12) && r.baseline.ms_seed == 0.0);
        assert!(close(r.between_part, 0.1 / 40.0, 1e-12));
        // Both residuals are 0, so the interaction is the query part with n − 1 df; the seed
        // term is read at its upper bound for the df.
        let seed = r.between_part * seed_df_factor(1.0);
        let df = (seed + r.query_part).powi(2) / (seed.powi(2) + r.query_part.powi(2) / 19.0);
        assert!(close(r.df, df, 1e-9), "{} vs {df}", r.df);
    }

    #[test]
    fn tost_verdicts() {
        // d = 0.001, SE 0.002, df 100, δ = 0.01: both one-sided tests reject.
        let p = tost_p(0.001, 0.002, 100.0, 0.01);
        let t = StudentsT::new(0.0, 1.0, 100.0).unwrap();
        assert!(close(p, t.cdf((0.001 - 0.01) / 0.002), 1e-15), "{p}");
        assert!(p < 0.05);
        assert_eq!(Verdict::of(0.6, p, 0.05), Verdict::Equivalent);
        // Large SE: neither.
        let wide = tost_p(0.001, 0.02, 100.0, 0.01);
        assert!(wide > 0.05);
        assert_eq!(Verdict::of(0.9, wide, 0.05), Verdict::Inconclusive);
        assert_eq!(Verdict::of(0.001, p, 0.05), Verdict::Different);
        assert!(tost_p(0.0, 0.01, 10.0, 0.0).is_nan());
        assert_eq!(
            (tost_p(0.005, 0.0, 10.0, 0.01), tost_p(0.02, 0.0, 10.0, 0.01)),
            (0.0, 1.0)
        );
    }

    #[test]
    fn noncentral_t_power_known_answers() {
        // λ = 0: the size, α; large df: the normal's power (z_0.975 + z_0.8 → 0.8).
        let crit = t_inv(0.975, 10.0);
        assert!(close(noncentral_t_power(0.0, 10.0, crit), 0.05, 1e-6));
        let z = 1.959963984540054 + 0.8416212335729143;
        assert!(close(noncentral_t_power(z, 1e7, 1.959963984540054), 0.8, 1e-4));
        // R: power.t.test(n = 10, delta = 1, sd = 1, type = "one.sample") → 0.8030962 (df 9,
        // λ = √10, both tails).
        let p = noncentral_t_power(10f64.sqrt(), 9.0, t_inv(0.975, 9.0));
        assert!(close(p, 0.8030962, 1e-5), "{p}");
    }

    /// Components where power rises and then falls with n: the seed variance is small but not
    /// zero, so with some thousands of queries the interaction's n − 1 df carry the test and
    /// with many more the seed part's 2(S − 1) = 2 df do.
    const NON_MONOTONE: PlanComponents = PlanComponents {
        var_query: 0.005,
        var_residual: 0.001,
        var_seed: 0.000_001,
        deterministic_baseline: false,
    };

    #[test]
    fn the_search_finds_the_smallest_n_and_the_peak_where_power_is_not_monotone() {
        let c = NON_MONOTONE;
        let (effect, alpha, s) = (0.005, 0.05, 2);
        let at = |n: usize| c.power(effect, n, s, alpha);
        let target = 0.45;
        let found = c.search_queries(effect, s, alpha, target, 100_000);
        let n = found.smallest.expect("some n reaches the target");
        assert!(at(n) >= target && at(n - 1) < target, "{n}: {} {}", at(n), at(n - 1));
        // Smaller n fall short (every 7th checked), and power falls again later: at the
        // bound it is below the target, where bisection over [2, 100000] would say none.
        assert!((2..n).step_by(7).all(|m| at(m) < target));
        assert!(at(100_000) < target, "{}", at(100_000));
        assert!(found.peak_power >= at(n) && found.peak_queries >= n);
        assert!(close(found.peak_power, at(found.peak_queries), 1e-15));
        for m in [found.peak_queries - 1, found.peak_queries + 1] {
            assert!(at(m) <= found.peak_power + 1e-12);
        }
    }
}
