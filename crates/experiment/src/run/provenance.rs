//! Provenance of a run: version, the git state the binary was built from, host, device,
//! threads.

use super::records::Provenance;
use clirlab_model::ResolvedDevice;
use clirlab_util::host::{host_name, now_unix};

/// A build-time fact (see `build.rs`): none where it was empty (built outside a git checkout).
fn built(value: &'static str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// The git commit this build was made from; none outside a git checkout.
pub fn built_from_commit() -> Option<String> {
    built(env!("BUILT_FROM_COMMIT"))
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
    // The code that computes the results: the binary's own commit, never the git state of the
    // folder it is run from.
    Provenance {
        clirlab_version: env!("CARGO_PKG_VERSION").into(),
        git_dirty: built(env!("BUILT_FROM_DIRTY")).map(|d| d == "true"),
        git_diff_hash: built(env!("BUILT_FROM_DIFF_SHA256")).map(|d| d[..16].to_string()),
        git_commit: built_from_commit(),
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
