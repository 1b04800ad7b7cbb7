//! The integer primitives of the nnz model, exactly as docs/MODEL.md specifies them. Every backend
//! (and train/intref.py) computes these bit for bit; change one and the golden tests fail.

/// Residual stream fixed point: `x_real = x / 2^RES_FRAC`.
pub const RES_FRAC: u32 = 10;
/// Residual values are clamped to `[-RES_MAX, RES_MAX]` after every update.
pub const RES_MAX: i64 = (1 << 23) - 1;
/// Every requantization multiplies by an `i32` multiplier and shifts right by this.
pub const MUL_SHIFT: u32 = 24;
/// Norm output: `a = clamp(round(x * NORM_A / rms), -127, 127)`.
pub const NORM_A: i64 = 16;
/// GELU table: index `clamp(h, -GELU_HALF, GELU_HALF - 1) + GELU_HALF`.
pub const GELU_HALF: i64 = 256;
/// Version of this arithmetic; recorded in every model file.
pub const ARITH_VERSION: u32 = 1;

/// Requantize: `floor((acc * m + 2^23) / 2^24)`, i.e. round half up.
#[inline(always)]
pub fn rq(acc: i64, m: i32) -> i64 {
    (acc * m as i64 + (1 << (MUL_SHIFT - 1))) >> MUL_SHIFT
}

/// Round half up of `n / d` for `d > 0`: `floor((2n + d) / 2d)`.
#[inline(always)]
pub fn round_div(n: i64, d: i64) -> i64 {
    (2 * n + d).div_euclid(2 * d)
}

/// Clamp to the int8 range used for activations, [-127, 127].
#[inline(always)]
pub fn clamp_i8(v: i64) -> i8 {
    v.clamp(-127, 127) as i8
}

/// Clamp to the residual range, [-RES_MAX, RES_MAX].
#[inline(always)]
pub fn clamp_res(v: i64) -> i32 {
    v.clamp(-RES_MAX, RES_MAX) as i32
}

/// `floor(sqrt(n))`, exact for every `u64`.
pub fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u64; // a guess; corrected below to the exact floor
    while x.checked_mul(x).is_none_or(|sq| sq > n) {
        x -= 1;
    }
    while (x + 1).checked_mul(x + 1).is_some_and(|sq| sq <= n) {
        x += 1;
    }
    x
}

/// Integer RMS norm of one residual row into int8 activations at scale `1 / NORM_A`.
pub fn norm_row(x: &[i32], out: &mut [i8]) {
    let ss: u64 = x.iter().map(|&v| (v as i64 * v as i64) as u64).sum();
    let r = isqrt(ss / x.len() as u64).max(1) as i64;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = clamp_i8(round_div(v as i64 * NORM_A, r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_exact() {
        for n in (0..100_000u64).chain([u64::MAX, u64::MAX - 1, (1 << 62) - 1, 1 << 62, 999_999_999_999]) {
            let r = isqrt(n);
            assert!(r * r <= n, "{n}");
            assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > n), "{n}");
        }
    }

    #[test]
    fn rounding_rules() {
        assert_eq!(rq(1, 1 << 23), 1); // 0.5 rounds up
        assert_eq!(rq(-1, 1 << 23), 0); // -0.5 rounds up too
        assert_eq!(rq(-3, 1 << 23), -1); // -1.5 -> -1
        assert_eq!(round_div(5, 2), 3);
        assert_eq!(round_div(-5, 2), -2);
        assert_eq!(round_div(-7, 2), -3);
        assert_eq!(round_div(7, 3), 2);
    }
}
