//! The output layer adapted while coding (blend frames, format 19 on; docs/MODEL.md, "Adaptive
//! output layer"): beside the model's own head, a per-token correction learned from the chunk's
//! tokens so far (dynamic evaluation of the last layer, in exact integers). The transformer's
//! body is unchanged and still runs over blocks of positions at once: only the output layer, whose
//! input does not depend on what was learned, runs position by position.
//!
//! For a position with head input `a` (the final norm's `d` values), token `t` gets the logit
//! `rq(head[t] · a, m[t]) + ((w[t] · a + 16 · bias[t]) >> 12)` and the table is `freq_table` of
//! those logits, as in the forward pass. Once the token `y` is known, with the error
//! `e = ([t = y] · T − f[t]) >> 8` (`T` the table's sum), every row moves toward a lower cost:
//! `w[t][j] += (e · LR · a[j] + 2^19) >> 20`, `bias[t] += (e · 16 · LR_CONST + 2^19) >> 20`, each
//! clamped to `±W_MAX`.

use super::arith::{rq, MUL_SHIFT};
use super::Model;
use crate::backend::simd::dot_rows;
use crate::table::freq_table;

/// The shift from `w · a` to logit units (1/64 nat): a weight of `2^14` adds one nat per unit of
/// the norm's output (16).
const OUT_SHIFT: u32 = 12;
/// The constant input that carries each token's bias.
const CONST_IN: i32 = 16;
/// The learning rates of the weights on `a` and of the bias (on the constant input), over
/// `2^RATE_SHIFT`, for errors in units of `2^-16` of the table's sum (measured on the nine texts
/// of the bench that code as blend frames).
const LR: i32 = 98;
const LR_CONST: i32 = 819;
const RATE_SHIFT: u32 = 20;
/// Weights are 16-bit (measured: a bound of 2^16 gave the same bytes on alice29.txt and
/// asyoulik.txt).
const W_MAX: i32 = i16::MAX as i32;

/// The adapted output layer of one chunk.
pub struct AdaptiveHead<'m> {
    model: &'m Model,
    d: usize,
    /// per token, `d` weights on the head input
    w: Vec<i16>,
    /// per token, the weight on the constant input
    bias: Vec<i32>,
    /// per token, whether any of its weights may be other than 0
    moved: Vec<bool>,
    /// the tokens that moved, in increasing order: the only rows whose products are computed
    /// (the others' are 0)
    moved_rows: Vec<u32>,
    /// the current head input
    a: Vec<i16>,
    /// per token, the head's product with `a` and the learned weights' (0 for a row not moved)
    h: Vec<i32>,
    z: Vec<i32>,
    /// per token, its logit: 64-bit in the plain path, 32-bit in the vectorised one
    logits: Vec<i64>,
    narrow: Vec<i32>,
    /// whether every logit this model can give lies in `(-2^30, 2^30)`, so that 32-bit lanes
    /// compute the same integers (checked once, from the weights)
    fits_32: bool,
}

impl<'m> AdaptiveHead<'m> {
    /// A head that has learned nothing yet: its tables are the model's own.
    pub fn new(model: &'m Model) -> Self {
        let (v, d) = (model.cfg.vocab, model.cfg.d_model);
        assert!(d < 256, "w · a must fit in 32 bits");
        AdaptiveHead {
            model,
            d,
            w: vec![0; v * d],
            bias: vec![0; v],
            moved: vec![false; v],
            moved_rows: Vec::new(),
            h: vec![0; v],
            z: vec![0; v],
            a: vec![0; d],
            logits: vec![0; v],
            narrow: vec![0; v],
            fits_32: logits_fit_32_bits(model),
        }
    }

    /// Bytes a head for `model`'s shape holds.
    pub fn memory(vocab: usize, d_model: usize) -> u64 {
        // the weights; per token its bias, `h`, `z`, two logits, a flag and a moved row's index;
        // `a`
        (vocab * d_model * 2 + vocab * (4 + 4 + 4 + 8 + 4 + 1 + 4) + d_model * 2) as u64
    }

    /// The table for the position whose head input is `a` (`d` values), into `out` (`vocab`).
    pub fn table(&mut self, a: &[i8], out: &mut [u32]) {
        let d = self.d;
        assert!(a.len() == d && out.len() == self.logits.len());
        for (w, &x) in self.a.iter_mut().zip(a) {
            *w = x as i16;
        }
        #[cfg(target_arch = "x86_64")]
        if self.fits_32 && d.is_multiple_of(16) && std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), `d` is a multiple of 16
            unsafe { self.table_avx2(out) };
            return;
        }
        self.table_plain(out)
    }

    /// The reference: the model's products, the learned ones, 64-bit logits and `freq_table`.
    fn table_plain(&mut self, out: &mut [u32]) {
        let (d, head) = (self.d, &self.model.head);
        dot_rows(&self.a, &head.w, d, &mut self.h);
        for &t in &self.moved_rows {
            let row = &self.w[t as usize * d..][..d];
            self.z[t as usize] = row.iter().zip(&self.a).map(|(&w, &x)| w as i32 * x as i32).sum();
        }
        for (t, l) in self.logits.iter_mut().enumerate() {
            *l = logit(self.h[t], head.m[t], self.z[t], self.bias[t]);
        }
        freq_table(&self.logits, &self.model.exp_out, out);
    }

    /// `table_plain` in AVX2 lanes: the same integers (the logits fit 32 bits: `fits_32`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn table_avx2(&mut self, out: &mut [u32]) {
        let (d, head) = (self.d, &self.model.head);
        dot_rows(&self.a, &head.w, d, &mut self.h);
        // SAFETY: the CPU has AVX2, `d` is a multiple of 16 and every moved row lies in `w`
        unsafe { avx2::learned_products(&self.a, &self.w, &self.moved_rows, &mut self.z) };
        let parts = avx2::Parts {
            h: &self.h,
            m: &head.m,
            z: &self.z,
            bias: &self.bias,
        };
        // SAFETY: the CPU has AVX2; every logit fits 32 bits (`fits_32`)
        unsafe { avx2::freq_table(&parts, &self.model.exp_out, &mut self.narrow, out) };
    }

    /// Learn that the position whose `table` was last made (`table`: that table) held token `y`.
    pub fn learn(&mut self, y: u32, table: &[u32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above)
            unsafe { self.learn_avx2(y, table) };
            return;
        }
        self.learn_any(y, table)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn learn_avx2(&mut self, y: u32, table: &[u32]) {
        self.learn_any(y, table)
    }

    #[inline(always)]
    fn learn_any(&mut self, y: u32, table: &[u32]) {
        let total: u64 = table.iter().map(|&f| f as u64).sum();
        // Only the token seen, and those whose entry exceeds `SKIPPED_UP_TO`, can move: for any
        // other, every step rounds to 0.
        for (i, group) in table.chunks(8).enumerate() {
            if group.iter().any(|&f| f > SKIPPED_UP_TO) {
                for (k, &f) in group.iter().enumerate() {
                    let t = i * 8 + k;
                    if f > SKIPPED_UP_TO && t != y as usize {
                        self.step(t, -(f as i64));
                    }
                }
            }
        }
        self.step(y as usize, total as i64 - table[y as usize] as i64);
    }

    /// One row's step, for the error `diff` (`[t = y] · T − f[t]`); none if every step rounds to 0.
    #[inline(always)]
    fn step(&mut self, t: usize, diff: i64) {
        // the error in units of 2^-16 of the sum (at most 2^16 in size)
        let e = (diff >> 8) as i32;
        if e.abs() * LARGEST_RATE < HALF {
            return;
        }
        let c = e * LR;
        for (w, &x) in self.w[t * self.d..][..self.d].iter_mut().zip(&self.a) {
            *w = (*w as i32 + ((c * x as i32 + HALF) >> RATE_SHIFT)).clamp(-W_MAX, W_MAX) as i16;
        }
        if !self.moved[t] {
            self.moved[t] = true;
            // in order, so that the products read the weights front to back
            let at = self.moved_rows.partition_point(|&r| r < t as u32);
            self.moved_rows.insert(at, t as u32);
        }
        let b = &mut self.bias[t];
        *b = (*b + ((e * (LR_CONST * CONST_IN) + HALF) >> RATE_SHIFT)).clamp(-W_MAX, W_MAX);
    }
}

/// A token's logit from the head's product `h` with its multiplier `m`, and the learned product
/// `z` with the bias.
#[inline(always)]
fn logit(h: i32, m: i32, z: i32, bias: i32) -> i64 {
    rq(h as i64, m) + ((z + bias * CONST_IN) >> OUT_SHIFT) as i64
}

/// Half of the rates' unit (rounding).
const HALF: i32 = 1 << (RATE_SHIFT - 1);
/// The largest factor from an error to a step: a row whose error times it is below `HALF` is left
/// as it is, exactly what its steps would do.
const LARGEST_RATE: i32 = if 127 * LR > CONST_IN * LR_CONST {
    127 * LR
} else {
    CONST_IN * LR_CONST
};
/// A token other than the one seen, with a table entry `f` up to this, has the error
/// `-ceil(f / 256)`, whose size times `LARGEST_RATE` is below `HALF`: its row does not move.
const SKIPPED_UP_TO: u32 = 256 * ((HALF - 1) / LARGEST_RATE) as u32;

/// Whether every logit `model`'s head can give, with any head input and any learned weights,
/// lies in `(-2^30, 2^30)`.
fn logits_fit_32_bits(model: &Model) -> bool {
    let (d, head) = (model.cfg.d_model, &model.head);
    // |w · a| <= 128 · 32767 · d; with the bias, shifted
    let learned = ((128 * W_MAX as i64 * d as i64 + CONST_IN as i64 * W_MAX as i64) >> OUT_SHIFT) + 1;
    head.w.chunks_exact(head.n_in).zip(&head.m).all(|(row, &m)| {
        let h = 128 * row.iter().map(|&w| (w as i64).abs()).sum::<i64>();
        let model = ((h * (m as i64).abs()) >> MUL_SHIFT) + 1;
        model + learned < 1 << 30
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::MUL_SHIFT;
    use crate::backend::simd::avx2::sums_of_eight;
    use crate::table::FREQ_BUDGET;
    use std::arch::x86_64::*;

    /// `w[t] · a` for every row `t` in `rows` into `z[t]`: eight rows at a time, sixteen
    /// products per step, the eight sums reduced together (as `backend::simd`'s `dot_rows`).
    ///
    /// # Safety
    /// The CPU must have AVX2, `a.len()` be a multiple of 16, and every row of `rows` lie in `w`
    /// (`a.len()` values each) and in `z`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn learned_products(a: &[i16], w: &[i16], rows: &[u32], z: &mut [i32]) {
        let d = a.len();
        assert!(rows
            .iter()
            .all(|&t| (t as usize + 1) * d <= w.len() && (t as usize) < z.len()));
        let ap = a.as_ptr();
        for group in rows.chunks(8) {
            // a short last group repeats its first row (its sums are not stored)
            let rows: [*const i16; 8] = std::array::from_fn(|k| {
                // SAFETY: every row lies in `w` (asserted)
                unsafe { w.as_ptr().add(group[k.min(group.len() - 1)] as usize * d) }
            });
            let mut acc = [_mm256_setzero_si256(); 8];
            for s in (0..d).step_by(16) {
                // SAFETY: `s + 16 <= d`, within `a` and each row; unaligned loads
                unsafe {
                    let av = _mm256_loadu_si256(ap.add(s) as *const __m256i);
                    for k in 0..8 {
                        let wv = _mm256_loadu_si256(rows[k].add(s) as *const __m256i);
                        acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(av, wv));
                    }
                }
            }
            let mut lanes = [0i32; 8];
            // SAFETY: `lanes` holds 8 i32s
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sums_of_eight(&acc)) };
            for (&t, &sum) in group.iter().zip(&lanes) {
                z[t as usize] = sum;
            }
        }
    }

    /// Per token, what its logit is made of.
    pub struct Parts<'a> {
        pub h: &'a [i32],
        pub m: &'a [i32],
        pub z: &'a [i32],
        pub bias: &'a [i32],
    }

    /// `freq_table` of the logits `parts` make, into `out`, in 32-bit lanes (`logits`: room for
    /// them). The division is in doubles: `e · k` (below 2^44) and the sum `s` are exact, the
    /// quotient's floor is at most one too large, and `q · s` (below `e · k + s`) is exact, so one
    /// comparison corrects it.
    ///
    /// # Safety
    /// The CPU must have AVX2, and every logit lie in `(-2^30, 2^30)`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn freq_table(p: &Parts, exp_out: &[i32], logits: &mut [i32], out: &mut [u32]) {
        let v = out.len();
        assert!(p.h.len() == v && p.m.len() == v && p.z.len() == v && p.bias.len() == v && logits.len() == v);
        const { assert!(super::CONST_IN == 16 && super::OUT_SHIFT == 12 && MUL_SHIFT == 24) };
        let body = v - v % 8;
        // the logits and their largest
        let round = _mm256_set1_epi64x(1 << (MUL_SHIFT - 1));
        let mut most = _mm256_set1_epi32(i32::MIN);
        for t in (0..body).step_by(8) {
            // SAFETY: `t + 8 <= v`, the length of every slice read and written
            unsafe {
                let h = _mm256_loadu_si256(p.h.as_ptr().add(t) as *const __m256i);
                let m = _mm256_loadu_si256(p.m.as_ptr().add(t) as *const __m256i);
                // rq: the even lanes' products, then the odd lanes'; the low 32 bits of a 64-bit
                // shift are the arithmetic shift's when the result fits 32 bits
                let even = _mm256_add_epi64(_mm256_mul_epi32(h, m), round);
                let odd = _mm256_mul_epi32(_mm256_srli_epi64(h, 32), _mm256_srli_epi64(m, 32));
                let odd = _mm256_add_epi64(odd, round);
                let even = _mm256_srli_epi64(even, MUL_SHIFT as i32);
                let odd = _mm256_slli_epi64(odd, 32 - MUL_SHIFT as i32);
                let rq = _mm256_blend_epi32(even, odd, 0b1010_1010);
                let z = _mm256_loadu_si256(p.z.as_ptr().add(t) as *const __m256i);
                let b = _mm256_loadu_si256(p.bias.as_ptr().add(t) as *const __m256i);
                let learned = _mm256_srai_epi32(_mm256_add_epi32(z, _mm256_slli_epi32(b, 4)), 12);
                let l = _mm256_add_epi32(rq, learned);
                _mm256_storeu_si256(logits.as_mut_ptr().add(t) as *mut __m256i, l);
                most = _mm256_max_epi32(most, l);
            }
        }
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` holds 8 i32s
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, most) };
        let mut lmax = lanes.into_iter().max().unwrap();
        for (t, l) in logits.iter_mut().enumerate().skip(body) {
            // (it fits 32 bits: the caller's promise)
            *l = super::logit(p.h[t], p.m[t], p.z[t], p.bias[t]) as i32;
            lmax = lmax.max(*l);
        }
        // the exponentials and their sum
        let last = exp_out.len() as i32 - 1;
        let (most, lastv) = (_mm256_set1_epi32(lmax), _mm256_set1_epi32(last));
        let mut sums = _mm256_setzero_si256();
        for t in (0..body).step_by(8) {
            // SAFETY: `t + 8 <= v`; every index is in `0..=last` (clamped), within `exp_out`
            unsafe {
                let l = _mm256_loadu_si256(logits.as_ptr().add(t) as *const __m256i);
                let i = _mm256_min_epi32(_mm256_sub_epi32(most, l), lastv);
                let e = _mm256_i32gather_epi32::<4>(exp_out.as_ptr(), i);
                _mm256_storeu_si256(out.as_mut_ptr().add(t) as *mut __m256i, e);
                let lo = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(e));
                let hi = _mm256_cvtepu32_epi64(_mm256_extracti128_si256(e, 1));
                sums = _mm256_add_epi64(sums, _mm256_add_epi64(lo, hi));
            }
        }
        let mut quads = [0u64; 4];
        // SAFETY: `quads` holds 4 u64s
        unsafe { _mm256_storeu_si256(quads.as_mut_ptr() as *mut __m256i, sums) };
        let mut s: u64 = quads.iter().sum();
        for t in body..v {
            out[t] = exp_out[(lmax - logits[t]).min(last) as usize] as u32;
            s += out[t] as u64;
        }
        // the entries: 1 + floor(e · k / s)
        let k = FREQ_BUDGET - v as u64;
        let (kd, sd, one) = (_mm256_set1_pd(k as f64), _mm256_set1_pd(s as f64), _mm256_set1_pd(1.0));
        let quads = v - v % 4;
        for t in (0..quads).step_by(4) {
            // SAFETY: `t + 4 <= v`
            unsafe {
                let e = _mm256_cvtepi32_pd(_mm_loadu_si128(out.as_ptr().add(t) as *const __m128i));
                let n = _mm256_mul_pd(e, kd);
                let q = _mm256_floor_pd(_mm256_div_pd(n, sd));
                let over = _mm256_cmp_pd::<_CMP_GT_OQ>(_mm256_mul_pd(q, sd), n);
                let q = _mm256_add_pd(_mm256_sub_pd(q, _mm256_and_pd(over, one)), one);
                _mm_storeu_si128(out.as_mut_ptr().add(t) as *mut __m128i, _mm256_cvttpd_epi32(q));
            }
        }
        for o in &mut out[quads..] {
            *o = 1 + (*o as u64 * k / s) as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::backend::Backend;

    fn tiny() -> Model {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tiny.safetensors")).unwrap();
        Model::from_bytes(&bytes).unwrap()
    }

    fn xorshift(mut x: u32) -> impl FnMut() -> u32 {
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }
    }

    /// Before it learns anything, the head makes the tables of the forward pass.
    #[test]
    fn a_new_head_gives_the_models_own_tables() {
        let model = tiny();
        let (v, d) = (model.cfg.vocab, model.cfg.d_model);
        let cpu = CpuBackend::new(tiny());
        let (mut a, mut b) = (cpu.stream(), cpu.stream());
        let mut head = AdaptiveHead::new(&model);
        let inputs: Vec<u32> = (0..40).map(|i| (i * 7919) % v as u32).collect();
        let mut tables = vec![0u32; inputs.len() * v];
        let mut heads = vec![0i8; inputs.len() * d];
        a.feed(&inputs, &mut tables).unwrap();
        b.feed_head(&inputs, &mut heads).unwrap();
        assert!(head.fits_32, "the vectorised path is the one tested");
        let (mut t, mut plain) = (vec![0u32; v], vec![0u32; v]);
        for (want, h) in tables.chunks_exact(v).zip(heads.chunks_exact(d)) {
            head.table(h, &mut t);
            head.table_plain(&mut plain);
            assert!(t == want && plain == want);
        }
    }

    /// The vectorised table equals the plain one (64-bit logits, `freq_table`) for the extremes
    /// of every part of a logit and every length, tails included.
    #[test]
    fn the_vectorised_table_equals_the_plain_one() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            let exp_out = tiny().exp_out;
            let mut rnd = xorshift(11);
            let mut pick = |bound: i64, extreme: bool| -> i32 {
                let r = rnd();
                if extreme {
                    if r.is_multiple_of(2) {
                        bound as i32
                    } else {
                        -bound as i32
                    }
                } else {
                    (r as i64 % (2 * bound + 1) - bound) as i32
                }
            };
            for v in (1..=41).chain([512, 4096]) {
                for case in 0..6 {
                    let extreme = case >= 3;
                    // |rq| <= 2^21 · 2^27 / 2^24 = 2^24 and |(z + 16 · bias) >> 12| < 2^18
                    let h: Vec<i32> = (0..v).map(|_| pick(1 << 21, extreme)).collect();
                    let m: Vec<i32> = (0..v).map(|_| pick(1 << 27, extreme && case != 4)).collect();
                    let z: Vec<i32> = (0..v).map(|_| pick(1 << 29, extreme)).collect();
                    let bias: Vec<i32> = (0..v).map(|_| pick(W_MAX as i64, extreme)).collect();
                    let logits: Vec<i64> = (0..v)
                        .map(|t| rq(h[t] as i64, m[t]) + ((z[t] + bias[t] * CONST_IN) >> OUT_SHIFT) as i64)
                        .collect();
                    let mut want = vec![0; v];
                    freq_table(&logits, &exp_out, &mut want);
                    let (mut got, mut narrow) = (vec![0; v], vec![0; v]);
                    let parts = avx2::Parts {
                        h: &h,
                        m: &m,
                        z: &z,
                        bias: &bias,
                    };
                    // SAFETY: the CPU has AVX2, and every logit lies within ±2^25
                    unsafe { avx2::freq_table(&parts, &exp_out, &mut narrow, &mut got) };
                    assert_eq!(got, want, "{v} tokens, case {case}");
                }
            }
        }
    }

    /// The rows skipped as too small to move are exactly those every step leaves unchanged, and
    /// the AVX2 products equal the plain ones: learning matches a plain step over every row.
    #[test]
    fn learning_equals_the_plain_steps() {
        let model = tiny();
        let (v, d) = (model.cfg.vocab, model.cfg.d_model);
        let mut head = AdaptiveHead::new(&model);
        let (mut w, mut bias) = (vec![0i32; v * d], vec![0i32; v]);
        let mut rnd = xorshift(7);
        let mut table = vec![0u32; v];
        for step in 0..300 {
            let a: Vec<i8> = (0..d).map(|_| ((rnd() % 255) as i32 - 127) as i8).collect();
            head.table(&a, &mut table);
            // the plain logits' learned part
            for t in 0..v {
                let z: i32 = (0..d).map(|j| w[t * d + j] * a[j] as i32).sum::<i32>() + bias[t] * CONST_IN;
                assert_eq!(head.z[t] + head.bias[t] * CONST_IN, z, "step {step}, row {t}");
            }
            let y = rnd() % v as u32;
            head.learn(y, &table);
            let total: i64 = table.iter().map(|&f| f as i64).sum();
            let half = 1 << (RATE_SHIFT - 1);
            for t in 0..v {
                let e = ((if t == y as usize { total } else { 0 } - table[t] as i64) >> 8) as i32;
                for j in 0..d {
                    let s = (e * LR * a[j] as i32 + half) >> RATE_SHIFT;
                    w[t * d + j] = (w[t * d + j] + s).clamp(-W_MAX, W_MAX);
                }
                bias[t] = (bias[t] + ((e * LR_CONST * CONST_IN + half) >> RATE_SHIFT)).clamp(-W_MAX, W_MAX);
            }
            assert!(
                head.w.iter().zip(&w).all(|(&x, &y)| x as i32 == y),
                "weights differ at step {step}"
            );
            assert_eq!(head.bias, bias);
        }
        assert!(w.iter().any(|&x| x != 0));
    }

    /// A token that keeps following the same head input becomes likelier than the model says.
    #[test]
    fn a_repeated_token_gets_likelier() {
        let model = tiny();
        let (v, d) = (model.cfg.vocab, model.cfg.d_model);
        let mut head = AdaptiveHead::new(&model);
        let a: Vec<i8> = (0..d).map(|j| ((j * 37) % 61) as i8 - 30).collect();
        let mut table = vec![0u32; v];
        head.table(&a, &mut table);
        let y = 5;
        let share = |t: &[u32]| t[y] as f64 / t.iter().map(|&f| f as f64).sum::<f64>();
        let first = share(&table);
        for _ in 0..50 {
            head.table(&a, &mut table);
            head.learn(y as u32, &table);
        }
        head.table(&a, &mut table);
        assert!(
            share(&table) > 0.5 && share(&table) > 4.0 * first,
            "{first} -> {}",
            share(&table)
        );
    }
}
