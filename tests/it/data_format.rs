//! The on-disk dataset format: round trip, normalisation, atomic replacement and the errors a
//! damaged data set produces. All data is made up here.

use clirlab::data::format::{CARD_FILE, Card, Dataset, Doc, Judgment, Link, Pair, read_card, verify_files};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn doc(id: &str, text: &str) -> Doc {
    Doc {
        id: id.into(),
        text: text.into(),
    }
}

fn pair(id: &str, q: &str, p: &str) -> Pair {
    Pair {
        id: id.into(),
        query: q.into(),
        passage: p.into(),
    }
}

fn judgment(q: &str, d: &str, rel: i32) -> Judgment {
    Judgment {
        query_id: q.into(),
        doc_id: d.into(),
        relevance: rel,
    }
}

fn sample() -> Dataset {
    let card = Card {
        name: "tiny".into(),
        synthetic: true,
        zero_shot: false,
        description: "made-up test data".into(),
        sources: vec![],
        languages: vec!["xx".into()],
        pivot: "en".into(),
        tasks: vec!["translation".into()],
        splits: BTreeMap::from([("test".into(), vec!["1".into()])]),
        counts: BTreeMap::from([("aligned.xx".into(), 3)]),
        format_version: 1,
        files: BTreeMap::new(),
    };
    Dataset {
        card,
        corpus: BTreeMap::from([(
            "test".into(),
            vec![doc("en:1", "the red house"), doc("en:2", "a blue boat")],
        )]),
        queries: BTreeMap::from([(
            ("xx".into(), "test".into()),
            vec![doc("xx:1", "ruj haus"), doc("xx:2", "blu bot")],
        )]),
        documents: BTreeMap::from([(
            ("xx".into(), "test".into()),
            vec![doc("xx:1", "rooj hows"), doc("xx:2", "bloo boht")],
        )]),
        qrels: BTreeMap::from([(
            ("xx".into(), "translation".into(), "test".into()),
            vec![judgment("xx:1", "en:1", 1), judgment("xx:2", "en:2", 2)],
        )]),
        mono: vec![pair("m1", "green tree", "a green tree")],
        cross: BTreeMap::from([("xx".into(), vec![pair("c1", "grin tri", "green tree")])]),
        bitext: BTreeMap::from([("xx".into(), vec![pair("b1", "grin tri", "green tree")])]),
        links: vec![Link {
            id: "xref:1+2".into(),
            kind: "crossref".into(),
            query: "1".into(),
            passage: "2".into(),
        }],
        negatives: BTreeMap::from([("xref:1+2".into(), vec!["3".into()])]),
        units: BTreeMap::from([
            (
                "en".into(),
                vec![doc("1", "green tree"), doc("2", "a tall tree"), doc("3", "a red boat")],
            ),
            ("xx".into(), vec![doc("1", "grin tri"), doc("2", "a tal tri")]),
        ]),
    }
}

/// Rewrites a data file and records its new hash, so that later checks (not the hash) fire.
fn tamper(root: &Path, rel: &str, content: &str) {
    fs::write(root.join(rel), content).unwrap();
    let mut card = read_card(root).unwrap();
    let sha: String = Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    card.files.insert(rel.into(), sha);
    fs::write(root.join(CARD_FILE), serde_json::to_vec_pretty(&card).unwrap()).unwrap();
}

fn load_err(root: &Path) -> String {
    format!("{:#}", Dataset::load(root).expect_err("load should fail"))
}

#[test]
fn round_trip_keeps_everything_and_records_counts_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    let ds = sample();
    ds.save(&root).unwrap();
    let loaded = Dataset::load(&root).unwrap();
    assert_eq!(loaded.corpus, ds.corpus);
    assert_eq!(loaded.queries, ds.queries);
    assert_eq!(loaded.documents, ds.documents);
    assert_eq!(loaded.qrels, ds.qrels);
    assert_eq!(loaded.mono, ds.mono);
    assert_eq!(loaded.cross, ds.cross);
    assert_eq!(loaded.bitext, ds.bitext);
    assert_eq!(loaded.links, ds.links);
    assert_eq!(loaded.units, ds.units);
    assert_eq!(loaded.negatives, ds.negatives);
    let card = &loaded.card;
    assert_eq!(card.counts["corpus.test"], 2);
    assert_eq!(card.counts["documents.xx.test"], 2);
    assert_eq!(card.counts["queries.xx.test"], 2);
    assert_eq!(card.counts["qrels.xx.translation.test"], 2);
    assert_eq!(card.counts["train.mono"], 1);
    assert_eq!(card.counts["train.cross.xx"], 1);
    assert_eq!(card.counts["bitext.xx"], 1);
    assert_eq!(card.counts["train.links"], 1);
    assert_eq!(card.counts["train.units.en"], 3);
    assert_eq!(card.counts["train.negatives"], 1);
    assert_eq!(card.counts["aligned.xx"], 3, "informational counts are kept");
    let files: Vec<&str> = card.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "bitext/xx.tsv",
            "corpus/test.tsv",
            "documents/xx/test.tsv",
            "qrels/xx/translation.test.qrels",
            "queries/xx/test.tsv",
            "train/cross.xx.tsv",
            "train/links.tsv",
            "train/mono.tsv",
            "train/negatives.tsv",
            "train/units/en.tsv",
            "train/units/xx.tsv"
        ]
    );
    verify_files(&root, card).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("qrels/xx/translation.test.qrels")).unwrap(),
        "xx:1 0 en:1 1\nxx:2 0 en:2 2\n"
    );
    // Saving the loaded set again gives the same card.
    let again = dir.path().join("again");
    loaded.save(&again).unwrap();
    assert_eq!(read_card(&again).unwrap(), loaded.card);
}

#[test]
fn text_is_normalised_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    let mut ds = sample();
    ds.corpus.get_mut("test").unwrap()[0].text = "  the\tred\n\nhouse  ".into();
    ds.mono[0].passage = "a\r\ngreen   tree".into();
    ds.save(&root).unwrap();
    let loaded = Dataset::load(&root).unwrap();
    assert_eq!(loaded.corpus["test"][0].text, "the red house");
    assert_eq!(loaded.mono[0].passage, "a green tree");
}

#[test]
fn invalid_data_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    sample().save(&root).unwrap();
    let before = read_card(&root).unwrap();

    let mut empty_text = sample();
    empty_text.corpus.get_mut("test").unwrap()[1].text = " \t ".into();
    let err = format!("{:#}", empty_text.save(&root).unwrap_err());
    assert!(err.contains("corpus/test.tsv record 2: text is empty"), "{err}");

    let mut bad_qrels = sample();
    bad_qrels.qrels.values_mut().next().unwrap()[0].doc_id = "en:404".into();
    let err = format!("{:#}", bad_qrels.save(&root).unwrap_err());
    assert!(err.contains("unknown doc id en:404"), "{err}");

    let mut spaced_id = sample();
    spaced_id.mono[0].id = "m 1".into();
    let err = format!("{:#}", spaced_id.save(&root).unwrap_err());
    assert!(err.contains("contains white space"), "{err}");

    let mut dup = sample();
    dup.mono.push(pair("m1", "another", "pair"));
    let err = format!("{:#}", dup.save(&root).unwrap_err());
    assert!(err.contains("train/mono.tsv record 2: duplicate id m1"), "{err}");

    let mut unknown_unit = sample();
    unknown_unit.links[0].passage = "404".into();
    let err = format!("{:#}", unknown_unit.save(&root).unwrap_err());
    assert!(err.contains("link xref:1+2 names unit 404"), "{err}");

    let mut stray = sample();
    stray.negatives.insert("no-such-link".into(), vec!["3".into()]);
    let err = format!("{:#}", stray.save(&root).unwrap_err());
    assert!(err.contains("negatives of link no-such-link"), "{err}");
    let mut unrendered = sample();
    unrendered.negatives.insert("xref:1+2".into(), vec!["77".into()]);
    let err = format!("{:#}", unrendered.save(&root).unwrap_err());
    assert!(err.contains("names negative 77"), "{err}");

    let mut dotted = sample();
    let docs = dotted.corpus.remove("test").unwrap();
    dotted.corpus.insert("te.st".into(), docs);
    assert!(dotted.save(&root).is_err());

    // The failed saves left the earlier data set untouched and no staging directories.
    assert_eq!(read_card(&root).unwrap(), before);
    Dataset::load(&root).unwrap();
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, ["tiny"]);
}

#[test]
fn damaged_links_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    sample().save(&root).unwrap();
    tamper(&root, "train/links.tsv", "xref:1+2\tcrossref\t1\n");
    let err = load_err(&root);
    assert!(
        err.contains("train/links.tsv:1: expected 4 tab-separated fields"),
        "{err}"
    );
    tamper(&root, "train/links.tsv", "xref:1+2\tcrossref\t1\t9\n");
    let err = load_err(&root);
    assert!(err.contains("names unit 9"), "{err}");
    sample().save(&root).unwrap();
    tamper(&root, "train/negatives.tsv", "xref:1+2 3\n");
    let err = load_err(&root);
    assert!(
        err.contains("train/negatives.tsv:1: expected 2 tab-separated fields"),
        "{err}"
    );
}

#[test]
fn saving_over_an_existing_set_replaces_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    let mut first = sample();
    first.bitext.insert("yy".into(), vec![pair("b9", "x", "y")]);
    first.save(&root).unwrap();
    assert!(root.join("bitext/yy.tsv").exists());
    sample().save(&root).unwrap();
    assert!(
        !root.join("bitext/yy.tsv").exists(),
        "files of the old set must not survive"
    );
    Dataset::load(&root).unwrap();
    let entries = fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 1, "no staging or trash directory is left");
}

#[test]
fn damaged_sets_fail_to_load_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tiny");
    let save = || {
        sample().save(&root).unwrap();
    };

    save();
    tamper(&root, "queries/xx/test.tsv", "xx:1\truj haus\nxx:2 blu bot\n");
    assert!(
        load_err(&root).contains("queries/xx/test.tsv:2: expected 2 tab-separated fields (query_id, text), found 1"),
        "{}",
        load_err(&root)
    );

    save();
    tamper(
        &root,
        "qrels/xx/translation.test.qrels",
        "xx:1 0 en:1 1\nxx:2 0 en:9 1\n",
    );
    let err = load_err(&root);
    assert!(
        err.contains("qrels/xx/translation.test.qrels:2: doc id en:9 is not in corpus/test.tsv"),
        "{err}"
    );

    save();
    tamper(&root, "qrels/xx/translation.test.qrels", "xx:7 0 en:1 1\n");
    let err = load_err(&root);
    assert!(
        err.contains("qrels/xx/translation.test.qrels:1: query id xx:7 is not in queries/xx/test.tsv"),
        "{err}"
    );

    save();
    tamper(&root, "qrels/xx/translation.test.qrels", "xx:1 0 en:1 high\n");
    assert!(load_err(&root).contains(":1: relevance \"high\" is not an integer"));

    save();
    tamper(&root, "train/mono.tsv", "m1\tgreen tree\n");
    let err = load_err(&root);
    assert!(
        err.contains("train/mono.tsv:1: expected 3 tab-separated fields (pair_id, query_text, passage_text), found 2"),
        "{err}"
    );

    save();
    tamper(&root, "corpus/test.tsv", "en:1\tthe red house\nen:2\ta blue boat");
    assert!(load_err(&root).contains("corpus/test.tsv: last line has no newline"));

    save();
    tamper(
        &root,
        "corpus/test.tsv",
        "en:1\tthe red house\nen:2\ta blue boat\nen:3\textra\n",
    );
    let err = load_err(&root);
    assert!(
        err.contains("corpus/test.tsv: 3 records, but card.json counts corpus.test = 2"),
        "{err}"
    );

    // Without a matching hash the change itself is reported.
    save();
    fs::write(root.join("train/cross.xx.tsv"), "c1\tgrin tri\tgreen trees\n").unwrap();
    let err = load_err(&root);
    assert!(err.contains("train/cross.xx.tsv: sha256"), "{err}");
    assert!(verify_files(&root, &read_card(&root).unwrap()).is_err());

    save();
    fs::write(root.join("corpus/stale.tsv"), "en:1\tx\n").unwrap();
    assert!(load_err(&root).contains("corpus/stale.tsv: file is not listed in card.json"));

    save();
    fs::remove_file(root.join("bitext/xx.tsv")).unwrap();
    assert!(load_err(&root).contains("bitext/xx.tsv: listed in card.json but unreadable"));

    save();
    fs::remove_file(root.join(CARD_FILE)).unwrap();
    assert!(load_err(&root).contains("card.json"));

    save();
    let mut card: serde_json::Value = serde_json::from_slice(&fs::read(root.join(CARD_FILE)).unwrap()).unwrap();
    card["surprise"] = serde_json::json!(1);
    fs::write(root.join(CARD_FILE), serde_json::to_vec(&card).unwrap()).unwrap();
    assert!(
        load_err(&root).contains("unknown field `surprise`"),
        "{}",
        load_err(&root)
    );

    save();
    let mut card = read_card(&root).unwrap();
    card.format_version = 2;
    fs::write(root.join(CARD_FILE), serde_json::to_vec(&card).unwrap()).unwrap();
    assert!(load_err(&root).contains("format_version 2 is not supported"));
}

#[test]
fn task_queries_are_the_judged_ones() {
    let mut ds = sample();
    ds.qrels.insert(
        ("xx".into(), "crossref".into(), "test".into()),
        vec![judgment("xx:2", "en:1", 1)],
    );
    let ids: Vec<&str> = ds
        .task_queries("xx", "crossref", "test")
        .iter()
        .map(|q| q.id.as_str())
        .collect();
    assert_eq!(ids, ["xx:2"]);
    assert_eq!(ds.task_queries("xx", "translation", "test").len(), 2);
    assert!(ds.task_queries("xx", "nothing", "test").is_empty());
}
