//! `clirlab submit --backend slurm` without a cluster: the dry run, the error without Slurm,
//! and the whole round trip through a stand-in `sbatch` that runs the array's tasks itself, one
//! after the other, as Slurm would (scripts/ci-slurm.sh does it with the real Slurm).

use crate::common::cli;

use cli::{SMALL, command, text};
use std::path::Path;

/// A stand-in for sbatch: prints a job id; with --wait, runs each task of the array (skipping
/// the task in $SKIP_TASK, as if Slurm had killed it) with the variables Slurm sets.
const FAKE_SBATCH: &str = r#"#!/bin/bash
script="${@: -1}"
printf '%s\n' "$@" >"$(dirname "$script")/sbatch-args"
echo "4242;testcluster"
case " $* " in *" --wait "*) ;; *) exit 0 ;; esac
n=$(wc -l <"$(dirname "$script")/cells.txt")
for ((i = 0; i < n; i++)); do
  [ "$i" = "${SKIP_TASK:-}" ] && continue
  SLURM_ARRAY_JOB_ID=4242 SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=1 \
    bash "$script" >"$(dirname "$script")/4242_$i.out" 2>&1 || true
done
"#;

fn submit(results: &str, path: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "submit",
        "experiments/quickstart.yaml",
        "--backend",
        "slurm",
        "--results",
        results,
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    let mut cmd = command(&args);
    cmd.env("PATH", path);
    cmd
}

fn status_of(dir: &Path) -> String {
    text(&command(&["status", dir.to_str().unwrap()]).output().unwrap())
}

/// A folder with the stand-in sbatch, and a PATH that finds it first.
fn fake_slurm(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn dry_run_writes_the_array_and_a_missing_sbatch_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("shared results");
    let results = results.to_str().unwrap();
    let out = submit(results, "/nonexistent", &["--dry-run", "--max-parallel", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.starts_with("#!/bin/bash\n"), "{printed}");
    assert!(printed.contains("#SBATCH --array=0-5%2\n"), "{printed}");
    let folder = Path::new(results).join("quickstart/slurm/1");
    assert_eq!(
        std::fs::read_to_string(folder.join("cells.txt"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    assert!(printed.starts_with(&std::fs::read_to_string(folder.join("job.sbatch")).unwrap()));
    assert!(!folder.join("job.json").exists(), "a dry run submits nothing");

    let out = submit(results, "/nonexistent", &[]).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("sbatch not found") && err.contains("--dry-run"), "{err}");

    let out = submit(results, "/nonexistent", &["--time", "soon"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("--time:"), "{}", text(&out));
}

#[test]
fn a_submitted_array_fills_the_results_and_a_killed_task_is_resubmitted() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fake_slurm(tmp.path());
    let results = tmp.path().join("results");
    let results = results.to_str().unwrap();
    let dir = Path::new(results).join("quickstart");

    // Task 1 never runs, as if killed: its cell is recorded as failed and submit says so.
    let out = submit(results, &path, &["--wait"])
        .env("SKIP_TASK", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("submitted Slurm job 4242 (6 cells)"), "{said}");
    assert!(said.contains("Slurm task 4242_1 ended before finishing"), "{said}");
    let args = std::fs::read_to_string(dir.join("slurm/1/sbatch-args")).unwrap();
    assert!(args.starts_with("--parsable\n--wait\n"), "{args}");
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("slurm/1/job.json")).unwrap()).unwrap();
    assert_eq!(job["job_id"], "4242");
    assert!(dir.join("report/report.md").is_file());
    let status = status_of(&dir);
    assert!(status.contains("5 done, 0 running, 1 failed, 0 pending"), "{status}");
    assert!(status.contains("Slurm job 4242 (6 cells"), "{status}");

    // The failed cell waits for --retry-failed; then only it is submitted.
    let out = submit(results, &path, &["--wait"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no cell to submit"), "{}", text(&out));
    let out = submit(results, &path, &["--wait", "--retry-failed"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("slurm/2/cells.txt"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let status = status_of(&dir);
    assert!(status.contains("6 done, 0 running, 0 failed, 0 pending"), "{status}");
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(!report.contains("without results"), "{report}");
}
