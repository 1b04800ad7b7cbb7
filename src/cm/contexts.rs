//! What the context models see: the symbol history with its line and field structure, and the
//! context hashes computed from it at the start of each symbol (docs/MODEL.md, "Contexts").

use super::counter::fmix;
use super::numbers::Numbers;
use super::record::Records;
use super::url::Url;

/// One hashed context. `Order(n)`: the last n symbols. The others combine the previous symbols
/// (`s1` = the last, `s2` the one before, ...) with the line structure: `col` = symbols since the
/// line began, `above` = the symbol at the same column of the previous line, `field` = fields
/// begun in this line, `fabove` = the symbol at the same offset of the same field in the previous
/// line, `head` = the line's first symbol, `word` / `pword` = hashes of the current and the
/// previous alphanumeric run (bytes only), `lword` / `plword` = hashes of the current and the
/// previous run of ASCII letters, case folded (bytes only), `expected` = the match model's
/// predicted symbol. Once
/// a record length is found (`History::find_records`), `above` is the symbol one record back, `col`
/// the position in the record, and the two sparse contexts look at the record above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    Order(usize),
    /// s2, s3
    Sparse23,
    /// s2
    Sparse2,
    /// field, s1
    FieldS1,
    /// above, s1
    AboveS1,
    /// above, col
    AboveCol,
    /// head, field
    HeadField,
    /// col
    Col,
    /// above, s1, s2
    AboveS12,
    /// expected, min(match length, 15)
    Expected,
    /// word, s1
    WordS1,
    /// fabove, field, offset in field
    FieldAbove,
    /// word, s1, fabove
    WordFieldAbove,
    /// pword, s1
    PrevWordS1,
    /// lword (format 13 on)
    LowerWord,
    /// lword, plword (format 13 on)
    LowerWordPair,
    /// the number model's first context: the number's digits so far against the one expected, or
    /// the line's template (`numbers`; format 17 on)
    Number,
    /// the number model's second: the same by template, or the template of the line and the one
    /// before (`numbers`; format 17 on)
    NumberField,
    /// the URL model's (`url`; format 20 on): host, word, s1
    UrlWord,
    /// host, the path's `/` so far, word
    UrlPath,
    /// host, s1, s2
    UrlPair,
    /// directory, bytes since it
    UrlDir,
}

/// The URL model's contexts, in the order `byte_model_contexts` appends them.
pub const URL_CONTEXTS: [Ctx; 4] = [Ctx::UrlWord, Ctx::UrlPath, Ctx::UrlPair, Ctx::UrlDir];

/// Context orders for tokens and for bytes.
const TOKEN_ORDERS: &[usize] = &[1, 2, 3, 4, 6];
const BYTE_ORDERS: &[usize] = &[1, 2, 3, 4, 5, 6, 8, 12];

/// Contexts of the line structure and the match model, used for both alphabets.
const STRUCTURE: &[Ctx] = &[
    Ctx::Sparse23,
    Ctx::Sparse2,
    Ctx::FieldS1,
    Ctx::AboveS1,
    Ctx::AboveCol,
    Ctx::HeadField,
    Ctx::Col,
    Ctx::AboveS12,
    Ctx::Expected,
];

/// Word contexts (bytes only: tokens are mostly words already).
const WORDS: &[Ctx] = &[Ctx::WordS1, Ctx::FieldAbove, Ctx::WordFieldAbove, Ctx::PrevWordS1];

/// The contexts for tokens: orders, then `STRUCTURE`. The first two are orders 1 and 2 (the
/// probability maps use them).
pub fn token_contexts() -> Vec<Ctx> {
    TOKEN_ORDERS
        .iter()
        .map(|&o| Ctx::Order(o))
        .chain(STRUCTURE.iter().copied())
        .collect()
}

/// The contexts for bytes: with `words` (format 13 on), `BYTE_CONTEXTS_13`; else orders,
/// `STRUCTURE`, then `WORDS`.
pub fn byte_contexts(words: bool) -> Vec<Ctx> {
    if words {
        return BYTE_CONTEXTS_13.to_vec();
    }
    BYTE_ORDERS
        .iter()
        .map(|&o| Ctx::Order(o))
        .chain(STRUCTURE.iter().copied())
        .chain(WORDS.iter().copied())
        .collect()
}

/// The contexts for bytes from format 13 on: format 12's less five
/// whose removal, one at a time, made the deep byte mixer's bench no bigger (orders 6 and 12,
/// AboveS1, AboveS12, WordFieldAbove), and two of case-folded words (-0.6% on the bench, more on
/// text). The first two are orders 1 and 2; orders 4 and 8 are the fourth and sixth.
pub const BYTE_CONTEXTS_13: &[Ctx] = &[
    Ctx::Order(1),
    Ctx::Order(2),
    Ctx::Order(3),
    Ctx::Order(4),
    Ctx::Order(5),
    Ctx::Order(8),
    Ctx::Sparse23,
    Ctx::Sparse2,
    Ctx::FieldS1,
    Ctx::AboveCol,
    Ctx::HeadField,
    Ctx::Col,
    Ctx::Expected,
    Ctx::WordS1,
    Ctx::FieldAbove,
    Ctx::PrevWordS1,
    Ctx::LowerWordPair,
    Ctx::LowerWord,
];

/// The contexts of mid CM frames (format 14 on): `BYTE_CONTEXTS_13` less `HeadField`, whose
/// removal cost the mid byte mixer the least (164 bytes of the dev bench's 804,753, against 250 to
/// 3,400 for each of the others).
pub fn mid_contexts() -> Vec<Ctx> {
    BYTE_CONTEXTS_13
        .iter()
        .copied()
        .filter(|&c| c != Ctx::HeadField)
        .collect()
}

/// The contexts of a byte mixer without the transformer: `mid_contexts` (mid CM frames) or
/// `byte_contexts(words)`, then with `numbers` (format 17 on) the number model's two, then with
/// `urls` (format 20 on) the URL model's four (last: `SymbolCm` leaves them out outside a URL).
pub fn byte_model_contexts(mid: bool, words: bool, numbers: bool, urls: bool) -> Vec<Ctx> {
    let mut ctxs = if mid { mid_contexts() } else { byte_contexts(words) };
    if numbers {
        ctxs.extend([Ctx::Number, Ctx::NumberField]);
    }
    if urls {
        ctxs.extend(URL_CONTEXTS);
    }
    ctxs
}

/// Symbol class bits (see `History::push`).
pub const CLASS_NEWLINE: u8 = 1;
pub const CLASS_FIELD: u8 = 2;
pub const CLASS_WORD: u8 = 4;

/// Missing symbols (before the start, past a line's end) read as these values.
const NONE: u32 = u32::MAX;
const NO_ABOVE: u32 = u32::MAX - 1;
const NO_FIELD_AT: u32 = u32::MAX - 2;
const NO_FIELD: u32 = u32::MAX - 3;

pub struct History {
    pub syms: Vec<u32>,
    classes: Vec<u8>,
    line_start: usize,
    prev_line_start: usize,
    field: u32,
    /// where each field of the current and of the previous line begins
    fields: Vec<usize>,
    prev_fields: Vec<usize>,
    word: u32,
    prev_word: u32,
    lword: u32,
    prev_lword: u32,
    /// byte frames of format 9 on: the record length finder (`above` is one record back)
    records: Option<Box<Records>>,
    /// deep and mid CM frames of format 17 on: the number model
    numbers: Option<Box<Numbers>>,
    /// deep and mid CM frames of format 20 on: the URL model
    url: Option<Box<Url>>,
}

impl History {
    /// `classes[s]`: the class bits of symbol `s` (symbols past its end have none).
    pub fn new(classes: Vec<u8>, capacity: usize) -> Self {
        History {
            syms: Vec::with_capacity(capacity),
            classes,
            line_start: 0,
            prev_line_start: 0,
            field: 0,
            fields: vec![0],
            prev_fields: vec![0],
            word: 0,
            prev_word: 0,
            lword: 0,
            prev_lword: 0,
            records: None,
            numbers: None,
            url: None,
        }
    }

    /// Keep the number model's state (bytes only): what `Ctx::Number` and `Ctx::NumberField`
    /// read.
    pub fn find_numbers(&mut self) {
        self.numbers = Some(Box::new(Numbers::new()));
    }

    /// Keep the URL model's state (bytes only): what the `Url*` contexts read.
    pub fn find_urls(&mut self) {
        self.url = Some(Box::new(Url::new()));
    }

    /// Whether the URL model reads a URL now: its contexts are live.
    pub fn in_url(&self) -> bool {
        self.url.as_ref().is_some_and(|u| u.active())
    }

    /// Look for fixed-length records (bytes only): once one is found, `above` is the byte one
    /// record back and `col` the position in the record.
    pub fn find_records(&mut self) {
        self.records = Some(Box::new(Records::new()));
    }

    /// The record length, once the finder has one (`find_records`) and the current line (no
    /// line break since) is longer than two records: what the contexts of the next symbol use.
    pub fn record_len(&self) -> Option<usize> {
        let n = self.syms.len();
        let line = n - self.line_start;
        self.records
            .as_ref()
            .and_then(|r| r.record_len())
            .filter(|&len| len <= n && line > 2 * len)
    }

    /// The class bits of symbol `sym`.
    pub fn class(&self, sym: u32) -> u8 {
        self.classes.get(sym as usize).copied().unwrap_or(0)
    }

    pub fn last(&self) -> Option<u32> {
        self.syms.last().copied()
    }

    /// Symbols since the current line began.
    pub fn col(&self) -> usize {
        self.syms.len() - self.line_start
    }

    /// Append a symbol. A `CLASS_NEWLINE` symbol ends the line (the next one starts a new line), a
    /// `CLASS_FIELD` symbol starts a field, runs of `CLASS_WORD` symbols are words, and runs of
    /// ASCII letters (symbols below 256) are case-folded words.
    pub fn push(&mut self, sym: u32) {
        self.syms.push(sym);
        let n = self.syms.len();
        if let Some(r) = self.records.as_mut() {
            r.push(n - 1, sym as u8);
        }
        let c = self.class(sym);
        if let Some(num) = self.numbers.as_mut() {
            num.push(sym as u8, c & CLASS_NEWLINE != 0);
        }
        if let Some(url) = self.url.as_mut() {
            url.push(sym as u8);
        }
        if c & CLASS_NEWLINE != 0 {
            self.prev_line_start = self.line_start;
            self.line_start = n;
            self.field = 0;
            std::mem::swap(&mut self.fields, &mut self.prev_fields);
            self.fields.clear();
            self.fields.push(n);
        } else if c & CLASS_FIELD != 0 {
            self.field += 1;
            self.fields.push(n - 1);
        }
        match u8::try_from(sym) {
            Ok(b) if b.is_ascii_alphabetic() => {
                self.lword = fmix(self.lword.wrapping_add(b.to_ascii_lowercase() as u32));
            }
            _ if self.lword != 0 => {
                self.prev_lword = self.lword;
                self.lword = 0;
            }
            _ => {}
        }
        if c & CLASS_WORD != 0 {
            self.word = fmix(self.word.wrapping_add(sym));
        } else if self.word != 0 {
            self.prev_word = self.word;
            self.word = 0;
        }
    }

    /// The hash of each context in `ctxs` for the next symbol, into `out`.
    pub fn hashes(&self, ctxs: &[Ctx], expected: Option<u32>, match_len: u32, out: &mut [u32]) {
        let s = &self.syms;
        let n = s.len();
        let at = |i: usize| if i < n { s[i] } else { NONE };
        let back = |o: usize| if o <= n { s[n - o] } else { NONE };
        // order hashes chain: h[o] = fmix(h[o-1] + s_o + o * 0x9E3779B9)
        let mut order = [0u32; 13];
        for o in 1..order.len() {
            order[o] = fmix(
                order[o - 1]
                    .wrapping_add(back(o))
                    .wrapping_add((o as u32).wrapping_mul(0x9E37_79B9)),
            );
        }
        let line = n - self.line_start;
        let record = self.record_len();
        let (above, col) = match record {
            Some(len) => (s[n - len], n % len),
            None => {
                let above = if self.prev_line_start + line < self.line_start {
                    at(self.prev_line_start + line)
                } else {
                    NO_ABOVE
                };
                (above, line)
            }
        };
        let f = self.fields.len() - 1;
        let off = n - self.fields[f];
        let fabove = match self.prev_fields.get(f) {
            Some(&st) => {
                let end = self.prev_fields.get(f + 1).copied().unwrap_or(self.line_start);
                if st + off < end {
                    at(st + off)
                } else {
                    NO_FIELD_AT
                }
            }
            None => NO_FIELD,
        };
        let col = col as u32;
        let numbers = self.numbers.as_ref().map_or([0; 2], |num| num.contexts());
        let urls = self
            .url
            .as_ref()
            .map_or([0; 4], |u| u.contexts(self.word, back(1), order[2]));
        let two = |a: u32, salt: u32, b: u32| fmix(fmix(a ^ salt).wrapping_add(b));
        let three = |a: u32, salt: u32, b: u32, c: u32| fmix(fmix(a ^ salt).wrapping_add(fmix(b).wrapping_add(c)));
        for (h, c) in out.iter_mut().zip(ctxs) {
            *h = match *c {
                Ctx::Order(o) => order[o],
                Ctx::Sparse23 => match record {
                    Some(len) => three(back(len + 1), 0x1111_1111, back(len), back(len - 1)),
                    None => two(back(2), 0x1111_1111, back(3)),
                },
                Ctx::Sparse2 => match record {
                    Some(len) => three(back(2 * len), 0x2222_2222, back(len), back(1)),
                    None => fmix(fmix(back(2) ^ 0x2222_2222)),
                },
                Ctx::FieldS1 => two(self.field, 0x3333_3333, back(1)),
                Ctx::AboveS1 => two(above, 0x4444_4444, back(1)),
                Ctx::AboveCol => two(above, 0x5555_5555, col),
                Ctx::HeadField => two(at(self.line_start), 0x6666_6666, self.field),
                Ctx::Col => fmix(fmix(col ^ 0x7777_7777)),
                Ctx::AboveS12 => three(above, 0x8888_8888, back(1), back(2)),
                Ctx::Expected => two(expected.unwrap_or(NONE), 0x9999_9999, match_len.min(15)),
                Ctx::WordS1 => two(self.word, 0xDDDD_DDDD, back(1)),
                Ctx::FieldAbove => three(fabove, 0xFFFF_FFFF, self.field, off as u32),
                Ctx::WordFieldAbove => three(self.word, 0x1234_5678, back(1), fabove),
                Ctx::PrevWordS1 => two(self.prev_word, 0x4567_89AB, back(1)),
                Ctx::LowerWord => two(self.lword, 0x2718_2818, 0),
                Ctx::LowerWordPair => three(self.lword, 0x3141_5926, self.prev_lword, 0),
                Ctx::Number => numbers[0],
                Ctx::NumberField => numbers[1],
                Ctx::UrlWord => urls[0],
                Ctx::UrlPath => urls[1],
                Ctx::UrlPair => urls[2],
                Ctx::UrlDir => urls[3],
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes of `ctxs` for the symbol after the bytes `text`.
    fn after(text: &[u8], ctxs: &[Ctx]) -> Vec<u32> {
        let mut h = History::new(super::super::byte_classes(), text.len());
        for &b in text {
            h.push(b as u32);
        }
        let mut out = vec![0; ctxs.len()];
        h.hashes(ctxs, None, 0, &mut out);
        out
    }

    #[test]
    fn case_folded_word_contexts_ignore_case_and_see_the_previous_word() {
        let ctxs = [Ctx::LowerWord, Ctx::LowerWordPair, Ctx::WordS1];
        // the same word in other cases: the case-folded contexts agree, the word context does not
        let (a, b) = (after(b"say The", &ctxs), after(b"say tHE", &ctxs));
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        // the same word after other words: only the pair tells them apart
        let (a, b) = (after(b"red cat", &ctxs), after(b"big cat", &ctxs));
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        // between words: no current word, the previous one still counts
        let (a, b) = (after(b"red cat, ", &ctxs), after(b"big dog; ", &ctxs));
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        // a word is not its prefix
        assert_ne!(after(b"ca", &ctxs)[0], after(b"cat", &ctxs)[0]);
    }

    #[test]
    fn format_13_keeps_the_contexts_others_read_by_position() {
        // the probability maps (and the image model) read orders 1 and 2 as the first two contexts
        for words in [false, true] {
            assert_eq!(byte_contexts(words)[..2], [Ctx::Order(1), Ctx::Order(2)]);
        }
        assert_eq!(byte_contexts(true).len(), 18);
        assert_eq!(byte_contexts(false).len(), 21);
        // `SymbolCm::memory` counts format 12's 21 contexts or format 20's 24, the most: no other
        // list may be longer
        assert_eq!(byte_model_contexts(false, true, true, true).len(), 24);
        for (mid, numbers, urls) in (0..8).map(|i| (i & 1 != 0, i & 2 != 0, i & 4 != 0)) {
            assert!(byte_model_contexts(mid, true, numbers, urls).len() <= 24);
        }
    }
}
