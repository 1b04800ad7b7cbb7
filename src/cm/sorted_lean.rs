//! The lean predictor of fast BWT frames: the bytes of a block-sorted chunk coded with less work
//! a byte than `cm::sorted` (docs/MODEL.md, "Fast BWT frames").
//!
//! A byte first codes its run flag: whether it is the byte before it again, which in a transform
//! it mostly is. The flag's inputs are the last eight flags, the byte before it and the two bytes
//! before it (each with the run length), mixed by one small mixer and refined by one map. A byte
//! whose flag is 0 then codes its bits, most significant first, leaving out a last bit that would
//! make it the byte before it: five inputs — an order-0 counter, two order-1 counters (fast and
//! slow), an order-2 counter and the run model — and a bias go to one logistic mixer whose weight
//! set is chosen by the run length, the bit position and whether the bits so far agree with the
//! last byte; one adaptive probability map, by the same run state and the bits so far, refines the
//! result. The order-0, order-1 and run counters are 16-bit probabilities moved by a fixed shift
//! (no update counts); the order-2 counters sit in a 1 MiB table of nibble lines addressed by a
//! hash without a check (a collision shares a line), small enough to stay in a core's L2 cache.
//! A run of the same byte thus costs one well-predicted decision a byte instead of eight.

use super::counter::Counter;
use super::logistic::{squash, stretch_table};
use super::mix::Apm;
use super::sorted::run_bucket;
use crate::coder::Coder;
use crate::error::Result;

const INPUTS: usize = 6;
/// Counter shifts (rates 1/2^s).
const SHIFT_O0: u32 = 2;
const SHIFT_FAST: u32 = 4;
const SHIFT_SLOW: u32 = 7;
const O2_LIMIT: u32 = 30;
const SHIFT_RUN: u32 = 6;
/// The order-2 table: 2^O2_BITS lines of 16 counters (one line a context and nibble).
const O2_BITS: u32 = 14;
const RATE: i32 = 3;
const W0: i32 = 14000;
const APM_RATE: u32 = 7;
const SETS: usize = 8 * 8 * 2;
/// The run flag's tables: by order 2 (hashed), 2^FLAG_O2_BITS counters.
const FLAG_O2_BITS: u32 = 16;
const FLAG_INPUTS: usize = 4;
const FLAG_LIMIT: u32 = 60;
const SHIFT_HIST: u32 = 5;

/// A 16-bit probability of a 1, moved by 1/2^shift towards each bit.
#[inline]
fn learn(p: &mut u16, bit: u32, shift: u32) {
    let v = *p as i32;
    let target = (bit as i32) * 65535;
    *p = (v + ((target - v) >> shift)) as u16;
}

/// `mix::Mixer::mix`'s dot product of `N` inputs, in the stretched domain (clamped).
#[inline(always)]
fn dot<const N: usize>(x: &[i32; N], w: &[i32; N]) -> i32 {
    let dot: i64 = x.iter().zip(w).map(|(&x, &w)| x as i64 * w as i64).sum();
    (dot >> 16).clamp(-2047, 2047) as i32
}

/// `mix::Mixer::mix` of `N` inputs with weights `w`.
#[inline(always)]
fn mix<const N: usize>(x: &[i32; N], w: &[i32; N]) -> i32 {
    squash(dot(x, w))
}

/// `mix::Mixer::update`: weights `w` of the inputs `x` that predicted `pr`, trained on `bit`.
#[inline(always)]
fn train<const N: usize>(w: &mut [i32; N], x: &[i32; N], bit: u32, pr: i32) {
    let err = (((bit as i32) << 12) - pr) * RATE;
    for (w, &x) in w.iter_mut().zip(x) {
        *w = (*w + ((x * err + 8192) >> 14)).clamp(-(1 << 22), 1 << 22);
    }
}

/// Predicts each bit of a block-sorted chunk; `predict` then `update` for every bit.
pub struct LeanSortedCm {
    stretch: &'static [i16; 4096],
    o0: [u16; 256],
    /// by order 1 and the bits so far: the fast and the slow counter side by side
    o1: Vec<[u16; 2]>,
    o2: Vec<Counter>,
    run_t: [u16; 64],
    /// the mixer's weight sets: `mix::Mixer`'s arithmetic, written out over a fixed-size input
    /// array (measured: `Mixer`'s slices cost this predictor ~10% of its speed)
    w: Vec<[i32; INPUTS]>,
    /// the map over the mixer's output, by run bucket, agreement and the bits so far
    apm: Apm,
    x: [i32; INPUTS],
    c0: u32,
    depth: u32,
    c1: u32,
    c2: u32,
    run: u32,
    run_at: Option<(usize, u32)>,
    o2_base: usize,
    o2_at: usize,
    set: usize,
    pr_mix: i32,
    /// `run_bucket(run)`
    bucket: usize,
    /// the last 8 run flags (1: the byte was the one before it), newest lowest
    hist: u32,
    flag_hist: Vec<u16>,
    flag_o1: Vec<Counter>,
    flag_o2: Vec<Counter>,
    /// the flag's mixer, by run bucket and the last two flags: `mix::Mixer`'s arithmetic over a
    /// fixed-size input array, as `w`
    flag_w: Vec<[i32; FLAG_INPUTS]>,
    flag_apm: Apm,
}

impl Default for LeanSortedCm {
    fn default() -> Self {
        Self::new()
    }
}

impl LeanSortedCm {
    pub fn new() -> Self {
        LeanSortedCm {
            stretch: stretch_table(),
            o0: [32768; 256],
            o1: vec![[32768; 2]; 1 << 16],
            o2: vec![Counter::INIT; 16 << O2_BITS],
            run_t: [0xF000; 64],
            w: vec![[W0, W0, W0, W0, W0, W0]; SETS],
            apm: Apm::new(1 << 12, APM_RATE),
            x: [0; INPUTS],
            c0: 1,
            depth: 0,
            c1: 0,
            c2: 0,
            run: 0,
            run_at: None,
            o2_base: 0,
            o2_at: 0,
            set: 0,
            pr_mix: 2048,
            hist: 0,
            bucket: 0,
            flag_hist: vec![32768; 8 << 8],
            flag_o1: vec![Counter::INIT; 8 << 8],
            flag_o2: vec![Counter::INIT; 1 << FLAG_O2_BITS],
            flag_w: vec![[W0; FLAG_INPUTS]; 8 * 4],
            flag_apm: Apm::new(8 << 8, APM_RATE),
        }
    }

    /// Code one byte both ways (the encoder is given `byte`; the decoder learns it from the
    /// return value): first whether it is the byte before it again (the run flag), then, if not,
    /// its bits, most significant first; a bit that would make it the byte before it is not coded.
    #[inline]
    pub(crate) fn code_byte<C: Coder>(&mut self, c: &mut C, byte: u32) -> Result<u8> {
        let bucket = self.bucket;
        let f_hist = bucket << 8 | (self.hist & 255) as usize;
        let f_o1 = bucket << 8 | self.c1 as usize;
        let f_o2 = ((self.c2 << 8 | self.c1) << 3 | bucket as u32).wrapping_mul(0x9E37_79B1) >> (32 - FLAG_O2_BITS);
        let f_o2 = f_o2 as usize;
        let x = [
            self.st(self.flag_hist[f_hist]),
            self.stretch[self.flag_o1[f_o1].p12() as usize] as i32,
            self.stretch[self.flag_o2[f_o2].p12() as usize] as i32,
            256,
        ];
        let flag_set = bucket << 2 | (self.hist & 3) as usize;
        let pr = mix(&x, &self.flag_w[flag_set]);
        let p = self.flag_apm.refine(pr, f_o1);
        let q = ((pr + 3 * p + 2) >> 2).clamp(1, 4095);
        let flag = c.code_bit(q, (byte == self.c1) as u32)?;
        learn(&mut self.flag_hist[f_hist], flag, SHIFT_HIST);
        self.flag_o1[f_o1].update(flag, FLAG_LIMIT);
        self.flag_o2[f_o2].update(flag, FLAG_LIMIT);
        train(&mut self.flag_w[flag_set], &x, flag, pr);
        self.flag_apm.update(flag);
        if flag != 0 {
            let b = self.c1;
            self.end_byte(b, 1);
            return Ok(b as u8);
        }
        for k in (0..8).rev() {
            if self.depth == 7 && (self.c1 | 256) >> 1 == self.c0 {
                // the last bit that would make it the byte before it: the other one
                let bit = (self.c1 & 1) ^ 1;
                self.c0 = self.c0 << 1 | bit;
                break;
            }
            let q = self.predict();
            let bit = c.code_bit(q, (byte >> k) & 1)?;
            self.update(bit);
        }
        let b = self.c0 & 255;
        self.end_byte(b, 0);
        Ok(b as u8)
    }

    /// After byte `b` (whether it was the byte before it again: `flag`).
    #[inline]
    fn end_byte(&mut self, b: u32, flag: u32) {
        self.run = if b == self.c1 { self.run + 1 } else { 1 };
        self.bucket = run_bucket(self.run);
        self.hist = self.hist << 1 | flag;
        self.c2 = self.c1;
        self.c1 = b;
        self.c0 = 1;
        self.depth = 0;
        self.o2_base = self.o2_line(0);
    }

    /// Bytes of memory the predictor holds.
    pub fn memory() -> u64 {
        2 * 256 + 4 * (1 << 16) + (64 << O2_BITS) + 4 * INPUTS as u64 * SETS as u64 + 66 * (1 << 12)
    }

    #[inline]
    fn st(&self, p16: u16) -> i32 {
        self.stretch[(p16 >> 4) as usize] as i32
    }

    /// P(next bit = 1), 12 bits, in [1, 4095].
    #[inline(always)]
    fn predict(&mut self) -> i32 {
        let c0 = self.c0 as usize;
        let o1 = (self.c1 as usize) << 8 | c0;
        let [fast, slow] = self.o1[o1];
        self.x[0] = self.st(self.o0[c0]);
        self.x[1] = self.st(fast);
        self.x[2] = self.st(slow);
        let node = if self.depth < 4 {
            c0
        } else {
            (c0 & ((1 << (self.depth - 4)) - 1)) | 1 << (self.depth - 4)
        };
        self.o2_at = self.o2_base | node;
        self.x[3] = self.stretch[self.o2[self.o2_at].p12() as usize] as i32;
        let bucket = self.bucket;
        let agrees = (self.c1 | 256) >> (8 - self.depth) == self.c0;
        self.run_at = None;
        self.x[4] = 0;
        if agrees && self.run > 0 {
            let bit = (self.c1 >> (7 - self.depth)) & 1;
            let i = bucket * 8 + self.depth as usize;
            let s = self.st(self.run_t[i]);
            self.x[4] = if bit != 0 { s } else { -s };
            self.run_at = Some((i, bit));
        }
        self.x[5] = 256;
        self.set = (bucket * 8 + self.depth as usize) * 2 + agrees as usize;
        let d = dot(&self.x, &self.w[self.set]);
        self.pr_mix = squash(d);
        // the map reads the mixer's output where it is still in the stretched domain
        let p = self
            .apm
            .refine_stretched(d, (bucket << 9 | (agrees as usize) << 8) | c0);
        ((self.pr_mix + 3 * p + 2) >> 2).clamp(1, 4095)
    }

    /// Learn the coded bit.
    #[inline(always)]
    fn update(&mut self, bit: u32) {
        let c0 = self.c0 as usize;
        let o1 = (self.c1 as usize) << 8 | c0;
        learn(&mut self.o0[c0], bit, SHIFT_O0);
        let pair = &mut self.o1[o1];
        learn(&mut pair[0], bit, SHIFT_FAST);
        learn(&mut pair[1], bit, SHIFT_SLOW);
        self.o2[self.o2_at].update(bit, O2_LIMIT);
        if let Some((i, expected)) = self.run_at {
            learn(&mut self.run_t[i], (bit == expected) as u32, SHIFT_RUN);
        }
        train(&mut self.w[self.set], &self.x, bit, self.pr_mix);
        self.apm.update(bit);
        self.c0 = self.c0 << 1 | bit;
        self.depth += 1;
        if self.depth == 4 {
            self.o2_base = self.o2_line(self.c0);
        }
    }

    /// The order-2 line of the last two bytes and the high nibble `hi` (0 before it is known).
    #[inline]
    fn o2_line(&self, hi: u32) -> usize {
        let h = (hi << 16 | self.c2 << 8 | self.c1).wrapping_mul(0x9E37_79B1) >> (32 - O2_BITS);
        (h as usize) << 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cm::sorted::SortedCm;
    use crate::table::Interval;

    /// A coder that adds up the ideal code length of what the encoder gives it.
    struct Cost(f64);

    impl Coder for Cost {
        const DECODES: bool = false;
        fn code_bit(&mut self, p1: i32, bit: u32) -> Result<u32> {
            assert!((1..=4095).contains(&p1));
            self.0 -= ((if bit != 0 { p1 } else { 4096 - p1 }) as f64 / 4096.0).log2();
            Ok(bit)
        }
        fn code_interval(&mut self, _: u64, _: Interval, _: impl FnOnce(u64) -> Result<Interval>) -> Result<Interval> {
            unreachable!("the predictors of sorted bytes code bits")
        }
        fn only_zeros_left(&self) -> bool {
            false
        }
        fn coded_bytes(&self) -> u64 {
            (self.0 / 8.0) as u64
        }
    }

    fn lean(data: &[u8]) -> f64 {
        let (mut m, mut c) = (LeanSortedCm::new(), Cost(0.0));
        for &b in data {
            assert_eq!(m.code_byte(&mut c, b as u32).unwrap(), b);
        }
        c.0
    }

    fn full(data: &[u8]) -> f64 {
        let (mut m, mut c) = (SortedCm::new(data.len()), Cost(0.0));
        for &b in data {
            for k in (0..8).rev() {
                let bit = (b as u32 >> k) & 1;
                c.code_bit(m.predict(), bit).unwrap();
                m.update(bit);
            }
        }
        c.0
    }

    #[test]
    fn learns_runs_of_sorted_bytes() {
        // what a transform looks like: runs of 97 of six bytes, and one byte in 16 one of the six
        // at random (about 0.5 bits a byte of information)
        let mut seed = 1u32;
        let data: Vec<u8> = (0..20_000)
            .map(|i| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if seed >> 28 == 0 {
                    b"etaoin"[(seed >> 16) as usize % 6]
                } else {
                    b"etaoin"[(i / 97) % 6]
                }
            })
            .collect();
        let (bits, reference) = (lean(&data), full(&data));
        assert!(bits < 0.65 * data.len() as f64, "{bits} bits for {} bytes", data.len());
        // within 5% of the full predictor of BWT frames
        assert!(bits < 1.05 * reference, "{bits} bits, the full predictor {reference}");
        // and costs little more than 8 bits a byte on bytes it cannot predict
        let noise: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        assert!(lean(&noise) < 8.1 * noise.len() as f64);
    }
}
