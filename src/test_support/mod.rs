//! Test support, compiled into the unit tests only (never into the library or the program).
//!
//! - [`emu`]: the CUDA kernels compiled for the CPU, so the GPU backend's whole path runs (and is
//!   compared with the CPU backend bit for bit) on machines without a GPU.

pub(crate) mod emu;

/// A 64-bit xorshift generator (13, 7, 17) from `seed` (not 0): reproducible test inputs.
pub(crate) fn xorshift64(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
