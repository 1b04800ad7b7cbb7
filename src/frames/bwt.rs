//! BWT frames (`Frame::Bwt`): the chunk's Burrows–Wheeler transform, coded bit by bit by the
//! predictor of sorted bytes (`cm::sorted`), with the primary index in the frame head
//! (docs/FORMAT.md, "BWT frames"; docs/MODEL.md, "BWT frames"). No transformer.
//!
//! The transform is cut into segments of about 256 KiB (their number a function of the chunk's
//! length alone), each coded with a fresh predictor into its own range-coded stream, so that the
//! segments of one chunk are coded on several cores at once in both directions, and the archive
//! is the same for any thread count.
//!
//! The forward transform is libsais's (a suffix array by induced sorting). The inverse is written
//! here in safe Rust: it is the format's definition of the transform, and it must refuse damaged
//! input rather than trust it.

use crate::cm::sorted::SortedCm;
use crate::codec::Cancel;
use crate::coder::{Coder, Decoder, Encoder, Rules};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Segments are about this long (docs/FORMAT.md, "BWT frames").
const SEGMENT: usize = 256 << 10;
/// A frame has at most this many segments.
const MAX_SEGMENTS: usize = 8;

/// How many segments a transform of `n` bytes is cut into.
pub(crate) fn segments(n: usize) -> usize {
    n.div_ceil(SEGMENT).clamp(1, MAX_SEGMENTS)
}

/// Where segment `k` of `s` of a transform of `n` bytes starts.
fn segment_start(n: usize, s: usize, k: usize) -> usize {
    (k as u64 * n as u64 / s as u64) as usize
}

/// The transform of `data` (not empty) and its primary index: the row, among the `n + 1` sorted
/// rotations of `data` followed by a sentinel smaller than every byte, of the rotation that starts
/// with the whole of `data`; the sentinel's byte of the last column sits there and is left out.
pub(crate) fn transform(data: &[u8]) -> Result<(Vec<u8>, u32)> {
    let bwt = libsais::BwtConstruction::for_text(data)
        .with_owned_temporary_array_buffer32()
        .single_threaded()
        .run()
        .map_err(|e| Error::Io(std::io::Error::other(format!("BWT: {e}"))))?;
    let primary = bwt.primary_index() as u32;
    Ok((bwt.into_vec(), primary))
}

/// The bytes whose transform is `last` with primary index `primary`, or an error if no bytes have
/// that transform.
pub(crate) fn inverse(last: &[u8], primary: u32) -> Result<Vec<u8>> {
    let n = last.len();
    let p = primary as usize;
    if n == 0 || p == 0 || p > n {
        return Err(Error::corrupt("BWT frame's primary index is out of range"));
    }
    // rows of the sorted rotations: row 0 starts with the sentinel, row p ends with it; `first[c]`
    // is the first row that starts with byte c
    let mut first = [0u32; 256];
    for &c in last {
        first[c as usize] += 1;
    }
    let mut row = 1u32;
    for f in first.iter_mut() {
        let count = *f;
        *f = row;
        row += count;
    }
    // next[j]: the row that starts with the byte at position j of `last` (that byte's row in the
    // first column), i.e. the row of the rotation one step back
    let mut next = vec![0u32; n];
    for (j, &c) in last.iter().enumerate() {
        next[j] = first[c as usize];
        first[c as usize] += 1;
    }
    let mut out = vec![0u8; n];
    let mut r = 0usize;
    for k in (0..n).rev() {
        let j = match r.cmp(&p) {
            std::cmp::Ordering::Less => r,
            std::cmp::Ordering::Greater => r - 1,
            std::cmp::Ordering::Equal => return Err(Error::corrupt("BWT frame's transform is not a rotation")),
        };
        out[k] = last[j];
        r = next[j] as usize;
    }
    if r != p {
        return Err(Error::corrupt("BWT frame's transform is not a rotation"));
    }
    Ok(out)
}

/// The payload and primary index of `data` (not empty) as a BWT frame: the coded lengths of every
/// segment but the last (u32 each), then the coded segments.
pub(crate) fn encode(data: &[u8], cancel: &Cancel) -> Result<(Vec<u8>, u32)> {
    let (last, primary) = transform(data)?;
    let (n, s) = (last.len(), segments(last.len()));
    let coded = (0..s)
        .into_par_iter()
        .map(|k| {
            let part = &last[segment_start(n, s, k)..segment_start(n, s, k + 1)];
            let mut enc = Encoder::new();
            code(&mut enc, Some(part), part.len(), &mut Vec::new(), cancel)?;
            Ok(enc.finish())
        })
        .collect::<Result<Vec<_>>>()?;
    let mut payload = Vec::with_capacity(4 * s + coded.iter().map(Vec::len).sum::<usize>());
    for c in &coded[..s - 1] {
        payload.extend_from_slice(&(c.len() as u32).to_le_bytes());
    }
    for c in &coded {
        payload.extend_from_slice(c);
    }
    Ok((payload, primary))
}

/// The `raw_len` bytes of a BWT frame with primary index `primary` of a stream of format `version`.
/// (`Frame::read` has checked the primary index's range before any work; `inverse` checks it too.)
pub(crate) fn decode(payload: &[u8], raw_len: usize, primary: u32, version: u8, cancel: &Cancel) -> Result<Vec<u8>> {
    let s = segments(raw_len);
    let table = 4 * (s - 1);
    if payload.len() < table {
        return Err(Error::corrupt("BWT frame's payload is shorter than its segment table"));
    }
    let mut parts = Vec::with_capacity(s);
    let mut at = table;
    for k in 0..s {
        let len = if k + 1 < s {
            u32::from_le_bytes(payload[4 * k..4 * k + 4].try_into().unwrap()) as usize
        } else {
            payload.len() - at
        };
        if len > payload.len() - at {
            return Err(Error::corrupt("BWT frame's segments are longer than its payload"));
        }
        parts.push(&payload[at..at + len]);
        at += len;
    }
    let decoded = parts
        .into_par_iter()
        .enumerate()
        .map(|(k, part)| {
            let n = segment_start(raw_len, s, k + 1) - segment_start(raw_len, s, k);
            let mut dec = Decoder::new(part, Rules::for_version(version));
            let mut out = Vec::with_capacity(n);
            code(&mut dec, None, n, &mut out, cancel)?;
            dec.finish()?;
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?;
    inverse(&decoded.concat(), primary)
}

/// Both directions: the encoder is given the transform; the decoder appends what it reads to `out`.
fn code<C: Coder>(c: &mut C, last: Option<&[u8]>, n: usize, out: &mut Vec<u8>, cancel: &Cancel) -> Result<()> {
    let mut cm = SortedCm::new(n);
    for i in 0..n {
        if i % 65536 == 0 {
            cancel.check()?;
        }
        let byte = last.map_or(0, |d| d[i] as u32);
        for k in (0..8).rev() {
            let q = cm.predict();
            let bit = c.code_bit(q, (byte >> k) & 1)?;
            cm.update(bit);
        }
        if C::DECODES {
            out.push(cm.last_byte());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transform by its definition: sort the rotations of `data` + sentinel.
    fn naive(data: &[u8]) -> (Vec<u8>, u32) {
        let n = data.len();
        // symbols 1..=256 for bytes, 0 for the sentinel
        let s: Vec<u16> = data.iter().map(|&b| b as u16 + 1).chain([0]).collect();
        let mut rows: Vec<usize> = (0..=n).collect();
        rows.sort_by(|&a, &b| {
            (0..=n)
                .map(|k| s[(a + k) % (n + 1)])
                .cmp((0..=n).map(|k| s[(b + k) % (n + 1)]))
        });
        let mut last = Vec::new();
        let mut primary = 0;
        for (i, &r) in rows.iter().enumerate() {
            let c = s[(r + n) % (n + 1)];
            if c == 0 {
                primary = i as u32;
            } else {
                last.push((c - 1) as u8);
            }
        }
        (last, primary)
    }

    #[test]
    fn transform_matches_its_definition_and_inverts() {
        let mut seed = 7u32;
        let mut cases: Vec<Vec<u8>> = vec![b"a".to_vec(), b"banana".to_vec(), b"abracadabra".to_vec(), vec![0; 40]];
        for len in [2, 3, 17, 100, 300] {
            cases.push(
                (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        b"ab\0\xff"[(seed >> 16) as usize % 4]
                    })
                    .collect(),
            );
        }
        for data in cases {
            let (last, primary) = transform(&data).unwrap();
            assert_eq!((last.clone(), primary), naive(&data), "{data:?}");
            assert_eq!(inverse(&last, primary).unwrap(), data);
        }
    }

    #[test]
    fn inverse_refuses_what_is_no_transform() {
        assert!(inverse(b"abc", 0).is_err());
        assert!(inverse(b"abc", 4).is_err());
        assert!(inverse(b"", 1).is_err());
        // "aab" with primary 1: the walk through the rows comes back to the sentinel too early
        assert!(inverse(b"aab", 1).is_err());
        assert_eq!(inverse(b"aab", 3).unwrap(), b"baa");
    }

    #[test]
    fn frames_round_trip() {
        let cancel = Cancel::default();
        let text = b"the quick brown fox jumps over the lazy dog; the lazy dog sleeps. ".repeat(200);
        let long: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(i) >> 7) as u8).collect();
        assert_eq!(segments(long.len()), 3);
        for data in [
            &text[..],
            b"x",
            &[0u8; 5000][..],
            &(0..=255).collect::<Vec<u8>>(),
            &long,
        ] {
            let (payload, primary) = encode(data, &cancel).unwrap();
            assert_eq!(
                decode(&payload, data.len(), primary, crate::format::VERSION, &cancel).unwrap(),
                data
            );
        }
        let (payload, _) = encode(&text, &cancel).unwrap();
        assert!(payload.len() * 20 < text.len(), "{} bytes", payload.len());
        // the segments are the same on one thread or three, and a damaged segment table is refused
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| encode(&long, &cancel).unwrap())
        };
        let (payload, primary) = on(1);
        assert_eq!((payload.clone(), primary), on(3));
        for (at, v) in [(0, 0xFF), (3, 0x10), (4, 0x00)] {
            let mut bad = payload.clone();
            bad[at] = v;
            assert!(
                decode(&bad, long.len(), primary, crate::format::VERSION, &cancel).is_err(),
                "segment table byte {at}"
            );
        }
    }
}
