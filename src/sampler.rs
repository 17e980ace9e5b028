//! Hybrid batches: at each training step, the share of cross-lingual pairs (low-resource
//! query, English passage) follows the curriculum schedule p(t); the rest are monolingual
//! English pairs.

use crate::data::format::Pair;
use crate::schedule::{Schedule, progress};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// How cross-lingual pairs are mixed into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mixing {
    /// Every batch mixes both kinds; the number of cross-lingual pairs is p(t)·B rounded
    /// stochastically, so its expectation is exactly p(t)·B.
    #[default]
    Sample,
    /// Each batch is wholly cross-lingual with probability p(t), else wholly monolingual.
    Batch,
}

/// One training batch.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    /// The pairs of the batch.
    pub pairs: Vec<&'a Pair>,
    /// The schedule's target share at this step.
    pub target_share: f64,
    /// How many of `pairs` are cross-lingual (they come first).
    pub cross_lingual: usize,
}

/// Draws the hybrid batches of a run: cross-lingual pairs at the schedule's share p(t), the rest monolingual.
pub struct HybridSampler<'a> {
    mono: &'a [Pair],
    cross: Vec<&'a Pair>,
    schedule: Schedule,
    mixing: Mixing,
    batch_size: usize,
    steps: usize,
    rng: ChaCha8Rng,
}

impl<'a> HybridSampler<'a> {
    /// `cross` holds the cross-lingual pairs of all selected languages.
    pub fn new(
        mono: &'a [Pair],
        cross: Vec<&'a Pair>,
        schedule: Schedule,
        mixing: Mixing,
        batch_size: usize,
        steps: usize,
        seed: u64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            batch_size >= 2,
            "batch size must be at least 2 (in-batch negatives), found {batch_size}"
        );
        anyhow::ensure!(
            mono.len() >= batch_size,
            "only {} monolingual training pairs for a batch size of {batch_size}",
            mono.len()
        );
        anyhow::ensure!(
            !cross.is_empty(),
            "no cross-lingual training pairs for the selected languages"
        );
        Ok(Self {
            mono,
            cross,
            schedule,
            mixing,
            batch_size,
            steps,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The batch of step `step` (0-based). Calls must come in step order for reproducibility.
    pub fn batch(&mut self, step: usize) -> Batch<'a> {
        let p = self.schedule.share(progress(step, self.steps));
        let b = self.batch_size;
        let wanted = match self.mixing {
            Mixing::Sample => {
                let exact = p * b as f64;
                let floor = exact.floor();
                floor as usize + usize::from(self.rng.gen_bool((exact - floor).clamp(0.0, 1.0)))
            }
            Mixing::Batch => {
                if self.rng.gen_bool(p) {
                    b
                } else {
                    0
                }
            }
        };
        let n_cross = wanted.min(self.cross.len()).min(b);
        let mut pairs: Vec<&'a Pair> = index::sample(&mut self.rng, self.cross.len(), n_cross)
            .into_iter()
            .map(|i| self.cross[i])
            .collect();
        // A passage twice in one batch would be its own in-batch negative: skip repeats.
        let mut passages: HashSet<&str> = pairs.iter().map(|p| p.passage.as_str()).collect();
        let order = index::sample(&mut self.rng, self.mono.len(), self.mono.len());
        for i in order {
            if pairs.len() == b {
                break;
            }
            let pair = &self.mono[i];
            if passages.insert(pair.passage.as_str()) {
                pairs.push(pair);
            }
        }
        Batch {
            pairs,
            target_share: p,
            cross_lingual: n_cross,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(prefix: &str, n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                id: format!("{prefix}{i}"),
                query: format!("q{i}"),
                passage: format!("{prefix}-p{i}"),
            })
            .collect()
    }

    fn sampler<'a>(mono: &'a [Pair], cross: &'a [Pair], s: Schedule, m: Mixing, seed: u64) -> HybridSampler<'a> {
        HybridSampler::new(mono, cross.iter().collect(), s, m, 16, 200, seed).unwrap()
    }

    #[test]
    fn sample_mixing_tracks_the_schedule() {
        let (mono, cross) = (pairs("m", 300), pairs("x", 300));
        let mut s = sampler(
            &mono,
            &cross,
            Schedule::Linear { start: 0.0, end: 1.0 },
            Mixing::Sample,
            1,
        );
        let first = s.batch(0);
        assert_eq!(first.cross_lingual, 0);
        let mut total = 0.0;
        for step in 1..199 {
            let b = s.batch(step);
            assert_eq!(b.pairs.len(), 16);
            // Stochastic rounding: never more than one pair away from the target.
            assert!((b.cross_lingual as f64 - b.target_share * 16.0).abs() < 1.0);
            assert!(b.pairs[..b.cross_lingual].iter().all(|p| p.id.starts_with('x')));
            assert!(b.pairs[b.cross_lingual..].iter().all(|p| p.id.starts_with('m')));
            total += b.cross_lingual as f64 / 16.0;
        }
        assert_eq!(s.batch(199).cross_lingual, 16);
        assert!((total / 198.0 - 0.5).abs() < 0.02);
    }

    #[test]
    fn batch_mixing_makes_pure_batches_at_the_scheduled_rate() {
        let (mono, cross) = (pairs("m", 100), pairs("x", 100));
        let mut s = sampler(&mono, &cross, Schedule::Constant { value: 0.3 }, Mixing::Batch, 2);
        let mut cross_batches = 0;
        for step in 0..200 {
            let b = s.batch(step);
            assert!(b.cross_lingual == 0 || b.cross_lingual == 16);
            cross_batches += usize::from(b.cross_lingual == 16);
        }
        assert!((40..=80).contains(&cross_batches), "{cross_batches} of 200");
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (mono, cross) = (pairs("m", 100), pairs("x", 100));
        let ids = |seed| {
            let mut s = sampler(&mono, &cross, Schedule::Constant { value: 0.5 }, Mixing::Sample, seed);
            (0..20)
                .flat_map(|i| s.batch(i).pairs.into_iter().map(|p| p.id.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(5), ids(5));
        assert_ne!(ids(5), ids(6));
    }

    #[test]
    fn no_passage_repeats_within_a_batch() {
        let mono = pairs("m", 40);
        // Cross-lingual pairs whose passages are the monolingual ones (as with real bitext).
        let cross: Vec<Pair> = mono
            .iter()
            .map(|p| Pair {
                id: format!("x{}", p.id),
                ..p.clone()
            })
            .collect();
        let mut s = sampler(&mono, &cross, Schedule::Constant { value: 0.5 }, Mixing::Sample, 3);
        for step in 0..50 {
            let b = s.batch(step);
            let unique: HashSet<&str> = b.pairs.iter().map(|p| p.passage.as_str()).collect();
            assert_eq!(unique.len(), b.pairs.len());
        }
    }

    #[test]
    fn rejects_unusable_inputs() {
        let mono = pairs("m", 4);
        let err = HybridSampler::new(
            &mono,
            vec![],
            Schedule::Constant { value: 0.5 },
            Mixing::Sample,
            2,
            10,
            0,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("no cross-lingual"));
        let cross = pairs("x", 4);
        let err = HybridSampler::new(
            &mono,
            cross.iter().collect(),
            Schedule::Constant { value: 0.5 },
            Mixing::Sample,
            8,
            10,
            0,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("batch size of 8"));
    }
}
