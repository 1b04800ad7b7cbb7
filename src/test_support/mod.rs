//! Test support, compiled into the unit tests only (never into the library or the program).
//!
//! - [`emu`]: the CUDA kernels compiled for the CPU, so the GPU backend's whole path runs (and is
//!   compared with the CPU backend bit for bit) on machines without a GPU.

pub(crate) mod emu;
