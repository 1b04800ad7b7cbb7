//! The number model (deep and mid CM frames, format 17 on; docs/MODEL.md, "Number model"). A
//! line's *template* is its bytes so far with each run of ASCII digits read as one mark: log lines
//! of one kind, or the URLs of one site, share templates while their numbers differ. For every
//! template a number followed, a table keeps the last such number. While the next byte may start
//! or continue a number that a template expects, the contexts are how the digits so far compare
//! with that number and with that number plus one, and the digits those have at this place: a
//! time stamp, a process id or a counter then costs what its change costs, not what its digits do.
//! Elsewhere in a line that holds a number the contexts are its template, and the previous line's
//! template with it (which kind of line follows which).

use super::counter::fmix;

/// Digits of a number the model keeps (a longer run keeps its first `DIGITS`).
const DIGITS: usize = 15;
/// log2 of the table's entries.
const TABLE_BITS: u32 = 12;
/// The template of a line before its first byte.
const LINE_START: u32 = 1;
/// What a run of digits adds to the template.
const MARK: u32 = 0x2D2D_2D2D;

/// A number: its first `DIGITS` digits (ASCII), and the template it followed (`key`; 0 in an
/// empty table entry or an empty number).
#[derive(Clone, Copy, Default)]
struct Number {
    key: u32,
    len: u8,
    digits: [u8; DIGITS],
}

impl Number {
    /// The digit at `k`, 0 past the end.
    fn at(&self, k: usize) -> u8 {
        if k < self.len as usize {
            self.digits[k]
        } else {
            0
        }
    }

    /// This number plus one, as a decimal string (kept at `DIGITS` digits: 99..9 plus one is
    /// 00..0 when it would not fit).
    fn plus_one(&self) -> Number {
        let mut n = *self;
        let len = n.len as usize;
        for d in n.digits[..len].iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return n;
            }
        }
        if len > 0 && len < DIGITS {
            n.digits.copy_within(0..len, 1);
            n.digits[0] = b'1';
            n.len += 1;
        }
        n
    }
}

/// How the digits of a number so far compare with an expected number's first digits (as
/// strings: the first digit that differs decides).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cmp {
    Equal = 0,
    Less = 1,
    Greater = 2,
}

impl Cmp {
    /// After the digit `d`, where the expected number has `e` (0 past its end).
    fn step(self, d: u8, e: u8) -> Cmp {
        match self {
            Cmp::Equal if d < e => Cmp::Less,
            Cmp::Equal if d > e => Cmp::Greater,
            c => c,
        }
    }
}

pub(crate) struct Numbers {
    /// per template (by its top `TABLE_BITS` bits), the last number that followed it
    table: Vec<Number>,
    /// the template of the line so far, and of the line before
    template: u32,
    prev_template: u32,
    /// whether the line so far holds a number
    line_has_number: bool,
    /// the current run of digits (`key`: the template before it); `len` 0 between numbers
    run: Number,
    /// the number expected at this template (`key` 0: none), and it plus one
    expected: Number,
    plus: Number,
    /// how the current run compares with `expected` and with `plus`
    cmp: Cmp,
    cmp_plus: Cmp,
}

impl Numbers {
    pub(crate) fn new() -> Numbers {
        Numbers {
            table: vec![Number::default(); 1 << TABLE_BITS],
            template: LINE_START,
            prev_template: LINE_START,
            line_has_number: false,
            run: Number::default(),
            expected: Number::default(),
            plus: Number::default(),
            cmp: Cmp::Equal,
            cmp_plus: Cmp::Equal,
        }
    }

    /// Bytes the model allocates.
    pub(crate) fn memory() -> u64 {
        ((1 << TABLE_BITS) * std::mem::size_of::<Number>()) as u64
    }

    fn slot(key: u32) -> usize {
        (key >> (32 - TABLE_BITS)) as usize
    }

    /// The byte `c` was coded; `newline`: it ends a line.
    pub(crate) fn push(&mut self, c: u8, newline: bool) {
        if c.is_ascii_digit() {
            let k = self.run.len as usize;
            if k == 0 {
                self.line_has_number = true;
                self.run.key = self.template;
                self.cmp = Cmp::Equal;
                self.cmp_plus = Cmp::Equal;
            }
            self.cmp = self.cmp.step(c, self.expected.at(k));
            self.cmp_plus = self.cmp_plus.step(c, self.plus.at(k));
            if k < DIGITS {
                self.run.digits[k] = c;
                self.run.len += 1;
            }
            return;
        }
        if self.run.len > 0 {
            self.table[Self::slot(self.run.key)] = self.run;
            self.run = Number::default();
            self.template = fmix(self.template.wrapping_add(MARK));
        }
        if newline {
            self.prev_template = self.template;
            self.template = LINE_START;
            self.line_has_number = false;
        } else {
            self.template = fmix(self.template.wrapping_add(c as u32 + 1));
        }
        let e = self.table[Self::slot(self.template)];
        self.expected = if e.key == self.template { e } else { Number::default() };
        self.plus = self.expected.plus_one();
    }

    /// The two contexts for the next byte: the number's (any template's), then the template's.
    pub(crate) fn contexts(&self) -> [u32; 2] {
        let k = self.run.len as usize;
        let kk = k.min(DIGITS) as u32;
        if self.expected.key == 0 {
            return if k > 0 {
                // a number where none was seen before
                [
                    fmix(0x5EED_0002 ^ kk),
                    fmix(fmix(self.run.key ^ 0x5EED_0004).wrapping_add(kk)),
                ]
            } else if self.line_has_number {
                [
                    fmix(self.template ^ 0x5EED_0001),
                    fmix(fmix(self.prev_template ^ 0x5EED_0005).wrapping_add(self.template)),
                ]
            } else {
                [0x5EED_0001, 0x5EED_0006]
            };
        }
        let e = self.expected.at(k) as u32;
        let p = self.plus.at(k) as u32;
        let cmps = (self.cmp as u32) | (self.cmp_plus as u32) << 2;
        let number = kk | (self.expected.len as u32) << 4 | e << 8 | p << 16 | cmps << 24;
        let key = if k == 0 { self.template } else { self.run.key };
        let field = kk | e << 8 | cmps << 24;
        [
            fmix(number ^ 0x5EED_0003),
            fmix(fmix(key ^ 0x5EED_0004).wrapping_add(field)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(text: &[u8]) -> Numbers {
        let mut n = Numbers::new();
        for &c in text {
            n.push(c, c == b'\n');
        }
        n
    }

    #[test]
    fn plus_one_carries() {
        let num = |s: &[u8]| {
            let mut n = Number {
                key: 1,
                len: s.len() as u8,
                ..Number::default()
            };
            n.digits[..s.len()].copy_from_slice(s);
            n
        };
        let text = |n: Number| n.digits[..n.len as usize].to_vec();
        assert_eq!(text(num(b"32549").plus_one()), b"32550");
        assert_eq!(text(num(b"0").plus_one()), b"1");
        assert_eq!(text(num(b"999").plus_one()), b"1000");
        assert_eq!(text(num(b"999999999999999").plus_one()), b"000000000000000");
    }

    #[test]
    fn lines_of_one_kind_expect_the_last_number_of_their_template() {
        // the second line's id follows the same template as the first's, and compares with it
        let a = after(b"[07:41] child 32549 in slot 10\n[07:42] child 3255");
        assert_eq!(a.expected.digits[..5], *b"32549");
        assert_eq!(a.cmp, Cmp::Greater);
        assert_eq!(a.cmp_plus, Cmp::Equal);
        // another id after another line between: the same contexts as right after the first line
        let b = after(b"[07:41] child 32549 in slot 10\n[08:00] ok\n[07:42] child 3255");
        assert_eq!(a.contexts(), b.contexts());
        // where the last id was another, the number's context differs
        let c = after(b"[07:41] child 32548 in slot 10\n[07:42] child 3255");
        assert_ne!(a.contexts()[0], c.contexts()[0]);
        // a number never seen at its template: no expected number
        let d = after(b"[07:41] child 32549 in slot 10\n[07:42] kid 3255");
        assert_eq!(d.expected.key, 0);
    }

    #[test]
    fn lines_without_numbers_share_one_context() {
        // prose: the contexts say nothing of the line (its template would be new each time)
        assert_eq!(
            after(b"It was the best of times").contexts(),
            after(b"It was the age").contexts()
        );
        // a line with a number: its template, which other numbers do not change
        let a = after(b"GET /a/17/b");
        assert_eq!(a.contexts(), after(b"GET /a/2024/b").contexts());
        assert_ne!(a.contexts(), after(b"GET /a/17/c").contexts());
    }
}
