//! Logistic mixing: a `Mixer` combines stretched probabilities with weights chosen by a small
//! context and trained online to reduce coding cost; an `Apm` (adaptive probability map) refines a
//! probability in a context by interpolating between learned values.

use super::logistic::{squash, stretch_table};
use super::pages::Table;

pub struct Mixer {
    n: usize,
    w: Vec<i32>,
    /// the weight set of the last `mix`
    set: usize,
    pr: i32,
    rate: i32,
    /// with warm-up (`warmed`): per weight set, how many times it was trained (up to
    /// `WARMUP.len()`); empty without
    trained: Vec<u16>,
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

/// `dot` and `train` in AVX2, called only where `has_avx2()` said the CPU has it, on inputs
/// whose count is a multiple of 8: the same integers, eight lanes at a time.
mod avx2 {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    /// Each weight is split as `w = hi · 2^11 + lo` with `0 <= lo < 2^11`, so that every product
    /// and the sum of up to 128 of them fits in 32 bits (|x| < 2^12, |hi| <= 2^11): two 32-bit
    /// multiplies per lane instead of 64-bit ones, the same exact sum.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn dot_avx2(x: &[i32], w: &[i32]) -> i64 {
        let (mut hi, mut lo) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let low_bits = _mm256_set1_epi32((1 << 11) - 1);
        for (x, w) in x.chunks_exact(8).zip(w.chunks_exact(8)) {
            // SAFETY: both chunks hold 8 i32s; unaligned loads.
            let (xv, wv) = unsafe {
                (
                    _mm256_loadu_si256(x.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(w.as_ptr() as *const __m256i),
                )
            };
            hi = _mm256_add_epi32(hi, _mm256_mullo_epi32(xv, _mm256_srai_epi32(wv, 11)));
            lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(xv, _mm256_and_si256(wv, low_bits)));
        }
        // the eight lanes' total fits too (below 2^12 · 2^11 · 128 = 2^30)
        let sum = |v: __m256i| {
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            _mm_cvtsi128_si32(s) as i64
        };
        (sum(hi) << 11) + sum(lo)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn train_avx2(w: &mut [i32], x: &[i32], err: i32) {
        let e = _mm256_set1_epi32(err);
        let round = _mm256_set1_epi32(8192);
        let (lo, hi) = (_mm256_set1_epi32(-(1 << 22)), _mm256_set1_epi32(1 << 22));
        for (w, x) in w.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
            // SAFETY: both chunks hold 8 i32s; unaligned loads and store.
            unsafe {
                let xv = _mm256_loadu_si256(x.as_ptr() as *const __m256i);
                let wv = _mm256_loadu_si256(w.as_ptr() as *const __m256i);
                // |x · err| < 2^12 · 2^16: no overflow, as in `super::train`
                let step = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(xv, e), round), 14);
                let wv = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(wv, step), lo), hi);
                _mm256_storeu_si256(w.as_mut_ptr() as *mut __m256i, wv);
            }
        }
    }

    pub(super) fn dot(x: &[i32], w: &[i32]) -> i64 {
        debug_assert!(x.len() == w.len() && x.len().is_multiple_of(8) && x.len() <= 128);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only called where the CPU has AVX2 (`Mixer::avx2`).
        return unsafe { dot_avx2(x, w) };
        #[cfg(not(target_arch = "x86_64"))]
        super::dot(x, w)
    }

    pub(super) fn train(w: &mut [i32], x: &[i32], err: i32) {
        debug_assert!(x.len() == w.len() && x.len().is_multiple_of(8));
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
            trained: Vec::new(),
            // a few inputs are summed faster inline than through a call; the AVX2 routines
            // take whole groups of eight (predictors pad their inputs with zeros to get them)
            avx2: n >= 16 && n.is_multiple_of(8) && n <= 128 && has_avx2(),
        }
    }

    /// With `on` (format 18 on), every weight set warms up: its first trainings take larger
    /// steps (`WARMUP`), so that sets which are seldom chosen learn the chunk sooner.
    pub fn warmed(mut self, on: bool) -> Self {
        if on {
            self.trained = vec![0; self.w.len() / self.n];
        }
        self
    }

    /// Start input 0 of every weight set at `w0`.
    pub fn set_first_weight(&mut self, w0: i32) {
        for set in self.w.chunks_exact_mut(self.n) {
            set[0] = w0;
        }
    }

    /// The mixed probability (12 bits) of inputs `x` (stretched) with weight set `set`: all `n`
    /// inputs, or the first of them (a multiple of 8 for more than 8) when the rest are 0.
    pub fn mix(&mut self, x: &[i32], set: usize) -> i32 {
        debug_assert!(x.len() == self.n || (x.len() < self.n && x.len().is_multiple_of(8)));
        self.set = set;
        let w = &self.w[set * self.n..set * self.n + x.len()];
        let dot = if self.avx2 { avx2::dot(x, w) } else { dot(x, w) };
        self.pr = squash((dot >> 16).clamp(-2047, 2047) as i32);
        self.pr
    }

    /// Train the weight set of the last `mix` (same inputs `x`) on the coded bit.
    pub fn update(&mut self, x: &[i32], bit: u32) {
        let mut err = (((bit as i32) << 12) - self.pr) * self.rate;
        if let Some(n) = self.trained.get_mut(self.set) {
            if let Some(&extra) = WARMUP.get(*n as usize) {
                // |err| < 2^16 keeps `train`'s products in 32 bits
                err = ((err * (16 + extra as i32)) >> 4).clamp(-65535, 65535);
                *n += 1;
            }
        }
        let w = &mut self.w[self.set * self.n..self.set * self.n + x.len()];
        if self.avx2 {
            avx2::train(w, x, err)
        } else {
            train(w, x, err)
        }
    }
}

/// The warm-up of a mixer's weight set (`Mixer::warmed`): after `n` trainings of the set, its
/// error is scaled by `(16 + WARMUP[n]) / 16` (rounded down) and clamped to ±65535, where
/// `WARMUP[n] = 16 · 6 · 64 / (64 + n)` (rounded down; 1 at the table's last, n = 6080): seven
/// times the step at first, five times after 32 trainings, twice after 320, the mixer's own rate
/// from n = 6081 on. Measured alone (without the APMs' warm-up) on the dev bench (ideal code
/// length): deep CM frames −0.48%, mid −0.37%, CM −0.39%, the bits of blend frames on nine texts
/// −0.25%; every file smaller.
const WARMUP: [u8; 6081] = {
    let mut t = [0u8; 6081];
    let mut n = 0;
    while n < t.len() {
        t[n] = (16 * 6 * 64 / (64 + n)) as u8;
        n += 1;
    }
    t
};

/// 33 learned probabilities (16 bits) per context at stretch points -2048, -1920, ..., 2048.
pub struct Apm {
    stretch: &'static [i16; 4096],
    /// `contexts` rows of 33 learned values (16 bits each), without warm-up; empty with it
    t: Table<u16>,
    /// with warm-up (`with_warm_up`): the same rows, each value in the low 16 bits of an entry and
    /// how many times it was trained (up to `2^rate − APM_WARMUP`) in the bits above, so that
    /// one cache line serves both; empty without
    warm: Table<u32>,
    idx: usize,
    rate: u32,
}

/// An APM's warm-up (`Apm::with_warm_up`): after `n` trainings a value moves `1 / (n + 12)` of the way
/// to the bit (the quotient rounded toward zero) instead of `2^-rate`, while `n + 12 < 2^rate`.
/// Measured with the mixers' warm-up, on the dev bench (deep CM frames, ideal bytes): −0.21%;
/// starting at 1/6 or 1/8 gained less (−0.19%, −0.20%) and cost more on the PDF and the
/// picture.
const APM_WARMUP: u32 = 12;

/// A row's values before any training: the identity map, `squash` of 33 evenly spaced points.
fn first_row() -> [u16; 33] {
    std::array::from_fn(|j| (squash((j as i32 - 16) * 128) * 16) as u16)
}

impl Apm {
    pub fn new(contexts: usize, rate: u32) -> Self {
        Apm::with_warm_up(contexts, rate, false)
    }

    /// With `on` (format 18 on), the map warms up: each value's first trainings take larger
    /// steps (`APM_WARMUP`), so that contexts seen a few times are refined sooner. Only the table
    /// of the kind chosen is made.
    pub fn with_warm_up(contexts: usize, rate: u32, on: bool) -> Self {
        let row = first_row();
        let (mut t, mut warm) = (Table::zeroed(0), Table::zeroed(0));
        if on {
            // the counts fit in a byte
            assert!(rate <= 8);
            warm = Table::zeroed(contexts * 33);
            for r in warm.chunks_exact_mut(33) {
                for (e, &v) in r.iter_mut().zip(&row) {
                    *e = v as u32;
                }
            }
        } else {
            t = Table::zeroed(contexts * 33);
            for r in t.chunks_exact_mut(33) {
                r.copy_from_slice(&row);
            }
        }
        Apm {
            stretch: stretch_table(),
            t,
            warm,
            idx: 0,
            rate,
        }
    }

    /// Ask the CPU to start loading context `cx`'s row (a hint only: results never depend on it).
    #[inline]
    pub fn prefetch(&self, cx: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let (first, last) = if self.warm.is_empty() {
                let row = &self.t[cx * 33..cx * 33 + 33];
                (row.as_ptr() as *const i8, row[32..].as_ptr() as *const i8)
            } else {
                let row = &self.warm[cx * 33..cx * 33 + 33];
                (row.as_ptr() as *const i8, row[32..].as_ptr() as *const i8)
            };
            // SAFETY: prefetching is a hint with no effect on memory; both addresses lie in the
            // row. A warm row (132 bytes) may span three lines: the middle one is fetched by
            // the hardware's adjacent-line prefetcher or on use.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(first, _MM_HINT_T0);
                _mm_prefetch(last, _MM_HINT_T0);
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
        let (lo, hi) = if self.warm.is_empty() {
            (self.t[base] as i32, self.t[base + 1] as i32)
        } else {
            ((self.warm[base] & 0xFFFF) as i32, (self.warm[base + 1] & 0xFFFF) as i32)
        };
        let p = (lo * (128 - wt) + hi * wt) >> 11;
        p.clamp(1, 4095)
    }

    #[inline]
    pub fn update(&mut self, bit: u32) {
        let target = if bit != 0 { 65535 } else { 0 };
        if self.warm.is_empty() {
            let t = self.t[self.idx] as i32;
            self.t[self.idx] = (t + ((target - t) >> self.rate)) as u16;
            return;
        }
        let e = self.warm[self.idx];
        let (t, n) = ((e & 0xFFFF) as i32, e >> 16);
        self.warm[self.idx] = if n + APM_WARMUP < 1 << self.rate {
            (t + (target - t) / (n as i32 + APM_WARMUP as i32)) as u32 | (n + 1) << 16
        } else {
            (t + ((target - t) >> self.rate)) as u32 | n << 16
        };
    }

    /// The learned value `i` (16 bits) and how many times it was trained (0 without warm-up).
    #[cfg(test)]
    fn entry(&self, i: usize) -> (i32, u32) {
        if self.warm.is_empty() {
            (self.t[i] as i32, 0)
        } else {
            ((self.warm[i] & 0xFFFF) as i32, self.warm[i] >> 16)
        }
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

    /// The AVX2 routines must give the scalar ones' integers, at the extremes of the inputs'
    /// and weights' ranges too, for every whole number of groups of eight up to 128 inputs.
    #[test]
    fn avx2_dot_and_train_match_the_scalar_loops() {
        if !has_avx2() {
            return;
        }
        let mut seed = 0x9E37_79B9u32;
        let mut next = move |range: i32| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as i32 % (2 * range + 1) - range
        };
        for n in (8..=128).step_by(8) {
            for round in 0..50 {
                let (x, w): (Vec<i32>, Vec<i32>) = match round {
                    // every product at its largest, of either sign
                    0 => (vec![4095; n], vec![1 << 22; n]),
                    1 => (vec![-4095; n], vec![1 << 22; n]),
                    2 => (vec![4095; n], vec![-(1 << 22); n]),
                    _ => (
                        (0..n).map(|_| next(4095)).collect(),
                        (0..n).map(|_| next(1 << 22)).collect(),
                    ),
                };
                assert_eq!(avx2::dot(&x, &w), dot(&x, &w), "{n} inputs, round {round}");
                let err = next(1 << 15);
                let (mut a, mut b) = (w.clone(), w.clone());
                avx2::train(&mut a, &x, err);
                train(&mut b, &x, err);
                assert_eq!(a, b, "{n} inputs, round {round}");
            }
        }
    }

    /// A warmed-up weight set takes seven times the step at its first training, the table's
    /// shrinking multiple after that, and the mixer's own step once the table ends; the other
    /// sets keep their own counts.
    #[test]
    fn mixer_warm_up_takes_larger_first_steps() {
        let x = [stretch(3000), 256];
        let step = |warm: bool, trainings: usize, set: usize| {
            let mut m = Mixer::new(2, 2, 2, 1 << 14).warmed(warm);
            for _ in 0..trainings {
                m.mix(&x, set);
                m.update(&x, 1);
            }
            // the next training of set 0, on a fresh error
            let before = m.w[0];
            m.mix(&x, 0);
            m.update(&x, 1);
            m.w[0] - before
        };
        let plain = step(false, 0, 0);
        assert!(plain > 0);
        assert!(
            (step(true, 0, 0) - 7 * plain).abs() <= 7,
            "{} vs 7 x {plain}",
            step(true, 0, 0)
        );
        // trainings of the other set leave set 0 at its first step
        assert_eq!(step(true, 100, 1), step(true, 0, 0));
        assert_eq!(WARMUP[0], 96);
        assert_eq!(WARMUP[32], 64);
        assert_eq!(WARMUP[6080], 1);
        // past the table: the mixer's own step (the weights have moved, so compare the same state)
        let mut a = Mixer::new(2, 1, 2, 1 << 14);
        let mut b = Mixer::new(2, 1, 2, 1 << 14).warmed(true);
        b.trained[0] = WARMUP.len() as u16;
        for _ in 0..10 {
            assert_eq!(a.mix(&x, 0), b.mix(&x, 0));
            a.update(&x, 0);
            b.update(&x, 0);
        }
        assert_eq!(a.w, b.w);
    }

    /// A warmed-up APM value moves 1/12 of the way at its first training, then 1/13, ..., until
    /// the rate's own step, and only the value trained counts.
    #[test]
    fn apm_warm_up_steps_shrink_to_the_rate() {
        let mut a = Apm::with_warm_up(1, 6, true);
        let mut plain = Apm::new(1, 6);
        let p = a.refine(2048, 0);
        plain.refine(2048, 0);
        let t0 = a.entry(a.idx).0;
        a.update(1);
        plain.update(1);
        assert_eq!(a.entry(a.idx), (t0 + (65535 - t0) / 12, 1));
        assert_eq!(plain.entry(plain.idx).0, t0 + ((65535 - t0) >> 6));
        assert!(a.refine(2048, 0) > p);
        // 52 warm-up steps (12 + n < 64), then the rate's
        for _ in 1..52 {
            a.refine(2048, 0);
            a.update(0);
        }
        assert_eq!(a.entry(a.idx).1, 52);
        a.refine(2048, 0);
        let t = a.entry(a.idx).0;
        a.update(0);
        assert_eq!(a.entry(a.idx), (t + ((0 - t) >> 6), 52));
        assert_eq!((0..33).filter(|&i| a.entry(i).1 > 0).count(), 1);
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
