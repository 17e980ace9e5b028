//! Parse + evaluate a 100,000-topic x 100-document run (map, ndcg_cut_10, recip_rank, recall_100).
//! `CARGO_BUILD_JOBS=1 cargo bench --bench eval`

#[path = "../../tests/it/common/synthetic.rs"]
mod synthetic;

use std::time::Duration;

use clirlab::eval::{EvalOptions, Qrels, Run, evaluate, parse_measures};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (qrels_path, run_path) = synthetic::write_synthetic(dir.path(), 100_000, 100, 42);
    let measures = parse_measures(&["map", "ndcg_cut.10", "recip_rank", "recall.100"]).unwrap();
    let opts = EvalOptions::default();

    let mut group = c.benchmark_group("100k_topics_x_100_docs");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("parse_and_evaluate", |b| {
        b.iter(|| {
            let qrels = Qrels::from_path(&qrels_path).unwrap();
            let run = Run::from_path(&run_path).unwrap();
            evaluate(&qrels, &run, &measures, &opts).unwrap()
        })
    });
    group.bench_function("parse_run", |b| b.iter(|| Run::from_path(&run_path).unwrap()));
    let qrels = Qrels::from_path(&qrels_path).unwrap();
    let run = Run::from_path(&run_path).unwrap();
    group.bench_function("evaluate", |b| {
        b.iter(|| evaluate(&qrels, &run, &measures, &opts).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
