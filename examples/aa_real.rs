//! A/A calibration of the seed-aware test on real per-query scores: the
//! false-positive rate at α = 0.05 of `stats::seed_test` and of the query-level paired t on
//! seed means, over null comparisons simulated from a finished experiment's cells.
//!
//! ```text
//! cargo run --release --example aa_real -- RESULTS_DIR/EXPERIMENT [TASK] [METRIC] [TRIALS]
//! ```
//!
//! From every grid point with at least 2 seeds (cells `<grid point>_s<seed>_<hash>`) on TASK
//! (default `translation`) and METRIC (default `nDCG@10`), it takes the per-query seed means
//! as the true scores of one configuration, and the within-grid-point deviations
//! y(s, q) − ȳ(·, q) (scaled to unit-seed variance) as the real per-query noise. A null
//! comparison draws two systems of that same configuration, 3 seeds each: every (seed, query)
//! gets a noise value resampled from the real ones of that query's grid point, every seed a
//! shift v ~ N(0, σ_seed) shared by its queries, clamped to [0, 1] like the metric. σ_seed runs
//! over 0, the estimated real between-seed sd, and twice it.

use anyhow::{Context, Result, bail};
use clirlab::stats::{seed_components, seed_test};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Per grid point: query → the values of its seeds.
type Table = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

fn read(dir: &Path, task: &str, metric: &str) -> Result<Table> {
    let mut table = Table::new();
    let cells = dir.join("cells");
    for entry in std::fs::read_dir(&cells).with_context(|| format!("reading {}", cells.display()))? {
        let path = entry?.path();
        let metrics = path.join("metrics.csv");
        if !metrics.is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // `<grid point>_s<seed>_<hash>`: the grid point is what precedes the seed.
        let Some(point) = name.rsplitn(3, '_').nth(2).map(str::to_string) else {
            continue;
        };
        let mut reader = csv::Reader::from_path(&metrics)?;
        for record in reader.records() {
            let r = record?;
            if &r[1] == task && &r[3] == metric {
                let value: f64 = r[4]
                    .parse()
                    .with_context(|| format!("{}: value {}", metrics.display(), &r[4]))?;
                table
                    .entry(point.clone())
                    .or_default()
                    .entry(format!("{}/{}", &r[0], &r[2]))
                    .or_default()
                    .push(value);
            }
        }
    }
    Ok(table)
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        bail!("usage: aa_real RESULTS_DIR/EXPERIMENT [TASK] [METRIC] [TRIALS]");
    };
    let task = args.get(1).map_or("translation", String::as_str);
    let metric = args.get(2).map_or("nDCG@10", String::as_str);
    let trials: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let table = read(Path::new(dir), task, metric)?;
    // Grid points with at least 2 seeds on every query: truth and noise per query.
    let mut truth = Vec::new();
    let mut noise: Vec<Vec<f64>> = Vec::new();
    let mut seed_var = Vec::new();
    for (point, queries) in &table {
        let seeds = queries.values().map(Vec::len).min().unwrap_or(0);
        if seeds < 2 || queries.values().any(|v| v.len() != seeds) {
            continue;
        }
        let rows: Vec<Vec<f64>> = (0..seeds).map(|s| queries.values().map(|v| v[s]).collect()).collect();
        let c = seed_components(&rows)?;
        // A constant grid point (e.g. zero-shot, the same for every seed) has no noise to lend.
        if c.ms_residual == 0.0 && c.ms_seed == 0.0 {
            continue;
        }
        eprintln!(
            "{point}: {} seeds x {} queries, seed-mean sd {:.5}, sigma_e {:.4}, sigma_v {:.5}",
            seeds,
            c.queries,
            c.seed_mean_sd,
            c.var_residual.sqrt(),
            c.var_seed.sqrt()
        );
        seed_var.push(c.var_seed);
        // Deviations from the query mean, scaled by √(S/(S − 1)) to one seed's variance.
        let scale = (seeds as f64 / (seeds as f64 - 1.0)).sqrt();
        for v in queries.values() {
            let m = v.iter().sum::<f64>() / seeds as f64;
            truth.push(m);
            noise.push(v.iter().map(|x| (x - m) * scale).collect());
        }
    }
    if truth.is_empty() {
        bail!("{dir}: no grid point with at least 2 seeds on task {task}, metric {metric}");
    }
    let real_sigma = (seed_var.iter().sum::<f64>() / seed_var.len() as f64).sqrt();
    let n = truth.len();
    println!(
        "{n} (grid point, query) rows from {} grid points; real sigma_seed {real_sigma:.5}",
        seed_var.len()
    );
    println!("| sigma_seed | seed-aware | query-level paired t on seed means |");
    println!("| --- | --- | --- |");
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for sigma in [0.0, real_sigma, 2.0 * real_sigma] {
        let (mut seeds_fp, mut queries_fp) = (0usize, 0usize);
        let draw = |rng: &mut ChaCha8Rng| -> Vec<Vec<f64>> {
            (0..3)
                .map(|_| {
                    let v = normal(rng) * sigma;
                    (0..n)
                        .map(|q| {
                            let e = noise[q][rng.gen_range(0..noise[q].len())];
                            (truth[q] + v + e).clamp(0.0, 1.0)
                        })
                        .collect()
                })
                .collect()
        };
        for _ in 0..trials {
            let a = draw(&mut rng);
            let b = draw(&mut rng);
            let mean_rows = |rows: &[Vec<f64>]| -> Vec<f64> {
                (0..n).map(|q| rows.iter().map(|r| r[q]).sum::<f64>() / 3.0).collect()
            };
            seeds_fp += usize::from(seed_test(&a, &b, 0.95)?.p_value < 0.05);
            queries_fp += usize::from(seed_test(&[mean_rows(&a)], &[mean_rows(&b)], 0.95)?.p_value < 0.05);
        }
        println!(
            "| {sigma:.5} | {:.4} | {:.4} |",
            seeds_fp as f64 / trials as f64,
            queries_fp as f64 / trials as f64
        );
    }
    Ok(())
}
