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

use super::arith::rq;
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
    /// per group of 8 tokens, whether any of their weights may be other than 0 (the products of
    /// the others are 0 and are not computed)
    moved: Vec<bool>,
    /// the current head input
    a: Vec<i16>,
    /// per token, the head's product with `a` and the learned weights'
    h: Vec<i32>,
    z: Vec<i32>,
    logits: Vec<i64>,
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
            moved: vec![false; v.div_ceil(8)],
            h: vec![0; v],
            z: vec![0; v],
            a: vec![0; d],
            logits: vec![0; v],
        }
    }

    /// Bytes a head for `model`'s shape holds.
    pub fn memory(vocab: usize, d_model: usize) -> u64 {
        // the weights; per token its bias, `h`, `z` and logit; a flag per 8 tokens; `a`
        (vocab * d_model * 2 + vocab * (4 + 4 + 4 + 8) + vocab.div_ceil(8) + d_model * 2) as u64
    }

    /// The table for the position whose head input is `a` (`d` values), into `out` (`vocab`).
    pub fn table(&mut self, a: &[i8], out: &mut [u32]) {
        let (d, head) = (self.d, &self.model.head);
        assert!(a.len() == d && out.len() == self.logits.len());
        for (w, &x) in self.a.iter_mut().zip(a) {
            *w = x as i16;
        }
        // the model's products, then the learned ones (0 for a row that never moved)
        dot_rows(&self.a, &head.w, d, &mut self.h);
        dot_rows16(&self.a, &self.w, &self.moved, &mut self.z);
        for (t, l) in self.logits.iter_mut().enumerate() {
            *l = rq(self.h[t] as i64, head.m[t]) + ((self.z[t] + self.bias[t] * CONST_IN) >> OUT_SHIFT) as i64;
        }
        freq_table(&self.logits, &self.model.exp_out, out);
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
        let d = self.d;
        let total: i64 = table.iter().map(|&f| f as i64).sum();
        let half = 1i32 << (RATE_SHIFT - 1);
        // a row whose every step rounds to zero is left as it is (exactly what the steps would do)
        let largest = (127 * LR).max(CONST_IN * LR_CONST);
        for (t, (&f, w)) in table.iter().zip(self.w.chunks_exact_mut(d)).enumerate() {
            // the error in units of 2^-16 of the sum (at most 2^16 in size)
            let e = ((if t == y as usize { total } else { 0 } - f as i64) >> 8) as i32;
            if e.abs() * largest < half {
                continue;
            }
            let c = e * LR;
            for (w, &x) in w.iter_mut().zip(&self.a) {
                *w = (*w as i32 + ((c * x as i32 + half) >> RATE_SHIFT)).clamp(-W_MAX, W_MAX) as i16;
            }
            self.moved[t / 8] = true;
            let b = &mut self.bias[t];
            *b = (*b + ((e * (LR_CONST * CONST_IN) + half) >> RATE_SHIFT)).clamp(-W_MAX, W_MAX);
        }
    }
}

/// `out[t] = Σ_j a[j] · w[t · d + j]` for every row `t` of `d = a.len()` 16-bit weights
/// (`|a| <= 127`, so every sum is exact in 32 bits, in any order), except that the rows of a
/// group of 8 that has not `moved` (all its weights are 0) get 0 without a product.
fn dot_rows16(a: &[i16], w: &[i16], moved: &[bool], out: &mut [i32]) {
    let d = a.len();
    assert!(w.len() == d * out.len() && moved.len() == out.len().div_ceil(8));
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(16) && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, and `w` holds `out.len()` rows of `d` (asserted above)
        unsafe { avx2::dot_rows16(a, w, moved, out) };
        return;
    }
    for (t, (o, row)) in out.iter_mut().zip(w.chunks_exact(d)).enumerate() {
        *o = if moved[t / 8] {
            row.iter().zip(a).map(|(&w, &x)| w as i32 * x as i32).sum()
        } else {
            0
        };
    }
}

/// `dot_rows16` in AVX2: eight rows at a time, sixteen products per step, the eight sums reduced
/// together (as `backend::simd`'s `dot_rows`).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::backend::simd::avx2::sums_of_eight;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX2, `a.len()` be a multiple of 16, `w` hold `out.len()` rows of
    /// `a.len()` values and `moved` a flag per 8 rows.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_rows16(a: &[i16], w: &[i16], moved: &[bool], out: &mut [i32]) {
        let d = a.len();
        let (ap, wp) = (a.as_ptr(), w.as_ptr());
        let mut o = 0;
        while o < out.len() {
            let n = (out.len() - o).min(8);
            if !moved[o / 8] {
                out[o..o + n].fill(0);
                o += n;
                continue;
            }
            let mut acc = [_mm256_setzero_si256(); 8];
            for s in (0..d).step_by(16) {
                // SAFETY: `s + 16 <= d`, and rows `o..o + n` lie in `w`; unaligned loads
                unsafe {
                    let av = _mm256_loadu_si256(ap.add(s) as *const __m256i);
                    for (k, acc) in acc.iter_mut().enumerate().take(n) {
                        let wv = _mm256_loadu_si256(wp.add((o + k) * d + s) as *const __m256i);
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(av, wv));
                    }
                }
            }
            let sums = sums_of_eight(&acc);
            let mut lanes = [0i32; 8];
            // SAFETY: `lanes` holds 8 i32s
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sums) };
            out[o..o + n].copy_from_slice(&lanes[..n]);
            o += n;
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
        let mut t = vec![0u32; v];
        for (want, h) in tables.chunks_exact(v).zip(heads.chunks_exact(d)) {
            head.table(h, &mut t);
            assert!(t == want);
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
