//! Gradient checks and parity tests of the kernels.
