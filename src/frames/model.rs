//! Model frames (`Frame::Model`, formats 3 on): each token coded bit by bit along its binary code;
//! the transformer's table gives each bit's probability and the token mixer refines it
//! (docs/MODEL.md, "Context mixing", "Token bits"; docs/FORMAT.md, "Model frames").

use super::{push_piece, token_bits, token_classes, TokenFrame, TokenJob};
use crate::cm::SymbolCm;
use crate::coder::Coder;
use crate::error::Result;
use crate::table::{cumulate, table_bit, BitPred};

/// The model frame kind.
pub(crate) struct Model;

impl TokenFrame for Model {
    /// The encoder feeds the model a block of inputs at a time (it knows them all); the decoder
    /// one input at a time, the token it has just decoded.
    fn code<C: Coder>(c: &mut C, job: &TokenJob, ids: Option<&[u32]>, out: &mut Vec<u8>) -> Result<()> {
        let model = job.backend.model();
        let vocab = model.cfg.vocab;
        let nbits = token_bits(vocab);
        let mut stream = job.backend.stream();
        let block = if ids.is_some() { stream.max_block() } else { 1 };
        let mut tables = vec![0u32; block * vocab];
        let mut inputs = Vec::with_capacity(block);
        let mut cum = Vec::with_capacity(vocab + 1);
        let mut cm = SymbolCm::for_tokens(nbits, job.n_tokens as u64, token_classes(model));
        let mut prev = model.cfg.bos();
        for start in (0..job.n_tokens).step_by(block) {
            job.tick_tokens(start.saturating_sub(block), start)?;
            let end = (start + block).min(job.n_tokens);
            inputs.clear();
            match ids {
                Some(ids) => inputs.extend((start..end).map(|i| if i == 0 { model.cfg.bos() } else { ids[i - 1] })),
                None => inputs.push(prev),
            }
            stream.feed(&inputs, &mut tables[..inputs.len() * vocab])?;
            for (r, table) in tables[..inputs.len() * vocab].chunks_exact(vocab).enumerate() {
                cumulate(table, &mut cum);
                let known = ids.map_or(0, |ids| ids[start + r]);
                for k in (0..nbits).rev() {
                    match table_bit(&cum, cm.node(), nbits) {
                        BitPred::Forced(bit) => cm.skip(bit),
                        BitPred::P(p) => {
                            let q = cm.predict(Some(p));
                            let bit = c.code_bit(q, (known >> k) & 1)?;
                            cm.update(bit);
                        }
                    }
                }
                prev = cm.last_symbol();
                if C::DECODES {
                    push_piece(model, prev, out, job.raw_len)?;
                }
            }
        }
        Ok(())
    }
}
