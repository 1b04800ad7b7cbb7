//! Context mixing over a stream of symbols coded bit by bit (docs/MODEL.md, "Context mixing").
//!
//! Each symbol of `nbits` bits is coded most significant bit first. For each bit, counters in
//! hashed contexts of the history (`contexts`), an order-0 counter and the match model
//! (`matcher`) give probabilities; three logistic mixers with differently chosen weight sets
//! combine them with an optional outside prediction (the transformer's, for tokens), a final mixer
//! combines the three, and three adaptive probability maps refine the result. Everything is
//! integer arithmetic, and encoder and decoder run the same steps, so they stay in lockstep.
//!
//! Two alphabets use it: tokens (with the transformer's prediction) in model frames, and bytes
//! (without) in CM frames. Deep CM frames add bit histories to the byte predictor (`history`):
//! two inputs per context and a fourth mixer; from format 11 on also a second, long match model
//! (`matcher::LongMatch`), from format 12 on bi-level images (`image`), from format 15 on runs
//! (`runs`), and from format 16 on JPEG pictures (`jpeg`).

pub mod boundary;
pub mod contexts;
pub mod counter;
mod history;
mod image;
mod jpeg;
pub mod logistic;
pub mod matcher;
pub mod mix;
mod numbers;
mod pages;
mod record;
mod runs;
pub mod sorted;
pub mod sorted_lean;
mod url;

use contexts::{
    byte_contexts, byte_model_contexts, token_contexts, Ctx, History, CLASS_FIELD, CLASS_NEWLINE, CLASS_WORD,
    URL_CONTEXTS,
};
use counter::{fmix, Counter, LineTable};
use history::Histories;
use image::ImageBits;
use jpeg::Jpeg;
use logistic::stretch;
use matcher::{LongMatch, Matcher};
use mix::{Apm, Mixer};
use numbers::Numbers;
use runs::Runs;

/// Counters stop slowing down after this many updates (they keep adapting at 1/31.5).
const LIMIT: u32 = 30;
/// The shared counter table has at most 2^21 lines (128 MiB).
const MAX_LINE_BITS: u32 = 21;
const MIXER_W0: i32 = 8000;
const FINAL_W0: i32 = 22000;
const FINAL_RATE: i32 = 2;
const APM_RATE: u32 = 6;
/// CM and deep CM frames: the mixers' learning rate, and from format 13 on (measured on the
/// bench: 4 to 8 about equal for CM frames, 3 and 6 worse than 4 for deep ones).
const BYTE_RATE: i32 = 2;
const BYTE_RATE_13: i32 = 4;
/// Blend frames: the mixers' learning rate, and the transformer input's initial weight (16.16).
const BLEND_RATE: i32 = 5;
/// The mixers' learning rate in blend frames of format 13 on (measured on alice29, asyoulik and
/// fields.c: 7 to 9 about equal, 5 and 12 worse).
const BLEND_RATE_13: i32 = 9;
/// The mixers' learning rate in blend frames of format 15 on, with bit histories (measured on the
/// text files of the bench: 6 and 7 about equal, 4, 5 and 9 worse).
const BLEND_RATE_15: i32 = 6;
const BLEND_EXT_W0: i32 = 50000;

fn ceil_log2(n: u64) -> u32 {
    64 - n.saturating_sub(1).leading_zeros()
}

/// What a predictor codes, and whether an outside prediction comes with every bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// tokens, with the transformer's prediction (model frames)
    Tokens,
    /// bytes, alone (CM frames)
    Bytes,
    /// bytes, alone, with bit histories (deep CM frames)
    DeepBytes,
    /// bytes, with the transformer's prediction turned into bit probabilities (blend frames)
    BlendedBytes,
}

impl Alphabet {
    /// Whether every bit comes with an outside prediction.
    fn ext(self) -> bool {
        matches!(self, Alphabet::Tokens | Alphabet::BlendedBytes)
    }
}

pub struct SymbolCm {
    nbits: u32,
    alphabet: Alphabet,
    /// the blend frame's position in the current token (0: its first byte), for weight selection
    depth: usize,
    /// whether the second mixer (weights by bit position and column) runs: not in mid CM frames
    column_mixer: bool,
    ctxs: Vec<Ctx>,
    hist: History,
    table: LineTable,
    hashes: Vec<u32>,
    lines: Vec<usize>,
    line_hashes: Vec<u32>,
    o0: Vec<Counter>,
    matcher: Matcher,
    mm: Vec<Counter>,
    /// the mixers' inputs (a multiple of 8: the last are zeros, never written)
    x: Vec<i32>,
    /// how many of `x` the mixers take this bit (a multiple of 8: all, or those before the models'
    /// that are idle: the URL model's outside a URL, then the image model's while it has no rows)
    live: usize,
    mixers: Vec<Mixer>,
    final_mixer: Mixer,
    /// the final mixer's inputs: the mixers' outputs (the image mixer's too, if any) and 256;
    /// `n_xf` of them
    xf: [i32; 9],
    n_xf: usize,
    apms: [Apm; 3],
    apm_bits: u32,
    // the current symbol
    k: u32,
    node: u32,
    expected: Option<u32>,
    mstate: usize,
    mm_used: Option<usize>,
    /// blend frames: the transformer's probability refined in the context of the previous byte
    /// and the bits of this one so far (an SSE stage that learns the chunk)
    sse: Option<Apm>,
    /// deep CM frames: the counters' bit histories, their maps and the fourth mixer's selector
    histories: Option<Histories>,
    /// deep CM frames of format 11 on: the second match model
    long_match: Option<LongMatch>,
    /// bi-level images (format 12 on)
    image: Option<ImageBits>,
    /// deep CM frames of format 15 on: the run model
    runs: Option<Runs>,
    /// deep and mid CM frames of format 16 on: the JPEG model
    jpeg: Option<Box<Jpeg>>,
    /// deep and mid CM frames of format 20 on: whether the last contexts are the URL model's
    urls: bool,
    /// how many of the contexts are looked up, read and trained this symbol: all, or outside a URL
    /// all but the URL model's (whose inputs are then 0)
    live_ctx: usize,
}

/// What a byte predictor without the transformer holds beyond format 3's byte mixer (CM and deep
/// CM frames; which, by frame kind and format version, is `frames::cm`'s choice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteModel {
    /// the record length finder (`record`; format 9 on)
    pub records: bool,
    /// bit histories (`history`; deep CM frames, format 10 on)
    pub histories: bool,
    /// the long match model (`matcher::LongMatch`; deep CM frames, format 11 on)
    pub long_match: bool,
    /// the bi-level image model (`image`; format 12 on)
    pub image: bool,
    /// format 13's revision: the contexts of `contexts::BYTE_CONTEXTS_13` (case-folded words in
    /// place of five contexts that earned nothing), and, tuned with them, mixers that learn at
    /// rate 4 instead of 2 and line tables of half the size (blend frames: at rate 9 instead of 5,
    /// tables unchanged)
    pub words: bool,
    /// mid CM frames (format 14 on), with `histories`: `contexts::mid_contexts`, each context
    /// giving its history map's input alone (not its counter's too), no mixer by column, and the
    /// image mixer running only while the image model has lines above
    pub mid: bool,
    /// the run model (`runs`; deep CM frames, format 15 on)
    pub runs: bool,
    /// the JPEG model (`jpeg`; deep and mid CM frames, format 16 on)
    pub jpeg: bool,
    /// the number model (`numbers`; deep and mid CM frames, format 17 on)
    pub numbers: bool,
    /// every mixer and APM warms up (`Mixer::warmed`, `Apm::with_warm_up`; format 18 on)
    pub warmup: bool,
    /// the URL model (`url`; deep and mid CM frames, format 20 on)
    pub urls: bool,
}

/// The byte mixer of blend frames, by format: format 6's contexts and rate, format 13's, format
/// 15's (format 13's contexts with a bit history beside each counter, its map's input alone as in
/// mid CM frames, and the long match model, at rate 6), or format 18's (format 15's with every
/// mixer and APM warming up, `Mixer::warmed`, `Apm::with_warm_up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlendModel {
    Format6,
    Format13,
    Format15,
    Format18,
}

impl SymbolCm {
    /// A predictor for tokens of `nbits` bits with the transformer's prediction for every bit.
    /// `n_symbols`: how many the chunk holds (it sizes the tables; the decoder reads it from the
    /// frame). `classes`: per token, its class bits (`classes_of`).
    pub fn for_tokens(nbits: u32, n_symbols: u64, classes: Vec<u8>) -> Self {
        Self::new(
            nbits,
            Alphabet::Tokens,
            n_symbols,
            classes,
            token_contexts(),
            ByteModel::default(),
        )
    }

    /// A predictor for bytes, without outside predictions, holding what `model` names.
    pub fn for_bytes(n_symbols: u64, model: ByteModel) -> Self {
        let alphabet = if model.histories {
            Alphabet::DeepBytes
        } else {
            Alphabet::Bytes
        };
        let mut cm = Self::for_byte_alphabet(alphabet, n_symbols, model);
        if model.records {
            cm.hist.find_records();
        }
        cm
    }

    /// A predictor for bytes with the transformer's prediction for every bit (blend frames); the
    /// frame tells it each byte's position in its token (`set_depth`).
    pub fn for_blended_bytes(n_symbols: u64, blend: BlendModel) -> Self {
        let histories = blend >= BlendModel::Format15;
        let model = ByteModel {
            words: blend != BlendModel::Format6,
            histories,
            long_match: histories,
            warmup: blend >= BlendModel::Format18,
            ..ByteModel::default()
        };
        Self::for_byte_alphabet(Alphabet::BlendedBytes, n_symbols, model)
    }

    /// A predictor of bytes with the contexts `model` names (format 12's or 13's).
    fn for_byte_alphabet(alphabet: Alphabet, n_symbols: u64, model: ByteModel) -> Self {
        Self::new(
            8,
            alphabet,
            n_symbols,
            byte_classes(),
            byte_model_contexts(model.mid, model.words, model.numbers, model.urls),
            model,
        )
    }

    /// The position in its token of the byte that is coded next (blend frames).
    pub fn set_depth(&mut self, depth: usize) {
        self.depth = depth;
    }

    /// Bytes of tables a predictor of `alphabet` allocates for `n_symbols` symbols of `nbits` bits:
    /// what a memory limit must allow per chunk being coded (within a few percent; a deep one
    /// counted with the long match model and the image model, which only formats 11 and 12 on
    /// have, and bytes with format 12's contexts and line tables, which are larger than format
    /// 13's).
    pub fn memory(nbits: u32, alphabet: Alphabet, n_symbols: u64) -> u64 {
        let nibbles = nbits.div_ceil(4) as u64;
        let need = ceil_log2(n_symbols.max(1) * nibbles);
        let line_bits = (need + line_headroom(alphabet, false)).clamp(10, MAX_LINE_BITS);
        let apm_bits = need.clamp(10, 16);
        let lines = (1u64 << line_bits) * std::mem::size_of::<[Counter; 16]>() as u64;
        let matcher = (1u64 << matcher::table_bits(need)) * 4;
        let history = n_symbols.min(1 << 24) * 4;
        // four bytes a value with its count (format 18 on: `Apm::with_warm_up`; two before)
        let apms = ((1u64 << nbits) + (2u64 << apm_bits)) * 33 * 4;
        let mixers = 40 * 8 * 256 * 4 * 4;
        // the most contexts of any format's (format 12's, or format 20's with numbers and URLs)
        let n_ctx = byte_contexts(false)
            .len()
            .max(byte_model_contexts(false, true, true, true).len());
        let deep = if alphabet == Alphabet::DeepBytes {
            // the mixers' inputs, padded to whole groups of eight as `new` does
            let n_in = (2 * n_ctx + 4 + runs::INPUTS + image::INPUTS).next_multiple_of(8);
            Histories::memory(n_ctx)
                + ((history::SETS + 40 * 8 * 256) * n_in * 4) as u64
                + LongMatch::memory(matcher::table_bits(need))
                + ImageBits::memory(n_in)
                + Runs::memory()
                + Jpeg::memory(n_symbols)
                + Numbers::memory()
        } else if alphabet == Alphabet::BlendedBytes {
            // format 15's: bit histories (one input per context), the long match model, a fourth
            // mixer; the inputs: the transformer's two, one per context, order 0, match, long
            // match, 256
            let n_in = (2 + n_ctx + 4).next_multiple_of(8);
            Histories::memory(n_ctx) + (history::SETS * n_in * 4) as u64 + LongMatch::memory(matcher::table_bits(need))
        } else {
            0
        };
        lines + matcher + history + apms + mixers + deep
    }

    /// `model`: what a byte predictor holds beyond the mixer (`records` is `for_bytes`' to start).
    fn new(nbits: u32, alphabet: Alphabet, n_symbols: u64, classes: Vec<u8>, ctxs: Vec<Ctx>, model: ByteModel) -> Self {
        assert!((1..=16).contains(&nbits));
        let nibbles = nbits.div_ceil(4) as u64;
        let need = ceil_log2(n_symbols.max(1) * nibbles);
        let line_bits = (need + line_headroom(alphabet, model.words)).clamp(10, MAX_LINE_BITS);
        let apm_bits = need.clamp(10, 16);
        let ext = alphabet.ext();
        let n_ctx = ctxs.len();
        let blend = alphabet == Alphabet::BlendedBytes;
        let deep = model.histories;
        // deep: the counter's and its history map's inputs per context (mid CM frames and blend
        // frames: the map's alone)
        let maps_only = model.mid || blend;
        let long_match = model.long_match;
        let n_in = n_ctx * (1 + (deep && !maps_only) as usize)
            + if model.runs { runs::INPUTS } else { 0 }
            + 3
            + ext as usize
            + blend as usize
            + long_match as usize
            + if model.image { image::INPUTS } else { 0 };
        // zeros after the inputs make whole groups of eight for the mixers' AVX2 routines; a zero
        // input adds nothing to a dot product and its weight never moves, so the mixing is the
        // same as without them
        let n_in = n_in.next_multiple_of(8);
        let nb = nbits as usize;
        // the match model's minimum length, and the mixers' learning rate
        let (min_match, rate) = match alphabet {
            Alphabet::Tokens => (3, 8),
            Alphabet::Bytes | Alphabet::DeepBytes => (6, if model.words { BYTE_RATE_13 } else { BYTE_RATE }),
            Alphabet::BlendedBytes if deep => (6, BLEND_RATE_15),
            Alphabet::BlendedBytes => (6, if model.words { BLEND_RATE_13 } else { BLEND_RATE }),
        };
        // weight sets: [bit position or byte node] x match state, bit position x (transformer
        // confidence or column), bit position x (previous token's class or previous byte)
        // (blend frames: the second is token depth x transformer confidence x bit position)
        let sets: &[usize] = match alphabet {
            Alphabet::Tokens => &[nb * 4, nb * 8, nb * 8],
            Alphabet::Bytes => &[256 * 4, nb * 8, nb * 256],
            // and a fourth by the bit histories of two contexts (mid: not the second)
            Alphabet::DeepBytes if model.mid => &[256 * 4, nb * 256, history::SETS],
            Alphabet::DeepBytes => &[256 * 4, nb * 8, nb * 256, history::SETS],
            Alphabet::BlendedBytes if deep => &[256 * 4, 4 * 8 * nb, nb * 256, history::SETS],
            Alphabet::BlendedBytes => &[256 * 4, 4 * 8 * nb, nb * 256],
        };
        let histories = deep.then(|| Histories::new(&ctxs, maps_only));
        let runs = model.runs.then(|| Runs::new(&ctxs));
        let n_xf = sets.len() + model.image as usize + if model.jpeg { jpeg::INPUTS } else { 0 } + 1;
        // the final mixer's weight sets: by bit position (and, with the JPEG model, whether it
        // predicts)
        let final_sets = nb * (1 + model.jpeg as usize);
        let mut cm = SymbolCm {
            nbits,
            alphabet,
            depth: 0,
            column_mixer: !model.mid,
            ctxs,
            hist: History::new(classes, n_symbols.min(1 << 24) as usize),
            table: LineTable::new(line_bits),
            hashes: vec![0; n_ctx],
            lines: vec![0; n_ctx],
            line_hashes: vec![0; n_ctx],
            o0: vec![Counter::INIT; 1 << nbits],
            matcher: Matcher::new(matcher::table_bits(need), min_match),
            mm: vec![Counter::INIT; matcher::STATES * 2],
            x: vec![0; n_in],
            live: n_in,
            mixers: sets
                .iter()
                .map(|&s| Mixer::new(n_in, s, rate, MIXER_W0).warmed(model.warmup))
                .collect(),
            // the mixers', the image mixer's (if any) and a bias
            final_mixer: Mixer::new(n_xf, final_sets, FINAL_RATE, FINAL_W0).warmed(model.warmup),
            xf: [0; 9],
            n_xf,
            apms: [1 << nbits, 1 << apm_bits, 1 << apm_bits].map(|c| Apm::with_warm_up(c, APM_RATE, model.warmup)),
            apm_bits,
            k: 0,
            node: 1,
            expected: None,
            mstate: 0,
            mm_used: None,
            sse: blend.then(|| Apm::with_warm_up(1 << 16, APM_RATE, model.warmup)),
            histories,
            long_match: long_match.then(|| LongMatch::new(matcher::table_bits(need), nbits)),
            image: model
                .image
                .then(|| ImageBits::new(n_in, rate, MIXER_W0, model.mid, model.warmup)),
            runs,
            jpeg: model.jpeg.then(|| Box::new(Jpeg::new(n_symbols, model.warmup))),
            urls: model.urls,
            live_ctx: n_ctx,
        };
        if model.numbers {
            cm.hist.find_numbers();
        }
        if model.urls {
            debug_assert!(cm.ctxs.ends_with(&URL_CONTEXTS));
            cm.hist.find_urls();
        }
        if blend {
            // the transformer starts trusted: a chunk's first bytes have nothing better
            for m in &mut cm.mixers {
                m.set_first_weight(BLEND_EXT_W0);
            }
        }
        cm.start_symbol();
        cm
    }

    fn start_symbol(&mut self) {
        self.expected = self.matcher.expected(&self.hist.syms);
        self.mstate = self.matcher.state();
        self.hist
            .hashes(&self.ctxs, self.expected, self.matcher.match_len(), &mut self.hashes);
        // outside a URL the URL model's contexts (the last) are left out
        self.live_ctx = self.ctxs.len()
            - if self.urls && !self.hist.in_url() {
                URL_CONTEXTS.len()
            } else {
                0
            };
        self.k = 0;
        self.node = 1;
        if let Some(im) = &mut self.image {
            im.start(&self.hist);
        }
        self.find_lines();
        if let Some(r) = &mut self.runs {
            r.start(&self.table, &self.lines, &self.line_hashes);
        }
    }

    /// At each nibble boundary: the line of every context for the nibble that follows.
    fn find_lines(&mut self) {
        let salt = self.node.wrapping_mul(0x2545_F491);
        let live = self.live_ctx;
        for (lh, &h) in self.line_hashes[..live].iter_mut().zip(&self.hashes) {
            *lh = fmix(h ^ salt);
            self.table.prefetch(*lh);
        }
        for (line, &lh) in self.lines[..live].iter_mut().zip(&self.line_hashes) {
            *line = self.table.find(lh);
        }
    }

    /// The node's slot in the current nibble's line (1..=15).
    #[inline]
    fn line_node(&self) -> usize {
        let b = self.k % 4;
        ((1 << b) | (self.node & ((1 << b) - 1))) as usize
    }

    /// The match model's predicted bit, while its symbol agrees with the bits coded so far.
    #[inline]
    fn expected_bit(&self) -> Option<u32> {
        matcher::agreeing_bit(self.expected?, self.nbits, self.k, self.node)
    }

    /// P(next bit = 1) in 12 bits, in [1, 4095]. `ext`: the outside prediction (12 bits), given
    /// iff the predictor was made for tokens.
    pub fn predict(&mut self, ext: Option<i32>) -> i32 {
        debug_assert_eq!(ext.is_some(), self.alphabet.ext());
        // the maps' contexts by orders 1 and 2: their rows are fetched while the mixers work
        let salted = |h: u32| (fmix(h ^ self.node.wrapping_mul(0x9E37_79B1)) >> (32 - self.apm_bits)) as usize;
        let (c1, c2) = (salted(self.hashes[0]), salted(self.hashes[1]));
        self.apms[1].prefetch(c1);
        self.apms[2].prefetch(c2);
        let eb = self.expected_bit();
        self.mm_used = eb.map(|b| self.mstate * 2 + b as usize);
        let ln = self.line_node();
        // the inputs, written in place: every one each bit, so the zeros after them stay zeros
        let x = &mut self.x[..];
        let mut at = 0;
        let ext_st = ext.map(|p| stretch(p.clamp(1, 4095)));
        if let Some(s) = ext_st {
            x[at] = s;
            at += 1;
            if let Some(a) = &mut self.sse {
                let prev = self.hist.last().unwrap_or(0) as usize;
                let p = a.refine(ext.unwrap().clamp(1, 4095), (prev << 8) | self.node as usize);
                x[at] = stretch(p);
                at += 1;
            }
        }
        // the URL model's contexts (the last, `urls`) are read with the others, and their inputs
        // then moved to the end (`url_x`)
        let (n_ctx, live) = (self.lines.len(), self.live_ctx);
        let per = self.histories.as_ref().map_or(1, |h| h.per_context());
        if let Some(h) = &mut self.histories {
            h.inputs(&self.table, &self.lines[..live], ln, &mut x[at..at + live * per]);
        } else {
            for (x, &line) in x[at..at + live].iter_mut().zip(&self.lines) {
                let c = self.table.at(line, ln);
                *x = if c.count() != 0 { stretch(c.p12()) } else { 0 };
            }
        }
        let base = n_ctx - if self.urls { URL_CONTEXTS.len() } else { 0 };
        let mut url_x = [0; 2 * URL_CONTEXTS.len()];
        let n_url = (n_ctx - base) * per;
        url_x[..(live - base) * per].copy_from_slice(&x[at + base * per..at + live * per]);
        at += base * per;
        if let Some(r) = &mut self.runs {
            r.inputs(self.k, self.node, &mut x[at..at + runs::INPUTS]);
            at += runs::INPUTS;
        }
        x[at] = stretch(self.o0[self.node as usize].p12());
        let mset = match self.mm_used {
            Some(j) => {
                x[at + 1] = stretch(self.mm[j].p12());
                2 + (self.matcher.match_len() >= 16) as usize
            }
            None => {
                x[at + 1] = 0;
                self.expected.is_some() as usize
            }
        };
        at += 2;
        if let Some(lm) = &mut self.long_match {
            x[at] = lm.input(self.nbits, self.k, self.node);
            at += 1;
        }
        x[at] = 256;
        at += 1;
        // then the image model's inputs, then the URL model's: each is all 0 while it is idle (the
        // image model without rows, the URL model outside a URL), and the mixers then mix and train
        // only the inputs before it (exact: a zero input adds nothing and its weight never moves;
        // every weight starts at the same value, so the order of the inputs does not matter
        // either). Outside URLs the URL model thus costs the mixers nothing.
        let mut idle_from = at;
        if let Some(im) = &mut self.image {
            let reference = self.table.at(self.lines[1], ln).p12();
            let inputs = (&mut x[at..at + image::INPUTS])
                .try_into()
                .expect("image::INPUTS inputs");
            im.inputs(self.k, self.node, reference, inputs);
            at += image::INPUTS;
            if im.has_rows() {
                idle_from = at;
            }
        }
        x[at..at + n_url].copy_from_slice(&url_x[..n_url]);
        at += n_url;
        if live > base {
            idle_from = at;
        }
        self.live = idle_from.next_multiple_of(8);
        debug_assert!(x[at..].iter().all(|&v| v == 0));

        let k = self.k as usize;
        let prev = self.hist.last();
        let conf = ext_st.map_or(0, |s| (s.unsigned_abs() as usize / 256).min(7));
        // the mixers' weight sets
        let (mut sel, mut n_sel): ([usize; 4], usize);
        if self.alphabet == Alphabet::Tokens {
            let cls = prev.map_or(0, |p| self.hist.class(p)) as usize & 7;
            sel = [k * 4 + mset, k * 8 + conf, k * 8 + cls, 0];
            n_sel = 3;
        } else {
            let col = self.hist.col();
            let colb = if col < 4 {
                col
            } else {
                (col.ilog2() as usize + 2).min(7)
            };
            let second = if self.alphabet == Alphabet::BlendedBytes {
                (self.depth.min(3) * 8 + conf) * 8 + k
            } else {
                k * 8 + colb
            };
            sel = [
                self.node as usize * 4 + mset,
                second,
                k * 256 + prev.map_or(0, |p| p as usize),
                0,
            ];
            n_sel = 3;
            if !self.column_mixer {
                sel[1] = sel[2];
                n_sel = 2;
            }
            if let Some(h) = &self.histories {
                sel[n_sel] = h.select(&self.table, &self.lines, ln);
                n_sel += 1;
            }
        }
        debug_assert_eq!(n_sel, self.mixers.len());
        let mut nf = 0;
        for (m, &s) in self.mixers.iter_mut().zip(&sel[..n_sel]) {
            self.xf[nf] = stretch(m.mix(&self.x[..self.live], s));
            nf += 1;
        }
        if let Some(im) = &mut self.image {
            self.xf[nf] = im.mix(&self.x[..self.live]);
            nf += 1;
        }
        let mut fset = k;
        if let Some(j) = &mut self.jpeg {
            if j.on() {
                self.xf[nf..nf + jpeg::INPUTS].copy_from_slice(&j.inputs());
                fset += self.nbits as usize;
            } else {
                self.xf[nf..nf + jpeg::INPUTS].fill(0);
            }
            nf += jpeg::INPUTS;
        }
        self.xf[nf] = 256;
        debug_assert_eq!(nf + 1, self.n_xf);
        let pr = self.final_mixer.mix(&self.xf[..self.n_xf], fset);
        if let Some(j) = self.jpeg.as_mut().filter(|j| j.predicted()) {
            // in a JPEG's scan the byte contexts of the APMs below mean nothing
            return j.refine(pr);
        }
        let deep = self.histories.is_some();

        let a0 = self.apms[0].refine(pr, self.node as usize);
        let a1 = self.apms[1].refine(pr, c1);
        let a2 = self.apms[2].refine(pr, c2);
        if deep {
            // measured: the maps by orders 1 and 2 earn more weight beside bit histories
            ((pr + a0 + 3 * a1 + 3 * a2 + 4) >> 3).clamp(1, 4095)
        } else {
            ((pr + a0 + a1 + a2 + 2) >> 2).clamp(1, 4095)
        }
    }

    /// Learn the bit just coded (after `predict`).
    pub fn update(&mut self, bit: u32) {
        let ln = self.line_node();
        let lines = &self.lines[..self.live_ctx];
        if let Some(h) = &mut self.histories {
            h.update(&mut self.table, lines, ln, bit, LIMIT);
        } else {
            for &line in lines {
                self.table.get(line, ln).update(bit, LIMIT);
            }
        }
        if let Some(r) = &mut self.runs {
            r.update(bit);
        }
        self.o0[self.node as usize].update(bit, LIMIT);
        if let Some(j) = self.mm_used {
            self.mm[j].update(bit, 1023);
        }
        if let Some(lm) = &mut self.long_match {
            lm.update(bit);
        }
        if let Some(im) = &mut self.image {
            im.update(&self.x[..self.live], bit);
        }
        for m in &mut self.mixers {
            m.update(&self.x[..self.live], bit);
        }
        self.final_mixer.update(&self.xf[..self.n_xf], bit);
        if !self.jpeg.as_ref().is_some_and(|j| j.predicted()) {
            for a in &mut self.apms {
                a.update(bit);
            }
        }
        if let Some(j) = &mut self.jpeg {
            j.update(bit);
        }
        if let Some(a) = &mut self.sse {
            a.update(bit);
        }
        self.advance(bit);
    }

    /// The match model's guess at the next symbol and its match length, at the start of a symbol.
    pub fn guess(&self) -> Option<(u32, u32)> {
        self.expected.map(|e| (e, self.matcher.match_len()))
    }

    /// Bits of the current symbol coded so far, with a leading 1.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The last complete symbol.
    pub fn last_symbol(&self) -> u32 {
        self.hist.last().unwrap_or(0)
    }

    /// Take a bit that was not coded (its other value was impossible): no model learns from it.
    pub fn skip(&mut self, bit: u32) {
        self.advance(bit);
    }

    fn advance(&mut self, bit: u32) {
        if self.expected_bit().is_some_and(|b| b != bit) {
            self.expected = None;
        }
        self.node = (self.node << 1) | bit;
        self.k += 1;
        if self.k == self.nbits {
            if let Some(r) = &mut self.runs {
                r.end(&mut self.table, self.node - (1 << self.nbits));
            }
            self.hist.push(self.node - (1 << self.nbits));
            self.matcher.update(&self.hist.syms);
            if let Some(lm) = &mut self.long_match {
                lm.push(&self.hist.syms);
            }
            self.start_symbol();
        } else if self.k.is_multiple_of(4) {
            self.find_lines();
        }
    }
}

/// How many more counter-table index bits than symbols x nibbles: about 8 lines per (context x
/// nibble) for bytes and 4 for tokens (which have fewer distinct contexts per symbol); measured,
/// bigger tables gain < 0.05%. With format 13's contexts (`words`), CM and deep CM frames have
/// half that (0.015% bigger, ~4% faster); blend frames keep it (half measured a little bigger).
fn line_headroom(alphabet: Alphabet, words: bool) -> u32 {
    match alphabet {
        Alphabet::Tokens => 2,
        Alphabet::Bytes | Alphabet::DeepBytes if words => 2,
        Alphabet::Bytes | Alphabet::DeepBytes | Alphabet::BlendedBytes => 3,
    }
}

/// The class bits of every byte: newline, field separator (space, tab, punctuation), word.
fn byte_classes() -> Vec<u8> {
    (0..=255u8)
        .map(|b| {
            let mut c = 0;
            if b == b'\n' {
                c |= CLASS_NEWLINE;
            }
            if b == b' ' || b == b'\t' || b.is_ascii_punctuation() {
                c |= CLASS_FIELD;
            }
            if b.is_ascii_alphanumeric() {
                c |= CLASS_WORD;
            }
            c
        })
        .collect()
}

/// The class bits of each of `n` tokens, from its bytes: `CLASS_NEWLINE` if it holds a line
/// break, `CLASS_FIELD` if it begins with a space, tab or punctuation.
pub fn classes_of<'a>(n: usize, piece: impl Fn(u32) -> Option<&'a [u8]>) -> Vec<u8> {
    (0..n as u32)
        .map(|s| match piece(s) {
            Some(b) if !b.is_empty() => {
                let mut c = 0;
                if b.contains(&b'\n') {
                    c |= CLASS_NEWLINE;
                }
                if b[0] == b' ' || b[0] == b'\t' || b[0].is_ascii_punctuation() {
                    c |= CLASS_FIELD;
                }
                c
            }
            _ => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(p1: i32, bit: u32) -> f64 {
        -((if bit == 1 { p1 } else { 4096 - p1 }) as f64 / 4096.0).log2()
    }

    #[test]
    fn repeated_bytes_become_cheap_and_runs_are_deterministic() {
        let block: Vec<u8> = (0..500u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let run = |data: &[u8], deep: bool, words: bool, mid: bool, runs: bool| {
            let model = ByteModel {
                records: true,
                histories: deep,
                long_match: deep,
                image: mid,
                words,
                mid,
                runs,
                jpeg: runs,
                numbers: runs,
                warmup: runs || mid,
                urls: runs,
            };
            let mut cm = SymbolCm::for_bytes(data.len() as u64, model);
            let mut ps = Vec::new();
            let mut second_half = 0.0;
            for (i, &b) in data.iter().enumerate() {
                for k in (0..8).rev() {
                    let bit = (b as u32 >> k) & 1;
                    let p = cm.predict(None);
                    assert!((1..4096).contains(&p));
                    if i >= 500 {
                        second_half += cost(p, bit);
                    }
                    ps.push(p);
                    cm.update(bit);
                }
                assert_eq!(cm.last_symbol(), b as u32);
            }
            (ps, second_half)
        };
        let data: Vec<u8> = block.iter().cycle().take(1000).copied().collect();
        let kinds = [
            (false, false, false, false),
            (true, false, false, false),
            (false, true, false, false),
            (true, true, false, false),
            (true, true, true, false),
            (true, true, false, true),
        ];
        for (deep, words, mid, runs) in kinds {
            let (a, bits) = run(&data, deep, words, mid, runs);
            assert!(
                bits < 0.3 * 8.0 * 500.0,
                "deep {deep}, words {words}, mid {mid}, runs {runs}: the repeat still costs {bits} bits"
            );
            assert_eq!(
                a,
                run(&data, deep, words, mid, runs).0,
                "two runs over the same bytes must predict the same"
            );
        }
    }

    /// The run model keeps, per context, the byte that followed it last and how often in a row,
    /// and its inputs say that byte's bits while they agree with the bits coded so far.
    #[test]
    fn run_model_remembers_what_followed_each_context() {
        let model = ByteModel {
            records: true,
            histories: true,
            long_match: true,
            image: true,
            words: true,
            mid: false,
            runs: true,
            jpeg: true,
            numbers: true,
            warmup: true,
            urls: true,
        };
        let mut cm = SymbolCm::for_bytes(1000, model);
        let order3 = runs::CONTEXTS.iter().position(|&c| c == Ctx::Order(3)).unwrap();
        let feed = |cm: &mut SymbolCm, text: &[u8]| {
            for &b in text {
                for k in (0..8).rev() {
                    cm.predict(None);
                    cm.update((b as u32 >> k) & 1);
                }
            }
        };
        let run_after = |cm: &SymbolCm| cm.runs.as_ref().unwrap().run(order3);
        feed(&mut cm, b"xabcd-abc");
        assert_eq!(run_after(&cm), (b'd' as u32, 1));
        feed(&mut cm, b"d-abc");
        assert_eq!(run_after(&cm), (b'd' as u32, 2));
        // the first bit of 'd' (0) is predicted: a negative input
        let mut x = [0; runs::INPUTS];
        cm.runs.as_mut().unwrap().inputs(0, 1, &mut x);
        assert!(x[order3] < 0, "{x:?}");
        // after a different byte the run starts again
        feed(&mut cm, b"e-abc");
        assert_eq!(run_after(&cm), (b'e' as u32, 1));
        // and a bit that disagrees with the byte silences it for the rest of the byte
        cm.runs.as_mut().unwrap().inputs(1, 0b11, &mut x);
        assert_eq!(x[order3], 0);
    }

    /// A bi-level picture (testdata/golden/rings.pbm.raw, a PBM's pixels): the image model must
    /// take a clear share off what the deep and the mid byte mixer cost without it, and predict
    /// the same twice.
    #[test]
    fn image_model_learns_bi_level_pictures() {
        let pic = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden/rings.pbm.raw")).unwrap();
        for mid in [false, true] {
            image_model_learns(&pic, mid);
        }
    }

    /// The byte mixer of deep CM frames (`mid`: of mid CM frames), with or without the image and
    /// JPEG models.
    fn deep_model(mid: bool, image: bool, jpeg: bool) -> ByteModel {
        ByteModel {
            records: true,
            histories: true,
            long_match: true,
            image,
            words: true,
            mid,
            runs: !mid,
            jpeg,
            numbers: false,
            warmup: false,
            urls: false,
        }
    }

    /// The ideal code length in bits of `data` coded by a byte mixer of `model`, and every
    /// prediction.
    fn code_cost(data: &[u8], model: ByteModel) -> (f64, Vec<i32>) {
        let mut cm = SymbolCm::for_bytes(data.len() as u64, model);
        let (mut bits, mut ps) = (0.0, Vec::new());
        for &b in data {
            for k in (0..8).rev() {
                let bit = (b as u32 >> k) & 1;
                let p = cm.predict(None);
                bits += cost(p, bit);
                ps.push(p);
                cm.update(bit);
            }
        }
        (bits, ps)
    }

    fn image_model_learns(pic: &[u8], mid: bool) {
        let run = |image: bool| code_cost(pic, deep_model(mid, image, false));
        let (without, _) = run(false);
        let (with, ps) = run(true);
        assert!(
            with < 0.9 * without,
            "mid {mid}: image model: {with:.0} bits, without: {without:.0}"
        );
        assert_eq!(ps, run(true).1, "two runs over the same picture must predict the same");
    }

    /// Baseline JPEGs cost at least 5% less with the JPEG model (4:2:0, restart markers, grayscale,
    /// 2x1 sampling), in deep and mid CM frames; a progressive one, which it does not read, costs
    /// exactly the same.
    #[test]
    fn jpeg_model_learns_baseline_pictures() {
        for mid in [false, true] {
            jpeg_model_learns(mid);
        }
    }

    fn jpeg_model_learns(mid: bool) {
        let root = env!("CARGO_MANIFEST_DIR");
        let bits = |pic: &[u8], jpeg: bool| code_cost(pic, deep_model(mid, true, jpeg)).0;
        for name in [
            "golden/picture.jpg",
            "jpeg/restarts.jpg",
            "jpeg/gray.jpg",
            "jpeg/h2v1.jpg",
        ] {
            let pic = std::fs::read(format!("{root}/testdata/{name}")).unwrap();
            let (with, without) = (bits(&pic, true), bits(&pic, false));
            assert!(
                with < 0.95 * without,
                "mid {mid}: {name}: {with:.0} bits with the JPEG model, {without:.0} without"
            );
        }
        let pic = std::fs::read(format!("{root}/testdata/jpeg/progressive.jpg")).unwrap();
        assert_eq!(bits(&pic, true), bits(&pic, false));
    }

    /// The warm-up (format 18 on) makes a short text and a short log cheaper in every byte
    /// mixer of CM frames: plain, mid and deep, each with the models it has from format 17 on.
    #[test]
    fn warm_up_makes_short_inputs_cheaper() {
        let golden =
            |name: &str| std::fs::read(format!("{}/testdata/golden/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let plain = ByteModel {
            records: true,
            words: true,
            ..ByteModel::default()
        };
        let mid = ByteModel {
            numbers: true,
            ..deep_model(true, true, true)
        };
        let deep = ByteModel {
            numbers: true,
            ..deep_model(false, true, true)
        };
        for name in ["sample.txt", "server.log"] {
            let data = golden(name);
            for (kind, model) in [("plain", plain), ("mid", mid), ("deep", deep)] {
                let with = code_cost(&data, ByteModel { warmup: true, ..model }).0;
                let without = code_cost(&data, model).0;
                assert!(
                    with < 0.98 * without,
                    "{kind}: {name}: {with:.0} bits with the warm-up, {without:.0} without"
                );
            }
        }
    }

    /// Log lines whose numbers change by small steps (a time stamp, a process id that grows by
    /// one or two, a request counter) cost at least 10% less with the number model, in deep and
    /// mid CM frames; sample.txt (prose, a little code, a table) costs within 1% of what it did.
    #[test]
    fn number_model_learns_counters_and_keeps_prose() {
        let mut rng = crate::test_support::xorshift64(7);
        let mut log = Vec::new();
        let (mut t, mut pid, mut req) = (36_000u32, 6_725u32, 100_000u32);
        for _ in 0..1500 {
            t += (rng() % 3) as u32;
            let stamp = format!("[{:02}:{:02}:{:02}]", t / 3600, t / 60 % 60, t % 60);
            let message = match rng() % 3 {
                0 => {
                    pid += 1 + (rng() % 2) as u32;
                    format!("notice child {pid} in slot {}", 6 + rng() % 5)
                }
                1 => {
                    req += 1;
                    format!("GET /item/{req} 200")
                }
                _ => "error worker state 6".to_string(),
            };
            log.extend(format!("{stamp} {message}\n").bytes());
        }
        let prose = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden/sample.txt")).unwrap();
        for mid in [false, true] {
            let bits = |data: &[u8], numbers: bool| {
                code_cost(
                    data,
                    ByteModel {
                        numbers,
                        ..deep_model(mid, true, true)
                    },
                )
                .0
            };
            let (with, without) = (bits(&log, true), bits(&log, false));
            assert!(
                with < 0.9 * without,
                "mid {mid}: log: {with:.0} bits with the number model, {without:.0} without"
            );
            let (with, without) = (bits(&prose, true), bits(&prose, false));
            assert!(
                with < 1.01 * without,
                "mid {mid}: sample.txt: {with:.0} bits with the number model, {without:.0} without"
            );
        }
    }

    /// A list of URLs from a few sites costs at least 2% less with the URL model, in deep and mid
    /// CM frames; a log and a text without URLs cost exactly what they did (outside a URL the
    /// model's contexts are left out and their inputs are 0).
    #[test]
    fn url_model_learns_sites_and_leaves_the_rest() {
        let mut rng = crate::test_support::xorshift64(11);
        let mut pick = |words: &[&'static str]| words[rng() as usize % words.len()];
        let sites = [
            "www.example.com",
            "docs.example.org",
            "files.example.net",
            "example.com:8080",
            "cdn.example.io",
        ];
        let dirs = [
            "docs", "pub", "archive", "images", "guide", "releases", "en", "api/v2", "blog", "2026",
        ];
        let names = [
            "index", "readme", "install", "notes", "faq", "overview", "setup", "changes", "about",
        ];
        let exts = [".html", ".txt", ".png", ".tar.gz", "", ".php"];
        let mut urls = Vec::new();
        for i in 0..3000 {
            let site = pick(&sites);
            // each site keeps to a few of the directories and names (a site's own vocabulary)
            let (d, n) = (pick(&dirs), pick(&names));
            let (d, n) = (
                &d[..d.len().min(site.len() % 4 + 2)],
                &n[..n.len().min(site.len() % 5 + 3)],
            );
            let url = format!(
                "{}://{site}/{d}/{}/{n}-{}{}",
                pick(&["http", "https"]),
                pick(&dirs),
                i % 97,
                pick(&exts)
            );
            urls.extend(url.bytes().chain([b'\n']));
        }
        let golden =
            |name: &str| std::fs::read(format!("{}/testdata/golden/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for mid in [false, true] {
            let bits = |data: &[u8], urls: bool| {
                let model = ByteModel {
                    numbers: true,
                    warmup: true,
                    urls,
                    ..deep_model(mid, true, true)
                };
                code_cost(data, model).0
            };
            let (with, without) = (bits(&urls, true), bits(&urls, false));
            assert!(
                with < 0.98 * without,
                "mid {mid}: URLs: {with:.0} bits with the URL model, {without:.0} without"
            );
            for name in ["sample.txt", "server.log"] {
                let data = golden(name);
                assert!(!data.windows(3).any(|w| w == b"://"));
                assert_eq!(bits(&data, true), bits(&data, false), "mid {mid}: {name}");
            }
        }
    }

    #[test]
    fn token_predictor_uses_the_outside_prediction() {
        // an outside model that is always right (P = 4000/4096 for the true bit) must be trusted
        let syms: Vec<u32> = (0..3000u32).map(|i| (i * 7919) % 300).collect();
        let mut cm = SymbolCm::for_tokens(9, syms.len() as u64, vec![0; 512]);
        let mut late = 0.0;
        for (i, &s) in syms.iter().enumerate() {
            for k in (0..9).rev() {
                let bit = (s >> k) & 1;
                let p = cm.predict(Some(if bit == 1 { 4000 } else { 96 }));
                if i >= 2000 {
                    late += cost(p, bit);
                }
                cm.update(bit);
            }
        }
        assert!(late / 1000.0 < 9.0 * 0.1, "{} bits per symbol", late / 1000.0);
    }
}
