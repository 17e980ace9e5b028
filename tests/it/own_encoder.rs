//! A researcher's own encoder (`model.backbone: FOLDER`). Tiny random BERT and XLM-R
//! checkpoints made with HuggingFace `transformers` at test time (tests/python/tiny_encoders.py,
//! fixed seeds, tokenizers trained there; nothing downloaded) are embedded by `clirlab encode`
//! as `transformers` embeds them (cosine ≥ 1 − 1e-5): the BERT folder with mean pooling and no
//! prefix, the XLM-R folder with the CLS pooling and prompts of its sentence-transformers files,
//! and the BERT with LaBSE's modules (CLS pooling, a Dense tanh projection), also exported.
//! `experiments/own_model.yaml` fine-tunes the XLM-R folder end to end (plan, run, report with a
//! zero-shot reference; again with hard negatives the untrained model mines, and with OT
//! distillation from the folder's own model), and a trained
//! cell's export loads in `transformers` with the
//! embeddings `clirlab encode` gives the cell. Those need Python with torch and transformers
//! (`CLIRLAB_PYTHON`): ignored by a plain `cargo test`; `.ci/run` installs them and runs them.
//! A malformed folder is refused naming the file and key, with no Python needed.

use crate::common::cli::{clirlab, root, text};
use crate::common::embeddings::{cosine, embeddings};
use std::collections::BTreeMap;
use std::path::Path;

fn python() -> String {
    std::env::var("CLIRLAB_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs tests/python/tiny_encoders.py with `args`; its standard output.
fn tiny_encoders(args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg(root().join("tests/python/tiny_encoders.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python()));
    assert!(
        out.status.success(),
        "tiny_encoders.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `clirlab encode MODEL --as query TEXTS`.
fn encode(model: &Path, texts: &Path, out: &Path) -> BTreeMap<String, Vec<f64>> {
    let o = clirlab(&[
        "--quiet",
        "encode",
        model.to_str().unwrap(),
        "--as",
        "query",
        texts.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "encode {}: {}", model.display(), text(&o));
    embeddings(&std::fs::read_to_string(out).unwrap())
}

/// The reference: `transformers` on `folder` with `pooling` and the query `prefix`.
fn reference(folder: &Path, pooling: &str, prefix: &str, texts: &Path) -> BTreeMap<String, Vec<f64>> {
    embeddings(&tiny_encoders(&[
        "embed",
        folder.to_str().unwrap(),
        pooling,
        prefix,
        texts.to_str().unwrap(),
    ]))
}

fn assert_same(ours: &BTreeMap<String, Vec<f64>>, theirs: &BTreeMap<String, Vec<f64>>, what: &str) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (id, v) in ours {
        let cos = cosine(v, &theirs[id]);
        assert!(
            cos >= 1.0 - 1e-5,
            "{what}, {id}: cosine {cos} between clirlab and transformers"
        );
    }
}

#[test]
#[ignore = "needs Python with torch and transformers (CLIRLAB_PYTHON); .ci/run installs them and runs it"]
fn tiny_bert_and_xlm_r_folders_embed_as_transformers_embeds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    tiny_encoders(&["make", models.to_str().unwrap()]);
    let texts = models.join("texts.tsv");
    for (folder, pooling, prefix) in [
        ("bert", "mean", ""),
        ("xlmr", "cls", "query: "),
        ("labse", "cls_dense", ""),
    ] {
        let dir = models.join(folder);
        let ours = encode(&dir, &texts, &tmp.path().join(format!("{folder}.jsonl")));
        assert_same(&ours, &reference(&dir, pooling, prefix, &texts), folder);
    }
    // LaBSE's layout exported: transformers and the Dense module give the same embeddings.
    let exported = tmp.path().join("labse-export");
    let o = clirlab(&[
        "--quiet",
        "export",
        models.join("labse").to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ours = encode(&models.join("labse"), &texts, &tmp.path().join("labse.jsonl"));
    assert_same(
        &ours,
        &reference(&exported, "cls_dense", "", &texts),
        "the LaBSE-style export",
    );
}

#[test]
#[ignore = "needs Python with torch and transformers (CLIRLAB_PYTHON); .ci/run installs them and runs it"]
fn an_own_xlm_r_is_fine_tuned_reported_and_exported_for_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    tiny_encoders(&["make", models.to_str().unwrap()]);
    let xlmr = models.join("xlmr");
    let results = tmp.path().join("results");
    let backbone = format!("model.backbone={}", xlmr.display());
    let o = clirlab(&["--quiet", "plan", "experiments/own_model.yaml", "--set", &backbone]);
    assert!(o.status.success(), "{}", text(&o));
    // `experiments/own_model.yaml` on the folder into `results`, with `extra` flags; it must pass.
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--quiet",
            "run",
            "experiments/own_model.yaml",
            "--results",
            results.to_str().unwrap(),
            "--set",
            &backbone,
        ];
        args.extend_from_slice(extra);
        let o = clirlab(&args);
        assert!(o.status.success(), "{extra:?}: {}", text(&o));
    };
    run(&[]);
    let exp = results.join("own_model");
    // Hard negatives mined with the untrained model, once, kept with the artifacts.
    run(&["--set", "train.hard_negatives={k: 1, source: zero_shot}"]);
    let mined: Vec<_> = std::fs::read_dir(results.join(".artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("negatives-") && n.ends_with(".json"))
        .collect();
    assert_eq!(mined.len(), 1, "{mined:?}");
    // OT distillation from the pretrained folder itself.
    run(&["--set", "ot.enabled=true", "--set", "ot.weight=0.5"]);
    let report = std::fs::read_to_string(exp.join("report/report.md")).unwrap();
    assert!(report.contains("reference: zero-shot xlmr"), "{report}");
    assert!(report.contains("schedule=linear"), "{report}");

    // A trained cell: its folder is a model `encode` and `export` take.
    let cell = std::fs::read_dir(exp.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("schedule-constant")
        })
        .expect("the constant-schedule cell");
    let config = std::fs::read_to_string(cell.join("config.yaml")).unwrap();
    assert!(
        config.contains("sha256:") && config.contains("pooling: cls"),
        "{config}"
    );
    let exported = tmp.path().join("export");
    let o = clirlab(&["--quiet", "export", cell.to_str().unwrap(), exported.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let pooling = std::fs::read_to_string(exported.join("1_Pooling/config.json")).unwrap();
    assert!(pooling.contains("\"pooling_mode_cls_token\": true"), "{pooling}");

    let texts = models.join("texts.tsv");
    let ours = encode(&cell, &texts, &tmp.path().join("cell.jsonl"));
    assert_same(&ours, &reference(&exported, "cls", "query: ", &texts), "the export");
    let base = encode(&xlmr, &texts, &tmp.path().join("base.jsonl"));
    let moved = ours
        .iter()
        .map(|(id, v)| 1.0 - cosine(v, &base[id]))
        .fold(0.0f64, f64::max);
    assert!(
        moved > 1e-6,
        "the cell's embeddings are the base model's: training changed nothing"
    );
}

/// A folder with the three files, `config` as its config.json.
fn folder_with(dir: &Path, config: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"not weights").unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
}

#[test]
fn a_folder_that_is_not_a_supported_encoder_is_refused_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = |folder: &Path| {
        let o = clirlab(&[
            "--quiet",
            "plan",
            "experiments/own_model.yaml",
            "--set",
            &format!("model.backbone={}", folder.display()),
        ]);
        assert!(!o.status.success(), "planned with {}", folder.display());
        text(&o)
    };
    let missing = tmp.path().join("absent");
    let err = plan(&missing);
    assert!(
        err.contains("key `model.backbone`") && err.contains("not a folder"),
        "{err}"
    );

    let gpt = tmp.path().join("gpt");
    folder_with(&gpt, r#"{"model_type": "gpt2", "hidden_size": 32}"#);
    let err = plan(&gpt);
    assert!(
        err.contains("gpt/config.json: key `model_type`: `gpt2` is not supported"),
        "{err}"
    );

    let relu = tmp.path().join("relu");
    folder_with(
        &relu,
        r#"{"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64,
            "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64, "hidden_act": "relu"}"#,
    );
    let err = plan(&relu);
    assert!(err.contains("relu/config.json: key `hidden_act`"), "{err}");

    let no_tokenizer = tmp.path().join("half");
    folder_with(&no_tokenizer, "{}");
    std::fs::remove_file(no_tokenizer.join("tokenizer.json")).unwrap();
    let err = plan(&no_tokenizer);
    assert!(err.contains("has no tokenizer.json"), "{err}");

    // A shape this build lacks is named when the model is loaded (encode reads the folder).
    let wide = tmp.path().join("wide");
    folder_with(
        &wide,
        r#"{"model_type": "bert", "hidden_size": 48, "num_attention_heads": 4, "intermediate_size": 64,
            "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64}"#,
    );
    let texts = tmp.path().join("t.tsv");
    std::fs::write(&texts, "a\tsome text\n").unwrap();
    let o = clirlab(&[
        "--quiet",
        "encode",
        wide.to_str().unwrap(),
        "--as",
        "query",
        texts.to_str().unwrap(),
    ]);
    let err = text(&o);
    assert!(
        !o.status.success() && err.contains("wide/config.json: hidden_size 48") && err.contains("not a shape"),
        "{err}"
    );
}
