use super::step::STEP_BUCKET;
use super::weights::{FORMAT_DELTA, META_FORMAT};
use super::*;
use crate::ot::{PlanGradient, SinkhornSettings};
use crate::{CostKind, Embedder, OptimizerKind, OptimizerSettings, OtTerm};

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
        negatives: 0,
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
    assert!(close(&alone, &two[32..], 1e-5), "batching changed the embedding");
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
        4 * (32 * 32 + 32) + 32 * 64 + 64 + 64 * 32 + 32 + 4 * 32
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
        let lc = c.train_step_from_states(&step(&b), Some(cached), None).unwrap();
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
            None,
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
    let mut trained = TinyBert::load_file(Cpu::default(), &base_path, Flavour::default(), ft, settings()).unwrap();
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
    let reloaded = TinyBert::load_file(Cpu::default(), &delta, Flavour::default(), frozen(), settings()).unwrap();
    assert_eq!(reloaded.embed(&b).unwrap(), trained.embed(&b).unwrap());
    let mut fresh = TinyBert::load_file(Cpu::default(), &base_path, Flavour::default(), ft, settings()).unwrap();
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
    // The tables' used rows only.
    assert_eq!(shapes["embeddings.word_embeddings.weight"], vec![50, 32]);
    assert_eq!(shapes["embeddings.position_embeddings.weight"], vec![32, 32]);
    assert_eq!(shapes["encoder.layer.0.intermediate.dense.weight"], vec![64, 32]);
    assert_eq!(shapes["encoder.layer.1.output.LayerNorm.bias"], vec![32]);
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
    assert!(TinyBert::load_file(Cpu::default(), &junk, Flavour::default(), frozen(), settings()).is_err());
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

/// Two bitext pairs: the low-resource sides (the student's) and the English sides (the
/// teacher's), each with a padded row.
fn bitext() -> (TokenBatch, TokenBatch) {
    let low = batch(
        vec![0, 40, 41, 42, 2, 0, 43, 2, 1, 1],
        vec![1., 1., 1., 1., 1., 1., 1., 1., 0., 0.],
        2,
    );
    let english = batch(
        vec![0, 5, 6, 2, 1, 0, 7, 8, 9, 2],
        vec![1., 1., 1., 1., 0., 1., 1., 1., 1., 1.],
        2,
    );
    (low, english)
}

/// The OT term of weight λ over `bitext()` against `states` (the teacher's), Sinkhorn run for
/// a fixed number of iterations (`tol` 0), so that its unrolled gradient is exact.
fn ot_term<'a>(low: &'a TokenBatch, english: &'a TokenBatch, states: &'a [f32], weight: f64) -> OtTerm<'a> {
    OtTerm {
        student: low,
        teacher_states: states,
        teacher_mask: &english.mask,
        teacher_len: english.len,
        weight,
        sinkhorn: SinkhornSettings {
            epsilon: 0.1,
            max_iter: 30,
            tol: 0.0,
        },
        cost: CostKind::Cosine,
        gradient: PlanGradient::Unrolled,
    }
}

fn top_layer() -> FineTune {
    FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    }
}

#[test]
fn an_ot_term_of_weight_zero_is_the_info_nce_step() {
    let teacher = tiny_random(9, 3, frozen(), settings()).unwrap();
    let (low, english) = bitext();
    let states = teacher.token_states(&english).unwrap();
    let b = pairs();
    let mut plain = tiny_random(5, 3, top_layer(), settings()).unwrap();
    let mut zero = tiny_random(5, 3, top_layer(), settings()).unwrap();
    for _ in 0..3 {
        let lp = plain.train_step(&step(&b)).unwrap();
        let lz = zero
            .train_step(&StepInput {
                ot: Some(ot_term(&low, &english, &states, 0.0)),
                ..step(&b)
            })
            .unwrap();
        assert_eq!(
            (lp.total, lp.info_nce, lp.grad_norm),
            (lz.total, lz.info_nce, lz.grad_norm)
        );
        let ot = lz.ot.unwrap();
        assert!(ot.is_finite() && ot > 0.0, "OT {ot}");
    }
    assert_eq!(plain.embed(&b).unwrap(), zero.embed(&b).unwrap());
    assert_eq!(plain.embed(&low).unwrap(), zero.embed(&low).unwrap());
}

/// A fixed direction in a tensor's space, entries in [-1, 1].
fn direction(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 104_729) % 201) as f32 / 100.0 - 1.0)
        .collect()
}

#[test]
fn the_ot_gradient_matches_finite_differences() {
    let teacher = tiny_random(9, 3, frozen(), settings()).unwrap();
    let (low, english) = bitext();
    let states = teacher.token_states(&english).unwrap();
    let b = pairs();
    let mut model = TinyBert::random(Cpu::seed_from_u64(5), 3, top_layer(), settings()).unwrap();
    let top = model.layers.len() - 1;
    // The OT value and the step's gradients with respect to two tensors of the top layer.
    let run = |model: &mut TinyBert, weight: f64| {
        let input = StepInput {
            ot: Some(ot_term(&low, &english, &states, weight)),
            ..step(&b)
        };
        let (grads, loss) = model.loss_and_grads(&input, None, None).unwrap();
        let layer = &model.layers[top];
        let g = [
            grads.get(&layer.query.weight).as_vec(),
            grads.get(&layer.output.bias).as_vec(),
        ];
        model.grads = Some(model.fresh_grads().unwrap());
        (loss, g)
    };
    let (with_ot, g1) = run(&mut model, 2.0);
    let (without, g0) = run(&mut model, 0.0);
    let ot = with_ot.ot.unwrap();
    assert!(ot.is_finite() && ot > 0.0, "OT {ot}");
    assert!((with_ot.total - without.total - 2.0 * ot).abs() < 1e-9);
    // Each tensor moved along a direction d: ⟨∇OT, d⟩ from the step's gradients (the OT
    // part is (G(λ=2) − G(λ=0))/2) against central differences of the OT value.
    let h = 1e-2f32;
    for which in 0..2 {
        let d = direction(g1[which].len(), which);
        let analytic: f64 = g1[which]
            .iter()
            .zip(&g0[which])
            .zip(&d)
            .map(|((a, b), d)| f64::from(a - b) / 2.0 * f64::from(*d))
            .sum();
        let original = match which {
            0 => model.layers[top].query.weight.as_vec(),
            _ => model.layers[top].output.bias.as_vec(),
        };
        let mut ot_at = |sign: f32| {
            let moved: Vec<f32> = original.iter().zip(&d).map(|(x, d)| x + sign * h * d).collect();
            match which {
                0 => model.layers[top].query.weight.copy_from(&moved),
                _ => model.layers[top].output.bias.copy_from(&moved),
            }
            run(&mut model, 2.0).0.ot.unwrap()
        };
        let numeric = (ot_at(1.0) - ot_at(-1.0)) / (2.0 * f64::from(h));
        match which {
            0 => model.layers[top].query.weight.copy_from(&original),
            _ => model.layers[top].output.bias.copy_from(&original),
        }
        let err = (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(1e-4);
        assert!(
            analytic.abs() > 1e-4 && err < 2e-2,
            "tensor {which}: analytic {analytic}, finite differences {numeric} (rel {err:.2e})"
        );
    }
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
    // The OT term's student batch reads the store too; the teacher (nothing trainable) keeps
    // its final states in a store of its own.
    let (low, english) = bitext();
    let plain_teacher = tiny_random(9, 3, frozen(), settings()).unwrap();
    let mut teacher = tiny_random(9, 3, frozen(), settings()).unwrap();
    assert_eq!(teacher.use_state_store(store.path()).unwrap(), 3);
    let states = plain_teacher.token_states(&english).unwrap();
    for round in 0..2 {
        let stored_states = teacher.token_states(&english).unwrap();
        for (i, m) in english.mask.iter().enumerate() {
            let (want, got) = (&states[i * 32..(i + 1) * 32], &stored_states[i * 32..(i + 1) * 32]);
            if *m > 0.0 {
                assert_eq!(want, got, "round {round}: token {i}");
            } else {
                assert!(got.iter().all(|v| *v == 0.0), "padding of stored states");
            }
        }
    }
    for s in 0..4 {
        let ot = (s % 2 == 1).then(|| ot_term(&low, &english, &states, 0.5));
        let input = StepInput { ot, ..step(&b) };
        let (lp, ls) = (plain.train_step(&input).unwrap(), stored.train_step(&input).unwrap());
        assert_eq!(lp, ls);
        assert_eq!(lp.ot.is_some(), s % 2 == 1);
    }
    assert_eq!(plain.embed(&b).unwrap(), stored.embed(&b).unwrap());
    assert_eq!(plain.embed(&low).unwrap(), stored.embed(&low).unwrap());
    drop(stored);
    drop(teacher);
    // A second model reads the states the first one wrote (one shard per flush), apart from
    // the teacher's (another depth).
    let mut dirs: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for shards in &dirs {
        assert_eq!(std::fs::read_dir(shards).unwrap().count(), 1);
    }
    let mut again = tiny_random(5, 3, ft, settings()).unwrap();
    again.use_state_store(store.path()).unwrap();
    let fresh = tiny_random(5, 3, ft, settings()).unwrap();
    assert_eq!(fresh.embed(&b).unwrap(), again.embed(&b).unwrap());
    // Nothing frozen below a trainable embedding table: the store is not used.
    let mut full = tiny_random(5, 3, FineTune::full(3), settings()).unwrap();
    assert_eq!(full.use_state_store(store.path()).unwrap(), 0);
}

/// 20 pairs of 3 to 12 tokens, padded to the longest: more rows than one length bucket holds.
fn uneven_pairs(order: &[usize]) -> TokenBatch {
    let rows: Vec<Vec<usize>> = (0..40)
        .map(|r| {
            let tokens = 3 + (r * 7) % 10;
            let mut row = vec![0];
            row.extend((1..tokens - 1).map(|t| 5 + (r * 13 + t * 3) % 40));
            row.push(2);
            row
        })
        .collect();
    // Pair p is query row p and passage row 20 + p; `order` permutes the pairs.
    let picked: Vec<&Vec<usize>> = order
        .iter()
        .map(|&p| &rows[p])
        .chain(order.iter().map(|&p| &rows[20 + p]))
        .collect();
    let len = 12;
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for row in picked {
        ids.extend(row.iter().copied().chain(std::iter::repeat_n(1, len - row.len())));
        mask.extend((0..len).map(|k| if k < row.len() { 1.0 } else { 0.0 }));
    }
    batch(ids, mask, 40)
}

#[test]
fn length_buckets_keep_the_loss_and_the_pairs() {
    // The step runs its rows in buckets sorted by length: its loss is InfoNCE over the
    // embeddings of the whole batch (computed here in one pass), and the pairs stay paired,
    // so permuting them changes neither the loss nor the update.
    const { assert!(40 > STEP_BUCKET) };
    let ft = FineTune {
        top_layers: 1,
        embeddings: false,
        word_embeddings: false,
    };
    let in_order: Vec<usize> = (0..20).collect();
    let b = uneven_pairs(&in_order);
    let mut a = tiny_random(5, 2, ft, settings()).unwrap();
    let e = a.embed(&b).unwrap();
    let dim = e.len() / 40;
    let dot = |i: usize, j: usize| -> f64 { (0..dim).map(|k| f64::from(e[i * dim + k] * e[j * dim + k])).sum() };
    let temperature = 0.1;
    let expected = (0..20)
        .map(|i| {
            let logits: Vec<f64> = (0..20).map(|j| dot(i, 20 + j) / temperature).collect();
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let log_sum = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            log_sum - logits[i]
        })
        .sum::<f64>()
        / 20.0;
    let loss = a.train_step(&step(&b)).unwrap();
    assert!(
        (loss.info_nce - expected).abs() < 1e-4,
        "{} vs {expected}",
        loss.info_nce
    );

    let shuffled: Vec<usize> = (0..20).map(|p| (p * 7) % 20).collect();
    let mut c = tiny_random(5, 2, ft, settings()).unwrap();
    let loss_c = c.train_step(&step(&uneven_pairs(&shuffled))).unwrap();
    assert!((loss.info_nce - loss_c.info_nce).abs() < 1e-5);
    assert!(close(&a.embed(&b).unwrap(), &c.embed(&b).unwrap(), 1e-5));
}
