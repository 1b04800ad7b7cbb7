//! LZMA frames (`Frame::Lzma`): the chunk as liblzma's raw `.lzma` stream without its 13-byte
//! header, which the decoder rebuilds from the frame's length (docs/FORMAT.md, "Frames").
//! liblzma does both directions; this module only fixes its options and checks its output.

use crate::codec::{Work, STEP};
use crate::error::{Error, Result};
use std::io::Write;

fn error(e: xz2::stream::Error) -> Error {
    Error::Io(std::io::Error::other(e))
}

/// liblzma's LZMA_PRESET_EXTREME flag (xz -e).
pub(crate) const PRESET_EXTREME: u32 = 1 << 31;

/// LZMA options for `Lzma` frames: `preset` (9 with the extreme flag by default, 1 for `--direct`),
/// dictionary = the chunk. Every preset keeps lc 3, lp 0, pb 2, which frames rely on.
fn options(len: usize, preset: u32) -> Result<xz2::stream::LzmaOptions> {
    let mut o = xz2::stream::LzmaOptions::new_preset(preset).map_err(error)?;
    o.dict_size(dict_size(len));
    Ok(o)
}

/// Dictionary size: the chunk length rounded up to a power of two (a value liblzma's `.lzma`
/// header stores unchanged), between 4 KiB and 64 MiB.
pub(crate) fn dict_size(len: usize) -> u32 {
    (len as u32).clamp(4096, 64 << 20).next_power_of_two()
}

/// The 13-byte `.lzma` header our options produce: properties (lc 3, lp 0, pb 2), dictionary size,
/// unknown uncompressed size. Frames omit it (docs/FORMAT.md); the decoder puts it back.
fn header(raw_len: usize) -> [u8; 13] {
    let mut h = [0xFFu8; 13];
    h[0] = 0x5D;
    h[1..5].copy_from_slice(&dict_size(raw_len).to_le_bytes());
    h
}

/// LZMA payload without its header, or `None` if liblzma wrote a header we did not expect.
/// (liblzma is given the chunk a piece at a time, for `work`; its output does not depend on that.)
pub(crate) fn compress(data: &[u8], preset: u32, work: &Work) -> Result<Option<Vec<u8>>> {
    let stream = xz2::stream::Stream::new_lzma_encoder(&options(data.len(), preset)?).map_err(error)?;
    let mut enc = xz2::write::XzEncoder::new_stream(Vec::with_capacity(data.len() / 2), stream);
    for piece in data.chunks(STEP) {
        enc.write_all(piece)?;
        work.tick(piece.len() as u64)?;
    }
    let out = enc.finish()?;
    Ok((out.len() > 13 && out[..13] == header(data.len())).then(|| out[13..].to_vec()))
}

pub(crate) fn decompress(payload: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    use xz2::stream::{Action, Status, Stream};
    // the memory limit bounds the dictionary a damaged header could ask for
    let mut stream = Stream::new_lzma_decoder(2 * crate::format::MAX_CHUNK as u64 + (1 << 20)).map_err(error)?;
    let header = header(raw_len);
    // one byte of room past `raw_len` shows a stream that decodes to too much
    let mut out = Vec::with_capacity(raw_len + 1);
    let bad = |what: &str| Err(Error::corrupt(format!("LZMA frame {what}")));
    for part in [&header[..], payload] {
        let mut part = part;
        loop {
            let (before, made) = (stream.total_in(), out.len());
            let status = stream
                .process_vec(part, &mut out, Action::Run)
                .map_err(|e| Error::corrupt(format!("LZMA frame: {e}")))?;
            let used = (stream.total_in() - before) as usize;
            part = &part[used..];
            if matches!(status, Status::StreamEnd) {
                // every byte of the payload must belong to the LZMA stream
                if stream.total_in() != (header.len() + payload.len()) as u64 {
                    return bad("has bytes after its end");
                }
                return if out.len() == raw_len {
                    Ok(out)
                } else {
                    bad("decodes to the wrong length")
                };
            }
            if out.len() > raw_len {
                return bad("decodes to the wrong length");
            }
            if part.is_empty() || (used == 0 && out.len() == made) {
                break;
            }
        }
    }
    bad("ends before its end marker")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Cancel;

    /// `compress` gives liblzma the chunk in pieces; frames must be what one piece would give.
    #[test]
    fn pieces_do_not_change_the_stream() {
        let text: Vec<u8> = (0..300_000u32)
            .map(|i| b"abcdefgh, ijk lmnop\n"[((i * 2654435761u32) >> 28) as usize ^ (i as usize % 4)])
            .collect();
        let cancel = Cancel::new();
        for preset in [1, 6, 9 | PRESET_EXTREME] {
            let stream = xz2::stream::Stream::new_lzma_encoder(&options(text.len(), preset).unwrap()).unwrap();
            let mut whole = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
            whole.write_all(&text).unwrap();
            let whole = whole.finish().unwrap();
            let pieces = compress(&text, preset, &Work::new(&cancel)).unwrap().unwrap();
            assert_eq!(pieces, whole[13..], "preset {preset:#x}");
            assert_eq!(decompress(&pieces, text.len()).unwrap(), text);
        }
    }
}
