//! Blend frames (`Frame::Blend`, format 6 on): a chunk's tokens coded through their bytes, so the
//! byte mixer and the transformer predict every bit together (docs/MODEL.md, "Blend frames";
//! docs/FORMAT.md, "Blend frames").
//!
//! The transformer gives a table over the next token. A token is coded as its bytes, each bit by
//! bit, and after each byte one decision, whether the token ends there. At each step the tokens
//! that agree with the bytes coded so far form one run of the vocabulary in byte order
//! (`LexOrder`), so the table's mass on either side of a bit, or on the token that ends against
//! the longer ones, is a difference of two sums. That probability is one more input of the byte
//! mixer (the bits) or of the boundary predictor (the decisions). A bit or decision that only one
//! token value allows is not coded.
//!
//! From format 19 on, the table is made from the output layer's input by an output layer that
//! adapts to the chunk's tokens as they are coded (`AdaptiveHead`); the transformer's body runs as
//! before.

use super::{TokenFrame, TokenJob};
use crate::cm::boundary::{Boundary, Guess};
use crate::cm::{BlendModel, SymbolCm};
use crate::coder::Coder;
use crate::error::{Error, Result};
use crate::model::adapt::AdaptiveHead;
use crate::table::split_p;

/// The blend frame kind.
pub(crate) struct Blend;

impl TokenFrame for Blend {
    /// The encoder feeds the model a block of inputs at a time (it knows them all); the decoder
    /// one input at a time, the token it has just decoded.
    fn code<C: Coder>(c: &mut C, job: &TokenJob, ids: Option<&[u32]>, out: &mut Vec<u8>) -> Result<()> {
        let model = job.backend.model();
        let vocab = model.cfg.vocab;
        let bos = model.cfg.bos();
        let lex = model.tokenizer.lex();
        let mut stream = job.backend.stream();
        let block = if ids.is_some() { stream.max_block() } else { 1 };
        // format 19 on: the stream gives each row's head input, and the adapted head its table
        let mut head = (job.version >= 19).then(|| AdaptiveHead::new(model));
        let d = model.cfg.d_model;
        let mut heads = vec![0i8; if head.is_some() { block * d } else { 0 }];
        let mut tables = vec![0u32; if head.is_some() { vocab } else { block * vocab }];
        let (mut row, mut rows) = (0, 0);
        let mut inputs = Vec::with_capacity(block);
        let mut cum = Vec::with_capacity(lex.len() + 1);
        let blend = if job.version >= 18 {
            BlendModel::Format18
        } else if job.version >= 15 {
            BlendModel::Format15
        } else if job.version >= 13 {
            BlendModel::Format13
        } else {
            BlendModel::Format6
        };
        let mut cm = SymbolCm::for_blended_bytes(job.raw_len as u64, blend);
        let mut ends = Boundary::new(
            vocab,
            (job.version >= 15).then_some(job.raw_len as u64),
            job.version >= 18,
        );
        let mut prev = bos;
        let mut pos = 0;
        // the bytes coded when progress was last reported
        let mut ticked = 0;
        let mut t = 0;
        // the last 8 bytes coded, the latest lowest
        let mut recent = 0u64;
        while pos < job.raw_len {
            if row == rows {
                job.work.tick((pos - ticked) as u64)?;
                ticked = pos;
                inputs.clear();
                match ids {
                    Some(ids) => {
                        let end = (t + block).min(ids.len());
                        inputs.extend((t..end).map(|i| if i == 0 { bos } else { ids[i - 1] }));
                    }
                    None => inputs.push(prev),
                }
                if t >= job.n_tokens || inputs.is_empty() {
                    return Err(Error::corrupt("frame holds more tokens than its header says"));
                }
                match head {
                    Some(_) => stream.feed_head(&inputs, &mut heads[..inputs.len() * d])?,
                    None => stream.feed(&inputs, &mut tables[..inputs.len() * vocab])?,
                }
                (row, rows) = (0, inputs.len());
            }
            let table = match &mut head {
                Some(h) => {
                    h.table(&heads[row * d..(row + 1) * d], &mut tables);
                    &tables[..]
                }
                None => &tables[row * vocab..(row + 1) * vocab],
            };
            lex.cumulate(table, &mut cum);
            row += 1;
            let known = ids.map_or(&[][..], |ids| model.tokenizer.piece(ids[t]).unwrap_or(&[]));
            // the run of tokens that begin with the bytes coded so far
            let (mut lo, mut hi) = (0, lex.len());
            let mut depth = 0;
            loop {
                if depth > 0 {
                    // the shortest token of the run is the one the bytes so far spell, if any
                    let exact = lex.piece(lo).len() == depth;
                    let longer = hi - lo > exact as usize && pos < job.raw_len;
                    let end = if !exact {
                        if !longer {
                            return Err(Error::corrupt("decoded bytes that are no token"));
                        }
                        false
                    } else if !longer {
                        true
                    } else {
                        let p = split_p((cum[hi] - cum[lo + 1]) as u64, (cum[lo + 1] - cum[lo]) as u64);
                        let guess = Guess::of(cm.guess(), lex, lo, hi, depth);
                        let q = ends.predict(p, lex.id(lo), prev, depth, recent, guess);
                        let bit = c.code_bit(q, (depth == known.len()) as u32)?;
                        ends.update(bit);
                        bit == 1
                    };
                    if end {
                        break;
                    }
                    lo += exact as usize;
                }
                let want = known.get(depth).copied().unwrap_or(0) as u32;
                cm.set_depth(depth);
                for k in (0..8).rev() {
                    // the bits of this byte so far, then the least byte whose bit k is 1
                    let high = cm.node() ^ (1 << (7 - k));
                    let split = lex.first_with_byte_at_least(lo, hi, depth, (((high << 1) | 1) << k) as u8);
                    let bit = if split == hi {
                        cm.skip(0);
                        0
                    } else if split == lo {
                        cm.skip(1);
                        1
                    } else {
                        let q = cm.predict(Some(split_p(
                            (cum[split] - cum[lo]) as u64,
                            (cum[hi] - cum[split]) as u64,
                        )));
                        let bit = c.code_bit(q, (want >> k) & 1)?;
                        cm.update(bit);
                        bit
                    };
                    if bit == 1 {
                        lo = split;
                    } else {
                        hi = split;
                    }
                }
                recent = (recent << 8) | cm.last_symbol() as u64;
                if C::DECODES {
                    out.push(cm.last_symbol() as u8);
                }
                pos += 1;
                depth += 1;
            }
            prev = lex.id(lo);
            debug_assert!(ids.is_none_or(|ids| ids[t] == prev));
            if let Some(h) = &mut head {
                h.learn(prev, &tables);
            }
            t += 1;
            job.work.pace(pos, || c.coded_bytes())?;
        }
        if t != job.n_tokens {
            return Err(Error::corrupt("frame holds fewer tokens than its header says"));
        }
        Ok(())
    }
}
