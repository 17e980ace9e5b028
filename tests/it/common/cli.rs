//! Running the `clirlab` binary from integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary, in the project root, with `args`, not yet run.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clirlab"));
    cmd.args(args).current_dir(root()).env_remove("CLIRLAB_LOG");
    cmd
}

pub fn clirlab(args: &[&str]) -> Output {
    command(args).output().expect("the binary runs")
}

/// stdout then stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `--set` flags that make the quickstart take seconds.
pub const SMALL: &[&str] = &[
    "--set",
    "train.steps=40",
    "--set",
    "train.batch_size=16",
    "--set",
    "data.synthetic.topics=8",
    "--set",
    "data.synthetic.docs_per_topic=12",
];

/// `run` of the quickstart, quiet, into `results`, with `extra` arguments after it.
pub fn run_quickstart(results: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "experiments/quickstart.yaml",
        "--quiet",
        "--results",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    clirlab(&args)
}
