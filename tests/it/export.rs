//! `clirlab export` of a fine-tuned me5-small (one training step of its top layer, saved as a
//! cell saves its checkpoint) loads in HuggingFace `transformers` and gives the embeddings
//! `clirlab encode` gives (cosine ≥ 1 − 1e-4), and they are the fine-tuned model's, not the
//! base's. Needs Python with torch and transformers (`CLIRLAB_PYTHON`, else `python3`): it is
//! ignored by a plain `cargo test`, and `.ci/run` installs them and runs it.

use crate::common::cli::{command, root, text};
use crate::common::embeddings::{cosine, embeddings};
use clirlab::data::prepare::me5::prepare_me5_small;
use clirlab::model::bert::encode::BertTokenizer;
use clirlab::model::bert::{self, FineTune};
use clirlab::model::{OptimizerKind, OptimizerSettings, ResolvedDevice, StepInput};
use std::collections::BTreeMap;
use std::path::Path;

const QUERIES: &[(&str, &str)] = &[
    ("q1", "Mungu aliumba mbingu na nchi."),
    ("q2", "Ang Diyos ang lumikha ng langit at lupa."),
    ("q3", "Blessed are the meek, for they shall inherit the earth."),
    ("q4", "Heri wenye upole, maana hao watairithi nchi."),
];

fn encode(model: &Path, input: &Path, output: &Path) -> BTreeMap<String, Vec<f64>> {
    let out = command(&[
        "--quiet",
        "encode",
        model.to_str().unwrap(),
        "--as",
        "query",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    embeddings(&std::fs::read_to_string(output).unwrap())
}

/// A cell folder with a checkpoint of me5-small after one step on its top layer.
fn fine_tuned_cell(dir: &Path) {
    let base = prepare_me5_small(&clirlab::data::data_dir(), false).expect("preparing me5-small");
    let tune = FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    };
    let settings = OptimizerSettings {
        kind: OptimizerKind::Adamw,
        lr: 1e-3,
        weight_decay: 0.01,
    };
    let mut encoder = bert::load(&base.root, None, tune, settings, ResolvedDevice::Cpu).expect("loading me5-small");
    let tokenizer = BertTokenizer::load(&base.root).unwrap();
    let mut rows = Vec::new();
    for (_, q) in QUERIES {
        rows.push(tokenizer.ids(&format!("query: {q}"), 64).unwrap());
    }
    for (_, q) in QUERIES.iter().rev() {
        rows.push(tokenizer.ids(&format!("passage: {q}"), 64).unwrap());
    }
    let refs: Vec<&[usize]> = rows.iter().map(|r| r.as_slice()).collect();
    let batch = tokenizer.batch(&refs);
    let step = StepInput {
        batch: &batch,
        negatives: 0,
        temperature: 0.05,
        ot: None,
        clip_norm: Some(1.0),
    };
    let loss = encoder.train_step(&step).expect("a training step");
    assert!(loss.total.is_finite(), "{loss:?}");
    encoder
        .save(&dir.join("model.safetensors"))
        .expect("saving the checkpoint");
    std::fs::copy(base.root.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
}

#[test]
#[ignore = "needs Python with torch and transformers (CLIRLAB_PYTHON); .ci/run installs them and runs it"]
fn an_exported_fine_tuned_model_loads_in_transformers_with_the_same_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = tmp.path().join("cell");
    std::fs::create_dir(&cell).unwrap();
    fine_tuned_cell(&cell);
    let input = tmp.path().join("queries.tsv");
    let rows: String = QUERIES.iter().map(|(id, q)| format!("{id}\t{q}\n")).collect();
    std::fs::write(&input, rows).unwrap();

    let exported = tmp.path().join("export");
    let out = command(&["--quiet", "export", cell.to_str().unwrap(), exported.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let again = command(&["--quiet", "export", cell.to_str().unwrap(), exported.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !again.status.success() && text(&again).contains("already exists"),
        "{}",
        text(&again)
    );

    let ours = encode(&cell, &input, &tmp.path().join("ours.jsonl"));
    let base = encode(Path::new("me5-small"), &input, &tmp.path().join("base.jsonl"));
    let python = std::env::var("CLIRLAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let theirs = std::process::Command::new(&python)
        .arg(root().join("tests/python/export_check.py"))
        .args([exported.to_str().unwrap(), "query", input.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        theirs.status.success(),
        "{python} tests/python/export_check.py: {}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let theirs = embeddings(&String::from_utf8(theirs.stdout).unwrap());
    assert_eq!(theirs.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>());
    let mut moved = 0.0f64;
    for (id, v) in &ours {
        let cos = cosine(v, &theirs[id]);
        assert!(
            cos >= 1.0 - 1e-4,
            "{id}: cosine {cos} between clirlab encode and transformers"
        );
        moved = moved.max(1.0 - cosine(v, &base[id]));
    }
    assert!(
        moved > 1e-6,
        "the export carries the base model's embeddings, not the fine-tuned ones"
    );
}
