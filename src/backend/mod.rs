//! Backends run the integer model. The trait is deliberately narrow: a backend hands out
//! per-chunk streams, and a stream turns the next input tokens into frequency tables. The CPU
//! backend is the reference; any other backend must produce the same tables bit for bit.

pub mod cpu;
pub mod cuda;
#[doc(hidden)]
pub mod device;
#[doc(hidden)]
pub mod gpu;
#[doc(hidden)]
pub mod kernels;
pub(crate) mod simd;

use crate::error::Result;
use crate::model::{Model, ModelInfo};
use crate::table::{interval_of, search, Interval};

/// What runs the model: hands out one [`Stream`] per chunk. Every implementation gives the same
/// tables as the CPU reference, bit for bit.
pub trait Backend: Send + Sync {
    /// What runs the model, for `-v`.
    fn name(&self) -> String;
    /// The model it runs (an archive names it by its id).
    fn model(&self) -> &Model;
    /// The model's id, shape and size (what an archive header and the memory planner need); a
    /// backend that loads its model on first use answers this without loading it.
    fn model_info(&self) -> ModelInfo {
        self.model().summary()
    }
    /// A fresh stream at the start of a chunk.
    fn stream(&self) -> Box<dyn Stream + '_>;
    /// How many chunks to code at once: the CPU backend keeps every thread busy; a GPU backend
    /// wants many more chunks in flight than there are cores, so its batches fill.
    fn parallel_chunks(&self) -> usize {
        rayon::current_num_threads()
    }
}

/// The model's state over one chunk. Position 0 reads the BOS token.
pub trait Stream: Send {
    /// The most inputs one `feed` call takes.
    fn max_block(&self) -> usize;
    /// Feed the next `inputs` (at most `max_block`) and write one frequency table of `vocab`
    /// entries per input into `tables`: the prediction of the token that follows that input.
    fn feed(&mut self, inputs: &[u32], tables: &mut [u32]) -> Result<()>;

    /// Like `feed`, but write per input the output layer's input instead of a table: the final
    /// norm's `d_model` values, whose products with the head's rows give the logits (blend frames
    /// of format 19 on make their tables from it, adapting the output layer: `model::adapt`).
    fn feed_head(&mut self, inputs: &[u32], head: &mut [i8]) -> Result<()>;

    /// Like `feed`, but give only the interval of `symbols[r]` in row r's table (encoding a direct
    /// frame needs no more; a GPU then returns 12 bytes per row instead of a table).
    fn feed_intervals(&mut self, inputs: &[u32], symbols: &[u32], out: &mut [Interval]) -> Result<()> {
        let v = self.vocab();
        let mut tables = vec![0u32; inputs.len() * v];
        self.feed(inputs, &mut tables)?;
        for ((t, &s), o) in tables.chunks_exact(v).zip(symbols).zip(out.iter_mut()) {
            *o = interval_of(t, s);
        }
        Ok(())
    }

    /// Feed one input and find the symbol whose interval in the new table holds `target`
    /// (decoding a direct frame); `None` if `target` is not below the table's total.
    fn feed_search(&mut self, input: u32, target: u32) -> Result<Option<Interval>> {
        let mut table = vec![0u32; self.vocab()];
        self.feed(&[input], &mut table)?;
        Ok(search(&table, target))
    }

    /// Entries per table.
    fn vocab(&self) -> usize;
}
