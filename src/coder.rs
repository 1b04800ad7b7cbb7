//! Fixed-point range coder over integer frequency tables.
//!
//! The coder keeps a 56-bit `range` and a 57-bit `low` (one carry bit), and renormalises a byte at
//! a time whenever `range` drops below 2^48, the way LZMA's range coder does with 32 bits. Symbol
//! frequencies are `u32` with a total `T <= 2^32 - 1`: each coding step computes `r = range / T`,
//! so the step loses at most `T / range <= 2^-16` of the range — far below the 0.1% overhead
//! budget. See docs/FORMAT.md ("Range coder") for the exact byte layout.

use crate::error::{Error, Result};
use crate::table::{find_symbol, Interval};

const TOP: u64 = 1 << 48;
const LOW_MASK: u64 = (1 << 56) - 1;

/// A range encoder; `finish` gives the payload.
pub struct Encoder {
    low: u64,
    range: u64,
    cache: u8,
    pending: u64,
    out: Vec<u8>,
    first: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            low: 0,
            range: LOW_MASK,
            cache: 0,
            pending: 0,
            out: Vec::new(),
            first: true,
        }
    }

    /// Code a symbol occupying `[cum, cum + freq)` of a table whose frequencies sum to `total`.
    pub fn encode(&mut self, cum: u64, freq: u64, total: u64) {
        debug_assert!(freq > 0 && cum + freq <= total && total < (1 << 32));
        let r = self.range / total;
        self.low += r * cum;
        self.range = r * freq;
        self.normalize();
    }

    /// Code `sym` from a frequency table (every entry >= 1).
    #[cfg(test)]
    pub fn encode_symbol(&mut self, freqs: &[u32], sym: usize) {
        let (cum, f, t) = crate::table::cum_freq(freqs, sym);
        self.encode(cum, f, t);
    }

    /// Code one bit with P(1) = `p1` / 4096 (`p1` in [1, 4095]): 1 takes `[0, p1)`, 0 takes
    /// `[p1, 4096)`.
    #[inline(always)]
    pub fn encode_bit(&mut self, p1: i32, bit: u32) {
        // `encode` with a total of 4096, its division a shift
        let r = self.range >> 12;
        let split = r * p1 as u64;
        if bit != 0 {
            self.range = split;
        } else {
            self.low += split;
            self.range = r * (4096 - p1 as u64);
        }
        self.normalize();
    }

    /// Renormalise: a byte at a time while `range` is below 2^48.
    #[inline(always)]
    fn normalize(&mut self) {
        if self.range < TOP {
            self.refill();
        }
    }

    /// `normalize`'s loop, out of line: most bits need no byte.
    #[inline(never)]
    fn refill(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    fn shift_low(&mut self) {
        if self.low < (0xFF << 48) || self.low > LOW_MASK {
            let carry = (self.low >> 56) as u8;
            // The very first cached byte is always zero; it is not written (the decoder assumes it).
            if !self.first {
                self.out.push(self.cache.wrapping_add(carry));
            }
            self.first = false;
            for _ in 0..self.pending {
                self.out.push(0xFFu8.wrapping_add(carry));
            }
            self.pending = 0;
            self.cache = ((self.low >> 48) & 0xFF) as u8;
        } else {
            self.pending += 1;
        }
        self.low = (self.low << 8) & LOW_MASK;
    }

    /// Flush the state; the result is the complete coded byte string (docs/FORMAT.md, "Range
    /// coder", version 5): the end of the stream is the value in `[low, low + range)` with the most
    /// trailing zero bytes, and at most 7 trailing zero bytes are dropped, so every payload has
    /// exactly one valid form and the decoder never has to read more than 7 bytes past its end.
    pub fn finish(mut self) -> Vec<u8> {
        self.low = flush_value(self.low, self.range);
        for _ in 0..8 {
            self.shift_low();
        }
        for _ in 0..MAX_VIRTUAL {
            if self.out.last() != Some(&0) {
                break;
            }
            self.out.pop();
        }
        self.out
    }
}

/// Bytes a decoder of a version-5 payload may read past its end (as zeros).
pub const MAX_VIRTUAL: usize = 7;

/// Versions 1 to 4 dropped every trailing zero byte, so a decoder may read any number of zeros
/// past the end; but while the code is not zero there, each such byte stands for a carry through a
/// run of 0xFF bytes of the encoder's `low` at the very end of the frame. More than this many is
/// taken as damage (no encoder run on real data makes such a run), which bounds the work a
/// damaged old-version frame can cause.
pub const MAX_LEGACY_VIRTUAL: usize = 64;

/// The value of `[low, low + range)` with the most trailing zero bytes (`low` may carry into bit
/// 56); the same arithmetic modulo 2^56 gives the same low 56 bits, which the decoder checks.
fn flush_value(low: u64, range: u64) -> u64 {
    for k in (8..=56).rev().step_by(8) {
        let mask = (1u64 << k) - 1;
        let x = (low + mask) & !mask;
        if x < low + range {
            return x;
        }
    }
    low
}

/// Which payload rules a decoder enforces (docs/FORMAT.md, "Range coder").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// Versions 1 to 4: the encoder flushed all of `low` and dropped every trailing zero byte.
    Legacy,
    /// Version 5: the shortest flush, at most 7 bytes read past the end.
    Strict,
}

impl Rules {
    /// The rules of a stream of format `version`.
    pub fn for_version(version: u8) -> Rules {
        if version >= 5 {
            Rules::Strict
        } else {
            Rules::Legacy
        }
    }
}

/// A range decoder over one frame's payload.
pub struct Decoder<'a> {
    code: u64,
    range: u64,
    input: &'a [u8],
    pos: usize,
    /// the last 7 bytes read (the stream's window that `code` is relative to)
    window: u64,
    rules: Rules,
    /// a version-5 decoder read more than `MAX_VIRTUAL` bytes past the end (an old-version one
    /// more than `MAX_LEGACY_VIRTUAL` while its code was not zero)
    overrun: bool,
    /// bytes read past the end while the code was not zero (versions 1 to 4)
    legacy_virtual: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8], rules: Rules) -> Self {
        let mut d = Decoder {
            code: 0,
            range: LOW_MASK,
            input,
            pos: 0,
            window: 0,
            rules,
            overrun: false,
            legacy_virtual: 0,
        };
        for _ in 0..7 {
            d.code = (d.code << 8) | d.next_byte() as u64;
        }
        d
    }

    #[inline]
    fn next_byte(&mut self) -> u8 {
        // Past the end the stream reads as zeros (the encoder dropped trailing zero bytes).
        let b = self.input.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        if self.pos > self.input.len() {
            match self.rules {
                Rules::Strict => self.overrun |= self.pos > self.input.len() + MAX_VIRTUAL,
                Rules::Legacy if self.code != 0 => {
                    self.legacy_virtual += 1;
                    self.overrun |= self.legacy_virtual > MAX_LEGACY_VIRTUAL;
                }
                Rules::Legacy => {}
            }
        }
        self.window = ((self.window << 8) | b as u64) & LOW_MASK;
        b
    }

    /// Under the old rules only: true when nothing but zeros is left to read and the code is zero,
    /// so every later target is 0 and the symbols that follow are fixed (the first of every
    /// table). Decoders of old versions use it to skip the work of an archive that claims much
    /// more content than its payload holds; a version-5 decoder stops at the 8th byte instead.
    pub fn only_zeros_left(&self) -> bool {
        self.rules == Rules::Legacy && self.code == 0 && self.pos >= self.input.len()
    }

    /// After the last symbol: the payload must be exactly what an encoder writes for the symbols
    /// decoded, byte for byte (all of it read, no extra or missing trailing bytes, the flush
    /// value), so that no changed byte can pass unnoticed.
    pub fn finish(self) -> Result<()> {
        let bad = |what: &str| Err(Error::corrupt(format!("coded payload {what}")));
        if self.overrun {
            return bad("ends too early");
        }
        if self.pos < self.input.len() {
            return bad("has bytes after its end");
        }
        let ends_in_zero = self.input.last() == Some(&0);
        match self.rules {
            Rules::Legacy => {
                if self.code != 0 {
                    return bad("does not end where the encoder flushed");
                }
                if ends_in_zero {
                    return bad("has a trailing zero byte");
                }
            }
            Rules::Strict => {
                let low = self.window.wrapping_sub(self.code) & LOW_MASK;
                if flush_value(low, self.range) & LOW_MASK != self.window {
                    return bad("does not end where the encoder flushed");
                }
                if ends_in_zero && self.pos - self.input.len() < MAX_VIRTUAL {
                    return bad("has a trailing zero byte");
                }
            }
        }
        Ok(())
    }

    /// The target value in `[0, total)`: the caller finds the symbol whose interval holds it, then
    /// calls `consume`.
    pub fn target(&self, total: u64) -> Result<u64> {
        if self.overrun {
            return Err(Error::corrupt("coded payload ends too early"));
        }
        let r = self.range / total;
        let v = self.code / r;
        if v >= total {
            return Err(Error::corrupt("range decoder out of bounds"));
        }
        Ok(v)
    }

    pub fn consume(&mut self, cum: u64, freq: u64, total: u64) {
        let r = self.range / total;
        self.code -= r * cum;
        self.range = r * freq;
        self.normalize();
    }

    /// Renormalise: a byte at a time while `range` is below 2^48.
    #[inline(always)]
    fn normalize(&mut self) {
        if self.range < TOP {
            self.refill();
        }
    }

    /// `normalize`'s loop, out of line: most bits need no byte.
    #[inline(never)]
    fn refill(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.code = ((self.code << 8) | self.next_byte() as u64) & LOW_MASK;
        }
    }

    /// Decode one bit coded by `Encoder::encode_bit` with the same `p1`.
    #[inline(always)]
    pub fn decode_bit(&mut self, p1: i32) -> Result<u32> {
        // `target` and `consume` with a total of 4096, without a division: with r = range / 4096,
        // code / r < p1 exactly when code < r * p1
        if self.overrun {
            return Err(Error::corrupt("coded payload ends too early"));
        }
        let r = self.range >> 12;
        if self.code >= r << 12 {
            return Err(Error::corrupt("range decoder out of bounds"));
        }
        let split = r * p1 as u64;
        let bit = if self.code < split {
            self.range = split;
            1
        } else {
            self.code -= split;
            self.range = r * (4096 - p1 as u64);
            0
        };
        self.normalize();
        Ok(bit)
    }

    /// Decode one symbol from a frequency table (every entry >= 1).
    pub fn decode_symbol(&mut self, freqs: &[u32]) -> Result<usize> {
        let total: u64 = freqs.iter().map(|&f| f as u64).sum();
        let v = self.target(total)?;
        let (s, cum, f) = find_symbol(freqs, v).ok_or_else(|| Error::corrupt("range decoder found no symbol"))?;
        self.consume(cum, f, total);
        Ok(s)
    }
}

/// One direction of the range coder, so that each frame kind's model is written once for both
/// (lpaq's `code(bit)`): the [`Encoder`] codes the symbol its caller knows, the [`Decoder`] reads
/// the symbol from the payload and ignores what its caller passed. Every decision a model makes
/// then happens in the same code, in the same order, on both sides.
pub trait Coder {
    /// Whether the symbols come from the payload (the caller learns them from the return values).
    const DECODES: bool;

    /// Code one bit with P(1) = `p1` / 4096 (`p1` in [1, 4095]). The encoder writes `bit`; the
    /// decoder reads one. Either way the bit coded is returned.
    fn code_bit(&mut self, p1: i32, bit: u32) -> Result<u32>;

    /// Code one symbol of a table whose entries sum to `total`. The encoder writes `known`; the
    /// decoder calls `find` with its target (a value below `total`) to learn the interval that
    /// holds it. Either way the interval coded is returned.
    fn code_interval(
        &mut self,
        total: u64,
        known: Interval,
        find: impl FnOnce(u64) -> Result<Interval>,
    ) -> Result<Interval>;

    /// Decoders of old versions: see [`Decoder::only_zeros_left`]. Never true for the encoder.
    fn only_zeros_left(&self) -> bool;

    /// Bytes of payload so far: written (the encoder, counting the bytes it holds back for a carry)
    /// or read (the decoder).
    fn coded_bytes(&self) -> u64;
}

impl Coder for Encoder {
    const DECODES: bool = false;

    #[inline(always)]
    fn code_bit(&mut self, p1: i32, bit: u32) -> Result<u32> {
        self.encode_bit(p1, bit);
        Ok(bit)
    }

    #[inline]
    fn code_interval(
        &mut self,
        total: u64,
        known: Interval,
        _: impl FnOnce(u64) -> Result<Interval>,
    ) -> Result<Interval> {
        self.encode(known.cum as u64, known.freq as u64, total);
        Ok(known)
    }

    fn only_zeros_left(&self) -> bool {
        false
    }

    fn coded_bytes(&self) -> u64 {
        self.out.len() as u64 + self.pending + !self.first as u64
    }
}

impl Coder for Decoder<'_> {
    const DECODES: bool = true;

    #[inline(always)]
    fn code_bit(&mut self, p1: i32, _: u32) -> Result<u32> {
        self.decode_bit(p1)
    }

    #[inline]
    fn code_interval(
        &mut self,
        total: u64,
        _: Interval,
        find: impl FnOnce(u64) -> Result<Interval>,
    ) -> Result<Interval> {
        let iv = find(self.target(total)?)?;
        self.consume(iv.cum as u64, iv.freq as u64, total);
        Ok(iv)
    }

    fn only_zeros_left(&self) -> bool {
        Decoder::only_zeros_left(self)
    }

    fn coded_bytes(&self) -> u64 {
        self.pos as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::cum_freq;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    fn skewed_table(rng: &mut Lcg, v: usize) -> Vec<u32> {
        // a peaked distribution like a model's: one big symbol, a geometric tail, every entry >= 1
        let mut t: Vec<u32> = (0..v)
            .map(|i| 1 + ((1u64 << 20) >> (i % 24).min(20)) as u32 / (1 + rng.next() % 7))
            .collect();
        let hot = rng.next() as usize % v;
        t[hot] = 1 << 23;
        t
    }

    #[test]
    fn round_trip_and_overhead() {
        let mut rng = Lcg(7);
        let v = 16384;
        let mut tables = Vec::new();
        let mut syms = Vec::new();
        let mut ideal = 0.0f64;
        let mut enc = Encoder::new();
        for i in 0..4000 {
            let t = skewed_table(&mut rng, v);
            // mostly likely symbols, sometimes rare ones
            let s = if i % 5 == 0 {
                rng.next() as usize % v
            } else {
                t.iter().enumerate().max_by_key(|x| x.1).unwrap().0
            };
            let (c, f, tot) = cum_freq(&t, s);
            ideal += -((f as f64) / (tot as f64)).log2();
            enc.encode(c, f, tot);
            tables.push(t);
            syms.push(s);
        }
        let bytes = enc.finish();
        let actual = bytes.len() as f64 * 8.0;
        let overhead = (actual - ideal) / ideal;
        assert!(
            overhead <= 0.001 + 64.0 / ideal,
            "overhead {overhead} (ideal {ideal} bits, actual {actual})"
        );
        let mut dec = Decoder::new(&bytes, Rules::Strict);
        for (t, &s) in tables.iter().zip(&syms) {
            assert_eq!(dec.decode_symbol(t).unwrap(), s);
        }
    }

    #[test]
    fn long_stream_overhead_under_a_tenth_of_a_percent() {
        // Many symbols so the fixed flush bytes do not dominate: the overhead must be <= 0.1%.
        let mut rng = Lcg(11);
        let v = 8192;
        let base = skewed_table(&mut rng, v);
        let mut ideal = 0.0f64;
        let mut enc = Encoder::new();
        let mut syms = Vec::new();
        for _ in 0..200_000 {
            let s = (rng.next() as usize % 64) * 97 % v;
            let (c, f, tot) = cum_freq(&base, s);
            ideal += -((f as f64) / (tot as f64)).log2();
            enc.encode(c, f, tot);
            syms.push(s);
        }
        let bytes = enc.finish();
        let overhead = (bytes.len() as f64 * 8.0 - ideal) / ideal;
        assert!(overhead <= 0.001, "overhead {overhead}");
        let mut dec = Decoder::new(&bytes, Rules::Strict);
        for &s in &syms {
            assert_eq!(dec.decode_symbol(&base).unwrap(), s);
        }
    }

    #[test]
    fn carries_propagate() {
        // Symbols at the very top of the range force long runs of 0xFF and carries.
        let t = [1u32, (1 << 24) - 2, 1];
        let mut enc = Encoder::new();
        let syms: Vec<usize> = (0..5000).map(|i| if i % 3 == 0 { 2 } else { 1 }).collect();
        for &s in &syms {
            enc.encode_symbol(&t, s);
        }
        let bytes = enc.finish();
        let mut dec = Decoder::new(&bytes, Rules::Strict);
        for &s in &syms {
            assert_eq!(dec.decode_symbol(&t).unwrap(), s);
        }
    }

    /// Decode `n` symbols of table `t` and apply the payload rules; `None` on any error.
    fn decode_all(bytes: &[u8], t: &[u32], n: usize, rules: Rules) -> Option<Vec<usize>> {
        let mut dec = Decoder::new(bytes, rules);
        let syms: Option<Vec<usize>> = (0..n).map(|_| dec.decode_symbol(t).ok()).collect();
        dec.finish().ok()?;
        syms
    }

    #[test]
    fn every_payload_has_one_valid_form() {
        let mut rng = Lcg(5);
        let t = skewed_table(&mut rng, 300);
        for case in 0..40 {
            let n = 1 + case * 7;
            let syms: Vec<usize> = (0..n).map(|_| rng.next() as usize % t.len()).collect();
            let mut enc = Encoder::new();
            for &s in &syms {
                enc.encode_symbol(&t, s);
            }
            let bytes = enc.finish();
            assert_eq!(decode_all(&bytes, &t, n, Rules::Strict), Some(syms.clone()));
            // a byte more or less, or any change of a byte, never decodes to the same symbols
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(
                decode_all(&longer, &t, n, Rules::Strict).is_none(),
                "case {case}: a zero appended"
            );
            longer.pop();
            longer.push(1);
            assert!(
                decode_all(&longer, &t, n, Rules::Strict).is_none(),
                "case {case}: a byte appended"
            );
            if !bytes.is_empty() {
                let shorter = &bytes[..bytes.len() - 1];
                assert_ne!(
                    decode_all(shorter, &t, n, Rules::Strict),
                    Some(syms.clone()),
                    "case {case}: cut"
                );
            }
            for p in 0..bytes.len() {
                for v in [0u8, 1, 0x80, 0xFF, bytes[p] ^ 0x10] {
                    let mut bad = bytes.clone();
                    if bad[p] == v {
                        continue;
                    }
                    bad[p] = v;
                    assert_ne!(
                        decode_all(&bad, &t, n, Rules::Strict),
                        Some(syms.clone()),
                        "case {case}: byte {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_payload_that_ends_early_stops_the_decoder() {
        // nothing but zeros: with the old rules every symbol is the first; with version 5's, the
        // decoder stops once it would read an eighth byte past the end
        let t = [1u32, 1000, 1000];
        let mut dec = Decoder::new(&[], Rules::Strict);
        let decoded = (0..100_000).take_while(|_| dec.decode_symbol(&t).is_ok()).count();
        assert!(decoded < 100, "{decoded} symbols from an empty payload");
        let mut dec = Decoder::new(&[], Rules::Legacy);
        assert!(dec.only_zeros_left());
        assert!((0..1000).all(|_| matches!(dec.decode_symbol(&t), Ok(0))));
        // old rules, non-zero code past the end: at most MAX_LEGACY_VIRTUAL bytes
        let mut dec = Decoder::new(&[0, 0, 0, 0, 0, 0, 1], Rules::Legacy);
        let decoded = (0..100_000).take_while(|_| dec.decode_symbol(&t).is_ok()).count();
        assert!(decoded < 2000, "{decoded} symbols from a 7-byte payload");
    }

    #[test]
    fn garbage_never_panics() {
        let t = vec![3u32; 300];
        let garbage: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        let mut dec = Decoder::new(&garbage, Rules::Strict);
        for _ in 0..1000 {
            if dec.decode_symbol(&t).is_err() {
                break;
            }
        }
    }
}
