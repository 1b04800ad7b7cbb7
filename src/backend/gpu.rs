//! The GPU backend, over any `Device` (CUDA in the program, a CPU emulation in the tests): the
//! integer model of docs/MODEL.md as the kernels of kernels/, run for many chunks at once.
//!
//! Every chunk being coded holds a stream with a *slot*: its own K/V ring in one device buffer per
//! layer. A stream's `feed` does not launch anything itself; it queues its rows and waits. One
//! worker thread gathers the queued rows of all streams into a single batch — rows of different
//! chunks side by side, each row tagged with its slot and position — runs the forward pass over the
//! batch with one launch per step, and hands each stream its tables (or, for direct frames, just
//! the interval of each row's symbol). Encoding queues up to `GPU_BLOCK` positions per chunk
//! (teacher forcing); decoding queues one position per chunk, so each decoding step of every chunk
//! in flight is one batch.
//!
//! The batch starts when every live stream has queued its rows, or when `LINGER` has passed since
//! the first row was queued (a stream busy with other work does not hold the others up).
//!
//! Integer arithmetic makes each row's result independent of which rows share its batch, so the
//! tables equal the CPU's for any grouping; `GpuBackend::new` checks that on a short sequence
//! before anyone uses the device, and the tests check it through the emulation.

use super::cpu::{CpuBackend, BLOCK};
use super::device::{as_bytes, as_bytes_mut, upload_new, Arg, Device, Launch};
use super::{Backend, Stream};
use crate::error::{Error, Result};
use crate::model::{Linear, Model};
use crate::table::Interval;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Positions one stream feeds at once (the CPU feeds `BLOCK`; the tables do not depend on it).
pub const GPU_BLOCK: usize = 256;
/// How long a queued row waits for the other live streams before its batch starts anyway.
const LINGER: Duration = Duration::from_micros(300);
/// Most streams (chunks in flight) one backend serves at once.
const MAX_SLOTS: usize = 1024;
/// Most rows in one batch (keeps every kernel's element index below 2^31).
const MAX_ROWS: usize = 1 << 15;

/// Batches of at most this many rows run as recorded graphs when graphs are on (decoding steps;
/// big encoding batches gain little from them and would record too many shapes).
const GRAPH_MAX_ROWS: usize = 4096;

/// Default bound on the device memory the backend allocates (`--gpu-mem`).
pub const DEFAULT_MEM_LIMIT: u64 = 8 << 30;

/// How many streams and rows fit a device memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub slots: usize,
    pub max_rows: usize,
}

impl Limits {
    /// Split `budget` bytes between the weights, the activations of a batch (at most half of
    /// the rest, for at most `MAX_ROWS` rows) and one K/V ring per slot. Fails if not even one
    /// slot and one stream's block of rows fit.
    pub fn for_budget(model: &Model, budget: u64) -> Result<Limits> {
        let fixed = weight_bytes(model) as u64;
        let (row, slot) = (row_bytes(model) as u64, slot_bytes(model) as u64);
        let rest = budget.saturating_sub(fixed);
        let max_rows = (rest / 2 / row).min(MAX_ROWS as u64);
        let slots = (rest.saturating_sub(max_rows * row) / slot).min(MAX_SLOTS as u64);
        if max_rows < GPU_BLOCK as u64 || slots == 0 {
            return Err(Error::Usage(format!(
                "--gpu-mem {} MiB is too small: the model needs at least {} MiB",
                budget >> 20,
                (fixed + 2 * GPU_BLOCK as u64 * row + slot).div_ceil(1 << 20)
            )));
        }
        Ok(Limits {
            slots: slots as usize,
            max_rows: max_rows as usize,
        })
    }

    /// Device bytes in use at most.
    pub fn bytes(&self, model: &Model) -> u64 {
        (weight_bytes(model) + self.slots * slot_bytes(model) + self.max_rows * row_bytes(model)) as u64
    }
}

fn linear_bytes(l: &Linear) -> usize {
    l.w.len() + 4 * l.m.len()
}

fn weight_bytes(m: &Model) -> usize {
    let layers: usize = m
        .layers
        .iter()
        .map(|l| {
            [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2]
                .iter()
                .map(|x| linear_bytes(x))
                .sum::<usize>()
                + 4 * (l.qk_m.len() + l.bias.len())
        })
        .sum();
    layers + linear_bytes(&m.emb) + linear_bytes(&m.head) + m.gelu.len() + 4 * (m.exp_attn.len() + m.exp_out.len())
}

/// K/V ring slots per stream: a block of new positions must not overwrite keys its first
/// position still reads (as in the CPU backend).
fn ring_cap(m: &Model) -> usize {
    m.cfg.window + GPU_BLOCK
}

fn slot_bytes(m: &Model) -> usize {
    2 * m.cfg.n_layers * ring_cap(m) * m.cfg.kv_dim()
}

/// Device bytes per row of a batch: the row's metadata, activations and table.
fn row_bytes(m: &Model) -> usize {
    let c = &m.cfg;
    32 + 5 * c.d_model + 2 * c.q_dim() + c.d_ff + 4 * max_out(m) + 4 * c.vocab
}

fn max_out(m: &Model) -> usize {
    let c = &m.cfg;
    [c.q_dim(), c.kv_dim(), c.d_model, c.d_ff, c.vocab]
        .into_iter()
        .max()
        .unwrap()
}

struct DevLinear<M> {
    w: M,
    m: M,
    n_in: usize,
    n_out: usize,
}

struct DevLayer<M> {
    wq: DevLinear<M>,
    wk: DevLinear<M>,
    wv: DevLinear<M>,
    qk_m: M,
    bias: M,
    wo: DevLinear<M>,
    w1: DevLinear<M>,
    w2: DevLinear<M>,
    /// K and V rings of every slot: `slots × cap × kv_dim` bytes each
    k_ring: M,
    v_ring: M,
}

/// The model on the device.
struct Weights<M> {
    emb: DevLinear<M>,
    layers: Vec<DevLayer<M>>,
    head: DevLinear<M>,
    gelu: M,
    exp_attn: M,
    exp_out: M,
}

/// What a request wants back for each of its rows (kernels/freq.cu, `pick_forward`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// the whole table: `vocab` values per row
    Tables = 0,
    /// the interval of a given symbol: (sym, cum, freq) per row
    Intervals = 1,
    /// the symbol whose interval holds a given target: (sym, cum, freq), sym = vocab if none
    Search = 2,
    /// the output layer's input: `d_model` values per row (each an i8, as the low byte of a u32)
    Head = 3,
}

impl Want {
    /// The row's mode for `pick_forward` (0: it picks nothing).
    fn pick_mode(self) -> u32 {
        match self {
            Want::Tables | Want::Head => 0,
            w => w as u32,
        }
    }
}

/// One stream's queued rows.
struct Request {
    slot: u32,
    pos: u32,
    inputs: Vec<u32>,
    want: Want,
    /// per row: the symbol (Intervals) or the target (Search)
    args: Vec<u32>,
    reply: SyncSender<Result<Vec<u32>>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Request>,
    /// when the oldest pending request was queued
    since: Option<Instant>,
    free_slots: Vec<u32>,
    live: usize,
    shutdown: bool,
    /// the worker has stopped (it panicked, or the backend is going): no request is answered
    stopped: bool,
}

struct Shared<D: Device> {
    dev: D,
    model: Model,
    limits: Limits,
    /// replay recorded launch sequences (CUDA graphs) for batches up to GRAPH_MAX_ROWS rows
    graphs: bool,
    queue: Mutex<Queue>,
    /// the worker waits here for requests
    work: Condvar,
    /// streams wait here for a free slot
    slots: Condvar,
}

impl<D: Device> Shared<D> {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct GpuBackend<D: Device> {
    shared: Arc<Shared<D>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl<D: Device> GpuBackend<D> {
    /// Upload the model, start the worker, and check the device against the CPU reference, using
    /// at most `mem_limit` bytes of device memory. With `graphs`, each batch replays a recorded
    /// launch sequence (not yet measured on a GPU).
    pub fn new(dev: D, model: Model, mem_limit: u64, graphs: bool) -> Result<GpuBackend<D>> {
        let limits = Limits::for_budget(&model, mem_limit)?;
        Self::with_limits(dev, model, limits, graphs)
    }

    /// As `new`, with the slots and rows given (`max_rows` >= `GPU_BLOCK`), and graphs on or off.
    pub fn with_limits(dev: D, model: Model, limits: Limits, graphs: bool) -> Result<GpuBackend<D>> {
        assert!(limits.slots >= 1 && limits.max_rows >= GPU_BLOCK);
        let weights = upload(&dev, &model, limits.slots)?;
        let shared = Arc::new(Shared {
            dev,
            model,
            limits,
            graphs,
            queue: Mutex::new(Queue {
                free_slots: (0..limits.slots as u32).rev().collect(),
                ..Default::default()
            }),
            work: Condvar::new(),
            slots: Condvar::new(),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("nnz-gpu".into())
            .spawn(move || {
                // whatever happens, waiting streams must hear of it rather than wait forever
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_worker(&s, weights)));
                let mut q = s.lock();
                q.stopped = true;
                q.pending.clear(); // drops the reply channels: their streams get an error
            })
            .map_err(Error::Io)?;
        let backend = GpuBackend {
            shared,
            worker: Some(worker),
        };
        backend.self_check()?;
        Ok(backend)
    }

    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The device must give the CPU's tables on a sequence longer than the window and a block,
    /// fed in blocks of its own size (the CPU's are smaller).
    fn self_check(&self) -> Result<()> {
        let model = &self.shared.model;
        let v = model.cfg.vocab;
        let n = model.cfg.window + GPU_BLOCK + 37;
        let inputs: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 13) % (v as u32)).collect();
        let mut want = vec![0u32; n * v];
        let mut got = vec![0u32; n * v];
        let cpu = CpuBackend::new_ref(model);
        let mut a = cpu.stream();
        for (c, t) in inputs.chunks(BLOCK).zip(want.chunks_mut(BLOCK * v)) {
            a.feed(c, t)?;
        }
        let mut b = self.stream();
        for (c, t) in inputs.chunks(GPU_BLOCK).zip(got.chunks_mut(GPU_BLOCK * v)) {
            b.feed(c, t)?;
        }
        if want != got {
            return Err(Error::Usage(format!(
                "{}: results differ from the CPU reference",
                self.shared.dev.name()
            )));
        }
        Ok(())
    }
}

impl<D: Device> Drop for GpuBackend<D> {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl<D: Device> Backend for GpuBackend<D> {
    fn name(&self) -> String {
        let l = self.shared.limits;
        format!(
            "{} (up to {} chunks per batch, {} MiB of device memory)",
            self.shared.dev.name(),
            l.slots,
            l.bytes(&self.shared.model).div_ceil(1 << 20)
        )
    }
    fn model(&self) -> &Model {
        &self.shared.model
    }
    /// Streams mostly wait for the device, so more chunks than cores are in flight: four per
    /// thread (each holds its coder state on the host), at most one per slot.
    fn parallel_chunks(&self) -> usize {
        (4 * rayon::current_num_threads()).clamp(1, self.shared.limits.slots)
    }
    fn stream(&self) -> Box<dyn Stream + '_> {
        let mut q = self.shared.lock();
        let slot = loop {
            if let Some(s) = q.free_slots.pop() {
                break s;
            }
            q = self.shared.slots.wait(q).unwrap_or_else(|e| e.into_inner());
        };
        q.live += 1;
        Box::new(GpuStream {
            shared: &self.shared,
            slot,
            pos: 0,
        })
    }
}

struct GpuStream<'b, D: Device> {
    shared: &'b Shared<D>,
    slot: u32,
    pos: usize,
}

impl<D: Device> Stream for GpuStream<'_, D> {
    fn max_block(&self) -> usize {
        GPU_BLOCK
    }

    fn vocab(&self) -> usize {
        self.shared.model.cfg.vocab
    }

    fn feed(&mut self, inputs: &[u32], tables: &mut [u32]) -> Result<()> {
        assert!(tables.len() == inputs.len() * self.vocab());
        if !inputs.is_empty() {
            tables.copy_from_slice(&self.submit(inputs, Want::Tables, Vec::new())?);
        }
        Ok(())
    }

    fn feed_head(&mut self, inputs: &[u32], head: &mut [i8]) -> Result<()> {
        assert!(head.len() == inputs.len() * self.shared.model.cfg.d_model);
        if !inputs.is_empty() {
            for (h, g) in head.iter_mut().zip(self.submit(inputs, Want::Head, Vec::new())?) {
                *h = g as u8 as i8;
            }
        }
        Ok(())
    }

    fn feed_intervals(&mut self, inputs: &[u32], symbols: &[u32], out: &mut [Interval]) -> Result<()> {
        assert!(symbols.len() == inputs.len() && out.len() == inputs.len());
        if let Some(&bad) = symbols.iter().find(|&&s| s as usize >= self.vocab()) {
            return Err(Error::corrupt(format!("token id {bad} out of range")));
        }
        if !inputs.is_empty() {
            let got = self.submit(inputs, Want::Intervals, symbols.to_vec())?;
            for (o, g) in out.iter_mut().zip(got.chunks_exact(3)) {
                *o = Interval {
                    sym: g[0],
                    cum: g[1],
                    freq: g[2],
                };
            }
        }
        Ok(())
    }

    fn feed_search(&mut self, input: u32, target: u32) -> Result<Option<Interval>> {
        let g = self.submit(&[input], Want::Search, vec![target])?;
        Ok((g[0] < self.vocab() as u32).then_some(Interval {
            sym: g[0],
            cum: g[1],
            freq: g[2],
        }))
    }
}

impl<D: Device> GpuStream<'_, D> {
    /// Queue `inputs` (with what is wanted back for each) and wait for the worker's answer.
    fn submit(&mut self, inputs: &[u32], want: Want, args: Vec<u32>) -> Result<Vec<u32>> {
        let v = self.vocab();
        assert!(inputs.len() <= GPU_BLOCK);
        if let Some(&bad) = inputs.iter().find(|&&t| t as usize >= v) {
            return Err(Error::corrupt(format!("token id {bad} out of range")));
        }
        let pos = u32::try_from(self.pos + inputs.len())
            .map(|_| self.pos as u32)
            .map_err(|_| Error::Usage("chunk too long for the GPU backend".into()))?;
        let (reply, result) = sync_channel(1);
        {
            let mut q = self.shared.lock();
            if q.stopped {
                return Err(Error::Usage("the GPU worker stopped".into()));
            }
            q.since.get_or_insert_with(Instant::now);
            q.pending.push(Request {
                slot: self.slot,
                pos,
                inputs: inputs.to_vec(),
                want,
                args,
                reply,
            });
        }
        self.shared.work.notify_one();
        let out = result
            .recv()
            .map_err(|_| Error::Usage("the GPU worker stopped".into()))??;
        self.pos += inputs.len();
        Ok(out)
    }
}

impl<D: Device> Drop for GpuStream<'_, D> {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.free_slots.push(self.slot);
        q.live -= 1;
        drop(q);
        self.shared.slots.notify_one();
        // one fewer stream to wait for
        self.shared.work.notify_one();
    }
}

fn upload<D: Device>(dev: &D, model: &Model, slots: usize) -> Result<Weights<D::Mem>> {
    let lin = |l: &Linear| -> Result<DevLinear<D::Mem>> {
        Ok(DevLinear {
            w: upload_new(dev, &l.w)?,
            m: upload_new(dev, &l.m)?,
            n_in: l.n_in,
            n_out: l.n_out,
        })
    };
    let ring = slots * ring_cap(model) * model.cfg.kv_dim();
    let mut layers = Vec::new();
    for l in &model.layers {
        layers.push(DevLayer {
            wq: lin(&l.wq)?,
            wk: lin(&l.wk)?,
            wv: lin(&l.wv)?,
            qk_m: upload_new(dev, &l.qk_m)?,
            bias: upload_new(dev, &l.bias)?,
            wo: lin(&l.wo)?,
            w1: lin(&l.w1)?,
            w2: lin(&l.w2)?,
            k_ring: dev.alloc(ring)?,
            v_ring: dev.alloc(ring)?,
        });
    }
    Ok(Weights {
        emb: lin(&model.emb)?,
        head: lin(&model.head)?,
        gelu: upload_new(dev, &model.gelu)?,
        exp_attn: upload_new(dev, &model.exp_attn)?,
        exp_out: upload_new(dev, &model.exp_out)?,
        layers,
    })
}

/// The worker: take batches from the queue until the backend is dropped.
fn run_worker<D: Device>(s: &Shared<D>, w: Weights<D::Mem>) {
    let mut act: Option<Activations<D>> = None;
    while let Some(batch) = next_batch(s) {
        let rows: usize = batch.iter().map(|r| r.inputs.len()).sum();
        let result = (|| {
            if act.as_ref().is_none_or(|a| a.rows < rows) {
                act = None; // free the old buffers first
                act = Some(Activations::new(
                    &s.dev,
                    &s.model,
                    rows.next_power_of_two().min(s.limits.max_rows),
                )?);
            }
            forward(s, &w, act.as_mut().unwrap(), &batch)
        })();
        let v = s.model.cfg.vocab;
        match result {
            Ok((tables, picked, heads)) => {
                let d = s.model.cfg.d_model;
                let mut row = 0;
                for r in batch {
                    let n = r.inputs.len();
                    let answer = match r.want {
                        Want::Tables => tables[row * v..(row + n) * v].to_vec(),
                        Want::Head => heads[row * d..(row + n) * d].iter().map(|&h| h as u32).collect(),
                        _ => picked[3 * row..3 * (row + n)].to_vec(),
                    };
                    let _ = r.reply.send(Ok(answer));
                    row += n;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for r in batch {
                    let _ = r.reply.send(Err(Error::Usage(msg.clone())));
                }
            }
        }
    }
}

/// Wait for work; return the next batch (at most `max_rows` rows), or `None` at shutdown.
fn next_batch<D: Device>(s: &Shared<D>) -> Option<Vec<Request>> {
    let mut q = s.lock();
    loop {
        if !q.pending.is_empty() {
            let waited = q.since.map_or(Duration::ZERO, |t| t.elapsed());
            if q.pending.len() >= q.live || waited >= LINGER || q.shutdown {
                break;
            }
            q = s
                .work
                .wait_timeout(q, LINGER - waited)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        } else if q.shutdown {
            return None;
        } else {
            q = s.work.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
    let mut rows = 0;
    let mut take = 0;
    for r in &q.pending {
        if take > 0 && rows + r.inputs.len() > s.limits.max_rows {
            break;
        }
        rows += r.inputs.len();
        take += 1;
    }
    let batch: Vec<Request> = q.pending.drain(..take).collect();
    q.since = (!q.pending.is_empty()).then(Instant::now);
    Some(batch)
}

/// Device buffers for a batch of up to `rows` rows.
struct Activations<D: Device> {
    rows: usize,
    /// recorded launch sequences (CUDA graphs) by (rows, whether intervals are picked)
    graphs: HashMap<(usize, bool), D::Graph>,
    /// per row: input token, then slot, position, `Want` and its argument (5 × rows u32)
    meta: D::Mem,
    /// per row: (symbol, cum, freq) for rows that want an interval
    picked: D::Mem,
    x: D::Mem,
    a: D::Mem,
    acc: D::Mem,
    q: D::Mem,
    o: D::Mem,
    hid: D::Mem,
    tab: D::Mem,
}

impl<D: Device> Activations<D> {
    fn new(dev: &D, m: &Model, rows: usize) -> Result<Self> {
        let c = &m.cfg;
        Ok(Activations {
            rows,
            graphs: HashMap::new(),
            meta: dev.alloc(20 * rows)?,
            picked: dev.alloc(12 * rows)?,
            x: dev.alloc(4 * rows * c.d_model)?,
            a: dev.alloc(rows * c.d_model)?,
            acc: dev.alloc(4 * rows * max_out(m))?,
            q: dev.alloc(rows * c.q_dim())?,
            o: dev.alloc(rows * c.q_dim())?,
            hid: dev.alloc(rows * c.d_ff)?,
            tab: dev.alloc(4 * rows * c.vocab)?,
        })
    }
}

/// The forward pass over one batch. Returns the tables of all its rows (if any request wants
/// tables), the picked intervals of all rows (if any request wants intervals) and the output
/// layer's inputs of all rows (if any request wants them), row by row.
fn forward<D: Device>(
    s: &Shared<D>,
    w: &Weights<D::Mem>,
    b: &mut Activations<D>,
    batch: &[Request],
) -> Result<(Vec<u32>, Vec<u32>, Vec<u8>)> {
    let (dev, m) = (&s.dev, &s.model);
    let c = &m.cfg;
    let p: usize = batch.iter().map(|r| r.inputs.len()).sum();
    let mut meta = vec![0u32; 5 * p];
    let mut i = 0;
    for r in batch {
        for (k, &t) in r.inputs.iter().enumerate() {
            meta[i] = t;
            meta[p + i] = r.slot;
            meta[2 * p + i] = r.pos + k as u32;
            meta[3 * p + i] = r.want.pick_mode();
            meta[4 * p + i] = r.args.get(k).copied().unwrap_or(0);
            i += 1;
        }
    }
    let want_tables = batch.iter().any(|r| r.want == Want::Tables);
    let want_picks = batch.iter().any(|r| r.want.pick_mode() != 0);
    let want_heads = batch.iter().any(|r| r.want == Want::Head);
    dev.upload(&mut b.meta, as_bytes(&meta))?;
    // SAFETY: `Activations::new` sized every buffer for `p <= rows` rows
    if s.graphs && p <= GRAPH_MAX_ROWS {
        // the same launches with the same buffers recur for every batch of p rows: record them
        // once as a graph, then replay it (one submission instead of ~40)
        let key = (p, want_picks);
        if !b.graphs.contains_key(&key) {
            dev.capture_begin()?;
            let launched = unsafe { launch_steps(s, w, b, p, want_picks) };
            let graph = dev.capture_end();
            launched?;
            b.graphs.insert(key, graph?);
        }
        dev.replay(&b.graphs[&key])?;
    } else {
        unsafe { launch_steps(s, w, b, p, want_picks)? };
    }
    let mut tables = Vec::new();
    if want_tables {
        tables = vec![0u32; p * c.vocab];
        dev.download(&b.tab, as_bytes_mut(&mut tables))?;
    }
    let mut picked = Vec::new();
    if want_picks {
        picked = vec![0u32; 3 * p];
        dev.download(&b.picked, as_bytes_mut(&mut picked))?;
    }
    let mut heads = Vec::new();
    if want_heads {
        // the last norm's output, which the head's matmul read
        heads = vec![0u8; p * c.d_model];
        dev.download(&b.a, &mut heads)?;
    }
    Ok((tables, picked, heads))
}

/// Every launch of the forward pass over `p` rows whose metadata is in `b.meta`.
///
/// # Safety
/// `b` holds buffers for at least `p` rows.
unsafe fn launch_steps<D: Device>(
    s: &Shared<D>,
    w: &Weights<D::Mem>,
    b: &Activations<D>,
    p: usize,
    want_picks: bool,
) -> Result<()> {
    let (dev, m) = (&s.dev, &s.model);
    let c = &m.cfg;
    let (d, qd, kvd) = (c.d_model, c.q_dim(), c.kv_dim());
    let (pi, cap) = (p as i32, ring_cap(m) as i32);
    use Arg::{Mem, I32};
    // SAFETY (every launch below): the argument lists follow the kernels' signatures in
    // kernels/*.cu, and the caller promises buffers for `p` rows.
    unsafe {
        dev.launch(
            "embed_forward",
            Launch::elementwise(p * d),
            &[
                Mem(&b.meta),
                Mem(&w.emb.w),
                Mem(&w.emb.m),
                Mem(&b.x),
                I32(pi),
                I32(d as i32),
            ],
        )?;
        for layer in &w.layers {
            norm_rows(dev, &b.x, &b.a, p, d)?;
            matmul(dev, &b.a, &layer.wq, &b.acc, p)?;
            dev.launch(
                "requant_forward",
                Launch::elementwise(p * qd),
                &[Mem(&b.acc), Mem(&layer.wq.m), Mem(&b.q), I32(pi), I32(qd as i32)],
            )?;
            for (lin, ring) in [(&layer.wk, &layer.k_ring), (&layer.wv, &layer.v_ring)] {
                matmul(dev, &b.a, lin, &b.acc, p)?;
                dev.launch(
                    "kv_store_forward",
                    Launch::elementwise(p * kvd),
                    &[
                        Mem(&b.acc),
                        Mem(&lin.m),
                        Mem(ring),
                        Mem(&b.meta),
                        I32(pi),
                        I32(kvd as i32),
                        I32(cap),
                    ],
                )?;
            }
            let shape = Launch {
                grid: (p as u32, c.n_heads as u32, 1),
                block: (128, 1, 1),
                shared: (c.window * 8) as u32,
            };
            dev.launch(
                "attention_forward",
                shape,
                &[
                    Mem(&b.q),
                    Mem(&layer.k_ring),
                    Mem(&layer.v_ring),
                    Mem(&layer.qk_m),
                    Mem(&layer.bias),
                    Mem(&w.exp_attn),
                    I32(m.exp_attn.len() as i32),
                    Mem(&b.o),
                    Mem(&b.meta),
                    I32(pi),
                    I32(cap),
                    I32(c.window as i32),
                    I32(c.n_heads as i32),
                    I32(c.n_kv_heads as i32),
                    I32(c.head_dim as i32),
                ],
            )?;
            matmul(dev, &b.o, &layer.wo, &b.acc, p)?;
            residual(dev, &b.x, &b.acc, &layer.wo, p)?;
            norm_rows(dev, &b.x, &b.a, p, d)?;
            matmul(dev, &b.a, &layer.w1, &b.acc, p)?;
            dev.launch(
                "gelu_forward",
                Launch::elementwise(p * c.d_ff),
                &[
                    Mem(&b.acc),
                    Mem(&layer.w1.m),
                    Mem(&w.gelu),
                    Mem(&b.hid),
                    I32(pi),
                    I32(c.d_ff as i32),
                ],
            )?;
            matmul(dev, &b.hid, &layer.w2, &b.acc, p)?;
            residual(dev, &b.x, &b.acc, &layer.w2, p)?;
        }
        norm_rows(dev, &b.x, &b.a, p, d)?;
        matmul(dev, &b.a, &w.head, &b.acc, p)?;
        dev.launch(
            "freq_forward",
            Launch::per_row(p, 256),
            &[
                Mem(&b.acc),
                Mem(&w.head.m),
                Mem(&w.exp_out),
                I32(m.exp_out.len() as i32),
                Mem(&b.tab),
                I32(c.vocab as i32),
            ],
        )?;
        if want_picks {
            dev.launch(
                "pick_forward",
                Launch::per_row(p, 256),
                &[Mem(&b.tab), Mem(&b.meta), I32(pi), I32(c.vocab as i32), Mem(&b.picked)],
            )?;
        }
    }
    Ok(())
}

/// cpu::norm_rows
unsafe fn norm_rows<D: Device>(dev: &D, x: &D::Mem, a: &D::Mem, p: usize, d: usize) -> Result<()> {
    dev.launch(
        "norm_forward",
        Launch::per_row(p, 256),
        &[Arg::Mem(x), Arg::Mem(a), Arg::I32(d as i32)],
    )
}

/// cpu::matmul
unsafe fn matmul<D: Device>(dev: &D, a: &D::Mem, w: &DevLinear<D::Mem>, acc: &D::Mem, p: usize) -> Result<()> {
    let shape = Launch {
        grid: (w.n_out.div_ceil(16) as u32, p.div_ceil(16) as u32, 1),
        block: (16, 16, 1),
        shared: 0,
    };
    dev.launch(
        "matmul_forward",
        shape,
        &[
            Arg::Mem(a),
            Arg::Mem(&w.w),
            Arg::Mem(acc),
            Arg::I32(p as i32),
            Arg::I32(w.n_in as i32),
            Arg::I32(w.n_out as i32),
        ],
    )
}

/// cpu::add_residual
unsafe fn residual<D: Device>(dev: &D, x: &D::Mem, acc: &D::Mem, w: &DevLinear<D::Mem>, p: usize) -> Result<()> {
    dev.launch(
        "residual_forward",
        Launch::elementwise(p * w.n_out),
        &[
            Arg::Mem(x),
            Arg::Mem(acc),
            Arg::Mem(&w.m),
            Arg::I32(p as i32),
            Arg::I32(w.n_out as i32),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_bounds_slots_and_rows() {
        let m = Model::default_model().unwrap();
        let l = Limits::for_budget(&m, DEFAULT_MEM_LIMIT).unwrap();
        assert_eq!((l.slots, l.max_rows), (MAX_SLOTS, MAX_ROWS));
        assert!(l.bytes(&m) <= DEFAULT_MEM_LIMIT);
        let small = Limits::for_budget(&m, 64 << 20).unwrap();
        assert!(
            small.slots >= 1 && small.max_rows >= GPU_BLOCK && small.max_rows < MAX_ROWS,
            "{small:?}"
        );
        assert!(small.bytes(&m) <= 64 << 20);
        assert!(Limits::for_budget(&m, 4 << 20).is_err());
    }
}
