//! Provenance of a run: version, git state, host, device, threads.

use super::records::Provenance;
use crate::grid::content_hash;
use crate::model::ResolvedDevice;
use crate::util::host::{host_name, now_unix};
use std::process::{Command, Stdio};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Training threads of this process: `RAYON_NUM_THREADS`, else the available cores.
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Provenance of this process: version, git state, host, device, threads.
pub fn provenance() -> Provenance {
    let commit = git(&["rev-parse", "HEAD"]);
    let diff = commit.as_ref().and_then(|_| git(&["diff", "HEAD"]));
    Provenance {
        clirlab_version: env!("CARGO_PKG_VERSION").into(),
        git_dirty: diff.as_ref().map(|d| !d.is_empty()),
        git_diff_hash: diff.filter(|d| !d.is_empty()).map(|d| content_hash(&d, 16)),
        git_commit: commit,
        host: host_name(),
        device: if cfg!(feature = "cuda") {
            format!(
                "cuda build (CUDA_VISIBLE_DEVICES={})",
                std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default()
            )
        } else {
            "cpu build".into()
        },
        threads: threads(),
        started_unix: now_unix(),
    }
}

/// The device a cell trained on, with the GPUs visible to its process.
pub fn device_label(device: ResolvedDevice) -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(visible) if device != ResolvedDevice::Cpu => format!("{device} (CUDA_VISIBLE_DEVICES={visible})"),
        _ => device.to_string(),
    }
}
