//! The result of an evaluation: per-topic values and summaries, printable as trec_eval prints them.

use std::fmt::Write as _;

use super::compute::MIN_GEO_MEAN;
use super::measure::Kind;

/// Per-topic values and summary ("all") values of one run, in trec_eval's order.
///
/// Rows are the evaluated topics in byte order of their ids; with
/// [`EvalOptions::average_complete`](super::EvalOptions::average_complete) they also include the
/// judged topics missing from the run, whose values are 0 (except `num_rel`). Values are stored
/// column by column, so [`Evaluation::per_query`] hands out slices without copying.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub(crate) run_id: String,
    pub(crate) show_runid: bool,
    pub(crate) show_num_q: bool,
    pub(crate) names: Vec<String>,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) topics: Vec<String>,
    /// Whether the row's topic had results (false: a `-c` stand-in, not printed per query).
    pub(crate) retrieved: Vec<bool>,
    /// Column-major: `values[c * topics.len() + r]`.
    pub(crate) values: Vec<f64>,
    pub(crate) summary: Vec<f64>,
}

/// One measure's value for every topic of an [`Evaluation`], aligned with its topics.
#[derive(Debug, Clone, Copy)]
pub struct PerQuery<'a> {
    topics: &'a [String],
    values: &'a [f64],
}

impl<'a> PerQuery<'a> {
    /// Topic ids, in byte order.
    pub fn topics(&self) -> &'a [String] {
        self.topics
    }

    /// Values, aligned with [`PerQuery::topics`].
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    /// The value for `topic`, if it is a row of the evaluation.
    pub fn get(&self, topic: &str) -> Option<f64> {
        let i = self.topics.binary_search_by(|t| t.as_str().cmp(topic)).ok()?;
        Some(self.values[i])
    }

    /// (topic, value) pairs in topic order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.topics.iter().map(String::as_str).zip(self.values.iter().copied())
    }
}

impl Evaluation {
    /// Computes the `all` values from the per-topic values.
    pub(crate) fn summarize(&mut self) {
        let e = &*self;
        let rows = e.topics.len();
        let n = rows as f64;
        let missing = e.retrieved.iter().filter(|r| !**r).count() as f64;
        self.summary = e
            .kinds
            .iter()
            .enumerate()
            .map(|(c, kind)| {
                let column = &e.values[c * rows..(c + 1) * rows];
                match kind {
                    Kind::Count => column.iter().sum(),
                    Kind::Mean => column.iter().sum::<f64>() / n,
                    Kind::Geometric => {
                        // As trec_eval: the logs of the evaluated topics, then the missing ones
                        // (under -c) at the clamp value.
                        let logs: f64 = column
                            .iter()
                            .zip(&e.retrieved)
                            .filter(|(_, r)| **r)
                            .map(|(v, _)| v)
                            .sum();
                        ((logs + missing * MIN_GEO_MEAN.ln()) / n).exp()
                    }
                }
            })
            .collect();
    }

    /// The run's name (its runid).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Number of topics averaged over (trec_eval's `num_q`).
    pub fn num_q(&self) -> usize {
        self.topics.len()
    }

    /// Topic ids of the rows, in byte order.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Names of the computed measures (`map`, `P_5`, ...), in output order; `runid` and `num_q`
    /// are not columns.
    pub fn measure_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Per-topic values of measure `name` (e.g. `"ndcg_cut_10"`). `None` if the measure was not
    /// computed or has no per-topic value (`gm_map`, `runid`, `num_q`).
    pub fn per_query(&self, name: &str) -> Option<PerQuery<'_>> {
        let c = self.column(name)?;
        if self.kinds[c] == Kind::Geometric {
            return None;
        }
        let rows = self.topics.len();
        Some(PerQuery {
            topics: &self.topics,
            values: &self.values[c * rows..(c + 1) * rows],
        })
    }

    /// The summary value trec_eval prints on measure `name`'s `all` line, at full precision: the
    /// mean over topics (geometric for `gm_map`), the total for counts (`num_ret`, `num_rel`,
    /// `num_rel_ret`), the number of topics for `num_q`.
    pub fn mean(&self, name: &str) -> Option<f64> {
        if name == "num_q" && self.show_num_q {
            return Some(self.topics.len() as f64);
        }
        self.column(name).map(|c| self.summary[c])
    }

    /// The text trec_eval prints: with `per_query` (its `-q`), every measure of every topic with
    /// results first, then the `all` lines.
    pub fn to_trec_eval_string(&self, per_query: bool) -> String {
        let mut out = String::new();
        let rows = self.topics.len();
        if per_query {
            for (r, topic) in self.topics.iter().enumerate().filter(|(r, _)| self.retrieved[*r]) {
                for (c, name) in self.names.iter().enumerate() {
                    let value = self.values[c * rows + r];
                    match self.kinds[c] {
                        Kind::Count => line(&mut out, name, topic, format_args!("{}", value as i64)),
                        Kind::Mean => line(&mut out, name, topic, format_args!("{value:6.4}")),
                        Kind::Geometric => {}
                    }
                }
            }
        }
        if self.show_runid {
            line(&mut out, "runid", "all", format_args!("{}", self.run_id));
        }
        if self.show_num_q {
            line(&mut out, "num_q", "all", format_args!("{rows}"));
        }
        for (c, name) in self.names.iter().enumerate() {
            let value = self.summary[c];
            match self.kinds[c] {
                Kind::Count => line(&mut out, name, "all", format_args!("{}", value as i64)),
                Kind::Mean | Kind::Geometric => line(&mut out, name, "all", format_args!("{value:6.4}")),
            }
        }
        out
    }
}

/// trec_eval's line layout: `%-22s\t%s\t<value>`.
fn line(out: &mut String, name: &str, topic: &str, value: std::fmt::Arguments<'_>) {
    writeln!(out, "{name:<22}\t{topic}\t{value}").expect("writing to a String cannot fail");
}
