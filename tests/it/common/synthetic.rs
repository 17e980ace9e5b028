//! Deterministic synthetic run + qrels for speed measurements (shared by the speed test and the
//! criterion benchmark through `#[path]`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Knuth's MMIX linear congruential generator; high bits only.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Writes `run.trec` (`topics` x `docs` lines, by topic and rank, as retrieval systems write
/// them) and `qrels.trec` (per topic: two relevant and one non-relevant retrieved document, one
/// relevant document not retrieved) into `dir`. Returns (qrels, run) paths.
pub fn write_synthetic(dir: &Path, topics: usize, docs: usize, seed: u64) -> (PathBuf, PathBuf) {
    let mut rng = Lcg(seed);
    let qrels_path = dir.join("qrels.trec");
    let run_path = dir.join("run.trec");
    let mut qrels = BufWriter::new(File::create(&qrels_path).unwrap());
    let mut run = BufWriter::new(File::create(&run_path).unwrap());
    for t in 0..topics {
        let base = rng.next() % 9_000_000;
        // Distinct per topic: j * 7919 < 10^6 for j < 100, far below the spread of bases.
        let doc = |j: usize| base + (j as u64 * 7919) % 1_000_000;
        let mut score = 40.0 + (rng.next() % 1000) as f64 / 100.0;
        for j in 0..docs {
            // Steps of 0 make ties, which exercise the doc id tie-break.
            score -= (rng.next() % 200) as f64 / 10_000.0;
            writeln!(run, "q{t} Q0 d{} {} {score:.6} synthetic", doc(j), j + 1).unwrap();
        }
        let pick = |r: u64| doc((r % docs as u64) as usize);
        let (a, b, c) = (pick(rng.next()), pick(rng.next()), pick(rng.next()));
        writeln!(qrels, "q{t} 0 d{a} {}", 1 + rng.next() % 2).unwrap();
        if b != a {
            writeln!(qrels, "q{t} 0 d{b} 1").unwrap();
        }
        if c != a && c != b {
            writeln!(qrels, "q{t} 0 d{c} 0").unwrap();
        }
        writeln!(qrels, "q{t} 0 unretrieved{t} 1").unwrap();
    }
    qrels.flush().unwrap();
    run.flush().unwrap();
    (qrels_path, run_path)
}
