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
        Ok(Tokenizer { inner, to_char, pieces })
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
