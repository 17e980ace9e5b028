//! The records of a results folder: `sweep.json` ([`SweepRecord`]: the plan, each cell's
//! status, the statistics settings, provenance), a finished cell's `result.json`
//! ([`CellResult`], with the sizes and SHA-256 of the cell's outputs, checked by [`damage`])
//! and a failed cell's `error.json` ([`CellError`]).

use super::paths::{self, CellFile};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a cell stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Not run yet.
    Pending,
    /// A live process holds its lock.
    Running,
    /// Its `result.json` is there.
    Done,
    /// Its `error.json` is there.
    Failed,
    /// Its `result.json` is there, but an output differs from what it recorded (run again).
    Damaged,
}

/// One cell of the plan in `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedCell {
    /// The cell id.
    pub id: String,
    /// The id of its grid point.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// Its axis values.
    pub assignment: BTreeMap<String, serde_json::Value>,
    /// Its schedule's label.
    pub schedule_name: String,
    /// Why the grid has this cell's point.
    #[serde(default)]
    pub reason: String,
    /// Its status when the record was written.
    pub status: CellStatus,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where and with what a run happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// The crate version.
    pub clirlab_version: String,
    /// The commit clirlab was built from (none when built outside a git checkout).
    pub git_commit: Option<String>,
    /// Whether its sources (`src`, `Cargo.toml`, `Cargo.lock`, `build.rs`) differed from that
    /// commit when it was built.
    pub git_dirty: Option<bool>,
    /// SHA-256 (16 hex) of that difference, when there was one.
    pub git_diff_hash: Option<String>,
    /// The host name.
    pub host: String,
    /// The build or device the run used.
    pub device: String,
    /// Training threads.
    pub threads: usize,
    /// When it started (Unix seconds).
    pub started_unix: u64,
}

/// `sweep.json`: the plan, each cell's status, the statistics settings and provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The experiment's name.
    pub experiment: String,
    /// The experiment file.
    pub source: PathBuf,
    /// `data.dataset`.
    pub dataset: String,
    /// Whether the data set is the synthetic one.
    pub synthetic: bool,
    /// The baseline grid point's variant id, when the grid has several.
    pub baseline: Option<String>,
    /// The statistics settings of the report.
    pub stats: crate::spec::StatsConfig,
    /// `--jobs` of the run that planned.
    pub jobs: usize,
    /// Every cell of the plan.
    pub cells: Vec<PlannedCell>,
    /// The reference rows of the experiment (`references`); absent when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<PlannedReference>,
    /// Where the planning run happened.
    pub provenance: Provenance,
}

impl SweepRecord {
    /// Reads `<dir>/sweep.json`. A folder without one is told apart: missing, a cell's folder,
    /// or a results root (whose experiment folders are listed).
    pub fn read(dir: &Path) -> Result<SweepRecord> {
        let path = paths::sweep_record(dir);
        if !path.is_file() {
            anyhow::bail!("{}", not_a_results_folder(dir));
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let record: SweepRecord =
            serde_json::from_str(&text).with_context(|| format!("{}: not a clirlab sweep record", path.display()))?;
        record.check_names(&path)?;
        Ok(record)
    }

    /// Every name of the record that becomes a path (cell ids, reference keys, the
    /// experiment) must be one plain path component, or a damaged or hostile `sweep.json`
    /// (`"id": "../../x"`) would make the commands write and read outside the results folder.
    fn check_names(&self, path: &Path) -> Result<()> {
        let names = std::iter::once(("experiment", &self.experiment))
            .chain(
                self.cells
                    .iter()
                    .flat_map(|c| [("cells[].id", &c.id), ("cells[].variant", &c.variant)]),
            )
            .chain(self.references.iter().map(|r| ("references[].key", &r.key)));
        for (key, name) in names {
            anyhow::ensure!(
                clirlab_util::fs::plain_component(name),
                "{}: key `{key}`: expected one plain folder name (no `/`, `..` or leading dot), found {name:?}",
                path.display()
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = self.cells.iter().find(|c| !seen.insert(&c.id)) {
            anyhow::bail!(
                "{}: key `cells[].id`: expected distinct ids, found {:?} twice",
                path.display(),
                twice.id
            );
        }
        Ok(())
    }
}

/// Why `dir`, which has no `sweep.json`, is not an experiment's results folder, and what to
/// give instead.
fn not_a_results_folder(dir: &Path) -> String {
    let shown = dir.display();
    let expected = "expected an experiment's results folder (the one holding sweep.json, e.g. results/quickstart)";
    if !dir.exists() {
        return format!("{shown}: no such folder; {expected}");
    }
    if !dir.is_dir() {
        return format!("{shown}: not a folder; {expected}");
    }
    if CellFile::Config.at(dir).is_file()
        && let Some(experiment) = dir.parent().and_then(Path::parent)
    {
        return format!("{shown}: a cell's folder; {expected}: {}", experiment.display());
    }
    let mut experiments: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| paths::sweep_record(&e.path()).is_file())
        .map(|e| e.path().display().to_string())
        .collect();
    experiments.sort();
    if experiments.is_empty() {
        format!("{shown}: holds no sweep.json; {expected}")
    } else {
        format!(
            "{shown}: a results root, not one experiment's folder; give one of {}",
            experiments.join(", ")
        )
    }
}

/// A reference row of the plan in `sweep.json`: computed once per data set and parameters,
/// apart from the grid, into `references/<key>/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedReference {
    /// `<name>-<content hash>`: its folder under `references/`.
    pub key: String,
    /// `bm25` or `zero_shot`.
    pub name: String,
    /// The label shown in tables and plots.
    pub label: String,
}

/// `result.json` of a computed reference row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReferenceResult {
    /// Its key (folder name).
    pub key: String,
    /// `bm25` or `zero_shot`.
    pub name: String,
    /// Its label.
    pub label: String,
    /// `data.dataset`.
    pub dataset: String,
    /// `<lang>/<task>` → metric → mean over queries.
    pub means: BTreeMap<String, BTreeMap<String, f64>>,
    /// Queries evaluated.
    pub queries: usize,
    /// Seconds it took.
    pub seconds: f64,
    /// Where and how it ran.
    pub provenance: Provenance,
    /// File name → size and SHA-256 of each output, as written.
    pub outputs: BTreeMap<String, OutputDigest>,
    /// The SHA-256 of the record itself, as a cell's (absent in results of older versions).
    #[serde(default, skip_serializing)]
    pub record_sha256: Option<String>,
}

/// Writes the `result.json` of a computed reference row atomically, digested as a cell's.
pub fn write_reference_result(path: &Path, result: &ReferenceResult) -> Result<()> {
    write_digested(path, result)
}

/// The computed reference `key` in `dir`, when its `result.json` is there for that key, has
/// not been edited since it was written, and its outputs are intact (checked by content).
pub fn finished_reference(dir: &Path, key: &str) -> Option<ReferenceResult> {
    let folder = paths::reference_dir(dir, key);
    let text = std::fs::read_to_string(CellFile::Result.at(&folder)).ok()?;
    let result = serde_json::from_str::<ReferenceResult>(&text)
        .ok()
        .filter(|r| r.key == key)?;
    if let Some(recorded) = &result.record_sha256 {
        check_record_digest(&text, recorded, "").ok()?;
    }
    let intact = [CellFile::Run, CellFile::Metrics]
        .iter()
        .all(|f| result.outputs.contains_key(f.name()))
        && damage_in(&folder, &result.outputs, Check::Contents).is_none();
    intact.then_some(result)
}

/// Per-cell provenance in `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellProvenance {
    /// The run's provenance, with the cell's device.
    #[serde(flatten)]
    pub run: Provenance,
    /// The cell's seed.
    pub seed: u64,
    /// The process that ran it.
    pub pid: u32,
    /// When it ended (Unix seconds).
    pub ended_unix: u64,
    /// Peak resident memory of the process that ran the cell (VmHWM), in KiB.
    pub peak_memory_kib: Option<u64>,
}

/// `result.json` of a finished cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell id.
    pub id: String,
    /// Its grid point.
    pub variant: String,
    /// Its seed.
    pub seed: u64,
    /// Its schedule's label.
    pub schedule_name: String,
    /// `data.dataset`.
    pub dataset: String,
    /// Whether the data set is the synthetic one.
    pub synthetic: bool,
    /// `<lang>/<task>` → metric → mean over queries.
    pub means: BTreeMap<String, BTreeMap<String, f64>>,
    /// Queries evaluated.
    pub queries: usize,
    /// The loss of the last training step; none for a zero-shot cell (`train.steps: 0`), which
    /// takes no step (written as `null`, which an `f64` could not be read back from).
    pub final_loss: Option<f64>,
    /// Step whose weights were evaluated (the best validation step, or the last).
    pub kept_step: usize,
    /// Best validation nDCG@10, if validation ran.
    pub best_validation_ndcg10: Option<f64>,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Seconds of the whole cell.
    pub total_seconds: f64,
    /// Where and how it ran.
    pub provenance: CellProvenance,
    /// File name → size and SHA-256 of each output of the cell, as written (empty in results
    /// of older versions, whose outputs are only checked to exist).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputDigest>,
    /// The SHA-256 of the record itself, as [`write_result`] writes it (absent in results of
    /// older versions): an edited `result.json` (its means) is damaged like an edited output.
    #[serde(default, skip_serializing)]
    pub record_sha256: Option<String>,
}

/// How [`write_result`] ends `result.json`: the record's digest is its last field.
const RECORD_DIGEST: &str = ",\n  \"record_sha256\": \"";

/// Writes the `result.json` of a finished cell atomically: the record as pretty JSON with, as
/// its last field, the SHA-256 of the same text without that field (the bytes written, so no
/// number has to read back to the same bits).
pub fn write_result(path: &Path, result: &CellResult) -> Result<()> {
    write_digested(path, result)
}

/// `record` as pretty JSON ending with its own digest (see [`write_result`]), written atomically.
fn write_digested<T: Serialize>(path: &Path, record: &T) -> Result<()> {
    let body = serde_json::to_string_pretty(record)?;
    let digest = sha256_hex(body.as_bytes());
    let open = body
        .strip_suffix("\n}")
        .context("a record serializes to a JSON object")?;
    Ok(clirlab_util::fs::write_atomic(
        path,
        format!("{open}{RECORD_DIGEST}{digest}\"\n}}\n").as_bytes(),
    )?)
}

/// Checks that `text`, a record that [`write_digested`] wrote, still has the digest `recorded`;
/// the error (prefixed with `shown`) says why not.
fn check_record_digest(text: &str, recorded: &str, shown: &str) -> std::result::Result<(), String> {
    let body = text
        .rfind(RECORD_DIGEST)
        .map(|at| format!("{}\n}}", &text[..at]))
        .ok_or_else(|| format!("{shown}: `record_sha256` is not its last field"))?;
    if sha256_hex(body.as_bytes()) != recorded {
        return Err(format!(
            "{shown} differs from its recorded SHA-256 (edited since it was written)"
        ));
    }
    Ok(())
}

/// The `result.json` of `cell_id` in `dir`: `Ok(None)` when there is none, an error saying
/// why when it is damaged (not a record, another cell's, or edited since it was written).
pub fn read_result(dir: &Path, cell_id: &str) -> std::result::Result<Option<CellResult>, String> {
    let path = paths::cell_file(dir, cell_id, CellFile::Result);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let shown = path.display();
    let result: CellResult = serde_json::from_str(&text).map_err(|e| format!("{shown}: not a cell record ({e})"))?;
    if result.id != cell_id {
        return Err(format!(
            "{shown}: the record of cell {:?}, expected {cell_id:?}",
            result.id
        ));
    }
    if let Some(recorded) = &result.record_sha256 {
        check_record_digest(&text, recorded, &shown.to_string())?;
    }
    Ok(Some(result))
}

/// The SHA-256 of `bytes`, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The size and SHA-256 of one output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDigest {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, in hex.
    pub sha256: String,
}

/// The outputs of a cell whose digests `result.json` records, when they exist. Not the
/// checkpoint: nothing downstream reads it, it may be large to hash on every `status`, and it
/// may be pruned to save space (or left out of a copy of the results).
pub const OUTPUTS: [CellFile; 7] = [
    CellFile::Tokenizer,
    CellFile::TrainLog,
    CellFile::Run,
    CellFile::ZeroShotRun,
    CellFile::MonoRun,
    CellFile::MultiRun,
    CellFile::Metrics,
];

/// Outputs every finished cell has, recorded or not.
const REQUIRED: [CellFile; 3] = [CellFile::TrainLog, CellFile::Run, CellFile::Metrics];

/// The size and SHA-256 of the file at `path`.
fn digest(path: &Path) -> std::io::Result<OutputDigest> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let bytes = std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(OutputDigest {
        bytes,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

/// The digests of the outputs in `cell_dir`, for its `result.json`.
pub fn digest_outputs(cell_dir: &Path) -> Result<BTreeMap<String, OutputDigest>> {
    OUTPUTS
        .iter()
        .map(|f| f.at(cell_dir))
        .filter(|p| p.is_file())
        .map(|p| {
            let d = digest(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok((p.file_name().unwrap_or_default().to_string_lossy().into_owned(), d))
        })
        .collect()
}

/// How closely [`damage`] compares a cell's outputs with its `result.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// That they exist with their recorded sizes (cheap: the rounds of `run` ask often).
    Sizes,
    /// Sizes and SHA-256 (`run` before planning, `report`, `status`).
    Contents,
}

/// Why the outputs of finished cell `result` in `dir` are damaged (missing, truncated,
/// changed), if they are: the first file that differs and how.
pub fn damage(dir: &Path, result: &CellResult, check: Check) -> Option<String> {
    let cell_dir = paths::cell_dir(dir, &result.id);
    for file in REQUIRED {
        if !file.at(&cell_dir).is_file() && !result.outputs.contains_key(file.name()) {
            return Some(format!("{} is missing", file.at(&cell_dir).display()));
        }
    }
    damage_in(&cell_dir, &result.outputs, check)
}

/// Why the `outputs` recorded for the files of `folder` no longer match them, if they do not.
fn damage_in(folder: &Path, outputs: &BTreeMap<String, OutputDigest>, check: Check) -> Option<String> {
    for (name, recorded) in outputs {
        let path = folder.join(name);
        let Ok(meta) = std::fs::metadata(&path) else {
            return Some(format!("{} is missing", path.display()));
        };
        if meta.len() != recorded.bytes {
            return Some(format!(
                "{} has {} bytes, result.json recorded {}",
                path.display(),
                meta.len(),
                recorded.bytes
            ));
        }
        if check == Check::Contents {
            match digest(&path) {
                Ok(d) if d.sha256 == recorded.sha256 => {}
                Ok(_) => return Some(format!("{} differs from its SHA-256 in result.json", path.display())),
                Err(e) => return Some(format!("{}: {e}", path.display())),
            }
        }
    }
    None
}

/// `error.json` of a failed cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellError {
    /// The cell id.
    pub id: String,
    /// Why it failed.
    pub reason: String,
    /// When (Unix seconds).
    pub ended_unix: u64,
}

/// The finished result of `cell_id` in `dir`, if there is one for exactly that id, intact
/// (see [`read_result`]).
pub fn finished(dir: &Path, cell_id: &str) -> Option<CellResult> {
    read_result(dir, cell_id).ok().flatten()
}

/// The recorded failure of `cell_id` in `dir`, if there is one for exactly that id.
pub fn failure(dir: &Path, cell_id: &str) -> Option<CellError> {
    let text = std::fs::read_to_string(paths::cell_file(dir, cell_id, CellFile::Error)).ok()?;
    serde_json::from_str::<CellError>(&text)
        .ok()
        .filter(|e| e.id == cell_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        Provenance {
            clirlab_version: "0".into(),
            git_commit: None,
            git_dirty: None,
            git_diff_hash: None,
            host: "h".into(),
            device: "cpu".into(),
            threads: 1,
            started_unix: 0,
        }
    }

    fn record(ids: &[&str]) -> SweepRecord {
        SweepRecord {
            experiment: "e".into(),
            source: "e.yaml".into(),
            dataset: "synthetic".into(),
            synthetic: true,
            baseline: None,
            stats: crate::spec::StatsConfig::default(),
            jobs: 1,
            cells: ids
                .iter()
                .map(|id| PlannedCell {
                    id: id.to_string(),
                    variant: "v".into(),
                    seed: 1,
                    assignment: BTreeMap::new(),
                    schedule_name: "s".into(),
                    reason: String::new(),
                    status: CellStatus::Pending,
                    error: None,
                })
                .collect(),
            references: vec![PlannedReference {
                key: "bm25-ab".into(),
                name: "bm25".into(),
                label: "BM25".into(),
            }],
            provenance: provenance(),
        }
    }

    fn result(id: &str) -> CellResult {
        CellResult {
            id: id.into(),
            variant: "v".into(),
            seed: 1,
            schedule_name: "s".into(),
            dataset: "synthetic".into(),
            synthetic: true,
            means: [("sx/t".to_string(), [("ndcg@10".to_string(), 0.1 + 0.2)].into())].into(),
            queries: 3,
            final_loss: Some(1.0 / 3.0),
            kept_step: 4,
            best_validation_ndcg10: None,
            train_seconds: 0.5,
            total_seconds: 1.5,
            provenance: CellProvenance {
                run: provenance(),
                seed: 1,
                pid: 1,
                ended_unix: 0,
                peak_memory_kib: None,
            },
            outputs: BTreeMap::new(),
            record_sha256: None,
        }
    }

    /// Pieces of names that leave a folder, or nearly do.
    const NAMES: &[&str] = &[
        "..",
        ".",
        "/",
        "\\\\",
        "a",
        "b_s1_ab12",
        "-",
        "~",
        "%2e",
        "\\u0000",
        "\\n",
        " ",
        "界",
        "x.y",
    ];

    #[test]
    fn names_read_back_from_sweep_json_are_plain_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let mut fuzz = clirlab_util::fuzz::Fuzz::new(11);
        let valid = serde_json::to_string_pretty(&record(&["a_s1_00", "b_s1_00"])).unwrap();
        for i in 0..4_000 {
            // Hostile names in every place that becomes a path, or a damaged file (cut, a
            // byte changed).
            let text = match i % 3 {
                0 => {
                    let (a, b, k) = (fuzz.text(NAMES, 4), fuzz.text(NAMES, 3), fuzz.text(NAMES, 3));
                    valid
                        .replacen("\"a_s1_00\"", &format!("\"{a}\""), 1)
                        .replacen("\"v\"", &format!("\"{b}\""), 1)
                        .replacen("\"bm25-ab\"", &format!("\"{k}\""), 1)
                }
                1 => valid[..(i * 7) % valid.len()].to_string(),
                _ => {
                    let mut bytes = valid.clone().into_bytes();
                    let at = (i * 13) % bytes.len();
                    bytes[at] = fuzz.text(&["\"", "/", ".", "{", "0"], 1).bytes().next().unwrap_or(b'.');
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            std::fs::write(paths::sweep_record(dir), &text).unwrap();
            match SweepRecord::read(dir) {
                Err(e) => assert!(e.to_string().contains("sweep.json"), "{text:?}: {e}"),
                Ok(r) => {
                    let names = r
                        .cells
                        .iter()
                        .flat_map(|c| [&c.id, &c.variant])
                        .chain(r.references.iter().map(|x| &x.key));
                    for name in names {
                        let at = paths::cell_dir(dir, name);
                        assert_eq!(at.parent(), Some(paths::cells_dir(dir).as_path()), "{name:?}");
                        assert_eq!(at.file_name().and_then(|n| n.to_str()), Some(name.as_str()), "{name:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn experiment_names_stay_one_folder_under_the_root() {
        let mut fuzz = clirlab_util::fuzz::Fuzz::new(12);
        let root = Path::new("/results");
        for _ in 0..20_000 {
            let name = fuzz.text(NAMES, 4);
            if let Ok(dir) = paths::experiment_dir(root, &name) {
                assert_eq!(dir.parent(), Some(root), "{name:?}");
                assert_eq!(dir.file_name().and_then(|n| n.to_str()), Some(name.as_str()));
            }
        }
    }

    #[test]
    fn no_edit_of_a_result_reads_back_as_finished() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let path = paths::cell_file(dir, "a_s1_00", CellFile::Result);
        write_result(&path, &result("a_s1_00")).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        let read = read_result(dir, "a_s1_00").unwrap().unwrap();
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            serde_json::to_string(&result("a_s1_00")).unwrap()
        );
        assert!(read.record_sha256.is_some());
        assert_eq!(read_result(dir, "none").unwrap().map(|r| r.id), None);
        let mut fuzz = clirlab_util::fuzz::Fuzz::new(13);
        for i in 0..3_000 {
            let text = match i % 4 {
                0 => written[..(i * 5) % written.len()].to_string(),
                1 => written.replacen("0.30000000000000004", &fuzz.text(&["0", "1", ".", "9", "e"], 5), 1),
                2 => written.replacen("a_s1_00", &fuzz.text(NAMES, 3), 1),
                _ => {
                    let mut bytes = written.clone().into_bytes();
                    let at = (i * 11) % bytes.len();
                    bytes[at] = bytes[at].wrapping_add(1 + (i % 9) as u8);
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            std::fs::write(&path, &text).unwrap();
            match read_result(dir, "a_s1_00") {
                // Only an edit outside the record (its closing brace, blanks after it) reads back.
                Ok(Some(r)) => assert_eq!(
                    serde_json::to_string(&r).unwrap(),
                    serde_json::to_string(&result("a_s1_00")).unwrap(),
                    "{text:?}"
                ),
                Ok(None) => panic!("{text:?}: the file is there"),
                Err(why) => assert!(why.contains("result.json"), "{text:?}: {why}"),
            }
        }
        // An older version's record (no digest) still reads back.
        std::fs::write(&path, serde_json::to_string(&result("a_s1_00")).unwrap()).unwrap();
        assert!(read_result(dir, "a_s1_00").unwrap().is_some());
    }

    #[test]
    fn an_edited_reference_record_is_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let folder = paths::reference_dir(dir, "bm25-00");
        std::fs::create_dir_all(&folder).unwrap();
        for file in [CellFile::Run, CellFile::Metrics] {
            std::fs::write(file.at(&folder), file.name()).unwrap();
        }
        let reference = ReferenceResult {
            key: "bm25-00".into(),
            name: "bm25".into(),
            label: "reference: BM25".into(),
            dataset: "bible".into(),
            means: BTreeMap::from([("sw/translation".into(), BTreeMap::from([("AP".into(), 0.25)]))]),
            queries: 4,
            seconds: 1.0,
            provenance: provenance(),
            outputs: digest_outputs(&folder).unwrap(),
            record_sha256: None,
        };
        let path = CellFile::Result.at(&folder);
        write_reference_result(&path, &reference).unwrap();
        let read = finished_reference(dir, "bm25-00").expect("written and intact");
        assert!(read.record_sha256.is_some());
        let written = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, written.replacen("0.25", "0.75", 1)).unwrap();
        assert!(
            finished_reference(dir, "bm25-00").is_none(),
            "an edited mean reads back"
        );
        // An older version's record (no digest) still reads back.
        std::fs::write(&path, serde_json::to_string(&reference).unwrap()).unwrap();
        assert!(finished_reference(dir, "bm25-00").is_some());
    }
}
