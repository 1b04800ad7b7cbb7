//! The match model: finds the latest earlier occurrence of the last `min_len` symbols of the
//! history (by a hash table of positions, checked backwards) and predicts the symbol that followed
//! it. After a misprediction the pointer keeps moving ("recovery": lines that differ in one field
//! realign at once) until `MAX_MISS` misses in a row drop the match.

use super::counter::Counter;
use super::logistic::stretch;
use super::pages::Table;

const VERIFY: usize = 32;
const MAX_MISS: u32 = 8;
const MAX_LEN: u32 = 65535;
/// Values of `Matcher::state`.
pub const STATES: usize = 20;

/// The next bit of a guessed symbol `e` of `nbits` bits at bit `k` (0 = most significant), if its
/// first `k` bits are those of `node` (the bits so far, after a leading 1).
#[inline]
pub fn agreeing_bit(e: u32, nbits: u32, k: u32, node: u32) -> Option<u32> {
    let shift = nbits - k;
    ((e >> shift) | (1 << k) == node).then_some((e >> (shift - 1)) & 1)
}

/// Bits of the position table of a match model over `need` index bits' worth of symbols
/// (docs/MODEL.md, "Sizes": `Mb`).
pub fn table_bits(need: u32) -> u32 {
    (need + 1).clamp(10, 20)
}

pub struct Matcher {
    table: Table<u32>,
    bits: u32,
    ptr: usize,
    len: u32,
    miss: u32,
    active: bool,
    min_len: usize,
}

fn hash(t: &[u32]) -> u32 {
    let mut h: u32 = 0;
    for &x in t {
        h = (h ^ x).wrapping_mul(0x9E37_79B1).rotate_left(13);
    }
    h
}

impl Matcher {
    pub fn new(bits: u32, min_len: usize) -> Self {
        Matcher {
            table: Table::zeroed(1 << bits),
            bits,
            ptr: 0,
            len: 0,
            miss: 0,
            active: false,
            min_len,
        }
    }

    /// The predicted next symbol, if a match is active.
    #[inline]
    pub fn expected(&self, hist: &[u32]) -> Option<u32> {
        self.active.then(|| hist[self.ptr])
    }

    /// A small context for the match's reliability: 0 without a match, 1..=14 for the verified
    /// length (lengths from 12 on in log steps), 16..=19 for a match recovering after misses.
    pub fn state(&self) -> usize {
        if !self.active {
            0
        } else if self.len == 0 {
            15 + self.miss.min(4) as usize
        } else if self.len < 12 {
            self.len as usize
        } else {
            (9 + self.len.ilog2() as usize).min(14)
        }
    }

    /// Mispredictions since the last hit.
    pub fn misses(&self) -> u32 {
        self.miss
    }

    pub fn match_len(&self) -> u32 {
        self.len
    }

    /// `hist` has just grown by its last symbol.
    pub fn update(&mut self, hist: &[u32]) {
        let n = hist.len();
        let sym = hist[n - 1];
        if self.active {
            if hist[self.ptr] == sym {
                self.len = (self.len + 1).min(MAX_LEN);
                self.miss = 0;
            } else {
                self.len = 0;
                self.miss += 1;
                self.active = self.miss <= MAX_MISS;
            }
            self.ptr += 1;
        }
        if n >= self.min_len {
            let h = (hash(&hist[n - self.min_len..]) >> (32 - self.bits)) as usize;
            if self.len < self.min_len as u32 {
                let cand = self.table[h] as usize;
                if cand > 0 && cand != self.ptr {
                    let mut l = 0;
                    while l < VERIFY && l < cand && hist[cand - 1 - l] == hist[n - 1 - l] {
                        l += 1;
                    }
                    if l >= self.min_len {
                        self.len = l as u32;
                        self.ptr = cand;
                        self.miss = 0;
                        self.active = true;
                    }
                }
            }
            self.table[h] = n as u32;
        }
    }
}

/// Deep CM frames of format 11 on: a second match model that needs `LONG_MIN` symbols to start a
/// match, so it keeps following a long repeat where the first one (6) has jumped to a shorter,
/// later one. Its input is a counter by its state, the expected bit and the bit position.
pub struct LongMatch {
    matcher: Matcher,
    counters: Vec<Counter>,
    /// its guess at the symbol being coded, and its state, from the last `push`
    expected: Option<u32>,
    state: usize,
    /// the counter that gave this bit's input
    used: Option<usize>,
}

/// The long match model's minimum length (measured on the bench: 10, 12, 16, 24 and 32 gain 0.36,
/// 0.39, 0.32, 0.33 and 0.27% over deep CM frames without it).
pub const LONG_MIN: usize = 12;

impl LongMatch {
    /// A position table of 2^`bits` entries, for symbols of `nbits` bits.
    pub fn new(bits: u32, nbits: u32) -> Self {
        LongMatch {
            matcher: Matcher::new(bits, LONG_MIN),
            counters: vec![Counter::INIT; STATES * 2 * nbits as usize],
            expected: None,
            state: 0,
            used: None,
        }
    }

    /// The input for bit `k` (0 = most significant) of a symbol of `nbits` bits whose bits so far
    /// are `node` (with a leading 1): the counter's stretched probability that the next bit is 1,
    /// if the guess agrees with `node`; else 0.
    #[inline]
    pub fn input(&mut self, nbits: u32, k: u32, node: u32) -> i32 {
        self.used = self
            .expected
            .and_then(|e| agreeing_bit(e, nbits, k, node))
            .map(|bit| (self.state * 2 + bit as usize) * nbits as usize + k as usize);
        self.used.map_or(0, |j| stretch(self.counters[j].p12()))
    }

    /// Learn the coded bit (after `input`).
    #[inline]
    pub fn update(&mut self, bit: u32) {
        if let Some(j) = self.used {
            self.counters[j].update(bit, 1023);
        }
    }

    /// `hist` has just grown by its last symbol.
    pub fn push(&mut self, hist: &[u32]) {
        self.matcher.update(hist);
        self.expected = self.matcher.expected(hist);
        self.state = self.matcher.state();
    }

    /// Bytes its tables take with a position table of 2^`bits` entries.
    pub fn memory(bits: u32) -> u64 {
        (1u64 << bits) * 4
    }
}
