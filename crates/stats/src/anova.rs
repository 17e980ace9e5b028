//! Two-way ANOVA without replication (systems × topics) and Tukey's HSD on its residual.
//!
//! The decomposition is the classic randomized-block one (as in Sakai 2018, Table 5.1; the same
//! sums of squares as `statsmodels` `anova_lm(ols("score ~ C(system) + C(topic)"))`), and the
//! HSD uses the residual mean square and degrees of freedom as in Sakai's worked example.

use super::descriptive::{effect_sizes_of, mean};
use super::ptukey::{ptukey, qtukey};
use crate::error::Result;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// Two-way ANOVA table without replication.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoWayAnova {
    /// Number of systems (rows).
    pub systems: usize,
    /// Number of topics (columns).
    pub topics: usize,
    /// Mean score of each system, in row order.
    pub system_means: Vec<f64>,
    /// Mean of all scores.
    pub grand_mean: f64,
    /// Sum of squares between systems.
    pub ss_systems: f64,
    /// Sum of squares between topics.
    pub ss_topics: f64,
    /// Residual sum of squares.
    pub ss_residual: f64,
    /// Total sum of squares.
    pub ss_total: f64,
    /// Degrees of freedom of the systems (systems − 1).
    pub df_systems: f64,
    /// Degrees of freedom of the topics (topics − 1).
    pub df_topics: f64,
    /// Residual degrees of freedom ((systems − 1)(topics − 1)).
    pub df_residual: f64,
    /// Mean square of the systems.
    pub ms_systems: f64,
    /// Mean square of the topics.
    pub ms_topics: f64,
    /// Residual mean square.
    pub ms_residual: f64,
    /// F statistic of the systems.
    pub f_systems: f64,
    /// p-value of the systems' F.
    pub p_systems: f64,
    /// F statistic of the topics.
    pub f_topics: f64,
    /// p-value of the topics' F.
    pub p_topics: f64,
    /// The scores, `scores[system][topic]`, kept for per-pair effect sizes.
    scores: Vec<Vec<f64>>,
}

/// One pair of systems in Tukey's HSD.
#[derive(Debug, Clone, PartialEq)]
pub struct TukeyPair {
    /// Index of the first system (the "baseline" of the pair).
    pub i: usize,
    /// Index of the second system.
    pub j: usize,
    /// mean_j − mean_i.
    pub diff: f64,
    /// Studentized range statistic |diff| / √(MS_residual / topics).
    pub q: f64,
    /// P(Q ≥ q) for Q with `systems` groups and `df_residual` degrees of freedom; adjusted for
    /// all pairs (family-wise error rate), so no further correction applies.
    pub p_value: f64,
    /// Simultaneous confidence interval of `diff`: diff ± q_crit · √(MS_residual / topics).
    pub ci_low: f64,
    /// Upper end of the interval.
    pub ci_high: f64,
    /// Cohen's d_z of the per-topic differences of the pair.
    pub effect_size: f64,
}

/// Two-way ANOVA without replication of `scores[system][topic]`.
///
/// SS_systems = n Σ_i (m_i − m)², SS_topics = k Σ_j (m_j − m)², SS_residual = SS_total −
/// SS_systems − SS_topics, with df k − 1, n − 1 and (k − 1)(n − 1). F and p test the system
/// and topic effects against the residual. When the residual is zero, F is ∞ (p = 0) for an
/// effect with nonzero SS and the effect's p is 1 otherwise.
pub fn two_way_anova(scores: &[Vec<f64>]) -> Result<TwoWayAnova> {
    let k = scores.len();
    ensure!(k >= 2, Data, "two-way ANOVA needs at least 2 systems, found {k}");
    let n = scores[0].len();
    ensure!(n >= 2, Data, "two-way ANOVA needs at least 2 topics, found {n}");
    for (i, row) in scores.iter().enumerate() {
        ensure!(
            row.len() == n,
            Data,
            "two-way ANOVA: system #{i} has {} topics, system #0 has {n}",
            row.len()
        );
        ensure!(
            row.iter().all(|v| v.is_finite()),
            Data,
            "two-way ANOVA: system #{i} has a non-finite score"
        );
    }
    let (kf, nf) = (k as f64, n as f64);
    let system_means: Vec<f64> = scores.iter().map(|r| mean(r)).collect();
    let topic_means: Vec<f64> = (0..n).map(|j| scores.iter().map(|r| r[j]).sum::<f64>() / kf).collect();
    let grand_mean = system_means.iter().sum::<f64>() / kf;
    let ss_total: f64 = scores.iter().flatten().map(|v| (v - grand_mean).powi(2)).sum();
    let ss_systems = nf * system_means.iter().map(|m| (m - grand_mean).powi(2)).sum::<f64>();
    let ss_topics = kf * topic_means.iter().map(|m| (m - grand_mean).powi(2)).sum::<f64>();
    // Residuals summed directly rather than by subtraction, which cancels when they are small.
    let ss_residual: f64 = scores
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let (system_means, topic_means) = (&system_means, &topic_means);
            r.iter()
                .enumerate()
                .map(move |(j, v)| (v - system_means[i] - topic_means[j] + grand_mean).powi(2))
        })
        .sum();
    let (df_systems, df_topics) = (kf - 1.0, nf - 1.0);
    let df_residual = df_systems * df_topics;
    let ms_systems = ss_systems / df_systems;
    let ms_topics = ss_topics / df_topics;
    let ms_residual = ss_residual / df_residual;
    let f_test = |ms: f64, df: f64| -> (f64, f64) {
        if ms_residual > 0.0 {
            let f = ms / ms_residual;
            let dist = FisherSnedecor::new(df, df_residual).expect("positive df");
            (f, (1.0 - dist.cdf(f)).clamp(0.0, 1.0))
        } else if ms > 0.0 {
            (f64::INFINITY, 0.0)
        } else {
            (f64::NAN, 1.0)
        }
    };
    let (f_systems, p_systems) = f_test(ms_systems, df_systems);
    let (f_topics, p_topics) = f_test(ms_topics, df_topics);
    Ok(TwoWayAnova {
        systems: k,
        topics: n,
        system_means,
        grand_mean,
        ss_systems,
        ss_topics,
        ss_residual,
        ss_total,
        df_systems,
        df_topics,
        df_residual,
        ms_systems,
        ms_topics,
        ms_residual,
        f_systems,
        p_systems,
        f_topics,
        p_topics,
        scores: scores.to_vec(),
    })
}

/// Tukey's HSD for all pairs i < j of systems, using the ANOVA's residual mean square and df.
///
/// p-values are upper tails of the studentized range with k = `systems` and ν = df_residual;
/// intervals are simultaneous at `confidence`.
pub fn tukey_hsd(anova: &TwoWayAnova, confidence: f64) -> Vec<TukeyPair> {
    let k = anova.systems;
    let se = (anova.ms_residual / anova.topics as f64).sqrt();
    let q_crit = qtukey(confidence, k, anova.df_residual);
    let mut pairs = Vec::with_capacity(k * (k - 1) / 2);
    for i in 0..k {
        for j in i + 1..k {
            let diff = anova.system_means[j] - anova.system_means[i];
            let (q, p_value) = if se > 0.0 {
                let q = diff.abs() / se;
                (q, (1.0 - ptukey(q, k, anova.df_residual)).clamp(0.0, 1.0))
            } else if diff == 0.0 {
                (0.0, 1.0)
            } else {
                (f64::INFINITY, 0.0)
            };
            let d: Vec<f64> = anova.scores[j]
                .iter()
                .zip(&anova.scores[i])
                .map(|(b, a)| b - a)
                .collect();
            pairs.push(TukeyPair {
                i,
                j,
                diff,
                q,
                p_value,
                ci_low: diff - q_crit * se,
                ci_high: diff + q_crit * se,
                effect_size: effect_sizes_of(&d).d_z,
            });
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_table() {
        // Systems a = [1, 2, 3], b = [2, 4, 3]. Grand mean 2.5; system means 2, 3; topic means
        // 1.5, 3, 3. SS_sys = 3·(0.25 + 0.25) = 1.5; SS_topic = 2·(1 + 0.25 + 0.25) = 3;
        // SS_total = 2.25 + 0.25 + 0.25 + 0.25 + 2.25 + 0.25 = 5.5; SS_res = 1.
        let a = two_way_anova(&[vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 3.0]]).unwrap();
        assert!((a.ss_systems - 1.5).abs() < 1e-12);
        assert!((a.ss_topics - 3.0).abs() < 1e-12);
        assert!((a.ss_residual - 1.0).abs() < 1e-12);
        assert!((a.ss_total - 5.5).abs() < 1e-12);
        assert_eq!((a.df_systems, a.df_topics, a.df_residual), (1.0, 2.0, 2.0));
        // F = 1.5 / 0.5 = 3 on (1, 2) df: P(F > 3) = 1 − √(3/5) = P(|T₂| > √3).
        assert!((a.f_systems - 3.0).abs() < 1e-12);
        assert!((a.p_systems - (1.0 - (3.0f64 / 5.0).sqrt())).abs() < 1e-12);
        // With two systems Tukey's HSD is the paired t-test: q = √2·|t|.
        let pair = &tukey_hsd(&a, 0.95)[0];
        let t = crate::paired_t(&[1.0, 2.0, 3.0], &[2.0, 4.0, 3.0], 0.95).unwrap();
        assert!((pair.q - 2f64.sqrt() * t.t).abs() < 1e-12);
        assert!((pair.p_value - t.p_value).abs() < 1e-10);
        assert!((pair.ci_high - t.diff.high).abs() < 1e-8);
    }

    #[test]
    fn rejects_bad_shapes_and_handles_zero_residual() {
        assert!(two_way_anova(&[vec![1.0, 2.0]]).is_err());
        assert!(two_way_anova(&[vec![1.0, 2.0], vec![1.0]]).is_err());
        // b = a + 1 exactly: residual 0, systems differ → F = ∞, Tukey p = 0.
        let a = two_way_anova(&[vec![0.0, 1.0, 2.0], vec![1.0, 2.0, 3.0]]).unwrap();
        assert!(a.ss_residual < 1e-24 && a.p_systems == 0.0);
        let same = two_way_anova(&[vec![0.0, 1.0], vec![0.0, 1.0]]).unwrap();
        assert_eq!(same.p_systems, 1.0);
        assert_eq!(tukey_hsd(&same, 0.95)[0].p_value, 1.0);
    }
}
