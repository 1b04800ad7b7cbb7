//! What only old archives need: model frames of formats 1 and 2, which coded each token whole
//! (format 1 with the transformer's table as it is, format 2 with [`mixer_v2`]'s adjustment).
//! nnz never writes them; it decodes them forever (testdata/golden/*.v1.nnz, *.v2.nnz).
//!
//! The payload rules of formats 1 to 4 ([`Rules::Legacy`](crate::coder::Rules)) are the range
//! decoder's; the frame kinds that formats 3 and 4 share with format 5 decode through
//! [`crate::frames`].

pub(crate) mod mixer_v2;

use crate::coder::{Decoder, Rules};
use crate::error::Result;
use crate::frames::{check_len, push_first_tokens, push_piece, TokenJob};
use mixer_v2::Mixer;

/// The `raw_len` bytes of a model frame of `n_tokens` tokens of a stream of format 1 or 2.
pub(crate) fn decode_whole_tokens(job: &TokenJob, payload: &[u8], version: u8) -> Result<Vec<u8>> {
    debug_assert!(version <= 2);
    let TokenJob {
        backend,
        n_tokens,
        raw_len,
        ..
    } = *job;
    let model = backend.model();
    let mut stream = backend.stream();
    let mut table = vec![0u32; model.cfg.vocab];
    let mut dec = Decoder::new(payload, Rules::Legacy);
    let mut out = Vec::with_capacity(raw_len);
    let mut prev = model.cfg.bos();
    let mut mixer = (version == 2).then(Mixer::new);
    for i in 0..n_tokens {
        if i % 256 == 0 {
            job.tick_tokens(i.saturating_sub(256), i)?;
        }
        if dec.only_zeros_left() {
            push_first_tokens(model, n_tokens - i, &mut out, raw_len)?;
            break;
        }
        stream.feed(&[prev], &mut table)?;
        if let Some(m) = mixer.as_mut() {
            m.adjust(&mut table);
        }
        let sym = dec.decode_symbol(&table)? as u32;
        if let Some(m) = mixer.as_mut() {
            m.update(sym);
        }
        push_piece(model, sym, &mut out, raw_len)?;
        prev = sym;
    }
    check_len(&out, raw_len)?;
    dec.finish()?;
    Ok(out)
}
