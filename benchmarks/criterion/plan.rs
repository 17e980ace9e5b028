//! Cost of planning a 10,000-cell grid and of checking the resume state of 10,000 finished
//! cells (target: each under 1 s on 2 cores): `cargo bench --bench plan`.

use clirlab::grid;
use clirlab::run::{CellStatus, cell_state};
use clirlab::spec as config;
use criterion::{Criterion, criterion_group, criterion_main};

const GRID: &str = "name: big
ablations:
  train.lr: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01]
  train.steps: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
  model.temperature: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]
  train.batch_size: [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
stats:
  baseline: {train.lr: 0.001, train.steps: 10, model.temperature: 0.01, train.batch_size: 2}
";

fn plan_and_resume(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, GRID).unwrap();
    let loaded = config::load(&file, &[]).unwrap();
    let cells = grid::expand(&loaded).unwrap();
    assert_eq!(cells.len(), 10_000);

    // A finished sweep: every cell has a result.json for its id (the fields resume reads).
    let results = dir.path().join("results");
    for cell in &cells {
        let cell_dir = results.join("cells").join(&cell.id);
        std::fs::create_dir_all(&cell_dir).unwrap();
        std::fs::write(cell_dir.join("result.json"), finished_result(&cell.id)).unwrap();
    }
    assert_eq!(cell_state(&results, &cells[0].id).0, CellStatus::Done);

    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    group.bench_function("plan_10000_cells", |b| b.iter(|| grid::expand(&loaded).unwrap().len()));
    group.bench_function("resume_state_10000_finished_cells", |b| {
        b.iter(|| {
            cells
                .iter()
                .filter(|c| cell_state(&results, &c.id).0 == CellStatus::Done)
                .count()
        })
    });
    group.finish();
}

/// A minimal but complete `result.json`.
fn finished_result(id: &str) -> String {
    serde_json::json!({
        "id": id, "variant": "v", "seed": 1, "schedule_name": "constant", "dataset": "synthetic",
        "synthetic": true, "means": {}, "queries": 0, "final_loss": 0.0, "kept_step": 0,
        "best_validation_ndcg10": null, "train_seconds": 0.0, "total_seconds": 0.0,
        "provenance": {"clirlab_version": "0", "git_commit": null, "git_dirty": null, "git_diff_hash": null,
            "host": "h", "device": "cpu", "threads": 1, "started_unix": 0, "seed": 1, "pid": 1,
            "ended_unix": 0, "peak_memory_kib": null}
    })
    .to_string()
}

criterion_group!(benches, plan_and_resume);
criterion_main!(benches);
