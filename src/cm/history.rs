//! Bit histories (deep CM frames, format 10 on; docs/MODEL.md, "Bit histories"). Each counter of
//! the line table also keeps the last four bits its context saw (`Counter::history`). Per context,
//! a history map learns P(1) for every (history, count bucket, counter probability bucket), which
//! tells a context whose bits changed lately from one that is settled; the mixers get it beside
//! the counter's own probability. A fourth mixer chooses its weights by the histories of two
//! contexts (orders 4 and 8).

use super::contexts::Ctx;
use super::counter::{moved, Counter, LineTable};
use super::logistic::{squash, stretch};

/// Rows per context: 32 histories x 4 count buckets; each row has `COLS` probability buckets.
const ROWS: usize = 32 * 4;
const COLS: usize = 16;
/// A map entry moves 1/64 of the way to each bit.
const RATE: u32 = 6;
/// The contexts whose histories choose the fourth mixer's weight set.
const SELECT: [Ctx; 2] = [Ctx::Order(4), Ctx::Order(8)];
/// Weight sets of the fourth mixer.
pub const SETS: usize = 32 * 32;

pub struct Histories {
    /// per context, `ROWS` x `COLS` probabilities (16 bits)
    maps: Vec<u16>,
    /// per context, the entry `inputs` read (the one `update` trains)
    at: Vec<usize>,
    /// where the contexts of `SELECT` are in the predictor's list
    select: [usize; 2],
    /// one input per context, its map's (mid CM frames), instead of two
    maps_only: bool,
}

/// The count bucket of a line counter's update count (0..=30).
const fn bucket(n: u32) -> usize {
    match n {
        0..=4 => 0,
        5..=10 => 1,
        11..=29 => 2,
        _ => 3,
    }
}

/// `ROW_OF[c & 1023]`: a line counter's row offset in its context's map, `(history · 4 +
/// bucket(count)) · COLS`, from the low ten bits of the counter (count, then history).
static ROW_OF: [u16; 1024] = {
    let mut t = [0u16; 1024];
    let mut v = 0;
    while v < 1024 {
        t[v] = ((((v >> 5) & 31) * 4 + bucket((v & 31) as u32)) * COLS) as u16;
        v += 1;
    }
    t
};

impl Histories {
    /// For the contexts `ctxs` of a byte predictor (which hold those of `SELECT`); with
    /// `maps_only`, one input per context (`inputs`).
    pub fn new(ctxs: &[Ctx], maps_only: bool) -> Self {
        let n_ctx = ctxs.len();
        let select = SELECT.map(|c| {
            ctxs.iter()
                .position(|&x| x == c)
                .expect("orders 4 and 8 are byte contexts")
        });
        // every row starts at its column's probability: the map begins as the identity
        let maps = (0..n_ctx * ROWS * COLS)
            .map(|j| (squash((j % COLS) as i32 * 256 - 2048 + 128) * 16) as u16)
            .collect();
        Histories {
            maps,
            at: vec![0; n_ctx],
            select,
            maps_only,
        }
    }

    /// Bytes these tables take for `n_ctx` contexts.
    pub fn memory(n_ctx: usize) -> u64 {
        (n_ctx * (ROWS * COLS * 2 + 8)) as u64
    }

    /// The inputs of every context for node slot `node` of `lines` (one line per context), into
    /// `x`: two per context (the counter's stretched probability, then its history map's), or with
    /// `maps_only` (mid CM frames) the map's alone; all 0 for a counter never updated.
    #[inline]
    pub fn inputs(&mut self, table: &LineTable, lines: &[usize], node: usize, x: &mut [i32]) {
        if self.maps_only {
            self.inputs_of::<1>(table, lines, node, x);
        } else {
            self.inputs_of::<2>(table, lines, node, x);
        }
    }

    /// How many inputs `inputs` gives each context.
    pub fn per_context(&self) -> usize {
        if self.maps_only {
            1
        } else {
            2
        }
    }

    /// `inputs` with `N` inputs per context: the map's last, the counter's before it if `N` is 2.
    #[inline(always)]
    fn inputs_of<const N: usize>(&mut self, table: &LineTable, lines: &[usize], node: usize, x: &mut [i32]) {
        let maps = &self.maps[..];
        let per_ctx = lines.iter().zip(&mut self.at);
        for (i, ((&line, at), xs)) in per_ctx.zip(x.chunks_exact_mut(N)).enumerate() {
            let c = table.at(line, node);
            let st = stretch(c.p12());
            let j = i * ROWS * COLS + ROW_OF[(c.0 & 1023) as usize] as usize + ((st + 2048) >> 8) as usize;
            *at = j;
            if c.line_count() != 0 {
                xs[0] = st;
                xs[N - 1] = stretch((maps[j] >> 4) as i32);
            } else {
                xs.fill(0);
            }
        }
    }

    /// The fourth mixer's weight set: the histories of the slot `node` of the lines of the
    /// contexts of `SELECT` (before this bit's update).
    #[inline]
    pub fn select(&self, table: &LineTable, lines: &[usize], node: usize) -> usize {
        let h = |i: usize| table.at(lines[self.select[i]], node).history();
        h(0) * 32 + h(1)
    }

    /// Train the entries `inputs` read, and the counters, on the coded bit.
    #[inline]
    pub fn update(&mut self, table: &mut LineTable, lines: &[usize], node: usize, bit: u32, limit: u32) {
        for &line in lines {
            table.get(line, node).update_with_history(bit, limit);
        }
        let target = if bit != 0 { 65535 } else { 0 };
        // the entries read for these lines' contexts (the first `lines.len()`)
        for &j in &self.at[..lines.len()] {
            let t = self.maps[j] as i32;
            self.maps[j] = (t + ((target - t) >> RATE)) as u16;
        }
    }
}

/// `NEXT_HISTORY[h · 2 + bit]`: history `h` after `bit` (a leading 1 and at most four bits).
static NEXT_HISTORY: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        let h = (i >> 1) as u32;
        let h = ((if h > 1 { h } else { 1 }) << 1) | (i as u32 & 1);
        t[i] = (if h >= 32 { 16 | (h & 15) } else { h }) as u8;
        i += 1;
    }
    t
};

impl Counter {
    /// The last (up to) four bits a line counter saw, after a leading 1 (2..=31); 0 before its
    /// first update. Only deep CM frames keep it (bits 5..10, free because a line counter's count
    /// stops at 30).
    #[inline]
    pub fn history(self) -> usize {
        ((self.0 >> 5) & 31) as usize
    }

    /// A line counter's update count (bits 0..5).
    #[inline]
    pub fn line_count(self) -> u32 {
        self.0 & 31
    }

    /// `update` (with `limit` < 32) that also shifts `bit` into the history.
    #[inline]
    pub fn update_with_history(&mut self, bit: u32, limit: u32) {
        debug_assert!(limit < 32);
        // `update`'s steps on the count (bits 0..5) and probability (bits 10..32), in one pass
        let n = self.line_count();
        let h = NEXT_HISTORY[(self.history() << 1) | bit as usize] as u32;
        let n_next = n + (n < limit) as u32;
        self.0 = (moved(self.0 >> 10, n, bit) << 10) | (h << 5) | n_next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_four_bits() {
        let mut c = Counter::INIT;
        assert_eq!(c.history(), 0);
        c.update_with_history(1, 30);
        assert_eq!(c.history(), 0b11);
        for b in [0, 1, 1, 0, 1] {
            c.update_with_history(b, 30);
        }
        // the last four: 1, 1, 0, 1 after the leading 1
        assert_eq!(c.history(), 0b11101);
        assert_eq!(c.line_count(), 6);
        // the probability moves as a plain counter's does
        let mut plain = Counter::INIT;
        for b in [1, 0, 1, 1, 0, 1] {
            plain.update(b, 30);
        }
        assert_eq!(plain.p12(), c.p12());
    }

    #[test]
    fn maps_start_as_the_identity_and_learn() {
        let mut t = LineTable::new(4);
        // two contexts (the selecting ones) on two lines that see the same bits
        let lines = [t.find(0x1234_5678), t.find(0x8765_4321)];
        let mut h = Histories::new(&SELECT, false);
        let mut x = [9; 4];
        h.inputs(&t, &lines, 1, &mut x);
        assert_eq!(x, [0, 0, 0, 0], "a context never seen says nothing");
        // a context that alternates 1, 0, 1, 0: its counter hovers near 1/2, its map learns that
        // after ...0 comes 1
        for _ in 0..400 {
            for bit in [1, 0] {
                h.inputs(&t, &lines, 1, &mut x);
                h.update(&mut t, &lines, 1, bit, 30);
            }
        }
        h.inputs(&t, &lines, 1, &mut x);
        assert!(x[0].abs() < 400, "counter {}", x[0]);
        assert!(x[1] > 1000, "map {}", x[1]);
    }
}
