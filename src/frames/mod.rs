//! One module per frame kind that a model codes, each with one routine, `code`, that serves both
//! directions: it takes a [`Coder`](crate::coder::Coder), which is the range encoder when
//! compressing and the range decoder when decompressing, so the model's decisions are written once
//! and the two sides cannot drift. `encode` and `decode` are thin wrappers around it.
//!
//! - [`blend`]: tokens coded through their bytes, the byte mixer and the transformer together
//! - [`cm`]: bytes coded bit by bit by the byte mixer
//! - [`bwt`]: the chunk's Burrows–Wheeler transform, coded by a predictor of sorted bytes (BWT
//!   frames) or by its lean sibling (fast BWT frames)
//! - [`model`]: tokens coded bit by bit, the transformer's table refined by the token mixer
//! - [`direct`]: tokens coded whole with the transformer's table (`--direct`)
//! - [`lzma`]: liblzma's raw stream
//!
//! Stored frames need no coder. Frames of formats 1 and 2 live in [`crate::legacy`].

pub(crate) mod blend;
pub(crate) mod bwt;
pub(crate) mod cm;
pub(crate) mod direct;
pub(crate) mod lzma;
pub(crate) mod model;

use crate::backend::Backend;
use crate::cm::classes_of;
use crate::codec::Work;
use crate::coder::{Coder, Decoder, Encoder, Rules};
use crate::error::{Error, Result};
use crate::format::VERSION;
use crate::model::Model;

/// A frame kind that codes a chunk as tokens (model and direct frames): its `code` serves both
/// directions, and `encode` / `decode` are the same for every such kind.
pub(crate) trait TokenFrame {
    /// Code the `n_tokens` tokens of a chunk of `raw_len` bytes. The encoder is given the tokens
    /// (`ids`); the decoder learns each from the payload and appends its bytes to `out`.
    fn code<C: Coder>(c: &mut C, job: &TokenJob, ids: Option<&[u32]>, out: &mut Vec<u8>) -> Result<()>;

    /// The payload of `data` and its token count, or `None` if the tokenizer cannot rebuild the
    /// chunk exactly or the trial fell behind the byte mixer's (`codec::pace`).
    fn encode(backend: &dyn Backend, data: &[u8], work: &Work) -> Result<Option<(Vec<u8>, u64)>> {
        let Some(ids) = tokens_of(backend.model(), data)? else {
            return Ok(None);
        };
        let job = TokenJob {
            backend,
            n_tokens: ids.len(),
            raw_len: data.len(),
            work,
            version: VERSION,
        };
        let mut enc = Encoder::new();
        match Self::code(&mut enc, &job, Some(&ids), &mut Vec::new()) {
            // the byte mixer's trial is clearly ahead (`codec::pace`): no frame
            Err(Error::Interrupted) if work.fell_behind() => return Ok(None),
            r => r?,
        }
        Ok(Some((enc.finish(), ids.len() as u64)))
    }

    /// The bytes of a frame of a stream of format `version`, from its payload.
    fn decode(job: &TokenJob, payload: &[u8], version: u8) -> Result<Vec<u8>> {
        let mut dec = Decoder::new(payload, Rules::for_version(version));
        let mut out = Vec::with_capacity(job.raw_len);
        Self::code(&mut dec, job, None, &mut out)?;
        check_len(&out, job.raw_len)?;
        dec.finish()?;
        Ok(out)
    }
}

/// What coding one token frame needs besides its tokens.
pub(crate) struct TokenJob<'a> {
    /// runs the model
    pub backend: &'a dyn Backend,
    /// the frame's token count
    pub n_tokens: usize,
    /// the frame's length in bytes
    pub raw_len: usize,
    /// where the coding loop looks for cancellation and reports progress
    pub work: &'a Work<'a>,
    /// the stream's format version
    pub version: u8,
}

impl TokenJob<'_> {
    /// Look for cancellation, and report the bytes of tokens `from..to` (as many as the frame
    /// holds on average: the rounded totals add up to the frame's length).
    pub(crate) fn tick_tokens(&self, from: usize, to: usize) -> Result<()> {
        let bytes = |t: usize| (t as u64 * self.raw_len as u64) / self.n_tokens.max(1) as u64;
        self.work.tick(bytes(to) - bytes(from))
    }
}

/// The tokens of `data`, or `None` if the tokenizer cannot rebuild it exactly (such a chunk is
/// never model-coded: the tokenizer is not trusted blindly).
pub(crate) fn tokens_of(model: &Model, data: &[u8]) -> Result<Option<Vec<u32>>> {
    let ids = model.tokenizer.encode(data)?;
    let mut check = Vec::with_capacity(data.len());
    model.tokenizer.decode_into(&ids, &mut check)?;
    Ok((check == data && !ids.is_empty()).then_some(ids))
}

/// Bits per token: enough for every id below `vocab`.
pub(crate) fn token_bits(vocab: usize) -> u32 {
    usize::BITS - (vocab - 1).leading_zeros()
}

/// The token mixer's class bits of every token of `model`'s vocabulary.
pub(crate) fn token_classes(model: &Model) -> Vec<u8> {
    classes_of(model.cfg.vocab, |s| model.tokenizer.piece(s))
}

/// Append token `sym`'s bytes, refusing to grow past the frame's length.
pub(crate) fn push_piece(model: &Model, sym: u32, out: &mut Vec<u8>, raw_len: usize) -> Result<()> {
    let piece = model
        .tokenizer
        .piece(sym)
        .ok_or_else(|| Error::corrupt("decoded a token that is not in the vocabulary"))?;
    if out.len() + piece.len() > raw_len {
        return Err(Error::corrupt("frame decodes to more bytes than its header says"));
    }
    out.extend_from_slice(piece);
    Ok(())
}

/// The rest of an old-version frame whose decoder has only zeros left: every later target is 0, so
/// every later token is token 0 (the first entry of every table, all of them >= 1).
pub(crate) fn push_first_tokens(model: &Model, n: usize, out: &mut Vec<u8>, raw_len: usize) -> Result<()> {
    for _ in 0..n {
        push_piece(model, 0, out, raw_len)?;
    }
    Ok(())
}

/// A decoded token frame must give exactly the bytes its header promises.
pub(crate) fn check_len(out: &[u8], raw_len: usize) -> Result<()> {
    if out.len() != raw_len {
        return Err(Error::corrupt("frame decodes to fewer bytes than its header says"));
    }
    Ok(())
}
