//! Your own benchmark end to end: a BEIR folder written here (English documents, Swahili-like
//! queries) is imported with `clirlab data import beir`, then an experiment names it in
//! `data.dataset` and `plan`, `run` and `report` go through; a malformed line is refused naming
//! file:line.

use crate::common::cli::{command, text};
use std::fs;
use std::path::Path;

const WORDS: [(&str, &str); 12] = [
    ("river", "mto"),
    ("boat", "mashua"),
    ("house", "nyumba"),
    ("tree", "mti"),
    ("child", "mtoto"),
    ("market", "soko"),
    ("rain", "mvua"),
    ("road", "barabara"),
    ("school", "shule"),
    ("water", "maji"),
    ("bread", "mkate"),
    ("fire", "moto"),
];

/// 48 documents of three words each; query i (English and Swahili) asks for document i with
/// two of its words. Queries 0-35 train, 36-41 validation, 42-47 test.
fn write_beir(dir: &Path) {
    fs::create_dir_all(dir.join("qrels")).unwrap();
    let words = |i: usize| [i % 12, (i / 12 + i * 5 + 1) % 12, (i * 7 + 3) % 12];
    let mut corpus = String::new();
    let mut en = String::new();
    let mut sw = String::new();
    for i in 0..48 {
        let w = words(i);
        corpus.push_str(&format!(
            "{{\"_id\": \"d{i}\", \"title\": \"note {i}\", \"text\": \"the {} and the {} near the {}\"}}\n",
            WORDS[w[0]].0, WORDS[w[1]].0, WORDS[w[2]].0
        ));
        en.push_str(&format!(
            "{{\"_id\": \"q{i}\", \"text\": \"{} {}\", \"language\": \"en\"}}\n",
            WORDS[w[0]].0, WORDS[w[1]].0
        ));
        sw.push_str(&format!(
            "{{\"_id\": \"q{i}\", \"text\": \"{} na {}\"}}\n",
            WORDS[w[0]].1, WORDS[w[1]].1
        ));
    }
    fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    fs::write(dir.join("queries.jsonl"), en).unwrap();
    fs::write(dir.join("queries.sw.jsonl"), sw).unwrap();
    let qrels = |range: std::ops::Range<usize>| {
        let mut s = String::from("query-id\tcorpus-id\tscore\n");
        for i in range {
            s.push_str(&format!("q{i}\td{i}\t1\n"));
        }
        s
    };
    fs::write(dir.join("qrels/train.tsv"), qrels(0..36)).unwrap();
    fs::write(dir.join("qrels/dev.tsv"), qrels(36..42)).unwrap();
    fs::write(dir.join("qrels/test.tsv"), qrels(42..48)).unwrap();
}

const EXPERIMENT: &str = "\
name: own_beir
description: an imported BEIR folder, end to end
data:
  dataset: my-beir
  languages: [sw]
  train_pairs: {design: translation_vs_english}
schedule: constant
model: {preset: tiny, max_len: 16}
train: {steps: 6, batch_size: 4, lr: 0.001, warmup_steps: 1}
seeds: [1]
ablations:
  schedule: [constant, linear]
stats: {baseline: {schedule: constant}}
references: [bm25]
";

#[test]
fn an_imported_beir_folder_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let beir = tmp.path().join("beir");
    write_beir(&beir);
    let data = tmp.path().join("data");
    let env = |args: &[&str]| {
        let out = command(args).env("CLIRLAB_DATA_DIR", &data).output().unwrap();
        (out.status.success(), text(&out))
    };
    let (ok, out) = env(&[
        "data",
        "import",
        "beir",
        beir.to_str().unwrap(),
        "--name",
        "my-beir",
        "--quiet",
    ]);
    assert!(ok, "{out}");
    let card: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(data.join("my-beir/card.json")).unwrap()).unwrap();
    assert_eq!(card["counts"]["queries.sw.test"], 6);
    assert_eq!(card["counts"]["train.cross.sw"], 36);
    // A second import of the name is refused unless asked for.
    let (ok, out) = env(&["data", "import", "beir", beir.to_str().unwrap(), "--name", "my-beir"]);
    assert!(!ok && out.contains("--replace"), "{out}");

    let experiment = tmp.path().join("own_beir.yaml");
    fs::write(&experiment, EXPERIMENT).unwrap();
    let results = tmp.path().join("results");
    let (ok, out) = env(&["plan", experiment.to_str().unwrap()]);
    assert!(ok && out.contains("schedule-linear"), "{out}");
    let (ok, out) = env(&[
        "run",
        experiment.to_str().unwrap(),
        "--quiet",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let summary = fs::read_to_string(results.join("own_beir/report/summary.csv")).unwrap();
    assert!(summary.contains("relevance"), "{summary}");
    assert!(summary.contains("bm25"), "{summary}");
    let (ok, out) = env(&["report", results.join("own_beir").to_str().unwrap()]);
    assert!(ok, "{out}");

    // A malformed line names the file and the line.
    fs::write(beir.join("qrels/test.tsv"), "q42\td42\n").unwrap();
    let (ok, out) = env(&["data", "import", "beir", beir.to_str().unwrap(), "--name", "other"]);
    assert!(
        !ok && out.contains("qrels/test.tsv:1: expected 3 tab-separated fields"),
        "{out}"
    );
}
