//! BWT frames (`Frame::Bwt`): the chunk's Burrows–Wheeler transform, coded bit by bit by a
//! predictor of sorted bytes, with the primary index in the frame head (docs/FORMAT.md, "BWT
//! frames"; docs/MODEL.md, "BWT frames" and "Fast BWT frames"). No transformer. Two frame kinds
//! share this routine and differ only in the predictor and the segment length (`Sorter`): BWT
//! frames (`cm::sorted`, segments of about 256 KiB) and fast BWT frames (`cm::sorted_lean`, about
//! half the work a bit, segments of about 128 KiB).
//!
//! The transform is cut into segments (their number a function of the chunk's length and the
//! kind alone), each coded with a fresh predictor into its own range-coded stream, so that the
//! segments of one chunk are coded on several cores at once in both directions, and the archive
//! is the same for any thread count.
//!
//! The forward transform is libsais's (a suffix array by induced sorting). The inverse is written
//! here in safe Rust: it is the format's definition of the transform, and it must refuse damaged
//! input rather than trust it.

use crate::cm::sorted::SortedCm;
use crate::cm::sorted_lean::LeanSortedCm;
use crate::codec::Work;
use crate::coder::{Coder, Decoder, Encoder, Rules};
use crate::error::{Error, Result};
use crate::format::Sorter;

/// A frame has at most this many segments.
const MAX_SEGMENTS: usize = 8;
/// A fast BWT frame of at least this many bytes has at least two segments (two cores on files
/// of 96 KiB to 128 KiB, for about 0.1% of their size).
const FAST_TWO_SEGMENTS: usize = 96 << 10;

/// How many segments a transform of `n` bytes is cut into (docs/FORMAT.md, "BWT frames").
pub(crate) fn segments(n: usize, sorter: Sorter) -> usize {
    match sorter {
        Sorter::Full => n.div_ceil(256 << 10).clamp(1, MAX_SEGMENTS),
        Sorter::Lean => {
            let s = n.div_ceil(128 << 10).clamp(1, MAX_SEGMENTS);
            if n >= FAST_TWO_SEGMENTS {
                s.max(2)
            } else {
                s
            }
        }
    }
}

/// A predictor of sorted bytes that codes them one at a time, both ways.
trait Predictor {
    /// A fresh predictor for a segment of `n` bytes.
    fn fresh(n: usize) -> Self;
    /// Code `byte` (the encoder's; the decoder's is 0) and return the byte coded.
    fn code_byte<C: Coder>(&mut self, c: &mut C, byte: u32) -> Result<u8>;
}

impl Predictor for SortedCm {
    fn fresh(n: usize) -> Self {
        SortedCm::new(n)
    }
    #[inline]
    fn code_byte<C: Coder>(&mut self, c: &mut C, byte: u32) -> Result<u8> {
        for k in (0..8).rev() {
            let q = self.predict();
            let bit = c.code_bit(q, (byte >> k) & 1)?;
            self.update(bit);
        }
        Ok(self.last_byte())
    }
}

impl Predictor for LeanSortedCm {
    fn fresh(_: usize) -> Self {
        LeanSortedCm::new()
    }
    #[inline]
    fn code_byte<C: Coder>(&mut self, c: &mut C, byte: u32) -> Result<u8> {
        LeanSortedCm::code_byte(self, c, byte)
    }
}

/// The most memory a BWT or fast BWT frame of `n` bytes takes, both ways: a predictor for each
/// segment (they may all run at once), and the chunk's suffix array and transform, or the decoded
/// segments, their concatenation, the inverse's links (8 bytes a byte) and its output.
pub(crate) fn memory(n: usize) -> u64 {
    let predictors = |sorter| {
        let s = segments(n, sorter);
        let longest = segment_start(n, s, s) - segment_start(n, s, s - 1);
        let one = match sorter {
            Sorter::Full => SortedCm::memory(longest),
            Sorter::Lean => LeanSortedCm::memory(),
        };
        s as u64 * one
    };
    predictors(Sorter::Full).max(predictors(Sorter::Lean)) + 11 * n as u64
}

/// `f(k)` for every segment `k`, in order, run on the thread pool the costliest first (by the
/// estimates in `costs`): each free core takes the costliest segment left, which keeps a frame
/// with one dense segment among sparse ones from leaving a core idle (measured on ptt5's fast BWT
/// frame, segments of 4.9, 4.5, 5.7 and 18.1 ms: 23.8 ms on two cores in index order, 18.1 so).
/// Only the order of work changes: every segment is coded alone, so the bytes are the same.
fn costliest_first<T: Send>(costs: &[u64], f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    if costs.len() == 1 {
        return Ok(vec![f(0)?]);
    }
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(costs[k]));
    let mut slots: Vec<Option<Result<T>>> = costs.iter().map(|_| None).collect();
    let mut refs: Vec<Option<&mut Option<Result<T>>>> = slots.iter_mut().map(Some).collect();
    let f = &f;
    // FIFO: the pool's threads take the spawned segments in the order spawned
    rayon::scope_fifo(|scope| {
        for &k in &order {
            let slot = refs[k].take().expect("each segment is spawned once");
            scope.spawn_fifo(move |_| *slot = Some(f(k)));
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("the scope ran every segment"))
        .collect()
}

/// Where segment `k` of `s` of a transform of `n` bytes starts.
fn segment_start(n: usize, s: usize, k: usize) -> usize {
    (k as u64 * n as u64 / s as u64) as usize
}

/// How far apart the text positions are whose rows a fast BWT frame of `n` bytes records: the
/// smallest power of two of at least 2 and n / 8, so that the inverse walks at most 8 stretches at
/// once (docs/FORMAT.md, "BWT frames").
pub(crate) fn walk_rate(n: usize) -> usize {
    n.div_ceil(8).max(2).next_power_of_two()
}

/// The transform of `data` (not empty) and rows of its sorted rotations: the rows, among the
/// `n + 1` sorted rotations of `data` followed by a sentinel smaller than every byte, of the
/// rotations that start at text positions 0, `rate`, 2·`rate`, ... (`rate` = `walk_rate` for fast
/// BWT frames, any `rate >= n` for BWT frames, which record only the first). Row 0 is the
/// rotation that starts with the sentinel; the sentinel's byte of the last column sits at the
/// first of these rows, the primary index, and is left out of the transform.
pub(crate) fn transform(data: &[u8], rate: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let err = |e: libsais::LibsaisError| Error::Io(std::io::Error::other(format!("BWT: {e}")));
    let sorting = libsais::BwtConstruction::for_text(data)
        .with_owned_temporary_array_buffer32()
        .single_threaded();
    if rate >= data.len() {
        let bwt = sorting.run().map_err(err)?;
        let primary = bwt.primary_index() as u32;
        return Ok((bwt.into_vec(), vec![primary]));
    }
    let bwt = sorting
        .with_aux_indices(libsais::bwt::AuxIndicesSamplingRate::from(rate as i32))
        .run()
        .map_err(err)?;
    let (last, rows, _) = bwt.into_parts();
    Ok((last, rows.iter().map(|&r| r as u32).collect()))
}

/// The bytes whose transform is `last`, given the rows (`rows[0]` the primary index) of the
/// rotations that start at text positions 0, `rate`, 2·`rate`, ... (`rows.len()` of them, which
/// the caller has made `(n - 1) / rate + 1`), or an error if no bytes have that transform.
///
/// The text is rebuilt backwards in `rows.len()` stretches at once, stretch k from the row of
/// the rotation that starts where it ends (row 0 for the last) to the row of the one that starts
/// where it starts: independent walks whose memory accesses overlap.
pub(crate) fn inverse(last: &[u8], rows: &[u32], rate: usize) -> Result<Vec<u8>> {
    let n = last.len();
    let m = rows.len();
    if n == 0 || rows.iter().any(|&r| r == 0 || r as usize > n) {
        return Err(Error::corrupt(format!(
            "BWT frame's primary index or a walk's start row is outside 1..={n}"
        )));
    }
    if rate == 0 || m != (n - 1) / rate + 1 {
        return Err(Error::corrupt("BWT frame's walks do not fit its length"));
    }
    let p = rows[0] as usize;
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
    // link[r] for each row r but p: the row that starts with row r's last byte (the row of the
    // rotation one step back), times 256, plus that byte. Row p (whose last byte is the sentinel)
    // leads to row n + 1, which leads to itself, so a walk that reaches p early ends there.
    let mut link = vec![0u64; n + 2];
    for (j, &c) in last.iter().enumerate() {
        let r = j + (j >= p) as usize;
        link[r] = (first[c as usize] as u64) << 8 | c as u64;
        first[c as usize] += 1;
    }
    link[p] = ((n + 1) as u64) << 8;
    link[n + 1] = ((n + 1) as u64) << 8;
    // stretch k is out[k·rate..end[k]], walked back from at[k]
    let end: Vec<usize> = (0..m).map(|k| ((k + 1) * rate).min(n)).collect();
    let mut at: Vec<usize> = (0..m).map(|k| rows.get(k + 1).map_or(0, |&r| r as usize)).collect();
    let mut out = vec![0u8; n];
    let shortest = n - (m - 1) * rate;
    for i in 0..rate.min(n) {
        let walks = if i < shortest { m } else { m - 1 };
        for k in 0..walks {
            let v = link[at[k]];
            out[end[k] - 1 - i] = v as u8;
            at[k] = (v >> 8) as usize;
        }
    }
    if at.iter().zip(rows).any(|(&a, &r)| a != r as usize) {
        return Err(Error::corrupt("BWT frame's transform is not a rotation"));
    }
    Ok(out)
}

/// The rate of the rows a frame of `sorter`'s kind and `n` bytes records (`transform`).
fn rate(n: usize, sorter: Sorter) -> usize {
    match sorter {
        Sorter::Full => n,
        Sorter::Lean => walk_rate(n),
    }
}

/// The payload and primary index of `data` (not empty) as a BWT frame of `sorter`'s kind: for a
/// fast BWT frame the rows of the rotations at `walk_rate` apart after the first (u32 each),
/// then for both kinds the coded lengths of every segment but the last (u32 each), then the
/// coded segments.
pub(crate) fn encode(data: &[u8], sorter: Sorter, work: &Work) -> Result<(Vec<u8>, u32)> {
    let (last, rows) = transform(data, rate(data.len(), sorter))?;
    let (n, s) = (last.len(), segments(last.len(), sorter));
    let part = |k: usize| &last[segment_start(n, s, k)..segment_start(n, s, k + 1)];
    // a byte that repeats the one before it costs one decision, any other byte up to eight more
    let costs: Vec<u64> = (0..s)
        .map(|k| {
            let p = part(k);
            (p.len() + 7 * p.windows(2).filter(|w| w[0] != w[1]).count()) as u64
        })
        .collect();
    let coded = costliest_first(&costs, |k| {
        let mut enc = Encoder::new();
        code(&mut enc, sorter, Some(part(k)), part(k).len(), &mut Vec::new(), work)?;
        Ok(enc.finish())
    })?;
    let mut payload = Vec::with_capacity(4 * (rows.len() + s) + coded.iter().map(Vec::len).sum::<usize>());
    for r in &rows[1..] {
        payload.extend_from_slice(&r.to_le_bytes());
    }
    for c in &coded[..s - 1] {
        payload.extend_from_slice(&(c.len() as u32).to_le_bytes());
    }
    for c in &coded {
        payload.extend_from_slice(c);
    }
    Ok((payload, rows[0]))
}

/// The `raw_len` bytes of a BWT frame of `sorter`'s kind with primary index `primary` of a stream
/// of format `version`. (`Frame::read` has checked the primary index's range before any work;
/// `inverse` checks it too.)
pub(crate) fn decode(
    payload: &[u8],
    raw_len: usize,
    primary: u32,
    sorter: Sorter,
    version: u8,
    work: &Work,
) -> Result<Vec<u8>> {
    let s = segments(raw_len, sorter);
    let rate = rate(raw_len, sorter);
    let walks = (raw_len.max(1) - 1) / rate.max(1) + 1;
    let head = 4 * (walks - 1);
    let table = head + 4 * (s - 1);
    if payload.len() < table {
        return Err(Error::corrupt("BWT frame's payload is shorter than its segment table"));
    }
    let u32_at = |i: usize| u32::from_le_bytes(payload[i..i + 4].try_into().unwrap());
    let rows: Vec<u32> = std::iter::once(primary)
        .chain((0..walks - 1).map(|k| u32_at(4 * k)))
        .collect();
    let mut parts = Vec::with_capacity(s);
    let mut at = table;
    for k in 0..s {
        let len = if k + 1 < s {
            u32_at(head + 4 * k) as usize
        } else {
            payload.len() - at
        };
        if len > payload.len() - at {
            return Err(Error::corrupt("BWT frame's segments are longer than its payload"));
        }
        parts.push(&payload[at..at + len]);
        at += len;
    }
    let len = |k: usize| segment_start(raw_len, s, k + 1) - segment_start(raw_len, s, k);
    // the bytes that did not repeat the one before them cost about 1.4 coded bytes each
    let costs: Vec<u64> = (0..s).map(|k| (len(k) + 10 * parts[k].len()) as u64).collect();
    let decoded = costliest_first(&costs, |k| {
        let mut dec = Decoder::new(parts[k], Rules::for_version(version));
        let mut out = Vec::with_capacity(len(k));
        code(&mut dec, sorter, None, len(k), &mut out, work)?;
        dec.finish()?;
        Ok(out)
    })?;
    inverse(&decoded.concat(), &rows, rate)
}

/// Both directions, one segment of `n` bytes: the encoder is given the transform; the decoder
/// appends what it reads to `out`.
fn code<C: Coder>(
    c: &mut C,
    sorter: Sorter,
    last: Option<&[u8]>,
    n: usize,
    out: &mut Vec<u8>,
    work: &Work,
) -> Result<()> {
    match sorter {
        Sorter::Full => code_with::<C, SortedCm>(c, last, n, out, work),
        Sorter::Lean => code_with::<C, LeanSortedCm>(c, last, n, out, work),
    }
}

fn code_with<C: Coder, P: Predictor>(
    c: &mut C,
    last: Option<&[u8]>,
    n: usize,
    out: &mut Vec<u8>,
    work: &Work,
) -> Result<()> {
    let mut cm = P::fresh(n);
    for i in 0..n {
        work.at(i)?;
        let b = cm.code_byte(c, last.map_or(0, |d| d[i] as u32))?;
        if C::DECODES {
            out.push(b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Cancel;

    #[test]
    fn costliest_first_runs_each_segment_once_and_keeps_their_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let costs = [5u64, 1, 9, 9, 3, 0, 7];
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let calls: Vec<AtomicUsize> = costs.iter().map(|_| AtomicUsize::new(0)).collect();
            let got = pool
                .install(|| {
                    costliest_first(&costs, |k| {
                        calls[k].fetch_add(1, Ordering::Relaxed);
                        Ok(k * 10)
                    })
                })
                .unwrap();
            assert_eq!(got, vec![0, 10, 20, 30, 40, 50, 60]);
            assert!(calls.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            // one thread takes them costliest first (ties in index order)
            if threads == 1 {
                let order = std::sync::Mutex::new(Vec::new());
                pool.install(|| {
                    costliest_first(&costs, |k| {
                        order.lock().unwrap().push(k);
                        Ok(())
                    })
                })
                .unwrap();
                assert_eq!(order.into_inner().unwrap(), vec![2, 3, 6, 0, 4, 1, 5]);
            }
            // a segment that fails fails the frame
            let err =
                pool.install(|| costliest_first(&costs, |k| if k == 4 { Err(Error::corrupt("bad")) } else { Ok(k) }));
            assert!(err.is_err());
        }
    }

    /// The transform by its definition: sort the rotations of `data` + sentinel; and the rows of
    /// the rotations that start at 0, `rate`, 2·`rate`, ...
    fn naive(data: &[u8], rate: usize) -> (Vec<u8>, Vec<u32>) {
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
        for &r in &rows {
            let c = s[(r + n) % (n + 1)];
            if c != 0 {
                last.push((c - 1) as u8);
            }
        }
        let starts = (0..n).step_by(rate.max(1));
        let row_of = |t: usize| rows.iter().position(|&r| r == t).unwrap() as u32;
        (last, starts.map(row_of).collect())
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
            let n = data.len();
            // one walk (BWT frames), a fast BWT frame's walks, and walks 2 bytes apart
            for rate in [n, walk_rate(n), 2] {
                let (last, rows) = transform(&data, rate).unwrap();
                assert_eq!((last.clone(), rows.clone()), naive(&data, rate), "{data:?} rate {rate}");
                assert_eq!(rows.len(), (n - 1) / rate + 1);
                assert_eq!(inverse(&last, &rows, rate).unwrap(), data);
            }
        }
        assert_eq!(
            (walk_rate(1), walk_rate(16), walk_rate(17), walk_rate(1 << 20)),
            (2, 2, 4, 1 << 17)
        );
    }

    #[test]
    fn inverse_refuses_what_is_no_transform() {
        assert!(inverse(b"abc", &[0], 3).is_err());
        assert!(inverse(b"abc", &[4], 3).is_err());
        assert!(inverse(b"", &[1], 1).is_err());
        // "aab" with primary 1: the walk through the rows comes back to the sentinel too early
        assert!(inverse(b"aab", &[1], 3).is_err());
        assert_eq!(inverse(b"aab", &[3], 3).unwrap(), b"baa");
        // walks that do not meet where the next begins, or a row count that does not fit the rate
        let (last, rows) = transform(b"abracadabra", 2).unwrap();
        assert_eq!(inverse(&last, &rows, 2).unwrap(), b"abracadabra");
        let mut bad = rows.clone();
        bad.swap(1, 2);
        assert!(inverse(&last, &bad, 2).is_err());
        assert!(inverse(&last, &rows[..3], 2).is_err());
        assert!(inverse(&last, &rows, 4).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let cancel = Cancel::default();
        let work = Work::new(&cancel);
        let text = b"the quick brown fox jumps over the lazy dog; the lazy dog sleeps. ".repeat(200);
        let long: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(i) >> 7) as u8).collect();
        assert_eq!(segments(long.len(), Sorter::Full), 3);
        assert_eq!(segments(long.len(), Sorter::Lean), 6);
        assert_eq!(segments(100 << 10, Sorter::Lean), 2);
        assert_eq!(segments(90 << 10, Sorter::Lean), 1);
        assert_eq!(segments(64 << 20, Sorter::Lean), 8);
        let version = crate::format::VERSION;
        for sorter in [Sorter::Full, Sorter::Lean] {
            for data in [
                &text[..],
                b"x",
                &[0u8; 5000][..],
                &(0..=255).collect::<Vec<u8>>(),
                &long,
            ] {
                let (payload, primary) = encode(data, sorter, &work).unwrap();
                assert_eq!(
                    decode(&payload, data.len(), primary, sorter, version, &work).unwrap(),
                    data
                );
            }
            let (payload, _) = encode(&text, sorter, &work).unwrap();
            assert!(payload.len() * 20 < text.len(), "{sorter:?}: {} bytes", payload.len());
            // the segments are the same on one thread or three, and a damaged segment table is
            // refused
            let on = |threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| encode(&long, sorter, &work).unwrap())
            };
            let (payload, primary) = on(1);
            assert_eq!((payload.clone(), primary), on(3));
            for (at, v) in [(0, 0xFF), (3, 0x10), (4, 0x00)] {
                let mut bad = payload.clone();
                bad[at] = v;
                assert!(
                    decode(&bad, long.len(), primary, sorter, version, &work).is_err(),
                    "{sorter:?}: segment table byte {at}"
                );
            }
            // a frame decoded with the other kind's predictor is an error or other bytes, never a
            // panic
            let other = if sorter == Sorter::Full {
                Sorter::Lean
            } else {
                Sorter::Full
            };
            let (payload, primary) = encode(&text, sorter, &work).unwrap();
            if let Ok(out) = decode(&payload, text.len(), primary, other, version, &work) {
                assert_ne!(out, text);
            }
        }
    }
}
