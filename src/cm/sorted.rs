//! The predictor of BWT frames: bytes of a block-sorted chunk (the Burrows–Wheeler transform of the
//! chunk) coded bit by bit, most significant first (docs/MODEL.md, "BWT frames").
//!
//! Sorting puts bytes that follow similar contexts next to each other, so the transformed chunk is
//! long runs of a few bytes, and short contexts of its own past predict it well: two order-0
//! counters (one that follows the last few bits, one slower), two order-1 counters (fast and
//! slow), an order-2 counter, and a run model that bets on the last byte coming again. One
//! logistic mixer (weight set chosen by the run length and the bit position) combines them and two
//! adaptive probability maps (by order 1, and by run length) refine the result. This is
//! bcm/bzip3-class modelling: a few table lookups a bit (about 1.7 MB/s a core on the dev machine).

use super::counter::{fmix, Counter, LineTable};
use super::logistic::stretch_table;
use super::mix::{Apm, Mixer};

/// Counter limits: how far each counter's rate falls (docs/MODEL.md, "BWT frames").
const LIMIT_O0_FAST: u32 = 1;
const LIMIT_FAST: u32 = 4;
const LIMIT_SLOW: u32 = 60;
const LIMIT_O2: u32 = 30;
const LIMIT_RUN: u32 = 255;
/// The order-2 table has between 2^8 and 2^17 lines of 64 bytes, by the chunk's length.
const O2_MIN_BITS: u32 = 8;
const O2_MAX_BITS: u32 = 17;
const INPUTS: usize = 7;
const RATE: i32 = 3;
const W0: i32 = 14000;
const APM_RATE: u32 = 7;

/// Run-length buckets of the run model and the mixer's weight sets (also `sorted_lean`'s).
pub(super) fn run_bucket(run: u32) -> usize {
    match run {
        0 | 1 => 0,
        2 => 1,
        3 => 2,
        4..=5 => 3,
        6..=9 => 4,
        10..=19 => 5,
        20..=49 => 6,
        _ => 7,
    }
}

/// Predicts each bit of a block-sorted chunk; `predict` then `update` for every bit.
pub struct SortedCm {
    stretch: &'static [i16; 4096],
    o0: Vec<Counter>,
    o0_fast: Vec<Counter>,
    fast: Vec<Counter>,
    slow: Vec<Counter>,
    o2: LineTable,
    o2_line: usize,
    run_t: Vec<Counter>,
    mixer: Mixer,
    apm1: Apm,
    apm2: Apm,
    x: [i32; INPUTS],
    /// the bits of the current byte so far, after a leading 1
    c0: u32,
    /// the bit position in the byte (0 = most significant)
    depth: u32,
    c1: u32,
    c2: u32,
    /// how many times `c1` came in a row
    run: u32,
    /// the run model's counter and expected bit, if it predicts this bit
    run_at: Option<(usize, u32)>,
    o2_hash: u32,
    /// this bit's order-1 context and order-2 line slot
    o1: usize,
    node: usize,
    pr_mix: i32,
}

impl SortedCm {
    /// The predictor of a chunk of `n` bytes (its tables sized to it).
    pub fn new(n: usize) -> Self {
        let bits = Self::o2_bits(n);
        let mut o2 = LineTable::new(bits);
        let o2_line = o2.find(fmix(0));
        SortedCm {
            stretch: stretch_table(),
            o0: vec![Counter::INIT; 256],
            o0_fast: vec![Counter::INIT; 256],
            fast: vec![Counter::INIT; 1 << 16],
            slow: vec![Counter::INIT; 1 << 16],
            o2,
            o2_line,
            run_t: vec![Counter(0xF000_0000); 8 * 8],
            mixer: Mixer::new(INPUTS, 8 * 8 * 2, RATE, W0),
            apm1: Apm::new(1 << 16, APM_RATE),
            apm2: Apm::new(1 << 12, APM_RATE),
            x: [0; INPUTS],
            c0: 1,
            depth: 0,
            c1: 0,
            c2: 0,
            run: 0,
            run_at: None,
            o2_hash: fmix(0),
            o1: 0,
            node: 1,
            pr_mix: 2048,
        }
    }

    fn o2_bits(n: usize) -> u32 {
        (usize::BITS - n.leading_zeros())
            .saturating_sub(3)
            .clamp(O2_MIN_BITS, O2_MAX_BITS)
    }

    /// Bytes of memory the predictor of a chunk of `n` bytes holds.
    pub fn memory(n: usize) -> u64 {
        4 * (256 + 2 * (1 << 16) + 64)
            + (64 << Self::o2_bits(n))
            + 2 * 33 * ((1 << 16) + (1 << 12))
            + 4 * 128 * INPUTS as u64
    }

    #[inline]
    fn st(&self, p: i32) -> i32 {
        self.stretch[p as usize] as i32
    }

    /// P(next bit = 1), 12 bits, in [1, 4095].
    #[inline]
    pub fn predict(&mut self) -> i32 {
        let c0 = self.c0 as usize;
        let o1 = (self.c1 as usize) << 8 | c0;
        let node = if self.depth < 4 {
            c0
        } else {
            (c0 & ((1 << (self.depth - 4)) - 1)) | 1 << (self.depth - 4)
        };
        (self.o1, self.node) = (o1, node);
        self.x[0] = self.st(self.o0[c0].p12());
        self.x[1] = self.st(self.fast[o1].p12());
        self.x[2] = self.st(self.slow[o1].p12());
        let p = self.o2.get(self.o2_line, node).p12();
        self.x[3] = self.st(p);
        // the run model: while the bits so far agree with the last byte, bet on its next bit
        let bucket = run_bucket(self.run);
        let agrees = (self.c1 | 256) >> (8 - self.depth) == self.c0;
        self.run_at = None;
        self.x[4] = 0;
        if agrees && self.run > 0 {
            let bit = (self.c1 >> (7 - self.depth)) & 1;
            let i = bucket * 8 + self.depth as usize;
            let s = self.st(self.run_t[i].p12());
            self.x[4] = if bit != 0 { s } else { -s };
            self.run_at = Some((i, bit));
        }
        self.x[5] = 256;
        self.x[6] = self.st(self.o0_fast[c0].p12());
        let set = (bucket * 8 + self.depth as usize) * 2 + agrees as usize;
        self.pr_mix = self.mixer.mix(&self.x, set);
        let p1 = self.apm1.refine(self.pr_mix, o1);
        let p2 = self
            .apm2
            .refine(self.pr_mix, (bucket << 9 | (agrees as usize) << 8) | c0);
        ((2 * self.pr_mix + 3 * p1 + 3 * p2 + 4) >> 3).clamp(1, 4095)
    }

    /// Learn the coded bit.
    #[inline]
    pub fn update(&mut self, bit: u32) {
        let c0 = self.c0 as usize;
        self.o0[c0].update(bit, LIMIT_SLOW);
        self.o0_fast[c0].update(bit, LIMIT_O0_FAST);
        self.fast[self.o1].update(bit, LIMIT_FAST);
        self.slow[self.o1].update(bit, LIMIT_SLOW);
        self.o2.get(self.o2_line, self.node).update(bit, LIMIT_O2);
        if let Some((i, expected)) = self.run_at {
            self.run_t[i].update((bit == expected) as u32, LIMIT_RUN);
        }
        self.mixer.update(&self.x, bit);
        self.apm1.update(bit);
        self.apm2.update(bit);
        self.c0 = self.c0 << 1 | bit;
        self.depth += 1;
        if self.depth == 8 {
            let byte = self.c0 & 255;
            self.run = if byte == self.c1 { self.run + 1 } else { 1 };
            self.c2 = self.c1;
            self.c1 = byte;
            self.c0 = 1;
            self.depth = 0;
            self.o2_hash = fmix(self.c2 << 8 | self.c1);
            self.o2_line = self.o2.find(self.o2_hash);
        } else if self.depth == 4 {
            self.o2_line = self.o2.find(self.o2_hash.wrapping_add(fmix(self.c0 + 1)));
        }
    }

    /// The last byte coded.
    pub fn last_byte(&self) -> u8 {
        self.c1 as u8
    }
}
