//! Reproduces every reference value of `tests/data/sakai/README.md` (Sakai 2018,
//! Table 5.1: nDCG@5 of systems X, Y, Z on 20 topics).

use clirlab::stats::{
    CompareOptions, Correction, RandomizationOptions, TestKind, compare, paired_t, randomization_test, tukey_hsd,
    two_way_anova,
};
use std::collections::BTreeMap;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sakai");

/// (query id, value) pairs of one system, in file order.
fn load(system: &str) -> Vec<(String, f64)> {
    let mut reader = csv::Reader::from_path(format!("{DIR}/{system}.csv")).expect("sakai data present");
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].parse().unwrap())
        })
        .collect()
}

fn values(system: &str) -> Vec<f64> {
    load(system).into_iter().map(|(_, v)| v).collect()
}

fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want}");
}

#[test]
fn paired_t_test_x_vs_y() {
    // "X vs Y": X is the system, Y the baseline (t > 0 since X scores higher).
    let r = paired_t(&values("Y"), &values("X"), 0.95).unwrap();
    assert_close(r.t, 2.1157598612734656, 1e-9, "t");
    assert_close(r.df, 19.0, 0.0, "df");
    assert_close(r.p_value, 0.04779676184496439, 1e-9, "p");
    assert_close(r.effect_size, 0.4730982873872994, 1e-9, "effect size");
    assert_close(
        (r.diff.high - r.diff.low) / 2.0,
        0.07419405526775592,
        1e-9,
        "margin of error",
    );
    assert_close(r.diff.mean, 0.075, 1e-12, "mean difference");
}

#[test]
fn exact_randomization_x_vs_y() {
    let r = randomization_test(&values("Y"), &values("X"), &RandomizationOptions::default()).unwrap();
    assert!(r.exact);
    assert_eq!((r.extreme, r.evaluated), (69120, 1 << 20));
    assert_eq!(r.p_value, 0.06591796875);
    // The direction of the comparison does not matter for a two-sided test.
    let swapped = randomization_test(&values("X"), &values("Y"), &RandomizationOptions::default()).unwrap();
    assert_eq!(swapped.extreme, 69120);
}

#[test]
fn two_way_anova_xyz() {
    let a = two_way_anova(&[values("X"), values("Y"), values("Z")]).unwrap();
    assert_close(a.ss_systems, 0.108333, 1e-6, "SS systems");
    assert_close(a.ss_topics, 1.029333, 1e-6, "SS topics");
    assert_close(a.ss_residual, 0.831667, 1e-6, "SS residual");
    assert_eq!((a.df_systems, a.df_topics, a.df_residual), (2.0, 19.0, 38.0));
    assert_close(a.f_systems, 2.47495, 1e-5, "F systems");
    assert_close(a.p_systems, 0.0976354, 1e-6, "p systems");
    assert_close(
        a.ss_total,
        a.ss_systems + a.ss_topics + a.ss_residual,
        1e-12,
        "SS total",
    );
}

#[test]
fn tukey_hsd_xyz() {
    let a = two_way_anova(&[values("X"), values("Y"), values("Z")]).unwrap();
    let pairs = tukey_hsd(&a, 0.95);
    let p: BTreeMap<(usize, usize), f64> = pairs.iter().map(|t| ((t.i, t.j), t.p_value)).collect();
    assert_close(p[&(0, 1)], 0.256698, 1e-6, "p(X,Y)");
    assert_close(p[&(0, 2)], 0.095687, 1e-6, "p(X,Z)");
    assert_close(p[&(1, 2)], 0.854963, 1e-6, "p(Y,Z)");
}

fn per_system() -> BTreeMap<String, BTreeMap<String, f64>> {
    ["X", "Y", "Z"]
        .iter()
        .map(|s| (s.to_string(), load(s).into_iter().collect()))
        .collect()
}

#[test]
fn comparison_layer_reproduces_the_reference() {
    let data = per_system();
    let opts = |test| CompareOptions {
        test,
        correction: Correction::None,
        ..Default::default()
    };
    let t = compare(&data, "ndcg@5", "Y", &opts(TestKind::T)).unwrap();
    let xy = t.iter().find(|r| r.system == "X").unwrap();
    assert_close(xy.statistic, 2.1157598612734656, 1e-9, "t");
    assert_close(xy.p_value, 0.04779676184496439, 1e-9, "p");
    assert_close(xy.effect_size, 0.4730982873872994, 1e-9, "d_z");
    assert_close((xy.ci_high - xy.ci_low) / 2.0, 0.07419405526775592, 1e-9, "margin");
    assert_eq!(xy.family, "2 comparisons against baseline Y on metric ndcg@5");

    let r = compare(&data, "ndcg@5", "Y", &opts(TestKind::Randomization)).unwrap();
    let xy = r.iter().find(|r| r.system == "X").unwrap();
    assert_eq!(xy.p_value, 0.06591796875);
    assert_eq!(xy.method, "exact, 2^20 sign vectors");

    let tukey = compare(&data, "ndcg@5", "X", &opts(TestKind::Tukey)).unwrap();
    let p = |a: &str, b: &str| {
        tukey
            .iter()
            .find(|r| (r.baseline == a && r.system == b) || (r.baseline == b && r.system == a))
            .unwrap()
            .p_adjusted
    };
    assert_close(p("X", "Y"), 0.256698, 1e-6, "tukey p(X,Y)");
    assert_close(p("X", "Z"), 0.095687, 1e-6, "tukey p(X,Z)");
    assert_close(p("Y", "Z"), 0.854963, 1e-6, "tukey p(Y,Z)");
    assert_eq!(tukey.len(), 3);
    assert!(
        tukey
            .iter()
            .all(|r| r.correction == Correction::None && r.family.starts_with("all 3 pairs"))
    );
    // Baseline pairs come first.
    assert_eq!((tukey[0].baseline.as_str(), tukey[1].baseline.as_str()), ("X", "X"));
}
