//! The retrieval settings of Elmahdy et al. (2024) beside the cross-lingual one
//! ([`super::run_split_with`], low-resource queries over the English documents):
//!
//! - **monolingual**: each language's queries over that language's texts of the split (its
//!   `queries/<lang>/<split>` texts used as documents), and the English documents of the split
//!   as queries over themselves (query language `en`);
//! - **multilingual**: the low-resource queries over one pool, the English documents and every
//!   selected language's texts of the split (the sample of `data.max_test_queries` draws
//!   queries, never shrinks the pool);
//!
//! and the multilingual setting's **language bias**, the rank distance (`RD`): per query and
//! relevant verse present in at least two pool languages, the mean over pairs of languages of
//! |rank_a − rank_b|, ranks 1-based over the whole pool (not the top k) in the retrievers' one
//! order; a query's value is the mean over its verses, and queries without such a verse have
//! none. Lower is less biased.
//!
//! A language's documents are its query texts of the split, unless the data set gives it
//! documents of its own (`documents/<lang>/<split>.tsv`, e.g. a second translation): then no
//! document is a query's own text, and monolingual `translation` (Kashmiri by one translator
//! over Kashmiri by another) exists.
//!
//! Both settings need ids that align the languages, `<lang>:<key>` (`sw:40.1.1` is the Swahili
//! version of `en:40.1.1`), as the Bible, UDHR and synthetic sets have. A task's judgments are
//! read as a relation between keys (query `sw:q` judged on `en:d` relates q to d with that
//! grade) and put on every version of d among a setting's documents. A query's own text is
//! never among its documents (it is left out of its ranking and of every rank), so where a
//! query's only relevant key is its own (`translation` in the monolingual setting) the query
//! has no judgment left and no group: monolingual `translation` does not exist. The English
//! queries take the relations of every selected language's qrels (their union, the highest
//! grade where they differ), restricted to the English documents present.

use super::{Ranker, Ranking, SplitRun, evaluated_queries};
use crate::spec::RetrievalSetting;
use anyhow::{Context, Result, bail};
use clirlab_data::DataConfig;
use clirlab_data::format::{Dataset, Doc, Split};
use clirlab_eval::{Qrels, Run};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// task → query key → document key → grade.
type Relations = BTreeMap<String, BTreeMap<String, BTreeMap<String, i32>>>;

/// One query's judgments in the pool: task → (grade, the pool positions of the versions of one
/// relevant key but the query's own text).
type PoolJudgments<'a> = BTreeMap<&'a str, Vec<(i32, Vec<usize>)>>;

/// The key of `id` (`sw:40.1.1` → `40.1.1`), which must be prefixed with `lang`.
fn key_of<'a>(id: &'a str, lang: &str, what: &str) -> Result<&'a str> {
    match id.split_once(':') {
        Some((prefix, key)) if prefix == lang && !key.is_empty() => Ok(key),
        _ => bail!(
            "key `retrieval.settings`: the monolingual and multilingual settings need ids `<lang>:<key>` that \
             align the languages; {what} `{id}` is not `{lang}:<key>`"
        ),
    }
}

/// One language's texts of the split, as documents and as (possibly sampled) queries.
struct Language<'a> {
    lang: String,
    /// Its documents of the split: its own (`documents/`), else every query text of the split.
    docs: &'a [Doc],
    /// Whether `docs` are the query texts themselves (then a query's own text is left out).
    docs_are_queries: bool,
    /// The evaluated queries.
    queries: Cow<'a, [Doc]>,
    /// Its judgments as relations between keys.
    relations: Relations,
}

/// What both settings read from the data set.
struct Prepared<'a> {
    /// English first (the pivot, the English documents as queries), then `data.languages`.
    languages: Vec<Language<'a>>,
}

fn prepare<'a>(dataset: &'a Dataset, data: &DataConfig, split: Split) -> Result<Prepared<'a>> {
    let name = split.as_str();
    let is_test = split == Split::Test;
    let pivot = dataset.card.pivot.clone();
    let english = dataset
        .corpus
        .get(name)
        .with_context(|| format!("the dataset has no {name} corpus"))?;
    for d in english {
        key_of(&d.id, &pivot, "document")?;
    }
    let mut languages = Vec::new();
    let mut union = Relations::new();
    for lang in &data.languages {
        let docs = dataset
            .queries
            .get(&(lang.clone(), name.to_string()))
            .with_context(|| format!("the dataset has no {name} queries in language `{lang}`"))?;
        for d in docs {
            key_of(&d.id, lang, "query")?;
        }
        let own_docs = dataset.documents.get(&(lang.clone(), name.to_string()));
        for d in own_docs.into_iter().flatten() {
            key_of(&d.id, lang, "document")?;
        }
        let mut relations = Relations::new();
        for ((q_lang, task, q_split), judged) in &dataset.qrels {
            if q_lang != lang || q_split != name {
                continue;
            }
            let by_query = relations.entry(task.clone()).or_default();
            let union_task = union.entry(task.clone()).or_default();
            for j in judged {
                let q = key_of(&j.query_id, lang, "judged query")?.to_string();
                let d = key_of(&j.doc_id, &pivot, "judged document")?.to_string();
                by_query.entry(q.clone()).or_default().insert(d.clone(), j.relevance);
                let grade = union_task.entry(q).or_default().entry(d).or_insert(j.relevance);
                *grade = (*grade).max(j.relevance);
            }
        }
        languages.push(Language {
            lang: lang.clone(),
            docs: own_docs.map_or(docs, Vec::as_slice),
            docs_are_queries: own_docs.is_none(),
            queries: evaluated_queries(docs, data, is_test, lang),
            relations,
        });
    }
    languages.insert(
        0,
        Language {
            lang: pivot.clone(),
            docs: english,
            docs_are_queries: true,
            queries: evaluated_queries(english, data, is_test, &pivot),
            relations: union,
        },
    );
    Ok(Prepared { languages })
}

/// `queries` over `docs` by `ranker`, each query's own document (`own[i]`, an index into
/// `docs`) left out of its top `k` and of the full ranks of `locate[i]` (which must not hold it).
fn search_excluding(
    ranker: &dyn Ranker,
    queries: &[Doc],
    docs: &[Doc],
    own: &[Option<usize>],
    k: usize,
    locate: &[Vec<usize>],
) -> Result<Vec<(Ranking, Vec<usize>)>> {
    let with_own: Vec<Vec<usize>> = locate
        .iter()
        .zip(own)
        .map(|(l, o)| l.iter().copied().chain(*o).collect())
        .collect();
    // One more than `k`, so that `k` remain once the query's own document is dropped.
    let found = ranker.rank_locating(queries, docs, k + 1, &with_own)?;
    Ok(found
        .into_iter()
        .zip(own)
        .map(|((mut ranking, mut ranks), o)| {
            if let Some(o) = o {
                ranking.retain(|(d, _)| d != o);
                let own_rank = ranks.pop().expect("the own document was located");
                for r in &mut ranks {
                    if own_rank < *r {
                        *r -= 1;
                    }
                }
            }
            ranking.truncate(k);
            (ranking, ranks)
        })
        .collect())
}

/// Adds `rankings` of `queries` over `docs` to `run` and the queries that found something to
/// `retrieved`.
fn record(
    run: &mut Run,
    retrieved: &mut HashSet<String>,
    queries: &[Doc],
    docs: &[Doc],
    rankings: &[(Ranking, Vec<usize>)],
) -> Result<()> {
    for (query, (ranking, _)) in queries.iter().zip(rankings) {
        if !ranking.is_empty() {
            retrieved.insert(query.id.clone());
        }
        for (doc, score) in ranking {
            run.push(&query.id, &docs[*doc].id, f64::from(*score))?;
        }
    }
    Ok(())
}

/// The monolingual setting: every language (English included) over its own texts.
fn monolingual(ranker: &dyn Ranker, p: &Prepared, top_k: usize, run_name: &str) -> Result<SplitRun> {
    let mut run = Run::new(run_name);
    let mut groups = Vec::new();
    let mut retrieved = HashSet::new();
    for language in &p.languages {
        let Language {
            lang,
            docs,
            docs_are_queries,
            queries,
            relations,
        } = language;
        let index: HashMap<&str, usize> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (key_of(&d.id, lang, "document").expect("checked"), i))
            .collect();
        let keys: Vec<&str> = queries
            .iter()
            .map(|q| key_of(&q.id, lang, "query").expect("checked"))
            .collect();
        let own: Vec<Option<usize>> = keys
            .iter()
            .map(|k| if *docs_are_queries { index.get(k).copied() } else { None })
            .collect();
        let rankings = search_excluding(ranker, queries, docs, &own, top_k, &vec![Vec::new(); queries.len()])?;
        record(&mut run, &mut retrieved, queries, docs, &rankings)?;
        for (task, by_query) in relations {
            let mut qrels = Qrels::new();
            let mut query_ids = Vec::new();
            for (query, key) in queries.iter().zip(&keys) {
                let mut judged = false;
                for (d, grade) in by_query.get(*key).into_iter().flatten() {
                    // The query's own text is not among its documents.
                    if (d != key || !docs_are_queries) && index.contains_key(d.as_str()) {
                        qrels.insert(&query.id, &format!("{lang}:{d}"), *grade)?;
                        judged = true;
                    }
                }
                if judged {
                    query_ids.push(query.id.clone());
                }
            }
            if !query_ids.is_empty() {
                groups.push(super::QueryGroup {
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

/// The mean over pairs of |a − b| of `ranks`; `None` for fewer than two.
pub fn mean_pair_distance(ranks: &[usize]) -> Option<f64> {
    let (mut sum, mut pairs) = (0usize, 0usize);
    for (i, a) in ranks.iter().enumerate() {
        for b in &ranks[i + 1..] {
            sum += a.abs_diff(*b);
            pairs += 1;
        }
    }
    (pairs > 0).then(|| sum as f64 / pairs as f64)
}

/// The multilingual setting: the low-resource queries over the English documents and every
/// language's texts pooled, with the rank distance of each query's relevant verses.
fn multilingual(ranker: &dyn Ranker, p: &Prepared, top_k: usize, run_name: &str) -> Result<SplitRun> {
    let mut pool: Vec<Doc> = Vec::new();
    // key → the pool positions of its versions, one per language.
    let mut versions: HashMap<&str, Vec<usize>> = HashMap::new();
    for language in &p.languages {
        for d in language.docs {
            versions
                .entry(key_of(&d.id, &language.lang, "document").expect("checked"))
                .or_default()
                .push(pool.len());
            pool.push(d.clone());
        }
    }
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (i, d) in pool.iter().enumerate() {
        position.insert(d.id.as_str(), i);
    }
    // The low-resource languages' queries, one search for all of them.
    let mut queries: Vec<Doc> = Vec::new();
    let mut of_language: Vec<usize> = Vec::new();
    for (l, language) in p.languages.iter().enumerate().skip(1) {
        queries.extend(language.queries.iter().cloned());
        of_language.extend(std::iter::repeat_n(l, language.queries.len()));
    }
    let own: Vec<Option<usize>> = queries
        .iter()
        .zip(&of_language)
        .map(|(q, &l)| {
            if p.languages[l].docs_are_queries {
                position.get(q.id.as_str()).copied()
            } else {
                None
            }
        })
        .collect();
    let mut judged: Vec<PoolJudgments> = Vec::new();
    let mut locate: Vec<Vec<usize>> = Vec::new();
    for (q, query) in queries.iter().enumerate() {
        let language = &p.languages[of_language[q]];
        let key = key_of(&query.id, &language.lang, "query").expect("checked");
        let mut by_task = BTreeMap::new();
        let mut wanted: Vec<usize> = Vec::new();
        for (task, by_query) in &language.relations {
            let mut relevant = Vec::new();
            for (d, grade) in by_query.get(key).into_iter().flatten() {
                let present: Vec<usize> = versions
                    .get(d.as_str())
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| Some(i) != own[q])
                    .collect();
                wanted.extend(&present);
                relevant.push((*grade, present));
            }
            by_task.insert(task.as_str(), relevant);
        }
        wanted.sort_unstable();
        wanted.dedup();
        judged.push(by_task);
        locate.push(wanted);
    }
    let found = search_excluding(ranker, &queries, &pool, &own, top_k, &locate)?;
    let mut run = Run::new(run_name);
    let mut retrieved = HashSet::new();
    record(&mut run, &mut retrieved, &queries, &pool, &found)?;

    let mut groups = Vec::new();
    for (l, language) in p.languages.iter().enumerate().skip(1) {
        for task in language.relations.keys() {
            let mut qrels = Qrels::new();
            let mut query_ids = Vec::new();
            let mut rank_distance = BTreeMap::new();
            for q in (0..queries.len()).filter(|&q| of_language[q] == l) {
                let rank: HashMap<usize, usize> = locate[q].iter().copied().zip(found[q].1.iter().copied()).collect();
                let mut distances = Vec::new();
                let mut any = false;
                for (grade, present) in &judged[q][task.as_str()] {
                    for &i in present {
                        qrels.insert(&queries[q].id, &pool[i].id, *grade)?;
                        any = true;
                    }
                    if *grade > 0 {
                        let ranks: Vec<usize> = present.iter().map(|i| rank[i]).collect();
                        distances.extend(mean_pair_distance(&ranks));
                    }
                }
                if any {
                    query_ids.push(queries[q].id.clone());
                    if !distances.is_empty() {
                        rank_distance.insert(
                            queries[q].id.clone(),
                            distances.iter().sum::<f64>() / distances.len() as f64,
                        );
                    }
                }
            }
            if !query_ids.is_empty() {
                groups.push(super::QueryGroup {
                    lang: language.lang.clone(),
                    task: task.clone(),
                    query_ids,
                    qrels,
                    rank_distance: Some(rank_distance),
                });
            }
        }
    }
    Ok(SplitRun { run, groups, retrieved })
}

/// Runs the monolingual and multilingual settings among `settings` (in that order; the
/// cross-lingual one is [`super::run_split_with`]) on `split` with `ranker`, each a run of its
/// own named `run_name`.
pub fn run_settings(
    ranker: &dyn Ranker,
    dataset: &Dataset,
    data: &DataConfig,
    top_k: usize,
    settings: &[RetrievalSetting],
    split: Split,
    run_name: &str,
) -> Result<Vec<(RetrievalSetting, SplitRun)>> {
    let wanted: Vec<RetrievalSetting> = [RetrievalSetting::Monolingual, RetrievalSetting::Multilingual]
        .into_iter()
        .filter(|s| settings.contains(s))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let prepared = prepare(dataset, data, split)?;
    wanted
        .into_iter()
        .map(|s| {
            let split = match s {
                RetrievalSetting::Monolingual => monolingual(ranker, &prepared, top_k, run_name)?,
                RetrievalSetting::Multilingual => multilingual(ranker, &prepared, top_k, run_name)?,
                RetrievalSetting::CrossLingual => unreachable!("filtered out above"),
            };
            Ok((s, split))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::{full_ranks, rank_scored};
    use clirlab_data::format::{Card, Judgment};

    fn docs(ids: &[&str]) -> Vec<Doc> {
        ids.iter()
            .map(|id| Doc {
                id: id.to_string(),
                text: format!("text of {id}"),
            })
            .collect()
    }

    fn judged(pairs: &[(&str, &str)]) -> Vec<Judgment> {
        pairs
            .iter()
            .map(|(q, d)| Judgment {
                query_id: q.to_string(),
                doc_id: d.to_string(),
                relevance: 1,
            })
            .collect()
    }

    /// Three English verses; Swahili has all three, Tagalog lacks verse 3. Cross-references:
    /// 1 → 2, 3 and 2 → 1 in Swahili; 1 → 2 and 2 → 3 in Tagalog.
    fn dataset() -> Dataset {
        let t = |lang: &str, task: &str| (lang.to_string(), task.to_string(), "test".to_string());
        Dataset {
            card: Card {
                name: "tiny".into(),
                synthetic: false,
                zero_shot: false,
                description: String::new(),
                sources: Vec::new(),
                languages: vec!["sw".into(), "tl".into()],
                pivot: "en".into(),
                tasks: vec!["crossref".into(), "translation".into()],
                splits: BTreeMap::new(),
                counts: BTreeMap::new(),
                format_version: clirlab_data::format::FORMAT_VERSION,
                files: BTreeMap::new(),
            },
            corpus: BTreeMap::from([("test".to_string(), docs(&["en:1", "en:2", "en:3"]))]),
            queries: BTreeMap::from([
                (("sw".to_string(), "test".to_string()), docs(&["sw:1", "sw:2", "sw:3"])),
                (("tl".to_string(), "test".to_string()), docs(&["tl:1", "tl:2"])),
            ]),
            documents: BTreeMap::new(),
            qrels: BTreeMap::from([
                (
                    t("sw", "translation"),
                    judged(&[("sw:1", "en:1"), ("sw:2", "en:2"), ("sw:3", "en:3")]),
                ),
                (
                    t("sw", "crossref"),
                    judged(&[("sw:1", "en:2"), ("sw:1", "en:3"), ("sw:2", "en:1")]),
                ),
                (t("tl", "translation"), judged(&[("tl:1", "en:1"), ("tl:2", "en:2")])),
                (t("tl", "crossref"), judged(&[("tl:1", "en:2"), ("tl:2", "en:3")])),
            ]),
            mono: Vec::new(),
            cross: BTreeMap::new(),
            bitext: BTreeMap::new(),
            links: Vec::new(),
            negatives: Default::default(),
            units: BTreeMap::new(),
        }
    }

    fn data(max_test_queries: Option<usize>) -> DataConfig {
        DataConfig {
            languages: vec!["sw".into(), "tl".into()],
            max_test_queries,
            ..DataConfig::default()
        }
    }

    /// Scores from a table of (query id, document id); 0 elsewhere.
    struct Table(HashMap<(String, String), f32>);

    impl Ranker for Table {
        fn rank_locating(
            &self,
            queries: &[Doc],
            corpus: &[Doc],
            k: usize,
            locate: &[Vec<usize>],
        ) -> Result<Vec<(Ranking, Vec<usize>)>> {
            let ids: Vec<&str> = corpus.iter().map(|d| d.id.as_str()).collect();
            Ok(queries
                .iter()
                .zip(locate)
                .map(|(q, wanted)| {
                    let scored: Vec<(usize, f32)> = corpus
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (i, *self.0.get(&(q.id.clone(), d.id.clone())).unwrap_or(&0.0)))
                        .collect();
                    (rank_scored(scored.clone(), &ids, k), full_ranks(&scored, &ids, wanted))
                })
                .collect())
        }
    }

    fn table(rows: &[(&str, &str, f32)]) -> Table {
        Table(
            rows.iter()
                .map(|(q, d, s)| ((q.to_string(), d.to_string()), *s))
                .collect(),
        )
    }

    fn run_one(setting: RetrievalSetting, ranker: &Table, data: &DataConfig, k: usize) -> SplitRun {
        let mut runs = run_settings(ranker, &dataset(), data, k, &[setting], Split::Test, "r").unwrap();
        assert_eq!(runs.len(), 1);
        runs.remove(0).1
    }

    fn group<'a>(split: &'a SplitRun, lang: &str, task: &str) -> Option<&'a super::super::QueryGroup> {
        split.groups.iter().find(|g| g.lang == lang && g.task == task)
    }

    fn judgments(g: &super::super::QueryGroup, query: &str) -> Vec<String> {
        let all = ["en", "sw", "tl"]
            .iter()
            .flat_map(|l| (1..=3).map(move |k| format!("{l}:{k}")));
        all.filter(|d| g.qrels.get(query, d).is_some()).collect()
    }

    #[test]
    fn monolingual_judgments_are_same_language_versions_without_the_query() {
        let split = run_one(RetrievalSetting::Monolingual, &table(&[]), &data(None), 100);
        // Translation's only relevant verse is the query itself: no group in any language.
        assert!(split.groups.iter().all(|g| g.task != "translation"));
        let sw = group(&split, "sw", "crossref").unwrap();
        assert_eq!(sw.query_ids, ["sw:1", "sw:2"]);
        assert_eq!(judgments(sw, "sw:1"), ["sw:2", "sw:3"]);
        assert_eq!(judgments(sw, "sw:2"), ["sw:1"]);
        // tl:2 → verse 3, which Tagalog lacks: no judgment left, no query.
        let tl = group(&split, "tl", "crossref").unwrap();
        assert_eq!(tl.query_ids, ["tl:1"]);
        assert_eq!(judgments(tl, "tl:1"), ["tl:2"]);
        // English takes the union of both languages' cross-references.
        let en = group(&split, "en", "crossref").unwrap();
        assert_eq!(en.query_ids, ["en:1", "en:2"]);
        assert_eq!(judgments(en, "en:1"), ["en:2", "en:3"]);
        assert_eq!(judgments(en, "en:2"), ["en:1", "en:3"]);
        assert!(en.rank_distance.is_none());
        // Every query ranks its language's other texts, never itself.
        let mut trec = Vec::new();
        split.run.write_trec(&mut trec).unwrap();
        let trec = String::from_utf8(trec).unwrap();
        for line in trec.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_ne!(f[0], f[2], "{line}");
            assert_eq!(f[0][..2], f[2][..2], "{line}");
        }
        assert_eq!(trec.lines().filter(|l| l.starts_with("sw:1 ")).count(), 2);
        assert_eq!(trec.lines().filter(|l| l.starts_with("en:3 ")).count(), 2);
    }

    #[test]
    fn multilingual_pool_judgments_self_exclusion_and_rank_distance() {
        // sw:1 scores itself best; without it, its order over the pool of eight is en:1, sw:2,
        // en:2, en:3, tl:1, sw:3, tl:2.
        let ranker = table(&[
            ("sw:1", "sw:1", 1.0),
            ("sw:1", "en:1", 0.9),
            ("sw:1", "sw:2", 0.8),
            ("sw:1", "en:2", 0.7),
            ("sw:1", "en:3", 0.6),
            ("sw:1", "tl:1", 0.5),
            ("sw:1", "sw:3", 0.2),
            ("sw:1", "tl:2", 0.1),
        ]);
        let split = run_one(RetrievalSetting::Multilingual, &ranker, &data(None), 2);
        let tr = group(&split, "sw", "translation").unwrap();
        assert_eq!(tr.query_ids, ["sw:1", "sw:2", "sw:3"]);
        // The same verse in English and the other language, not the query's own text.
        assert_eq!(judgments(tr, "sw:1"), ["en:1", "tl:1"]);
        assert_eq!(judgments(tr, "sw:3"), ["en:3"]);
        let cr = group(&split, "sw", "crossref").unwrap();
        assert_eq!(judgments(cr, "sw:1"), ["en:2", "en:3", "sw:2", "sw:3", "tl:2"]);
        // Top 2, the query's own (best-scored) text left out.
        let mut trec = Vec::new();
        split.run.write_trec(&mut trec).unwrap();
        let trec = String::from_utf8(trec).unwrap();
        let sw1: Vec<&str> = trec
            .lines()
            .filter(|l| l.starts_with("sw:1 "))
            .map(|l| l.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(sw1, ["en:1", "sw:2"]);
        // Rank distance by hand. Translation: verse 1 at ranks 1 (en) and 5 (tl) → 4.
        let rd = tr.rank_distance.as_ref().unwrap();
        assert_eq!(rd["sw:1"], 4.0);
        // sw:3's verse is in English only (its own is left out): no rank distance.
        assert!(!rd.contains_key("sw:3"));
        // Cross-references: verse 2 at 3 (en), 2 (sw), 7 (tl) → (1 + 4 + 5) / 3; verse 3 at 4
        // (en) and 6 (sw) → 2; the query's value is their mean.
        let rd = cr.rank_distance.as_ref().unwrap();
        assert!((rd["sw:1"] - (10.0 / 3.0 + 2.0) / 2.0).abs() < 1e-12, "{}", rd["sw:1"]);
        // Tagalog queries are in the pool's setting too, and only low-resource queries are.
        assert!(group(&split, "tl", "translation").is_some());
        assert!(split.groups.iter().all(|g| g.lang != "en"));
    }

    #[test]
    fn own_documents_make_monolingual_translation_and_stay_in_the_pool() {
        // Swahili documents of its own (a second translation, same keys): no document is a
        // query's own text, so every version of a relevant key counts, the query's key included.
        let mut ds = dataset();
        let second: Vec<Doc> = ["sw:1", "sw:2", "sw:3"]
            .iter()
            .map(|id| Doc {
                id: id.to_string(),
                text: format!("second translation of {id}"),
            })
            .collect();
        ds.documents.insert(("sw".into(), "test".into()), second);
        let ranker = table(&[("sw:1", "sw:1", 1.0), ("sw:1", "en:1", 0.9)]);
        let mut runs = run_settings(
            &ranker,
            &ds,
            &data(None),
            100,
            &[RetrievalSetting::Monolingual, RetrievalSetting::Multilingual],
            Split::Test,
            "r",
        )
        .unwrap();
        let (_, multi) = runs.pop().unwrap();
        let (_, mono) = runs.pop().unwrap();
        let tr = group(&mono, "sw", "translation").unwrap();
        assert_eq!(tr.query_ids, ["sw:1", "sw:2", "sw:3"]);
        assert_eq!(judgments(tr, "sw:1"), ["sw:1"]);
        assert_eq!(
            judgments(group(&mono, "sw", "crossref").unwrap(), "sw:1"),
            ["sw:2", "sw:3"]
        );
        // Tagalog has no documents of its own: its own text is still left out.
        assert!(group(&mono, "tl", "translation").is_none());
        let tr = group(&multi, "sw", "translation").unwrap();
        assert_eq!(judgments(tr, "sw:1"), ["en:1", "sw:1", "tl:1"]);
        let mut trec = Vec::new();
        multi.run.write_trec(&mut trec).unwrap();
        let first = String::from_utf8(trec).unwrap().lines().next().unwrap().to_string();
        assert!(first.starts_with("sw:1 Q0 sw:1 1 "), "{first}");
        // Ranks 1 (sw) and 2 (en) and tl:1 behind both zero-scored ties.
        assert!(tr.rank_distance.as_ref().unwrap().contains_key("sw:1"));
    }

    #[test]
    fn ties_rank_by_document_id_descending_over_the_whole_corpus() {
        let ids = ["d-a", "d-b", "d-c", "d-d"];
        let scored = vec![(0, 0.5), (1, 0.9), (2, 0.5), (3, 0.1)];
        // d-b, then d-c before d-a (the tie), then d-d.
        assert_eq!(full_ranks(&scored, &ids, &[0, 1, 2, 3]), [3, 1, 2, 4]);
        let top = rank_scored(scored, &ids, 4);
        assert_eq!(top.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2, 0, 3]);
        assert_eq!(mean_pair_distance(&[3, 2, 7]), Some(10.0 / 3.0));
        assert_eq!(mean_pair_distance(&[5]), None);
    }

    #[test]
    fn a_query_sample_draws_queries_but_keeps_the_pool() {
        let ranker = table(&[]);
        let split = run_one(RetrievalSetting::Multilingual, &ranker, &data(Some(1)), 100);
        let queries: HashSet<&str> = split
            .groups
            .iter()
            .flat_map(|g| g.query_ids.iter().map(String::as_str))
            .collect();
        // One query per language, each ranking the whole pool but itself.
        assert_eq!(queries.len(), 2, "{queries:?}");
        let mut trec = Vec::new();
        split.run.write_trec(&mut trec).unwrap();
        let trec = String::from_utf8(trec).unwrap();
        for q in &queries {
            assert_eq!(trec.lines().filter(|l| l.starts_with(&format!("{q} "))).count(), 7);
        }
        // The English queries of the monolingual setting are sampled the same way.
        let mono = run_one(RetrievalSetting::Monolingual, &ranker, &data(Some(1)), 100);
        let sampled = super::super::sample_queries(&dataset().corpus["test"], 1, "en");
        let en_queries: HashSet<&str> = mono
            .groups
            .iter()
            .filter(|g| g.lang == "en")
            .flat_map(|g| g.query_ids.iter().map(String::as_str))
            .collect();
        assert!(
            en_queries.iter().all(|q| *q == sampled[0].id),
            "{en_queries:?} {sampled:?}"
        );
    }

    #[test]
    fn unaligned_ids_are_refused_naming_the_key() {
        let mut d = dataset();
        d.queries.get_mut(&("tl".to_string(), "test".to_string())).unwrap()[1].id = "x2".into();
        let Err(e) = run_settings(
            &table(&[]),
            &d,
            &data(None),
            100,
            &[RetrievalSetting::Monolingual],
            Split::Test,
            "r",
        ) else {
            panic!("unaligned ids were accepted");
        };
        let e = e.to_string();
        assert!(
            e.contains("retrieval.settings") && e.contains("`x2`") && e.contains("tl:<key>"),
            "{e}"
        );
        // Only the cross-lingual setting: nothing to do, no check.
        assert!(
            run_settings(
                &table(&[]),
                &d,
                &data(None),
                100,
                &[RetrievalSetting::CrossLingual],
                Split::Test,
                "r"
            )
            .unwrap()
            .is_empty()
        );
    }
}
