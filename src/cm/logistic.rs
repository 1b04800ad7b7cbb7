//! The logistic domain of the context mixer: `squash` maps a stretched value `d` (8 fractional bits,
//! [-2047, 2047]) to a 12-bit probability, `stretch` is its inverse. Both are integer tables, so
//! every machine computes the same values (docs/MODEL.md, "Context mixing").

/// `4096 / (1 + e^-(i - 16) / 2)` for i in 0..33, rounded; `squash` interpolates linearly.
const SQUASH_T: [i32; 33] = [
    1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785, 3901,
    3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
];

/// `squash` by its table: the formula's values for every `d` (clamping to [-2048, 2048] changes
/// none, since the formula gives 1 below -2047 and 4095 above 2047).
#[inline]
pub fn squash(d: i32) -> i32 {
    SQUASH[(d.clamp(-2048, 2048) + 2048) as usize] as i32
}

/// `SQUASH[d + 2048]` is `squash(d)` for d in [-2048, 2048]; built when compiling.
static SQUASH: [i16; 4097] = {
    let mut t = [0i16; 4097];
    let mut i = 0;
    while i < 4097 {
        t[i] = squash_formula(i as i32 - 2048) as i16;
        i += 1;
    }
    t
};

/// The squashing function itself: `SQUASH_T` interpolated linearly, 1 below -2047 and 4095
/// above 2047.
const fn squash_formula(d: i32) -> i32 {
    if d > 2047 {
        return 4095;
    }
    if d < -2047 {
        return 1;
    }
    let w = d & 127;
    let i = ((d >> 7) + 16) as usize;
    let p = (SQUASH_T[i] * (128 - w) + SQUASH_T[i + 1] * w + 64) >> 7;
    if p < 1 {
        1
    } else if p > 4095 {
        4095
    } else {
        p
    }
}

/// `STRETCH[p]` is the smallest `d` in [-2047, 2047] with `squash(d) >= p` (2047 if none); built
/// when compiling, so reading it needs no check that it exists.
static STRETCH: [i16; 4096] = build_stretch();

const fn build_stretch() -> [i16; 4096] {
    let mut t = [2047i16; 4096];
    let mut pi = 0usize;
    let mut x = -2047;
    while x <= 2047 {
        let v = squash_formula(x) as usize;
        while pi <= v {
            t[pi] = x as i16;
            pi += 1;
        }
        x += 1;
    }
    t
}

/// The stretch table (see `STRETCH`).
pub fn stretch_table() -> &'static [i16; 4096] {
    &STRETCH
}

#[inline]
pub fn stretch(p: i32) -> i32 {
    STRETCH[p as usize] as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_by_table_is_the_formula() {
        for d in -5000..5000 {
            assert_eq!(squash(d), squash_formula(d), "{d}");
        }
        assert_eq!(squash(i32::MIN), 1);
        assert_eq!(squash(i32::MAX), 4095);
    }

    #[test]
    fn squash_and_stretch_are_monotone_inverses() {
        let st = stretch_table();
        for p in 1..4096usize {
            assert!(st[p] >= st[p - 1]);
            assert!(squash(st[p] as i32) >= p as i32 || st[p] == 2047);
        }
        assert_eq!(squash(0), 2047);
        assert_eq!(squash(-5000), 1);
        assert_eq!(squash(5000), 4095);
    }
}
