//! Format 2 only (kept so that version-2 archives still decode; format 3 replaced it with `cm`):
//! a match model over the chunk's token history and a small logistic mixer that decides, token by
//! token, how far to trust it. Integer only, adapted identically by encoder and decoder
//! (docs/MODEL.md, "Format 2: match model and mixing").
//!
//! The match model finds the latest earlier occurrence of the last `MIN_MATCH` tokens and predicts
//! the token that followed it. The mixer turns the transformer's probability of that token and the
//! match model's learned hit rate (per match length) into one probability `pm`; the final table is
//! the transformer's with only the predicted token's frequency changed so that it gets `pm`.

/// Tokens hashed to find a match.
/// The match model's position table size (entries) and minimum length.
const HASH_BITS: u32 = 18;
const MIN_MATCH: usize = 3;
const N_LEN: usize = 16;
const N_HIT: usize = N_LEN * 4;
const N_CTX: usize = N_HIT * 2;
const N_IN: usize = 3;
/// The adjusted table's total stays at most this.
const MAX_TOTAL: u64 = 1 << 31;

use crate::cm::logistic::{squash, stretch_table};
use crate::cm::matcher::Matcher;

pub struct Mixer {
    hist: Vec<u32>,
    matcher: Matcher,
    hit: [i32; N_HIT],
    w: [[i32; N_IN]; N_CTX],
    stretch: &'static [i16; 4096],
    // what `adjust` decided, for `update`
    last: Option<Pending>,
}

struct Pending {
    pred: u32,
    pm: i32,
    ctx: usize,
    lb: usize,
    inputs: [i32; N_IN],
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    pub fn new() -> Self {
        Mixer {
            hist: Vec::new(),
            matcher: Matcher::new(HASH_BITS, MIN_MATCH),
            hit: [2048; N_HIT],
            w: [[1 << 16, 1 << 14, 0]; N_CTX],
            stretch: stretch_table(),
            last: None,
        }
    }

    /// Change `freqs` (the transformer's table) in place for the next token.
    pub fn adjust(&mut self, freqs: &mut [u32]) {
        self.last = None;
        let Some(pred) = self.matcher.expected(&self.hist) else {
            return;
        };
        let total: u64 = freqs.iter().map(|&f| f as u64).sum();
        let fp = freqs[pred as usize] as u64;
        let p1 = ((fp << 12) / total).clamp(1, 4095) as usize;
        let lb = (self.matcher.match_len() as usize).min(N_LEN - 1) * 4 + (self.matcher.misses() as usize).min(3);
        let ctx = lb * 2 + (2 * fp > total) as usize;
        let inputs = [self.stretch[p1] as i32, self.stretch[self.hit[lb] as usize] as i32, 256];
        let dot: i64 = inputs
            .iter()
            .zip(&self.w[ctx])
            .map(|(&s, &w)| s as i64 * w as i64)
            .sum();
        let pm = squash((dot >> 16).clamp(-2047, 2047) as i32);
        // only the predicted token's frequency changes: g / (others + g) = pm / 4096, capped so the
        // total stays at most 2^31 (one O(1) step per token, which keeps GPU backends simple)
        let others = total - fp;
        let g = ((pm as u64 * others) / (4096 - pm as u64)).clamp(1, MAX_TOTAL - others);
        freqs[pred as usize] = g as u32;
        self.last = Some(Pending {
            pred,
            pm,
            ctx,
            lb,
            inputs,
        });
    }

    /// Learn from the token that was actually coded, and extend the history.
    pub fn update(&mut self, token: u32) {
        if let Some(p) = self.last.take() {
            let bit = (token == p.pred) as i32;
            let err = (bit << 12) - p.pm;
            for (w, &s) in self.w[p.ctx].iter_mut().zip(&p.inputs) {
                *w = (*w + ((s * err) >> 10)).clamp(-(1 << 22), 1 << 22);
            }
            self.hit[p.lb] += ((bit << 12) - self.hit[p.lb]) >> 5;
            self.hit[p.lb] = self.hit[p.lb].clamp(1, 4095);
        }
        self.hist.push(token);
        self.matcher.update(&self.hist);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_become_cheap() {
        // a flat model; a repeated sequence must soon be predicted with high probability
        let seq: Vec<u32> = (0..40u32).map(|i| (i * 7919) % 1000).collect();
        let mut m = Mixer::new();
        let mut last_cost = 0.0;
        for round in 0..6 {
            let mut bits = 0.0f64;
            for &t in &seq {
                let mut f = vec![100u32; 1000];
                m.adjust(&mut f);
                let tot: u64 = f.iter().map(|&x| x as u64).sum();
                bits += -(f[t as usize] as f64 / tot as f64).log2();
                m.update(t);
            }
            last_cost = bits;
            if round == 0 {
                assert!(bits > 300.0);
            }
        }
        assert!(last_cost < 40.0, "repeated sequence still costs {last_cost} bits");
    }
}
