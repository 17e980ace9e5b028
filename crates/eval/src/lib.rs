//! Retrieval evaluation with trec_eval 9.0.8 semantics and output.
//!
//! # Overview
//!
//! ```no_run
//! use std::path::Path;
//! use clirlab_eval::{evaluate, parse_measures, EvalOptions, Qrels, Run};
//!
//! let qrels = Qrels::from_path(Path::new("qrels.test"))?;
//! let run = Run::from_path(Path::new("results.test"))?;
//! let measures = parse_measures(&["map", "ndcg_cut.10", "recip_rank", "recall.100"])?;
//! let eval = evaluate(&qrels, &run, &measures, &EvalOptions::default())?;
//! print!("{}", eval.to_trec_eval_string(true)); // trec_eval -q -m ... output
//! let ndcg10 = eval.per_query("ndcg_cut_10").unwrap(); // per-topic values for statistics
//! for (topic, value) in ndcg10.iter() {
//!     println!("{topic} {value}");
//! }
//! println!("MAP {}", eval.mean("map").unwrap());
//! # Ok::<(), clirlab_eval::Error>(())
//! ```
//!
//! - [`Qrels`]: judgments, from a file (`qid iter docno rel`, exactly 4 fields) or built with
//!   [`Qrels::insert`].
//! - [`Run`]: ranked results, from a file (`qid Q0 docno rank score runid`; further fields are
//!   ignored) or built with [`Run::push`]; [`Run::write_trec`] writes it back with ranks 1..n.
//! - [`Measure`]s, usually from [`parse_measures`] with trec_eval's `-m` syntax: `map`, `P.5,10`,
//!   `ndcg_cut.10,20`, `official`, `all_trec`.
//! - [`evaluate`] returns an [`Evaluation`]: [`Evaluation::per_query`] (values keyed by topic,
//!   aligned slices), [`Evaluation::mean`] (the `all` value at full precision) and
//!   [`Evaluation::to_trec_eval_string`] (trec_eval's exact text).
//!
//! # Semantics (trec_eval 9.0.8)
//!
//! - A topic's documents are ranked by score descending, ties broken by document id descending
//!   (byte order); the rank column of a run file is ignored.
//! - Only topics with judgments are evaluated; run topics without judgments are ignored. Judged
//!   topics without results are skipped, unless [`EvalOptions::average_complete`] (`-c`): they
//!   then count in `num_q` and in every mean with value 0 (their relevant documents still count
//!   in the `num_rel` total; `gm_map` counts them at its 1e-5 floor) and appear as rows of
//!   [`Evaluation::per_query`] with 0, but are not printed per query.
//! - [`EvalOptions::rel_level`] (`-l`): a document is relevant when its grade is at least this.
//!   `ndcg` and `ndcg_cut` use the grade itself as gain (every positive grade, as trec_eval),
//!   with discount log2(rank + 1). Negative grades mark pooled but unjudged documents: `bpref`
//!   skips them like unjudged ones.
//! - [`EvalOptions::max_ret`] (`-M`): only the first N ranked documents of each topic count.
//! - `iprec_at_recall_x` turns recall level x into a number of relevant documents as trec_eval
//!   9.0.8 does, `(long) (x * R + 0.9)`, and reports the best precision from that point on.
//! - Cut-off measures treat missing ranks below the end of a short ranking as non-relevant
//!   (`P_k` divides by k). Topics with no relevant document get 0 for every ratio measure.
//! - Means are arithmetic over topics; `gm_map` is `exp(mean(ln(max(AP, 1e-5))))`; counts are
//!   summed.
//! - Output lines are `%-22s\t%s\t%6.4f` (counts as integers), per topic in byte order of topic
//!   ids, then `all`; measures in trec_eval's order regardless of the order requested.
//!
//! # Input handling
//!
//! Fields are separated by C whitespace (space, `\t`, `\r`, `\v`, `\f`); blank lines and lines
//! starting with `#` are skipped. Malformed lines are errors naming `file:line` and what was
//! expected; so are non-numeric or NaN scores, non-integer grades, a document judged twice for a
//! topic, and a document retrieved twice for a topic (naming both lines, the topic and the
//! document).
//!
//! # Performance
//!
//! Files are split into byte ranges parsed by parallel tasks with positional reads through small
//! buffers, so a large run is never held in memory whole. Document ids are copied into one byte
//! block per task and addressed by packed spans, with their hash computed once; lookups compare
//! hashes and touch the bytes only to confirm a match. A topic's documents are checked for
//! duplicates and ranked when the topic ends, while they are in cache. Evaluation runs in
//! parallel over topics and computes every measure in one pass over each ranking.
//!
//! # Differences from trec_eval
//!
//! - Only the measures listed in [`Measure`] exist; `all_trec` means those. Measures take no
//!   parameters besides cut-offs (no `set_F.0.5`, no `ndcg.1=3`).
//! - Several parameter lists for one measure family (`-m P.5 -m P.10`) are merged; trec_eval
//!   keeps the first. Recall levels must lie in [0, 1].
//! - Errors where trec_eval reads silently: non-numeric scores and grades (it reads 0), NaN
//!   scores, ids longer than 65,535 bytes.
//! - With `-M 0` trec_eval prints NaN for iprec_at_recall; this module reports 0.

pub mod cell;
mod compute;
mod error;
mod evaluation;
mod ids;
mod measure;
mod qrels;
mod run;
mod scan;
mod source;
mod systems;

use rayon::prelude::*;

pub use error::{Error, ParseError, Result};
pub use evaluation::{Evaluation, PerQuery};
pub use measure::{
    DEFAULT_CUTOFFS, DEFAULT_RECALL_LEVELS, DEFAULT_SUCCESS_CUTOFFS, Measure, all_trec, official, parse_measures,
};
pub use qrels::Qrels;
pub use run::Run;
pub use systems::{SystemTable, per_query_table};

use compute::{Scratch, missing_topic_row, topic_row};
use ids::Arena;
use measure::Plan;
use qrels::{TopicQrels, filter_bit};
use run::RunDoc;

/// Options of an evaluation, named after trec_eval's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// `-c`: average over all judged topics, counting topics missing from the run as 0.
    pub average_complete: bool,
    /// `-M N`: evaluate only the first N ranked documents of each topic.
    pub max_ret: Option<usize>,
    /// `-l N`: minimum grade of a relevant document (default 1).
    pub rel_level: i32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            average_complete: false,
            max_ret: None,
            rel_level: 1,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RowState {
    Skipped,
    Retrieved,
    Missing,
}

/// Evaluates `run` against `qrels`. Errors on invalid measures (e.g. a cut-off of 0) and, as
/// trec_eval does, when no judged topic has results.
pub fn evaluate(qrels: &Qrels, run: &Run, measures: &[Measure], opts: &EvalOptions) -> Result<Evaluation> {
    let plan = Plan::new(measures)?;
    let topics: Vec<_> = qrels.topics().collect();
    let stride = plan.columns.len().max(1);
    let mut rows = vec![0.0; topics.len() * stride];
    let mut states = vec![RowState::Skipped; topics.len()];
    let max_ret = opts.max_ret.unwrap_or(usize::MAX);
    let width = plan.columns.len();
    rows.par_chunks_mut(stride)
        .zip(states.par_iter_mut())
        .zip(topics.par_iter())
        .for_each_init(
            || (Scratch::default(), Vec::new()),
            |(scratch, sorted), ((row, state), (id, judgments))| match run.topic(id) {
                Some(topic) => {
                    let docs = topic.ranked(run.arena(), sorted);
                    judge(
                        &docs[..docs.len().min(max_ret)],
                        *judgments,
                        run.arena(),
                        &mut scratch.rels,
                    );
                    topic_row(&plan, opts.rel_level, *judgments, scratch, &mut row[..width]);
                    *state = RowState::Retrieved;
                }
                None if opts.average_complete => {
                    missing_topic_row(&plan, opts.rel_level, *judgments, scratch, &mut row[..width]);
                    *state = RowState::Missing;
                }
                None => {}
            },
        );
    if !states.contains(&RowState::Retrieved) {
        return Err(Error::Invalid(format!(
            "no judged topic has results in run {:?}",
            run.name()
        )));
    }
    let kept: Vec<usize> = (0..topics.len()).filter(|&r| states[r] != RowState::Skipped).collect();
    let mut values = Vec::with_capacity(kept.len() * width);
    for c in 0..width {
        values.extend(kept.iter().map(|&r| rows[r * stride + c]));
    }
    let mut evaluation = Evaluation {
        run_id: run.name().to_string(),
        show_runid: plan.runid,
        show_num_q: plan.num_q,
        names: plan.columns.iter().map(|c| c.name.clone()).collect(),
        kinds: plan.columns.iter().map(|c| c.stat.kind()).collect(),
        topics: kept.iter().map(|&r| topics[r].0.to_string()).collect(),
        retrieved: kept.iter().map(|&r| states[r] == RowState::Retrieved).collect(),
        values,
        summary: Vec::new(),
    };
    evaluation.summarize();
    Ok(evaluation)
}

/// The relevance of each ranked document, with trec_eval's markers for documents absent from
/// the judgments and for negative (pooled but unjudged) grades.
fn judge(docs: &[RunDoc], judgments: TopicQrels<'_>, arena: &Arena, rels: &mut Vec<i32>) {
    let filter = judgments.hash_filter();
    rels.clear();
    rels.extend(docs.iter().map(|doc| {
        if filter & filter_bit(doc.hash) == 0 {
            return compute::NONPOOL;
        }
        match judgments.grade(doc.hash, || arena.get(doc.id)) {
            Some(grade) if grade >= 0 => grade,
            Some(_) => compute::UNJUDGED,
            None => compute::NONPOOL,
        }
    }));
}
