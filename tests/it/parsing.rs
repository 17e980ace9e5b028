//! Run and qrels files: accepted variations, and errors that name `file:line`.

use std::fmt::Write as _;
use std::io::Write as _;

use clirlab::eval::{EvalOptions, Qrels, Run, evaluate, parse_measures};

fn run_err(text: &str) -> String {
    format!("{:#}", Run::parse("results.test", text).expect_err("parse should fail"))
}

fn qrels_err(text: &str) -> String {
    format!("{:#}", Qrels::parse("qrels.test", text).expect_err("parse should fail"))
}

fn valid_run_lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("301 Q0 doc{i} {} {}.5 tag\n", i + 1, 100 - i))
        .collect()
}

#[test]
fn run_line_with_too_few_fields() {
    let text = valid_run_lines(16) + "301 Q0 doc99 17\n" + &valid_run_lines(2);
    assert_eq!(
        run_err(&text),
        "results.test:17: expected 6 whitespace-separated fields (qid Q0 docno rank score runid), found 4"
    );
}

#[test]
fn run_scores_must_be_numbers() {
    assert_eq!(
        run_err("301 Q0 a 1 1.5 tag\n301 Q0 b 2 abc tag\n"),
        "results.test:2: score \"abc\" is not a number"
    );
    assert_eq!(
        run_err("301 Q0 b 2 nan tag\n"),
        "results.test:1: score \"nan\" is not a number"
    );
    assert_eq!(
        run_err("301 Q0 b 2 1,5 tag\n"),
        "results.test:1: score \"1,5\" is not a number"
    );
}

#[test]
fn run_documents_appear_once_per_topic() {
    let text = "301 Q0 a 1 3 t\n302 Q0 a 1 3 t\n\n301 Q0 b 2 2 t\n302 Q0 b 2 2 t\n301 Q0 a 3 1 t\n";
    assert_eq!(
        run_err(text),
        "results.test:6: document \"a\" retrieved twice for topic \"301\" (first on line 1)"
    );
    // Grouped topics are checked as they end.
    let grouped = "301 Q0 a 1 3 t\n301 Q0 b 2 2 t\n301 Q0 a 3 1 t\n302 Q0 a 1 1 t\n";
    assert_eq!(
        run_err(grouped),
        "results.test:3: document \"a\" retrieved twice for topic \"301\" (first on line 1)"
    );
}

#[test]
fn run_topic_ids_must_be_utf8() {
    let mut bytes = b"301 Q0 a 1 3 t\n".to_vec();
    bytes.extend_from_slice(b"3\xff1 Q0 a 1 3 t\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.run");
    std::fs::write(&path, bytes).unwrap();
    let err = format!("{:#}", Run::from_path(&path).unwrap_err());
    assert_eq!(err, format!("{}:2: topic id is not valid UTF-8", path.display()));
}

#[test]
fn run_format_variations_trec_eval_accepts() {
    // Tabs, CRLF, blank and comment lines, padded scores, extra fields; runid from the last line.
    let text = "# header\r\n301\tQ0\ta\t1\t  2.5\tfirst extra words\r\n\n   \n302 Q0 b 1 -1e2 second\n#tail\n";
    let run = Run::parse("r", text).unwrap();
    assert_eq!((run.name(), run.num_topics(), run.len()), ("second", 2, 2));
    let mut out = Vec::new();
    run.write_trec(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "301 Q0 a 1 2.5 second\n302 Q0 b 1 -100 second\n"
    );
    let empty = Run::parse("r", "\n# nothing\n").unwrap();
    assert_eq!((empty.name(), empty.is_empty()), ("", true));
}

#[test]
fn qrels_lines_have_exactly_four_fields() {
    assert_eq!(
        qrels_err("301 0 a 1\n301 0 b\n"),
        "qrels.test:2: expected 4 whitespace-separated fields (qid iter docno rel), found 3"
    );
    assert_eq!(
        qrels_err("301 0 a 1 extra\n"),
        "qrels.test:1: expected 4 whitespace-separated fields (qid iter docno rel), found 5"
    );
}

#[test]
fn qrels_grades_are_integers_and_documents_judged_once() {
    assert_eq!(
        qrels_err("301 0 a 1\n\n301 0 b 1.5\n"),
        "qrels.test:3: relevance \"1.5\" is not an integer"
    );
    assert_eq!(
        qrels_err("301 0 a 1\n302 0 a 1\n301 0 a 0\n"),
        "qrels.test:3: document \"a\" judged twice for topic \"301\" (first on line 1)"
    );
    let q = Qrels::parse("q", "# comment\r\n302\t0\tb\t-1\r\n301 0 a 2\n").unwrap();
    assert_eq!((q.get("301", "a"), q.get("302", "b")), (Some(2), Some(-1)));
    assert_eq!(q.topic_ids().collect::<Vec<_>>(), ["301", "302"]);
}

#[test]
fn files_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.test");
    std::fs::write(&path, "301 Q0 a 1 1 t\n301 Q0 b\n").unwrap();
    let err = format!("{:#}", Run::from_path(&path).unwrap_err());
    assert!(
        err.ends_with(
            "results.test:2: expected 6 whitespace-separated fields (qid Q0 docno rank score runid), found 3"
        )
    );
    let missing = format!("{:#}", Qrels::from_path(&dir.path().join("nope")).unwrap_err());
    assert!(missing.starts_with("cannot read qrels file"), "{missing}");
    let missing = format!("{:#}", Run::from_path(&dir.path().join("nope")).unwrap_err());
    assert!(missing.starts_with("cannot read run file"), "{missing}");
}

/// A run big enough to be parsed in several pieces, with topics running across piece
/// boundaries and some lines out of topic order.
fn big_run() -> (String, Vec<(String, String, f64)>) {
    let mut text = String::new();
    let mut entries = Vec::new();
    let mut x: u64 = 7;
    for t in 0..3000 {
        for d in 0..120 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let score = (x >> 40) as f64 / 1000.0;
            // Every 50th topic is split in two halves, written far apart.
            let topic = if t % 50 == 0 && d >= 60 {
                format!("t{}", t + 25)
            } else {
                format!("t{t}")
            };
            let doc = if t % 50 == 0 && d >= 60 {
                format!("late{t}-{d}")
            } else {
                format!("doc-{d:03}-{}", x % 97)
            };
            writeln!(text, "{topic} Q0 {doc} {d} {score} big").unwrap();
            entries.push((topic, doc, score));
        }
    }
    (text, entries)
}

#[test]
fn large_files_parse_in_pieces_like_in_memory_runs() {
    let (text, entries) = big_run();
    assert!(text.len() > 9 << 20, "needs several 4 MiB pieces");
    let mut qrels = Qrels::new();
    let mut pushed = Run::new("big");
    for (i, (topic, doc, score)) in entries.iter().enumerate() {
        pushed.push(topic, doc, *score).unwrap();
        if i % 7 == 0 {
            qrels.insert(topic, doc, (i % 3) as i32).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.run");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let parsed = Run::from_path(&path).unwrap();
    assert_eq!((parsed.num_topics(), parsed.len()), (pushed.num_topics(), pushed.len()));
    let measures = parse_measures(&["all_trec"]).unwrap();
    let a = evaluate(&qrels, &parsed, &measures, &EvalOptions::default()).unwrap();
    let b = evaluate(&qrels, &pushed, &measures, &EvalOptions::default()).unwrap();
    assert_eq!(a.to_trec_eval_string(true), b.to_trec_eval_string(true));
}

#[test]
fn large_files_report_the_right_line() {
    let (text, _) = big_run();
    let lines: Vec<&str> = text.lines().collect();
    // A malformed line deep in the file, in a later piece.
    let mut bad = lines.clone();
    bad[300_000] = "t9 Q0 x";
    let err = run_err(&(bad.join("\n") + "\n"));
    assert!(err.starts_with("results.test:300001: expected 6"), "{err}");
    // A duplicate in a topic whose lines are far apart: t25's own block repeats a document that
    // the lines t25 took over from t0 already have.
    let mut dup = lines.clone();
    let own = lines.iter().position(|l| l.starts_with("t25 Q0 doc-")).unwrap();
    let doc = lines[own].split(' ').nth(2).unwrap();
    let early = lines.iter().position(|l| l.starts_with("t25 Q0 late0-")).unwrap();
    let replaced = format!("t25 Q0 {doc} 1 0.5 big");
    dup[early] = &replaced;
    let err = run_err(&(dup.join("\n") + "\n"));
    let expected = format!(
        "results.test:{}: document {doc:?} retrieved twice for topic \"t25\" (first on line {})",
        own + 1,
        early + 1
    );
    assert_eq!(err, expected);
}
