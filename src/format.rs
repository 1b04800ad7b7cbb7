//! The `.nnz` container: a header, then frames, then an end frame (docs/FORMAT.md). Only framing
//! and checksums live here; what a frame's payload means is the codec's business.

use crate::error::{Error, Result};
use std::io::{Read, Write};

pub const MAGIC: [u8; 4] = *b"\x89NNZ";
/// Version 20 gives deep and mid CM frames the URL model (contexts keyed by a URL's host, live only
/// inside URLs). Version 19 gives blend frames an output layer that adapts to the chunk while coding (dynamic
/// evaluation of the transformer's last layer). Version 18 warms up every mixer and probability map of CM, mid CM, deep CM and blend frames
/// (larger first steps). Version 17 gives deep and mid CM frames the number model; version 16 gives them the JPEG model.
/// Version 15 gives deep CM frames the run model and blend frames bit histories, the long match
/// model and a larger token-boundary predictor. Version 14 adds mid CM frames (the deep byte mixer
/// trimmed). Version 13 gives CM and deep CM frames new byte contexts (case-folded words in place of five
/// that earned nothing), faster-learning mixers and smaller line tables. Version 12 gives deep
/// CM frames the bi-level image model; version 11 gives them the long match
/// model. Version 10 adds deep CM frames (the byte mixer with bit histories). Version 9 has the byte mixer of CM frames look for fixed-length records (the same frames, coded
/// with other contexts once a record length is found). Version 8 adds fast BWT frames (the same
/// transform, coded by a leaner predictor in smaller segments). Version 7 adds BWT frames (the
/// Burrows–Wheeler transform of the chunk, coded by a predictor of sorted bytes). Version 6 adds blend frames (tokens coded through their bytes, the byte mixer and the
/// transformer together). Version 5 makes every range-coded payload canonical (the shortest flush; a decoder reads at
/// most 7 bytes past its end) and bounds each frame's work by its payload size; version 4 adds
/// direct model frames (the direct mode); version 3 codes model frames bit by bit with
/// context mixing and adds CM frames; version 2 added the match model and mixer (docs/MODEL.md).
/// Streams of every earlier version still decode.
pub const VERSION: u8 = 20;
pub const HEADER_LEN: usize = 28;
/// The largest chunk a decoder accepts; bounds every allocation made from a header field.
pub const MAX_CHUNK: u32 = 64 << 20;
/// Version 5: a range-coded payload of `n` bytes codes at most `MAX_SYMBOLS_PER_BYTE * (n + 1)`
/// symbols (bits of CM and BWT frames, run flags of fast BWT frames, tokens of model and direct
/// frames, 8 bits per token of blend frames: a token's first byte is always coded). Every coded decision narrows the
/// range by at least the factor 4095/4096 (2^24 - 4095 out of 2^24 for a direct frame's token with
/// a 4096-token table), and the decoder reads one payload byte per 8 bits of narrowing, so no
/// encoder can write more; a decoder rejects a frame that claims more before doing any work.
pub const MAX_SYMBOLS_PER_BYTE: u64 = 22_761;

pub const KIND_END: u8 = 0;
pub const KIND_MODEL: u8 = 1;
pub const KIND_STORED: u8 = 2;
pub const KIND_LZMA: u8 = 3;
/// Context mixing over the bytes (format 3 on).
pub const KIND_CM: u8 = 4;
/// Tokens coded straight from the transformer's tables, no context mixing (format 4 on).
pub const KIND_DIRECT: u8 = 5;
/// Tokens coded through their bytes by the byte mixer with the transformer (format 6 on).
pub const KIND_BLEND: u8 = 6;
/// The chunk's Burrows–Wheeler transform coded bit by bit (format 7 on).
pub const KIND_BWT: u8 = 7;
/// The chunk's Burrows–Wheeler transform coded by the lean predictor (format 8 on).
pub const KIND_FAST_BWT: u8 = 8;
/// Context mixing over the bytes with bit histories (format 10 on).
pub const KIND_DEEP_CM: u8 = 9;
/// Context mixing over the bytes with bit histories, trimmed for speed (format 14 on).
pub const KIND_MID_CM: u8 = 10;

/// Which byte mixer codes a CM frame; the frame's kind says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmModel {
    /// counters alone (kind 4, "CM")
    Plain,
    /// counters with bit histories and a fourth mixer (kind 9, "deep CM")
    Deep,
    /// the deep mixer trimmed: history maps alone, no column mixer, one context less (kind 10,
    /// "mid CM")
    Mid,
}

impl CmModel {
    /// The frame kind.
    pub fn kind(self) -> u8 {
        match self {
            CmModel::Plain => KIND_CM,
            CmModel::Deep => KIND_DEEP_CM,
            CmModel::Mid => KIND_MID_CM,
        }
    }

    /// In words: "CM", "deep CM" or "mid CM".
    pub fn name(self) -> &'static str {
        match self {
            CmModel::Plain => "CM",
            CmModel::Deep => "deep CM",
            CmModel::Mid => "mid CM",
        }
    }
}

/// Which predictor codes a BWT frame's sorted bytes; the frame's kind says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sorter {
    /// `cm::sorted` in segments of about 256 KiB (kind 7, "BWT")
    Full,
    /// `cm::sorted_lean` in segments of about 128 KiB (kind 8, "fast BWT")
    Lean,
}

impl Sorter {
    /// The frame kind.
    pub fn kind(self) -> u8 {
        match self {
            Sorter::Full => KIND_BWT,
            Sorter::Lean => KIND_FAST_BWT,
        }
    }

    /// In words: "BWT" or "fast BWT".
    pub fn name(self) -> &'static str {
        match self {
            Sorter::Full => "BWT",
            Sorter::Lean => "fast BWT",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// format version of the stream (1 to 4); writers always write `VERSION`
    pub version: u8,
    pub model_id: [u8; 16],
    pub chunk_size: u32,
}

impl Header {
    pub fn write<W: Write + ?Sized>(&self, w: &mut W) -> Result<()> {
        w.write_all(&self.to_bytes())?;
        Ok(())
    }

    /// The header as written.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = self.version;
        b[8..24].copy_from_slice(&self.model_id);
        b[24..28].copy_from_slice(&self.chunk_size.to_le_bytes());
        b
    }

    /// The hash whose digest the end frame holds: XXH64 (seed 0) of the content, and from version 5
    /// on of the header's bytes before it, so that no header byte can change unnoticed.
    pub fn content_hash(&self) -> xxhash_rust::xxh64::Xxh64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        if self.version >= 5 {
            h.update(&self.to_bytes());
        }
        h
    }

    /// Read a header. `Ok(None)` at a clean end of input (no byte at all).
    pub fn read<R: Read + ?Sized>(r: &mut R) -> Result<Option<Header>> {
        let mut b = [0u8; HEADER_LEN];
        let n = read_full(r, &mut b)?;
        if n == 0 {
            return Ok(None);
        }
        if n < 4 || b[..4] != MAGIC {
            return Err(Error::NotAnArchive);
        }
        if n < 5 {
            return Err(Error::Truncated);
        }
        if b[4] > VERSION {
            return Err(Error::FutureVersion(b[4], VERSION));
        }
        if b[4] == 0 {
            return Err(Error::corrupt("format version 0"));
        }
        if n < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[5] != 0 || b[6] != 0 || b[7] != 0 {
            return Err(Error::corrupt("reserved header bytes are not zero"));
        }
        let chunk_size = u32::from_le_bytes(b[24..28].try_into().unwrap());
        if chunk_size == 0 || chunk_size > MAX_CHUNK {
            return Err(Error::corrupt(format!(
                "chunk size {chunk_size} outside 1..={MAX_CHUNK}"
            )));
        }
        Ok(Some(Header {
            version: b[4],
            model_id: b[8..24].try_into().unwrap(),
            chunk_size,
        }))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Model-coded chunk: `n_tokens` tokens range-coded in `payload`.
    Model {
        raw_len: u32,
        n_tokens: u32,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// Model-coded chunk without context mixing: each token range-coded from the transformer's
    /// table with a fixed total of 2^24 (format 4 on; what `--direct` writes).
    Direct {
        raw_len: u32,
        n_tokens: u32,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// Model-coded chunk: `n_tokens` tokens coded byte by byte, the transformer's table and the
    /// byte mixer predicting each bit together (format 6 on).
    Blend {
        raw_len: u32,
        n_tokens: u32,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// The chunk's bytes as they are.
    Stored { checksum: u32, data: Vec<u8> },
    /// The chunk as an LZMA (`.lzma`, "LZMA alone") stream, for data where LZMA beats the model.
    Lzma {
        raw_len: u32,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// The chunk's bytes coded by context mixing without the transformer (format 3 on; deep, format
    /// 10 on).
    Cm {
        model: CmModel,
        raw_len: u32,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// The chunk's Burrows–Wheeler transform coded bit by bit, and the transform's primary index
    /// (format 7 on; the lean predictor, format 8 on).
    Bwt {
        sorter: Sorter,
        raw_len: u32,
        primary: u32,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// End of the stream: total length and checksum of all content.
    End { total_len: u64, checksum: u64 },
}

/// The frame checksum: the low 32 bits of XXH64 (seed 0) of the chunk's original bytes.
pub fn chunk_checksum(data: &[u8]) -> u32 {
    xxhash_rust::xxh64::xxh64(data, 0) as u32
}

impl Frame {
    pub fn write<W: Write + ?Sized>(&self, w: &mut W) -> Result<()> {
        match self {
            Frame::Model {
                raw_len,
                n_tokens,
                checksum,
                payload,
            }
            | Frame::Direct {
                raw_len,
                n_tokens,
                checksum,
                payload,
            }
            | Frame::Blend {
                raw_len,
                n_tokens,
                checksum,
                payload,
            } => {
                let kind = match self {
                    Frame::Model { .. } => KIND_MODEL,
                    Frame::Direct { .. } => KIND_DIRECT,
                    _ => KIND_BLEND,
                };
                write_head(w, kind, &[*raw_len, *n_tokens, payload.len() as u32, *checksum])?;
                w.write_all(payload)?;
            }
            Frame::Bwt {
                sorter,
                raw_len,
                primary,
                checksum,
                payload,
            } => {
                write_head(w, sorter.kind(), &[*raw_len, *primary, payload.len() as u32, *checksum])?;
                w.write_all(payload)?;
            }
            Frame::Stored { checksum, data } => {
                write_head(w, KIND_STORED, &[data.len() as u32, *checksum])?;
                w.write_all(data)?;
            }
            Frame::Lzma {
                raw_len,
                checksum,
                payload,
            } => {
                write_head(w, KIND_LZMA, &[*raw_len, payload.len() as u32, *checksum])?;
                w.write_all(payload)?;
            }
            Frame::Cm {
                model,
                raw_len,
                checksum,
                payload,
            } => {
                write_head(w, model.kind(), &[*raw_len, payload.len() as u32, *checksum])?;
                w.write_all(payload)?;
            }
            Frame::End { total_len, checksum } => {
                // format 2: the total length as a LEB128 varint (format 1 used a fixed u64)
                let mut h = vec![KIND_END];
                let mut v = *total_len;
                while v >= 0x80 {
                    h.push((v as u8) | 0x80);
                    v >>= 7;
                }
                h.push(v as u8);
                h.extend_from_slice(&checksum.to_le_bytes());
                w.write_all(&h)?;
            }
        }
        Ok(())
    }

    /// The frame's size as written in a stream of format `version`.
    pub fn encoded_len(&self, version: u8) -> u64 {
        match self {
            Frame::Model { payload, .. }
            | Frame::Direct { payload, .. }
            | Frame::Blend { payload, .. }
            | Frame::Bwt { payload, .. } => 17 + payload.len() as u64,
            Frame::Stored { data, .. } => 9 + data.len() as u64,
            Frame::Lzma { payload, .. } | Frame::Cm { payload, .. } => 13 + payload.len() as u64,
            Frame::End { .. } if version < 2 => 17,
            // kind, LEB128 total length (7 bits a byte), checksum
            Frame::End { total_len, .. } => 1 + (64 - total_len.leading_zeros()).div_ceil(7).max(1) as u64 + 8,
        }
    }

    /// Whether the frame keeps version 5's work bound (`MAX_SYMBOLS_PER_BYTE`).
    pub fn fits_work_bound(&self) -> bool {
        let (kind, raw_len, n_tokens, payload) = match self {
            Frame::Model {
                raw_len,
                n_tokens,
                payload,
                ..
            } => (KIND_MODEL, *raw_len, *n_tokens, payload),
            Frame::Direct {
                raw_len,
                n_tokens,
                payload,
                ..
            } => (KIND_DIRECT, *raw_len, *n_tokens, payload),
            Frame::Blend {
                raw_len,
                n_tokens,
                payload,
                ..
            } => (KIND_BLEND, *raw_len, *n_tokens, payload),
            Frame::Cm {
                model,
                raw_len,
                payload,
                ..
            } => (model.kind(), *raw_len, 0, payload),
            Frame::Bwt {
                sorter,
                raw_len,
                payload,
                ..
            } => (sorter.kind(), *raw_len, 0, payload),
            _ => return true,
        };
        coded_symbols(kind, raw_len, n_tokens).is_none_or(|n| work_fits(n, payload.len() as u64))
    }

    /// Bytes of content the frame stands for (0 for the end frame).
    pub fn raw_len(&self) -> u64 {
        match self {
            Frame::Model { raw_len, .. }
            | Frame::Direct { raw_len, .. }
            | Frame::Blend { raw_len, .. }
            | Frame::Lzma { raw_len, .. }
            | Frame::Cm { raw_len, .. }
            | Frame::Bwt { raw_len, .. } => *raw_len as u64,
            Frame::Stored { data, .. } => data.len() as u64,
            Frame::End { .. } => 0,
        }
    }

    /// Read one frame of a stream of format `version` whose header said `chunk_size`.
    pub fn read<R: Read + ?Sized>(r: &mut R, chunk_size: u32, version: u8) -> Result<Frame> {
        let mut kind = [0u8; 1];
        read_exact(r, &mut kind)?;
        match kind[0] {
            // the 17-byte heads: raw_len, a second field in 1..=raw_len (the token count, or a BWT
            // frame's primary index), payload_len, checksum
            KIND_MODEL | KIND_DIRECT | KIND_BLEND | KIND_BWT | KIND_FAST_BWT
                if kind[0] == KIND_MODEL
                    || (kind[0] == KIND_DIRECT && version >= 4)
                    || (kind[0] == KIND_BLEND && version >= 6)
                    || (kind[0] == KIND_BWT && version >= 7)
                    || version >= 8 =>
            {
                let mut h = [0u8; 16];
                read_exact(r, &mut h)?;
                let f = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
                let (raw_len, second, payload_len, checksum) = (f(0), f(4), f(8), f(12));
                check_raw_len(raw_len, chunk_size)?;
                if second == 0 || second > raw_len {
                    return Err(Error::corrupt(if kind[0] >= KIND_BWT {
                        format!("BWT frame's primary index {second} is outside 1..={raw_len}")
                    } else {
                        format!("{second} tokens for {raw_len} bytes")
                    }));
                }
                if payload_len > raw_len {
                    return Err(Error::corrupt("coded frame larger than its content"));
                }
                check_work(version, coded_symbols(kind[0], raw_len, second), payload_len)?;
                let payload = read_vec(r, payload_len as usize)?;
                let n_tokens = second;
                Ok(match kind[0] {
                    KIND_MODEL => Frame::Model {
                        raw_len,
                        n_tokens,
                        checksum,
                        payload,
                    },
                    KIND_DIRECT => Frame::Direct {
                        raw_len,
                        n_tokens,
                        checksum,
                        payload,
                    },
                    KIND_BLEND => Frame::Blend {
                        raw_len,
                        n_tokens,
                        checksum,
                        payload,
                    },
                    _ => Frame::Bwt {
                        sorter: if kind[0] == KIND_BWT {
                            Sorter::Full
                        } else {
                            Sorter::Lean
                        },
                        raw_len,
                        primary: second,
                        checksum,
                        payload,
                    },
                })
            }
            KIND_STORED => {
                let mut h = [0u8; 8];
                read_exact(r, &mut h)?;
                let raw_len = u32::from_le_bytes(h[0..4].try_into().unwrap());
                check_raw_len(raw_len, chunk_size)?;
                let checksum = u32::from_le_bytes(h[4..8].try_into().unwrap());
                Ok(Frame::Stored {
                    checksum,
                    data: read_vec(r, raw_len as usize)?,
                })
            }
            KIND_LZMA | KIND_CM | KIND_DEEP_CM | KIND_MID_CM
                if (kind[0] == KIND_LZMA && version >= 2)
                    || (kind[0] == KIND_CM && version >= 3)
                    || (kind[0] == KIND_DEEP_CM && version >= 10)
                    || version >= 14 =>
            {
                let mut h = [0u8; 12];
                read_exact(r, &mut h)?;
                let f = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
                let (raw_len, payload_len, checksum) = (f(0), f(4), f(8));
                check_raw_len(raw_len, chunk_size)?;
                if payload_len > raw_len {
                    return Err(Error::corrupt("coded frame larger than its content"));
                }
                check_work(version, coded_symbols(kind[0], raw_len, 0), payload_len)?;
                let payload = read_vec(r, payload_len as usize)?;
                Ok(if kind[0] == KIND_LZMA {
                    Frame::Lzma {
                        raw_len,
                        checksum,
                        payload,
                    }
                } else {
                    Frame::Cm {
                        model: match kind[0] {
                            KIND_CM => CmModel::Plain,
                            KIND_DEEP_CM => CmModel::Deep,
                            _ => CmModel::Mid,
                        },
                        raw_len,
                        checksum,
                        payload,
                    }
                })
            }
            KIND_END => {
                let total_len = if version >= 2 {
                    let mut v = 0u64;
                    let mut i = 0;
                    loop {
                        let mut b = [0u8; 1];
                        read_exact(r, &mut b)?;
                        if i == 9 && b[0] > 1 {
                            return Err(Error::corrupt("total length varint overflows 64 bits"));
                        }
                        v |= ((b[0] & 0x7F) as u64) << (7 * i);
                        i += 1;
                        if b[0] & 0x80 == 0 {
                            if b[0] == 0 && i > 1 {
                                return Err(Error::corrupt("total length varint is not minimal"));
                            }
                            break;
                        }
                    }
                    v
                } else {
                    let mut h = [0u8; 8];
                    read_exact(r, &mut h)?;
                    u64::from_le_bytes(h)
                };
                let mut h = [0u8; 8];
                read_exact(r, &mut h)?;
                Ok(Frame::End {
                    total_len,
                    checksum: u64::from_le_bytes(h),
                })
            }
            k => Err(Error::corrupt(format!("unknown frame kind {k}"))),
        }
    }
}

/// A frame head: the kind byte, then little-endian u32 fields.
fn write_head<W: Write + ?Sized>(w: &mut W, kind: u8, fields: &[u32]) -> Result<()> {
    let mut h = vec![kind];
    for f in fields {
        h.extend_from_slice(&f.to_le_bytes());
    }
    w.write_all(&h)?;
    Ok(())
}

/// Whether a payload of `payload_len` bytes can code `symbols` symbols (version 5 on).
pub fn work_fits(symbols: u64, payload_len: u64) -> bool {
    symbols <= MAX_SYMBOLS_PER_BYTE * (payload_len + 1)
}

/// The symbols a range-coded frame of `kind` codes, at least: 8 bits per byte of a CM or BWT frame, one
/// run flag per byte of a fast BWT frame, the tokens of a model or direct frame, 8 bits per token of a
/// blend frame; `None` for frames that are not range-coded.
fn coded_symbols(kind: u8, raw_len: u32, n_tokens: u32) -> Option<u64> {
    match kind {
        KIND_CM | KIND_DEEP_CM | KIND_MID_CM | KIND_BWT => Some(8 * raw_len as u64),
        KIND_FAST_BWT => Some(raw_len as u64),
        KIND_MODEL | KIND_DIRECT => Some(n_tokens as u64),
        KIND_BLEND => Some(8 * n_tokens as u64),
        _ => None,
    }
}

fn check_work(version: u8, symbols: Option<u64>, payload_len: u32) -> Result<()> {
    let Some(symbols) = symbols else { return Ok(()) };
    if version >= 5 && !work_fits(symbols, payload_len as u64) {
        return Err(Error::corrupt(format!(
            "frame claims {symbols} coded symbols, more than a {payload_len}-byte payload can hold"
        )));
    }
    Ok(())
}

fn check_raw_len(raw_len: u32, chunk_size: u32) -> Result<()> {
    if raw_len == 0 || raw_len > chunk_size {
        return Err(Error::corrupt(format!(
            "frame length {raw_len} outside 1..={chunk_size}"
        )));
    }
    Ok(())
}

fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

fn read_exact<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<()> {
    if read_full(r, buf)? < buf.len() {
        return Err(Error::Truncated);
    }
    Ok(())
}

fn read_vec<R: Read + ?Sized>(r: &mut R, len: usize) -> Result<Vec<u8>> {
    // `len` is bounded by MAX_CHUNK, checked by the caller
    let mut v = vec![0u8; len];
    read_exact(r, &mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_frames_exist_from_version_4() {
        let f = Frame::Direct {
            raw_len: 10,
            n_tokens: 3,
            checksum: 7,
            payload: vec![1, 2, 3],
        };
        let mut b = Vec::new();
        f.write(&mut b).unwrap();
        assert_eq!(b[0], KIND_DIRECT);
        assert_eq!(b.len() as u64, f.encoded_len(4));
        assert_eq!(Frame::read(&mut &b[..], 100, 4).unwrap(), f);
        assert!(
            Frame::read(&mut &b[..], 100, 3).is_err(),
            "kind 5 is unknown before version 4"
        );
    }

    #[test]
    fn bwt_frames_name_their_predictor_by_kind() {
        for (sorter, kind, since) in [(Sorter::Full, KIND_BWT, 7), (Sorter::Lean, KIND_FAST_BWT, 8)] {
            let f = Frame::Bwt {
                sorter,
                raw_len: 10,
                primary: 4,
                checksum: 7,
                payload: vec![1, 2, 3],
            };
            let mut b = Vec::new();
            f.write(&mut b).unwrap();
            assert_eq!(b[0], kind);
            assert_eq!(b.len() as u64, f.encoded_len(VERSION));
            assert_eq!(Frame::read(&mut &b[..], 100, since).unwrap(), f);
            assert!(
                Frame::read(&mut &b[..], 100, since - 1).is_err(),
                "kind {kind} is unknown before version {since}"
            );
        }
    }

    #[test]
    fn cm_frames_exist_from_version_3_deep_ones_from_10_and_mid_ones_from_14() {
        for (model, since) in [(CmModel::Plain, 3), (CmModel::Deep, 10), (CmModel::Mid, 14)] {
            let f = Frame::Cm {
                model,
                raw_len: 10,
                checksum: 7,
                payload: vec![1, 2, 3],
            };
            let mut b = Vec::new();
            f.write(&mut b).unwrap();
            assert_eq!(b[0], model.kind());
            assert_eq!(b.len() as u64, f.encoded_len(since));
            assert_eq!(Frame::read(&mut &b[..], 100, since).unwrap(), f);
            assert_eq!(Frame::read(&mut &b[..], 100, VERSION).unwrap(), f);
            assert!(
                Frame::read(&mut &b[..], 100, since - 1).is_err(),
                "kind {} is unknown before version {since}",
                model.kind()
            );
        }
    }

    #[test]
    fn frames_round_trip() {
        let h = Header {
            version: VERSION,
            model_id: [7; 16],
            chunk_size: 1000,
        };
        let frames = vec![
            Frame::Model {
                raw_len: 100,
                n_tokens: 30,
                checksum: 5,
                payload: vec![1, 2, 3],
            },
            Frame::Stored {
                checksum: 9,
                data: vec![0; 10],
            },
            Frame::End {
                total_len: 110,
                checksum: 77,
            },
        ];
        let mut buf = Vec::new();
        h.write(&mut buf).unwrap();
        for f in &frames {
            f.write(&mut buf).unwrap();
        }
        for f in frames.iter().chain(
            [
                Frame::End {
                    total_len: 0,
                    checksum: 1,
                },
                Frame::End {
                    total_len: u64::MAX,
                    checksum: 2,
                },
            ]
            .iter(),
        ) {
            let mut one = Vec::new();
            f.write(&mut one).unwrap();
            assert_eq!(f.encoded_len(VERSION), one.len() as u64, "{f:?}");
        }
        let mut r = &buf[..];
        assert_eq!(Header::read(&mut r).unwrap().unwrap(), h);
        for f in &frames {
            assert_eq!(&Frame::read(&mut r, 1000, VERSION).unwrap(), f);
        }
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(matches!(
            Header::read(&mut &b"hello world, not an archive!"[..]),
            Err(Error::NotAnArchive)
        ));
        let mut b = Vec::new();
        Header {
            version: VERSION,
            model_id: [0; 16],
            chunk_size: 10,
        }
        .write(&mut b)
        .unwrap();
        b[4] = VERSION + 1;
        assert!(matches!(
            Header::read(&mut &b[..]),
            Err(Error::FutureVersion(v, VERSION)) if v == VERSION + 1
        ));
        assert!(matches!(
            Header::read(&mut &b[..10]),
            Err(Error::FutureVersion(v, VERSION)) if v == VERSION + 1
        ));
        b[4] = 1;
        assert!(matches!(Header::read(&mut &b[..10]), Err(Error::Truncated)));
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Header::read(&mut &b[..]), Err(Error::Corrupt(_))));
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocating() {
        let mut b = vec![KIND_STORED];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Frame::read(&mut &b[..], 1 << 16, VERSION),
            Err(Error::Corrupt(_))
        ));
    }
}
