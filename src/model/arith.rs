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

/// `floor(n / d)` for many `n < 2^bits` and one `d`, by one multiplication instead of a division:
/// with `b` = bitlength(d), `s = bits + b` and `M = floor(2^s / d) + 1`, `floor(n·M / 2^s)` is
/// `floor(n / d)`, since the error `n·(M − 2^s/d) / 2^s < 2^bits / 2^s <= 1/d` cannot reach the next
/// integer. `M <= 2^(bits+1)` must fit a u64 and `n·M` a u128: `bits <= 62`.
#[derive(Clone, Copy, Debug)]
pub struct FloorDiv {
    m: u64,
    s: u32,
}

impl FloorDiv {
    /// Prepare division by `d >= 1` of numerators below `2^bits`.
    pub fn new(d: u64, bits: u32) -> Self {
        assert!(d >= 1 && bits <= 62);
        let s = bits + (64 - d.leading_zeros());
        FloorDiv {
            m: ((1u128 << s) / d as u128 + 1) as u64,
            s,
        }
    }

    /// `floor(n / d)`.
    #[inline(always)]
    pub fn apply(&self, n: u64) -> u64 {
        ((n as u128 * self.m as u128) >> self.s) as u64
    }
}

/// `round_div(n, d)` for many `n` and one `d`, by a multiplication instead of a division: the same
/// integers for `|n| < 2^32` and `1 <= d < 2^26` (every use in the forward pass: docs/MODEL.md,
/// "Bounds"). With `D = 2d` and `K = ceil(2^34 / D)`, `U = 2n + d + K·D` lies in `[0, 2^36)` and
/// `round_div(n, d) = floor(U / D) − K`.
#[derive(Clone, Copy, Debug)]
pub struct RoundDiv {
    d: i64,
    k: u64,
    div: FloorDiv,
}

impl RoundDiv {
    /// Prepare division by `d` (1 <= d < 2^26).
    pub fn new(d: i64) -> Self {
        assert!((1..1 << 26).contains(&d), "divisor {d} out of range");
        let big_d = 2 * d as u64;
        let k = (1u64 << 34).div_ceil(big_d);
        RoundDiv {
            d,
            k,
            div: FloorDiv::new(big_d, 36),
        }
    }

    /// `round_div(n, d)`.
    #[inline(always)]
    pub fn apply(&self, n: i64) -> i64 {
        debug_assert!(n.unsigned_abs() < 1 << 32);
        let u = (2 * n + self.d) as u64 + self.k * 2 * self.d as u64;
        self.div.apply(u) as i64 - self.k as i64
    }
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
    // r <= RES_MAX < 2^26 and |v * NORM_A| < 2^28: `RoundDiv` gives round_div's integers
    let r = RoundDiv::new(isqrt(ss / x.len() as u64).max(1) as i64);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = clamp_i8(r.apply(v as i64 * NORM_A));
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
    fn floor_div_by_multiplication_is_division() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // the frequency table's range: numerators below 2^44, divisors up to 2^37
            let d = 1 + (x >> 27) % (1 << (x % 38));
            let n = (x.rotate_left(21)) % (1 << 44);
            for n in [n, (1 << 44) - 1, d * (n / d.max(1)), 0] {
                assert_eq!(FloorDiv::new(d, 44).apply(n), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn round_div_by_multiplication_is_round_div() {
        let mut next = crate::test_support::xorshift64(0x9E37_79B9_7F4A_7C15);
        let edges = [1i64, 2, 3, 7, 255, 4096, (1 << 24) + 1, (1 << 25) - 1, (1 << 26) - 1];
        for i in 0..200_000 {
            let d = if i < edges.len() * 1000 {
                edges[i / 1000]
            } else {
                1 + (next() % ((1 << (1 + next() % 26)) - 1).max(1)) as i64
            };
            let span = 1i64 << (next() % 33);
            let n = (next() % (2 * span as u64)) as i64 - span;
            let n = n.clamp(-(1 << 32) + 1, (1 << 32) - 1);
            assert_eq!(RoundDiv::new(d).apply(n), round_div(n, d), "{n} / {d}");
        }
        for d in edges {
            for n in [
                -(1i64 << 32) + 1,
                (1 << 32) - 1,
                0,
                -1,
                1,
                -d,
                d,
                -d - 1,
                d + 1,
                d / 2,
                -d / 2,
            ] {
                assert_eq!(RoundDiv::new(d).apply(n), round_div(n, d), "{n} / {d}");
            }
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
