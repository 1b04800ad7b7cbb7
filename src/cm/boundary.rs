//! The token-boundary predictor of blend frames: after each byte of a token that could end the
//! token or go on, P(the token ends here), from the transformer's share of the token against the
//! longer ones, refined by what this chunk has shown about the same prefix (docs/MODEL.md,
//! "Blend frames").

use super::counter::{fmix, Counter};
use super::logistic::stretch;
use super::mix::{Apm, Mixer};
use crate::tokenizer::LexOrder;

/// Counters for (prefix, previous token) pairs and for bytes: 2^16 of each, hashed; from format
/// 15 on, 2^`table_bits` (up to 2^20: measured on the text files of the bench, the decisions 1.9%
/// cheaper).
const PAIR_BITS: u32 = 16;
const MAX_PAIR_BITS: u32 = 20;

/// The tables' index bits for a frame of `raw_len` bytes from format 15 on: about four counters a
/// byte, at least 2^16 and at most 2^20.
pub fn table_bits(raw_len: u64) -> u32 {
    (64 - raw_len.max(1).saturating_sub(1).leading_zeros() + 2).clamp(PAIR_BITS, MAX_PAIR_BITS)
}
const RATE: i32 = 6;
const W0: i32 = 24000;
const LIMIT: u32 = 255;

/// What the match model's guess at the next byte says of a token that could end or go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guess {
    /// no guess
    None = 0,
    /// a longer token goes on with the guessed byte
    GoesOn = 1,
    /// no longer token goes on with it: if the guess is right, the token ends
    Ends = 2,
}

impl Guess {
    /// What the match model's guess (`cm.guess()`: its byte and match length) says of a token
    /// that could end after `depth` bytes or go on as one of the tokens `lo + 1 .. hi` of `lex`
    /// (those that begin with the bytes so far), with the match length (0 without a guess).
    pub fn of(guess: Option<(u32, u32)>, lex: &LexOrder, lo: usize, hi: usize, depth: usize) -> (Guess, u32) {
        match guess {
            None => (Guess::None, 0),
            Some((b, len)) => {
                let i = lex.first_with_byte_at_least(lo + 1, hi, depth, b as u8);
                let on = i < hi && lex.piece(i)[depth] == b as u8;
                (if on { Guess::GoesOn } else { Guess::Ends }, len)
            }
        }
    }
}

pub struct Boundary {
    /// per prefix token
    by_prefix: Vec<Counter>,
    /// per (prefix token, previous token), hashed
    by_pair: Vec<Counter>,
    /// per the last 3 and 5 bytes (the prefix's own included) and the depth, hashed; from format
    /// 15 on also per the last 8 bytes and the depth
    by_bytes: Vec<Vec<Counter>>,
    /// per what the match model's guess says (`Guess`) and its length
    by_guess: Vec<Counter>,
    mixer: Mixer,
    apm: Apm,
    bits: u32,
    /// the inputs: 7, or 8 from format 15 on
    x: [i32; 8],
    n: usize,
    at: (usize, usize, [usize; 3], usize),
}

impl Boundary {
    /// A predictor for a vocabulary of `vocab` ids, as blend frames before format 15 have it
    /// (`larger` None), or as those of format 15 on have it for a frame of `raw_len` bytes
    /// (`Some(raw_len)`: larger tables and the 8-byte context); `warmup`: its mixer and APM warm
    /// up (`Mixer::warmed`, `Apm::with_warm_up`; format 18 on).
    pub fn new(vocab: usize, larger: Option<u64>, warmup: bool) -> Boundary {
        let bits = larger.map_or(PAIR_BITS, table_bits);
        let n = 7 + larger.is_some() as usize;
        Boundary {
            by_prefix: vec![Counter::INIT; vocab],
            by_pair: vec![Counter::INIT; 1 << bits],
            by_bytes: vec![vec![Counter::INIT; 1 << bits]; 2 + larger.is_some() as usize],
            by_guess: vec![Counter::INIT; 3 * 16],
            mixer: Mixer::new(n, 8 * 4, RATE, W0).warmed(warmup),
            apm: Apm::with_warm_up(vocab, 7, warmup),
            bits,
            x: [0; 8],
            n,
            at: (0, 0, [0; 3], 0),
        }
    }

    /// Bytes a predictor for `vocab` ids allocates for a frame of `raw_len` bytes (format 15's,
    /// the larger).
    pub fn memory(vocab: usize, raw_len: u64) -> u64 {
        let counters = 2 * vocab + 4 * (1 << table_bits(raw_len)) + 3 * 16;
        (counters * std::mem::size_of::<Counter>() + vocab * 33 * 4 + 8 * 4 * 8 * 4) as u64
    }

    /// P(the token ends) in 12 bits, in [1, 4095]: `p_model` is the transformer's (12 bits),
    /// `prefix` the id of the token the bytes so far spell, `prev` the previous token (the BOS
    /// token for a chunk's first), `depth` the bytes so far (>= 1).
    /// `recent`: the last 8 bytes, the latest lowest; `guess`: what the match model's guess at
    /// the next byte implies, with the match length.
    pub fn predict(
        &mut self,
        p_model: i32,
        prefix: u32,
        prev: u32,
        depth: usize,
        recent: u64,
        guess: (Guess, u32),
    ) -> i32 {
        let bits = self.bits;
        let slot = |h: u32| (fmix(h) >> (32 - bits)) as usize;
        let pair = slot(prefix.wrapping_mul(0x9E37_79B1) ^ prev);
        let o3 = slot((recent as u32 & 0xFF_FFFF) ^ ((depth as u32) << 24));
        let o5 = slot(fmix(recent as u32) ^ (recent >> 32) as u32 & 0xFF ^ ((depth as u32) << 8));
        let o8 = slot(fmix(recent as u32 ^ 0x0808_0808) ^ fmix((recent >> 32) as u32 ^ depth as u32));
        let g = guess.0 as usize * 16 + guess.1.min(15) as usize;
        self.at = (prefix as usize, pair, [o3, o5, o8], g);
        let s = stretch(p_model.clamp(1, 4095));
        let seen = |c: Counter| if c.count() == 0 { 0 } else { stretch(c.p12()) };
        self.x[..7].copy_from_slice(&[
            s,
            seen(self.by_prefix[prefix as usize]),
            seen(self.by_pair[pair]),
            seen(self.by_bytes[0][o3]),
            seen(self.by_bytes[1][o5]),
            seen(self.by_guess[g]),
            256,
        ]);
        if let Some(t) = self.by_bytes.get(2) {
            self.x[7] = seen(t[o8]);
        }
        let conf = (s.unsigned_abs() as usize / 256).min(7);
        let pr = self.mixer.mix(&self.x[..self.n], conf * 4 + depth.min(4) - 1);
        let refined = self.apm.refine(pr, prefix as usize);
        ((pr + refined + 1) >> 1).clamp(1, 4095)
    }

    /// Learn the decision just coded (after `predict`): 1 = the token ended.
    pub fn update(&mut self, bit: u32) {
        self.by_prefix[self.at.0].update(bit, LIMIT);
        self.by_pair[self.at.1].update(bit, LIMIT);
        for (t, &i) in self.by_bytes.iter_mut().zip(&self.at.2) {
            t[i].update(bit, LIMIT);
        }
        self.by_guess[self.at.3].update(bit, 1023);
        self.mixer.update(&self.x[..self.n], bit);
        self.apm.update(bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_grow_with_the_frame_from_format_15_on() {
        // about four counters a byte, between 2^16 and 2^20
        assert_eq!(table_bits(0), 16);
        assert_eq!(table_bits(3634), 16);
        assert_eq!(table_bits(100_000), 19);
        assert_eq!(table_bits(152_089), 20);
        assert_eq!(table_bits(64 << 20), 20);
        assert_eq!(Boundary::new(8, None, false).by_pair.len(), 1 << 16);
        assert_eq!(Boundary::new(8, Some(100_000), false).by_pair.len(), 1 << 19);
        assert_eq!(Boundary::new(8, Some(100_000), false).by_bytes.len(), 3);
        assert!(Boundary::memory(8, 1 << 20) > 16 << 20);
    }

    #[test]
    fn a_token_that_always_ends_becomes_cheap() {
        // the transformer says 50/50, but this prefix always ends: both kinds of predictor learn it
        for (larger, warmup) in [(None, false), (Some(10_000), false), (Some(10_000), true)] {
            let mut b = Boundary::new(16, larger, warmup);
            let mut last = 0;
            for i in 0..500u64 {
                last = b.predict(2048, 3, 5, 1, i * 0x0101, (Guess::None, 0));
                b.update(1);
            }
            assert!(last > 3900, "{larger:?}: P(end) = {last}");
        }
    }
}
