//! Direct frames (`Frame::Direct`, `--direct`): each token range-coded whole with the interval the
//! transformer's table gives it, against the fixed total [`FREQ_BUDGET`] (the rest of the range
//! is never used). No mixing: the mode a GPU runs at full speed (docs/FORMAT.md, "Direct model frames").

use super::{push_first_tokens, push_piece, TokenFrame, TokenJob};
use crate::coder::Coder;
use crate::error::{Error, Result};
use crate::table::{Interval, FREQ_BUDGET};

/// The direct frame kind.
pub(crate) struct Direct;

impl TokenFrame for Direct {
    /// The encoder asks the model for its tokens' intervals a block at a time (`feed_intervals`);
    /// the decoder asks it, token by token, which interval holds its target (`feed_search`).
    fn code<C: Coder>(c: &mut C, job: &TokenJob, ids: Option<&[u32]>, out: &mut Vec<u8>) -> Result<()> {
        let model = job.backend.model();
        let mut stream = job.backend.stream();
        let block = if ids.is_some() { stream.max_block() } else { 1 };
        let mut inputs = Vec::with_capacity(block);
        let mut known = vec![Interval::default(); block];
        let mut prev = model.cfg.bos();
        for start in (0..job.n_tokens).step_by(block) {
            job.tick_tokens(start.saturating_sub(block), start)?;
            let end = (start + block).min(job.n_tokens);
            if let Some(ids) = ids {
                inputs.clear();
                inputs.extend((start..end).map(|i| if i == 0 { model.cfg.bos() } else { ids[i - 1] }));
                stream.feed_intervals(&inputs, &ids[start..end], &mut known[..end - start])?;
            }
            for (r, &k) in known[..end - start].iter().enumerate() {
                if c.only_zeros_left() {
                    return push_first_tokens(model, job.n_tokens - (start + r), out, job.raw_len);
                }
                let iv = c.code_interval(FREQ_BUDGET, k, |target| {
                    stream
                        .feed_search(prev, target as u32)?
                        .ok_or_else(|| Error::corrupt("range decoder target past the table"))
                })?;
                prev = iv.sym;
                if C::DECODES {
                    push_piece(model, prev, out, job.raw_len)?;
                }
            }
        }
        Ok(())
    }
}
