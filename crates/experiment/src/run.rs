//! Running an experiment: the results layout ([`paths`]: every path and file name), the
//! records of a results folder ([`records`]), provenance ([`provenance`]), planning
//! ([`plan`]), cell states and the locks' liveness policy ([`state`]), what Slurm's queue says of a job ([`queue`]), the one-cell pipeline
//! ([`cell`]), the reference rows computed apart from the grid ([`reference`]), progress bars ([`progress`]) and the launchers ([`launcher`]: `local` worker
//! pool, `slurm` job arrays). Finished cells are skipped (resume). This layer never writes
//! the report: its callers do, after the run.

pub mod cell;
pub mod launcher;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod provenance;
pub mod queue;
pub mod records;
pub mod reference;
pub mod state;

pub use cell::{run_cell, run_planned_cell};
pub use launcher::local::{RunOptions, SweepOutcome, run};
pub use paths::{ARTIFACTS, cell_dir, experiment_dir};
pub use plan::{load_unfinished_data, plan};
pub use provenance::provenance;
pub use records::{
    CellError, CellProvenance, CellResult, CellStatus, Check, PlannedCell, PlannedReference, Provenance,
    ReferenceResult, SweepRecord, damage, finished, finished_reference,
};
pub use state::{cell_state, checked_state, current, record_failure, refresh, wants_run};
