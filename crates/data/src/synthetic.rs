//! The built-in **synthetic** bilingual data set, generated from a seed so that tests and a
//! first run need nothing from outside.
//!
//! English-like documents are drawn from topics (each with sub-topics) over a pseudo-word
//! vocabulary. Each "low-resource" language is a noisy lexical mapping of English: every
//! English word has one or two translations (synonyms), function words are sometimes dropped
//! and neighbouring words sometimes swap places. Only a small share of training documents has
//! cross-lingual pairs ("little parallel data"). Queries are in the low-resource language,
//! documents in English; the source document of a query has relevance 2 and the other
//! documents of its sub-topic relevance 1.
//!
//! Each training document gives a link (its query, the document), rendered in English and in
//! every low-resource language (the language has text about every topic; only the
//! translation pairs and bitext are scarce): the pairs of the rendered design.

use super::format::{Card, Dataset, Doc, Judgment, Link, Pair};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The data set name that selects the synthetic set (`data.dataset`).
pub const NAME: &str = "synthetic";

/// The single retrieval task of the synthetic set: find the source document and its sub-topic.
pub const TASK: &str = "related";

/// The kind of the synthetic training links: a training document's query and the document.
pub const LINK_KIND: &str = "relevance";

/// Generation parameters (`data.synthetic` in an experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Seed of the data itself (independent of a cell's training seed).
    pub seed: u64,
    /// Topics (each a vocabulary of its own).
    pub topics: usize,
    /// Sub-topics per topic (documents of one sub-topic are relevance 1 to each other's queries).
    pub subtopics_per_topic: usize,
    /// Documents per topic, over all splits.
    pub docs_per_topic: usize,
    /// Topic words per topic.
    pub words_per_topic: usize,
    /// Words shared by every topic.
    pub general_words: usize,
    /// Words per document.
    pub doc_len: usize,
    /// Words per query.
    pub query_len: usize,
    /// Share of training documents that have cross-lingual pairs and bitext.
    pub parallel_share: f64,
    /// Probability that a translated word uses its alternative synonym.
    pub noise: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            topics: 30,
            subtopics_per_topic: 4,
            docs_per_topic: 40,
            words_per_topic: 16,
            general_words: 200,
            doc_len: 24,
            query_len: 6,
            parallel_share: 0.25,
            noise: 0.15,
        }
    }
}

/// A synthetic-data setting that cannot generate a usable data set; the key is one of
/// [`SyntheticConfig`]'s fields.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyntheticConfigError {
    /// A count below its minimum.
    #[error("`{key}` must be at least {min}{why}, found {found}")]
    TooSmall {
        /// The field.
        key: &'static str,
        /// The least value that works.
        min: usize,
        /// Why the minimum is what it is (empty, or a parenthesis with a leading space).
        why: &'static str,
        /// The value given.
        found: usize,
    },
    /// Fewer words per topic than sub-topics (each sub-topic needs a word of its own).
    #[error("`words_per_topic` must be at least `subtopics_per_topic`, found {words} < {subtopics}")]
    FewerWordsThanSubtopics {
        /// `words_per_topic`.
        words: usize,
        /// `subtopics_per_topic`.
        subtopics: usize,
    },
    /// A probability outside [0, 1].
    #[error("`{key}` must lie in [0, 1], found {found}")]
    NotAProbability {
        /// The field.
        key: &'static str,
        /// The value given.
        found: f64,
    },
}

impl SyntheticConfigError {
    /// The offending field of [`SyntheticConfig`].
    pub fn key(&self) -> &'static str {
        match self {
            SyntheticConfigError::TooSmall { key, .. } | SyntheticConfigError::NotAProbability { key, .. } => key,
            SyntheticConfigError::FewerWordsThanSubtopics { .. } => "words_per_topic",
        }
    }

    /// What the field expects.
    pub fn expected(&self) -> String {
        match self {
            SyntheticConfigError::TooSmall { min, why, .. } => format!("at least {min}{why}"),
            SyntheticConfigError::FewerWordsThanSubtopics { subtopics, .. } => {
                format!("at least `subtopics_per_topic` ({subtopics})")
            }
            SyntheticConfigError::NotAProbability { .. } => "a value in [0, 1]".into(),
        }
    }

    /// What was found.
    pub fn found(&self) -> Option<String> {
        Some(match self {
            SyntheticConfigError::TooSmall { found, .. } => found.to_string(),
            SyntheticConfigError::FewerWordsThanSubtopics { words, .. } => words.to_string(),
            SyntheticConfigError::NotAProbability { found, .. } => found.to_string(),
        })
    }
}

impl SyntheticConfig {
    /// Checks that the settings can generate a data set with train, validation and test
    /// documents; the error names the field.
    pub fn validate(&self) -> Result<(), SyntheticConfigError> {
        let positive = [
            ("topics", self.topics),
            ("subtopics_per_topic", self.subtopics_per_topic),
            ("words_per_topic", self.words_per_topic),
            ("general_words", self.general_words),
            ("doc_len", self.doc_len),
            ("query_len", self.query_len),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(SyntheticConfigError::TooSmall {
                    key,
                    min: 1,
                    why: "",
                    found: v,
                });
            }
        }
        if self.docs_per_topic < 4 {
            return Err(SyntheticConfigError::TooSmall {
                key: "docs_per_topic",
                min: 4,
                why: " (train, validation and test need documents)",
                found: self.docs_per_topic,
            });
        }
        if self.words_per_topic < self.subtopics_per_topic {
            return Err(SyntheticConfigError::FewerWordsThanSubtopics {
                words: self.words_per_topic,
                subtopics: self.subtopics_per_topic,
            });
        }
        for (key, v) in [("parallel_share", self.parallel_share), ("noise", self.noise)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SyntheticConfigError::NotAProbability { key, found: v });
            }
        }
        Ok(())
    }
}

struct Lexicon {
    general: Vec<String>,
    /// topic → sub-topic → words
    topical: Vec<Vec<Vec<String>>>,
}

/// Pseudo-words from a syllable inventory; `taken` keeps words unique across languages.
fn make_words(
    rng: &mut ChaCha8Rng,
    n: usize,
    onsets: &[&str],
    vowels: &[&str],
    taken: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let syllables = rng.gen_range(2..=3);
        let word: String = (0..syllables)
            .map(|_| format!("{}{}", onsets.choose(rng).unwrap(), vowels.choose(rng).unwrap()))
            .collect();
        if taken.insert(word.clone()) {
            out.push(word);
        }
    }
    out
}

const EN_ONSETS: &[&str] = &[
    "p", "t", "k", "b", "d", "g", "m", "n", "s", "l", "r", "f", "v", "h", "st", "tr",
];
const EN_VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ea", "ou"];
const LR_ONSETS: &[&str] = &[
    "ny", "mb", "nd", "ng", "w", "y", "z", "ch", "sh", "kw", "j", "th", "l", "m",
];
const LR_VOWELS: &[&str] = &["a", "e", "i", "o", "u", "aa", "ii", "uu"];

/// A noisy lexical mapping English → one low-resource language.
struct Translator {
    /// English word → its translations (first is the usual one).
    table: BTreeMap<String, Vec<String>>,
    droppable: BTreeSet<String>,
    noise: f64,
}

impl Translator {
    fn translate(&self, english: &[&str], rng: &mut ChaCha8Rng) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(english.len());
        for w in english {
            if self.droppable.contains(*w) && rng.gen_bool(0.5) {
                continue;
            }
            let options = &self.table[*w];
            let pick = if options.len() > 1 && rng.gen_bool(self.noise) {
                1
            } else {
                0
            };
            out.push(options[pick].clone());
        }
        // Word order differs a little: swap some neighbours.
        for i in 1..out.len() {
            if rng.gen_bool(self.noise) {
                out.swap(i - 1, i);
            }
        }
        out
    }
}

struct GeneratedDoc {
    id: String,
    topic: usize,
    subtopic: usize,
    words: Vec<String>,
    split: &'static str,
}

/// Zipf-like index into the general vocabulary: frequent words dominate, as in real text.
fn zipf_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let u: f64 = rng.r#gen();
    ((n as f64).powf(u) - 1.0).floor().min((n - 1) as f64) as usize
}

fn sample_text(
    rng: &mut ChaCha8Rng,
    lex: &Lexicon,
    topic: usize,
    sub: usize,
    len: usize,
    topical_share: f64,
) -> Vec<String> {
    (0..len)
        .map(|_| {
            let r: f64 = rng.r#gen();
            if r < topical_share * 0.6 {
                lex.topical[topic][sub].choose(rng).unwrap().clone()
            } else if r < topical_share {
                let other = rng.gen_range(0..lex.topical[topic].len());
                lex.topical[topic][other].choose(rng).unwrap().clone()
            } else {
                lex.general[zipf_index(rng, lex.general.len())].clone()
            }
        })
        .collect()
}

/// Generates the synthetic data set for the given low-resource language codes.
pub fn generate(cfg: &SyntheticConfig, languages: &[String]) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut taken = BTreeSet::new();
    let general = make_words(&mut rng, cfg.general_words, EN_ONSETS, EN_VOWELS, &mut taken);
    let per_sub = cfg.words_per_topic / cfg.subtopics_per_topic;
    let topical: Vec<Vec<Vec<String>>> = (0..cfg.topics)
        .map(|_| {
            let words = make_words(
                &mut rng,
                per_sub * cfg.subtopics_per_topic,
                EN_ONSETS,
                EN_VOWELS,
                &mut taken,
            );
            words.chunks(per_sub).map(|c| c.to_vec()).collect()
        })
        .collect();
    let lex = Lexicon { general, topical };

    let translators: Vec<Translator> = languages
        .iter()
        .map(|_| {
            let english: Vec<&String> = lex
                .general
                .iter()
                .chain(lex.topical.iter().flatten().flatten())
                .collect();
            let mut table = BTreeMap::new();
            for w in &english {
                let n = if rng.gen_bool(0.3) { 2 } else { 1 };
                table.insert((*w).clone(), make_words(&mut rng, n, LR_ONSETS, LR_VOWELS, &mut taken));
            }
            // The most frequent general words behave like function words.
            let droppable = lex.general.iter().take(cfg.general_words / 10).cloned().collect();
            Translator {
                table,
                droppable,
                noise: cfg.noise,
            }
        })
        .collect();

    // Documents, split by position within each topic so every split covers every topic.
    let mut docs = Vec::new();
    for topic in 0..cfg.topics {
        for k in 0..cfg.docs_per_topic {
            let sub = k % cfg.subtopics_per_topic;
            let frac = k as f64 / cfg.docs_per_topic as f64;
            let split = if frac < 0.6 {
                "train"
            } else if frac < 0.75 {
                "validation"
            } else {
                "test"
            };
            let words = sample_text(&mut rng, &lex, topic, sub, cfg.doc_len, 0.5);
            docs.push(GeneratedDoc {
                id: format!("en:t{topic}d{k}"),
                topic,
                subtopic: sub,
                words,
                split,
            });
        }
    }

    let mut corpus: BTreeMap<String, Vec<Doc>> = BTreeMap::new();
    for d in docs.iter().filter(|d| d.split != "train") {
        corpus.entry(d.split.to_string()).or_default().push(Doc {
            id: d.id.clone(),
            text: d.words.join(" "),
        });
    }

    let english_query = |rng: &mut ChaCha8Rng, d: &GeneratedDoc| -> Vec<String> {
        // A query restates the document's focus: mostly its own topical words.
        let topical: Vec<&String> = d.words.iter().filter(|w| !lex.general.contains(w)).collect();
        (0..cfg.query_len)
            .map(|_| match topical.choose(rng) {
                Some(w) if rng.gen_bool(0.8) => (*w).clone(),
                _ => sample_text(rng, &lex, d.topic, d.subtopic, 1, 0.7).remove(0),
            })
            .collect()
    };

    let mut queries: BTreeMap<(String, String), Vec<Doc>> = BTreeMap::new();
    let mut qrels: BTreeMap<(String, String, String), Vec<Judgment>> = BTreeMap::new();
    let mut mono = Vec::new();
    let mut cross: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    let mut bitext: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    let mut links = Vec::new();
    let mut units: BTreeMap<String, Vec<Doc>> = BTreeMap::new();
    let mut renderings = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_7e47);
    for d in &docs {
        let doc_text = d.words.join(" ");
        let q_en = english_query(&mut rng, d);
        let q_en_refs: Vec<&str> = q_en.iter().map(String::as_str).collect();
        if d.split == "train" {
            let (query_unit, passage_unit) = (format!("q:{}", d.id), format!("d:{}", d.id));
            links.push(Link {
                id: format!("rel:{}", d.id),
                kind: LINK_KIND.to_string(),
                query: query_unit.clone(),
                passage: passage_unit.clone(),
            });
            let en_units = units.entry("en".to_string()).or_default();
            en_units.push(Doc {
                id: query_unit.clone(),
                text: q_en.join(" "),
            });
            en_units.push(Doc {
                id: passage_unit.clone(),
                text: doc_text.clone(),
            });
            mono.push(Pair {
                id: format!("mono:{}", d.id),
                query: q_en.join(" "),
                passage: doc_text.clone(),
            });
            let parallel = rng.gen_bool(cfg.parallel_share);
            for (lang, tr) in languages.iter().zip(&translators) {
                let q_lr = tr.translate(&q_en_refs, &mut rng).join(" ");
                let doc_refs: Vec<&str> = d.words.iter().map(String::as_str).collect();
                // Renderings of the other documents come from their own stream, so that the
                // translation pairs and everything after them stay as they were.
                let doc_lr = tr
                    .translate(&doc_refs, if parallel { &mut rng } else { &mut renderings })
                    .join(" ");
                let lr_units = units.entry(lang.clone()).or_default();
                lr_units.push(Doc {
                    id: query_unit.clone(),
                    text: q_lr.clone(),
                });
                lr_units.push(Doc {
                    id: passage_unit.clone(),
                    text: doc_lr.clone(),
                });
                if parallel {
                    cross.entry(lang.clone()).or_default().push(Pair {
                        id: format!("cross:{lang}:{}", d.id),
                        query: q_lr,
                        passage: doc_text.clone(),
                    });
                    bitext.entry(lang.clone()).or_default().push(Pair {
                        id: format!("bitext:{lang}:{}", d.id),
                        query: doc_lr,
                        passage: doc_text.clone(),
                    });
                }
            }
            continue;
        }
        for (lang, tr) in languages.iter().zip(&translators) {
            let qid = format!("{lang}:t{}d{}", d.topic, d.id.rsplit('d').next().unwrap());
            let text = tr.translate(&q_en_refs, &mut rng).join(" ");
            queries
                .entry((lang.clone(), d.split.to_string()))
                .or_default()
                .push(Doc { id: qid.clone(), text });
            let judged = qrels
                .entry((lang.clone(), TASK.to_string(), d.split.to_string()))
                .or_default();
            for other in docs
                .iter()
                .filter(|o| o.split == d.split && o.topic == d.topic && o.subtopic == d.subtopic)
            {
                let relevance = if other.id == d.id { 2 } else { 1 };
                judged.push(Judgment {
                    query_id: qid.clone(),
                    doc_id: other.id.clone(),
                    relevance,
                });
            }
        }
    }

    let mut counts = BTreeMap::new();
    for (split, c) in &corpus {
        counts.insert(format!("corpus.{split}"), c.len() as u64);
    }
    for ((lang, split), q) in &queries {
        counts.insert(format!("queries.{lang}.{split}"), q.len() as u64);
    }
    for ((lang, task, split), j) in &qrels {
        counts.insert(format!("qrels.{lang}.{task}.{split}"), j.len() as u64);
    }
    counts.insert("train.mono".into(), mono.len() as u64);
    for (lang, p) in &cross {
        counts.insert(format!("train.cross.{lang}"), p.len() as u64);
    }
    for (lang, p) in &bitext {
        counts.insert(format!("bitext.{lang}"), p.len() as u64);
    }
    counts.insert("train.links".into(), links.len() as u64);
    for (lang, u) in &units {
        counts.insert(format!("train.units.{lang}"), u.len() as u64);
    }
    Dataset {
        card: Card {
            name: NAME.into(),
            synthetic: true,
            zero_shot: false,
            description: format!(
                "SYNTHETIC bilingual data generated by clirlab (seed {}): pseudo-English documents and \
                 noisy lexical-mapping 'low-resource' languages; not real text",
                cfg.seed
            ),
            sources: Vec::new(),
            languages: languages.to_vec(),
            pivot: "en".into(),
            tasks: vec![TASK.into()],
            splits: BTreeMap::from([
                (
                    "train".to_string(),
                    vec!["first 60% of each topic's documents".to_string()],
                ),
                ("validation".to_string(), vec!["next 15%".to_string()]),
                ("test".to_string(), vec!["last 25%".to_string()]),
            ]),
            counts,
            format_version: super::format::FORMAT_VERSION,
            files: BTreeMap::new(),
        },
        corpus,
        queries,
        documents: BTreeMap::new(),
        qrels,
        mono,
        cross,
        bitext,
        links,
        negatives: BTreeMap::new(),
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Vec<String> {
        vec!["sx".into(), "sy".into()]
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let cfg = SyntheticConfig::default();
        let a = generate(&cfg, &langs());
        assert_eq!(a, generate(&cfg, &langs()));
        let b = generate(&SyntheticConfig { seed: 8, ..cfg }, &langs());
        assert_ne!(a.mono, b.mono);
    }

    #[test]
    fn test_documents_never_appear_in_training_pairs() {
        let d = generate(&SyntheticConfig::default(), &langs());
        let held_out: BTreeSet<&str> = d.corpus.values().flatten().map(|d| d.text.as_str()).collect();
        let training = d
            .mono
            .iter()
            .chain(d.cross.values().flatten())
            .chain(d.bitext.values().flatten());
        for p in training {
            assert!(
                !held_out.contains(p.passage.as_str()),
                "{} leaks a held-out document",
                p.id
            );
        }
    }

    #[test]
    fn qrels_point_at_existing_queries_and_documents() {
        let d = generate(&SyntheticConfig::default(), &langs());
        for ((lang, _task, split), judged) in &d.qrels {
            let qids: BTreeSet<&str> = d.queries[&(lang.clone(), split.clone())]
                .iter()
                .map(|q| q.id.as_str())
                .collect();
            let dids: BTreeSet<&str> = d.corpus[split].iter().map(|d| d.id.as_str()).collect();
            for j in judged {
                assert!(qids.contains(j.query_id.as_str()) && dids.contains(j.doc_id.as_str()));
            }
            // Every query has exactly one source document.
            for q in &qids {
                assert_eq!(
                    judged.iter().filter(|j| j.query_id == *q && j.relevance == 2).count(),
                    1
                );
            }
        }
    }

    #[test]
    fn parallel_data_is_scarce_and_languages_differ() {
        let cfg = SyntheticConfig::default();
        let d = generate(&cfg, &langs());
        let cross = d.cross["sx"].len() as f64;
        let share = cross / d.mono.len() as f64;
        assert!(share > 0.1 && share < 0.4, "cross-lingual share {share}");
        assert_ne!(
            d.queries[&("sx".into(), "test".into())][0].text,
            d.queries[&("sy".into(), "test".into())][0].text
        );
        assert!(d.card.description.contains("SYNTHETIC"));
    }

    #[test]
    fn validation_rejects_impossible_settings() {
        let cfg = SyntheticConfig {
            docs_per_topic: 2,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("docs_per_topic"));
        let cfg = SyntheticConfig {
            noise: 1.5,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("noise"));
    }
}
