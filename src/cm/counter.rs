//! Adaptive bit probabilities: a `Counter` learns P(bit = 1) in a context with a rate that starts
//! at 1/1.5 and falls as 1/(n + 1.5) down to a floor, and a `LineTable` keeps counters for hashed
//! contexts in 64-byte lines, one line per context and half-byte ("nibble") of the symbol.

use super::logistic::{stretch, stretch_padded};
use super::pages::{Table, Zeroed};

/// `RECIP[n] = floor(2^17 / (2n + 3))`, i.e. 2^16 / (n + 1.5).
const fn recip() -> [u32; 1024] {
    let mut t = [0u32; 1024];
    let mut n = 0;
    while n < 1024 {
        t[n] = (1 << 17) / (2 * n as u32 + 3);
        n += 1;
    }
    t
}
pub(super) static RECIP: [u32; 1024] = recip();

/// P(1) in 22 bits (high) and an update count in 10 bits (low).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Counter(pub u32);

// SAFETY: a transparent u32; zero is a counter at P = 0 with no updates (lines start so, and
// `find` sets every counter it claims).
unsafe impl Zeroed for Counter {}

impl Counter {
    pub const INIT: Counter = Counter(1 << 31);

    /// P(1) in 12 bits.
    #[inline]
    pub fn p12(self) -> i32 {
        (self.0 >> 20) as i32
    }

    #[inline]
    pub fn count(self) -> u32 {
        self.0 & 1023
    }

    /// Move P(1) towards `bit` by 1/(n + 1.5); `n` stops growing at `limit` (<= 1023).
    #[inline]
    pub fn update(&mut self, bit: u32, limit: u32) {
        let n = self.0 & 1023;
        let p = (self.0 >> 10) as i64;
        let target = if bit != 0 { (1i64 << 22) - 1 } else { 0 };
        let p = p + (((target - p) * RECIP[n as usize] as i64) >> 16);
        let n = if n < limit { n + 1 } else { n };
        self.0 = ((p as u32) << 10) | n;
    }
}

/// A 32-bit mixing function (the murmur3 finaliser).
#[inline]
pub fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// Counters for hashed contexts. A line holds a check value (slot 0) and the 15 counters of the
/// binary tree over one nibble (slots 1..16, indexed by the node: 1, 2 + b0, 4 + 2·b0 + b1, ...).
/// A context hash `h` names line `h >> (32 - bits)` or its neighbour (index XOR 1); the check is
/// `h & 0xFFFF`. When neither holds the check, the one whose root counter has seen fewer updates
/// is cleared and taken. Line counters count to at most 30 (`LIMIT`), in bits 0..5; deep CM
/// frames keep a bit history in bits 5..10 (`history`), which plain ones leave 0.
pub struct LineTable {
    lines: Table<Line>,
    bits: u32,
    /// whether this CPU has AVX2 (`update_all` then updates eight counters at a time)
    avx2: bool,
}

type Line = [Counter; 16];

impl LineTable {
    pub fn new(bits: u32) -> Self {
        LineTable {
            lines: Table::zeroed(1 << bits),
            bits,
            avx2: super::mix::has_avx2(),
        }
    }

    /// Ask the CPU to start loading the lines `find(h)` will look at (a hint only: results never
    /// depend on it). Issuing all of a symbol's prefetches before the first `find` overlaps their
    /// cache misses.
    #[inline]
    pub fn prefetch(&self, h: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            // both lines `find` may check: the one the hash names first, where it mostly ends,
            // and its neighbour (waiting for that one was a third of `find`'s time)
            let i = (h >> (32 - self.bits)) as usize;
            let lines = &self.lines;
            // SAFETY: prefetching is a hint with no effect on memory; both point into `lines`.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(lines[i..].as_ptr() as *const i8, _MM_HINT_T0);
                _mm_prefetch(lines[i ^ 1..].as_ptr() as *const i8, _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// The line for context hash `h`, found or freshly claimed (an index below 2^21).
    #[inline]
    pub fn find(&mut self, h: u32) -> u32 {
        self.find_index(h) as u32
    }

    #[inline]
    fn find_index(&mut self, h: u32) -> usize {
        let i = (h >> (32 - self.bits)) as usize;
        let check = Counter(h & 0xFFFF);
        let lines = &mut self.lines;
        if lines[i][0] == check {
            return i;
        }
        let j = i ^ 1;
        if lines[j][0] == check {
            return j;
        }
        let k = if lines[j][1].line_count() < lines[i][1].line_count() {
            j
        } else {
            i
        };
        let line = &mut lines[k];
        line[0] = check;
        for c in &mut line[1..] {
            *c = Counter::INIT;
        }
        k
    }

    /// The counter at slot `node` of `line`.
    #[inline]
    pub fn at(&self, line: u32, node: usize) -> Counter {
        self.lines[line as usize][node]
    }

    #[inline]
    pub fn get(&mut self, line: u32, node: usize) -> &mut Counter {
        &mut self.lines[line as usize][node]
    }

    /// Update the counter at slot `node` of every line of `lines` on `bit`, one line after the
    /// other (a line may come twice: the second update then starts from the first's result), as
    /// `Counter::update` does, or with `history` as `Counter::update_with_history` does.
    #[inline]
    pub fn update_all(&mut self, lines: &[u32], node: usize, bit: u32, limit: u32, history: bool) {
        debug_assert!(limit < 32 && node < 16);
        let mut done = 0;
        if self.avx2 {
            for group in lines.chunks_exact(8) {
                // SAFETY: only where the CPU has AVX2; the lines came from `find`.
                if !unsafe { self.update_eight_avx2(group, node, bit, limit, history) } {
                    break;
                }
                done += 8;
            }
        }
        for &line in &lines[done..] {
            let c = self.get(line, node);
            if history {
                c.update_with_history(bit, limit);
            } else {
                c.update(bit, limit);
            }
        }
    }

    /// `update_all` for eight lines that are all different (else it does nothing and says so),
    /// in 32-bit lanes: `(d · r) >> 16` for the 23-bit difference `d` and reciprocal `r < 2^16`
    /// is `(d_hi · r + ((d_lo · r) >> 8)) >> 8` with `d = d_hi · 2^8 + d_lo`, `0 <= d_lo < 2^8`,
    /// exactly, and every term fits in 32 bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn update_eight_avx2(&mut self, group: &[u32], node: usize, bit: u32, limit: u32, history: bool) -> bool {
        use std::arch::x86_64::*;
        let set = _mm256_set1_epi32;
        // SAFETY: `group` holds 8 u32s.
        let line = unsafe { _mm256_loadu_si256(group.as_ptr() as *const __m256i) };
        // eight different lines: no lane equals the lane 1, 2, 3 or 4 places on (which covers
        // every pair)
        let mut same = _mm256_setzero_si256();
        for r in 1..=4 {
            let turn = _mm256_setr_epi32(r, r + 1, r + 2, r + 3, r + 4, r + 5, r + 6, r + 7);
            let turn = _mm256_and_si256(turn, set(7));
            same = _mm256_or_si256(same, _mm256_cmpeq_epi32(line, _mm256_permutevar8x32_epi32(line, turn)));
        }
        if _mm256_movemask_epi8(same) != 0 {
            return false;
        }
        let slot = _mm256_add_epi32(_mm256_slli_epi32(line, 4), set(node as i32));
        let counters = self.lines.as_flattened_mut();
        // SAFETY: each slot is a line `find` returned (below the line count) · 16 + a node slot
        // below 16: within `counters`; and each count below 32 is within `RECIP`.
        let (c, r) = unsafe {
            let c = _mm256_i32gather_epi32::<4>(counters.as_ptr() as *const i32, slot);
            let n = _mm256_and_si256(c, set(31));
            (c, _mm256_i32gather_epi32::<4>(RECIP.as_ptr() as *const i32, n))
        };
        let n = _mm256_and_si256(c, set(31));
        let p = _mm256_srli_epi32(c, 10);
        let d = _mm256_sub_epi32(set(if bit != 0 { (1 << 22) - 1 } else { 0 }), p);
        let hi = _mm256_mullo_epi32(_mm256_srai_epi32(d, 8), r);
        let lo = _mm256_mullo_epi32(_mm256_and_si256(d, set(255)), r);
        let p = _mm256_add_epi32(p, _mm256_srai_epi32(_mm256_add_epi32(hi, _mm256_srli_epi32(lo, 8)), 8));
        // the count grows while below `limit`: n - (n < limit ? -1 : 0)
        let n = _mm256_sub_epi32(n, _mm256_cmpgt_epi32(set(limit as i32), n));
        let mut v = _mm256_or_si256(_mm256_slli_epi32(p, 10), n);
        if history {
            // max(h, 1) · 2 + bit, and past four bits 16 | its last four
            let h = _mm256_max_epu32(_mm256_and_si256(_mm256_srli_epi32(c, 5), set(31)), set(1));
            let h = _mm256_or_si256(_mm256_slli_epi32(h, 1), set(bit as i32));
            let long = _mm256_cmpgt_epi32(h, set(31));
            let h = _mm256_blendv_epi8(h, _mm256_or_si256(_mm256_and_si256(h, set(15)), set(16)), long);
            v = _mm256_or_si256(v, _mm256_slli_epi32(h, 5));
        }
        let (mut at, mut new) = ([0u32; 8], [0u32; 8]);
        // SAFETY: each array holds 8 u32s.
        unsafe {
            _mm256_storeu_si256(at.as_mut_ptr() as *mut __m256i, slot);
            _mm256_storeu_si256(new.as_mut_ptr() as *mut __m256i, v);
        }
        for (&at, &new) in at.iter().zip(&new) {
            counters[at as usize] = Counter(new);
        }
        true
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn update_eight_avx2(&mut self, _: &[u32], _: usize, _: u32, _: u32, _: bool) -> bool {
        false
    }

    /// The stretched probability of the counter at slot `node` of each of `lines` into `out`,
    /// or 0 for a counter never updated.
    #[inline]
    pub fn stretched(&self, lines: &[u32], node: usize, out: &mut [i32]) {
        let mut done = 0;
        if self.avx2 {
            for (group, out) in lines.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
                // SAFETY: only where the CPU has AVX2; the lines came from `find`.
                unsafe { self.stretched_eight_avx2(group, node, out) };
                done += 8;
            }
        }
        for (x, &line) in out[done..].iter_mut().zip(&lines[done..]) {
            let c = self.at(line, node);
            *x = if c.count() == 0 { 0 } else { stretch(c.p12()) };
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn stretched_eight_avx2(&self, group: &[u32], node: usize, out: &mut [i32]) {
        use std::arch::x86_64::*;
        let set = _mm256_set1_epi32;
        // SAFETY: `group` and `out` hold 8 values each; each slot is a line `find` returned
        // (below the line count) · 16 + a node slot below 16, within the counters; each 12-bit
        // probability indexes the stretch table, whose 32-bit read ends within its padding.
        unsafe {
            let line = _mm256_loadu_si256(group.as_ptr() as *const __m256i);
            let slot = _mm256_add_epi32(_mm256_slli_epi32(line, 4), set(node as i32));
            let c = _mm256_i32gather_epi32::<4>(self.counters().as_ptr() as *const i32, slot);
            let st = _mm256_i32gather_epi32::<2>(stretch_padded().as_ptr() as *const i32, _mm256_srli_epi32(c, 20));
            let st = _mm256_srai_epi32(_mm256_slli_epi32(st, 16), 16);
            let fresh = _mm256_cmpeq_epi32(_mm256_and_si256(c, set(1023)), _mm256_setzero_si256());
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, _mm256_andnot_si256(fresh, st));
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn stretched_eight_avx2(&self, _: &[u32], _: usize, _: &mut [i32]) {}

    /// Every counter, line after line (slot `node` of line `l` at `l · 16 + node`).
    #[inline]
    pub fn counters(&self) -> &[Counter] {
        self.lines.as_flattened()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_learns_and_saturates() {
        let mut c = Counter::INIT;
        assert_eq!(c.p12(), 2048);
        for _ in 0..200 {
            c.update(1, 30);
        }
        assert!(c.p12() > 4000, "{}", c.p12());
        for _ in 0..200 {
            c.update(0, 30);
        }
        assert!(c.p12() < 96, "{}", c.p12());
        assert_eq!(c.count(), 30);
    }

    /// `update_all` and `stretched` with AVX2 (eight lines at a time) must do what the plain
    /// loops do, with and without histories, also where lines repeat within a group of eight.
    #[test]
    fn update_all_matches_one_counter_at_a_time() {
        for history in [false, true] {
            // a small table, so that 18 contexts often share lines
            let (mut fast, mut plain) = (LineTable::new(5), LineTable::new(5));
            plain.avx2 = false;
            let mut seed = 12345u32;
            let mut next = move || {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                seed
            };
            let (mut repeats, mut groups) = (0, 0);
            // few contexts, so that lines live long and counts reach the limit
            let pool: Vec<u32> = (0..24).map(|_| next()).collect();
            for _ in 0..3000 {
                let hashes: Vec<u32> = (0..18).map(|_| pool[next() as usize % 24]).collect();
                let lines: Vec<u32> = hashes.iter().map(|&h| fast.find(h)).collect();
                let again: Vec<u32> = hashes.iter().map(|&h| plain.find(h)).collect();
                assert_eq!(lines, again);
                for g in lines.chunks_exact(8) {
                    groups += 1;
                    repeats += (1..8).any(|i| g[..i].contains(&g[i])) as u32;
                }
                for _ in 0..4 {
                    let (node, bit) = (1 + next() as usize % 15, next() >> 31);
                    let (mut a, mut b) = ([9; 18], [9; 18]);
                    fast.stretched(&lines, node, &mut a);
                    plain.stretched(&lines, node, &mut b);
                    assert_eq!(a, b);
                    fast.update_all(&lines, node, bit, 30, history);
                    plain.update_all(&lines, node, bit, 30, history);
                    assert!(fast.counters() == plain.counters(), "history {history}");
                }
            }

            // both kinds of group were exercised
            assert!(repeats > 100 && repeats < groups, "{repeats} of {groups}");
        }
    }

    #[test]
    fn lines_are_found_again() {
        let mut t = LineTable::new(4);
        let a = t.find(0x1234_5678);
        t.get(a, 1).update(1, 30);
        let b = t.find(0x1234_5678);
        assert_eq!(a, b);
        assert!(t.get(b, 1).p12() > 2048);
    }
}
