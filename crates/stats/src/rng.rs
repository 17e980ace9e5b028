//! Deterministic parallel random streams.
//!
//! Resampling work is cut into fixed chunks; chunk c of a comparison reads the ChaCha8 stream
//! `stream` of `seed` from 32-bit word 2^40·c onward. Results therefore depend only on
//! (seed, stream, chunk size), never on how many threads ran the chunks or in what order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Words of key stream reserved per chunk (2^40 · 4 bytes, far more than any chunk reads).
const CHUNK_WORDS: u128 = 1 << 40;

pub(crate) fn chunk_rng(seed: u64, stream: u64, chunk: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.set_word_pos(CHUNK_WORDS * chunk as u128);
    rng
}

/// A stable 64-bit FNV-1a hash, to give each comparison its own stream independent of which
/// other systems are present.
pub(crate) fn stream_id(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Worker threads to use: `requested`, or the machine's parallelism when 0.
pub(crate) fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Runs `work(chunk)` for chunks 0..chunks on up to `threads` threads, returning the results in
/// chunk order.
pub(crate) fn run_chunks<T: Send>(chunks: usize, threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, chunks.max(1));
    if threads == 1 {
        return (0..chunks).map(&work).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if c >= chunks {
                            break mine;
                        }
                        mine.push((c, work(c)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("resampling worker panicked"))
            .collect()
    });
    results.sort_by_key(|(c, _)| *c);
    results.into_iter().map(|(_, r)| r).collect()
}

/// A standard normal draw (Box–Muller), so the simulation needs only `rand`.
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn chunks_are_disjoint_and_reproducible() {
        let mut a = chunk_rng(7, 1, 0);
        let mut b = chunk_rng(7, 1, 1);
        let mut a2 = chunk_rng(7, 1, 0);
        let (x, y) = (a.next_u64(), b.next_u64());
        assert_ne!(x, y);
        assert_eq!(x, a2.next_u64());
        assert_ne!(chunk_rng(7, 2, 0).next_u64(), x);
    }

    #[test]
    fn run_chunks_keeps_order() {
        assert_eq!(run_chunks(10, 3, |c| c * 2), (0..10).map(|c| c * 2).collect::<Vec<_>>());
        assert!(run_chunks(0, 4, |c| c).is_empty());
    }

    #[test]
    fn stream_ids_differ() {
        assert_ne!(stream_id(&["a", "bc"]), stream_id(&["ab", "c"]));
        assert_eq!(stream_id(&["m", "x"]), stream_id(&["m", "x"]));
    }
}
