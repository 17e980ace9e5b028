use super::*;
use crate::model::{OptimizerKind, OptimizerSettings};

fn settings() -> OptimizerSettings {
    OptimizerSettings {
        kind: OptimizerKind::Adamw,
        lr: 1e-2,
        weight_decay: 0.01,
    }
}

fn batch(ids: Vec<usize>, mask: Vec<f32>, rows: usize) -> TokenBatch {
    let len = ids.len() / rows;
    TokenBatch { ids, mask, rows, len }
}

fn frozen() -> FineTune {
    FineTune {
        top_layers: 0,
        embeddings: false,
        word_embeddings: false,
    }
}

fn step(batch: &TokenBatch) -> StepInput<'_> {
    StepInput {
        batch,
        temperature: 0.1,
        ot: None,
        clip_norm: None,
    }
}

/// Four queries 10+i and passages 20+i, with shared filler tokens.
fn pairs() -> TokenBatch {
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.extend([0, 10 + i, 30, 2]);
    }
    for i in 0..4 {
        ids.extend([0, 20 + i, 31, 2]);
    }
    batch(ids, vec![1.0; 32], 8)
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn padding_and_batching_do_not_change_an_embedding() {
    let enc = tiny_random(1, 2, frozen(), settings()).unwrap();
    let alone = enc.embed(&batch(vec![0, 5, 6, 7, 2], vec![1.0; 5], 1)).unwrap();
    let norm: f32 = alone.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    let padded = enc
        .embed(&batch(
            vec![0, 5, 6, 7, 2, 1, 1, 9],
            vec![1., 1., 1., 1., 1., 0., 0., 0.],
            1,
        ))
        .unwrap();
    assert!(close(&alone, &padded, 1e-5), "padding changed the embedding");
    let two = enc
        .embed(&batch(
            vec![0, 11, 12, 13, 14, 15, 2, 0, 5, 6, 7, 2, 1, 1],
            vec![1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0.],
            2,
        ))
        .unwrap();
    assert!(close(&alone, &two[16..], 1e-5), "batching changed the embedding");
    // Order matters (positions).
    let reversed = enc.embed(&batch(vec![0, 7, 6, 5, 2], vec![1.0; 5], 1)).unwrap();
    assert!(!close(&alone, &reversed, 1e-4));
}

#[test]
fn gelu_is_the_erf_one() {
    let dev = Cpu::default();
    let x = dev.tensor([-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]);
    // x · Φ(x), from the normal CDF (tanh GELU differs by up to 1e-3 here, e.g. 0.841192 at 1).
    let want = [
        -0.0040497, -0.1586553, -0.1542688, 0.0, 0.3457312, 0.8413447, 1.9544997, 2.9959503,
    ];
    let got = x.accurate_gelu().array();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 2e-6, "gelu {g} vs {w}");
    }
}

#[test]
fn top_layers_train_and_frozen_tensors_stay_bit_identical() {
    let ft = FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    };
    let mut model = TinyBert::random(Cpu::seed_from_u64(3), 3, ft, settings()).unwrap();
    let words = model.words.weight.as_vec();
    let positions = model.rest.position.as_vec();
    let low: Vec<Vec<f32>> = model.layers[..2].iter().map(|l| l.query.weight.as_vec()).collect();
    let top = model.layers[2].query.weight.as_vec();
    let top_norm = model.layers[2].output_norm.bias.as_vec();
    assert_eq!(
        model.num_trainable_params(),
        4 * (16 * 16 + 16) + 16 * 32 + 32 + 32 * 16 + 16 + 4 * 16
    );
    let b = pairs();
    let first = model.train_step(&step(&b)).unwrap().total;
    let mut last = first;
    for _ in 0..40 {
        last = model.train_step(&step(&b)).unwrap().total;
    }
    assert!(last < first * 0.5, "loss {first} → {last}");
    assert_eq!(model.words.weight.as_vec(), words);
    assert_eq!(model.rest.position.as_vec(), positions);
    for (l, before) in low.iter().enumerate() {
        assert_eq!(
            &model.layers[l].query.weight.as_vec(),
            before,
            "frozen layer {l} changed"
        );
    }
    assert_ne!(model.layers[2].query.weight.as_vec(), top);
    assert_ne!(model.layers[2].output_norm.bias.as_vec(), top_norm);
    // Only the trainable layer has optimizer state.
    assert!(model.opt_words.is_none() && model.opt_rest.is_none() && model.opt_layers.len() == 1);
}

#[test]
fn everything_but_the_word_table_trains() {
    let ft = FineTune {
        top_layers: 2,
        embeddings: true,
        word_embeddings: false,
    };
    let mut model = TinyBert::random(Cpu::seed_from_u64(4), 2, ft, settings()).unwrap();
    let words = model.words.weight.as_vec();
    let positions = model.rest.position.as_vec();
    let b = pairs();
    let first = model.train_step(&step(&b)).unwrap();
    assert!(first.grad_norm > 0.0 && first.grad_norm.is_finite());
    for _ in 0..5 {
        model.train_step(&step(&b)).unwrap();
    }
    assert_eq!(model.words.weight.as_vec(), words);
    assert_ne!(model.rest.position.as_vec(), positions);
    // And the word table trains when asked to.
    let mut full = TinyBert::random(Cpu::seed_from_u64(4), 2, FineTune::full(2), settings()).unwrap();
    full.train_step(&step(&b)).unwrap();
    assert_ne!(full.words.weight.as_vec(), words);
}

#[test]
fn training_from_cached_states_matches_training_from_ids() {
    let ft = FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    };
    let b = pairs();
    let mut a = tiny_random(5, 3, ft, settings()).unwrap();
    let mut c = tiny_random(5, 3, ft, settings()).unwrap();
    let states = c.hidden_states(&b, 1).unwrap();
    let cached = LayerStates {
        after_layer: 1,
        states: &states,
    };
    assert!(close(
        &a.embed(&b).unwrap(),
        &c.embed_from_states(&b, cached).unwrap(),
        1e-6
    ));
    for _ in 0..3 {
        let la = a.train_step(&step(&b)).unwrap();
        let lc = c.train_step_from_states(&step(&b), Some(cached)).unwrap();
        assert!((la.total - lc.total).abs() < 1e-5, "{} vs {}", la.total, lc.total);
    }
    assert!(close(&a.embed(&b).unwrap(), &c.embed(&b).unwrap(), 1e-5));
    // States above the lowest trainable layer cannot be used, and the model stays usable.
    let above = c.hidden_states(&b, 3).unwrap();
    let err = c
        .train_step_from_states(
            &step(&b),
            Some(LayerStates {
                after_layer: 3,
                states: &above,
            }),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("above the lowest trainable layer"), "{err}");
    c.train_step(&step(&b)).unwrap();
}

#[test]
fn checkpoints_round_trip_full_and_trained_only() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = dir.path().join("base.safetensors");
    let b = pairs();
    let base = tiny_random(6, 2, frozen(), settings()).unwrap();
    base.save_full(&base_path).unwrap();
    let ft = FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    };
    let mut trained = TinyBert::load_file(Cpu::default(), &base_path, ft, settings()).unwrap();
    assert_eq!(trained.embed(&b).unwrap(), base.embed(&b).unwrap());
    for _ in 0..3 {
        trained.train_step(&step(&b)).unwrap();
    }
    let delta = dir.path().join("cell.safetensors");
    trained.save(&delta).unwrap();
    let (meta, shapes) = read_header(&delta).unwrap();
    assert_eq!(meta[META_FORMAT], FORMAT_DELTA);
    assert!(shapes.contains_key("encoder.layer.1.attention.self.query.weight"));
    assert!(!shapes.contains_key("encoder.layer.0.attention.self.query.weight"));
    assert!(!shapes.contains_key("embeddings.word_embeddings.weight"));
    // Loaded as a model file (base from its metadata) and into a fresh base encoder.
    let reloaded = TinyBert::load_file(Cpu::default(), &delta, frozen(), settings()).unwrap();
    assert_eq!(reloaded.embed(&b).unwrap(), trained.embed(&b).unwrap());
    let mut fresh = TinyBert::load_file(Cpu::default(), &base_path, ft, settings()).unwrap();
    assert_ne!(fresh.embed(&b).unwrap(), trained.embed(&b).unwrap());
    fresh.load(&delta).unwrap();
    assert_eq!(fresh.embed(&b).unwrap(), trained.embed(&b).unwrap());
    // A delta over another base is refused.
    let mut other = tiny_random(7, 2, ft, settings()).unwrap();
    let err = other.load(&delta).unwrap_err().to_string();
    assert!(err.contains("another base model"), "{err}");
    // A full checkpoint holds HuggingFace names.
    let full = dir.path().join("full.safetensors");
    trained.save_full(&full).unwrap();
    let (_, shapes) = read_header(&full).unwrap();
    assert_eq!(shapes["embeddings.word_embeddings.weight"], vec![50, 16]);
    assert_eq!(shapes["encoder.layer.0.intermediate.dense.weight"], vec![32, 16]);
    assert_eq!(shapes["encoder.layer.1.output.LayerNorm.bias"], vec![16]);
    assert_eq!(shapes.len(), 5 + 2 * 16);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut enc = tiny_random(1, 1, FineTune::full(1), settings()).unwrap();
    let err = enc
        .embed(&batch(vec![0, 60, 2], vec![1.0; 3], 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the model's vocabulary"), "{err}");
    let err = enc
        .embed(&batch(vec![3; 40], vec![1.0; 40], 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("positions"), "{err}");
    let err = enc.embed(&batch(vec![3, 3], vec![0.0; 2], 1)).unwrap_err().to_string();
    assert!(err.contains("no token"), "{err}");
    assert!(enc.train_step(&step(&batch(vec![1, 2, 3], vec![1.0; 3], 3))).is_err());
    // Still trains afterwards.
    enc.train_step(&step(&pairs())).unwrap();
    let mut none = tiny_random(1, 1, frozen(), settings()).unwrap();
    let err = none.train_step(&step(&pairs())).unwrap_err().to_string();
    assert!(err.contains("nothing to train"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    assert!(TinyBert::load_file(Cpu::default(), &junk, frozen(), settings()).is_err());
}

#[test]
fn frozen_states_do_not_depend_on_the_batch() {
    // What makes a shared state store deterministic: a text's states are the same whichever
    // texts it was computed with, and however far its batch was padded.
    let enc = tiny_random(3, 3, frozen(), settings()).unwrap();
    let text = [0, 5, 6, 7, 2];
    let alone = enc.hidden_states(&batch(text.to_vec(), vec![1.0; 5], 1), 2).unwrap();
    let mut ids = text.to_vec();
    ids.extend([1, 1, 1]);
    ids.extend([0, 9, 8, 7, 6, 5, 4, 2]);
    let mut mask = vec![1.0; 5];
    mask.extend([0.0; 3]);
    mask.extend([1.0; 8]);
    let together = enc.hidden_states(&batch(ids, mask, 2), 2).unwrap();
    assert_eq!(alone[..], together[..alone.len()]);
}

#[test]
fn a_state_store_changes_no_number() {
    let ft = FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    };
    let store = tempfile::tempdir().unwrap();
    let b = pairs();
    let mut plain = tiny_random(5, 3, ft, settings()).unwrap();
    let mut stored = tiny_random(5, 3, ft, settings()).unwrap();
    assert_eq!(stored.use_state_store(store.path()).unwrap(), 2);
    assert_eq!(plain.embed(&b).unwrap(), stored.embed(&b).unwrap());
    for _ in 0..3 {
        let (lp, ls) = (
            plain.train_step(&step(&b)).unwrap(),
            stored.train_step(&step(&b)).unwrap(),
        );
        assert_eq!(lp, ls);
    }
    assert_eq!(plain.embed(&b).unwrap(), stored.embed(&b).unwrap());
    drop(stored);
    // A second model reads the states the first one wrote (one shard per flush).
    let shards = std::fs::read_dir(store.path()).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::read_dir(&shards).unwrap().count(), 1);
    let mut again = tiny_random(5, 3, ft, settings()).unwrap();
    again.use_state_store(store.path()).unwrap();
    let fresh = tiny_random(5, 3, ft, settings()).unwrap();
    assert_eq!(fresh.embed(&b).unwrap(), again.embed(&b).unwrap());
    // Nothing frozen below a trainable embedding table: the store is not used.
    let mut full = tiny_random(5, 3, FineTune::full(3), settings()).unwrap();
    assert_eq!(full.use_state_store(store.path()).unwrap(), 0);
}
