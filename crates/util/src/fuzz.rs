//! Generated inputs for the property tests of the parsers in every crate: strings of
//! pieces drawn from a parser's vocabulary, with random characters mixed in, from a seeded
//! stream so that a failing input comes back on every run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Characters that are rare in the vocabularies and break parsers: controls, a BOM, a lone
/// combining mark, wide and right-to-left letters.
const ODD: &[char] = &[
    '\0',
    '\t',
    '\r',
    '\u{7f}',
    '\u{feff}',
    '\u{301}',
    '界',
    'ש',
    '\u{1F600}',
    '\\',
];

/// A seeded stream of generated texts.
pub struct Fuzz(ChaCha8Rng);

impl Fuzz {
    /// The stream of seed `seed`.
    pub fn new(seed: u64) -> Self {
        Fuzz(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Up to `max` pieces of `vocabulary`, about one in eight replaced by an odd character.
    pub fn text(&mut self, vocabulary: &[&str], max: usize) -> String {
        let n = self.0.gen_range(0..=max);
        let mut s = String::new();
        for _ in 0..n {
            if self.0.gen_ratio(1, 8) {
                s.push(ODD[self.0.gen_range(0..ODD.len())]);
            } else {
                s.push_str(vocabulary[self.0.gen_range(0..vocabulary.len())]);
            }
        }
        s
    }
}
