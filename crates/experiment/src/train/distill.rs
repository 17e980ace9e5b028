//! The OT distillation inputs of a step: λ(t), and the bitext pairs drawn for it.

use crate::spec::OtConfig;
use clirlab_data::format::Pair;
use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;

/// λ at training progress `t`: `ot.weight`, times `ot.weight_schedule`'s share if one is set.
pub fn ot_weight(ot: &OtConfig, t: f64) -> f64 {
    ot.weight * ot.weight_schedule.as_ref().map(|s| s.share(t)).unwrap_or(1.0)
}

/// Draws the bitext pairs of each OT step: `batch_size` distinct pairs (all of them when there
/// are fewer), from a stream seeded by the cell's seed apart from the sampler's.
pub struct BitextSampler<'a> {
    pairs: Vec<&'a Pair>,
    batch_size: usize,
    rng: ChaCha8Rng,
}

impl<'a> BitextSampler<'a> {
    /// A sampler over `pairs` for the cell seeded `seed`.
    pub fn new(pairs: Vec<&'a Pair>, batch_size: usize, seed: u64) -> Self {
        Self {
            pairs,
            batch_size,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x00B1_7EC7),
        }
    }

    /// Whether there is no pair to draw.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs of the next step.
    pub fn next_batch(&mut self) -> Vec<&'a Pair> {
        let n = self.pairs.len();
        index::sample(&mut self.rng, n, self.batch_size.min(n))
            .into_iter()
            .map(|i| self.pairs[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn pairs(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                id: format!("p{i}"),
                query: format!("q{i}"),
                passage: format!("d{i}"),
            })
            .collect()
    }

    #[test]
    fn weight_follows_its_schedule() {
        let ot = OtConfig {
            weight: 0.5,
            ..OtConfig::default()
        };
        assert_eq!(ot_weight(&ot, 0.3), 0.5);
        let ramp = OtConfig {
            weight_schedule: Some(Schedule::Linear { start: 0.0, end: 1.0 }),
            ..ot
        };
        assert!((ot_weight(&ramp, 0.5) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn draws_distinct_pairs_reproducibly() {
        let all = pairs(10);
        let refs: Vec<&Pair> = all.iter().collect();
        let mut a = BitextSampler::new(refs.clone(), 4, 7);
        let mut b = BitextSampler::new(refs.clone(), 4, 7);
        for _ in 0..5 {
            let x = a.next_batch();
            assert_eq!(x, b.next_batch());
            let ids: std::collections::BTreeSet<&str> = x.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(ids.len(), 4);
        }
        let mut small = BitextSampler::new(refs[..3].to_vec(), 16, 7);
        assert_eq!(small.next_batch().len(), 3);
        assert!(BitextSampler::new(Vec::new(), 4, 1).is_empty());
    }
}
