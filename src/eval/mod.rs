//! Retrieval evaluation with trec_eval 9.x semantics: documents ranked by score descending,
//! ties broken by document id descending (the run's rank column is ignored); a judgment is
//! relevant when its grade is ≥ `rel_level`; graded nDCG uses the grade as gain.

pub mod cell;

use anyhow::{Result, bail};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// Relevance judgments: topic → document → grade.
#[derive(Debug, Clone, Default)]
pub struct Qrels {
    topics: BTreeMap<String, HashMap<String, i32>>,
}

impl Qrels {
    pub fn insert(&mut self, topic: &str, doc: &str, relevance: i32) {
        self.topics
            .entry(topic.to_string())
            .or_default()
            .insert(doc.to_string(), relevance);
    }
}

/// A ranked run: topic → (document, score).
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub name: String,
    topics: BTreeMap<String, Vec<(String, f64)>>,
}

fn trec_order(a: &(String, f64), b: &(String, f64)) -> Ordering {
    b.1.partial_cmp(&a.1)
        .unwrap_or(Ordering::Equal)
        .then_with(|| b.0.cmp(&a.0))
}

impl Run {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            topics: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, topic: &str, doc: &str, score: f64) {
        self.topics
            .entry(topic.to_string())
            .or_default()
            .push((doc.to_string(), score));
    }

    /// Standard TREC run lines (`qid Q0 docno rank score tag`), ranks in trec_eval's order.
    pub fn write_trec(&self, out: &mut impl Write) -> Result<()> {
        for (topic, docs) in &self.topics {
            let mut docs = docs.clone();
            docs.sort_by(trec_order);
            for (rank, (doc, score)) in docs.iter().enumerate() {
                writeln!(out, "{topic} Q0 {doc} {} {score:.6} {}", rank + 1, self.name)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalOptions {
    /// `-c`: judged topics missing from the run count as 0.
    pub average_complete: bool,
    /// `-M`: only the first N documents of each topic count.
    pub max_ret: Option<usize>,
    /// `-l`: lowest grade that counts as relevant.
    pub rel_level: i32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            average_complete: false,
            max_ret: None,
            rel_level: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    Map,
    RecipRank,
    NdcgCut(usize),
    Recall(usize),
}

impl Measure {
    pub fn name(&self) -> String {
        match self {
            Measure::Map => "map".into(),
            Measure::RecipRank => "recip_rank".into(),
            Measure::NdcgCut(k) => format!("ndcg_cut_{k}"),
            Measure::Recall(k) => format!("recall_{k}"),
        }
    }
}

/// Parses trec_eval measure names: `map`, `recip_rank`, `ndcg_cut.10,20`, `recall.100`.
pub fn parse_measures(specs: &[String]) -> Result<Vec<Measure>> {
    let mut out = Vec::new();
    for spec in specs {
        let (base, params) = match spec.split_once('.') {
            Some((b, p)) => (b, Some(p)),
            None => (spec.as_str(), None),
        };
        let cutoffs = |default: &[usize]| -> Result<Vec<usize>> {
            match params {
                None => Ok(default.to_vec()),
                Some(p) => p
                    .split(',')
                    .map(|k| {
                        k.trim()
                            .parse::<usize>()
                            .map_err(|_| anyhow::anyhow!("measure `{spec}`: expected cut-offs like 10,20"))
                    })
                    .collect(),
            }
        };
        match base {
            "map" => out.push(Measure::Map),
            "recip_rank" => out.push(Measure::RecipRank),
            "ndcg_cut" => out.extend(
                cutoffs(&[5, 10, 15, 20, 30, 100, 200, 500, 1000])?
                    .into_iter()
                    .map(Measure::NdcgCut),
            ),
            "recall" => out.extend(
                cutoffs(&[5, 10, 15, 20, 30, 100, 200, 500, 1000])?
                    .into_iter()
                    .map(Measure::Recall),
            ),
            other => match other.rsplit_once('_') {
                Some(("ndcg_cut", k)) if k.parse::<usize>().is_ok() => out.push(Measure::NdcgCut(k.parse()?)),
                Some(("recall", k)) if k.parse::<usize>().is_ok() => out.push(Measure::Recall(k.parse()?)),
                _ => bail!("unknown measure `{spec}`: expected map, recip_rank, ndcg_cut.K or recall.K"),
            },
        }
    }
    Ok(out)
}

/// Per-query values of each measure.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    per_query: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Evaluation {
    /// Values of `measure` (trec_eval name) by query id.
    pub fn per_query(&self, measure: &str) -> Option<BTreeMap<String, f64>> {
        self.per_query.get(measure).cloned()
    }

    pub fn mean(&self, measure: &str) -> Option<f64> {
        let v = self.per_query.get(measure)?;
        Some(v.values().sum::<f64>() / v.len().max(1) as f64)
    }
}

pub fn evaluate(qrels: &Qrels, run: &Run, measures: &[Measure], opts: &EvalOptions) -> Evaluation {
    let mut eval = Evaluation::default();
    for (topic, judged) in &qrels.topics {
        let ranked = match run.topics.get(topic) {
            Some(docs) => {
                let mut docs = docs.clone();
                docs.sort_by(trec_order);
                if let Some(m) = opts.max_ret {
                    docs.truncate(m);
                }
                docs
            }
            None if opts.average_complete => Vec::new(),
            None => continue,
        };
        let grade = |doc: &str| judged.get(doc).copied().unwrap_or(0);
        let num_rel = judged.values().filter(|g| **g >= opts.rel_level).count();
        for m in measures {
            let value = match m {
                Measure::Map => {
                    let (mut hits, mut sum) = (0usize, 0.0);
                    for (i, (doc, _)) in ranked.iter().enumerate() {
                        if grade(doc) >= opts.rel_level {
                            hits += 1;
                            sum += hits as f64 / (i + 1) as f64;
                        }
                    }
                    if num_rel == 0 { 0.0 } else { sum / num_rel as f64 }
                }
                Measure::RecipRank => ranked
                    .iter()
                    .position(|(doc, _)| grade(doc) >= opts.rel_level)
                    .map(|i| 1.0 / (i + 1) as f64)
                    .unwrap_or(0.0),
                Measure::Recall(k) => {
                    let hits = ranked
                        .iter()
                        .take(*k)
                        .filter(|(doc, _)| grade(doc) >= opts.rel_level)
                        .count();
                    if num_rel == 0 {
                        0.0
                    } else {
                        hits as f64 / num_rel as f64
                    }
                }
                Measure::NdcgCut(k) => {
                    let dcg: f64 = ranked
                        .iter()
                        .take(*k)
                        .enumerate()
                        .map(|(i, (doc, _))| grade(doc).max(0) as f64 / ((i + 2) as f64).log2())
                        .sum();
                    let mut gains: Vec<i32> = judged.values().copied().filter(|g| *g > 0).collect();
                    gains.sort_unstable_by(|a, b| b.cmp(a));
                    let ideal: f64 = gains
                        .iter()
                        .take(*k)
                        .enumerate()
                        .map(|(i, g)| *g as f64 / ((i + 2) as f64).log2())
                        .sum();
                    if ideal > 0.0 { dcg / ideal } else { 0.0 }
                }
            };
            eval.per_query.entry(m.name()).or_default().insert(topic.clone(), value);
        }
    }
    eval
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's full-precision means of trec_eval's own test files.
    #[test]
    fn matches_trec_eval_reference_means() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/trec_eval");
        let mut qrels = Qrels::default();
        for line in std::fs::read_to_string(format!("{dir}/qrels.test")).unwrap().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            qrels.insert(f[0], f[2], f[3].parse().unwrap());
        }
        let mut run = Run::new("r");
        for line in std::fs::read_to_string(format!("{dir}/results.test")).unwrap().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            run.push(f[0], f[2], f[4].parse().unwrap());
        }
        let m = parse_measures(&[
            "map".into(),
            "ndcg_cut.10".into(),
            "recip_rank".into(),
            "recall.100".into(),
        ])
        .unwrap();
        let e = evaluate(&qrels, &run, &m, &EvalOptions::default());
        let close = |name: &str, want: f64| {
            assert!(
                (e.mean(name).unwrap() - want).abs() < 1e-12,
                "{name}: {:?}",
                e.mean(name)
            )
        };
        close("map", 0.17854506039656948);
        close("ndcg_cut_10", 0.30157719921022785);
        close("recip_rank", 0.4064327485380117);
        close("recall_100", 0.49799258406853336);
        let e10 = evaluate(
            &qrels,
            &run,
            &m,
            &EvalOptions {
                max_ret: Some(10),
                ..Default::default()
            },
        );
        assert!((e10.mean("recip_rank").unwrap() - 0.3888888888888889).abs() < 1e-12);
    }
}
