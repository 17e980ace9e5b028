//! `clirlab submit`: runs a sweep on a cluster. The experiment is planned exactly as for `run`
//! (same `sweep.json` and cell folders); its unfinished cells go to the scheduler as one job
//! array whose tasks each run `clirlab run-cell RESULTS_DIR CELL_ID`, so results land in the same
//! layout and `status` and `report` read them alike. The binary and the results folder must be
//! on a filesystem that every node sees.
//!
//! Each submission gets its own folder, `<results>/<experiment>/slurm/<n>/`, with `cells.txt`
//! (the cells of the array, one a line: task i runs line i + 1), `job.sbatch`, the tasks' logs
//! `<job>_<task>.out`, and, once submitted, `job.json` with the job id.

use crate::run::paths::{self, SubmissionFile};
use crate::run::plan::{load_unfinished_data, plan};
use crate::run::records::CellStatus;
use crate::run::state::{cell_state, failed_cells, record_failure, refresh, wants_run};
use crate::spec::LoadedExperiment;
use anyhow::{Context, Result, bail, ensure};
use clirlab_util::fs::{write_atomic, write_json_atomic};
use clirlab_util::host::{host_name, now_unix};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Batch schedulers `submit` can hand a sweep to (`--backend`, `job.json`'s `backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Slurm: one job array, one task per cell.
    Slurm,
}

impl Backend {
    /// Its name in the results folder (`<name>/<n>/`) and in `job.json`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Slurm => "slurm",
        }
    }
}

/// Resources and placement of each Slurm task (one cell).
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// Slurm partition (default: the cluster's default partition).
    pub partition: Option<String>,
    /// Slurm account to charge.
    pub account: Option<String>,
    /// GPUs for each cell (--gres=gpu:N); Slurm sets CUDA_VISIBLE_DEVICES.
    pub gpus_per_cell: usize,
    /// Cores for each cell (--cpus-per-task), which are also its training threads.
    pub cpus_per_cell: usize,
    /// Memory for each cell, as Slurm writes it (e.g. 16G).
    pub mem: Option<String>,
    /// Time limit of each cell (minutes, HH:MM:SS or D-HH:MM:SS).
    pub time: Option<String>,
    /// At most this many cells running at once (--array=...%N).
    pub max_parallel: Option<usize>,
    /// A further sbatch option, one argument, e.g. --extra-sbatch=--qos=high; repeatable.
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// The options that are sbatch options of the same name with a value.
    fn valued_flags(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("partition", &self.partition),
            ("account", &self.account),
            ("mem", &self.mem),
            ("time", &self.time),
        ]
    }
}

/// What `submit` does.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// The scheduler.
    pub backend: Backend,
    /// Submit cells that failed before as well as pending ones.
    pub retry_failed: bool,
    /// Progress output while preparing data sets.
    pub progress: bool,
    /// Block until the job ends (`sbatch --wait`).
    pub wait: bool,
    /// Resources and placement of each task.
    pub slurm: SlurmOptions,
}

/// A submission written to disk, ready for the scheduler.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The scheduler.
    pub backend: Backend,
    /// The experiment's results folder (absolute).
    pub dir: PathBuf,
    /// `slurm/<n>/` of this submission.
    pub folder: PathBuf,
    /// The cells of the array, in task order.
    pub cells: Vec<String>,
    /// The job script.
    pub script: String,
}

impl Prepared {
    /// Where the job script is.
    pub fn script_path(&self) -> PathBuf {
        SubmissionFile::Script.at(&self.folder)
    }
}

/// `job.json` of a submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The scheduler.
    pub backend: Backend,
    /// The scheduler's job id.
    pub job_id: String,
    /// The cells of the array, in task order.
    pub cells: Vec<String>,
    /// The job script.
    pub script: PathBuf,
    /// The host it was submitted from.
    pub host: String,
    /// When (Unix seconds).
    pub submitted_unix: u64,
}

/// Plans the experiment into `results_root` as `run` does, picks the cells to run (pending, and
/// failed ones with `retry_failed`), prepares their data sets here (compute nodes may have no
/// network), and writes a new submission folder. `None` when no cell needs running.
pub fn prepare(loaded: &LoadedExperiment, results_root: &Path, opts: &SubmitOptions) -> Result<Option<Prepared>> {
    validate(&opts.slurm)?;
    let exe = std::env::current_exe().context("locating the clirlab executable")?;
    let (dir, record, cells, _) = plan(loaded, results_root, 1)?;
    let dir = std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))?;
    let chosen: Vec<String> = record
        .cells
        .iter()
        .filter(|c| wants_run(c.status, opts.retry_failed))
        .map(|c| c.id.clone())
        .collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    let todo: Vec<_> = cells.into_iter().filter(|c| chosen.contains(&c.id)).collect();
    load_unfinished_data(loaded, &dir, &todo, opts.progress)?;
    let data_dir = std::path::absolute(clirlab_data::data_dir()).context("resolving the data folder")?;
    let folder = new_submission_folder(&paths::submissions_dir(&dir, opts.backend.name()))?;
    let script = match opts.backend {
        Backend::Slurm => sbatch_script(&ScriptSpec {
            job_name: &format!("clirlab-{}", record.experiment),
            cells: chosen.len(),
            exe: &exe,
            results_dir: &dir,
            folder: &folder,
            data_dir: &data_dir,
            options: &opts.slurm,
        })?,
    };
    let mut list = chosen.join("\n");
    list.push('\n');
    write_atomic(&SubmissionFile::CellList.at(&folder), list.as_bytes())?;
    write_atomic(&SubmissionFile::Script.at(&folder), script.as_bytes())?;
    Ok(Some(Prepared {
        backend: opts.backend,
        dir,
        folder,
        cells: chosen,
        script,
    }))
}

/// Creates `<root>/<n>/` with n one above the highest existing number (1 for the first).
fn new_submission_folder(root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let highest = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    // create_dir fails on an existing folder, so two concurrent submits get different ones.
    for n in highest + 1.. {
        let folder = root.join(n.to_string());
        match std::fs::create_dir(&folder) {
            Ok(()) => return Ok(folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", folder.display())),
        }
    }
    unreachable!("the submission numbers are unbounded")
}

fn validate(o: &SlurmOptions) -> Result<()> {
    ensure!(o.cpus_per_cell >= 1, "--cpus-per-cell: expected at least 1");
    if o.max_parallel == Some(0) {
        bail!("--max-parallel: expected at least 1");
    }
    for (flag, value) in o.valued_flags() {
        if let Some(v) = value {
            ensure!(
                !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control()),
                "--{flag}: expected a value without spaces, found {v:?}"
            );
        }
    }
    if let Some(mem) = &o.mem {
        let digits = mem.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
        ensure!(
            !digits.is_empty() && digits.len() + 1 >= mem.len() && digits.chars().all(|c| c.is_ascii_digit()),
            "--mem: expected a size such as 4000, 16G or 512M, found {mem:?}"
        );
    }
    if let Some(time) = &o.time {
        let unlimited = ["unlimited", "infinite"].contains(&time.to_ascii_lowercase().as_str());
        ensure!(
            unlimited
                || (time.starts_with(|c: char| c.is_ascii_digit())
                    && time.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '-')),
            "--time: expected minutes, HH:MM:SS or D-HH:MM:SS (Slurm's formats), found {time:?}"
        );
    }
    for arg in &o.extra {
        ensure!(
            arg.starts_with('-') && !arg.chars().any(|c| c.is_control()),
            "--extra-sbatch: expected one sbatch option such as --qos=high, found {arg:?}"
        );
    }
    Ok(())
}

/// What the job script needs to know.
pub struct ScriptSpec<'a> {
    /// `--job-name`.
    pub job_name: &'a str,
    /// Cells in `cells.txt`, hence array tasks.
    pub cells: usize,
    /// The clirlab binary the tasks run.
    pub exe: &'a Path,
    /// The experiment's results folder.
    pub results_dir: &'a Path,
    /// The submission folder.
    pub folder: &'a Path,
    /// `CLIRLAB_DATA_DIR` of the tasks: the data sets `submit` prepared.
    pub data_dir: &'a Path,
    /// Resources and placement of each task.
    pub options: &'a SlurmOptions,
}

fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str> {
    path.to_str()
        .with_context(|| format!("{what} {}: Slurm scripts need UTF-8 paths", path.display()))
}

/// A path or word quoted for bash.
pub fn sh(text: &str) -> Result<String> {
    Ok(shlex::try_quote(text)
        .with_context(|| format!("{text:?} cannot be quoted for the shell"))?
        .into_owned())
}

/// A value of an `#SBATCH` line: sbatch splits those lines at blanks and drops double quotes,
/// with a backslash escaping the next character, so anything unusual goes in double quotes.
fn directive(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=+@%".contains(c))
    {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The batch script of a job array over `spec.cells` cells.
pub fn sbatch_script(spec: &ScriptSpec) -> Result<String> {
    ensure!(spec.cells >= 1, "a job array needs at least one cell");
    let o = spec.options;
    let folder = utf8(spec.folder, "results folder")?;
    // sbatch would read a backslash in --output as "expand no %A/%a" (see `man sbatch`).
    ensure!(
        !folder.contains('\\') && !folder.contains('\n'),
        "results folder {folder:?}: Slurm log file names cannot hold a backslash or a line break; choose another --results"
    );
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={}", directive(spec.job_name)),
        format!(
            "#SBATCH --array=0-{}{}",
            spec.cells - 1,
            o.max_parallel.map(|n| format!("%{n}")).unwrap_or_default()
        ),
        format!(
            "#SBATCH --output={}",
            directive(&format!("{}/%A_%a.out", folder.replace('%', "%%")))
        ),
        "#SBATCH --ntasks=1".to_string(),
        format!("#SBATCH --cpus-per-task={}", o.cpus_per_cell),
    ];
    if o.gpus_per_cell > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{}", o.gpus_per_cell));
    }
    for (flag, value) in o.valued_flags() {
        if let Some(v) = value {
            lines.push(format!("#SBATCH --{flag}={}", directive(v)));
        }
    }
    for arg in &o.extra {
        lines.push(format!("#SBATCH {}", directive(arg)));
    }
    lines.extend([
        String::new(),
        "# Written by `clirlab submit`. Task i runs the cell on line i + 1 of cells.txt; resubmitting".into(),
        "# this file by hand (sbatch job.sbatch) runs the same cells again, skipping finished ones.".into(),
        "set -eu".into(),
        format!(
            "CELLS={}",
            sh(utf8(&SubmissionFile::CellList.at(spec.folder), "results folder")?)?
        ),
        format!("RESULTS={}", sh(utf8(spec.results_dir, "results folder")?)?),
        "CELL=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$CELLS\")".into(),
        "if [ -z \"$CELL\" ]; then".into(),
        "  echo \"no cell on line $((SLURM_ARRAY_TASK_ID + 1)) of $CELLS\" >&2".into(),
        "  exit 1".into(),
        "fi".into(),
        "# Training threads = the cores Slurm gave this task.".into(),
        "export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"".into(),
        format!("export CLIRLAB_DATA_DIR={}", sh(utf8(spec.data_dir, "data folder")?)?),
        "export CLIRLAB_LOG=\"${CLIRLAB_LOG:-info}\"".into(),
        "echo \"clirlab: cell $CELL, task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)\"".into(),
        format!(
            "exec {} run-cell \"$RESULTS\" \"$CELL\"",
            sh(utf8(spec.exe, "executable")?)?
        ),
    ]);
    let mut script = lines.join("\n");
    script.push('\n');
    Ok(script)
}

/// A submitted job; with `--wait`, sbatch is still running until [`Submitted::wait`].
pub struct Submitted {
    /// The scheduler's job id.
    pub job_id: String,
    waiting: Option<(Child, std::thread::JoinHandle<String>)>,
}

/// Submits a prepared job array and records `job.json`. Returns as soon as the job id is known,
/// also with `wait` (then [`Submitted::wait`] blocks until the job ends).
pub fn submit(prepared: &Prepared, wait: bool) -> Result<Submitted> {
    match prepared.backend {
        Backend::Slurm => sbatch(prepared, wait),
    }
}

/// `sbatch --parsable [--wait] job.sbatch`.
fn sbatch(prepared: &Prepared, wait: bool) -> Result<Submitted> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if wait {
        cmd.arg("--wait");
    }
    cmd.arg(prepared.script_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "sbatch not found on PATH: Slurm's client commands are not installed here (submit from a cluster \
             login node, or use --dry-run to only write {})",
            prepared.script_path().display()
        ),
        Err(e) => return Err(e).context("starting sbatch"),
    };
    // Read stderr aside, so that a chatty sbatch --wait cannot fill the pipe and stall.
    let mut stderr = child.stderr.take().context("sbatch's stderr")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("sbatch's stdout")?).read_line(&mut line)?;
    // --parsable prints "<job id>" or "<job id>;<cluster>".
    let job_id = line.trim().split(';').next().unwrap_or_default().to_string();
    if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
        let status = child.wait()?;
        let stderr = errors.join().unwrap_or_default();
        bail!(
            "sbatch {} failed ({status}): {}{}",
            prepared.script_path().display(),
            stderr.trim(),
            line.trim()
        );
    }
    let record = JobRecord {
        backend: prepared.backend,
        job_id: job_id.clone(),
        cells: prepared.cells.clone(),
        script: prepared.script_path(),
        host: host_name(),
        submitted_unix: now_unix(),
    };
    write_json_atomic(&SubmissionFile::Job.at(&prepared.folder), &record)?;
    let waiting = if wait {
        Some((child, errors))
    } else {
        let status = child.wait()?;
        let stderr = errors.join().unwrap_or_default();
        ensure!(status.success(), "sbatch ended with {status}: {}", stderr.trim());
        None
    };
    Ok(Submitted { job_id, waiting })
}

impl Submitted {
    /// Waits for `sbatch --wait` to return, i.e. for every task of the array to end. Its exit
    /// status is not an error here: the cells' own files tell what happened.
    pub fn wait(self) -> Result<()> {
        if let Some((mut child, errors)) = self.waiting {
            let status = child.wait().context("waiting for sbatch --wait")?;
            let stderr = errors.join().unwrap_or_default();
            if !status.success() && !stderr.trim().is_empty() {
                tracing::warn!(job = %self.job_id, %status, stderr = %stderr.trim(), "sbatch --wait");
            }
        }
        Ok(())
    }
}

/// After the array ended: a cell of the submission that is neither finished, failed nor held
/// by a live process had its task killed (time limit, memory, node failure) before it could
/// say so; that is recorded as its failure. Then refreshes `sweep.json` and returns the
/// submission's failed cells with their reasons (the caller writes the report).
pub fn settle(prepared: &Prepared, job_id: &str) -> Result<Vec<(String, String)>> {
    for (task, id) in prepared.cells.iter().enumerate() {
        if cell_state(&prepared.dir, id).0 == CellStatus::Pending {
            let log = paths::task_log(&prepared.folder, job_id, task);
            record_failure(
                &prepared.dir,
                id,
                &format!(
                    "Slurm task {job_id}_{task} ended before finishing (log: {})",
                    log.display()
                ),
            )?;
        }
    }
    let record = refresh(&prepared.dir)?;
    Ok(failed_cells(&record, Some(&prepared.cells)))
}

/// The most recent submission of a results folder that reached the scheduler, with its folder.
pub fn latest_job(dir: &Path) -> Option<(PathBuf, JobRecord)> {
    let root = paths::submissions_dir(dir, Backend::Slurm.name());
    let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(|e| {
            let path = e.ok()?.path();
            Some((path.file_name()?.to_str()?.parse().ok()?, path))
        })
        .collect();
    numbered.sort();
    numbered.into_iter().rev().find_map(|(_, folder)| {
        let text = std::fs::read_to_string(SubmissionFile::Job.at(&folder)).ok()?;
        Some((folder, serde_json::from_str(&text).ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_script(cells: usize, options: &SlurmOptions, folder: &str) -> Result<String> {
        sbatch_script(&ScriptSpec {
            job_name: "clirlab-quickstart",
            cells,
            exe: Path::new("/opt/clir lab/bin/clirlab"),
            results_dir: Path::new("/shared/it's here/quickstart"),
            folder: Path::new(folder),
            data_dir: Path::new("/shared/data"),
            options,
        })
    }

    fn options() -> SlurmOptions {
        SlurmOptions {
            cpus_per_cell: 4,
            ..SlurmOptions::default()
        }
    }

    #[test]
    fn the_array_has_one_task_a_cell_and_an_optional_limit() {
        let s = spec_script(6, &options(), "/r/quickstart/slurm/1").unwrap();
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("\n#SBATCH --array=0-5\n"), "{s}");
        assert!(s.contains("\n#SBATCH --cpus-per-task=4\n"));
        assert!(s.contains("\n#SBATCH --output=/r/quickstart/slurm/1/%A_%a.out\n"));
        assert!(!s.contains("--gres"), "no GPUs asked for: {s}");
        assert!(!s.contains("--partition") && !s.contains("--time") && !s.contains("--account"));
        let limited = SlurmOptions {
            max_parallel: Some(2),
            ..options()
        };
        let s = spec_script(1, &limited, "/r/q/slurm/2").unwrap();
        assert!(s.contains("\n#SBATCH --array=0-0%2\n"), "{s}");
        assert!(spec_script(0, &options(), "/r").is_err());
    }

    #[test]
    fn resources_become_directives() {
        let o = SlurmOptions {
            partition: Some("gpu".into()),
            account: Some("proj-42".into()),
            gpus_per_cell: 2,
            mem: Some("16G".into()),
            time: Some("1-02:00:00".into()),
            extra: vec!["--qos=high".into(), "--comment=two words".into()],
            ..options()
        };
        validate(&o).unwrap();
        let s = spec_script(3, &o, "/r/q/slurm/1").unwrap();
        for line in [
            "#SBATCH --gres=gpu:2",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=proj-42",
            "#SBATCH --mem=16G",
            "#SBATCH --time=1-02:00:00",
            "#SBATCH --qos=high",
            "#SBATCH \"--comment=two words\"",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
    }

    #[test]
    fn paths_are_quoted_for_bash_and_for_sbatch() {
        let s = spec_script(2, &options(), "/shared/it's here/quickstart/slurm/1 50%").unwrap();
        // Every #SBATCH line comes before the first command, or sbatch ignores it.
        let first_command = s.lines().position(|l| l == "set -eu").unwrap();
        assert!(s.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
        assert!(
            s.contains("#SBATCH --output=\"/shared/it's here/quickstart/slurm/1 50%%/%A_%a.out\"\n"),
            "{s}"
        );
        assert!(s.contains("\nRESULTS=\"/shared/it's here/quickstart\"\n"), "{s}");
        assert!(
            s.contains("\nexec '/opt/clir lab/bin/clirlab' run-cell \"$RESULTS\" \"$CELL\"\n"),
            "{s}"
        );
        assert!(s.contains("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\""));
        // bash itself reads the quoted words back as the original paths.
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{}; printf '%s\\n' {} {}",
                "set -eu",
                sh("/opt/clir lab/bin/clirlab").unwrap(),
                sh("/shared/it's here/$HOME `x`").unwrap()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "/opt/clir lab/bin/clirlab\n/shared/it's here/$HOME `x`\n"
        );
        assert!(spec_script(2, &options(), "/a\\b").is_err());
        assert_eq!(directive("a\"b\\c d"), "\"a\\\"b\\\\c d\"");
    }

    #[test]
    fn bad_flags_are_refused_by_name() {
        type Change = fn(&mut SlurmOptions);
        let cases: [(&str, Change); 8] = [
            ("--cpus-per-cell", |o| o.cpus_per_cell = 0),
            ("--max-parallel", |o| o.max_parallel = Some(0)),
            ("--partition", |o| o.partition = Some("a b".into())),
            ("--mem", |o| o.mem = Some("lots".into())),
            ("--mem", |o| o.mem = Some("16GB".into())),
            ("--time", |o| o.time = Some("soon".into())),
            ("--extra-sbatch", |o| o.extra = vec!["qos=high".into()]),
            ("--extra-sbatch", |o| o.extra = vec!["--x\n echo".into()]),
        ];
        for (flag, change) in cases {
            let mut o = options();
            change(&mut o);
            let e = validate(&o).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{e}");
        }
        for time in ["30", "1:00:00", "2-0", "UNLIMITED"] {
            validate(&SlurmOptions {
                time: Some(time.into()),
                ..options()
            })
            .unwrap();
        }
        for mem in ["4000", "16G", "512m"] {
            validate(&SlurmOptions {
                mem: Some(mem.into()),
                ..options()
            })
            .unwrap();
        }
    }

    #[test]
    fn pending_cells_are_submitted_and_failed_ones_on_a_retry() {
        let loaded = crate::spec::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/quickstart.yaml"),
            &[],
        )
        .unwrap();
        let results = tempfile::tempdir().unwrap();
        let mut opts = SubmitOptions {
            backend: Backend::Slurm,
            retry_failed: false,
            progress: false,
            wait: false,
            slurm: options(),
        };
        let first = prepare(&loaded, results.path(), &opts).unwrap().unwrap();
        assert_eq!(first.cells.len(), 6);
        assert!(first.folder.ends_with("quickstart/slurm/1"));
        assert!(first.script.contains("\n#SBATCH --array=0-5\n"));
        let listed = std::fs::read_to_string(first.folder.join("cells.txt")).unwrap();
        assert_eq!(listed, format!("{}\n", first.cells.join("\n")));
        assert_eq!(std::fs::read_to_string(first.script_path()).unwrap(), first.script);
        // One cell failed, one is held by a live process (pid 1): neither is submitted...
        let (failed, running) = (&first.cells[0], &first.cells[1]);
        record_failure(&first.dir, failed, "boom").unwrap();
        std::fs::write(first.dir.join("cells").join(format!("{running}.lock")), "1").unwrap();
        let second = prepare(&loaded, results.path(), &opts).unwrap().unwrap();
        assert_eq!(second.cells, first.cells[2..].to_vec());
        assert!(second.folder.ends_with("slurm/2"));
        assert!(second.script.contains("\n#SBATCH --array=0-3\n"));
        // ...until --retry-failed, which takes the failed one back.
        opts.retry_failed = true;
        let third = prepare(&loaded, results.path(), &opts).unwrap().unwrap();
        assert_eq!(third.cells.len(), 5);
        assert!(third.cells.contains(failed) && !third.cells.contains(running));
        // Nothing to run: no submission folder.
        for id in &first.cells {
            std::fs::write(first.dir.join("cells").join(format!("{id}.lock")), "1").unwrap();
        }
        assert!(prepare(&loaded, results.path(), &opts).unwrap().is_none());
        assert!(!first.dir.join("slurm/4").exists());
    }

    #[test]
    fn submission_folders_are_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("slurm");
        let a = new_submission_folder(&root).unwrap();
        let b = new_submission_folder(&root).unwrap();
        assert_eq!((a.clone(), b), (root.join("1"), root.join("2")));
        // Dry runs (no job.json) are not jobs.
        assert!(latest_job(dir.path()).is_none());
        let record = JobRecord {
            backend: Backend::Slurm,
            job_id: "17".into(),
            cells: vec![],
            script: a.join("job.sbatch"),
            host: "h".into(),
            submitted_unix: 0,
        };
        write_json_atomic(&a.join("job.json"), &record).unwrap();
        let text = std::fs::read_to_string(a.join("job.json")).unwrap();
        assert!(text.contains("\"backend\": \"slurm\""), "{text}");
        let (folder, job) = latest_job(dir.path()).unwrap();
        assert_eq!((folder, job.job_id.as_str()), (a, "17"));
    }
}
