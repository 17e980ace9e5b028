//! Runs of several systems evaluated together: the per-query table that `clirlab compare`
//! tests, systems named by their run files' stems.

use super::{EvalOptions, Measure, Qrels, Run, evaluate};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Per-query values of systems: metric output name → system → query → value.
pub type SystemTable = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

/// Evaluates every run file against `qrels` on `measures`: the systems' names (file stems, in
/// order) and metric output name → system → query → value.
pub fn per_query_table(qrels: &Qrels, runs: &[PathBuf], measures: &[Measure]) -> Result<(Vec<String>, SystemTable)> {
    let mut table = SystemTable::new();
    let mut names = Vec::new();
    for path in runs {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if names.contains(&name) {
            return Err(Error::Invalid(format!(
                "{}: two runs are named `{name}` (names come from file stems)",
                path.display()
            )));
        }
        let run = Run::from_path(path)?;
        let evaluation = evaluate(qrels, &run, measures, &EvalOptions::default()).map_err(|source| Error::InRun {
            path: path.clone(),
            source: Box::new(source),
        })?;
        for metric in evaluation.measure_names() {
            if let Some(values) = evaluation.per_query(metric) {
                let per_query = values.iter().map(|(q, v)| (q.to_string(), v)).collect();
                table
                    .entry(metric.to_string())
                    .or_default()
                    .insert(name.clone(), per_query);
            }
        }
        names.push(name);
    }
    Ok((names, table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_measures;

    #[test]
    fn systems_are_named_by_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let qrels = Qrels::parse("q", "1 0 d1 1\n2 0 d2 1\n").unwrap();
        let a = dir.path().join("a.trec");
        let b = dir.path().join("b.trec");
        std::fs::write(&a, "1 Q0 d1 1 2.0 a\n2 Q0 d9 1 1.0 a\n").unwrap();
        std::fs::write(&b, "1 Q0 d9 1 2.0 b\n2 Q0 d2 1 1.0 b\n").unwrap();
        let measures = parse_measures(&["map"]).unwrap();
        let (names, table) = per_query_table(&qrels, &[a.clone(), b], &measures).unwrap();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(table["map"]["a"]["1"], 1.0);
        assert_eq!(table["map"]["b"]["1"], 0.0);
        let twice = per_query_table(&qrels, &[a.clone(), a], &measures).unwrap_err();
        assert!(twice.to_string().contains("two runs are named `a`"), "{twice}");
        // A run that finds no judged topic is named by its file, not its runid.
        let c = dir.path().join("c.trec");
        std::fs::write(&c, "7 Q0 d1 1 2.0 tag\n").unwrap();
        let err = per_query_table(&qrels, &[c], &measures).unwrap_err();
        assert!(
            matches!(&err, crate::Error::InRun { path, .. } if path.ends_with("c.trec")),
            "{err}"
        );
        let cause = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(cause.contains("no judged topic"), "{cause}");
        // Empty files: the qrels, or the run, is named as the one without lines.
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let err = Qrels::from_path(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.txt:1: expected judgments"), "{err}");
        let err = Run::from_path(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.txt:1: expected ranked results"), "{err}");
    }
}
