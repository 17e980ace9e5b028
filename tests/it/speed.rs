//! Wall time of parsing + evaluating a 100,000-topic x 100-document run (ignored by default):
//! `cargo test --release --test it speed:: -- --ignored --nocapture`

use crate::common::synthetic;

use std::time::Instant;

use clirlab::eval::{EvalOptions, Qrels, Run, evaluate, parse_measures};

/// CPU time used by this process so far (user + system, all threads), where Linux reports it:
/// on a shared machine it tells what wall time the work would take on idle cores.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields after the command name start at the 3rd; utime and stime are the 14th and 15th,
    // in ticks of 1/100 s.
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[test]
#[ignore = "timing; run in release mode"]
fn parse_and_evaluate_100k_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (qrels_path, run_path) = synthetic::write_synthetic(dir.path(), 100_000, 100, 42);
    let measures = parse_measures(&["map", "ndcg_cut.10", "recip_rank", "recall.100"]).unwrap();
    let size = std::fs::metadata(&run_path).unwrap().len();
    println!(
        "run file: {:.1} MB, rayon threads: {}",
        size as f64 / 1e6,
        rayon::current_num_threads()
    );
    for round in 1..=5 {
        let cpu = cpu_seconds();
        let start = Instant::now();
        let qrels = Qrels::from_path(&qrels_path).unwrap();
        let parsed_qrels = start.elapsed();
        let run = Run::from_path(&run_path).unwrap();
        let parsed_run = start.elapsed();
        let evaluation = evaluate(&qrels, &run, &measures, &EvalOptions::default()).unwrap();
        let total = start.elapsed();
        let cpu = cpu
            .zip(cpu_seconds())
            .map(|(before, after)| format!(", {:.2} s CPU", after - before));
        assert_eq!(evaluation.num_q(), 100_000);
        println!(
            "round {round}: parse+evaluate {:.3} s wall{} (qrels {:.3} s, run {:.3} s, evaluate {:.3} s); map {:.4}",
            total.as_secs_f64(),
            cpu.unwrap_or_default(),
            parsed_qrels.as_secs_f64(),
            (parsed_run - parsed_qrels).as_secs_f64(),
            (total - parsed_run).as_secs_f64(),
            evaluation.mean("map").unwrap()
        );
    }
}
