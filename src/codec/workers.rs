//! The threads that code chunks, and the memory budget they share.

use crate::backend::Backend;
use crate::cm::boundary::Boundary;
use crate::cm::{Alphabet, SymbolCm};
use crate::error::{Error, Result};
use crate::frames::{bwt, lzma, token_bits};
use crate::model::adapt::AdaptiveHead;
use crate::model::{Config, ModelInfo};
use rayon::prelude::*;

/// The threads that code chunks: the global pool, or a pool of its own when the backend wants more
/// chunks in flight (a GPU backend: its streams mostly wait for the device). Chunks whose coding
/// holds large context-mixing tables ("heavy": model and CM frames of the default mode) run at most
/// one per thread of the global pool, so host memory stays what it is on the CPU backend; direct
/// frames (`--direct`) use every worker. With a memory limit, every chunk also takes the bytes it
/// needs (`chunk_memory`) from a budget before it starts, and waits while they are not free.
pub(super) struct Workers {
    pool: Option<rayon::ThreadPool>,
    /// chunks read ahead at once
    batch: usize,
    /// heavy chunks that may still start, and bytes of the budget not taken (u64::MAX: no limit)
    free: std::sync::Mutex<(usize, u64)>,
    done: std::sync::Condvar,
    /// the bytes of the budget, what the limit keeps besides it, and the limit
    budget: u64,
    reserved: u64,
    limit: Option<u64>,
    compress: bool,
}

/// The most memory coding one chunk of `chunk` bytes can take (`mixing`: with context mixing), with
/// the chunk and its frame: the largest of the steps that run one after the other (LZMA, the byte
/// mixer, tokenizing when compressing, the token mixer with the model).
pub(super) fn chunk_memory(cfg: &Config, chunk: u64, mixing: bool, compress: bool) -> u64 {
    let dict = lzma::dict_size(chunk as usize) as u64;
    let lzma = if compress { 11 * dict } else { dict } + (2 << 20);
    let stream = (crate::backend::cpu::BLOCK * cfg.vocab * 4 + cfg.vocab * 8) as u64
        + 2 * (cfg.n_layers * cfg.window * cfg.n_kv_heads * cfg.head_dim) as u64
        + (1 << 20);
    // HF tokenizers keeps every token's string and offsets while encoding
    let tokenize = if compress { 40 * chunk } else { 0 };
    let tokens = 4 * chunk + stream;
    let mixers = if mixing {
        {
            // (a deep CM frame's predictor is the largest byte mixer)
            let bytes = SymbolCm::memory(8, Alphabet::DeepBytes, chunk);
            let with_tokens = SymbolCm::memory(token_bits(cfg.vocab), Alphabet::Tokens, chunk).max(
                SymbolCm::memory(8, Alphabet::BlendedBytes, chunk)
                    + Boundary::memory(cfg.vocab, chunk)
                    + AdaptiveHead::memory(cfg.vocab, cfg.d_model),
            );
            bytes.max(with_tokens + tokens)
        }
    } else {
        0
    };
    let sorted = bwt::memory(chunk as usize);
    2 * chunk + lzma.max(tokenize).max(tokens).max(mixers).max(sorted)
}

/// What a running chunk holds of the workers' budget; given back when dropped.
pub(super) struct Permit<'w> {
    w: &'w Workers,
    heavy: bool,
    bytes: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut f = self.w.free.lock().unwrap_or_else(|e| e.into_inner());
        f.0 += self.heavy as usize;
        f.1 += self.bytes;
        self.w.done.notify_all();
    }
}

/// Memory the process holds besides the chunks in flight: the model, the tokenizer, the program.
fn base_memory(model: &ModelInfo) -> u64 {
    model.weight_bytes() + (32 << 20)
}

impl Workers {
    /// Workers for chunks of at most `chunk` bytes under `memory_limit` (bytes; `None`: no limit);
    /// `need` is what coding a chunk of `chunk` bytes takes (`chunk_memory`).
    pub(super) fn new(
        backend: &dyn Backend,
        chunk: u32,
        need: u64,
        memory_limit: Option<u64>,
        compress: bool,
    ) -> Result<Workers> {
        let n = backend.parallel_chunks().max(1);
        let heavy = rayon::current_num_threads().max(1);
        let mut batch = n * 2;
        let mut budget = u64::MAX;
        let mut reserved = 0;
        if let Some(limit) = memory_limit {
            // read-ahead holds each chunk and its frame; the rest is for coding, at least one
            // full chunk's worth where the limit allows it
            let chunk = chunk as u64;
            reserved = base_memory(&backend.model_info());
            let room = limit.saturating_sub(reserved);
            batch = batch.min((room.saturating_sub(need) / (2 * chunk)).max(1) as usize);
            reserved += 2 * chunk * batch as u64;
            budget = limit.saturating_sub(reserved);
        }
        let pool = if n == rayon::current_num_threads() {
            None
        } else {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Usage(format!("cannot start {n} threads: {e}")))?,
            )
        };
        Ok(Workers {
            pool,
            batch,
            free: std::sync::Mutex::new((heavy, budget)),
            done: std::sync::Condvar::new(),
            budget,
            reserved,
            limit: memory_limit,
            compress,
        })
    }

    /// Wait until a chunk that needs `bytes` (and a heavy slot, if `heavy`) may start.
    pub(super) fn permit(&self, heavy: bool, bytes: u64) -> Result<Permit<'_>> {
        let Some(limit) = self.limit else {
            return self.take(heavy, 0);
        };
        if bytes > self.budget {
            return Err(Error::Usage(format!(
                "coding one chunk needs about {} MiB of memory, more than the limit of {} MiB; raise -M/--memory{}",
                (bytes + self.reserved).div_ceil(1 << 20),
                limit >> 20,
                if self.compress {
                    " (or use a smaller --chunk-kib)"
                } else {
                    ""
                }
            )));
        }
        self.take(heavy, bytes)
    }

    /// `bytes` more of the budget if they are free now, without waiting (and without a heavy
    /// slot): for a second trial of a chunk that already holds a permit.
    pub(super) fn try_permit(&self, bytes: u64) -> Option<Permit<'_>> {
        let bytes = if self.limit.is_some() { bytes } else { 0 };
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if f.1 < bytes {
            return None;
        }
        f.1 -= bytes;
        Some(Permit {
            w: self,
            heavy: false,
            bytes,
        })
    }

    fn take(&self, heavy: bool, bytes: u64) -> Result<Permit<'_>> {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while (heavy && f.0 == 0) || f.1 < bytes {
            f = self.done.wait(f).unwrap_or_else(|e| e.into_inner());
        }
        f.0 -= heavy as usize;
        f.1 -= bytes;
        Ok(Permit { w: self, heavy, bytes })
    }

    /// Chunks read ahead: two per worker, so none waits for input (fewer under a memory limit).
    pub(super) fn batch_len(&self) -> usize {
        self.batch
    }

    pub(super) fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
        let run = || items.par_iter().map(&f).collect();
        match &self.pool {
            Some(p) => p.install(run),
            None => run(),
        }
    }
}
