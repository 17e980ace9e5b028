//! Seeds as a source of variance: `stats.unit` errors name the file and key, a sweep with 2
//! seeds gets the seed-aware columns (one with `stats.unit: queries` does not), and
//! `clirlab power` prints its table from flags or from the sweep, with clear errors.

use crate::common::cli::{clirlab, command, text};
use std::path::Path;

#[test]
fn a_bad_unit_names_the_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("unit.yaml");
    std::fs::write(&exp, "stats:\n  unit: sometimes\n").unwrap();
    let out = command(&["plan", exp.to_str().unwrap()]).output().unwrap();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("unit.yaml: key `stats.unit`"), "{err}");
    assert!(err.contains("seeds") && err.contains("queries"), "{err}");
    // `seeds` is chosen by the unit, never configured as a test.
    std::fs::write(&exp, "stats:\n  test: seeds\n").unwrap();
    let out = command(&["plan", exp.to_str().unwrap()]).output().unwrap();
    assert!(
        !out.status.success() && text(&out).contains("stats.test"),
        "{}",
        text(&out)
    );
}

#[test]
fn power_from_flags_prints_queries_per_seed_count() {
    let out = clirlab(&[
        "power",
        "--var-query",
        "0.02",
        "--var-residual",
        "0.01",
        "--var-seed",
        "0.0004",
        "--effect",
        "0.03",
        "--comparisons",
        "2",
    ]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("0.025000 per comparison"), "{s}");
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .collect();
    assert_eq!(rows.len(), 10, "{s}");
    // One seed: the seed part alone is too large for any number of queries.
    assert!(rows[0].contains(">100000"), "{s}");
    let queries = |row: &str| row.split_whitespace().nth(1).unwrap().parse::<usize>().ok();
    // Per comparison α 0.025: SE must reach 0.03 / (t_0.9875 + t_0.8), about 0.009 at the
    // seed part's few df, and the seed floor √(2 · 0.0004 / S) does so only at 10 seeds.
    assert!(rows[8].contains(">100000"), "{s}");
    let ten = queries(rows[9]).expect("10 seeds suffice");
    assert!(ten > 1000, "{s}");
}

#[test]
fn power_flags_are_checked() {
    for (args, wanted) in [
        (vec!["power", "--effect", "0.02"], "give RESULTS_DIR"),
        (
            vec![
                "power",
                "--var-query",
                "0.02",
                "--var-residual",
                "0.01",
                "--effect",
                "0.02",
            ],
            "all three",
        ),
        (
            vec![
                "power",
                "--var-query",
                "-1",
                "--var-residual",
                "0.01",
                "--var-seed",
                "0",
                "--effect",
                "0.02",
            ],
            "--var-query: expected a variance >= 0",
        ),
        (
            vec![
                "power",
                "--var-query",
                "0.02",
                "--var-residual",
                "0.01",
                "--var-seed",
                "0",
                "--effect",
                "0",
            ],
            "--effect: expected a difference > 0",
        ),
        (
            vec!["power", "/nonexistent-results", "--effect", "0.02"],
            "/nonexistent-results",
        ),
    ] {
        let out = clirlab(&args);
        let s = text(&out);
        assert!(!out.status.success(), "{args:?}: {s}");
        assert!(s.contains(wanted), "{args:?}: {s}");
    }
}

fn run_two_seeds(root: &Path, extra: &[&str]) {
    let mut args = vec![
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        root.to_str().unwrap(),
    ];
    let small = [
        "train.steps=30",
        "train.batch_size=16",
        "data.synthetic.topics=8",
        "data.synthetic.docs_per_topic=12",
        "seeds=[1,2]",
    ];
    for s in small.iter().chain(extra) {
        args.extend(["--set", s]);
    }
    let out = clirlab(&args);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_sweep_with_two_seeds_reports_seed_columns_and_plans_from_them() {
    let tmp = tempfile::tempdir().unwrap();
    run_two_seeds(tmp.path(), &[]);
    let dir = tmp.path().join("quickstart");
    let report = dir.join("report");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| p_adj | d_z | seed sd | p (queries) | MDD |"), "{md}");
    assert!(md.contains("- warning: a grid point has 2 seeds"), "{md}");
    let summary = std::fs::read_to_string(report.join("summary.csv")).unwrap();
    assert!(
        summary
            .lines()
            .next()
            .unwrap()
            .contains("nDCG@10_seed_sd,nDCG@10_p_queries,nDCG@10_mdd")
    );
    let comparisons = std::fs::read_to_string(report.join("comparisons.csv")).unwrap();
    assert!(
        comparisons.contains(",seeds,\"seed-aware t (2 x 2 seeds"),
        "{comparisons}"
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("sd<sub>seed</sub>") && html.contains("p<sub>queries</sub>"));
    let tex = std::fs::read_to_string(report.join("tables.tex")).unwrap();
    assert!(tex.contains("between-seed sd"), "{tex}");

    let out = clirlab(&[
        "power",
        dir.to_str().unwrap(),
        "--metric",
        "nDCG@10",
        "--effect",
        "0.05",
    ]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("2 seed-aware comparisons of nDCG@10 (family of 2, holm correction)"),
        "{s}"
    );
    let out = clirlab(&[
        "power",
        dir.to_str().unwrap(),
        "--metric",
        "nDCG@11",
        "--effect",
        "0.05",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("--metric: no metric `nDCG@11`"),
        "{}",
        text(&out)
    );

    // The opt-out: the same results without the seed columns (query-level as before).
    let queries = tempfile::tempdir().unwrap();
    let copy = queries.path().join("quickstart");
    copy_dir(&dir, &copy);
    let path = copy.join("sweep.json");
    let mut record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    record["stats"]["unit"] = "queries".into();
    std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    let out = clirlab(&["report", "--quiet", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(copy.join("report/report.md")).unwrap();
    assert!(!md.contains("seed sd") && md.contains("| p | p_adj | d_z |"), "{md}");
    let out = clirlab(&["power", copy.to_str().unwrap(), "--effect", "0.05"]);
    assert!(!out.status.success() && text(&out).contains("no comparison was made by the seed-aware test"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Reference rows and the pairwise matrix are tested like the grid points: BM25 (deterministic)
/// against the 2-seed baseline, and every pair, by the seed-aware test.
#[test]
fn references_and_pairs_get_the_seed_aware_test() {
    let tmp = tempfile::tempdir().unwrap();
    run_two_seeds(tmp.path(), &["references=[bm25]", "stats.equivalence_margin=0.5"]);
    let report = tmp.path().join("quickstart/report");
    let comparisons = std::fs::read_to_string(report.join("comparisons.csv")).unwrap();
    let bm25 = comparisons
        .lines()
        .find(|l| l.contains("bm25"))
        .unwrap_or_else(|| panic!("no BM25 row: {comparisons}"));
    assert!(
        bm25.contains(",seeds,\"seed-aware t (deterministic x 2 seeds"),
        "{bm25}"
    );
    let pairwise = std::fs::read_to_string(report.join("pairwise.csv")).unwrap();
    let pairs: Vec<&str> = pairwise.lines().skip(1).collect();
    assert!(!pairs.is_empty(), "{pairwise}");
    assert!(
        pairs.iter().all(|l| l.contains(",seeds,\"seed-aware t (")),
        "{pairwise}"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("vs δ = 0.5") && md.contains("(stats.family: metric)"),
        "{md}"
    );
    let summary = std::fs::read_to_string(report.join("summary.csv")).unwrap();
    let header = summary.lines().next().unwrap_or_default();
    assert!(header.contains("nDCG@10_p_tost,nDCG@10_verdict"), "{header}");
    // The verdicts are on the page and in the LaTeX tables too.
    let page = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(page.contains(" within δ 0.5 (TOST p<sub>adj</sub> "), "{page}");
    let tex = std::fs::read_to_string(report.join("tables.tex")).unwrap();
    assert!(tex.contains("shown equivalent to the baseline within 0.5"), "{tex}");
}
