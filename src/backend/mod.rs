//! Backends run the integer model. The trait is deliberately narrow: a backend hands out
//! per-chunk streams, and a stream turns the next input tokens into frequency tables. The CPU
//! backend is the reference; any other backend must produce the same tables bit for bit.

pub mod cpu;
pub mod cuda;
pub mod device;
#[cfg(test)]
mod emu;
pub mod gpu;
pub mod kernels;

use crate::error::Result;
use crate::model::Model;

pub trait Backend: Send + Sync {
    /// What runs the model, for `-v`.
    fn name(&self) -> String;
    fn model(&self) -> &Model;
    /// A fresh stream at the start of a chunk.
    fn stream(&self) -> Box<dyn Stream + '_>;
}

/// The model's state over one chunk. Position 0 reads the BOS token.
pub trait Stream: Send {
    /// The most inputs one `feed` call takes.
    fn max_block(&self) -> usize;
    /// Feed the next `inputs` (at most `max_block`) and write one frequency table of `vocab`
    /// entries per input into `tables`: the prediction of the token that follows that input.
    fn feed(&mut self, inputs: &[u32], tables: &mut [u32]) -> Result<()>;
}
