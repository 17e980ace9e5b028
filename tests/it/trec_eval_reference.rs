//! Byte-for-byte comparison with trec_eval 9.0.8's own test outputs, restricted to the measures
//! implemented here, plus the full-precision means agreed by other evaluators.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clirlab::eval::{EvalOptions, Evaluation, Qrels, Run, evaluate, parse_measures};

fn data(file: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/trec_eval")).join(file)
}

/// trec_eval measure families of `all_trec` that clirlab does not implement.
const UNIMPLEMENTED: [&str; 14] = [
    "relstring",
    "infAP",
    "gm_bpref",
    "Rprec_mult",
    "utility",
    "11pt_avg",
    "binG",
    "G",
    "ndcg_rel",
    "Rndcg",
    "relative_P",
    "set_relative_P",
    "set_map",
    "num_nonrel_judged_ret",
];

/// `P_5` -> `P`, `iprec_at_recall_0.10` -> `iprec_at_recall`, `set_F` -> `set_F`.
fn family(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((family, suffix)) if suffix.bytes().all(|b| b.is_ascii_digit() || b == b'.') => family,
        _ => name,
    }
}

fn measure_name(line: &str) -> &str {
    line.split('\t').next().unwrap().trim_end()
}

/// Evaluates as trec_eval would with `args` and compares with `expected_file`; returns the
/// families skipped from the expected output.
fn check(expected_file: &str, qrels: &str, run: &str, measures: &[&str], opts: EvalOptions) -> BTreeSet<String> {
    let qrels = Qrels::from_path(&data(qrels)).unwrap();
    let run = Run::from_path(&data(run)).unwrap();
    let measures = parse_measures(measures).unwrap();
    // Every reference output except out.test was made with -q.
    let per_query = expected_file != "out.test";
    let ours = evaluate(&qrels, &run, &measures, &opts)
        .unwrap()
        .to_trec_eval_string(per_query);
    let expected = std::fs::read_to_string(data(expected_file)).unwrap();
    let implemented: BTreeSet<&str> = ours.lines().map(measure_name).collect();
    let mut skipped = BTreeSet::new();
    let mut kept = String::new();
    for line in expected.lines() {
        if implemented.contains(measure_name(line)) {
            kept.push_str(line);
            kept.push('\n');
        } else {
            skipped.insert(family(measure_name(line)).to_string());
        }
    }
    if kept != ours {
        let (expected_lines, our_lines): (Vec<_>, Vec<_>) = (kept.lines().collect(), ours.lines().collect());
        let first = (0..).find(|&i| expected_lines.get(i) != our_lines.get(i)).unwrap();
        panic!(
            "{expected_file}: first difference at line {}:\nexpected: {:?}\nours:     {:?}\n({} expected lines, {} ours)",
            first + 1,
            expected_lines.get(first),
            our_lines.get(first),
            expected_lines.len(),
            our_lines.len()
        );
    }
    skipped
}

fn all_unimplemented_except(absent: &[&str]) -> BTreeSet<String> {
    UNIMPLEMENTED
        .iter()
        .filter(|f| !absent.contains(f))
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn official_default_measures() {
    let skipped = check(
        "out.test",
        "qrels.test",
        "results.test",
        &["official"],
        EvalOptions::default(),
    );
    assert_eq!(skipped, BTreeSet::new());
}

#[test]
fn all_trec_per_query() {
    let skipped = check(
        "out.test.aq",
        "qrels.test",
        "results.test",
        &["all_trec"],
        EvalOptions::default(),
    );
    assert_eq!(skipped, all_unimplemented_except(&[]));
}

#[test]
fn all_trec_complete_with_missing_topic() {
    let opts = EvalOptions {
        average_complete: true,
        ..EvalOptions::default()
    };
    let skipped = check("out.test.aqc", "qrels.test", "results.trunc", &["all_trec"], opts);
    assert_eq!(skipped, all_unimplemented_except(&[]));
}

#[test]
fn all_trec_complete_with_max_retrieved() {
    let opts = EvalOptions {
        average_complete: true,
        max_ret: Some(100),
        ..EvalOptions::default()
    };
    let skipped = check("out.test.aqcM", "qrels.test", "results.trunc", &["all_trec"], opts);
    assert_eq!(skipped, all_unimplemented_except(&[]));
}

#[test]
fn all_trec_graded_with_relevance_level() {
    let opts = EvalOptions {
        rel_level: 2,
        ..EvalOptions::default()
    };
    let skipped = check("out.test.aql", "qrels.rel_level", "results.test", &["all_trec"], opts);
    assert_eq!(skipped, all_unimplemented_except(&[]));
}

fn eval(measures: &[&str], opts: EvalOptions) -> Evaluation {
    let qrels = Qrels::from_path(&data("qrels.test")).unwrap();
    let run = Run::from_path(&data("results.test")).unwrap();
    evaluate(&qrels, &run, &parse_measures(measures).unwrap(), &opts).unwrap()
}

#[test]
fn full_precision_means_agree_with_other_evaluators() {
    let e = eval(
        &["map", "ndcg_cut.10", "recip_rank", "recall.100"],
        EvalOptions::default(),
    );
    let close = |name: &str, expected: f64| {
        let got = e.mean(name).unwrap();
        assert!((got - expected).abs() <= 1e-12, "{name}: {got} vs {expected}");
    };
    close("map", 0.17854506039656948);
    close("ndcg_cut_10", 0.30157719921022785);
    close("recip_rank", 0.4064327485380117);
    close("recall_100", 0.49799258406853336);
    let top10 = eval(
        &["recip_rank"],
        EvalOptions {
            max_ret: Some(10),
            ..EvalOptions::default()
        },
    );
    let rr10 = top10.mean("recip_rank").unwrap();
    assert!((rr10 - 0.3888888888888889).abs() <= 1e-12, "{rr10}");
}
