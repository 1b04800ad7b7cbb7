//! Byte-exact BPE tokenizer around the `tokenizers` crate.
//!
//! Every byte is first mapped to one char with GPT-2's byte table (all 256 bytes are in the BPE
//! alphabet), so any byte string — invalid UTF-8, NUL, binary — becomes a valid string that the BPE
//! model can split. Ids go back to bytes through our own id → bytes table (the crate's `decode`
//! is lossy), so `decode(encode(x)) == x` for every `x`.

use crate::error::{Error, Result};

/// GPT-2's byte → char table: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    to_char: [char; 256],
    /// id → the bytes it stands for
    pieces: Vec<Vec<u8>>,
    lex: LexOrder,
}

/// The vocabulary in byte order: token ids sorted by their bytes (a shorter token before the
/// longer ones it begins), so the tokens that begin with any given bytes form one run, and the run
/// of those whose next byte lies in a range is a sub-run (docs/MODEL.md, "Blend frames").
pub struct LexOrder {
    ids: Vec<u32>,
    pieces: Vec<Vec<u8>>,
}

impl LexOrder {
    fn new(pieces: &[Vec<u8>]) -> LexOrder {
        let mut ids: Vec<u32> = (0..pieces.len() as u32).collect();
        ids.sort_by(|&a, &b| pieces[a as usize].cmp(&pieces[b as usize]));
        LexOrder {
            pieces: ids.iter().map(|&i| pieces[i as usize].clone()).collect(),
            ids,
        }
    }

    /// Tokens (the BOS token is not one).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of the `i`-th token in byte order.
    pub fn id(&self, i: usize) -> u32 {
        self.ids[i]
    }

    /// The bytes of the `i`-th token in byte order.
    pub fn piece(&self, i: usize) -> &[u8] {
        &self.pieces[i]
    }

    /// The sums of `table` (indexed by id) in byte order: `cum[i]` = entries of the first `i`.
    pub fn cumulate(&self, table: &[u32], cum: &mut Vec<u32>) {
        cum.clear();
        cum.push(0);
        let mut s = 0u32;
        for &id in &self.ids {
            s += table[id as usize];
            cum.push(s);
        }
    }

    /// In the run `lo..hi` of tokens that are all longer than `depth` and sorted by their byte at
    /// `depth`: the first whose byte there is at least `b`.
    pub fn first_with_byte_at_least(&self, lo: usize, hi: usize, depth: usize, b: u8) -> usize {
        lo + self.pieces[lo..hi].partition_point(|p| p[depth] < b)
    }
}

impl Tokenizer {
    pub fn from_json(json: &str) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(json.as_bytes())
            .map_err(|e| Error::BadModel(format!("tokenizer: {e}")))?;
        let to_char = byte_to_char();
        let mut from_char = std::collections::HashMap::new();
        for (b, &c) in to_char.iter().enumerate() {
            from_char.insert(c, b as u8);
        }
        let vocab = inner.get_vocab(true);
        let mut pieces = vec![Vec::new(); vocab.len()];
        for (s, id) in vocab {
            let id = id as usize;
            if id >= pieces.len() {
                return Err(Error::BadModel("tokenizer ids are not contiguous".into()));
            }
            let bytes: Option<Vec<u8>> = s.chars().map(|c| from_char.get(&c).copied()).collect();
            pieces[id] =
                bytes.ok_or_else(|| Error::BadModel(format!("token {id} has a char outside the byte table")))?;
        }
        if pieces.iter().any(|p| p.is_empty()) {
            return Err(Error::BadModel("tokenizer has an empty or missing token".into()));
        }
        for b in 0..=255u8 {
            if !pieces.iter().any(|p| p.len() == 1 && p[0] == b) {
                return Err(Error::BadModel(format!("tokenizer cannot encode byte {b:#04x}")));
            }
        }
        // string keys are unique and the byte table is one to one, so no two tokens share bytes
        let lex = LexOrder::new(&pieces);
        Ok(Tokenizer {
            inner,
            to_char,
            pieces,
            lex,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    pub fn encode(&self, data: &[u8]) -> Result<Vec<u32>> {
        let s: String = data.iter().map(|&b| self.to_char[b as usize]).collect();
        let enc = self
            .inner
            .encode_fast(s, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The bytes of one token id, or `None` for an id outside the tokenizer's vocabulary.
    pub fn piece(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|p| p.as_slice())
    }

    /// The vocabulary in byte order.
    pub fn lex(&self) -> &LexOrder {
        &self.lex
    }

    pub fn decode_into(&self, ids: &[u32], out: &mut Vec<u8>) -> Result<()> {
        for &id in ids {
            out.extend_from_slice(
                self.piece(id)
                    .ok_or_else(|| Error::corrupt(format!("token id {id} out of range")))?,
            );
        }
        Ok(())
    }
}
