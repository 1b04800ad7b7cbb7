//! Cheap looks at a chunk before any method runs on it.
//!
//! Random, encrypted and already-compressed data gains nothing from any method, yet trying them
//! all (LZMA at its slowest preset, the byte mixer) runs at a few hundred KB/s. `incompressible`
//! picks such chunks out at several hundred MB/s so that they are stored at once.

/// Order-0 entropy in bits per byte.
pub(super) fn byte_entropy(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64 / n) * (c as f64 / n).log2())
        .sum()
}

/// Shorter chunks are always tried: the trials cost little there.
const MIN_PROBE: usize = 4096;

/// Whether no method is worth trying on `data`: its byte frequencies are as flat as uniformly
/// random bytes' (order-0 entropy within a few standard deviations of 8 bits, for this length),
/// and fewer than 1 byte in 256 starts an 8-byte string that occurred earlier in the chunk (what
/// LZMA and the match model would find). JPEG (7.97 bits per byte over 120 KB, which the byte
/// mixer still takes 1.4% off) is not picked; 1 MiB of random bytes (7.9998) is.
/// `entropy` is `byte_entropy(data)`, which the caller needs as well.
pub(crate) fn incompressible(data: &[u8], entropy: f64) -> bool {
    let n = data.len();
    if n < MIN_PROBE {
        return false;
    }
    // the entropy of n uniformly random bytes falls short of 8 by about 255 / (2 n ln 2) bits
    let expected_gap = 255.0 / (2.0 * n as f64 * std::f64::consts::LN_2);
    if entropy < 8.0 - 4.0 * expected_gap - 0.001 {
        return false;
    }
    !repeats(data, n / 256 + 1)
}

/// Whether `data` holds at least `enough` positions whose 8 bytes occurred at an earlier position
/// that a hash table of recent positions remembers.
fn repeats(data: &[u8], enough: usize) -> bool {
    const BITS: u32 = 16;
    let mut last = vec![u32::MAX; 1 << BITS];
    let mut found = 0;
    for i in 0..data.len().saturating_sub(7) {
        let w = u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
        let h = (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS)) as usize;
        let j = last[h];
        if j != u32::MAX && data[j as usize..j as usize + 8] == data[i..i + 8] {
            found += 1;
            if found >= enough {
                return true;
            }
        }
        last[h] = i as u32;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(data: &[u8]) -> bool {
        incompressible(data, byte_entropy(data))
    }

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_are_incompressible_at_every_length() {
        for n in [4096, 10_000, 65536, 1 << 20] {
            assert!(probe(&random(n, n as u64)), "{n} random bytes");
        }
    }

    #[test]
    fn text_repeats_and_skewed_bytes_are_tried() {
        assert!(!probe(&b"the quick brown fox ".repeat(1000)));
        // random, but with a repeat LZMA would find: a 2 KiB block seen twice
        let mut d = random(100_000, 7);
        let block = d[1000..3048].to_vec();
        d[50_000..52_048].copy_from_slice(&block);
        assert!(!probe(&d));
        // random, but one byte value 14 times as common as the others: order-0 coding gains 1.7%
        let mut d = random(100_000, 9);
        for b in d.iter_mut().step_by(20) {
            *b = 0;
        }
        assert!(!probe(&d));
        assert!(!probe(&random(4095, 1)), "short chunks are always tried");
    }
}
