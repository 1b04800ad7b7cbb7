//! Streaming compression and decompression for programs that use nnz as a library:
//! [`Encoder`] is a [`Write`] that compresses what is written to it into another writer, and
//! [`Decoder`] a [`Read`] that decompresses what it reads from another reader, so both work with
//! [`std::io::copy`]. [`CompressOptions`] and [`DecompressOptions`] build them.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let text = b"It was the best of times, it was the worst of times. ".repeat(20);
//! let mut enc = nnz::CompressOptions::new().encoder(Vec::new())?;
//! enc.write_all(&text)?;
//! let archive = enc.finish()?;
//! assert!(archive.len() < text.len());
//!
//! let mut back = Vec::new();
//! nnz::DecompressOptions::new().decoder(&archive[..])?.read_to_end(&mut back)?;
//! assert_eq!(back, text);
//! # Ok::<(), nnz::Error>(())
//! ```

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::codec::level::{DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL};
use crate::codec::{Cancel, Options, Packer, Stats, Unpacker, DEFAULT_CHUNK};
use crate::error::{Error, Result};
use crate::format::MAX_CHUNK;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The backend a stream runs its model on: the built-in model on the CPU unless one is given.
fn backend_or_default(b: Option<Arc<dyn Backend>>) -> Result<Arc<dyn Backend>> {
    match b {
        Some(b) => Ok(b),
        None => Ok(Arc::new(CpuBackend::built_in()?)),
    }
}

/// How to compress: chunk size, mode, memory, cancellation, and where the model runs.
#[derive(Clone, Default)]
pub struct CompressOptions {
    chunk_size: Option<u32>,
    level: Option<u8>,
    direct: bool,
    memory_limit: Option<u64>,
    cancel: Cancel,
    backend: Option<Arc<dyn Backend>>,
}

impl CompressOptions {
    /// The defaults: level 8, 1 MiB chunks, no memory limit, the built-in model on the CPU.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes per chunk (1 to 64 MiB; each chunk is coded independently, in parallel).
    pub fn chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = Some(bytes);
        self
    }

    /// Compression level, 1 (fastest: LZMA) to 9 (best ratio); 8 by default. Decompression needs
    /// no level: every archive decodes the same way.
    pub fn level(mut self, level: u8) -> Self {
        self.level = Some(level);
        self
    }

    /// Code tokens straight from the transformer, without the context mixers (`--direct`).
    pub fn direct(mut self, on: bool) -> Self {
        self.direct = on;
        self
    }

    /// Bound the memory of the chunks being coded; it limits how many are coded at once, never
    /// how (archives do not depend on it).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Stop with [`Error::Interrupted`] once `cancel` is cancelled.
    pub fn cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Run the model on this backend (its model is the one the archive names).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// An encoder that writes one compressed stream to `out`.
    pub fn encoder<W: Write>(self, out: W) -> Result<Encoder<W>> {
        let chunk_size = self.chunk_size.unwrap_or(DEFAULT_CHUNK);
        if chunk_size == 0 || chunk_size > MAX_CHUNK {
            return Err(Error::Usage(format!("chunk size {chunk_size} outside 1..={MAX_CHUNK}")));
        }
        let level = self.level.unwrap_or(DEFAULT_LEVEL);
        if !(MIN_LEVEL..=MAX_LEVEL).contains(&level) {
            return Err(Error::Usage(format!(
                "compression level {level} outside {MIN_LEVEL}..={MAX_LEVEL}"
            )));
        }
        let backend = backend_or_default(self.backend)?;
        let opts = Options {
            chunk_size,
            level,
            direct: self.direct,
            memory_limit: self.memory_limit,
            cancel: self.cancel,
            ..Default::default()
        };
        let mut out = out;
        let packer = Packer::start(backend.as_ref(), &opts, &mut out)?;
        Ok(Encoder {
            out: Some(out),
            backend,
            opts,
            packer: Some(packer),
            pending: Vec::new(),
        })
    }
}

/// Compresses what is written to it into the writer `W`. Call [`Encoder::finish`] at the end: it
/// codes the last chunk and writes the end frame; a stream dropped before is incomplete (and a
/// decoder says so).
pub struct Encoder<W: Write> {
    out: Option<W>,
    backend: Arc<dyn Backend>,
    opts: Options,
    packer: Option<Packer>,
    /// input not coded yet: less than a batch of chunks
    pending: Vec<u8>,
}

impl<W: Write> Encoder<W> {
    /// A default encoder (see [`CompressOptions::new`]) writing to `out`.
    pub fn new(out: W) -> Result<Encoder<W>> {
        CompressOptions::new().encoder(out)
    }

    /// Code the full chunks of `pending` (all of it with `last`).
    fn code_pending(&mut self, last: bool) -> Result<()> {
        let chunk = self.opts.chunk_size as usize;
        let packer = self
            .packer
            .as_mut()
            .ok_or_else(|| Error::Usage("the encoder has finished".into()))?;
        let batch = packer.batch_len() * chunk;
        let out = self.out.as_mut().expect("the writer is there until finish");
        while self.pending.len() >= batch || (last && !self.pending.is_empty()) {
            let take = self.pending.len().min(batch);
            let chunks: Vec<Vec<u8>> = self.pending[..take].chunks(chunk).map(<[u8]>::to_vec).collect();
            packer.code(self.backend.as_ref(), &self.opts, &chunks, out)?;
            self.pending.drain(..take);
        }
        Ok(())
    }

    /// Code what is left, write the end frame, and give back the writer.
    pub fn finish(self) -> Result<W> {
        self.finish_with_stats().map(|(w, _)| w)
    }

    /// As `finish`, with the stream's statistics.
    pub fn finish_with_stats(mut self) -> Result<(W, Stats)> {
        self.code_pending(true)?;
        let mut out = self.out.take().expect("the writer is there until finish");
        let stats = self.packer.take().expect("not finished before").finish(&mut out)?;
        Ok((out, stats))
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.code_pending(false)?;
        Ok(buf.len())
    }

    /// Flushes the inner writer. Frames hold whole chunks, so input of a chunk not yet full stays
    /// buffered until more comes or `finish`.
    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

/// How to decompress: memory, cancellation, and where the model runs.
#[derive(Clone, Default)]
pub struct DecompressOptions {
    memory_limit: Option<u64>,
    cancel: Cancel,
    backend: Option<Arc<dyn Backend>>,
}

impl DecompressOptions {
    /// The defaults: no memory limit, the built-in model on the CPU.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse archives whose chunks need more memory than this, and code fewer at once.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Stop with [`Error::Interrupted`] once `cancel` is cancelled.
    pub fn cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Run the model on this backend (it must hold the model the archive names).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// A decoder reading compressed streams (one or more, concatenated) from `input`.
    pub fn decoder<R: Read>(self, input: R) -> Result<Decoder<R>> {
        Ok(Decoder {
            input,
            backend: backend_or_default(self.backend)?,
            opts: Options {
                memory_limit: self.memory_limit,
                cancel: self.cancel,
                ..Default::default()
            },
            unpacker: Unpacker::default(),
            ready: Vec::new(),
            at: 0,
            ended: false,
        })
    }
}

/// Decompresses what it reads from `R`. A damaged archive is an [`io::ErrorKind::InvalidData`]
/// error whose inner error is the [`Error`]; nothing is returned of a frame before it passed its
/// checks, so what was read before an error is a prefix of the original.
pub struct Decoder<R: Read> {
    input: R,
    backend: Arc<dyn Backend>,
    opts: Options,
    unpacker: Unpacker,
    ready: Vec<u8>,
    at: usize,
    ended: bool,
}

impl<R: Read> Decoder<R> {
    /// A default decoder (see [`DecompressOptions::new`]) reading from `input`.
    pub fn new(input: R) -> Result<Decoder<R>> {
        DecompressOptions::new().decoder(input)
    }

    /// Statistics of what was decoded so far.
    pub fn stats(&self) -> &Stats {
        &self.unpacker.stats
    }

    /// The reader, with whatever it still holds.
    pub fn into_inner(self) -> R {
        self.input
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.ready.len() && !self.ended {
            match self
                .unpacker
                .next_batch(self.backend.as_ref(), &self.opts, &mut self.input)?
            {
                Some(batch) => {
                    self.ready = batch.concat();
                    self.at = 0;
                }
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.ready.len() - self.at);
        buf[..n].copy_from_slice(&self.ready[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
