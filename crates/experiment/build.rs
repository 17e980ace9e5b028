//! Build-time facts a result's provenance reports: the git commit the workspace is built from,
//! whether its code differed from it, and the SHA-256 of that difference (`BUILT_FROM_COMMIT`,
//! `BUILT_FROM_DIRTY`, `BUILT_FROM_DIFF_SHA256`; empty outside a git checkout), so that a
//! result names the code that computed it, not whatever repository the program is run from.
//! (Not `CLIRLAB_*`: cargo also sets them when it runs the tests, and the program reads every
//! `CLIRLAB_*` variable as configuration.)

use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};

/// The workspace's code, from this crate's folder (every crate's sources, the binary's, the
/// manifests and build scripts).
const CODE: [&str; 5] = [
    "../../src",
    "../../crates",
    "../../Cargo.toml",
    "../../Cargo.lock",
    "../../build.rs",
];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    // What the binary is made of, and the git state that names it: rerun when either changes.
    // Only paths that exist (cargo reruns for ever on a missing one), found through git (a
    // worktree's `.git` is a file).
    for path in CODE {
        println!("cargo::rerun-if-changed={path}");
    }
    let branch = git(&["symbolic-ref", "-q", "HEAD"]).map(|b| b.trim().to_string());
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name]).map(|p| p.trim().to_string())
            && std::path::Path::new(&path).exists()
        {
            println!("cargo::rerun-if-changed={path}");
        }
    }
    let commit = git(&["rev-parse", "HEAD"]).map(|c| c.trim().to_string());
    let diff = commit
        .as_ref()
        .and_then(|_| git(&[&["diff", "HEAD", "--"][..], &CODE[..]].concat()));
    let (dirty, digest) = match &diff {
        Some(d) if !d.is_empty() => ("true".to_string(), format!("{:x}", Sha256::digest(d.as_bytes()))),
        Some(_) => ("false".to_string(), String::new()),
        None => (String::new(), String::new()),
    };
    println!("cargo::rustc-env=BUILT_FROM_COMMIT={}", commit.unwrap_or_default());
    println!("cargo::rustc-env=BUILT_FROM_DIRTY={dirty}");
    println!("cargo::rustc-env=BUILT_FROM_DIFF_SHA256={digest}");
}
