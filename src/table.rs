//! Frequency tables: what the transformer predicts for the next token, as integers, and every way
//! the coders read one. A table has one entry per token, each at least 1, summing to at most
//! [`FREQ_BUDGET`] (docs/MODEL.md, "The forward pass"). The range coder codes a token with its interval
//! (`cum`, `freq`) in the table; the token mixer codes it bit by bit with the table's mass split at
//! each node of the token's binary code (`table_bit`).

use crate::model::arith::FloorDiv;

/// Frequency tables sum to at most this.
pub const FREQ_BUDGET: u64 = 1 << 24;

/// Turn integer logits into a frequency table: `f_v = 1 + floor(e_v * (BUDGET - V) / S)` with
/// `e_v = exp_out[min(max - l_v, len - 1)]` and `S = sum e_v`. Inlined, so that a caller compiled
/// for AVX2 vectorises it with AVX2.
#[inline(always)]
pub fn freq_table(logits: &[i64], exp_out: &[i32], out: &mut [u32]) {
    let v = logits.len() as u64;
    let lmax = logits.iter().copied().max().unwrap_or(0);
    let last = exp_out.len() as i64 - 1;
    let mut s: u64 = 0;
    for (o, &l) in out.iter_mut().zip(logits) {
        let e = exp_out[(lmax - l).min(last) as usize] as u32;
        *o = e;
        s += e as u64;
    }
    let k = FREQ_BUDGET - v;
    // every quotient e * k / s (e * k < 2^44) by one multiplication (`FloorDiv`), the same
    // integers as dividing
    let div = FloorDiv::new(s, 44);
    for o in out.iter_mut() {
        let n = *o as u64 * k;
        debug_assert!(n < 1 << 44);
        *o = 1 + div.apply(n) as u32;
    }
}

/// A symbol's coding interval in a table: `cum` = sum of the entries below it, `freq` its entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    pub sym: u32,
    pub cum: u32,
    pub freq: u32,
}

/// The interval of `sym` in `table` (`sym` < table length).
pub fn interval_of(table: &[u32], sym: u32) -> Interval {
    let (cum, freq, _) = cum_freq(table, sym as usize);
    Interval {
        sym,
        cum: cum as u32,
        freq: freq as u32,
    }
}

/// The symbol whose interval holds `target`, or `None` past the total.
pub fn search(table: &[u32], target: u32) -> Option<Interval> {
    find_symbol(table, target as u64).map(|(s, cum, freq)| Interval {
        sym: s as u32,
        cum: cum as u32,
        freq: freq as u32,
    })
}

/// Cumulative frequency of symbols below `sym`, the symbol's frequency, and the total.
#[inline]
pub fn cum_freq(freqs: &[u32], sym: usize) -> (u64, u64, u64) {
    let below: u64 = freqs[..sym].iter().map(|&f| f as u64).sum();
    let total: u64 = below + freqs[sym..].iter().map(|&f| f as u64).sum::<u64>();
    (below, freqs[sym] as u64, total)
}

/// The symbol whose interval `[cum, cum + freq)` holds `target`, as `(symbol, cum, freq)`; `None`
/// if `target` is not below the table's total.
#[inline]
pub fn find_symbol(freqs: &[u32], target: u64) -> Option<(usize, u64, u64)> {
    let mut cum = 0u64;
    for (s, &f) in freqs.iter().enumerate() {
        let f = f as u64;
        if target < cum + f {
            return Some((s, cum, f));
        }
        cum += f;
    }
    None
}

/// What an outside frequency table says about the next bit of a symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitPred {
    /// The other value has no symbols (past the end of the table): the bit is not coded.
    Forced(u32),
    /// P(1) in 12 bits, in [1, 4095].
    P(i32),
}

/// P(the upper part) in 12 bits of a mass split in two, `lower` and `upper` (not both 0):
/// floor(4096 · upper / (lower + upper)) clamped to [1, 4095].
pub fn split_p(lower: u64, upper: u64) -> i32 {
    (((upper << 12) / (lower + upper)) as i32).clamp(1, 4095)
}

/// The next bit's prediction from cumulative frequencies `cum` (`cum[s]` = sum of the
/// frequencies below symbol `s`, `cum.len()` = table size + 1), at `node` (the bits coded so far
/// with a leading 1) of an `nbits`-bit symbol: P(1) = floor(4096 · m1 / (m0 + m1)) clamped to
/// [1, 4095], where m0 and m1 are the masses of the symbols under each child of the node.
pub fn table_bit(cum: &[u64], node: u32, nbits: u32) -> BitPred {
    let k = 31 - node.leading_zeros();
    let rest = nbits - k;
    let lo = ((node - (1 << k)) as usize) << rest;
    let end = cum.len() - 1;
    let mid = (lo + (1 << (rest - 1))).min(end);
    let hi = (lo + (1 << rest)).min(end);
    let lo = lo.min(end);
    let m0 = cum[mid] - cum[lo];
    let m1 = cum[hi] - cum[mid];
    if m1 == 0 {
        BitPred::Forced(0)
    } else if m0 == 0 {
        BitPred::Forced(1)
    } else {
        BitPred::P(split_p(m0, m1))
    }
}

/// Fill `cum` (length `freqs.len() + 1`) with the running sums of `freqs`.
pub fn cumulate(freqs: &[u32], cum: &mut Vec<u64>) {
    cum.clear();
    cum.push(0);
    let mut s = 0u64;
    for &f in freqs {
        s += f as u64;
        cum.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_division_is_exact() {
        // compare freq_table's multiply-shift with plain division on edge and random values
        let mut x = 12345u64;
        for _ in 0..200_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let s = 1 + (x >> 27) % (1 << 37);
            let shift = 44 + (64 - s.leading_zeros());
            let magic = (1u128 << shift) / s as u128 + 1;
            for n in [
                0,
                1,
                s - 1,
                s,
                s + 1,
                (x >> 20) % (1 << 44),
                (1 << 44) - 1,
                (1 << 44) - s.min(1 << 43),
            ] {
                assert_eq!(((n as u128 * magic) >> shift) as u64, n / s, "n {n} s {s}");
            }
        }
    }

    #[test]
    fn table_bits_split_the_mass_and_force_past_the_end() {
        // 5 symbols in 3 bits: ids 5..8 do not exist
        let mut cum = Vec::new();
        cumulate(&[1, 1, 2, 4, 8], &mut cum);
        assert_eq!(table_bit(&cum, 1, 3), BitPred::P(2048)); // ids 0..4 weigh 8, id 4 weighs 8
        assert_eq!(table_bit(&cum, 0b10, 3), BitPred::P(4096 * 6 / 8));
        assert_eq!(table_bit(&cum, 0b11, 3), BitPred::Forced(0));
        assert_eq!(table_bit(&cum, 0b110, 3), BitPred::Forced(0));
        assert_eq!(table_bit(&cum, 0b101, 3), BitPred::P(4096 * 4 / 6));
    }
}
