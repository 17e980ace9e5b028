//! Fixed subsamples: the same `n` of `len` items for a given label, on every machine and in
//! every cell (test-query samples, training-pool caps).

use rand::SeedableRng;
use rand::seq::index::sample;

/// `n` indices of `0..len` (all of them when `n >= len`), drawn with `seed`, in increasing order.
pub fn fixed_sample(len: usize, n: usize, seed: u64) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picked = sample(&mut rng, len, n).into_vec();
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_fixed_sorted_and_within_range() {
        let a = fixed_sample(1000, 10, 7);
        assert_eq!(a, fixed_sample(1000, 10, 7));
        assert_ne!(a, fixed_sample(1000, 10, 8));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|i| *i < 1000));
        assert_eq!(fixed_sample(3, 10, 7), [0, 1, 2]);
    }
}
