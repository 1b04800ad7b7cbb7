//! CM frames (`Frame::Cm`): a chunk's bytes coded bit by bit, most significant first, with the byte
//! mixer's probability (docs/MODEL.md, "Context mixing"; docs/FORMAT.md, "CM frames"), plain,
//! deep (with bit histories, "Bit histories") or mid (deep, trimmed: "Mid CM frames"). No
//! transformer.

use crate::cm::{ByteModel, SymbolCm};
use crate::codec::Work;
use crate::coder::{Coder, Decoder, Encoder, Rules};
use crate::error::Result;
use crate::format::{CmModel, VERSION};

/// The payload of `data` as a CM frame of `model`.
pub(crate) fn encode(data: &[u8], model: CmModel, work: &Work) -> Result<Vec<u8>> {
    let mut enc = Encoder::new();
    code(&mut enc, Some(data), data.len(), &mut Vec::new(), VERSION, model, work)?;
    Ok(enc.finish())
}

/// The `raw_len` bytes of a CM frame of `model` of a stream of format `version`.
pub(crate) fn decode(payload: &[u8], raw_len: usize, version: u8, model: CmModel, work: &Work) -> Result<Vec<u8>> {
    let mut dec = Decoder::new(payload, Rules::for_version(version));
    let mut out = Vec::with_capacity(raw_len);
    code(&mut dec, None, raw_len, &mut out, version, model, work)?;
    dec.finish()?;
    Ok(out)
}

/// What the byte predictor of a CM frame of `model` holds in a stream of format `version`: records
/// from format 9 on (deep frames, format 10 on, too), the long match model in deep frames from
/// format 11 on, the bi-level image model in deep frames from format 12 on, format 13's contexts
/// and rates in all from format 13 on, the run model in deep frames from format 15 on, the JPEG
/// model in deep and mid frames from format 16 on, the number model in deep and mid frames from
/// format 17 on, mixers and maps that warm up in all from format 18 on, the URL model in deep and
/// mid frames from format 20 on. Mid frames (format 14
/// on) are deep frames trimmed (`ByteModel::mid`).
pub(crate) fn byte_model(model: CmModel, version: u8) -> ByteModel {
    let mid = model == CmModel::Mid;
    let deep = model == CmModel::Deep || mid;
    ByteModel {
        records: version >= 9,
        histories: deep,
        long_match: deep && version >= 11,
        image: deep && version >= 12,
        words: version >= 13,
        mid,
        runs: model == CmModel::Deep && version >= 15,
        jpeg: deep && version >= 16,
        numbers: deep && version >= 17,
        warmup: version >= 18,
        urls: deep && version >= 20,
    }
}

/// Both directions, as a stream of format `version` codes them: the encoder is given `data`; the
/// decoder appends the bytes it reads to `out`.
fn code<C: Coder>(
    c: &mut C,
    data: Option<&[u8]>,
    raw_len: usize,
    out: &mut Vec<u8>,
    version: u8,
    model: CmModel,
    work: &Work,
) -> Result<()> {
    let mut cm = SymbolCm::for_bytes(raw_len as u64, byte_model(model, version));
    for i in 0..raw_len {
        work.at(i)?;
        work.pace(i, || c.coded_bytes())?;
        if c.only_zeros_left() {
            // old versions: every later bit decodes as 1 (the interval [0, q) holds target 0)
            out.resize(raw_len, 0xFF);
            return Ok(());
        }
        let byte = data.map_or(0, |d| d[i] as u32);
        for k in (0..8).rev() {
            let q = cm.predict(None);
            let bit = c.code_bit(q, (byte >> k) & 1)?;
            cm.update(bit);
        }
        if C::DECODES {
            out.push(cm.last_symbol() as u8);
        }
    }
    Ok(())
}
