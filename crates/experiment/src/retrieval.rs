//! Corpus encoding and exact top-k retrieval by dot product (embeddings are L2-normalised,
//! so this is cosine similarity); [`bm25`], the lexical reference retriever; one split's run
//! by either ([`Ranker`]) in the cross-lingual setting; [`settings`], the monolingual and
//! multilingual settings and their language bias.

pub mod bm25;
pub mod settings;

use crate::grid::CellConfig;
use anyhow::{Context, Result};
use clirlab_data::DataConfig;
use clirlab_data::format::{Dataset, Doc, Split};
use clirlab_eval::{Qrels, Run};
use clirlab_model::Embedder;
use clirlab_model::tokenizer::{Side, Tokenizer};
use clirlab_util::sample::fixed_sample;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Texts encoded per forward pass.
const ENCODE_CHUNK: usize = 256;

/// Texts per forward pass of a pretrained backbone, in batches of similar length.
const BACKBONE_CHUNK: usize = 32;

/// Row-major embeddings of `texts` of `side`, `encoder.dim()` values per text. A backbone's
/// texts are encoded in batches of similar length (sorted by token count, each padded to its
/// longest), not padded to `max_len`; the result is in the order of `texts`.
pub fn embed_texts(
    encoder: &dyn Embedder,
    tokenizer: &Tokenizer,
    texts: &[&str],
    side: Side,
    max_len: usize,
) -> Result<Vec<f32>> {
    let dim = encoder.dim();
    if !tokenizer.is_backbone() {
        let mut out = Vec::with_capacity(texts.len() * dim);
        for chunk in texts.chunks(ENCODE_CHUNK) {
            out.extend(encoder.embed(&tokenizer.batch_side(chunk, side, max_len)?)?);
        }
        return Ok(out);
    }
    let rows = texts
        .iter()
        .map(|t| tokenizer.ids(t, side, max_len))
        .collect::<Result<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (rows[i].len(), i));
    let mut out = vec![0.0f32; texts.len() * dim];
    for chunk in order.chunks(BACKBONE_CHUNK) {
        let batch_rows: Vec<&[u32]> = chunk.iter().map(|&i| rows[i].as_slice()).collect();
        let embedded = encoder.embed(&tokenizer.pad(&batch_rows))?;
        for (k, &i) in chunk.iter().enumerate() {
            out[i * dim..(i + 1) * dim].copy_from_slice(&embedded[k * dim..(k + 1) * dim]);
        }
    }
    Ok(out)
}

/// A query's ranked documents: (document index, score), best first.
pub type Ranking = Vec<(usize, f32)>;

/// Queries scored per matrix product: bounds the memory of a block of scores.
const SCORE_BLOCK: usize = 256;

/// Every document's score for each query, (document index, dot product), a block of queries
/// per matrix product (the kernels' GEMM: a plain loop of dot products was a tenth of a
/// backbone cell's evaluation); `each` gets the query's index and its scores.
fn for_each_scored(queries: &[f32], docs: &[f32], dim: usize, mut each: impl FnMut(usize, Vec<(usize, f32)>)) {
    let n_docs = docs.len() / dim;
    if n_docs == 0 {
        (0..queries.len() / dim).for_each(|i| each(i, Vec::new()));
        return;
    }
    for (b, block) in queries.chunks(SCORE_BLOCK * dim).enumerate() {
        let scores = clirlab_model::kernels::blas::product_transposed(block, docs, dim);
        for (i, row) in scores.chunks(n_docs).enumerate() {
            each(b * SCORE_BLOCK + i, row.iter().copied().enumerate().collect());
        }
    }
}

/// Exact top-`k` documents per query. Ties are ordered by document id descending, the order
/// trec_eval itself imposes, so the ranks written to run files agree with its evaluation.
pub fn top_k(queries: &[f32], docs: &[f32], doc_ids: &[&str], dim: usize, k: usize) -> Vec<Ranking> {
    debug_assert_eq!(docs.len(), doc_ids.len() * dim);
    let mut out = Vec::with_capacity(queries.len() / dim);
    for_each_scored(queries, docs, dim, |_, scored| {
        out.push(rank_scored(scored, doc_ids, k))
    });
    out
}

/// The one ordering of every retriever: higher score first, ties by document id descending
/// (trec_eval's order). `Less` when `a` ranks before `b`.
fn rank_order(doc_ids: &[&str], a: &(usize, f32), b: &(usize, f32)) -> Ordering {
    b.1.partial_cmp(&a.1)
        .unwrap_or(Ordering::Equal)
        .then_with(|| doc_ids[b.0].cmp(doc_ids[a.0]))
}

/// The best `k` of `scored` (document index, score), best first, in [`rank_order`].
pub fn rank_scored(mut scored: Vec<(usize, f32)>, doc_ids: &[&str], k: usize) -> Ranking {
    let order = |a: &(usize, f32), b: &(usize, f32)| rank_order(doc_ids, a, b);
    let keep = k.min(scored.len());
    if keep < scored.len() {
        scored.select_nth_unstable_by(keep, order);
        scored.truncate(keep);
    }
    scored.sort_by(order);
    scored
}

/// The 1-based rank of each of `wanted` (positions in `scored`, which scores every document of
/// the corpus) in the full ranking of `scored`, in [`rank_order`]: one plus the documents that
/// rank before it. Counting, not sorting: a few documents are located among many.
pub fn full_ranks(scored: &[(usize, f32)], doc_ids: &[&str], wanted: &[usize]) -> Vec<usize> {
    wanted
        .iter()
        .map(|&w| {
            let target = &scored[w];
            1 + scored
                .iter()
                .filter(|d| rank_order(doc_ids, d, target) == Ordering::Less)
                .count()
        })
        .collect()
}

/// A query's top `k` (from `scored`, every document's score) and the full ranks of `wanted`.
fn top_and_ranks(scored: Vec<(usize, f32)>, doc_ids: &[&str], k: usize, wanted: &[usize]) -> (Ranking, Vec<usize>) {
    let ranks = full_ranks(&scored, doc_ids, wanted);
    (rank_scored(scored, doc_ids, k), ranks)
}

/// The queries of one language and task in a split, with that task's judgments only: tasks
/// share their queries (a verse is judged for its translation and, apart, for its
/// cross-references), so each task is evaluated against its own qrels.
pub struct QueryGroup {
    /// The query language.
    pub lang: String,
    /// The task.
    pub task: String,
    /// Its judged queries.
    pub query_ids: Vec<String>,
    /// The task's judgments of these queries.
    pub qrels: Qrels,
    /// The multilingual setting's language bias (rank distance) of the queries that have one,
    /// by query id ([`settings`]); `None` in the other settings.
    pub rank_distance: Option<std::collections::BTreeMap<String, f64>>,
}

/// A split's ranking of every query of the cell's languages, with the judgments by task.
pub struct SplitRun {
    /// The ranking of every query.
    pub run: Run,
    /// The queries by language and task, each with its judgments.
    pub groups: Vec<QueryGroup>,
    /// The queries that retrieved at least one document (BM25 may find none for a query).
    pub retrieved: std::collections::HashSet<String>,
}

/// Ranks a corpus for queries: the dense encoder, or BM25.
pub trait Ranker {
    /// The top `k` of `corpus` for each of `queries`: [`Ranker::rank_locating`] without
    /// documents to locate, unless a ranker has a quicker way.
    fn rank(&self, queries: &[Doc], corpus: &[Doc], k: usize) -> Result<Vec<Ranking>> {
        let none = vec![Vec::new(); queries.len()];
        Ok(self
            .rank_locating(queries, corpus, k, &none)?
            .into_iter()
            .map(|(ranking, _)| ranking)
            .collect())
    }

    /// The top `k` of `corpus` for each of `queries`, and for query i the 1-based rank in the
    /// whole ranking of `corpus` (not only its top `k`) of each document index in `locate[i]`.
    fn rank_locating(
        &self,
        queries: &[Doc],
        corpus: &[Doc],
        k: usize,
        locate: &[Vec<usize>],
    ) -> Result<Vec<(Ranking, Vec<usize>)>>;
}

/// Embeddings by text, one map per side (a text is embedded differently as query and passage).
#[derive(Default)]
struct Embedded {
    query: HashMap<String, Box<[f32]>>,
    passage: HashMap<String, Box<[f32]>>,
}

impl Embedded {
    fn side(&mut self, side: Side) -> &mut HashMap<String, Box<[f32]>> {
        match side {
            Side::Query => &mut self.query,
            Side::Passage => &mut self.passage,
        }
    }
}

/// A dense encoder with its tokenizer: exact top-k by dot product. It remembers every text it
/// embedded, by side, so that the texts a cell's settings and languages share (the English
/// corpus of each language's cross-lingual run, the pools of the other settings) are encoded
/// once per cell; build a new one whenever the encoder's weights change.
pub struct Dense<'a> {
    encoder: &'a dyn Embedder,
    tokenizer: &'a Tokenizer,
    max_len: usize,
    embedded: std::cell::RefCell<Embedded>,
}

impl<'a> Dense<'a> {
    /// `encoder` with `tokenizer`, keeping `max_len` tokens per text.
    pub fn new(encoder: &'a dyn Embedder, tokenizer: &'a Tokenizer, max_len: usize) -> Self {
        Self {
            encoder,
            tokenizer,
            max_len,
            embedded: Default::default(),
        }
    }

    /// Row-major embeddings of `texts` (as [`embed_texts`]), encoding only those not seen before.
    pub fn embed(&self, texts: &[&str], side: Side) -> Result<Vec<f32>> {
        let mut memo = self.embedded.borrow_mut();
        let embedded = memo.side(side);
        let mut new: Vec<&str> = texts.iter().copied().filter(|t| !embedded.contains_key(*t)).collect();
        new.sort_unstable();
        new.dedup();
        if !new.is_empty() {
            let rows = embed_texts(self.encoder, self.tokenizer, &new, side, self.max_len)?;
            let dim = self.encoder.dim();
            for (text, row) in new.iter().zip(rows.chunks(dim)) {
                embedded.insert((*text).to_string(), row.into());
            }
        }
        Ok(texts.iter().flat_map(|t| embedded[*t].iter().copied()).collect())
    }

    /// The embeddings of `queries` and of `corpus`, and the corpus ids: what both rankings score.
    fn embed_both<'c>(&self, queries: &[Doc], corpus: &'c [Doc]) -> Result<(Vec<f32>, Vec<f32>, Vec<&'c str>)> {
        let q_texts: Vec<&str> = queries.iter().map(|d| d.text.as_str()).collect();
        let d_texts: Vec<&str> = corpus.iter().map(|d| d.text.as_str()).collect();
        let q = self.embed(&q_texts, Side::Query)?;
        let d = self.embed(&d_texts, Side::Passage)?;
        Ok((q, d, corpus.iter().map(|d| d.id.as_str()).collect()))
    }
}

impl Ranker for Dense<'_> {
    fn rank(&self, queries: &[Doc], corpus: &[Doc], k: usize) -> Result<Vec<Ranking>> {
        let (q, d, ids) = self.embed_both(queries, corpus)?;
        Ok(top_k(&q, &d, &ids, self.encoder.dim(), k))
    }

    fn rank_locating(
        &self,
        queries: &[Doc],
        corpus: &[Doc],
        k: usize,
        locate: &[Vec<usize>],
    ) -> Result<Vec<(Ranking, Vec<usize>)>> {
        let (q, d, ids) = self.embed_both(queries, corpus)?;
        let mut out = Vec::with_capacity(queries.len());
        for_each_scored(&q, &d, self.encoder.dim(), |i, scored| {
            out.push(top_and_ranks(scored, &ids, k, &locate[i]))
        });
        Ok(out)
    }
}

/// BM25 with its parameters ([`bm25`]).
pub struct Lexical {
    /// Term-frequency saturation.
    pub k1: f64,
    /// Length normalisation.
    pub b: f64,
}

impl Ranker for Lexical {
    fn rank(&self, queries: &[Doc], corpus: &[Doc], k: usize) -> Result<Vec<Ranking>> {
        let texts: Vec<&str> = corpus.iter().map(|d| d.text.as_str()).collect();
        let ids: Vec<&str> = corpus.iter().map(|d| d.id.as_str()).collect();
        let index = bm25::Bm25::new(&texts, self.k1, self.b);
        Ok(queries.iter().map(|q| index.search(&q.text, &ids, k)).collect())
    }

    /// Documents sharing no word with the query are not retrieved (as in [`Lexical::rank`]),
    /// but they are ranked, at score 0 in the tie order, for their full ranks.
    fn rank_locating(
        &self,
        queries: &[Doc],
        corpus: &[Doc],
        k: usize,
        locate: &[Vec<usize>],
    ) -> Result<Vec<(Ranking, Vec<usize>)>> {
        let texts: Vec<&str> = corpus.iter().map(|d| d.text.as_str()).collect();
        let ids: Vec<&str> = corpus.iter().map(|d| d.id.as_str()).collect();
        let index = bm25::Bm25::new(&texts, self.k1, self.b);
        Ok(queries
            .iter()
            .zip(locate)
            .map(|(q, wanted)| {
                let matched: Vec<(usize, f32)> =
                    index.scores(&q.text).into_iter().map(|(d, s)| (d, s as f32)).collect();
                let mut all: Vec<(usize, f32)> = (0..corpus.len()).map(|i| (i, 0.0)).collect();
                for &(d, s) in &matched {
                    all[d].1 = s;
                }
                let ranks = full_ranks(&all, &ids, wanted);
                (rank_scored(matched, &ids, k), ranks)
            })
            .collect())
    }
}

/// Retrieves the `split` corpus for the `split` queries of every language of `cfg`.
pub fn run_split(
    encoder: &dyn Embedder,
    tokenizer: &Tokenizer,
    dataset: &Dataset,
    cfg: &CellConfig,
    split: Split,
    run_name: &str,
) -> Result<SplitRun> {
    let dense = Dense::new(encoder, tokenizer, cfg.model.max_len);
    run_split_with(&dense, dataset, &cfg.data, cfg.retrieval.top_k, split, run_name)
}

/// Retrieves the top `top_k` of the `split` corpus with `ranker` for the `split` queries of
/// every language of `data` (a sample of them with `data.max_test_queries`).
pub fn run_split_with(
    ranker: &dyn Ranker,
    dataset: &Dataset,
    data: &DataConfig,
    top_k: usize,
    split: Split,
    run_name: &str,
) -> Result<SplitRun> {
    let split = split.as_str();
    let corpus = dataset
        .corpus
        .get(split)
        .with_context(|| format!("the dataset has no {split} corpus"))?;
    let mut run = Run::new(run_name);
    let mut groups = Vec::new();
    let mut retrieved = std::collections::HashSet::new();
    let is_test = split == Split::Test.as_str();
    for lang in &data.languages {
        let all_queries = dataset
            .queries
            .get(&(lang.clone(), split.to_string()))
            .with_context(|| format!("the dataset has no {split} queries in language `{lang}`"))?;
        let queries = evaluated_queries(all_queries, data, is_test, lang);
        let queries: &[Doc] = &queries;
        let kept: std::collections::HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
        let rankings = ranker.rank(queries, corpus, top_k)?;
        for (query, ranking) in queries.iter().zip(&rankings) {
            if !ranking.is_empty() {
                retrieved.insert(query.id.clone());
            }
            for (doc, score) in ranking {
                run.push(&query.id, &corpus[*doc].id, f64::from(*score))?;
            }
        }
        for ((q_lang, task, q_split), judged) in &dataset.qrels {
            if q_lang == lang && q_split == split {
                let judged: Vec<_> = judged.iter().filter(|j| kept.contains(j.query_id.as_str())).collect();
                let mut qrels = Qrels::new();
                for j in &judged {
                    qrels.insert(&j.query_id, &j.doc_id, j.relevance)?;
                }
                let mut query_ids: Vec<String> = judged.iter().map(|j| j.query_id.clone()).collect();
                query_ids.dedup();
                groups.push(QueryGroup {
                    lang: lang.clone(),
                    task: task.clone(),
                    query_ids,
                    qrels,
                    rank_distance: None,
                });
            }
        }
    }
    Ok(SplitRun { run, groups, retrieved })
}

/// The queries of `lang` (all of them: `queries`) that are evaluated: a sample with
/// `data.max_test_queries` on the test split, else all.
pub(crate) fn evaluated_queries<'a>(
    queries: &'a [Doc],
    data: &DataConfig,
    is_test: bool,
    lang: &str,
) -> std::borrow::Cow<'a, [Doc]> {
    match data.max_test_queries {
        Some(n) if is_test && n < queries.len() => std::borrow::Cow::Owned(sample_queries(queries, n, lang)),
        _ => std::borrow::Cow::Borrowed(queries),
    }
}

/// `n` of `queries`, drawn with a fixed seed per language (the same queries for every cell
/// and seed, so that cells compare on the same sample), in their original order.
pub fn sample_queries(queries: &[Doc], n: usize, lang: &str) -> Vec<Doc> {
    let seed = crate::grid::content_hash(&("max_test_queries", lang), 16);
    let seed = u64::from_str_radix(&seed[..16], 16).unwrap_or(0);
    fixed_sample(queries.len(), n, seed)
        .into_iter()
        .map(|i| queries[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_samples_are_seeded_subsets() {
        let docs: Vec<Doc> = (0..50)
            .map(|i| Doc {
                id: format!("q{i}"),
                text: format!("text {i}"),
            })
            .collect();
        let a = sample_queries(&docs, 10, "sw");
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample_queries(&docs, 10, "sw"));
        assert_ne!(a, sample_queries(&docs, 10, "tl"));
        assert!(a.windows(2).all(|w| w[0].id != w[1].id));
        assert_eq!(sample_queries(&docs, 80, "sw").len(), 50);
    }

    #[test]
    fn exact_top_k_with_trec_eval_tie_order() {
        // 2-d vectors: doc 0 and doc 2 tie for the first query.
        let docs = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.6, 0.8];
        let ids = ["d-a", "d-b", "d-c", "d-d"];
        let queries = [1.0, 0.0, 0.0, 1.0];
        let r = top_k(&queries, &docs, &ids, 2, 3);
        assert_eq!(r[0].iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 0, 3]);
        assert_eq!(r[1].iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        // k larger than the corpus returns everything.
        assert_eq!(top_k(&queries, &docs, &ids, 2, 10)[0].len(), 4);
    }

    #[test]
    fn matches_brute_force_on_random_vectors() {
        let dim = 8;
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let docs: Vec<f32> = (0..50 * dim).map(|_| next()).collect();
        let queries: Vec<f32> = (0..5 * dim).map(|_| next()).collect();
        let names: Vec<String> = (0..50).map(|i| format!("d{i:02}")).collect();
        let ids: Vec<&str> = names.iter().map(String::as_str).collect();
        let fast = top_k(&queries, &docs, &ids, dim, 10);
        for (qi, q) in queries.chunks(dim).enumerate() {
            let mut all: Vec<(usize, f32)> = docs
                .chunks(dim)
                .enumerate()
                .map(|(i, d)| (i, q.iter().zip(d).map(|(a, b)| a * b).sum()))
                .collect();
            all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
            assert_eq!(
                fast[qi].iter().map(|x| x.0).collect::<Vec<_>>(),
                all[..10].iter().map(|x| x.0).collect::<Vec<_>>()
            );
        }
    }
}
