//! Every results path and file name, in one place. The layout of `results/`:
//!
//! ```text
//! results/<experiment>/
//!   sweep.json                  plan, cell status, provenance
//!   cells/<cell-id>/            config.yaml, tokenizer.json, train_log.csv, model.safetensors,
//!                               run.trec, run.zero_shot.trec, run.mono.trec and
//!                               run.multi.trec (with `retrieval.settings`), metrics.csv, log.txt,
//!                               error.json (a failed cell), result.json (written last: done)
//!   cells/<cell-id>.lock        held while a process runs the cell
//!   references/<name>-<hash>/   a reference row (BM25, the zero-shot backbone): config.yaml,
//!                               run.trec, run.zero_shot.trec, run.mono.trec, run.multi.trec,
//!                               metrics.csv, result.json (last)
//!   references/<name>-<hash>.lock  held while a process computes it
//!   slurm/<n>/                  cells.txt, job.sbatch, job.json, <job>_<task>.out
//!   report/                     report.html, report.md, summary.csv, cells.csv,
//!                               comparisons.csv, pairwise.csv, tables.tex, plots/*.svg
//!   report-vs-<other>/          the same, for `report --against`
//! results/.artifacts/           content-addressed artifacts shared across cells (teachers)
//! ```

use std::path::{Path, PathBuf};

/// Folder under the results root for artifacts shared across cells and experiments (teachers).
pub const ARTIFACTS: &str = ".artifacts";

/// The plan and status record of an experiment's results folder.
pub const SWEEP_RECORD: &str = "sweep.json";

/// The folder of the cells' folders and locks.
pub const CELLS: &str = "cells";

/// The folder of the reference rows' folders and locks.
pub const REFERENCES: &str = "references";

/// The report folder of a results folder.
pub const REPORT: &str = "report";

/// The plots folder inside a report folder.
pub const PLOTS: &str = "plots";

/// Tokenizers stored with the prepared data sets (`<data_dir>/tokenizers/<key>.json`).
pub const TOKENIZER_CACHE: &str = "tokenizers";

/// The files of a cell's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellFile {
    /// `config.yaml`: the resolved configuration, written at planning.
    Config,
    /// `tokenizer.json`.
    Tokenizer,
    /// `train_log.csv`: one row per step.
    TrainLog,
    /// `model.safetensors`: the kept weights.
    Checkpoint,
    /// `run.trec`: the test split's run.
    Run,
    /// `run.zero_shot.trec`: the zero-shot set's run.
    ZeroShotRun,
    /// `run.mono.trec`: the test split's run in the monolingual setting.
    MonoRun,
    /// `run.multi.trec`: the test split's run in the multilingual setting.
    MultiRun,
    /// `metrics.csv`: per-query metrics.
    Metrics,
    /// `log.txt`: a worker's output and the failure reason.
    Log,
    /// `error.json`: why the cell failed.
    Error,
    /// `result.json`: written last; its presence with the cell's id means done.
    Result,
}

impl CellFile {
    /// The file's name.
    pub const fn name(self) -> &'static str {
        match self {
            CellFile::Config => "config.yaml",
            CellFile::Tokenizer => "tokenizer.json",
            CellFile::TrainLog => "train_log.csv",
            CellFile::Checkpoint => "model.safetensors",
            CellFile::Run => "run.trec",
            CellFile::ZeroShotRun => "run.zero_shot.trec",
            CellFile::MonoRun => "run.mono.trec",
            CellFile::MultiRun => "run.multi.trec",
            CellFile::Metrics => "metrics.csv",
            CellFile::Log => "log.txt",
            CellFile::Error => "error.json",
            CellFile::Result => "result.json",
        }
    }

    /// The run file of a retrieval setting (the cross-lingual one's is `run.trec`).
    pub const fn setting_run(setting: crate::spec::RetrievalSetting) -> CellFile {
        use crate::spec::RetrievalSetting as S;
        match setting {
            S::CrossLingual => CellFile::Run,
            S::Monolingual => CellFile::MonoRun,
            S::Multilingual => CellFile::MultiRun,
        }
    }

    /// The file in the cell folder `cell_dir`.
    pub fn at(self, cell_dir: &Path) -> PathBuf {
        cell_dir.join(self.name())
    }
}

/// The files of a report folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFile {
    /// `summary.csv`: one row per grid point and task.
    SummaryCsv,
    /// `cells.csv`: one row per trained cell and language/task.
    CellsCsv,
    /// `comparisons.csv`: every test against the baseline.
    ComparisonsCsv,
    /// `pairwise.csv`: every pair of grid points.
    PairwiseCsv,
    /// `tables.tex`: booktabs tables.
    TablesTex,
    /// `report.html`: the self-contained page.
    Html,
    /// `report.md`.
    Markdown,
}

impl ReportFile {
    /// The file's name.
    pub const fn name(self) -> &'static str {
        match self {
            ReportFile::SummaryCsv => "summary.csv",
            ReportFile::CellsCsv => "cells.csv",
            ReportFile::ComparisonsCsv => "comparisons.csv",
            ReportFile::PairwiseCsv => "pairwise.csv",
            ReportFile::TablesTex => "tables.tex",
            ReportFile::Html => "report.html",
            ReportFile::Markdown => "report.md",
        }
    }

    /// The file in the report folder `report_dir`.
    pub fn at(self, report_dir: &Path) -> PathBuf {
        report_dir.join(self.name())
    }
}

/// The files of a submission folder (`<backend>/<n>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionFile {
    /// `cells.txt`: the cells of the array, one a line (task i runs line i + 1).
    CellList,
    /// `job.sbatch`: the job script.
    Script,
    /// `job.json`: the submitted job's record.
    Job,
}

impl SubmissionFile {
    /// The file's name.
    pub const fn name(self) -> &'static str {
        match self {
            SubmissionFile::CellList => "cells.txt",
            SubmissionFile::Script => "job.sbatch",
            SubmissionFile::Job => "job.json",
        }
    }

    /// The file in the submission folder `folder`.
    pub fn at(self, folder: &Path) -> PathBuf {
        folder.join(self.name())
    }
}

/// The results folder of experiment `name` under `results_root`. The name must be one plain
/// path component (no `.`, `..`, separator or leading dot): nothing is written outside the root.
pub fn experiment_dir(results_root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        clirlab_util::fs::plain_component(name),
        "experiment name {name:?}: expected one plain folder name under the results root {}",
        results_root.display()
    );
    Ok(results_root.join(name))
}

/// `sweep.json` of the results folder `dir`.
pub fn sweep_record(dir: &Path) -> PathBuf {
    dir.join(SWEEP_RECORD)
}

/// The folder holding every cell folder of `dir`.
pub fn cells_dir(dir: &Path) -> PathBuf {
    dir.join(CELLS)
}

/// The folder of cell `id` in the results folder `dir`.
pub fn cell_dir(dir: &Path, id: &str) -> PathBuf {
    cells_dir(dir).join(id)
}

/// File `file` of cell `id` in the results folder `dir`.
pub fn cell_file(dir: &Path, id: &str, file: CellFile) -> PathBuf {
    file.at(&cell_dir(dir, id))
}

/// The lock a process holds while it runs cell `id`.
pub fn cell_lock(dir: &Path, id: &str) -> PathBuf {
    cells_dir(dir).join(format!("{id}.lock"))
}

/// The folder of reference `key` (`<name>-<content hash>`) in the results folder `dir`.
pub fn reference_dir(dir: &Path, key: &str) -> PathBuf {
    dir.join(REFERENCES).join(key)
}

/// The lock a process holds while it computes reference `key`.
pub fn reference_lock(dir: &Path, key: &str) -> PathBuf {
    dir.join(REFERENCES).join(format!("{key}.lock"))
}

/// The shared artifacts folder of `results_root`.
pub fn artifacts_dir(results_root: &Path) -> PathBuf {
    results_root.join(ARTIFACTS)
}

/// The report folder of the results folder `dir`.
pub fn report_dir(dir: &Path) -> PathBuf {
    dir.join(REPORT)
}

/// The folder of the comparison of `dir` with the results folder slugged `other`.
pub fn comparison_report_dir(dir: &Path, other: &str) -> PathBuf {
    dir.join(format!("report-vs-{other}"))
}

/// The submissions of backend `backend` (`<dir>/<backend>/`, numbered folders inside).
pub fn submissions_dir(dir: &Path, backend: &str) -> PathBuf {
    dir.join(backend)
}

/// The log of task `task` of job `job` in a submission folder.
pub fn task_log(folder: &Path, job: &str, task: usize) -> PathBuf {
    folder.join(format!("{job}_{task}.out"))
}

/// The log name pattern of every task of job `job`, for people.
pub fn task_log_pattern(folder: &Path, job: &str) -> PathBuf {
    folder.join(format!("{job}_<task>.out"))
}

/// The tokenizer cache of the data folder `data_dir`, and the lock and file of `key` in it.
pub fn tokenizer_cache(data_dir: &Path, key: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = data_dir.join(TOKENIZER_CACHE);
    let lock = dir.join(format!("{key}.lock"));
    let file = dir.join(format!("{key}.json"));
    (dir, lock, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_reads_as_documented() {
        let dir = experiment_dir(Path::new("results"), "quickstart").unwrap();
        for bad in ["..", ".", "", "a/b", "../x", ".artifacts", "/abs"] {
            assert!(experiment_dir(Path::new("results"), bad).is_err(), "{bad:?}");
        }
        assert_eq!(sweep_record(&dir), Path::new("results/quickstart/sweep.json"));
        assert_eq!(
            cell_file(&dir, "c1", CellFile::Result),
            Path::new("results/quickstart/cells/c1/result.json")
        );
        assert_eq!(cell_lock(&dir, "c1"), Path::new("results/quickstart/cells/c1.lock"));
        assert_eq!(
            ReportFile::SummaryCsv.at(&report_dir(&dir)),
            Path::new("results/quickstart/report/summary.csv")
        );
        assert_eq!(artifacts_dir(Path::new("results")), Path::new("results/.artifacts"));
        assert_eq!(
            CellFile::Metrics.at(&reference_dir(&dir, "bm25-ab12")),
            Path::new("results/quickstart/references/bm25-ab12/metrics.csv")
        );
        assert_eq!(
            reference_lock(&dir, "bm25-ab12"),
            Path::new("results/quickstart/references/bm25-ab12.lock")
        );
        assert_eq!(task_log(Path::new("s/1"), "42", 3), Path::new("s/1/42_3.out"));
    }
}
