//! Progress bars of a local run: one for the sweep, one for the steps of the cell running.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of a sweep of `cells` cells (hidden when `quiet`), and its overall bar.
pub fn sweep_bars(quiet: bool, cells: usize) -> (MultiProgress, ProgressBar) {
    let bars = MultiProgress::with_draw_target(if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = bars.add(ProgressBar::new(cells as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} cells {msg}").expect("valid template"),
    );
    overall.set_prefix("sweep");
    (bars, overall)
}

/// A bar for the `steps` training steps of one cell, under `bars`.
pub fn step_bar(bars: &MultiProgress, steps: usize) -> ProgressBar {
    let bar = bars.add(ProgressBar::new(steps as u64));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} steps {msg}").expect("valid template"),
    );
    bar.set_prefix("train");
    bar
}
