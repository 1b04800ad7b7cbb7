//! Bit histories (deep CM frames, format 10 on; docs/MODEL.md, "Bit histories"). Each counter of
//! the line table also keeps the last four bits its context saw (`Counter::history`). Per context,
//! a history map learns P(1) for every (history, count bucket, counter probability bucket), which
//! tells a context whose bits changed lately from one that is settled; the mixers get it beside
//! the counter's own probability. A fourth mixer chooses its weights by the histories of two
//! contexts (orders 4 and 8).

use super::contexts::Ctx;
use super::counter::{Counter, LineTable, RECIP};
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
    /// per context, `ROWS` x `COLS` probabilities (16 bits), and one entry more, never used, for
    /// readers of 32 bits at a time
    maps: Vec<u16>,
    /// per context, the entry `inputs` read (the one `update` trains)
    at: Vec<u32>,
    /// per context, the history `inputs` saw
    seen: Vec<u32>,
    /// whether this CPU has AVX2 (`inputs` then reads eight contexts at a time)
    avx2: bool,
    /// where the contexts of `SELECT` are in the predictor's list
    select: [usize; 2],
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
    /// For the contexts `ctxs` of a byte predictor (which hold those of `SELECT`).
    pub fn new(ctxs: &[Ctx]) -> Self {
        let n_ctx = ctxs.len();
        let select = SELECT.map(|c| {
            ctxs.iter()
                .position(|&x| x == c)
                .expect("orders 4 and 8 are byte contexts")
        });
        // every row starts at its column's probability: the map begins as the identity
        let maps = (0..n_ctx * ROWS * COLS + 1)
            .map(|j| (squash((j % COLS) as i32 * 256 - 2048 + 128) * 16) as u16)
            .collect();
        Histories {
            maps,
            at: vec![0; n_ctx],
            seen: vec![0; n_ctx],
            avx2: super::mix::has_avx2(),
            select,
        }
    }

    /// Bytes these tables take for `n_ctx` contexts.
    pub fn memory(n_ctx: usize) -> u64 {
        (n_ctx * (ROWS * COLS * 2 + 9)) as u64
    }

    /// Two inputs per context for node slot `node` of `lines` (one line per context): the
    /// counter's stretched probability and its history map's, both 0 for a counter never updated.
    #[inline]
    pub fn inputs(&mut self, table: &LineTable, lines: &[u32], node: usize, x: &mut Vec<i32>) {
        let start = x.len();
        x.resize(start + 2 * lines.len(), 0);
        let x = &mut x[start..];
        let done = if self.avx2 {
            // SAFETY: only where the CPU has AVX2.
            unsafe { self.inputs_avx2(table, lines, node, x) }
        } else {
            0
        };
        let maps = &self.maps[..];
        let per_ctx = lines[done..]
            .iter()
            .zip(&mut self.at[done..])
            .zip(&mut self.seen[done..]);
        for (i, (((&line, at), seen), pair)) in (done..).zip(per_ctx.zip(x[2 * done..].chunks_exact_mut(2))) {
            let c = table.at(line, node);
            *seen = c.history() as u32;
            let st = stretch(c.p12());
            let j = i * ROWS * COLS + ROW_OF[(c.0 & 1023) as usize] as usize + ((st + 2048) >> 8) as usize;
            *at = j as u32;
            if c.line_count() != 0 {
                pair[0] = st;
                pair[1] = stretch((maps[j] >> 4) as i32);
            }
        }
    }

    /// `inputs` for the first contexts in whole groups of eight, with gathers; returns how many
    /// it did (the scalar loop does the rest, the same way).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn inputs_avx2(&mut self, table: &LineTable, lines: &[u32], node: usize, x: &mut [i32]) -> usize {
        use std::arch::x86_64::*;
        let counters = table.counters();
        let stretch_t = super::logistic::stretch_padded();
        let set = _mm256_set1_epi32;
        // a gather of 32 bits at a 16-bit entry holds the entry in its low half
        let low16 = |v: __m256i| _mm256_srai_epi32(_mm256_slli_epi32(v, 16), 16);
        let groups = lines.len() / 8;
        for g in 0..groups {
            let at = g * 8;
            // SAFETY: every index read is in bounds: a line (below the table's line count, as
            // `find` returned it) · 16 + a node slot (< 16) in `counters`; a 12-bit probability
            // (< 4096) in the stretch table, whose 32-bit read ends within its padding; a map
            // entry (context < n_ctx, row < ROWS, column < COLS), whose read ends within the
            // maps' padding entry. Loads and stores of 8 lanes stay within `lines`, `at`, `seen`
            // (n_ctx long, `at + 8 <= n_ctx`) and `x` (2 · n_ctx long).
            unsafe {
                let line = _mm256_loadu_si256(lines[at..].as_ptr() as *const __m256i);
                let slot = _mm256_add_epi32(_mm256_slli_epi32(line, 4), set(node as i32));
                let c = _mm256_i32gather_epi32::<4>(counters.as_ptr() as *const i32, slot);
                let st = low16(_mm256_i32gather_epi32::<2>(
                    stretch_t.as_ptr() as *const i32,
                    _mm256_srli_epi32(c, 20),
                ));
                let h = _mm256_and_si256(_mm256_srli_epi32(c, 5), set(31));
                let n = _mm256_and_si256(c, set(31));
                // bucket(n) = (n > 4) + (n > 10) + (n > 29); each comparison gives -1 or 0
                let minus_bucket = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_cmpgt_epi32(n, set(4)), _mm256_cmpgt_epi32(n, set(10))),
                    _mm256_cmpgt_epi32(n, set(29)),
                );
                let row = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_slli_epi32(h, 2), minus_bucket), 4);
                let ctx = _mm256_mullo_epi32(
                    _mm256_add_epi32(set(at as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                    set((ROWS * COLS) as i32),
                );
                let col = _mm256_srai_epi32(_mm256_add_epi32(st, set(2048)), 8);
                let j = _mm256_add_epi32(_mm256_add_epi32(ctx, row), col);
                let m = _mm256_i32gather_epi32::<2>(self.maps.as_ptr() as *const i32, j);
                let m = _mm256_srli_epi32(_mm256_and_si256(m, set(0xFFFF)), 4);
                let sm = low16(_mm256_i32gather_epi32::<2>(stretch_t.as_ptr() as *const i32, m));
                // a counter never updated says nothing
                let fresh = _mm256_cmpeq_epi32(n, _mm256_setzero_si256());
                let st = _mm256_andnot_si256(fresh, st);
                let sm = _mm256_andnot_si256(fresh, sm);
                _mm256_storeu_si256(self.at[at..].as_mut_ptr() as *mut __m256i, j);
                _mm256_storeu_si256(self.seen[at..].as_mut_ptr() as *mut __m256i, h);
                // interleave: st0 sm0 st1 sm1 ... st7 sm7
                let lo = _mm256_unpacklo_epi32(st, sm);
                let hi = _mm256_unpackhi_epi32(st, sm);
                let out = x[2 * at..].as_mut_ptr() as *mut __m256i;
                _mm256_storeu_si256(out, _mm256_permute2x128_si256::<0x20>(lo, hi));
                _mm256_storeu_si256(out.add(1), _mm256_permute2x128_si256::<0x31>(lo, hi));
            }
        }
        groups * 8
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn inputs_avx2(&mut self, _: &LineTable, _: &[u32], _: usize, _: &mut [i32]) -> usize {
        0
    }

    /// The fourth mixer's weight set, from the histories `inputs` saw.
    #[inline]
    pub fn select(&self) -> usize {
        (self.seen[self.select[0]] * 32 + self.seen[self.select[1]]) as usize
    }

    /// Train the entries `inputs` read, and the counters, on the coded bit.
    #[inline]
    pub fn update(&mut self, table: &mut LineTable, lines: &[u32], node: usize, bit: u32, limit: u32) {
        table.update_all(lines, node, bit, limit, true);
        let target = if bit != 0 { 65535 } else { 0 };
        let done = if self.avx2 {
            // SAFETY: only where the CPU has AVX2.
            unsafe { self.train_maps_avx2(target) }
        } else {
            0
        };
        for &j in &self.at[done..] {
            let t = self.maps[j as usize] as i32;
            self.maps[j as usize] = (t + ((target - t) >> RATE)) as u16;
        }
    }

    /// `update`'s training of the map entries for the first contexts in whole groups of eight;
    /// returns how many it did. The entries of different contexts lie in different maps, so
    /// the eight are always different.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn train_maps_avx2(&mut self, target: i32) -> usize {
        use std::arch::x86_64::*;
        let groups = self.at.len() / 8;
        for g in 0..groups {
            let mut new = [0u32; 8];
            // SAFETY: 8 entries of `at` from `g · 8` on; each a map entry whose 32-bit read ends
            // within the maps' padding entry (see `inputs_avx2`); `new` holds 8 u32s.
            unsafe {
                let j = _mm256_loadu_si256(self.at[g * 8..].as_ptr() as *const __m256i);
                let t = _mm256_i32gather_epi32::<2>(self.maps.as_ptr() as *const i32, j);
                let t = _mm256_and_si256(t, _mm256_set1_epi32(0xFFFF));
                let step = _mm256_srai_epi32(_mm256_sub_epi32(_mm256_set1_epi32(target), t), RATE as i32);
                _mm256_storeu_si256(new.as_mut_ptr() as *mut __m256i, _mm256_add_epi32(t, step));
            }
            for (&j, &v) in self.at[g * 8..g * 8 + 8].iter().zip(&new) {
                self.maps[j as usize] = v as u16;
            }
        }
        groups * 8
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn train_maps_avx2(&mut self, _: i32) -> usize {
        0
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
        let v = self.0;
        let n = v & 31;
        let h = NEXT_HISTORY[(self.history() << 1) | bit as usize] as u32;
        let p = (v >> 10) as i64;
        let target = if bit != 0 { (1i64 << 22) - 1 } else { 0 };
        let p = p + (((target - p) * RECIP[n as usize] as i64) >> 16);
        let n = n + (n < limit) as u32;
        self.0 = ((p as u32) << 10) | (h << 5) | n;
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

    /// The AVX2 `inputs` (eight contexts at a time) must give the scalar loop's inputs, entries
    /// and histories, so that both train the same maps, for every context count.
    #[test]
    fn avx2_inputs_match_the_scalar_loop() {
        let ctxs = crate::cm::contexts::byte_contexts(true);
        for n_ctx in [2, 8, 9, 16, ctxs.len()] {
            let mut ctx_list: Vec<Ctx> = SELECT.to_vec();
            ctx_list.extend(ctxs.iter().filter(|c| !SELECT.contains(c)).take(n_ctx - 2));
            let (mut fast, mut plain) = (Histories::new(&ctx_list), Histories::new(&ctx_list));
            plain.avx2 = false;
            let mut t = LineTable::new(7);
            let mut seed = 777u32;
            let mut next = move || {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                seed
            };
            // few contexts, so that lines live long and counts reach every bucket
            let pool: Vec<u32> = (0..40).map(|_| next()).collect();
            for _ in 0..2000 {
                let lines: Vec<u32> = (0..n_ctx).map(|_| t.find(pool[next() as usize % 40])).collect();
                for _ in 0..6 {
                    let (node, bit) = (1 + next() as usize % 15, next() >> 31);
                    let (mut a, mut b) = (vec![5], vec![5]);
                    fast.inputs(&t, &lines, node, &mut a);
                    plain.inputs(&t, &lines, node, &mut b);
                    assert_eq!(a, b, "{n_ctx} contexts");
                    assert_eq!((&fast.at, &fast.seen), (&plain.at, &plain.seen));
                    assert_eq!(fast.select(), plain.select());
                    fast.update(&mut t, &lines, node, bit, 30);
                    // the same counters for both: only the maps are trained a second time
                    let target = if bit != 0 { 65535 } else { 0 };
                    for &j in &plain.at {
                        let v = plain.maps[j as usize] as i32;
                        plain.maps[j as usize] = (v + ((target - v) >> RATE)) as u16;
                    }
                }
            }
            assert_eq!(fast.maps, plain.maps);
        }
    }

    #[test]
    fn maps_start_as_the_identity_and_learn() {
        let mut t = LineTable::new(4);
        // two contexts (the selecting ones) on two lines that see the same bits
        let lines = [t.find(0x1234_5678), t.find(0x8765_4321)];
        let mut h = Histories::new(&SELECT);
        let mut x = Vec::new();
        h.inputs(&t, &lines, 1, &mut x);
        assert_eq!(x, [0, 0, 0, 0], "a context never seen says nothing");
        // a context that alternates 1, 0, 1, 0: its counter hovers near 1/2, its map learns that
        // after ...0 comes 1
        for _ in 0..400 {
            for bit in [1, 0] {
                x.clear();
                h.inputs(&t, &lines, 1, &mut x);
                h.update(&mut t, &lines, 1, bit, 30);
            }
        }
        x.clear();
        h.inputs(&t, &lines, 1, &mut x);
        assert!(x[0].abs() < 400, "counter {}", x[0]);
        assert!(x[1] > 1000, "map {}", x[1]);
    }
}
