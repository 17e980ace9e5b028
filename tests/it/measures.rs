//! Measures on tiny hand-computed cases, built through the in-memory constructors.

use clirlab::eval::{EvalOptions, Evaluation, Measure, Qrels, Run, evaluate, parse_measures};

fn qrels(judgments: &[(&str, &str, i32)]) -> Qrels {
    let mut q = Qrels::new();
    for &(topic, doc, rel) in judgments {
        q.insert(topic, doc, rel).unwrap();
    }
    q
}

fn run(entries: &[(&str, &str, f64)]) -> Run {
    let mut r = Run::new("test");
    for &(topic, doc, score) in entries {
        r.push(topic, doc, score).unwrap();
    }
    r
}

fn eval_with(q: &Qrels, r: &Run, opts: EvalOptions) -> Evaluation {
    evaluate(
        q,
        r,
        &parse_measures(&[
            "all_trec",
            "P.1,2,3,4,10",
            "recall.3,4",
            "ndcg_cut.2,3",
            "map_cut.2,3",
            "success.1,3",
        ])
        .unwrap(),
        &opts,
    )
    .unwrap()
}

fn value(e: &Evaluation, measure: &str, topic: &str) -> f64 {
    e.per_query(measure)
        .unwrap_or_else(|| panic!("no {measure}"))
        .get(topic)
        .unwrap()
}

fn assert_close(got: f64, expected: f64, what: &str) {
    assert!((got - expected).abs() < 1e-12, "{what}: got {got}, expected {expected}");
}

fn check(e: &Evaluation, topic: &str, expected: &[(&str, f64)]) {
    for &(measure, v) in expected {
        assert_close(value(e, measure, topic), v, measure);
    }
}

/// q1 judges dA non-relevant and dB, dD, dX relevant; the run ties dB and dC, so dC (greater
/// id) ranks first: dA, dC, dB, dD.
fn binary_case() -> (Qrels, Run) {
    let q = qrels(&[("q1", "dA", 0), ("q1", "dB", 1), ("q1", "dD", 1), ("q1", "dX", 1)]);
    let r = run(&[
        ("q1", "dD", 1.0),
        ("q1", "dB", 2.0),
        ("q1", "dA", 3.0),
        ("q1", "dC", 2.0),
    ]);
    (q, r)
}

#[test]
fn binary_relevance_with_a_tie() {
    let (q, r) = binary_case();
    let e = eval_with(&q, &r, EvalOptions::default());
    let log2 = f64::log2;
    let idcg = 1.0 + 1.0 / log2(3.0) + 1.0 / log2(4.0);
    check(
        &e,
        "q1",
        &[
            ("num_ret", 4.0),
            ("num_rel", 3.0),
            ("num_rel_ret", 2.0),
            ("map", (1.0 / 3.0 + 2.0 / 4.0) / 3.0),
            ("Rprec", 1.0 / 3.0),
            // The non-relevant dA precedes both relevant documents: min(1, R) / min(N, R) = 1.
            ("bpref", 0.0),
            ("recip_rank", 1.0 / 3.0),
            // Recall 0.1 and 0.5 need 1 and 2 relevant documents (trec_eval: level * R + 0.9,
            // truncated); the best precision from there on is 2/4. Recall 1.0 is never reached.
            ("iprec_at_recall_0.00", 0.5),
            ("iprec_at_recall_0.10", 0.5),
            ("iprec_at_recall_0.50", 0.5),
            ("iprec_at_recall_1.00", 0.0),
            ("P_1", 0.0),
            ("P_2", 0.0),
            ("P_3", 1.0 / 3.0),
            ("P_4", 0.5),
            ("P_10", 0.2),
            ("recall_3", 1.0 / 3.0),
            ("recall_4", 2.0 / 3.0),
            ("ndcg", (1.0 / log2(4.0) + 1.0 / log2(5.0)) / idcg),
            ("ndcg_cut_2", 0.0),
            ("ndcg_cut_3", (1.0 / log2(4.0)) / idcg),
            ("map_cut_2", 0.0),
            ("map_cut_3", (1.0 / 3.0) / 3.0),
            ("success_1", 0.0),
            ("success_3", 1.0),
            ("set_P", 0.5),
            ("set_recall", 2.0 / 3.0),
            ("set_F", 4.0 / 7.0),
        ],
    );
    assert_close(e.mean("gm_map").unwrap(), (1.0 / 3.0 + 2.0 / 4.0) / 3.0, "gm_map");
    assert_eq!(e.mean("num_q"), Some(1.0));
}

#[test]
fn max_retrieved_cuts_the_ranking() {
    let (q, r) = binary_case();
    let top2 = eval_with(
        &q,
        &r,
        EvalOptions {
            max_ret: Some(2),
            ..EvalOptions::default()
        },
    );
    check(
        &top2,
        "q1",
        &[
            ("num_ret", 2.0),
            ("num_rel", 3.0),
            ("num_rel_ret", 0.0),
            ("map", 0.0),
            ("recip_rank", 0.0),
            ("P_4", 0.0),
        ],
    );
    // gm_map's floor for an average precision of 0.
    assert_close(top2.mean("gm_map").unwrap(), 1e-5, "gm_map");
    let top3 = eval_with(
        &q,
        &r,
        EvalOptions {
            max_ret: Some(3),
            ..EvalOptions::default()
        },
    );
    check(
        &top3,
        "q1",
        &[
            ("num_ret", 3.0),
            ("map", 1.0 / 9.0),
            ("recip_rank", 1.0 / 3.0),
            ("set_P", 1.0 / 3.0),
        ],
    );
}

/// Grades a=2, b=1, c=0, d=3, ranked a, b, c, d.
fn graded_case() -> (Qrels, Run) {
    let q = qrels(&[("q1", "a", 2), ("q1", "b", 1), ("q1", "c", 0), ("q1", "d", 3)]);
    let r = run(&[("q1", "a", 4.0), ("q1", "b", 3.0), ("q1", "c", 2.0), ("q1", "d", 1.0)]);
    (q, r)
}

#[test]
fn relevance_level_decides_relevance_but_not_gains() {
    let (q, r) = graded_case();
    let log2 = f64::log2;
    let ndcg = (2.0 + 1.0 / log2(3.0) + 3.0 / log2(5.0)) / (3.0 + 2.0 / log2(3.0) + 1.0 / log2(4.0));
    let ndcg_cut_2 = (2.0 + 1.0 / log2(3.0)) / (3.0 + 2.0 / log2(3.0));
    let at = |level| {
        eval_with(
            &q,
            &r,
            EvalOptions {
                rel_level: level,
                ..EvalOptions::default()
            },
        )
    };
    check(
        &at(1),
        "q1",
        &[
            ("num_rel", 3.0),
            ("map", (1.0 + 1.0 + 3.0 / 4.0) / 3.0),
            ("bpref", 2.0 / 3.0),
            ("ndcg", ndcg),
            ("ndcg_cut_2", ndcg_cut_2),
        ],
    );
    check(
        &at(2),
        "q1",
        &[
            ("num_rel", 2.0),
            ("map", (1.0 + 2.0 / 4.0) / 2.0),
            ("P_2", 0.5),
            ("Rprec", 0.5),
            // b and c are judged non-relevant at level 2 and both precede d.
            ("bpref", 0.5),
            ("ndcg", ndcg),
            ("ndcg_cut_2", ndcg_cut_2),
        ],
    );
    check(
        &at(3),
        "q1",
        &[("num_rel", 1.0), ("map", 0.25), ("recip_rank", 0.25), ("ndcg", ndcg)],
    );
}

#[test]
fn complete_averaging_counts_missing_topics_as_zero() {
    let q = qrels(&[("q1", "a", 1), ("q2", "x", 1), ("q2", "y", 1), ("q3", "z", 0)]);
    // q9 has no judgments: ignored either way.
    let r = run(&[("q1", "a", 1.0), ("q1", "b", 0.5), ("q9", "a", 1.0)]);
    let plain = eval_with(&q, &r, EvalOptions::default());
    assert_eq!(plain.topics(), ["q1"]);
    assert_eq!((plain.num_q(), plain.mean("map")), (1, Some(1.0)));

    let complete = eval_with(
        &q,
        &r,
        EvalOptions {
            average_complete: true,
            ..EvalOptions::default()
        },
    );
    assert_eq!(complete.topics(), ["q1", "q2", "q3"]);
    assert_eq!(complete.mean("num_q"), Some(3.0));
    assert_close(complete.mean("map").unwrap(), 1.0 / 3.0, "map");
    assert_eq!(complete.per_query("map").unwrap().values(), [1.0, 0.0, 0.0]);
    // Missing topics keep their relevant documents in num_rel, and nothing else.
    assert_eq!(complete.per_query("num_rel").unwrap().values(), [1.0, 2.0, 0.0]);
    assert_eq!(complete.per_query("num_ret").unwrap().values(), [2.0, 0.0, 0.0]);
    assert_eq!(
        (complete.mean("num_rel"), complete.mean("num_ret")),
        (Some(3.0), Some(2.0))
    );
    assert_close(
        complete.mean("gm_map").unwrap(),
        ((2.0 * 1e-5f64.ln()) / 3.0).exp(),
        "gm_map",
    );
    // As trec_eval, per-query output shows only topics with results.
    let text = complete.to_trec_eval_string(true);
    assert!(text.contains("map                   \tq1\t1.0000\n"));
    assert!(!text.contains("\tq2\t") && !text.contains("\tq3\t") && !text.contains("\tq9\t"));
    assert!(text.contains("num_q                 \tall\t3\n"));
    assert!(text.contains("num_rel               \tall\t3\n"));
}

#[test]
fn topics_without_relevant_documents_score_zero_but_count() {
    let q = qrels(&[("q1", "a", 0), ("q1", "b", 0), ("q2", "c", 1)]);
    let r = run(&[("q1", "a", 2.0), ("q1", "c", 1.0), ("q2", "c", 1.0)]);
    let e = eval_with(&q, &r, EvalOptions::default());
    let zeros = [
        "map",
        "Rprec",
        "bpref",
        "recip_rank",
        "ndcg",
        "ndcg_cut_2",
        "recall_3",
        "P_1",
        "set_P",
        "set_recall",
    ];
    check(&e, "q1", &zeros.map(|m| (m, 0.0)));
    check(
        &e,
        "q1",
        &[("num_rel", 0.0), ("num_ret", 2.0), ("set_F", 0.0), ("map_cut_3", 0.0)],
    );
    assert_eq!(e.num_q(), 2);
    assert_close(e.mean("map").unwrap(), 0.5, "map");
}

#[test]
fn negative_grades_are_pooled_but_unjudged() {
    // bpref skips a (unjudged); were it judged non-relevant, b would lose its preference.
    let r = run(&[("q1", "a", 3.0), ("q1", "b", 2.0), ("q1", "c", 1.0)]);
    let unjudged = eval_with(
        &qrels(&[("q1", "a", -1), ("q1", "b", 1), ("q1", "c", 0)]),
        &r,
        EvalOptions::default(),
    );
    check(
        &unjudged,
        "q1",
        &[("bpref", 1.0), ("num_rel", 1.0), ("P_1", 0.0), ("num_rel_ret", 1.0)],
    );
    let judged = eval_with(
        &qrels(&[("q1", "a", 0), ("q1", "b", 1), ("q1", "c", 0)]),
        &r,
        EvalOptions::default(),
    );
    check(&judged, "q1", &[("bpref", 0.0)]);
}

#[test]
fn ties_break_on_document_id_descending_in_byte_order() {
    // "d9" > "d10" > "d1" as bytes; -0.0 and 0.0 tie.
    let r = run(&[
        ("q1", "d1", 1.0),
        ("q1", "d10", 1.0),
        ("q1", "d9", 1.0),
        ("q2", "x", 0.0),
        ("q2", "y", -0.0),
    ]);
    let mut out = Vec::new();
    r.write_trec(&mut out).unwrap();
    let expected = "q1 Q0 d9 1 1 test\nq1 Q0 d10 2 1 test\nq1 Q0 d1 3 1 test\nq2 Q0 y 1 -0 test\nq2 Q0 x 2 0 test\n";
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    let q = qrels(&[("q1", "d10", 1), ("q2", "x", 1)]);
    let e = eval_with(&q, &r, EvalOptions::default());
    check(&e, "q1", &[("recip_rank", 0.5)]);
    check(&e, "q2", &[("recip_rank", 0.5)]);
}

#[test]
fn output_follows_trec_eval_layout_and_order() {
    let (q, r) = binary_case();
    let measures = parse_measures(&["P.2", "num_rel_ret", "runid", "map", "num_q", "gm_map"]).unwrap();
    let e = evaluate(&q, &r, &measures, &EvalOptions::default()).unwrap();
    let expected = "\
num_rel_ret           \tq1\t2
map                   \tq1\t0.2778
P_2                   \tq1\t0.0000
runid                 \tall\ttest
num_q                 \tall\t1
num_rel_ret           \tall\t2
map                   \tall\t0.2778
gm_map                \tall\t0.2778
P_2                   \tall\t0.0000
";
    assert_eq!(e.to_trec_eval_string(true), expected);
    assert_eq!(
        e.to_trec_eval_string(false),
        expected.lines().skip(3).map(|l| format!("{l}\n")).collect::<String>()
    );
    assert_eq!(
        e.measure_names().collect::<Vec<_>>(),
        ["num_rel_ret", "map", "gm_map", "P_2"]
    );
    assert_eq!(e.run_id(), "test");
}

#[test]
fn per_query_values_are_aligned_with_topics() {
    let q = qrels(&[("b", "x", 1), ("a", "x", 1), ("c", "x", 1)]);
    let r = run(&[("c", "y", 2.0), ("c", "x", 1.0), ("a", "x", 1.0), ("b", "y", 1.0)]);
    let e = evaluate(
        &q,
        &r,
        &parse_measures(&["recip_rank", "gm_map"]).unwrap(),
        &EvalOptions::default(),
    )
    .unwrap();
    let rr = e.per_query("recip_rank").unwrap();
    assert_eq!(rr.topics(), ["a", "b", "c"]);
    assert_eq!(rr.values(), [1.0, 0.0, 0.5]);
    assert_eq!(rr.iter().collect::<Vec<_>>(), [("a", 1.0), ("b", 0.0), ("c", 0.5)]);
    assert_eq!((rr.get("c"), rr.get("d")), (Some(0.5), None));
    // gm_map has no per-topic value in trec_eval; measures not computed are absent.
    assert!(e.per_query("gm_map").is_none() && e.per_query("map").is_none() && e.mean("map").is_none());
    assert_close(e.mean("recip_rank").unwrap(), 0.5, "mean");
}

#[test]
fn measures_given_directly_are_merged_sorted_and_checked() {
    let (q, r) = binary_case();
    let measures = [Measure::P(vec![10, 2]), Measure::Map, Measure::P(vec![2, 5])];
    let e = evaluate(&q, &r, &measures, &EvalOptions::default()).unwrap();
    assert_eq!(e.measure_names().collect::<Vec<_>>(), ["map", "P_2", "P_5", "P_10"]);
    let zero = evaluate(&q, &r, &[Measure::Success(vec![0])], &EvalOptions::default()).unwrap_err();
    assert!(zero.to_string().contains("positive"), "{zero}");
    let level = evaluate(&q, &r, &[Measure::IprecAtRecall(vec![1.5])], &EvalOptions::default()).unwrap_err();
    assert!(level.to_string().contains("outside"), "{level}");
}

#[test]
fn evaluation_needs_a_judged_topic_with_results() {
    let q = qrels(&[("q1", "a", 1)]);
    let r = run(&[("q2", "a", 1.0)]);
    let opts = EvalOptions {
        average_complete: true,
        ..EvalOptions::default()
    };
    let err = evaluate(&q, &r, &[Measure::Map], &opts).unwrap_err();
    assert_eq!(err.to_string(), "no judged topic has results in run \"test\"");
}

#[test]
fn in_memory_constructors_reject_what_files_could_not_hold() {
    let mut r = Run::new("r");
    r.push("q1", "a", 1.0).unwrap();
    let dup = r.push("q1", "a", 0.5).unwrap_err();
    assert_eq!(
        dup.to_string(),
        "document \"a\" is already in the ranking of topic \"q1\""
    );
    r.push("q2", "a", 0.5).unwrap();
    assert!(r.push("q1", "b", f64::NAN).unwrap_err().to_string().contains("NaN"));
    assert!(r.push("q 1", "b", 1.0).unwrap_err().to_string().contains("whitespace"));
    assert!(r.push("q1", "", 1.0).unwrap_err().to_string().contains("non-empty"));
    assert_eq!((r.num_topics(), r.len(), r.is_empty()), (2, 2, false));
    assert_eq!(format!("{r:?}"), "Run { name: \"r\", topics: 2, documents: 2 }");

    let mut q = Qrels::new();
    q.insert("q1", "a", 2).unwrap();
    let dup = q.insert("q1", "a", 1).unwrap_err();
    assert_eq!(dup.to_string(), "document \"a\" is already judged for topic \"q1\"");
    assert!(q.insert("q1", "b\tc", 1).is_err());
    q.insert("q0", "a", -1).unwrap();
    assert_eq!(
        (q.get("q1", "a"), q.get("q0", "a"), q.get("q1", "b"), q.get("q2", "a")),
        (Some(2), Some(-1), None, None)
    );
    assert_eq!(q.topic_ids().collect::<Vec<_>>(), ["q0", "q1"]);
    assert_eq!((q.num_topics(), q.num_judgments()), (2, 2));
    assert_eq!(format!("{q:?}"), "Qrels { topics: 2, judgments: 2 }");
}

#[test]
fn pushing_after_parsing_keeps_rejecting_duplicates() {
    let mut r = Run::parse("run", "q1 Q0 a 1 2.0 tag\nq1 Q0 b 2 1.0 tag\n").unwrap();
    assert!(r.push("q1", "b", 3.0).is_err());
    r.push("q1", "c", 3.0).unwrap();
    let mut out = Vec::new();
    r.write_trec(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "q1 Q0 c 1 3 tag\nq1 Q0 a 2 2 tag\nq1 Q0 b 3 1 tag\n"
    );
}

#[test]
fn written_runs_read_back_to_the_same_evaluation() {
    let (q, r) = binary_case();
    let mut text = Vec::new();
    r.write_trec(&mut text).unwrap();
    let back = Run::parse("written", std::str::from_utf8(&text).unwrap()).unwrap();
    assert_eq!(back.name(), "test");
    let (a, b) = (
        eval_with(&q, &r, EvalOptions::default()),
        eval_with(&q, &back, EvalOptions::default()),
    );
    assert_eq!(a.to_trec_eval_string(true), b.to_trec_eval_string(true));
    let unnamed = Run::new("two words");
    assert!(unnamed.write_trec(&mut Vec::new()).is_err());
}
