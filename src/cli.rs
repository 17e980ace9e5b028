//! The `clirlab` command line: parse ([`args`]), call the library ([`commands`]), print. The
//! only module that prints, and the only one that writes the report after a run.

/// Writes a line to stdout; a closed pipe (`clirlab plan ... | head`) ends the program quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        out_raw!("{}\n", format_args!($($arg)*))
    };
}

/// Like [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!($crate::cli::PipeEnd(std::io::stdout()), $($arg)*)?;
    }};
}

/// Standard output: a closed pipe (`clirlab plan … | head`, `clirlab encode … | head`) ends
/// the program quietly, for [`out!`] and for the bulk writes the library makes.
struct PipeEnd<W>(W);

/// `result`, unless it is a closed pipe: then the program ends (exit status 0).
fn unless_pipe_closed<T>(result: std::io::Result<T>) -> std::io::Result<T> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

impl<W: std::io::Write> std::io::Write for PipeEnd<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        unless_pipe_closed(self.0.write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        unless_pipe_closed(self.0.flush())
    }
}

// Doc comments on clap fields are the `--help` text, so the arguments stay as they are.
#[allow(missing_docs)]
pub mod args;
mod choice;
mod commands;

use anyhow::Result;
pub use args::{Cli, Command, DataCommand};
use clap::Parser;

/// The log filter of `CLIRLAB_LOG` (`warn` when unset); a filter that does not parse is an
/// error naming the variable, not ignored.
fn log_filter(value: Option<&str>) -> Result<tracing_subscriber::EnvFilter> {
    let Some(value) = value else {
        return Ok(tracing_subscriber::EnvFilter::new("warn"));
    };
    tracing_subscriber::EnvFilter::builder()
        .parse(value)
        .map_err(|e| {
            anyhow::anyhow!(
                "environment variable CLIRLAB_LOG: expected a log filter (`info`, `clirlab=debug,warn`), found {value:?}: {e}"
            )
        })
}

fn init_logging(quiet: bool) -> Result<()> {
    let variable = std::env::var("CLIRLAB_LOG").ok();
    let filter = log_filter(variable.as_deref())?;
    let filter = if quiet {
        tracing_subscriber::EnvFilter::new("off")
    } else {
        filter
    };
    // No colour codes in log files (worker and Slurm task logs).
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// Parses the command line and runs the command.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.quiet)?;
    commands::dispatch(cli.command, cli.quiet)
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_log_filter_that_does_not_parse_is_an_error() {
        assert!(super::log_filter(None).is_ok());
        assert!(super::log_filter(Some("clirlab=debug,warn")).is_ok());
        let err = super::log_filter(Some("info,[[[")).unwrap_err().to_string();
        assert!(err.contains("CLIRLAB_LOG") && err.contains("info,[[["), "{err}");
    }
}
