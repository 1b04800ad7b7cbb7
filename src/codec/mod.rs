//! Compression and decompression of whole streams: cut the input into chunks, run the model over
//! many chunks at once (rayon), code each chunk as a frame, and write the frames in order.
//! Memory stays bounded: at most one batch of chunks is in flight.

pub mod level;
mod pace;
mod probe;
mod progress;
mod workers;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{chunk_checksum, CmModel, Frame, Header, Sorter, VERSION};
use crate::frames::blend::Blend;
use crate::frames::direct::Direct;
use crate::frames::model::Model;
use crate::frames::{bwt, cm, lzma, TokenFrame, TokenJob};
use crate::legacy;
use level::{ModelTrial, Plan};
use pace::{EndOnDrop, Pace, Yardstick};
pub(crate) use progress::{Meter, Work, STEP};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use workers::{chunk_memory, Workers};

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

    /// `Err(Error::Interrupted)` once cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// What a call coded: sizes, and how many frames of each kind (docs/FORMAT.md).
#[derive(Default, Debug, Clone)]
pub struct Stats {
    /// bytes of content
    pub raw_bytes: u64,
    /// bytes of archive (headers and end frames included)
    pub packed_bytes: u64,
    /// tokens coded by the model (model and direct frames)
    pub tokens: u64,
    /// content frames
    pub frames: u64,
    /// frames stored as they are
    pub stored_frames: u64,
    /// LZMA frames
    pub lzma_frames: u64,
    /// CM frames (the byte mixer)
    pub cm_frames: u64,
    /// deep CM frames (the byte mixer with bit histories)
    pub deep_cm_frames: u64,
    /// mid CM frames (the deep byte mixer, trimmed)
    pub mid_cm_frames: u64,
    /// BWT frames (the sorted chunk and its predictor)
    pub bwt_frames: u64,
    /// fast BWT frames (the sorted chunk and the lean predictor)
    pub fast_bwt_frames: u64,
    /// direct model frames (the transformer alone)
    pub direct_frames: u64,
    /// model frames (the transformer with the token mixer)
    pub model_frames: u64,
    /// blend frames (the transformer with the byte mixer)
    pub blend_frames: u64,
    /// chunks whose model trial stopped behind the byte mixer's and gave no frame (levels 7 and 8,
    /// `pace`; compression only)
    pub model_trials_stopped: u64,
}

impl Stats {
    /// Count one content or end frame (its size as written, its content, its kind).
    fn add_frame(&mut self, f: &Frame, version: u8) {
        self.packed_bytes += f.encoded_len(version);
        self.raw_bytes += f.raw_len();
        match f {
            Frame::Model { n_tokens, .. } => {
                self.tokens += *n_tokens as u64;
                self.model_frames += 1;
            }
            Frame::Direct { n_tokens, .. } => {
                self.tokens += *n_tokens as u64;
                self.direct_frames += 1;
            }
            Frame::Blend { n_tokens, .. } => {
                self.tokens += *n_tokens as u64;
                self.blend_frames += 1;
            }
            Frame::Lzma { .. } => self.lzma_frames += 1,
            Frame::Cm {
                model: CmModel::Plain, ..
            } => self.cm_frames += 1,
            Frame::Cm {
                model: CmModel::Deep, ..
            } => self.deep_cm_frames += 1,
            Frame::Cm {
                model: CmModel::Mid, ..
            } => self.mid_cm_frames += 1,
            Frame::Bwt {
                sorter: Sorter::Full, ..
            } => self.bwt_frames += 1,
            Frame::Bwt {
                sorter: Sorter::Lean, ..
            } => self.fast_bwt_frames += 1,
            Frame::Stored { .. } => self.stored_frames += 1,
            Frame::End { .. } => return,
        }
        self.frames += 1;
    }

    /// How many frames of each kind, the kinds that occur: "3 model, 1 CM".
    pub fn breakdown(&self) -> String {
        let kinds = [
            (self.blend_frames, "blend"),
            (self.model_frames, "model"),
            (self.direct_frames, "direct"),
            (self.cm_frames, "CM"),
            (self.deep_cm_frames, "deep CM"),
            (self.mid_cm_frames, "mid CM"),
            (self.bwt_frames, "BWT"),
            (self.fast_bwt_frames, "fast BWT"),
            (self.lzma_frames, "LZMA"),
            (self.stored_frames, "stored"),
        ];
        let parts: Vec<String> = kinds
            .iter()
            .filter(|k| k.0 > 0)
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// Compressed size as a percentage of the original (0 for empty input).
    pub fn percent(&self) -> f64 {
        if self.raw_bytes == 0 {
            0.0
        } else {
            100.0 * self.packed_bytes as f64 / self.raw_bytes as f64
        }
    }

    /// Add another stream's counts (`-l`'s totals).
    pub fn add(&mut self, o: &Stats) {
        self.raw_bytes += o.raw_bytes;
        self.packed_bytes += o.packed_bytes;
        self.tokens += o.tokens;
        self.frames += o.frames;
        self.stored_frames += o.stored_frames;
        self.lzma_frames += o.lzma_frames;
        self.cm_frames += o.cm_frames;
        self.deep_cm_frames += o.deep_cm_frames;
        self.mid_cm_frames += o.mid_cm_frames;
        self.bwt_frames += o.bwt_frames;
        self.fast_bwt_frames += o.fast_bwt_frames;
        self.direct_frames += o.direct_frames;
        self.model_frames += o.model_frames;
        self.blend_frames += o.blend_frames;
        self.model_trials_stopped += o.model_trials_stopped;
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

/// How to compress (the driver's view; the library's is `CompressOptions`).
pub struct Options {
    /// bytes per chunk
    pub chunk_size: u32,
    /// 1 (fastest) to 9 (best ratio): what is tried on each chunk (`level::Plan`)
    pub level: u8,
    /// Try only this way of coding chunks (and storing): an experiment knob (`--only`), to
    /// measure one method alone
    pub only: Option<Method>,
    /// Never try this way of coding chunks: an experiment knob (`--without`); `--without model`
    /// at level 8 measures what the network takes off
    pub without: Option<Method>,
    /// `--direct`: direct model frames (no context mixing, LZMA at a low preset as the fallback),
    /// the mode a GPU can run at full speed
    pub direct: bool,
    /// The most memory (bytes) the chunks in flight may take; it bounds how many are coded at
    /// once, never how they are coded (archives do not depend on it). `None`: one per thread
    pub memory_limit: Option<u64>,
    /// called with the number of bytes done (input when compressing, archive when decompressing),
    /// from any thread, while chunks are coded and after each batch; the numbers only grow
    pub progress: Option<Box<dyn Fn(u64) + Sync>>,
    /// stops the call with `Error::Interrupted` when cancelled
    pub cancel: Cancel,
}

impl Options {
    /// What is tried on each chunk.
    pub fn plan(&self) -> Plan {
        Plan::of(self.level, self.direct)
    }

    /// Whether `--only` and `--without` let method `m` run.
    fn allows(&self, m: Method) -> bool {
        self.only.is_none_or(|o| o == m) && self.without != Some(m)
    }

    /// Whether chunks try method `m`: the plan has it and `--only` and `--without` allow it (the model may still
    /// be skipped where it cannot pay).
    fn tries(&self, m: Method) -> bool {
        let plan = self.plan();
        let planned = match m {
            Method::Lzma => plan.lzma.is_some(),
            Method::Bwt => plan.bwt.is_some(),
            Method::Cm => plan.cm.is_some(),
            Method::Model => plan.model != ModelTrial::Never,
        };
        planned && self.allows(m)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_size: DEFAULT_CHUNK,
            level: level::DEFAULT_LEVEL,
            direct: false,
            only: None,
            without: None,
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
    /// the Burrows–Wheeler transform and its predictor
    Bwt,
    Lzma,
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
        let model = backend.model_info();
        let header = Header {
            version: VERSION,
            model_id: model.id,
            chunk_size: opts.chunk_size,
        };
        header.write(out)?;
        let mixing = opts.plan().mixes();
        let need = chunk_memory(&model.cfg, opts.chunk_size as u64, mixing, true);
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
        let cfg = &backend.model_info().cfg;
        let workers = &self.workers;
        let meter = opts.progress.as_deref().map(|r| Meter::new(r, self.stats.raw_bytes));
        // a batch of one chunk leaves cores idle: its model trial may run beside the others, if
        // the memory of a second trial is free now
        let lone = chunks.len() == 1 && rayon::current_num_threads() >= 2;
        let frames = workers.map(chunks, |c| {
            let mixing = opts.plan().mixes();
            let need = chunk_memory(cfg, c.len() as u64, mixing, true);
            let _permit = workers.permit(mixing, need)?;
            let second = if lone && mixing { workers.try_permit(need) } else { None };
            encode_chunk(backend, c, opts, meter.as_ref(), second.is_some())
        });
        for (chunk, coded) in chunks.iter().zip(frames) {
            let (frame, stopped) = coded?;
            self.stats.model_trials_stopped += stopped as u64;
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

/// Code one chunk as the smallest of the frames its level's plan tries (`level`) and a stored
/// frame; report progress to `meter`, the chunk's length in all. With `overlap`, the model's trial
/// runs on a thread of its own beside the others (the frame is the same either way). Also says
/// whether the model's trial stopped behind the byte mixer's (`pace`).
pub(crate) fn encode_chunk(
    backend: &dyn Backend,
    data: &[u8],
    opts: &Options,
    meter: Option<&Meter>,
    overlap: bool,
) -> Result<(Frame, bool)> {
    let mut trials = Trials::new(data.len(), opts, meter);
    let frame = try_methods(backend, data, opts, &mut trials, overlap);
    trials.finish();
    frame
}

/// The progress of one chunk's trials: each counts for its share of the chunk's length, by its
/// cost per byte relative to the others the plan runs (measured on the bench: one pass of the
/// byte mixer takes about 8 of the sorted chunk's and the model about 10 of the byte mixer's).
struct Trials<'a> {
    cancel: &'a Cancel,
    meter: Option<&'a Meter<'a>>,
    len: u64,
    /// the planned trials' costs added up
    total: u64,
    reported: u64,
}

impl<'a> Trials<'a> {
    fn new(len: usize, opts: &'a Options, meter: Option<&'a Meter<'a>>) -> Trials<'a> {
        let plan = opts.plan();
        let total = [Method::Lzma, Method::Bwt, Method::Cm, Method::Model]
            .into_iter()
            .filter(|&m| opts.tries(m))
            .map(|m| Self::cost(m, &plan))
            .sum::<u64>();
        Trials {
            cancel: &opts.cancel,
            meter,
            len: len as u64,
            total: total.max(1),
            reported: 0,
        }
    }

    /// Time per byte, in units of about one fast BWT pass.
    fn cost(m: Method, plan: &Plan) -> u64 {
        match m {
            Method::Bwt if plan.bwt == Some(Sorter::Lean) => 1,
            Method::Bwt => 3,
            Method::Lzma => 5,
            Method::Cm if plan.cm == Some(CmModel::Deep) => 38,
            Method::Cm if plan.cm == Some(CmModel::Mid) => 32,
            Method::Cm => 24,
            Method::Model if plan.direct => 600,
            Method::Model => 240,
        }
    }

    /// Run one trial of method `m` with its share of the meter.
    fn run<T>(&mut self, m: Method, plan: &Plan, f: impl FnOnce(&Work) -> Result<T>) -> Result<T> {
        self.run_with(&self.work(m, plan), f)
    }

    /// Run one trial in `work` (made by `work`, then set up further).
    fn run_with<T>(&mut self, work: &Work, f: impl FnOnce(&Work) -> Result<T>) -> Result<T> {
        let r = f(work);
        self.done(work);
        r
    }

    /// The pass of a trial of method `m`, to be run elsewhere and then handed to `done`.
    fn work(&self, m: Method, plan: &Plan) -> Work<'a> {
        Work::metered(self.cancel, self.meter, Self::cost(m, plan), self.total)
    }

    fn done(&mut self, work: &Work) {
        self.reported += work.reported();
    }

    /// The chunk is done: report what its trials did not (the rounding, a trial skipped).
    fn finish(self) {
        if let Some(m) = self.meter {
            m.add(self.len.saturating_sub(self.reported));
        }
    }
}

/// Below level 9 the model is not tried on a chunk whose CM frame's payload is less than the
/// chunk's length over this (half a bit per byte). Until format 19 the byte mixer beat the model
/// on every chunk of the bench below 1 bit per byte; since then the model wins misc/html (0.73
/// bits per byte) by 4.9%, and loses every other chunk between half a bit and 1 bit per byte,
/// where `pace` stops its trial early.
const REDUNDANT_RATIO: usize = 16;

fn try_methods(
    backend: &dyn Backend,
    data: &[u8],
    opts: &Options,
    trials: &mut Trials,
    overlap: bool,
) -> Result<(Frame, bool)> {
    let allow = |m: Method| opts.allows(m);
    let checksum = chunk_checksum(data);
    let raw_len = data.len() as u32;
    let mut best = Frame::Stored {
        checksum,
        data: data.to_vec(),
    };
    let entropy = probe::byte_entropy(data);
    if probe::incompressible(data, entropy) {
        return Ok((best, false));
    }
    let mut consider = |f: Frame| {
        // only a direct frame of a model with fewer than 4096 tokens could break the work bound
        if f.encoded_len(VERSION) < best.encoded_len(VERSION) && f.fits_work_bound() {
            best = f;
        }
    };
    let plan = opts.plan();
    // The model is skipped where it cannot pay for its time: high-entropy chunks (already-
    // compressed data), and, below level 9, chunks the byte mixer already codes below half a bit
    // per byte (logs, tables, repetitive data: on the bench the model won one such chunk by 1.7%,
    // for nine times its time); the latter is known only once the byte mixer has run.
    let high_entropy = data.len() >= 4096 && entropy > 7.9;
    let may_try_model = allow(Method::Model) && plan.model != ModelTrial::Never && !high_entropy;
    let wants_model = |redundant: bool| may_try_model && (plan.model == ModelTrial::Always || !redundant);
    let model_trial = |w: &Work| -> Result<Option<Frame>> {
        Ok(if plan.direct {
            Direct::encode(backend, data, w)?.map(|(payload, n)| Frame::Direct {
                raw_len,
                n_tokens: n as u32,
                checksum,
                payload,
            })
        } else {
            Blend::encode(backend, data, w)?.map(|(payload, n)| Frame::Blend {
                raw_len,
                n_tokens: n as u32,
                checksum,
                payload,
            })
        })
    };
    // With a core to spare (`overlap`), the LZMA trial runs on a thread of its own beside the
    // others, and the model's trial after it on the same thread where it may pay and the LZMA
    // trial has shown the chunk is not easy (2 bits per byte or more: logs and tables, which the
    // byte mixer then codes below 1 bit per byte, stay sequential, as a trial stopped there cost
    // more than it saved); where the model is always wanted (level 9) its trial takes that thread
    // at once and LZMA stays with the others. The model's trial is stopped if the byte mixer finds
    // the chunk redundant after all. Frames are considered in one order whichever thread made
    // them, so the frame chosen is the same either way.
    let stop = Cancel::new();
    // levels 7 and 8: the byte mixer's trial paces the model's, which stops once it is behind
    // (`pace`)
    let cm_trial = plan.cm.filter(|_| allow(Method::Cm));
    let yard = (plan.model == ModelTrial::WherePays && may_try_model && cm_trial.is_some()).then(Yardstick::new);
    let work = (overlap && may_try_model).then(|| {
        trials
            .work(Method::Model, &plan)
            .stopped_by(&stop)
            .paced(yard.as_ref().map(Pace::Follows))
    });
    let lzma_preset = plan.lzma.filter(|_| allow(Method::Lzma));
    // level 9: the model's trial, where it runs beside, starts at once
    let model_first = plan.model == ModelTrial::Always;
    let lzma_aside = overlap && !model_first;
    let lzma_work = lzma_preset
        .filter(|_| lzma_aside)
        .map(|_| trials.work(Method::Lzma, &plan));
    // whether a chunk with this LZMA result is worth the model's trial beside the others
    let not_easy = |payload: &Option<Vec<u8>>| payload.as_ref().is_none_or(|p| p.len() * 4 >= data.len());
    type Aside = (Option<Result<Option<Vec<u8>>>>, Option<Result<Option<Frame>>>);
    // the LZMA payload (if tried), the BWT and CM frames (if tried), whether the byte mixer found
    // the chunk redundant, and the model's frame if its trial ran beside the others
    type Tried = (Option<Option<Vec<u8>>>, Option<Frame>, Option<Frame>, bool);
    let (model_work, model_trial, not_easy) = (work.as_ref(), &model_trial, &not_easy);
    let (lzma, sorted, mixed, redundant, model) = std::thread::scope(|s| -> Result<_> {
        let aside = if model_first {
            model_work.map(|w| s.spawn(move || -> Aside { (None, Some(model_trial(w))) }))
        } else if let (Some(preset), Some(lw)) = (lzma_preset, lzma_work.as_ref()) {
            Some(s.spawn(move || -> Aside {
                let payload = lzma::compress(data, preset, lw);
                let model = match (&payload, model_work) {
                    (Ok(p), Some(w)) if not_easy(p) => Some(model_trial(w)),
                    _ => None,
                };
                (Some(payload), model)
            }))
        } else {
            None
        };
        let mut handle = None;
        let others = (|| -> Result<Tried> {
            // however this ends, the model's trial waits for no more marks
            let _end = yard.as_ref().map(EndOnDrop);
            let (mut lzma, mut sorted, mut mixed) = (None, None, None);
            if let Some(preset) = lzma_preset.filter(|_| !lzma_aside) {
                let payload = trials.run(Method::Lzma, &plan, |w| lzma::compress(data, preset, w))?;
                if let (true, false, Some(w)) = (not_easy(&payload), model_first, model_work) {
                    handle = Some(s.spawn(move || model_trial(w)));
                }
                lzma = Some(payload);
            }
            if let Some(sorter) = plan.bwt.filter(|_| allow(Method::Bwt)) {
                let (payload, primary) = trials.run(Method::Bwt, &plan, |w| bwt::encode(data, sorter, w))?;
                sorted = Some(Frame::Bwt {
                    sorter,
                    raw_len,
                    primary,
                    checksum,
                    payload,
                });
            }
            let mut redundant = false;
            if let Some(model) = cm_trial {
                let work = trials.work(Method::Cm, &plan).paced(yard.as_ref().map(Pace::Sets));
                let payload = trials.run_with(&work, |w| cm::encode(data, model, w))?;
                redundant = payload.len() * REDUNDANT_RATIO < data.len();
                mixed = Some(Frame::Cm {
                    model,
                    raw_len,
                    checksum,
                    payload,
                });
            }
            Ok((lzma, sorted, mixed, redundant))
        })();
        if !matches!(others, Ok((.., redundant)) if wants_model(redundant)) {
            stop.cancel();
        }
        let (aside_lzma, aside_model) = aside.map(joined).unwrap_or((None, None));
        let model = handle.map(joined).or(aside_model);
        let (lzma, sorted, mixed, redundant) = others?;
        let lzma = match aside_lzma {
            Some(r) => Some(r?),
            None => lzma,
        };
        Ok((lzma, sorted, mixed, redundant, model))
    })?;
    if let Some(w) = &lzma_work {
        trials.done(w);
    }
    if let Some(Some(payload)) = lzma {
        consider(Frame::Lzma {
            raw_len,
            checksum,
            payload,
        });
    }
    for f in [sorted, mixed].into_iter().flatten() {
        consider(f);
    }
    if let Some(w) = &work {
        trials.done(w);
    }
    let mut stopped = false;
    if wants_model(redundant) {
        // the model's frame, and the pass it ran in
        let (frame, pass) = match model {
            Some(r) => (r?, work),
            None => {
                let pass = trials
                    .work(Method::Model, &plan)
                    .paced(yard.as_ref().map(Pace::Follows));
                (trials.run_with(&pass, model_trial)?, Some(pass))
            }
        };
        stopped = pass.is_some_and(|p| p.fell_behind());
        if let Some(f) = frame {
            consider(f);
        }
    }
    Ok((best, stopped))
}

/// A scoped thread's result, its panic passed on.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Decode one frame's content (`Frame::End` is not content) of a stream of format `version`.
pub(crate) fn decode_frame(backend: &dyn Backend, frame: &Frame, version: u8, work: &Work) -> Result<Vec<u8>> {
    let (data, checksum) = match frame {
        Frame::Stored { checksum, data } => (data.clone(), *checksum),
        Frame::Lzma {
            raw_len,
            checksum,
            payload,
        } => (lzma::decompress(payload, *raw_len as usize)?, *checksum),
        Frame::Cm {
            model,
            raw_len,
            checksum,
            payload,
        } => (
            cm::decode(payload, *raw_len as usize, version, *model, work)?,
            *checksum,
        ),
        Frame::Bwt {
            sorter,
            raw_len,
            primary,
            checksum,
            payload,
        } => (
            bwt::decode(payload, *raw_len as usize, *primary, *sorter, version, work)?,
            *checksum,
        ),
        Frame::Model {
            raw_len,
            n_tokens,
            checksum,
            payload,
        } => {
            let job = token_job(backend, *raw_len, *n_tokens, work, version);
            let data = if version <= 2 {
                legacy::decode_whole_tokens(&job, payload, version)?
            } else {
                Model::decode(&job, payload, version)?
            };
            (data, *checksum)
        }
        Frame::Direct {
            raw_len,
            n_tokens,
            checksum,
            payload,
        }
        | Frame::Blend {
            raw_len,
            n_tokens,
            checksum,
            payload,
        } => {
            let job = token_job(backend, *raw_len, *n_tokens, work, version);
            let data = if matches!(frame, Frame::Direct { .. }) {
                Direct::decode(&job, payload, version)?
            } else {
                Blend::decode(&job, payload, version)?
            };
            (data, *checksum)
        }
        Frame::End { .. } => return Ok(Vec::new()),
    };
    if chunk_checksum(&data) != checksum {
        return Err(Error::corrupt("frame checksum mismatch"));
    }
    Ok(data)
}

fn token_job<'a>(
    backend: &'a dyn Backend,
    raw_len: u32,
    n_tokens: u32,
    work: &'a Work<'a>,
    version: u8,
) -> TokenJob<'a> {
    TokenJob {
        backend,
        n_tokens: n_tokens as usize,
        raw_len: raw_len as usize,
        work,
        version,
    }
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
    /// the built-in model this stream names, where the caller's backend runs another
    own: Option<Box<dyn Backend>>,
}

impl Unpacker {
    /// The content of the next batch of frames, in order; `None` after the last stream.
    pub(crate) fn next_batch(
        &mut self,
        backend: &dyn Backend,
        opts: &Options,
        input: &mut dyn Read,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        if self.stream.is_none() {
            let Some(header) = next_header(input, self.started)? else {
                return Ok(None);
            };
            self.started = true;
            self.stats.packed_bytes += crate::format::HEADER_LEN as u64;
            // an archive of a model this backend does not run, but that once shipped inside nnz
            // as its default, decodes with that model on the CPU
            let own: Option<Box<dyn Backend>> = match crate::model::built_in(&header.model_id) {
                Some(b) if header.model_id != backend.model_info().id => {
                    Some(Box::new(crate::backend::cpu::CpuBackend::built_in_model(b)?))
                }
                _ => None,
            };
            let b = own.as_deref().unwrap_or(backend);
            let model = b.model_info();
            if header.model_id != model.id {
                return Err(Error::WrongModel {
                    archive: crate::model::hex(&header.model_id),
                    ours: crate::model::hex(&model.id),
                });
            }
            // the decoder cannot know which frame kinds follow: it sizes for context mixing
            let need = chunk_memory(&model.cfg, header.chunk_size as u64, true, false);
            let workers = Workers::new(b, header.chunk_size, need, opts.memory_limit, false)?;
            self.stream = Some(StreamState {
                workers,
                hash: header.content_hash(),
                header,
                total: 0,
                short: false,
                own,
            });
        }
        let st = self.stream.as_mut().unwrap();
        let backend = st.own.as_deref().unwrap_or(backend);
        let model = backend.model_info();
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
        let meter = opts.progress.as_deref().map(|r| Meter::new(r, self.stats.packed_bytes));
        let decoded = workers.map(&frames, |f| {
            let heavy = matches!(f, Frame::Model { .. } | Frame::Cm { .. } | Frame::Blend { .. });
            let need = chunk_memory(&model.cfg, f.raw_len(), heavy, false);
            let _permit = workers.permit(heavy, need)?;
            // the progress of a decompression is the archive read: a frame counts for its length
            let packed = f.encoded_len(version);
            let work = Work::metered(&opts.cancel, meter.as_ref(), packed, f.raw_len());
            let d = decode_frame(backend, f, version, &work);
            if let Some(m) = &meter {
                m.add(packed.saturating_sub(work.reported()));
            }
            d
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
    list_frames(input, &mut |_, _| {})
}

/// `list`, calling `visit` with every frame as it is read (`nnz -lv`).
pub fn list_frames(input: &mut dyn Read, visit: &mut dyn FnMut(&Header, &Frame)) -> Result<Vec<(Header, Stats)>> {
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
            visit(&header, &f);
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
