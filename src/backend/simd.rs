//! The CPU backend's hand-vectorised kernels: many int8 dot products against one vector (the
//! inner loop of every matrix product and of the attention scores), attention's weights from its
//! scores, and a weighted sum of int8 rows (attention's values). Each has a plain loop it must
//! equal (`*_ref`); the AVX2 versions sum the same products in another order, which for integers
//! that cannot overflow (|sum| < 2^31, as docs/MODEL.md, "Bounds", guarantees) gives the same
//! integers. The compiler alone vectorised each dot product separately and paid a horizontal sum
//! per output; here eight outputs share one.

use crate::model::arith::{rq, MUL_SHIFT};

/// `out[o] = sum_i a[i] * w[o * stride + i]` for every `o < out.len()` and `i < a.len()`.
/// `a` holds int8 values widened to i16; every sum must fit in an i32.
#[inline]
pub fn dot_rows(a: &[i16], w: &[i8], stride: usize, out: &mut [i32]) {
    if out.is_empty() {
        return;
    }
    assert!(a.len() <= stride || out.len() == 1);
    assert!((out.len() - 1) * stride + a.len() <= w.len());
    #[cfg(target_arch = "x86_64")]
    if a.len().is_multiple_of(16) && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, and every row read lies in `w` (asserted above).
        unsafe { avx2::dot_rows(a, w, stride, out) };
        return;
    }
    dot_rows_ref(a, w, stride, out);
}

/// The reference: one plain dot product per output.
pub fn dot_rows_ref(a: &[i16], w: &[i8], stride: usize, out: &mut [i32]) {
    for (o, v) in out.iter_mut().enumerate() {
        let row = &w[o * stride..o * stride + a.len()];
        *v = a.iter().zip(row).map(|(&x, &y)| x as i32 * y as i32).sum();
    }
}

/// `a` widened to i16, into `out`.
#[inline]
pub fn widen(a: &[i8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(a.iter().map(|&v| v as i16));
}

/// `out[d] = sum_k e[k] * w[rows[k] + d]` for every `d < out.len()`, with `0 <= e[k] < 2^15`
/// (attention weights); every partial sum must fit in an i32.
#[inline]
pub fn weighted_rows(e: &[i32], rows: &[usize], w: &[i8], out: &mut [i32]) {
    assert_eq!(e.len(), rows.len());
    assert!(rows.iter().all(|&r| r + out.len() <= w.len()));
    debug_assert!(e.iter().all(|&e| (0..1 << 15).contains(&e)));
    #[cfg(target_arch = "x86_64")]
    if out.len().is_multiple_of(16) && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, and every row read lies in `w` (asserted above).
        unsafe { avx2::weighted_rows(e, rows, w, out) };
        return;
    }
    weighted_rows_ref(e, rows, w, out);
}

/// The reference: one row at a time.
pub fn weighted_rows_ref(e: &[i32], rows: &[usize], w: &[i8], out: &mut [i32]) {
    let n = out.len();
    out.fill(0);
    for (&e, &r) in e.iter().zip(rows) {
        for (o, &v) in out.iter_mut().zip(&w[r..r + n]) {
            *o += e * v as i32;
        }
    }
}

/// Attention's weights for one query: with `z[j] = rq(s[j], m) + bias[j]` and `zmax` the largest
/// `z`, `e[j] = exp[min(zmax - z[j], exp.len() - 1)]` for every key `j`; returns the sum of the
/// weights. `z` is scratch. Exact for every i32 input.
#[inline]
pub fn attention_weights(s: &[i32], m: i32, bias: &[i32], exp: &[i32], z: &mut [i64], e: &mut [i32]) -> i64 {
    let n = s.len();
    assert!(n > 0 && bias.len() == n && z.len() == n && e.len() == n && !exp.is_empty());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the slices have the lengths asserted above, and every index
        // gathered from `exp` is clamped to its last entry.
        return unsafe { avx2::attention_weights(s, m, bias, exp, z, e) };
    }
    attention_weights_ref(s, m, bias, exp, z, e)
}

/// The reference: one key at a time.
pub fn attention_weights_ref(s: &[i32], m: i32, bias: &[i32], exp: &[i32], z: &mut [i64], e: &mut [i32]) -> i64 {
    for ((z, &s), &b) in z.iter_mut().zip(s).zip(bias) {
        *z = rq(s as i64, m) + b as i64;
    }
    let zmax = *z.iter().max().unwrap();
    let last = exp.len() as i64 - 1;
    let mut sum = 0;
    for (e, &z) in e.iter_mut().zip(z.iter()) {
        *e = exp[(zmax - z).min(last) as usize];
        sum += *e as i64;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{rq, MUL_SHIFT};
    use std::arch::x86_64::*;

    /// `attention_weights`, four keys at a time in 64-bit lanes. `rq` without an arithmetic
    /// 64-bit shift (AVX2 has none): `s * m + 2^23` lies in (-2^62, 2^62 + 2^23] for any i32
    /// `s` and `m`, so adding 2^62 makes it non-negative below 2^64, the logical shift by 24 is
    /// then the floor, and subtracting 2^62 >> 24 = 2^38 gives `rq` exactly.
    ///
    /// # Safety
    /// The CPU must have AVX2; `s`, `bias`, `z` and `e` must have one length, and `exp` must not
    /// be empty.
    #[target_feature(enable = "avx2")]
    pub unsafe fn attention_weights(s: &[i32], m: i32, bias: &[i32], exp: &[i32], z: &mut [i64], e: &mut [i32]) -> i64 {
        let n = s.len();
        let quads = n / 4 * 4;
        let mv = _mm256_set1_epi64x(m as i64);
        let offset = _mm256_set1_epi64x((1 << 62) + (1 << (MUL_SHIFT - 1)));
        let unoffset = _mm256_set1_epi64x(1 << (62 - MUL_SHIFT));
        let mut zmax = _mm256_set1_epi64x(i64::MIN);
        let (sp, bp, zp) = (s.as_ptr(), bias.as_ptr(), z.as_mut_ptr());
        let mut j = 0;
        while j < quads {
            let sv = _mm256_cvtepi32_epi64(_mm_loadu_si128(sp.add(j) as *const __m128i));
            let bv = _mm256_cvtepi32_epi64(_mm_loadu_si128(bp.add(j) as *const __m128i));
            // `mul_epi32` multiplies the low, sign-extended 32 bits of each lane: s * m exactly
            let prod = _mm256_add_epi64(_mm256_mul_epi32(sv, mv), offset);
            let r = _mm256_sub_epi64(_mm256_srli_epi64::<{ MUL_SHIFT as i32 }>(prod), unoffset);
            let zv = _mm256_add_epi64(r, bv);
            _mm256_storeu_si256(zp.add(j) as *mut __m256i, zv);
            zmax = _mm256_blendv_epi8(zmax, zv, _mm256_cmpgt_epi64(zv, zmax));
            j += 4;
        }
        let mut lanes = [0i64; 4];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, zmax);
        let mut top = lanes.into_iter().max().unwrap();
        for k in quads..n {
            z[k] = rq(s[k] as i64, m) + bias[k] as i64;
            top = top.max(z[k]);
        }
        let last = exp.len() as i64 - 1;
        let (topv, lastv) = (_mm256_set1_epi64x(top), _mm256_set1_epi64x(last));
        let mut sum = _mm256_setzero_si256();
        let (zp, ep) = (z.as_ptr(), e.as_mut_ptr());
        let mut j = 0;
        while j < quads {
            let d = _mm256_sub_epi64(topv, _mm256_loadu_si256(zp.add(j) as *const __m256i));
            let d = _mm256_blendv_epi8(d, lastv, _mm256_cmpgt_epi64(d, lastv));
            let ev = _mm256_i64gather_epi32::<4>(exp.as_ptr(), d);
            _mm_storeu_si128(ep.add(j) as *mut __m128i, ev);
            sum = _mm256_add_epi64(sum, _mm256_cvtepi32_epi64(ev));
            j += 4;
        }
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sum);
        let mut total: i64 = lanes.iter().sum();
        for k in quads..n {
            e[k] = exp[(top - z[k]).min(last) as usize];
            total += e[k] as i64;
        }
        total
    }

    /// `weighted_rows` for `out.len()` a multiple of 16: two rows at a time, their values
    /// interleaved as i16 pairs so that one `madd` multiplies both by their weights and adds.
    /// Interleaving within 128-bit lanes leaves dims 0-3 and 8-11 in one accumulator and 4-7
    /// and 12-15 in the other; the stores put them back in order.
    ///
    /// # Safety
    /// The CPU must have AVX2, and `w[rows[k]..rows[k] + out.len()]` must lie in `w`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn weighted_rows(e: &[i32], rows: &[usize], w: &[i8], out: &mut [i32]) {
        let wp = w.as_ptr();
        for c in (0..out.len()).step_by(16) {
            let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut k = 0;
            while k < e.len() {
                // an odd last row pairs with itself at weight 0
                let (e1, r1) = if k + 1 < e.len() {
                    (e[k + 1], rows[k + 1])
                } else {
                    (0, rows[k])
                };
                let pair = _mm256_set1_epi32(e[k] | (e1 << 16));
                let a = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(rows[k] + c) as *const __m128i));
                let b = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(r1 + c) as *const __m128i));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), pair));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), pair));
                k += 2;
            }
            let op = out.as_mut_ptr().add(c) as *mut __m256i;
            _mm256_storeu_si256(op, _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256(op.add(1), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
    }

    /// The sums of the eight lanes of each of eight accumulators, in one vector (accumulator `k`'s
    /// sum in lane `k`).
    #[target_feature(enable = "avx2")]
    pub(crate) fn sums_of_eight(acc: &[__m256i; 8]) -> __m256i {
        // per 128-bit lane: [A01, A23, B01, B23], then [A0-3, B0-3, C0-3, D0-3]
        let ab = _mm256_hadd_epi32(acc[0], acc[1]);
        let cd = _mm256_hadd_epi32(acc[2], acc[3]);
        let ef = _mm256_hadd_epi32(acc[4], acc[5]);
        let gh = _mm256_hadd_epi32(acc[6], acc[7]);
        let abcd = _mm256_hadd_epi32(ab, cd);
        let efgh = _mm256_hadd_epi32(ef, gh);
        // the low lanes hold each row's first half, the high lanes its second
        let lo = _mm256_permute2x128_si256(abcd, efgh, 0x20);
        let hi = _mm256_permute2x128_si256(abcd, efgh, 0x31);
        _mm256_add_epi32(lo, hi)
    }

    /// `dot_rows` for `a.len()` a multiple of 16: eight rows at a time, sixteen products per
    /// row and step (`madd` sums pairs of i16 products into i32 lanes), then one transposing
    /// reduction of the eight accumulators into the eight sums.
    ///
    /// # Safety
    /// The CPU must have AVX2, and rows `0..out.len()` of `stride` must lie in `w` for
    /// `a.len()` bytes each.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_rows(a: &[i16], w: &[i8], stride: usize, out: &mut [i32]) {
        let steps = a.len() / 16;
        let (ap, wp) = (a.as_ptr(), w.as_ptr());
        let mut o = 0;
        while o + 8 <= out.len() {
            let mut acc = [_mm256_setzero_si256(); 8];
            for s in 0..steps {
                let av = _mm256_loadu_si256(ap.add(s * 16) as *const __m256i);
                for (k, acc) in acc.iter_mut().enumerate() {
                    let wv = _mm_loadu_si128(wp.add((o + k) * stride + s * 16) as *const __m128i);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(av, _mm256_cvtepi8_epi16(wv)));
                }
            }
            _mm256_storeu_si256(out.as_mut_ptr().add(o) as *mut __m256i, sums_of_eight(&acc));
            o += 8;
        }
        for (k, v) in out.iter_mut().enumerate().skip(o) {
            let mut acc = _mm256_setzero_si256();
            for s in 0..steps {
                let av = _mm256_loadu_si256(ap.add(s * 16) as *const __m256i);
                let wv = _mm_loadu_si128(wp.add(k * stride + s * 16) as *const __m128i);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(av, _mm256_cvtepi8_epi16(wv)));
            }
            let x = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b01_00_11_10));
            let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b10_11_00_01));
            *v = _mm_cvtsi128_si32(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weights equal the reference for every length class, the extreme scores, multipliers
    /// and biases, and tables shorter than the distances.
    #[test]
    fn attention_weights_equal_the_reference() {
        let mut next = xorshift(0x2468_ace1);
        for n in [1, 2, 3, 4, 5, 7, 8, 31, 512] {
            for case in 0..4 {
                let s: Vec<i32> = (0..n)
                    .map(|_| match case {
                        0 => (next() % 1000) as i32 - 500,
                        1 => next() as i32 >> 10,
                        2 => i32::MIN,
                        _ => next() as i32,
                    })
                    .collect();
                let bias: Vec<i32> = (0..n)
                    .map(|_| {
                        if case == 3 {
                            next() as i32
                        } else {
                            -((next() % 5000) as i32)
                        }
                    })
                    .collect();
                let m = match case {
                    0 => 58935,
                    1 => -163875,
                    2 => i32::MIN,
                    _ => next() as i32,
                };
                let exp: Vec<i32> = (0..[320, 1, 7, 4097][case]).map(|i| 4096 >> (i / 8).min(13)).collect();
                let (mut zf, mut zs) = (vec![0; n], vec![0; n]);
                let (mut fast, mut slow) = (vec![-1; n], vec![-1; n]);
                let a = attention_weights(&s, m, &bias, &exp, &mut zf, &mut fast);
                let b = attention_weights_ref(&s, m, &bias, &exp, &mut zs, &mut slow);
                assert_eq!((a, &fast, &zf), (b, &slow, &zs), "n {n}, case {case}");
            }
        }
    }

    /// A 32-bit xorshift generator from `seed` (not 0).
    fn xorshift(mut seed: u32) -> impl FnMut() -> u32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        }
    }

    /// The weighted sum equals the reference for odd and even row counts, repeated rows, and the
    /// largest weights and values.
    #[test]
    fn weighted_rows_equals_the_reference() {
        let mut next = xorshift(0x8765_4321);
        for dh in [16, 32, 64, 8, 24] {
            for n in [0, 1, 2, 3, 8, 31, 512] {
                for extreme in [false, true] {
                    let w: Vec<i8> = (0..40 * dh)
                        .map(|_| if extreme { -128 } else { next() as i8 })
                        .collect();
                    let rows: Vec<usize> = (0..n).map(|_| (next() % 40) as usize * dh).collect();
                    let e: Vec<i32> = (0..n)
                        .map(|_| if extreme { 4096 } else { (next() % 4097) as i32 })
                        .collect();
                    let (mut fast, mut slow) = (vec![7; dh], vec![7; dh]);
                    weighted_rows(&e, &rows, &w, &mut fast);
                    weighted_rows_ref(&e, &rows, &w, &mut slow);
                    assert_eq!(fast, slow, "dh {dh}, rows {n}");
                }
            }
        }
    }

    /// The kernel equals the reference for every length class, stride, row count and the
    /// extreme values (where a wrong lane order or a lost carry would show).
    #[test]
    fn dot_rows_equals_the_reference() {
        let mut next = xorshift(0x1234_5678);
        for n in [16, 32, 48, 128, 512, 7, 33] {
            for rows in [1, 7, 8, 9, 16, 23, 64] {
                for extreme in [false, true] {
                    let stride = n + (next() % 3) as usize * 16;
                    let a: Vec<i16> = (0..n)
                        .map(|_| if extreme { -127 } else { (next() % 255) as i16 - 127 })
                        .collect();
                    let w: Vec<i8> = (0..rows * stride)
                        .map(|_| if extreme { 127 } else { (next() % 255) as i8 })
                        .collect();
                    let (mut fast, mut slow) = (vec![0; rows], vec![0; rows]);
                    dot_rows(&a, &w, stride, &mut fast);
                    dot_rows_ref(&a, &w, stride, &mut slow);
                    assert_eq!(fast, slow, "n {n}, rows {rows}, stride {stride}");
                }
            }
        }
    }
}
