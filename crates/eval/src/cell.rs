//! The per-query metrics every clirlab cell reports, as trec_eval measures, and the name and
//! direction of the one that is not a trec_eval measure: the language bias of the multilingual
//! setting ([`RANK_DISTANCE`], computed by `retrieval::settings`).

use super::{EvalOptions, Qrels, Run, evaluate, parse_measures};
use crate::error::Result;
use std::collections::BTreeMap;

/// The four metrics of a cell. They order as their report names sort (`AP`, `R@100`,
/// `RR@10`, `nDCG@10`), the order of the rows of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellMetric {
    /// Average precision (`map`).
    Ap,
    /// Recall at 100 (`recall.100`).
    R100,
    /// Reciprocal rank of the first relevant document in the top 10 (`recip_rank`, `-M 10`).
    Rr10,
    /// nDCG at 10 (`ndcg_cut.10`).
    Ndcg10,
}

impl CellMetric {
    /// Every cell metric, in the report's order.
    pub const ALL: [CellMetric; 4] = [CellMetric::Ndcg10, CellMetric::Rr10, CellMetric::R100, CellMetric::Ap];

    /// Its name in reports, `metrics.csv` and `result.json`.
    pub const fn name(self) -> &'static str {
        match self {
            CellMetric::Ndcg10 => "nDCG@10",
            CellMetric::Rr10 => "RR@10",
            CellMetric::R100 => "R@100",
            CellMetric::Ap => "AP",
        }
    }

    /// The trec_eval measure, as given to `-m`.
    pub const fn measure(self) -> &'static str {
        match self {
            CellMetric::Ndcg10 => "ndcg_cut.10",
            CellMetric::Rr10 => "recip_rank",
            CellMetric::R100 => "recall.100",
            CellMetric::Ap => "map",
        }
    }

    /// The trec_eval output name.
    pub const fn output(self) -> &'static str {
        match self {
            CellMetric::Ndcg10 => "ndcg_cut_10",
            CellMetric::Rr10 => "recip_rank",
            CellMetric::R100 => "recall_100",
            CellMetric::Ap => "map",
        }
    }

    /// The `-M` cut-off of the evaluation, if any.
    pub const fn cutoff(self) -> Option<usize> {
        match self {
            CellMetric::Rr10 => Some(10),
            _ => None,
        }
    }
}

/// The language-bias metric of the multilingual setting (rank distance, Elmahdy et al. 2024):
/// per query, the mean |rank difference| of one relevant verse's versions in two languages.
/// Lower is better (less biased), unlike every [`CellMetric`].
pub const RANK_DISTANCE: &str = "RD";

/// Whether a lower value of the metric named `name` is the better one.
pub fn lower_is_better(name: &str) -> bool {
    name == RANK_DISTANCE
}

/// The name of the task that holds one language's queries of `task` apart (`<lang>/<task>`):
/// the keys of a cell's means in `result.json`, and the per-language tasks of reports.
pub fn language_task(lang: &str, task: &str) -> String {
    format!("{lang}/{task}")
}

/// The order of task names in reports: each pooled task, then its [`language_task`]s by
/// language.
pub fn task_order(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((lang, task)) => (task, lang),
        None => (name, ""),
    }
}

impl std::fmt::Display for CellMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-query values of every [`CellMetric`], keyed by metric then query id. Judged queries
/// that retrieved nothing are absent here; callers count them as 0, as `trec_eval -c` does.
pub fn cell_metrics(qrels: &Qrels, run: &Run) -> Result<BTreeMap<CellMetric, BTreeMap<String, f64>>> {
    let mut out = BTreeMap::new();
    for metric in CellMetric::ALL {
        let opts = EvalOptions {
            max_ret: metric.cutoff(),
            ..EvalOptions::default()
        };
        let measures = parse_measures(&[metric.measure().to_string()])?;
        let evaluation = evaluate(qrels, run, &measures, &opts)?;
        let values = evaluation
            .per_query(metric.output())
            .expect("the evaluation holds the measure it was asked for");
        out.insert(metric, values.iter().map(|(q, v)| (q.to_string(), v)).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_order_as_their_names_sort() {
        let mut by_name: Vec<&str> = CellMetric::ALL.iter().map(|m| m.name()).collect();
        by_name.sort();
        let mut by_order = CellMetric::ALL.to_vec();
        by_order.sort();
        assert_eq!(by_order.iter().map(|m| m.name()).collect::<Vec<_>>(), by_name);
        assert_eq!(CellMetric::Ndcg10.to_string(), "nDCG@10");
    }
}
