//! The long A/A calibration of the seed-aware test (the CI test in `crates/stats/src/calibration.rs`
//! runs 2,000 nulls per condition): every calibrated and limit condition with TRIALS nulls
//! (default 20,000), the false-positive rate at α = 0.05 of the seed-aware test and of the
//! query-level paired t on seed means, as the Markdown table of `docs/statistics.md`.
//!
//! ```text
//! cargo run --release --example calibration -- [TRIALS]
//! ```

use anyhow::{Context, Result};
use clirlab::stats::calibration::{calibrated_conditions, limit_conditions, rejection_rates};

fn main() -> Result<()> {
    let trials: usize = match std::env::args().nth(1) {
        Some(t) => t
            .parse()
            .with_context(|| format!("TRIALS: expected a whole number of nulls, found `{t}`"))?,
        None => 20_000,
    };
    println!("| condition | seed-aware | query-level |\n| --- | --- | --- |");
    let limits = limit_conditions().into_iter().map(|(n, c)| (n, c, true));
    for (i, (name, c, limit)) in calibrated_conditions()
        .into_iter()
        .map(|(n, c)| (n, c, false))
        .chain(limits)
        .enumerate()
    {
        let (seeds, queries) = rejection_rates(&c, 0.0, trials, 0.05, 9000 + i as u64)?;
        let mark = if limit { "**limit**: " } else { "" };
        println!("| {mark}{name}: {} | {seeds:.4} | {queries:.4} |", c.describe());
    }
    Ok(())
}
