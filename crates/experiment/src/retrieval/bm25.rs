//! BM25, the lexical reference retriever: Lucene's scoring over a word tokenizer, exact top-k
//! with the dense retriever's tie order.
//!
//! idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5)) and
//! score(q, d) = Σ_{t ∈ q} qtf · idf(t) · tf·(k1 + 1)/(tf + k1·(1 − b + b·dl/avgdl)),
//! where a term repeated in the query counts once per occurrence (qtf, as Anserini's
//! bag-of-words queries weight it). Document lengths are exact token counts (Lucene stores them
//! in one lossy byte, so its scores can differ in the last digits). Only documents sharing a
//! term with the query are ranked, as Lucene returns them: a query that matches nothing
//! retrieves nothing, which counts 0 on every metric. k1 and b come from the experiment
//! (`spec::Bm25Params`, Lucene's defaults 1.2 and 0.75).

use super::{Ranking, rank_scored};
use std::collections::HashMap;
use unicode_categories::UnicodeCategories;

/// The words of `text`, lower-cased: maximal runs of Unicode alphanumeric characters and
/// combining marks (the marks keep the vowel signs and viramas of Indic scripts inside their
/// words); everything else separates words. Lower-casing is Unicode's full mapping
/// (`str::to_lowercase`), with no other normalisation.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c.is_mark()))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An inverted index of a corpus with its BM25 parameters.
pub struct Bm25 {
    k1: f64,
    b: f64,
    /// term → (document index, term frequency), documents in index order.
    postings: HashMap<String, Vec<(usize, u32)>>,
    /// Tokens per document.
    lengths: Vec<u32>,
    /// Mean of `lengths`.
    avgdl: f64,
}

impl Bm25 {
    /// Indexes the documents `docs` (in order: document index i is `docs[i]`).
    pub fn new(docs: &[&str], k1: f64, b: f64) -> Bm25 {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            let words = tokenize(doc);
            lengths.push(words.len() as u32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for w in words {
                *tf.entry(w).or_default() += 1;
            }
            for (w, n) in tf {
                postings.entry(w).or_default().push((i, n));
            }
        }
        let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
        let avgdl = if docs.is_empty() {
            0.0
        } else {
            total as f64 / docs.len() as f64
        };
        Bm25 {
            k1,
            b,
            postings,
            lengths,
            avgdl,
        }
    }

    /// Lucene's idf of a term found in `df` of the `N` documents.
    pub fn idf(&self, df: usize) -> f64 {
        let (n, df) = (self.lengths.len() as f64, df as f64);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// (document index, score) of every document sharing a term with `query`, in index order.
    pub fn scores(&self, query: &str) -> Vec<(usize, f64)> {
        let mut qtf: HashMap<String, u32> = HashMap::new();
        for w in tokenize(query) {
            *qtf.entry(w).or_default() += 1;
        }
        // Terms in a fixed order, so that the sums (and the last bits of the scores) do not
        // depend on the hash map's order.
        let mut terms: Vec<(String, u32)> = qtf.into_iter().collect();
        terms.sort();
        let mut acc: HashMap<usize, f64> = HashMap::new();
        for (term, count) in &terms {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let idf = self.idf(list.len());
            for &(doc, tf) in list {
                let tf = f64::from(tf);
                let norm = if self.avgdl > 0.0 {
                    1.0 - self.b + self.b * f64::from(self.lengths[doc]) / self.avgdl
                } else {
                    1.0
                };
                *acc.entry(doc).or_default() += f64::from(*count) * idf * tf * (self.k1 + 1.0) / (tf + self.k1 * norm);
            }
        }
        let mut out: Vec<(usize, f64)> = acc.into_iter().collect();
        out.sort_by_key(|&(doc, _)| doc);
        out
    }

    /// The top `k` documents for `query` (ids `doc_ids`, in index order), ties by document id
    /// descending as in [`super::top_k`]. Scores are ranked as written to the run (f32), so that
    /// trec_eval, which re-sorts by the written score, sees the same order.
    pub fn search(&self, query: &str, doc_ids: &[&str], k: usize) -> Ranking {
        let scored = self.scores(query).into_iter().map(|(d, s)| (d, s as f32)).collect();
        rank_scored(scored, doc_ids, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokenizer_lowercases_alphanumeric_runs() {
        assert_eq!(
            tokenize("Hello, WORLD! it's 2nd-hand"),
            ["hello", "world", "it", "s", "2nd", "hand"]
        );
        assert_eq!(tokenize("Ĳssel ÉTÉ straße"), ["ĳssel", "été", "straße"]);
        // Combining marks stay in their word (Hindi: the virama of क्या, the vowel sign of है).
        assert_eq!(tokenize("क्या है?"), ["क्या", "है"]);
        assert_eq!(tokenize("  ...  "), Vec::<String>::new());
    }

    /// Three documents, scores computed by hand from the formula (k1 = 1.2, b = 0.75).
    /// d0 "a b a" (dl 3), d1 "b c" (dl 2), d2 "c c c d" (dl 4); avgdl = 3, N = 3.
    #[test]
    fn scores_match_hand_computation() {
        let docs = ["a b a", "b c", "c c c d"];
        let index = Bm25::new(&docs, 1.2, 0.75);
        let idf1 = (1.0f64 + 2.5 / 1.5).ln(); // df = 1: ln(1 + 2.5/1.5) = ln(8/3)
        let idf2 = (1.0f64 + 1.5 / 2.5).ln(); // df = 2: ln(1.6)
        assert!((index.idf(1) - 0.980_829_253_011_726_2).abs() < 1e-12);
        assert!((index.idf(2) - 0.470_003_629_245_735_5).abs() < 1e-12);
        // Query "a": d0 only, tf 2, dl = avgdl: 2·2.2/(2 + 1.2) = 1.375.
        let s = index.scores("A");
        assert_eq!(s.len(), 1);
        assert!((s[0].1 - idf1 * 1.375).abs() < 1e-12);
        // Query "b c": d0 b (tf 1, dl 3): 2.2/2.2 = 1 → idf2;
        // d1 b and c (tf 1, dl 2): norm = 0.25 + 0.75·2/3 = 0.75, 2.2/(1 + 0.9) each → 2·idf2·2.2/1.9;
        // d2 c (tf 3, dl 4): norm = 0.25 + 1 = 1.25, 3·2.2/(3 + 1.5) = 6.6/4.5 → idf2·6.6/4.5.
        let s = index.scores("b c");
        let want = [idf2, 2.0 * idf2 * 2.2 / 1.9, idf2 * 6.6 / 4.5];
        assert_eq!(s.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
        for ((_, got), want) in s.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert!((want[1] - 1.088_429_457_200_651).abs() < 1e-9);
        // A repeated query term counts twice; an unknown one nothing.
        let twice = index.scores("a a zzz");
        assert!((twice[0].1 - 2.0 * idf1 * 1.375).abs() < 1e-12);
        // b = 0 ignores length, k1 = 0 ignores tf.
        let flat = Bm25::new(&docs, 0.0, 0.0);
        let s = flat.scores("c");
        assert!(s.iter().all(|x| (x.1 - idf2).abs() < 1e-12));
    }

    #[test]
    fn ranking_is_exact_with_trec_eval_ties() {
        // d1 and d3 are identical: they tie, and the larger id comes first; d2 matches nothing.
        let docs = ["x y", "x x y", "z", "x x y"];
        let ids = ["d0", "d1", "d2", "d3"];
        let index = Bm25::new(&docs, 1.2, 0.75);
        let r = index.search("x", &ids, 10);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [3, 1, 0]);
        assert_eq!(r[0].1, r[1].1);
        assert_eq!(
            index.search("x", &ids, 2).iter().map(|x| x.0).collect::<Vec<_>>(),
            [3, 1]
        );
        assert!(index.search("nothing", &ids, 10).is_empty());
    }
}
