//! Compression and decompression of whole streams: cut the input into chunks, run the model over
//! many chunks at once (rayon), code each chunk as a frame, and write the frames in order.
//! Memory stays bounded: at most one batch of chunks is in flight.

use crate::backend::{Backend, Interval};
use crate::cm::{classes_of, cumulate, table_bit, BitPred, SymbolCm};
use crate::coder::{Decoder, Encoder, Rules};
use crate::error::{Error, Result};
use crate::format::{chunk_checksum, Frame, Header, VERSION};
use crate::mixer_v2::Mixer as MixerV2;
use rayon::prelude::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Default chunk size: 1 MiB. The match model and LZMA frames find repeats anywhere in a chunk, and
/// repeats across a whole file matter (logs, URL lists); parallelism comes from large inputs and
/// many files. See docs/FORMAT.md.
pub const DEFAULT_CHUNK: u32 = 1 << 20;

/// A cancellation token for one call: clones share it, and `cancel` makes the calls that hold it
/// stop soon with `Error::Interrupted` (long loops check it every few hundred symbols).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask every call holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub raw_bytes: u64,
    pub packed_bytes: u64,
    pub tokens: u64,
    pub frames: u64,
    pub stored_frames: u64,
    pub lzma_frames: u64,
    pub cm_frames: u64,
    pub direct_frames: u64,
}

impl Stats {
    /// Count one content or end frame (its size as written, its content, its kind).
    fn add_frame(&mut self, f: &Frame, version: u8) {
        self.packed_bytes += f.encoded_len(version);
        self.raw_bytes += f.raw_len();
        match f {
            Frame::Model { n_tokens, .. } => self.tokens += *n_tokens as u64,
            Frame::Direct { n_tokens, .. } => {
                self.tokens += *n_tokens as u64;
                self.direct_frames += 1;
            }
            Frame::Lzma { .. } => self.lzma_frames += 1,
            Frame::Cm { .. } => self.cm_frames += 1,
            Frame::Stored { .. } => self.stored_frames += 1,
            Frame::End { .. } => return,
        }
        self.frames += 1;
    }

    /// Bits per input byte (0 for empty input).
    pub fn bits_per_byte(&self) -> f64 {
        if self.raw_bytes == 0 {
            0.0
        } else {
            8.0 * self.packed_bytes as f64 / self.raw_bytes as f64
        }
    }
}

/// A source of chunks: a memory-mapped (or in-memory) slice, or a reader of unknown length.
pub enum Input<'a> {
    Slice(&'a [u8]),
    Reader(Box<dyn Read + 'a>),
}

impl Input<'_> {
    /// Up to `n` chunks of `size` bytes (the last may be shorter). Empty at the end.
    fn next_batch(&mut self, n: usize, size: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        match self {
            Input::Slice(s) => {
                while out.len() < n && !s.is_empty() {
                    let k = size.min(s.len());
                    out.push(s[..k].to_vec());
                    *s = &s[k..];
                }
            }
            Input::Reader(r) => {
                while out.len() < n {
                    let mut buf = vec![0u8; size];
                    let mut got = 0;
                    while got < size {
                        match r.read(&mut buf[got..]) {
                            Ok(0) => break,
                            Ok(k) => got += k,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if got == 0 {
                        break;
                    }
                    buf.truncate(got);
                    out.push(buf);
                    if got < size {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

pub struct Options {
    pub chunk_size: u32,
    /// Try only this way of coding chunks (and storing): an experiment knob, set from the
    /// environment variable NNZ_ONLY=model|cm|lzma by the CLI, to measure one method alone
    pub only: Option<Method>,
    /// `--direct`: direct model frames (no context mixing, LZMA at a low preset as the fallback),
    /// the mode a GPU can run at full speed
    pub direct: bool,
    /// The most memory (bytes) the chunks in flight may take; it bounds how many are coded at
    /// once, never how they are coded (archives do not depend on it). `None`: one per thread
    pub memory_limit: Option<u64>,
    /// called with the number of input bytes done after each batch
    pub progress: Option<Box<dyn Fn(u64) + Sync>>,
    /// stops the call with `Error::Interrupted` when cancelled
    pub cancel: Cancel,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_size: DEFAULT_CHUNK,
            direct: false,
            only: None,
            memory_limit: None,
            progress: None,
            cancel: Cancel::new(),
        }
    }
}

/// The ways of coding a chunk besides storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// the transformer (with context mixing, or direct with `--direct`)
    Model,
    /// context mixing over bytes
    Cm,
    Lzma,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "model" => Some(Method::Model),
            "cm" => Some(Method::Cm),
            "lzma" => Some(Method::Lzma),
            _ => None,
        }
    }
}

/// The threads that code chunks: the global pool, or a pool of its own when the backend wants more
/// chunks in flight (a GPU backend: its streams mostly wait for the device). Chunks whose coding
/// holds large context-mixing tables ("heavy": model and CM frames of the default mode) run at most
/// one per thread of the global pool, so host memory stays what it is on the CPU backend; direct
/// frames (`--direct`) use every worker. With a memory limit, every chunk also takes the bytes it
/// needs (`chunk_memory`) from a budget before it starts, and waits while they are not free.
struct Workers {
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
fn chunk_memory(model: &crate::model::Model, chunk: u64, mixing: bool, compress: bool) -> u64 {
    let dict = lzma_dict_size(chunk as usize) as u64;
    let lzma = if compress { 11 * dict } else { dict } + (2 << 20);
    let cfg = &model.cfg;
    let stream = (crate::backend::cpu::BLOCK * cfg.vocab * 4 + cfg.vocab * 8) as u64
        + 2 * (cfg.n_layers * cfg.window * cfg.n_kv_heads * cfg.head_dim) as u64
        + (1 << 20);
    // HF tokenizers keeps every token's string and offsets while encoding
    let tokenize = if compress { 40 * chunk } else { 0 };
    let tokens = 4 * chunk + stream;
    let mixers = if mixing {
        SymbolCm::memory(8, false, chunk).max(SymbolCm::memory(token_bits(cfg.vocab), true, chunk) + tokens)
    } else {
        0
    };
    2 * chunk + lzma.max(tokenize).max(tokens).max(mixers)
}

/// What a running chunk holds of the workers' budget; given back when dropped.
struct Permit<'w> {
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
fn base_memory(model: &crate::model::Model) -> u64 {
    model.weight_bytes() + (32 << 20)
}

impl Workers {
    /// Workers for chunks of at most `chunk` bytes under `memory_limit` (bytes; `None`: no limit);
    /// `need` is what coding a chunk of `chunk` bytes takes (`chunk_memory`).
    fn new(backend: &dyn Backend, chunk: u32, need: u64, memory_limit: Option<u64>, compress: bool) -> Result<Workers> {
        let n = backend.parallel_chunks().max(1);
        let heavy = rayon::current_num_threads().max(1);
        let mut batch = n * 2;
        let mut budget = u64::MAX;
        let mut reserved = 0;
        if let Some(limit) = memory_limit {
            // read-ahead holds each chunk and its frame; the rest is for coding, at least one
            // full chunk's worth where the limit allows it
            let chunk = chunk as u64;
            reserved = base_memory(backend.model());
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
    fn permit(&self, heavy: bool, bytes: u64) -> Result<Permit<'_>> {
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
    fn batch_len(&self) -> usize {
        self.batch
    }

    fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
        let run = || items.par_iter().map(&f).collect();
        match &self.pool {
            Some(p) => p.install(run),
            None => run(),
        }
    }
}

/// Compress `input` to `out` as one stream.
pub fn compress(backend: &dyn Backend, mut input: Input, out: &mut dyn Write, opts: &Options) -> Result<Stats> {
    let mut p = Packer::start(backend, opts, out)?;
    loop {
        let chunks = input.next_batch(p.batch_len(), opts.chunk_size as usize)?;
        if chunks.is_empty() {
            break;
        }
        p.code(backend, opts, &chunks, out)?;
    }
    p.finish(out)
}

/// The compressing side of one stream, fed batches of chunks: `compress` and `stream::Encoder`.
pub(crate) struct Packer {
    workers: Workers,
    hash: xxhash_rust::xxh64::Xxh64,
    stats: Stats,
}

impl Packer {
    /// Write the stream's header.
    pub(crate) fn start(backend: &dyn Backend, opts: &Options, out: &mut dyn Write) -> Result<Packer> {
        let model = backend.model();
        let header = Header {
            version: VERSION,
            model_id: model.id,
            chunk_size: opts.chunk_size,
        };
        header.write(out)?;
        let need = chunk_memory(model, opts.chunk_size as u64, !opts.direct, true);
        Ok(Packer {
            workers: Workers::new(backend, opts.chunk_size, need, opts.memory_limit, true)?,
            hash: header.content_hash(),
            stats: Stats {
                packed_bytes: crate::format::HEADER_LEN as u64,
                ..Default::default()
            },
        })
    }

    /// How many chunks a batch should hold.
    pub(crate) fn batch_len(&self) -> usize {
        self.workers.batch_len()
    }

    /// Code `chunks` (each of `opts.chunk_size` bytes but the stream's last) in parallel and write
    /// their frames in order, each flushed as soon as it is written.
    pub(crate) fn code(
        &mut self,
        backend: &dyn Backend,
        opts: &Options,
        chunks: &[Vec<u8>],
        out: &mut dyn Write,
    ) -> Result<()> {
        let model = backend.model();
        let workers = &self.workers;
        let frames = workers.map(chunks, |c| {
            let need = chunk_memory(model, c.len() as u64, !opts.direct, true);
            let _permit = workers.permit(!opts.direct, need)?;
            encode_chunk(backend, c, opts)
        });
        for (chunk, frame) in chunks.iter().zip(frames) {
            let frame = frame?;
            self.hash.update(chunk);
            frame.write(out)?;
            // a reader at the other end of a pipe gets each frame as soon as it is done
            out.flush()?;
            self.stats.add_frame(&frame, VERSION);
        }
        if let Some(p) = &opts.progress {
            p(self.stats.raw_bytes);
        }
        Ok(())
    }

    /// Write the end frame.
    pub(crate) fn finish(mut self, out: &mut dyn Write) -> Result<Stats> {
        let end = Frame::End {
            total_len: self.stats.raw_bytes,
            checksum: self.hash.digest(),
        };
        end.write(out)?;
        self.stats.add_frame(&end, VERSION);
        out.flush()?;
        Ok(self.stats)
    }
}

/// Order-0 entropy in bits per byte; chunks above ~7.9 are stored without running the model.
fn byte_entropy(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64 / n) * (c as f64 / n).log2())
        .sum()
}

fn lzma_err(e: xz2::stream::Error) -> Error {
    Error::Io(std::io::Error::other(e))
}

/// liblzma's LZMA_PRESET_EXTREME flag (xz -e).
const LZMA_PRESET_EXTREME: u32 = 1 << 31;

/// LZMA options for `Lzma` frames: `preset` (9 with the extreme flag by default, 1 for `--direct`),
/// dictionary = the chunk. Every preset keeps lc 3, lp 0, pb 2, which frames rely on.
fn lzma_options(len: usize, preset: u32) -> Result<xz2::stream::LzmaOptions> {
    let mut o = xz2::stream::LzmaOptions::new_preset(preset).map_err(lzma_err)?;
    o.dict_size(lzma_dict_size(len));
    Ok(o)
}

/// Dictionary size: the chunk length rounded up to a power of two (a value liblzma's `.lzma`
/// header stores unchanged), between 4 KiB and 64 MiB.
fn lzma_dict_size(len: usize) -> u32 {
    (len as u32).clamp(4096, 64 << 20).next_power_of_two()
}

/// The 13-byte `.lzma` header our options produce: properties (lc 3, lp 0, pb 2), dictionary size,
/// unknown uncompressed size. Frames omit it (docs/FORMAT.md); the decoder puts it back.
fn lzma_header(raw_len: usize) -> [u8; 13] {
    let mut h = [0xFFu8; 13];
    h[0] = 0x5D;
    h[1..5].copy_from_slice(&lzma_dict_size(raw_len).to_le_bytes());
    h
}

/// LZMA payload without its header, or `None` if liblzma wrote a header we did not expect.
fn lzma_compress(data: &[u8], preset: u32) -> Result<Option<Vec<u8>>> {
    let stream = xz2::stream::Stream::new_lzma_encoder(&lzma_options(data.len(), preset)?).map_err(lzma_err)?;
    let mut enc = xz2::write::XzEncoder::new_stream(Vec::with_capacity(data.len() / 2), stream);
    enc.write_all(data)?;
    let out = enc.finish()?;
    Ok((out.len() > 13 && out[..13] == lzma_header(data.len())).then(|| out[13..].to_vec()))
}

fn lzma_decompress(payload: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    use xz2::stream::{Action, Status, Stream};
    // the memory limit bounds the dictionary a damaged header could ask for
    let mut stream = Stream::new_lzma_decoder(2 * crate::format::MAX_CHUNK as u64 + (1 << 20)).map_err(lzma_err)?;
    let header = lzma_header(raw_len);
    // one byte of room past `raw_len` shows a stream that decodes to too much
    let mut out = Vec::with_capacity(raw_len + 1);
    let bad = |what: &str| Err(Error::corrupt(format!("LZMA frame {what}")));
    for part in [&header[..], payload] {
        let mut part = part;
        loop {
            let (before, made) = (stream.total_in(), out.len());
            let status = stream
                .process_vec(part, &mut out, Action::Run)
                .map_err(|e| Error::corrupt(format!("LZMA frame: {e}")))?;
            let used = (stream.total_in() - before) as usize;
            part = &part[used..];
            if matches!(status, Status::StreamEnd) {
                // every byte of the payload must belong to the LZMA stream
                if stream.total_in() != (header.len() + payload.len()) as u64 {
                    return bad("has bytes after its end");
                }
                return if out.len() == raw_len {
                    Ok(out)
                } else {
                    bad("decodes to the wrong length")
                };
            }
            if out.len() > raw_len {
                return bad("decodes to the wrong length");
            }
            if part.is_empty() || (used == 0 && out.len() == made) {
                break;
            }
        }
    }
    bad("ends before its end marker")
}

/// Code one chunk with the best of the model (transformer + context mixing over tokens), context
/// mixing over bytes, LZMA (preset 9, extreme) and storing; with `--direct`, the best of a direct
/// model frame (transformer alone), LZMA preset 1 and storing.
pub fn encode_chunk(backend: &dyn Backend, data: &[u8], opts: &Options) -> Result<Frame> {
    let allow = |m: Method| opts.only.is_none_or(|o| o == m);
    let checksum = chunk_checksum(data);
    let raw_len = data.len() as u32;
    let mut best = Frame::Stored {
        checksum,
        data: data.to_vec(),
    };
    let mut consider = |f: Frame| {
        // only a direct frame of a model with fewer than 4096 tokens could break the work bound
        if f.encoded_len(VERSION) < best.encoded_len(VERSION) && f.fits_work_bound() {
            best = f;
        }
    };
    if allow(Method::Lzma) {
        let preset = if opts.direct { 1 } else { 9 | LZMA_PRESET_EXTREME };
        if let Some(payload) = lzma_compress(data, preset)? {
            consider(Frame::Lzma {
                raw_len,
                checksum,
                payload,
            });
        }
    }
    let mut redundant = false;
    if allow(Method::Cm) && !opts.direct {
        let payload = encode_bytes_cm(data, &opts.cancel)?;
        redundant = payload.len() * 8 < data.len();
        consider(Frame::Cm {
            raw_len,
            checksum,
            payload,
        });
    }
    // The model is skipped where it cannot pay for its time: high-entropy chunks (already-
    // compressed data), and chunks the byte mixer already codes below 1 bit per byte (logs, tables,
    // repetitive data: on the bench the byte mixer beat the model on every such chunk).
    let high_entropy = data.len() >= 4096 && byte_entropy(data) > 7.9;
    if allow(Method::Model) && !high_entropy && !redundant {
        if opts.direct {
            if let Some((payload, n)) = encode_direct(backend, data, &opts.cancel)? {
                consider(Frame::Direct {
                    raw_len,
                    n_tokens: n as u32,
                    checksum,
                    payload,
                });
            }
        } else if let Some((payload, n)) = encode_model(backend, data, &opts.cancel)? {
            consider(Frame::Model {
                raw_len,
                n_tokens: n as u32,
                checksum,
                payload,
            });
        }
    }
    Ok(best)
}

/// The tokens of `data`, or `None` if the tokenizer cannot rebuild it exactly (such a chunk is
/// never model-coded: the tokenizer is not trusted blindly).
fn tokens_of(model: &crate::model::Model, data: &[u8]) -> Result<Option<Vec<u32>>> {
    let ids = model.tokenizer.encode(data)?;
    let mut check = Vec::with_capacity(data.len());
    model.tokenizer.decode_into(&ids, &mut check)?;
    Ok((check == data && !ids.is_empty()).then_some(ids))
}

/// The total every direct frame's token is coded against: the tables' budget (their entries sum
/// to at most this; the rest of the range is never used).
const DIRECT_TOTAL: u64 = crate::model::arith::FREQ_BUDGET;

/// A direct frame's payload: each token range-coded with the interval its table gives it.
fn encode_direct(backend: &dyn Backend, data: &[u8], cancel: &Cancel) -> Result<Option<(Vec<u8>, u64)>> {
    let model = backend.model();
    let Some(ids) = tokens_of(model, data)? else {
        return Ok(None);
    };
    let mut stream = backend.stream();
    let block = stream.max_block();
    let mut inputs = Vec::with_capacity(block);
    let mut iv = vec![Interval::default(); block];
    let mut enc = Encoder::new();
    for start in (0..ids.len()).step_by(block) {
        cancel.check()?;
        let end = (start + block).min(ids.len());
        inputs.clear();
        inputs.extend((start..end).map(|i| if i == 0 { model.cfg.bos() } else { ids[i - 1] }));
        let iv = &mut iv[..end - start];
        stream.feed_intervals(&inputs, &ids[start..end], iv)?;
        for i in iv.iter() {
            enc.encode(i.cum as u64, i.freq as u64, DIRECT_TOTAL);
        }
    }
    Ok(Some((enc.finish(), ids.len() as u64)))
}

fn decode_direct(
    backend: &dyn Backend,
    raw_len: usize,
    n_tokens: usize,
    payload: &[u8],
    version: u8,
    cancel: &Cancel,
) -> Result<Vec<u8>> {
    let model = backend.model();
    let mut stream = backend.stream();
    let mut dec = Decoder::new(payload, rules_of(version));
    let mut out = Vec::with_capacity(raw_len);
    let mut prev = model.cfg.bos();
    for i in 0..n_tokens {
        if i % 256 == 0 {
            cancel.check()?;
        }
        if rules_of(version) == Rules::Legacy && dec.only_zeros_left() {
            push_first_tokens(model, n_tokens - i, &mut out, raw_len)?;
            break;
        }
        let target = dec.target(DIRECT_TOTAL)?;
        let iv = stream
            .feed_search(prev, target as u32)?
            .ok_or_else(|| Error::corrupt("range decoder target past the table"))?;
        dec.consume(iv.cum as u64, iv.freq as u64, DIRECT_TOTAL);
        push_piece(model, iv.sym, &mut out, raw_len)?;
        prev = iv.sym;
    }
    if out.len() != raw_len {
        return Err(Error::corrupt("frame decodes to fewer bytes than its header says"));
    }
    dec.finish()?;
    Ok(out)
}

/// The range decoder's payload rules for a stream of format `version`.
fn rules_of(version: u8) -> Rules {
    if version >= 5 {
        Rules::Strict
    } else {
        Rules::Legacy
    }
}

/// The rest of an old-version frame whose decoder has only zeros left: every later target is 0, so
/// every later token is token 0 (the first entry of every table, all of them >= 1).
fn push_first_tokens(model: &crate::model::Model, n: usize, out: &mut Vec<u8>, raw_len: usize) -> Result<()> {
    for _ in 0..n {
        push_piece(model, 0, out, raw_len)?;
    }
    Ok(())
}

/// Append token `sym`'s bytes, refusing to grow past the frame's length.
fn push_piece(model: &crate::model::Model, sym: u32, out: &mut Vec<u8>, raw_len: usize) -> Result<()> {
    let piece = model
        .tokenizer
        .piece(sym)
        .ok_or_else(|| Error::corrupt("decoded a token that is not in the vocabulary"))?;
    if out.len() + piece.len() > raw_len {
        return Err(Error::corrupt("frame decodes to more bytes than its header says"));
    }
    out.extend_from_slice(piece);
    Ok(())
}

/// The model-coded payload of a chunk and its token count, or `None` if the tokenizer cannot
/// rebuild the chunk exactly. Each token is coded bit by bit: the transformer's table gives each
/// bit's probability, and the context mixer (docs/MODEL.md) refines it.
fn encode_model(backend: &dyn Backend, data: &[u8], cancel: &Cancel) -> Result<Option<(Vec<u8>, u64)>> {
    let model = backend.model();
    let Some(ids) = tokens_of(model, data)? else {
        return Ok(None);
    };
    let vocab = model.cfg.vocab;
    let nbits = token_bits(vocab);
    let mut stream = backend.stream();
    let block = stream.max_block();
    let mut tables = vec![0u32; block * vocab];
    let mut inputs = Vec::with_capacity(block);
    let mut cum = Vec::with_capacity(vocab + 1);
    let mut enc = Encoder::new();
    let mut cm = SymbolCm::for_tokens(nbits, ids.len() as u64, token_classes(model));
    for start in (0..ids.len()).step_by(block) {
        cancel.check()?;
        let end = (start + block).min(ids.len());
        inputs.clear();
        for i in start..end {
            inputs.push(if i == 0 { model.cfg.bos() } else { ids[i - 1] });
        }
        stream.feed(&inputs, &mut tables[..inputs.len() * vocab])?;
        for (r, &sym) in ids[start..end].iter().enumerate() {
            cumulate(&tables[r * vocab..(r + 1) * vocab], &mut cum);
            for k in (0..nbits).rev() {
                let bit = (sym >> k) & 1;
                match table_bit(&cum, cm.node(), nbits) {
                    BitPred::Forced(_) => cm.skip(bit),
                    BitPred::P(p) => {
                        let q = cm.predict(Some(p));
                        enc.encode_bit(q, bit);
                        cm.update(bit);
                    }
                }
            }
        }
    }
    Ok(Some((enc.finish(), ids.len() as u64)))
}

/// Bits per token: enough for every id below `vocab`.
fn token_bits(vocab: usize) -> u32 {
    usize::BITS - (vocab - 1).leading_zeros()
}

fn token_classes(model: &crate::model::Model) -> Vec<u8> {
    classes_of(model.cfg.vocab, |s| model.tokenizer.piece(s))
}

/// A chunk's bytes coded by context mixing alone.
fn encode_bytes_cm(data: &[u8], cancel: &Cancel) -> Result<Vec<u8>> {
    let mut enc = Encoder::new();
    let mut cm = SymbolCm::for_bytes(data.len() as u64);
    for (i, &b) in data.iter().enumerate() {
        if i % 65536 == 0 {
            cancel.check()?;
        }
        for k in (0..8).rev() {
            let bit = (b as u32 >> k) & 1;
            let q = cm.predict(None);
            enc.encode_bit(q, bit);
            cm.update(bit);
        }
    }
    Ok(enc.finish())
}

fn decode_bytes_cm(payload: &[u8], raw_len: usize, version: u8, cancel: &Cancel) -> Result<Vec<u8>> {
    let mut dec = Decoder::new(payload, rules_of(version));
    let mut cm = SymbolCm::for_bytes(raw_len as u64);
    let mut out = Vec::with_capacity(raw_len);
    for i in 0..raw_len {
        if i % 65536 == 0 {
            cancel.check()?;
        }
        if rules_of(version) == Rules::Legacy && dec.only_zeros_left() {
            // every later bit decodes as 1 (the interval [0, q) holds target 0)
            out.resize(raw_len, 0xFF);
            break;
        }
        for _ in 0..8 {
            let q = cm.predict(None);
            let bit = dec.decode_bit(q)?;
            cm.update(bit);
        }
        out.push(cm.last_symbol() as u8);
    }
    dec.finish()?;
    Ok(out)
}

/// Decode one frame's content (`Frame::End` is not content) of a stream of format `version`.
pub fn decode_frame(backend: &dyn Backend, frame: &Frame, version: u8, cancel: &Cancel) -> Result<Vec<u8>> {
    let (data, checksum) = match frame {
        Frame::Stored { checksum, data } => (data.clone(), *checksum),
        Frame::Lzma {
            raw_len,
            checksum,
            payload,
        } => (lzma_decompress(payload, *raw_len as usize)?, *checksum),
        Frame::Cm {
            raw_len,
            checksum,
            payload,
        } => (decode_bytes_cm(payload, *raw_len as usize, version, cancel)?, *checksum),
        Frame::Model {
            raw_len,
            n_tokens,
            checksum,
            payload,
        } => (
            decode_tokens(backend, *raw_len as usize, *n_tokens as usize, payload, version, cancel)?,
            *checksum,
        ),
        Frame::Direct {
            raw_len,
            n_tokens,
            checksum,
            payload,
        } => (
            decode_direct(backend, *raw_len as usize, *n_tokens as usize, payload, version, cancel)?,
            *checksum,
        ),
        Frame::End { .. } => return Ok(Vec::new()),
    };
    if chunk_checksum(&data) != checksum {
        return Err(Error::corrupt("frame checksum mismatch"));
    }
    Ok(data)
}

/// Model frames: format 3 codes tokens bit by bit with context mixing; format 2 coded whole tokens
/// with the `mixer_v2` adjustment; format 1 with the transformer's tables as they are.
fn decode_tokens(
    backend: &dyn Backend,
    raw_len: usize,
    n_tokens: usize,
    payload: &[u8],
    version: u8,
    cancel: &Cancel,
) -> Result<Vec<u8>> {
    let model = backend.model();
    let vocab = model.cfg.vocab;
    let nbits = token_bits(vocab);
    let mut stream = backend.stream();
    let mut table = vec![0u32; vocab];
    let mut cum = Vec::with_capacity(vocab + 1);
    let mut dec = Decoder::new(payload, rules_of(version));
    let mut out = Vec::with_capacity(raw_len);
    let mut prev = model.cfg.bos();
    let mut cm = (version >= 3).then(|| SymbolCm::for_tokens(nbits, n_tokens as u64, token_classes(model)));
    let mut mixer = (version == 2).then(MixerV2::new);
    for i in 0..n_tokens {
        if i % 256 == 0 {
            cancel.check()?;
        }
        if version <= 2 && dec.only_zeros_left() {
            push_first_tokens(model, n_tokens - i, &mut out, raw_len)?;
            break;
        }
        stream.feed(&[prev], &mut table)?;
        let sym = if let Some(cm) = cm.as_mut() {
            cumulate(&table, &mut cum);
            for _ in 0..nbits {
                match table_bit(&cum, cm.node(), nbits) {
                    BitPred::Forced(bit) => cm.skip(bit),
                    BitPred::P(p) => {
                        let q = cm.predict(Some(p));
                        let bit = dec.decode_bit(q)?;
                        cm.update(bit);
                    }
                }
            }
            cm.last_symbol()
        } else {
            if let Some(m) = mixer.as_mut() {
                m.adjust(&mut table);
            }
            let sym = dec.decode_symbol(&table)? as u32;
            if let Some(m) = mixer.as_mut() {
                m.update(sym);
            }
            sym
        };
        push_piece(model, sym, &mut out, raw_len)?;
        prev = sym;
    }
    if out.len() != raw_len {
        return Err(Error::corrupt("frame decodes to fewer bytes than its header says"));
    }
    dec.finish()?;
    Ok(out)
}

/// Decompress every concatenated nnz stream in `input`; with `out = None` only verify (`-t`).
pub fn decompress(
    backend: &dyn Backend,
    input: &mut dyn Read,
    mut out: Option<&mut dyn Write>,
    opts: &Options,
) -> Result<Stats> {
    let mut u = Unpacker::default();
    while let Some(batch) = u.next_batch(backend, opts, input)? {
        if let Some(o) = out.as_deref_mut() {
            for d in &batch {
                o.write_all(d)?;
            }
        }
    }
    if let Some(o) = out {
        o.flush()?;
    }
    Ok(u.stats)
}

/// The decompressing side, batch by batch over concatenated streams: `decompress` and
/// `stream::Decoder`. Content comes out only after its frame passed every check.
#[derive(Default)]
pub(crate) struct Unpacker {
    stream: Option<StreamState>,
    /// a stream has begun (a clean end of input before the first is `Truncated`)
    started: bool,
    pub(crate) stats: Stats,
}

/// Where the decoder is within one stream.
struct StreamState {
    header: Header,
    workers: Workers,
    hash: xxhash_rust::xxh64::Xxh64,
    total: u64,
    /// a frame shorter than the chunk size was read: only the end frame may follow
    short: bool,
}

impl Unpacker {
    /// The content of the next batch of frames, in order; `None` after the last stream.
    pub(crate) fn next_batch(
        &mut self,
        backend: &dyn Backend,
        opts: &Options,
        input: &mut dyn Read,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let model = backend.model();
        if self.stream.is_none() {
            let Some(header) = next_header(input, self.started)? else {
                return Ok(None);
            };
            self.started = true;
            self.stats.packed_bytes += crate::format::HEADER_LEN as u64;
            if header.model_id != model.id {
                return Err(Error::WrongModel {
                    archive: crate::model::hex(&header.model_id),
                    ours: model.id_hex(),
                });
            }
            // the decoder cannot know which frame kinds follow: it sizes for context mixing
            let need = chunk_memory(model, header.chunk_size as u64, true, false);
            self.stream = Some(StreamState {
                workers: Workers::new(backend, header.chunk_size, need, opts.memory_limit, false)?,
                hash: header.content_hash(),
                header,
                total: 0,
                short: false,
            });
        }
        let st = self.stream.as_mut().unwrap();
        let (chunk, version) = (st.header.chunk_size, st.header.version);
        // read a batch of frames (bounded: batch_len frames of at most chunk_size bytes each)
        let mut frames = Vec::new();
        let mut done = false;
        while frames.len() < st.workers.batch_len() && !done {
            let f = Frame::read(input, chunk, version)?;
            done = matches!(f, Frame::End { .. });
            check_order(&mut st.short, &f, chunk)?;
            frames.push(f);
        }
        let workers = &st.workers;
        let decoded = workers.map(&frames, |f| {
            let heavy = matches!(f, Frame::Model { .. } | Frame::Cm { .. });
            let need = chunk_memory(model, f.raw_len(), heavy, false);
            let _permit = workers.permit(heavy, need)?;
            decode_frame(backend, f, version, &opts.cancel)
        });
        let mut out = Vec::with_capacity(frames.len());
        for (f, d) in frames.iter().zip(decoded) {
            self.stats.add_frame(f, version);
            if let Frame::End { total_len, checksum } = f {
                if *total_len != st.total || *checksum != st.hash.digest() {
                    return Err(Error::corrupt("content checksum mismatch"));
                }
                continue;
            }
            let d = d?;
            st.hash.update(&d);
            st.total += d.len() as u64;
            out.push(d);
        }
        if let Some(p) = &opts.progress {
            p(self.stats.packed_bytes);
        }
        if done {
            self.stream = None;
        }
        Ok(Some(out))
    }
}

/// The header of the next stream; `None` at a clean end of input after at least one stream
/// (`started`). Anything else after a stream is trailing data.
fn next_header(input: &mut dyn Read, started: bool) -> Result<Option<Header>> {
    match Header::read(input) {
        Ok(None) if !started => Err(Error::Truncated),
        Err(Error::NotAnArchive) if started => Err(Error::TrailingData),
        r => r,
    }
}

/// Every content frame but the stream's last fills the chunk: `short` records a frame that did
/// not, after which only the end frame may come.
fn check_order(short: &mut bool, f: &Frame, chunk_size: u32) -> Result<()> {
    if matches!(f, Frame::End { .. }) {
        return Ok(());
    }
    if *short {
        return Err(Error::corrupt("a frame before the last is shorter than the chunk size"));
    }
    *short = f.raw_len() < chunk_size as u64;
    Ok(())
}

/// What `nnz -l` shows: walk the frames of every concatenated stream without running the model,
/// with the checks a decoder makes on the framing. One header and its statistics per stream.
pub fn list(input: &mut dyn Read) -> Result<Vec<(Header, Stats)>> {
    let mut streams = Vec::new();
    loop {
        let Some(header) = next_header(input, !streams.is_empty())? else {
            return Ok(streams);
        };
        let mut stats = Stats {
            packed_bytes: crate::format::HEADER_LEN as u64,
            ..Default::default()
        };
        let mut short = false;
        loop {
            let f = Frame::read(input, header.chunk_size, header.version)?;
            check_order(&mut short, &f, header.chunk_size)?;
            stats.add_frame(&f, header.version);
            if let Frame::End { total_len, .. } = f {
                if total_len != stats.raw_bytes {
                    return Err(Error::corrupt("total length does not match the frames"));
                }
                break;
            }
        }
        streams.push((header, stats));
    }
}
