//! Benchmarks of the statistics module.
//!
//! `randomization_10_pairs_4_metrics` is the speed target of the comparison layer: a
//! Monte Carlo randomization test with 10,000 permutations for 10 systems against a baseline
//! on 4 metrics over 10,000 queries (40 comparisons), expected under 5 s on 2 cores.
//! Run with `cargo bench --bench stats`.

use clirlab::stats::{
    CompareOptions, Correction, RandomizationOptions, TestKind, compare, ptukey, randomization_test, wilcoxon,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

type PerSystem = BTreeMap<String, BTreeMap<String, f64>>;

/// Four metrics of 11 systems over `queries` queries; two metrics are discrete like P@10.
fn synthetic(queries: usize) -> BTreeMap<String, PerSystem> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ids: Vec<String> = (0..queries).map(|q| format!("q{q}")).collect();
    let mut metrics = BTreeMap::new();
    for (m, metric) in ["ndcg@10", "map", "p@10", "recall@100"].iter().enumerate() {
        let mut per_system = PerSystem::new();
        let base: Vec<f64> = (0..queries).map(|_| rng.r#gen::<f64>()).collect();
        for s in 0..11 {
            let shift = 0.002 * s as f64;
            let values = ids
                .iter()
                .zip(&base)
                .map(|(q, b)| {
                    let v = (b + shift + 0.1 * (rng.r#gen::<f64>() - 0.5)).clamp(0.0, 1.0);
                    // Metrics 2 and 3 take tenths only, so ties with the observed sum occur.
                    let v = if m >= 2 { (v * 10.0).round() / 10.0 } else { v };
                    (q.clone(), v)
                })
                .collect();
            per_system.insert(format!("sys{s:02}"), values);
        }
        metrics.insert(metric.to_string(), per_system);
    }
    metrics
}

fn randomization_target(c: &mut Criterion) {
    let data = synthetic(10_000);
    let opts = CompareOptions {
        test: TestKind::Randomization,
        correction: Correction::Holm,
        permutations: 10_000,
        ..Default::default()
    };
    let mut group = c.benchmark_group("compare");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("randomization_10_pairs_4_metrics_10k_queries_10k_perms", |b| {
        b.iter(|| {
            let rows: usize = data
                .iter()
                .map(|(metric, per_system)| compare(per_system, metric, "sys00", &opts).unwrap().len())
                .sum();
            assert_eq!(rows, 40);
            black_box(rows)
        })
    });
    group.finish();
}

fn small_tests(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x: Vec<f64> = (0..24).map(|_| rng.r#gen::<f64>()).collect();
    let y: Vec<f64> = x.iter().map(|v| v + 0.05 * (rng.r#gen::<f64>() - 0.3)).collect();
    c.bench_function("randomization_exact_n24", |b| {
        b.iter(|| randomization_test(black_box(&x), black_box(&y), &RandomizationOptions::default()).unwrap())
    });
    let xl: Vec<f64> = (0..10_000).map(|_| rng.r#gen::<f64>()).collect();
    let yl: Vec<f64> = xl.iter().map(|v| v + 0.1 * (rng.r#gen::<f64>() - 0.48)).collect();
    c.bench_function("wilcoxon_n10000", |b| {
        b.iter(|| wilcoxon(black_box(&xl), black_box(&yl), &Default::default()).unwrap())
    });
    c.bench_function("ptukey_k3_df38", |b| b.iter(|| ptukey(black_box(3.5), 3, 38.0)));
}

criterion_group!(benches, randomization_target, small_tests);
criterion_main!(benches);
