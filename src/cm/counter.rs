//! Adaptive bit probabilities: a `Counter` learns P(bit = 1) in a context with a rate that starts
//! at 1/1.5 and falls as 1/(n + 1.5) down to a floor, and a `LineTable` keeps counters for hashed
//! contexts in 64-byte lines, one line per context and half-byte ("nibble") of the symbol.

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
static RECIP: [u32; 1024] = recip();

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
        let n_next = if n < limit { n + 1 } else { n };
        self.0 = (moved(self.0 >> 10, n, bit) << 10) | n_next;
    }
}

/// P(1) in 22 bits, `p`, moved towards `bit` by 1/(n + 1.5) (`n` <= 1023): the step of every
/// counter update.
#[inline]
pub(super) fn moved(p: u32, n: u32, bit: u32) -> u32 {
    let p = p as i64;
    let target = if bit != 0 { (1i64 << 22) - 1 } else { 0 };
    (p + (((target - p) * RECIP[n as usize] as i64) >> 16)) as u32
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
}

type Line = [Counter; 16];

impl LineTable {
    pub fn new(bits: u32) -> Self {
        LineTable {
            lines: Table::zeroed(1 << bits),
            bits,
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

    /// The line for context hash `h`, found or freshly claimed.
    #[inline]
    pub fn find(&mut self, h: u32) -> usize {
        let i = (h >> (32 - self.bits)) as usize;
        let check = Counter(h & 0xFFFF);
        let lines = &mut self.lines;
        if lines[i][0].0 & 0xFFFF == check.0 {
            return i;
        }
        let j = i ^ 1;
        if lines[j][0].0 & 0xFFFF == check.0 {
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
    pub fn at(&self, line: usize, node: usize) -> Counter {
        self.lines[line][node]
    }

    /// What the run model keeps in slot 0's upper half: (last byte, run count), if `line` still
    /// holds the context of hash `h`.
    #[inline]
    pub fn run(&self, line: usize, h: u32) -> Option<(u32, u32)> {
        let v = self.lines[line][0].0;
        (v & 0xFFFF == h & 0xFFFF).then_some((v >> 24, (v >> 16) & 0xFF))
    }

    /// Store the run model's (byte, run count) in slot 0's upper half, if `line` still holds the
    /// context of hash `h` (a later find may have claimed it for another).
    #[inline]
    pub fn set_run(&mut self, line: usize, h: u32, byte: u32, count: u32) {
        let v = &mut self.lines[line][0].0;
        if *v & 0xFFFF == h & 0xFFFF {
            *v = (*v & 0xFFFF) | byte << 24 | count << 16;
        }
    }

    #[inline]
    pub fn get(&mut self, line: usize, node: usize) -> &mut Counter {
        &mut self.lines[line][node]
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
