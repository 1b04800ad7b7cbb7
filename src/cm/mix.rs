//! Logistic mixing: a `Mixer` combines stretched probabilities with weights chosen by a small
//! context and trained online to reduce coding cost; an `Apm` (adaptive probability map) refines a
//! probability in a context by interpolating between learned values.

use super::logistic::{squash, stretch_table};
use super::pages::Table;

pub struct Mixer {
    n: usize,
    w: Vec<i32>,
    set: usize,
    pr: i32,
    rate: i32,
    /// whether this CPU has AVX2 and the mixer enough inputs to gain by it (the same sums,
    /// eight lanes at a time)
    avx2: bool,
}

/// The dot product of inputs and weights, exact in 64 bits (|x| < 2^12, |w| <= 2^22).
#[inline(always)]
fn dot(x: &[i32], w: &[i32]) -> i64 {
    x.iter().zip(w).map(|(&x, &w)| x as i64 * w as i64).sum()
}

/// One training step of weights `w` on inputs `x` with error `err`.
#[inline(always)]
fn train(w: &mut [i32], x: &[i32], err: i32) {
    for (w, &x) in w.iter_mut().zip(x) {
        *w = (*w + ((x * err + 8192) >> 14)).clamp(-(1 << 22), 1 << 22);
    }
}

/// `dot` and `train` compiled for AVX2, called only where `has_avx2()` said the CPU has it:
/// integer sums in any order are the same sums, so this changes the speed only.
mod avx2 {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn dot_avx2(x: &[i32], w: &[i32]) -> i64 {
        super::dot(x, w)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn train_avx2(w: &mut [i32], x: &[i32], err: i32) {
        super::train(w, x, err)
    }

    pub(super) fn dot(x: &[i32], w: &[i32]) -> i64 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only called where the CPU has AVX2 (`Mixer::avx2`).
        return unsafe { dot_avx2(x, w) };
        #[cfg(not(target_arch = "x86_64"))]
        super::dot(x, w)
    }

    pub(super) fn train(w: &mut [i32], x: &[i32], err: i32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`.
        return unsafe { train_avx2(w, x, err) };
        #[cfg(not(target_arch = "x86_64"))]
        super::train(w, x, err)
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Mixer {
    /// `n` inputs, `sets` weight sets, learning rate `rate`, initial weight `w0` (16.16).
    pub fn new(n: usize, sets: usize, rate: i32, w0: i32) -> Self {
        Mixer {
            n,
            w: vec![w0; n * sets],
            set: 0,
            pr: 2048,
            rate,
            // a few inputs are summed faster inline than through a call
            avx2: n >= 16 && has_avx2(),
        }
    }

    /// Start input 0 of every weight set at `w0`.
    pub fn set_first_weight(&mut self, w0: i32) {
        for set in self.w.chunks_exact_mut(self.n) {
            set[0] = w0;
        }
    }

    /// The mixed probability (12 bits) of inputs `x` (stretched, `n` of them) with weight set `set`.
    pub fn mix(&mut self, x: &[i32], set: usize) -> i32 {
        debug_assert_eq!(x.len(), self.n);
        self.set = set * self.n;
        let w = &self.w[self.set..self.set + self.n];
        let dot = if self.avx2 { avx2::dot(x, w) } else { dot(x, w) };
        self.pr = squash((dot >> 16).clamp(-2047, 2047) as i32);
        self.pr
    }

    /// Train the weight set of the last `mix` (same inputs `x`) on the coded bit.
    pub fn update(&mut self, x: &[i32], bit: u32) {
        let err = (((bit as i32) << 12) - self.pr) * self.rate;
        let w = &mut self.w[self.set..self.set + self.n];
        if self.avx2 {
            avx2::train(w, x, err)
        } else {
            train(w, x, err)
        }
    }
}

/// 33 learned probabilities (16 bits) per context at stretch points -2048, -1920, ..., 2048.
pub struct Apm {
    stretch: &'static [i16; 4096],
    t: Table<u16>,
    idx: usize,
    rate: u32,
}

impl Apm {
    pub fn new(contexts: usize, rate: u32) -> Self {
        let row: Vec<u16> = (0..33).map(|j| (squash((j - 16) * 128) * 16) as u16).collect();
        Apm {
            stretch: stretch_table(),
            t: {
                let mut t = Table::zeroed(contexts * 33);
                for r in t.chunks_exact_mut(33) {
                    r.copy_from_slice(&row);
                }
                t
            },
            idx: 0,
            rate,
        }
    }

    /// Ask the CPU to start loading context `cx`'s row (a hint only: results never depend on it).
    #[inline]
    pub fn prefetch(&self, cx: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let row = &self.t[cx * 33..cx * 33 + 33];
            // SAFETY: prefetching is a hint with no effect on memory; both addresses lie in `row`.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(row.as_ptr() as *const i8, _MM_HINT_T0);
                _mm_prefetch(row[32..].as_ptr() as *const i8, _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = cx;
    }

    /// Refine `pr` (12 bits) in context `cx`.
    #[inline]
    pub fn refine(&mut self, pr: i32, cx: usize) -> i32 {
        self.refine_stretched(self.stretch[pr as usize] as i32, cx)
    }

    /// Refine a prediction given in the stretched domain (`d` in [-2047, 2047]) in context `cx`.
    #[inline]
    pub fn refine_stretched(&mut self, d: i32, cx: usize) -> i32 {
        let d = d + 2048; // 1..=4095
        let j = (d >> 7) as usize;
        let wt = d & 127;
        let base = cx * 33 + j;
        self.idx = base + (wt >> 6) as usize;
        let p = (self.t[base] as i32 * (128 - wt) + self.t[base + 1] as i32 * wt) >> 11;
        p.clamp(1, 4095)
    }

    #[inline]
    pub fn update(&mut self, bit: u32) {
        let target = if bit != 0 { 65535 } else { 0 };
        let t = self.t[self.idx] as i32;
        self.t[self.idx] = (t + ((target - t) >> self.rate)) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cm::logistic::stretch;

    #[test]
    fn mixer_learns_to_trust_the_good_input() {
        let mut m = Mixer::new(2, 1, 24, 1 << 14);
        // input 0 always says "1 likely", input 1 says the opposite; the bit is always 1
        let x = [stretch(3900), stretch(200)];
        for _ in 0..2000 {
            m.mix(&x, 0);
            m.update(&x, 1);
        }
        assert!(m.mix(&x, 0) > 3900);
    }

    #[test]
    fn apm_starts_as_identity_and_adapts() {
        let mut a = Apm::new(2, 6);
        for p in [100, 1000, 2048, 3000, 4000] {
            assert!((a.refine(p, 1) - p).abs() < 40, "{p} -> {}", a.refine(p, 1));
        }
        for _ in 0..500 {
            a.refine(2048, 0);
            a.update(1);
        }
        assert!(a.refine(2048, 0) > 3500);
    }
}
