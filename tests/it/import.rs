//! Your own benchmark end to end: the BEIR folder `tests/data/beir_tiny` (English notes,
//! Swahili queries) is imported with `clirlab data import beir`, then an experiment names it in
//! `data.dataset` and `plan`, `run` and `report` go through; a malformed line is refused naming
//! file:line. A pairs file with renderings and negatives (`--train-pairs`) trains the rendered
//! design with its given hard negatives.

use crate::common::cli::{command, root, text};
use std::fs;
use std::path::Path;

/// Copies the fixture folder `tests/data/beir_tiny` to `dir`, so that a test can damage it.
fn copy_fixture(dir: &Path) {
    let from = root().join("tests/data/beir_tiny");
    for rel in [
        "corpus.jsonl",
        "queries.jsonl",
        "queries.sw.jsonl",
        "qrels/train.tsv",
        "qrels/dev.tsv",
        "qrels/test.tsv",
        "train_pairs.jsonl",
    ] {
        let to = dir.join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from.join(rel), to).unwrap();
    }
}

#[test]
fn an_imported_beir_folder_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let beir = tmp.path().join("beir");
    copy_fixture(&beir);
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
        "beir-tiny",
        "--quiet",
    ]);
    assert!(ok, "{out}");
    let card: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(data.join("beir-tiny/card.json")).unwrap()).unwrap();
    assert_eq!(card["counts"]["queries.sw.test"], 6);
    assert_eq!(card["counts"]["train.cross.sw"], 36);
    // A second import of the name is refused unless asked for.
    let (ok, out) = env(&["data", "import", "beir", beir.to_str().unwrap(), "--name", "beir-tiny"]);
    assert!(!ok && out.contains("--replace"), "{out}");

    let experiment = root().join("experiments/own_data.yaml");
    let results = tmp.path().join("results");
    let (ok, out) = env(&["plan", experiment.to_str().unwrap()]);
    assert!(ok && out.contains("schedule-linear"), "{out}");
    // `run` of the experiment into `results`, with `extra` flags.
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            experiment.to_str().unwrap(),
            "--quiet",
            "--results",
            results.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        env(&args)
    };
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    let summary = fs::read_to_string(results.join("own_data/report/summary.csv")).unwrap();
    assert!(summary.contains("relevance"), "{summary}");
    assert!(summary.contains("bm25"), "{summary}");
    let (ok, out) = env(&["report", results.join("own_data").to_str().unwrap()]);
    assert!(ok, "{out}");

    // A pairs file: renderings become units, negatives the links' given hard negatives.
    let pairs = beir.join("train_pairs.jsonl");
    let (ok, out) = env(&[
        "data",
        "import",
        "beir",
        beir.to_str().unwrap(),
        "--name",
        "beir-pairs",
        "--train-pairs",
        pairs.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(ok, "{out}");
    let card: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(data.join("beir-pairs/card.json")).unwrap()).unwrap();
    assert_eq!(card["counts"]["train.negatives"], 12);
    assert_eq!(card["counts"]["train.links"], 36 + 12);
    let negatives = fs::read_to_string(data.join("beir-pairs/train/negatives.tsv")).unwrap();
    assert!(negatives.starts_with("pair:p0\tpn:p0.1\n"), "{negatives}");
    let given = [
        "--set",
        "data.train_pairs={design: rendered}",
        "--set",
        "train.hard_negatives={k: 1, source: given}",
    ];
    let (ok, out) = run(&[&["--set", "data.dataset=beir-pairs"][..], &given].concat());
    assert!(ok, "{out}");
    // Given negatives on a set without them: the error says where they come from.
    let (ok, out) = run(&given);
    assert!(!ok && out.contains("has no negatives"), "{out}");
    // A bad record of the pairs file names file:line and field.
    fs::write(&pairs, "{\"query\": \"x\", \"positive\": 3}\n").unwrap();
    let (ok, out) = env(&[
        "data",
        "import",
        "beir",
        beir.to_str().unwrap(),
        "--name",
        "other",
        "--train-pairs",
        pairs.to_str().unwrap(),
    ]);
    assert!(
        !ok && out.contains("train_pairs.jsonl:1: field `positive` must be a string or a map"),
        "{out}"
    );

    // A malformed line names the file and the line.
    fs::write(beir.join("qrels/test.tsv"), "q42\td42\n").unwrap();
    let (ok, out) = env(&["data", "import", "beir", beir.to_str().unwrap(), "--name", "other"]);
    assert!(
        !ok && out.contains("qrels/test.tsv:1: expected 3 tab-separated fields"),
        "{out}"
    );
}
