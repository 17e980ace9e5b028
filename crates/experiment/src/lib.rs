//! The experiment: an experiment file ([`spec`]) expanded into cells ([`grid`]), the curriculum
//! schedules ([`schedule`]) and the hybrid-batch sampler ([`sampler`]) that train each cell
//! ([`train`]), retrieval and scoring of held-out queries ([`retrieval`]), and the sweep that
//! runs, resumes and records cells on this machine or on Slurm ([`run`]).
//!
//! The modules are layered; each imports only the layers below it (a test keeps it so):
//!
//! | layer | modules |
//! | --- | --- |
//! | 4 | [`run`] |
//! | 3 | [`train`], [`retrieval`] |
//! | 2 | [`grid`], [`spec`] |
//! | 1 | [`sampler`] |
//! | 0 | [`schedule`] |

#![warn(missing_docs)]

pub mod grid;
pub mod retrieval;
pub mod run;
pub mod sampler;
pub mod schedule;
pub mod spec;
pub mod train;
