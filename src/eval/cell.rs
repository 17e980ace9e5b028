//! The per-query metrics every clirlab cell reports, as trec_eval measures.

use super::{EvalOptions, Qrels, Run, evaluate, parse_measures};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// Report name, trec_eval measure, `-M` cut-off.
pub const CELL_METRICS: &[(&str, &str, Option<usize>)] = &[
    ("nDCG@10", "ndcg_cut_10", None),
    ("RR@10", "recip_rank", Some(10)),
    ("R@100", "recall_100", None),
    ("AP", "map", None),
];

/// Per-query values of [`CELL_METRICS`], keyed by report name then query id. Judged queries
/// that retrieved nothing are absent here; callers count them as 0, as `trec_eval -c` does.
pub fn cell_metrics(qrels: &Qrels, run: &Run) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut out = BTreeMap::new();
    for (name, measure, cutoff) in CELL_METRICS {
        let opts = EvalOptions {
            max_ret: *cutoff,
            ..EvalOptions::default()
        };
        let measures = parse_measures(&[measure.to_string()])?;
        let evaluation = evaluate(qrels, run, &measures, &opts);
        out.insert(
            name.to_string(),
            evaluation
                .per_query(measure)
                .context("measure missing from evaluation")?,
        );
    }
    Ok(out)
}
