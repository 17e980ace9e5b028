//! The per-query metrics every clirlab cell reports, as trec_eval measures.

use super::{EvalOptions, Qrels, Run, evaluate, parse_measures};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// Report name, trec_eval measure as given to `-m`, its output name, `-M` cut-off.
pub const CELL_METRICS: &[(&str, &str, &str, Option<usize>)] = &[
    ("nDCG@10", "ndcg_cut.10", "ndcg_cut_10", None),
    ("RR@10", "recip_rank", "recip_rank", Some(10)),
    ("R@100", "recall.100", "recall_100", None),
    ("AP", "map", "map", None),
];

/// Per-query values of [`CELL_METRICS`], keyed by report name then query id. Judged queries
/// that retrieved nothing are absent here; callers count them as 0, as `trec_eval -c` does.
pub fn cell_metrics(qrels: &Qrels, run: &Run) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut out = BTreeMap::new();
    for (name, measure, output, cutoff) in CELL_METRICS {
        let opts = EvalOptions {
            max_ret: *cutoff,
            ..EvalOptions::default()
        };
        let measures = parse_measures(&[measure.to_string()])?;
        let evaluation = evaluate(qrels, run, &measures, &opts)?;
        let values = evaluation
            .per_query(output)
            .context("measure missing from evaluation")?;
        out.insert(
            name.to_string(),
            values.iter().map(|(q, v)| (q.to_string(), v)).collect(),
        );
    }
    Ok(out)
}
