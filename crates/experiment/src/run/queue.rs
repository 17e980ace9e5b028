//! What Slurm's queue says of a job (`squeue`): whether it is alive, for the liveness policy of
//! the locks ([`super::state`]), and its tasks by state, for `clirlab status`. Asks the
//! scheduler only; knows nothing of submissions (that is [`super::launcher::slurm`]).

use std::process::{Command, Stdio};

/// The states of job `job_id`'s entries in `squeue` (one per array task with `array`):
/// `Some(None)` when the controller no longer knows the job, `None` when Slurm cannot be asked
/// (no client here, controller unreachable).
fn squeue_states(job_id: &str, array: bool) -> Option<Option<Vec<String>>> {
    let mut cmd = Command::new("squeue");
    cmd.args(["--noheader", "--format=%T", "--jobs", job_id]);
    if array {
        cmd.arg("--array");
    }
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        return Some(Some(text.split_whitespace().map(str::to_string).collect()));
    }
    String::from_utf8_lossy(&out.stderr)
        .contains("Invalid job id")
        .then_some(None)
}

/// Whether Slurm job `job_id` is still queued or running; `None` when Slurm cannot be asked.
pub fn slurm_job_alive(job_id: &str) -> Option<bool> {
    // Ended jobs stay listed for a while as COMPLETED, FAILED, TIMEOUT, ...
    const LIVE: [&str; 8] = [
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "RESIZING",
        "SIGNALING",
    ];
    let states = squeue_states(job_id, false)?;
    Some(states.is_some_and(|states| states.iter().any(|s| LIVE.contains(&s.as_str()))))
}

/// What the queue says of job `job_id`: its tasks by state (`4 PENDING, 2 RUNNING`), or `not in
/// the queue` once it has ended; `None` when Slurm cannot be asked.
pub fn queue_summary(job_id: &str) -> Option<String> {
    let states = squeue_states(job_id, true)?.unwrap_or_default();
    if states.is_empty() {
        return Some("not in the queue".into());
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for state in &states {
        *counts.entry(state).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    Some(parts.join(", "))
}
