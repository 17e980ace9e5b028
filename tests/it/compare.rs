//! The comparison layer: query alignment, missing-query policies, degenerate inputs,
//! reproducibility, corrections and output formats.

use clirlab::stats::{
    BootstrapMethod, CompareOptions, Comparison, Correction, Format, MissingPolicy, TestKind, adjust, compare,
    format_comparisons, paired_t, wilcoxon,
};
use std::collections::BTreeMap;

type PerSystem = BTreeMap<String, BTreeMap<String, f64>>;

fn systems(entries: &[(&str, &[(&str, f64)])]) -> PerSystem {
    entries
        .iter()
        .map(|(s, qs)| (s.to_string(), qs.iter().map(|(q, v)| (q.to_string(), *v)).collect()))
        .collect()
}

fn opts(test: TestKind) -> CompareOptions {
    CompareOptions {
        test,
        ..Default::default()
    }
}

const ALL_TESTS: [TestKind; 5] = [
    TestKind::T,
    TestKind::Wilcoxon,
    TestKind::Randomization,
    TestKind::Bootstrap,
    TestKind::Tukey,
];

/// Deterministic pseudo-random values in [0, 1).
fn values(n: usize, salt: u64) -> Vec<f64> {
    let mut state = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn many(n: usize, shifts: &[(&str, f64)]) -> PerSystem {
    let base = values(n, 1);
    shifts
        .iter()
        .enumerate()
        .map(|(i, (name, shift))| {
            let noise = values(n, 10 + i as u64);
            let qs = (0..n)
                .map(|q| {
                    (
                        format!("q{q:03}"),
                        (base[q] + shift + 0.2 * (noise[q] - 0.5)).clamp(0.0, 1.0),
                    )
                })
                .collect();
            (name.to_string(), qs)
        })
        .collect()
}

#[test]
fn missing_queries_are_an_error_naming_systems_and_ids() {
    let data = systems(&[
        ("base", &[("q1", 0.1), ("q2", 0.2), ("q3", 0.3)]),
        ("sysA", &[("q1", 0.2), ("q3", 0.4)]),
        ("sysB", &[("q1", 0.2), ("q2", 0.1), ("q3", 0.5), ("q9", 0.7)]),
    ]);
    let err = compare(&data, "ndcg@10", "base", &opts(TestKind::T))
        .unwrap_err()
        .to_string();
    assert!(err.contains("metric ndcg@10"), "{err}");
    assert!(err.contains("system `sysA` lacks 2 of 4 queries: q2, q9"), "{err}");
    assert!(err.contains("system `base` lacks 1 of 4 queries: q9"), "{err}");
    assert!(err.contains("missing = zero"), "{err}");
    assert!(!err.contains("sysB` lacks"), "{err}");
}

#[test]
fn long_missing_lists_are_truncated() {
    let base: Vec<(String, f64)> = (0..30).map(|q| (format!("q{q:02}"), 0.5)).collect();
    let mut data = PerSystem::new();
    data.insert("base".into(), base.iter().cloned().collect());
    data.insert("s".into(), base[..5].iter().cloned().collect());
    let err = compare(&data, "map", "base", &opts(TestKind::T))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lacks 25 of 30 queries: q05, q06"), "{err}");
    assert!(err.contains("and 15 more"), "{err}");
}

#[test]
fn missing_queries_scored_zero_on_request() {
    let data = systems(&[
        ("base", &[("q1", 0.1), ("q2", 0.2), ("q3", 0.3)]),
        ("sysA", &[("q1", 0.2), ("q3", 0.4), ("q4", 0.9)]),
    ]);
    let o = CompareOptions {
        missing: MissingPolicy::Zero,
        ..opts(TestKind::T)
    };
    let rows = compare(&data, "map", "base", &o).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    // Union q1..q4: base = .1 .2 .3 0, sysA = .2 0 .4 .9.
    let want = paired_t(&[0.1, 0.2, 0.3, 0.0], &[0.2, 0.0, 0.4, 0.9], 0.95).unwrap();
    assert_eq!((r.n, r.filled_with_zero), (4, 2));
    assert!((r.statistic - want.t).abs() < 1e-12 && (r.p_value - want.p_value).abs() < 1e-12);
    assert!((r.mean_baseline - 0.15).abs() < 1e-12 && (r.mean_system - 0.375).abs() < 1e-12);
    assert_eq!(r.missing_policy, MissingPolicy::Zero);
    let json = format_comparisons(&rows, Format::Json);
    assert!(json.contains("\"missing_policy\": \"zero\""), "{json}");
}

#[test]
fn unknown_baseline_and_bad_values() {
    let data = systems(&[("a", &[("q1", 0.1)]), ("b", &[("q1", 0.2)])]);
    let err = compare(&data, "map", "zz", &opts(TestKind::T)).unwrap_err().to_string();
    assert!(err.contains("baseline `zz`") && err.contains("a, b"), "{err}");
    let bad = systems(&[("a", &[("q1", 0.1)]), ("b", &[("q1", f64::NAN)])]);
    let err = compare(&bad, "map", "a", &opts(TestKind::T)).unwrap_err().to_string();
    assert!(err.contains("system `b`") && err.contains("query `q1`"), "{err}");
    let err = compare(
        &data,
        "map",
        "a",
        &CompareOptions {
            confidence: 95.0,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("confidence"), "{err}");
}

#[test]
fn baseline_alone_gives_no_rows() {
    let data = systems(&[("a", &[("q1", 0.1), ("q2", 0.3)])]);
    for test in ALL_TESTS {
        assert!(compare(&data, "map", "a", &opts(test)).unwrap().is_empty());
    }
}

fn numeric_fields(r: &Comparison) -> [f64; 10] {
    [
        r.mean_baseline,
        r.mean_system,
        r.mean_diff,
        r.statistic,
        r.p_value,
        r.p_adjusted,
        r.effect_size,
        r.hedges_g,
        r.ci_low,
        r.ci_high,
    ]
}

#[test]
fn identical_systems_give_p_one_without_nan() {
    let data = systems(&[
        ("a", &[("q1", 0.1), ("q2", 0.5), ("q3", 0.3)]),
        ("b", &[("q1", 0.1), ("q2", 0.5), ("q3", 0.3)]),
        ("c", &[("q1", 0.1), ("q2", 0.5), ("q3", 0.3)]),
    ]);
    for test in ALL_TESTS {
        for correction in [Correction::None, Correction::Holm, Correction::By] {
            let rows = compare(
                &data,
                "map",
                "a",
                &CompareOptions {
                    correction,
                    ..opts(test)
                },
            )
            .unwrap();
            assert!(!rows.is_empty());
            for r in &rows {
                assert!(numeric_fields(r).iter().all(|v| !v.is_nan()), "{test:?}: {r:?}");
                assert_eq!((r.p_value, r.p_adjusted), (1.0, 1.0), "{test:?}");
                assert_eq!(
                    (r.statistic, r.effect_size, r.ci_low, r.ci_high),
                    (0.0, 0.0, 0.0, 0.0),
                    "{test:?}"
                );
            }
        }
    }
}

#[test]
fn single_query_is_handled() {
    let data = systems(&[("a", &[("q1", 0.1)]), ("b", &[("q1", 0.4)])]);
    for test in [
        TestKind::T,
        TestKind::Wilcoxon,
        TestKind::Randomization,
        TestKind::Bootstrap,
    ] {
        let rows = compare(&data, "map", "a", &opts(test)).unwrap();
        assert_eq!(rows[0].n, 1);
        assert_eq!(rows[0].p_value, 1.0, "{test:?}: one query cannot reject");
        assert!((rows[0].mean_diff - 0.3).abs() < 1e-12);
        // Undefined quantities serialize as null rather than failing.
        assert!(format_comparisons(&rows, Format::Json).contains("null"));
    }
    let err = compare(&data, "map", "a", &opts(TestKind::Tukey))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 2 queries"), "{err}");
    // Both systems scoring the single query identically: no NaN at all.
    let same = systems(&[("a", &[("q1", 0.4)]), ("b", &[("q1", 0.4)])]);
    for test in [
        TestKind::T,
        TestKind::Wilcoxon,
        TestKind::Randomization,
        TestKind::Bootstrap,
    ] {
        let r = &compare(&same, "map", "a", &opts(test)).unwrap()[0];
        assert!(numeric_fields(r).iter().all(|v| !v.is_nan()), "{test:?}: {r:?}");
        assert_eq!(r.p_value, 1.0);
    }
}

#[test]
fn family_and_correction_over_systems_of_one_metric() {
    let data = many(40, &[("base", 0.0), ("s1", 0.01), ("s2", 0.05), ("s3", 0.1)]);
    for correction in [Correction::Bonferroni, Correction::Holm, Correction::Bh, Correction::By] {
        let rows = compare(
            &data,
            "ndcg",
            "base",
            &CompareOptions {
                correction,
                ..opts(TestKind::T)
            },
        )
        .unwrap();
        let raw: Vec<f64> = rows.iter().map(|r| r.p_value).collect();
        let adjusted: Vec<f64> = rows.iter().map(|r| r.p_adjusted).collect();
        assert_eq!(adjusted, adjust(&raw, correction));
        assert!(
            rows.iter()
                .all(|r| r.family == "3 comparisons against baseline base on metric ndcg")
        );
        assert!(rows.iter().all(|r| r.family_size == 3 && r.correction == correction));
        // Input (system) order is kept.
        let names: Vec<&str> = rows.iter().map(|r| r.system.as_str()).collect();
        assert_eq!(names, ["s1", "s2", "s3"]);
    }
}

#[test]
fn monte_carlo_is_reproducible_and_seeded() {
    // 40 queries: more than the 30 enumerated exactly, so Monte Carlo runs.
    let data = many(40, &[("base", 0.0), ("s1", 0.03), ("s2", 0.04)]);
    let run = |seed, threads| {
        compare(
            &data,
            "map",
            "base",
            &CompareOptions {
                seed,
                threads,
                permutations: 4000,
                ..opts(TestKind::Randomization)
            },
        )
        .unwrap()
    };
    let a = run(7, 1);
    assert_eq!(a, run(7, 2));
    assert_eq!(a[0].method, "monte carlo, B = 4000, seed 7");
    let b = run(8, 1);
    assert_ne!(
        a.iter().map(|r| r.p_value).collect::<Vec<_>>(),
        b.iter().map(|r| r.p_value).collect::<Vec<_>>()
    );
    // A comparison's stream depends on its own names only: dropping s2 leaves s1 unchanged.
    let mut fewer = data.clone();
    fewer.remove("s2");
    let alone = compare(
        &fewer,
        "map",
        "base",
        &CompareOptions {
            seed: 7,
            permutations: 4000,
            ..opts(TestKind::Randomization)
        },
    )
    .unwrap();
    assert_eq!(alone[0].p_value, a[0].p_value);
    // The Monte Carlo p stays near the t-test p on this well-behaved data.
    let t = compare(&data, "map", "base", &opts(TestKind::T)).unwrap();
    for (r, t) in a.iter().zip(&t) {
        assert!((r.p_value - t.p_value).abs() < 0.03, "{} vs {}", r.p_value, t.p_value);
    }
}

#[test]
fn bootstrap_rows_carry_bootstrap_intervals() {
    let data = many(30, &[("base", 0.0), ("s1", 0.05)]);
    for (ci, name) in [
        (BootstrapMethod::Percentile, "bootstrap percentile"),
        (BootstrapMethod::Bca, "bootstrap bca"),
    ] {
        let o = CompareOptions {
            bootstrap_ci: ci,
            bootstrap_samples: 3000,
            ..opts(TestKind::Bootstrap)
        };
        let r = &compare(&data, "map", "base", &o).unwrap()[0];
        assert_eq!(r.ci_method, name);
        assert!(r.ci_low < r.mean_diff && r.mean_diff < r.ci_high);
        assert_eq!(r, &compare(&data, "map", "base", &o).unwrap()[0]);
    }
}

#[test]
fn wilcoxon_rows_follow_the_function() {
    let data = many(25, &[("base", 0.0), ("s1", 0.02)]);
    let r = &compare(&data, "map", "base", &opts(TestKind::Wilcoxon)).unwrap()[0];
    let x: Vec<f64> = data["base"].values().copied().collect();
    let y: Vec<f64> = data["s1"].values().copied().collect();
    let w = wilcoxon(&x, &y, &Default::default()).unwrap();
    assert_eq!((r.statistic, r.p_value), (w.statistic, w.p_value));
    assert!(r.method.starts_with("exact"), "{}", r.method);
    let t = paired_t(&x, &y, 0.95).unwrap();
    assert_eq!(
        (r.ci_low, r.ci_high, r.ci_method.as_str()),
        (t.diff.low, t.diff.high, "t")
    );
}

#[test]
fn exact_wilcoxon_matches_enumeration() {
    // d = 6, 8, 14, 16, 23, 24, 28, 29, 41, −48, 49, 56, 60, −67, 75: ranks 1..15, W− = 10 + 14.
    let d = [
        6.0, 8.0, 14.0, 16.0, 23.0, 24.0, 28.0, 29.0, 41.0, -48.0, 49.0, 56.0, 60.0, -67.0, 75.0,
    ];
    let r = wilcoxon(&[0.0; 15], &d, &Default::default()).unwrap();
    assert!(r.exact);
    assert_eq!(r.statistic, 24.0);
    let at_most = (0u32..1 << 15)
        .filter(|mask| (0..15).filter(|i| mask >> i & 1 == 1).map(|i| i + 1).sum::<u32>() <= 24)
        .count();
    assert_eq!(r.p_value, 2.0 * at_most as f64 / 32768.0);
    assert!((r.p_value - 0.041259765625).abs() < 1e-15);
}

#[test]
fn formats_render_every_row() {
    let data = many(12, &[("base_1", 0.0), ("a&b %x", 0.02), ("c,\"d\"", 0.04)]);
    let rows = compare(&data, "ndcg@10", "base_1", &opts(TestKind::T)).unwrap();

    let json: serde_json::Value = serde_json::from_str(&format_comparisons(&rows, Format::Json)).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    for key in [
        "baseline",
        "system",
        "metric",
        "test",
        "n",
        "mean_baseline",
        "mean_system",
        "statistic",
        "p_value",
        "p_adjusted",
        "effect_size",
        "ci_low",
        "ci_high",
        "correction",
        "family",
        "missing_policy",
    ] {
        assert!(arr[0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(arr[0]["test"], "t");
    assert_eq!(arr[0]["correction"], "holm");

    let csv_text = format_comparisons(&rows, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..3], ["baseline", "system", "metric"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    let systems: Vec<&str> = records.iter().map(|r| &r[1]).collect();
    assert_eq!(systems, ["a&b %x", "c,\"d\""]);
    let empty = format_comparisons(&[], Format::Csv);
    assert_eq!(empty.lines().next().unwrap(), csv_text.lines().next().unwrap());

    let md = format_comparisons(&rows, Format::Md);
    assert_eq!(md.lines().filter(|l| l.starts_with("| ndcg@10 |")).count(), 2);
    assert!(
        md.contains("2 comparisons against baseline base_1 on metric ndcg@10"),
        "{md}"
    );
    assert!(md.contains("missing queries: error"), "{md}");

    let tex = format_comparisons(&rows, Format::Tex);
    assert!(tex.contains("\\toprule") && tex.contains("\\midrule") && tex.contains("\\bottomrule"));
    assert!(tex.contains("a\\&b \\%x") && tex.contains("base\\_1"), "{tex}");
    assert!(!tex.contains("a&b"), "{tex}");
}

#[test]
fn tukey_rows_cover_all_pairs_baseline_first() {
    let data = many(20, &[("m", 0.0), ("a", 0.03), ("z", 0.06)]);
    let rows = compare(&data, "map", "m", &opts(TestKind::Tukey)).unwrap();
    let pairs: Vec<(&str, &str)> = rows.iter().map(|r| (r.baseline.as_str(), r.system.as_str())).collect();
    assert_eq!(pairs, [("m", "a"), ("m", "z"), ("a", "z")]);
    for r in &rows {
        assert_eq!(r.p_value, r.p_adjusted);
        assert_eq!(r.statistic_name, "q");
        assert!(r.ci_low < r.mean_diff && r.mean_diff < r.ci_high);
        assert!(r.family.contains("family-wise"));
    }
}

#[test]
fn options_deserialize_with_defaults() {
    let o: CompareOptions = serde_json::from_str(
        r#"{"test": "randomization", "correction": "by", "missing": "zero", "zero_method": "pratt"}"#,
    )
    .unwrap();
    assert_eq!(
        (o.test, o.correction, o.missing),
        (TestKind::Randomization, Correction::By, MissingPolicy::Zero)
    );
    assert_eq!((o.permutations, o.confidence), (10_000, 0.95));
    assert!(serde_json::from_str::<CompareOptions>(r#"{"tests": "t"}"#).is_err());
    for (name, test) in [
        ("t", TestKind::T),
        ("wilcoxon", TestKind::Wilcoxon),
        ("tukey", TestKind::Tukey),
    ] {
        assert_eq!(serde_json::to_string(&test).unwrap(), format!("\"{name}\""));
    }
}
