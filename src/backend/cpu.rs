//! The CPU backend: the readable reference of docs/MODEL.md. Each step is a plain loop over
//! integers; SIMD comes from the compiler vectorising these loops (with AVX2 when the CPU has it,
//! detected at run time) and from three hand-written kernels (`simd`: the dot products of matrix
//! rows and attention keys, attention's weights from its scores, and its weighted sum of values;
//! each tested against its plain loop). Neither can change an integer result.

use super::simd::{attention_weights, dot_rows, weighted_rows, widen};
use super::{Backend, Stream};
use crate::error::{Error, Result};
use crate::model::arith::{clamp_i8, clamp_res, norm_row, rq, RoundDiv, GELU_HALF};
use crate::model::{BuiltIn, Linear, Model, ModelInfo, BUILT_IN};
use crate::table::freq_table;
use std::sync::OnceLock;

/// Positions per `feed` call (rows of one matrix product).
pub const BLOCK: usize = 64;

/// The model on the CPU: the reference every other backend matches bit for bit. It codes one
/// chunk per thread (rayon's pool).
pub struct CpuBackend {
    info: ModelInfo,
    /// the model, or for [`CpuBackend::built_in`] nothing until a chunk first needs it
    model: OnceLock<Model>,
    /// the built-in model file to load it from, if the model was not given
    file: Option<&'static BuiltIn>,
}

impl CpuBackend {
    /// A backend that runs `model`.
    pub fn new(model: Model) -> Self {
        CpuBackend {
            info: model.summary(),
            model: OnceLock::from(model),
            file: None,
        }
    }

    /// A backend that runs the built-in default model, loading it the first time a chunk needs
    /// it: the levels and frame kinds without the transformer never pay its start-up (about 15 ms).
    pub fn built_in() -> Result<Self> {
        Self::built_in_model(&BUILT_IN[0])
    }

    /// A backend that runs one of the built-in models ([`crate::model::BUILT_IN`]), loaded the
    /// first time a chunk needs it.
    pub fn built_in_model(file: &'static BuiltIn) -> Result<Self> {
        Ok(CpuBackend {
            info: file.info()?,
            model: OnceLock::new(),
            file: Some(file),
        })
    }

    fn loaded(&self) -> &Model {
        // a built-in model is part of the binary and `built_in_ids_are_the_files` loads each: this
        // cannot fail on a build whose tests passed
        self.model.get_or_init(|| {
            Model::from_bytes(self.file.expect("a backend without a model file holds its model").bytes)
                .expect("the built-in model loads")
        })
    }

    /// A CPU reference over a model owned elsewhere (used to check other backends).
    pub fn new_ref(model: &Model) -> CpuRef<'_> {
        CpuRef { model }
    }
}

/// The CPU backend borrowing its model.
pub struct CpuRef<'m> {
    model: &'m Model,
}

impl CpuRef<'_> {
    /// A fresh stream at the start of a chunk.
    pub fn stream(&self) -> CpuStream<'_> {
        CpuStream::new(self.model)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        let simd = if simd_avx2() { "AVX2" } else { "scalar" };
        format!("CPU ({} threads, {simd})", rayon::current_num_threads())
    }
    fn model(&self) -> &Model {
        self.loaded()
    }
    fn model_info(&self) -> ModelInfo {
        self.info.clone()
    }
    fn stream(&self) -> Box<dyn Stream + '_> {
        Box::new(CpuStream::new(self.loaded()))
    }
}

fn simd_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One chunk's state: how many positions were fed, and each layer's K/V ring of `cap` slots.
pub struct CpuStream<'m> {
    model: &'m Model,
    pos: usize,
    cap: usize,
    k: Vec<Vec<i8>>,
    v: Vec<Vec<i8>>,
    /// per layer, each head's distance biases backwards (`[n_heads][window]`), so that the keys
    /// of a window, oldest first, read theirs as one forward slice
    bias_rev: Vec<Vec<i32>>,
}

/// What a forward pass hands back per position.
enum Out<'a> {
    /// the frequency table (`vocab` entries)
    Tables(&'a mut [u32]),
    /// the output layer's input (`d_model` values)
    Head(&'a mut [i8]),
}

impl<'m> CpuStream<'m> {
    /// A stream at the start of a chunk.
    pub fn new(model: &'m Model) -> Self {
        let c = &model.cfg;
        // a block of new positions must not overwrite keys that its first position still needs
        let cap = c.window + BLOCK;
        let ring = vec![0i8; cap * c.kv_dim()];
        CpuStream {
            model,
            pos: 0,
            cap,
            k: vec![ring.clone(); c.n_layers],
            v: vec![ring; c.n_layers],
            bias_rev: model
                .layers
                .iter()
                .map(|l| l.bias.chunks(c.window).flat_map(|h| h.iter().rev().copied()).collect())
                .collect(),
        }
    }

    fn run(&mut self, inputs: &[u32], out: Out<'_>) -> Result<()> {
        if let Some(&bad) = inputs.iter().find(|&&t| t as usize >= self.model.cfg.vocab) {
            return Err(Error::corrupt(format!("token id {bad} out of range")));
        }
        #[cfg(target_arch = "x86_64")]
        if simd_avx2() {
            // SAFETY: the CPU supports AVX2 (checked just above)
            unsafe { self.forward_avx2(inputs, out) };
            return Ok(());
        }
        self.forward(inputs, out);
        Ok(())
    }
}

impl Stream for CpuStream<'_> {
    fn max_block(&self) -> usize {
        BLOCK
    }

    fn vocab(&self) -> usize {
        self.model.cfg.vocab
    }

    fn feed(&mut self, inputs: &[u32], tables: &mut [u32]) -> Result<()> {
        let c = &self.model.cfg;
        assert!(inputs.len() <= BLOCK && tables.len() == inputs.len() * c.vocab);
        self.run(inputs, Out::Tables(tables))
    }

    fn feed_head(&mut self, inputs: &[u32], head: &mut [i8]) -> Result<()> {
        let c = &self.model.cfg;
        assert!(inputs.len() <= BLOCK && head.len() == inputs.len() * c.d_model);
        self.run(inputs, Out::Head(head))
    }
}

impl CpuStream<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn forward_avx2(&mut self, inputs: &[u32], out: Out<'_>) {
        self.forward(inputs, out)
    }

    /// The forward pass over `inputs.len()` new positions (docs/MODEL.md, "The forward pass").
    #[inline(always)]
    fn forward(&mut self, inputs: &[u32], out: Out<'_>) {
        let m = self.model;
        let c = &m.cfg;
        let p = inputs.len();
        let d = c.d_model;
        // embedding: x = clamp_res(rq(E[t][i], m_e[t]))
        let mut x = vec![0i32; p * d];
        for (r, &t) in inputs.iter().enumerate() {
            let row = m.emb.row(t as usize);
            for i in 0..d {
                x[r * d + i] = clamp_res(rq(row[i] as i64, m.emb.m[t as usize]));
            }
        }
        let mut a = vec![0i8; p * d];
        let mut acc = Vec::new();
        let (qd, kvd, dh) = (c.q_dim(), c.kv_dim(), c.head_dim);
        let mut q = vec![0i8; p * qd];
        let mut o = vec![0i8; p * qd];
        let mut hid = vec![0i8; p * c.d_ff];
        let mut scratch = Scratch::default();
        for (l, layer) in m.layers.iter().enumerate() {
            norm_rows(&x, d, &mut a);
            matmul(&a, &layer.wq, &mut acc);
            requant_i8(&acc, &layer.wq, &mut q);
            for (w, ring) in [(&layer.wk, &mut self.k[l]), (&layer.wv, &mut self.v[l])] {
                matmul(&a, w, &mut acc);
                for r in 0..p {
                    let slot = (self.pos + r) % self.cap;
                    for j in 0..kvd {
                        ring[slot * kvd + j] = clamp_i8(rq(acc[r * kvd + j] as i64, w.m[j]));
                    }
                }
            }
            for r in 0..p {
                let t = self.pos + r;
                for h in 0..c.n_heads {
                    let g = h / (c.n_heads / c.n_kv_heads);
                    attend(
                        m,
                        (l, h, t),
                        &self.bias_rev[l][h * c.window..(h + 1) * c.window],
                        &q[r * qd + h * dh..r * qd + (h + 1) * dh],
                        (&self.k[l], &self.v[l], self.cap, kvd, g * dh),
                        &mut o[r * qd + h * dh..r * qd + (h + 1) * dh],
                        &mut scratch,
                    );
                }
            }
            matmul(&o, &layer.wo, &mut acc);
            add_residual(&mut x, &acc, &layer.wo);
            norm_rows(&x, d, &mut a);
            matmul(&a, &layer.w1, &mut acc);
            for (i, hv) in hid.iter_mut().enumerate() {
                let pre = rq(acc[i] as i64, layer.w1.m[i % c.d_ff]).clamp(-GELU_HALF, GELU_HALF - 1);
                *hv = m.gelu[(pre + GELU_HALF) as usize];
            }
            matmul(&hid, &layer.w2, &mut acc);
            add_residual(&mut x, &acc, &layer.w2);
        }
        norm_rows(&x, d, &mut a);
        self.pos += p;
        let tables = match out {
            Out::Tables(t) => t,
            Out::Head(h) => {
                h.copy_from_slice(&a);
                return;
            }
        };
        matmul(&a, &m.head, &mut acc);
        let mut logits = vec![0i64; c.vocab];
        for r in 0..p {
            for ((lg, &a), &mv) in logits
                .iter_mut()
                .zip(&acc[r * c.vocab..(r + 1) * c.vocab])
                .zip(&m.head.m)
            {
                *lg = rq(a as i64, mv);
            }
            freq_table(&logits, &m.exp_out, &mut tables[r * c.vocab..(r + 1) * c.vocab]);
        }
    }
}

#[inline(always)]
fn norm_rows(x: &[i32], d: usize, out: &mut [i8]) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        norm_row(xr, or);
    }
}

#[inline(always)]
fn requant_i8(acc: &[i32], w: &Linear, out: &mut [i8]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = clamp_i8(rq(acc[i] as i64, w.m[i % w.n_out]));
    }
}

#[inline(always)]
fn add_residual(x: &mut [i32], acc: &[i32], w: &Linear) {
    for (i, xv) in x.iter_mut().enumerate() {
        *xv = clamp_res(*xv as i64 + rq(acc[i] as i64, w.m[i % w.n_out]));
    }
}

/// Buffers `attend` reuses from call to call.
#[derive(Default)]
struct Scratch {
    q: Vec<i16>,
    s: Vec<i32>,
    z: Vec<i64>,
    e: Vec<i32>,
    rows: Vec<usize>,
    acc: Vec<i32>,
}

/// Attention of the query at position `t`, head `h` of layer `l`, over positions
/// `max(0, t - W + 1) ..= t`.
#[inline(always)]
fn attend(
    m: &Model,
    (l, h, t): (usize, usize, usize),
    bias_rev: &[i32],
    q: &[i8],
    kv: (&[i8], &[i8], usize, usize, usize),
    out: &mut [i8],
    sc: &mut Scratch,
) {
    let (kring, vring, cap, kvd, off) = kv;
    let layer = &m.layers[l];
    let w = m.cfg.window;
    let dh = q.len();
    let lo = (t + 1).saturating_sub(w);
    let n = t + 1 - lo;
    // the scores q . k_j: the window is one run of ring slots, or two where it wraps
    widen(q, &mut sc.q);
    sc.s.clear();
    sc.s.resize(n, 0);
    let first = lo % cap;
    let run = n.min(cap - first);
    dot_rows(&sc.q, &kring[first * kvd + off..], kvd, &mut sc.s[..run]);
    dot_rows(&sc.q, &kring[off..], kvd, &mut sc.s[run..]);
    // key j's distance bias is bias[h][t - j]: the head's first n biases backwards, which are the
    // last n of `bias_rev`
    sc.z.resize(n, 0);
    sc.e.resize(n, 0);
    let s = attention_weights(
        &sc.s,
        layer.qk_m[h],
        &bias_rev[w - n..],
        &m.exp_attn,
        &mut sc.z,
        &mut sc.e,
    );
    // the keys from the oldest of nonzero weight on, and where their values are (older keys of
    // weight 0 add nothing); key j's ring slot is j % cap, counted along rather than divided for
    let from = sc.e.iter().position(|&e| e != 0).unwrap_or(n);
    sc.rows.clear();
    let mut slot = (lo + from) % cap;
    for _ in from..n {
        sc.rows.push(slot * kvd + off);
        slot = if slot + 1 == cap { 0 } else { slot + 1 };
    }
    // |sum e_j v_j| <= W * 2^12 * 127 < 2^31 (docs/MODEL.md, "Bounds"), so i32 is exact
    sc.acc.resize(dh, 0);
    weighted_rows(&sc.e[from..], &sc.rows, vring, &mut sc.acc);
    // s <= W * 2^12 < 2^26 and |a| < 2^31: `RoundDiv` gives round_div's integers
    let s = RoundDiv::new(s);
    for (o, &a) in out.iter_mut().zip(&sc.acc) {
        *o = s.apply(a as i64) as i8;
    }
}

/// `acc[r][o] = sum_i a[r][i] * w[o][i]`, exact in i32 (|acc| <= n_in * 127^2 < 2^31). Output
/// rows go in blocks of about 16 KiB of weights, each block for every input row in turn, so a
/// block is read from memory once per call, not once per input row.
#[inline(always)]
fn matmul(a: &[i8], w: &Linear, acc: &mut Vec<i32>) {
    let n = w.n_in;
    let rows = a.len() / n;
    acc.clear();
    acc.resize(rows * w.n_out, 0);
    let mut widened = Vec::with_capacity(a.len());
    widen(a, &mut widened);
    let block = (16384 / n).max(8) / 8 * 8;
    for o in (0..w.n_out).step_by(block) {
        let end = (o + block).min(w.n_out);
        for (r, ar) in widened.chunks_exact(n).enumerate() {
            dot_rows(ar, &w.w[o * n..], n, &mut acc[r * w.n_out + o..r * w.n_out + end]);
        }
    }
}
