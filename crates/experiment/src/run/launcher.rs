//! Launchers: where the cells of a plan run. [`local`]: in this process or a pool of worker
//! processes (`clirlab run-cell`); [`slurm`]: a Slurm job array whose tasks run the same
//! command on cluster nodes.

pub mod local;
pub mod slurm;
