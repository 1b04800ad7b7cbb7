//! JPEG pictures (baseline, Huffman-coded), as paq8's JPEG model: once a chunk's bytes so far hold
//! a JPEG's headers (SOI, quantization and Huffman tables, a baseline frame header, a scan header),
//! this model follows the scan's entropy-coded bits as a JPEG decoder would, code by code. At every
//! bit it knows the partial Huffman code, which coefficient of which block the code is for, and the
//! coefficients already decoded around it: earlier ones of the same block, the blocks to the left
//! and above, and what those blocks say of it through their shared edges. Hashed contexts of those
//! index counters; three mixers of its own (weight sets by coefficient, by partial code and by the
//! edges' prediction) give the final mixer three more inputs, and two APMs keyed by the partial
//! code refine the final probability, while the model is *on* (docs/MODEL.md, "JPEG model").
//! What it does not understand turns it off until the next restart marker, scan or picture: bytes
//! that only look like a JPEG cost no more than the parsing.
//!
//! The parser reads the bytes as the coder gives them, one bit at a time, so it works the same in
//! the encoder and the decoder; it never looks ahead and never fails the frame.

use super::counter::{fmix, Counter};
use super::logistic::stretch;
use super::mix::{Apm, Mixer};
use super::pages::Table;

/// Zigzag order: coefficient `z` of a block is at column `ZZ_U[z]`, row `ZZ_V[z]` (ITU T.81, A.3.6).
const ZZ_U: [u8; 64] = [
    0, 1, 0, 0, 1, 2, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2,
    3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 5, 6, 7, 7, 6, 7,
];
const ZZ_V: [u8; 64] = [
    0, 0, 1, 2, 1, 0, 0, 1, 2, 3, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 6,
    5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 4, 5, 6, 7, 7, 6, 5, 6, 7, 7,
];

/// Contexts (counters per bit); with the bias, the mixers' 24 inputs.
const N: usize = 23;
const N_IN: usize = (N + 1).next_multiple_of(8);
/// The final mixer's inputs from this model: its three mixers'.
pub(crate) const INPUTS: usize = 3;
/// Counters: 2^table_bits, hashed, by the frame's length (about 64 a byte): at most 2^MAX_TABLE_BITS.
const MAX_TABLE_BITS: u32 = 23;

/// The counters' index bits for a frame of `n` bytes.
fn table_bits(n: u64) -> u32 {
    (64 - n.saturating_sub(1).leading_zeros() + 6).clamp(18, MAX_TABLE_BITS)
}
/// Counters stop slowing down after this many updates.
const LIMIT: u32 = 1023;
/// The mixers' learning rate and initial weight (16.16).
const MIXER_RATE: i32 = 12;
const MIXER_W0: i32 = 1 << 14;
/// Weight sets: by coefficient (zigzag index and scan component), by partial code, and by the
/// edges' prediction (with whether the first component).
const COEF_SETS: usize = 256;
const CODE_SETS: usize = 1024;
const ADV_SETS: usize = 256;
/// The APMs' contexts and rate.
const APM1_BITS: u32 = 15;
const APM2_BITS: u32 = 16;
const APM_RATE: u32 = 7;
/// Decoded coefficients kept (a ring): enough for a row of blocks above of any picture up to
/// 4,096 blocks of 64 coefficients a row of MCUs.
const RING_BITS: u32 = 18;
const RING: u32 = 1 << RING_BITS;
/// Blocks in an MCU (T.81 B.2.3: at most 10).
const MAX_BLOCKS: usize = 10;

/// The sign times the bit length of `x`: 0 for 0, ±1 for ±1, ±2 for ±2..3, ... (at most ±32).
fn lg(x: i32) -> i32 {
    x.signum() * (32 - x.unsigned_abs().leading_zeros() as i32)
}

/// The DCT's basis functions at a block's edge, times 256: 256 / sqrt(2) for frequency 0, else
/// 256 cos(k pi / 16) (rounded); the far edge has the signs of odd frequencies flipped.
const EDGE: [i64; 8] = [181, 251, 237, 213, 181, 142, 98, 50];

/// `lg` at half octaves: the sign times 2 bit length of `x` plus its second bit (0 for 0).
fn lgh(x: i32) -> i32 {
    let a = x.unsigned_abs();
    let b = 32 - a.leading_zeros() as i32;
    let second = if b >= 2 { ((a >> (b - 2)) & 1) as i32 } else { 0 };
    x.signum() * (2 * b + second)
}

/// A Huffman table (T.81 C): codes of length `l + 1` are `first[l] .. first[l] + count[l]`, their
/// values `vals[offset[l] ..]`.
#[derive(Clone, Copy)]
struct Huffman {
    first: [u32; 16],
    count: [u32; 16],
    offset: [u32; 16],
    vals: [u8; 256],
    defined: bool,
}

impl Huffman {
    const NONE: Huffman = Huffman {
        first: [0; 16],
        count: [0; 16],
        offset: [0; 16],
        vals: [0; 256],
        defined: false,
    };

    /// The table of a DHT's 16 counts and their values; None if the counts overfill the code space.
    fn new(counts: &[u8], vals: &[u8]) -> Option<Huffman> {
        let mut h = Huffman::NONE;
        let (mut code, mut at) = (0u32, 0u32);
        for (l, &n) in counts.iter().enumerate().take(16) {
            let n = n as u32;
            h.first[l] = code;
            h.count[l] = n;
            h.offset[l] = at;
            code += n;
            at += n;
            if code > 1 << (l + 1) {
                return None;
            }
            code <<= 1;
        }
        h.vals[..vals.len()].copy_from_slice(vals);
        h.defined = true;
        Some(h)
    }

    /// The value of `code`, `bits` long (1..=16), if it is a whole code.
    fn value(&self, code: u32, bits: u32) -> Option<u8> {
        let l = bits as usize - 1;
        let d = code.wrapping_sub(self.first[l]);
        (d < self.count[l]).then(|| self.vals[(self.offset[l] + d) as usize & 255])
    }
}

/// A component of the frame header: its id, sampling factors and quantization table.
#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
    tq: usize,
}

/// Where the byte parser is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// looking for SOI (FF D8 FF)
    Idle,
    /// a marker's FF must come next
    ExpectFf,
    /// a marker's code comes next
    ExpectCode,
    /// the high byte of marker `code`'s segment length
    Len1(u8),
    /// its low byte, after the high one
    Len2(u8, u8),
    /// `left` bytes of marker `code`'s segment remain
    Payload(u8, u16),
    /// in a scan's entropy-coded data
    Scan,
}

/// What the model learns with (made when the first scan starts).
struct Learn {
    t: Table<Counter>,
    idx: [usize; N],
    x: [i32; N_IN],
    mixers: [Mixer; 3],
    apms: [Apm; 2],
}

pub(crate) struct Jpeg {
    table_bits: u32,
    parse: Parse,
    /// the last bytes, latest lowest (for SOI)
    tail: u32,
    seg: Vec<u8>,
    /// the current byte's bits so far, with a leading 1
    byte: u32,
    quant: [[u16; 64]; 4],
    huff: [[Huffman; 4]; 2],
    /// the frame header's precision-8 baseline components, and the picture's width
    frame: Option<(Vec<Component>, u32)>,
    // the scan
    /// per block of an MCU: its component (in the scan), DC and AC tables, quantization table,
    /// and how many coefficients back the previous block of its component starts
    color: [usize; MAX_BLOCKS],
    dc_sel: [usize; MAX_BLOCKS],
    ac_sel: [usize; MAX_BLOCKS],
    qt: [usize; MAX_BLOCKS],
    back: [u32; MAX_BLOCKS],
    mcu_blocks: u32,
    /// MCUs in a row, and coefficients back to the same one a row of MCUs above (0: too far)
    width: u32,
    row_back: u32,
    /// the previous byte of the scan was FF: this byte is a marker's code or stuffing, not data
    after_ff: bool,
    /// the decoding went wrong: off until a restart marker or the next scan
    broken: bool,
    // the Huffman decoder
    code: u32,
    bits: u32,
    /// the code's value (run << 4 | size) once its code bits are complete, and how many they are
    rs: Option<(u32, u32)>,
    /// coefficient of the MCU being decoded: block << 6 | zigzag index
    mcupos: u32,
    dc_pred: [i32; 4],
    column: u32,
    row: u32,
    /// decoded coefficients (a ring) and where the next one goes
    coefs: Vec<i16>,
    cpos: u32,
    // contexts of the next code
    rs1: u32,
    rs2: u32,
    ssum: u32,
    ssum1: u32,
    /// per column `u`: what the block above says of this block's top edge at frequency `u`, less
    /// what this block's coefficients decoded so far make of it (and `sv`, per row, the block to
    /// the left of the left edge); 256 times dequantized values
    su: [i64; 8],
    sv: [i64; 8],
    feats: [u32; N],
    /// the lower neighbours' bucket (for the first APM)
    near: u32,
    /// the third mixer's weight set: the prediction from the edges, and whether the first component
    adv_set: u32,
    /// made when the first scan starts: in *Scan* it is there (and so is `coefs`)
    learn: Option<Box<Learn>>,
    /// the model predicted the current bit
    predicted: bool,
    /// its mixers and APMs warm up (format 18 on)
    warmup: bool,
    /// the current bit's partial code (`inputs`), for the APMs
    hc: u32,
}

impl Jpeg {
    /// The model for a frame of `n` bytes; `warmup`: its mixers and APMs warm up
    /// (`Mixer::warmed`, `Apm::with_warm_up`; format 18 on).
    pub(crate) fn new(n: u64, warmup: bool) -> Jpeg {
        Jpeg {
            warmup,
            table_bits: table_bits(n),
            parse: Parse::Idle,
            tail: 0,
            seg: Vec::new(),
            byte: 1,
            quant: [[1; 64]; 4],
            huff: [[Huffman::NONE; 4]; 2],
            frame: None,
            color: [0; MAX_BLOCKS],
            dc_sel: [0; MAX_BLOCKS],
            ac_sel: [0; MAX_BLOCKS],
            qt: [0; MAX_BLOCKS],
            back: [0; MAX_BLOCKS],
            mcu_blocks: 1,
            width: 1,
            row_back: 0,
            after_ff: false,
            broken: false,
            code: 0,
            bits: 0,
            rs: None,
            mcupos: 0,
            dc_pred: [0; 4],
            column: 0,
            row: 0,
            coefs: Vec::new(),
            cpos: 0,
            rs1: 0,
            rs2: 0,
            ssum: 0,
            ssum1: 0,
            su: [0; 8],
            sv: [0; 8],
            feats: [0; N],
            near: 0,
            adv_set: 0,
            learn: None,
            predicted: false,
            hc: 0,
        }
    }

    /// Bytes of tables the model of a frame of `n` bytes may allocate (once a scan starts).
    pub(crate) fn memory(n: u64) -> u64 {
        (4u64 << table_bits(n))
            + 2 * RING as u64
            // (four bytes a value with its count: `Apm::with_warm_up`)
            + ((1u64 << APM1_BITS) + (1u64 << APM2_BITS)) * 33 * 4
            + ((COEF_SETS + CODE_SETS + ADV_SETS) * N_IN * 4) as u64
            // the segment buffer (at most 65,533 bytes)
            + 65536
    }

    /// Whether the model predicts the next bit: in a scan's data, decoding.
    pub(crate) fn on(&self) -> bool {
        self.parse == Parse::Scan && !self.after_ff && !self.broken
    }

    /// Whether the model predicted the current bit (between `inputs` and `update`).
    pub(crate) fn predicted(&self) -> bool {
        self.predicted
    }

    /// The current block's component, and its coefficient: zigzag index + 64 · component.
    fn coef(&self) -> (usize, u32) {
        let comp = self.color[(self.mcupos >> 6) as usize];
        (comp, (self.mcupos & 63) | (comp as u32) << 6)
    }

    /// The final mixer's inputs for the next bit (call only when `on`): the three mixers' outputs.
    pub(crate) fn inputs(&mut self) -> [i32; INPUTS] {
        let (comp, coef) = self.coef();
        // the partial code (its extra bits too) with a leading 1, and whether it is the first
        // component's
        let hc = (self.code << 1 | (comp == 0) as u32) | 1 << (self.bits + 1);
        self.hc = hc;
        self.predicted = true;
        let l = self.learn.as_mut().expect("on");
        let salt = hc.wrapping_mul(0x2F0B_3A49);
        for i in 0..N {
            let j = (fmix(self.feats[i] ^ salt) >> (32 - self.table_bits)) as usize;
            l.idx[i] = j;
            let c = l.t[j];
            l.x[i] = if c.count() != 0 { stretch(c.p12()) } else { 0 };
        }
        l.x[N] = 256;
        let pa = l.mixers[0].mix(&l.x, coef as usize);
        let pb = l.mixers[1].mix(&l.x, (hc & (CODE_SETS as u32 - 1)) as usize);
        let pc = l.mixers[2].mix(&l.x, self.adv_set as usize);
        [stretch(pa), stretch(pb), stretch(pc)]
    }

    /// The final probability from the final mixer's `pr` (after `inputs`).
    pub(crate) fn refine(&mut self, pr: i32) -> i32 {
        let (_, coef) = self.coef();
        let l = self.learn.as_mut().expect("on");
        let a1 = l.apms[0].refine(pr, ((self.hc & 1023) | self.near << 10) as usize);
        let a2 = l.apms[1].refine(pr, ((self.hc & 255) | coef << 8) as usize);
        ((pr + 2 * a1 + a2 + 2) >> 2).clamp(1, 4095)
    }

    /// Learn the bit just coded (if the model predicted it), then read it.
    pub(crate) fn update(&mut self, bit: u32) {
        if self.predicted {
            self.predicted = false;
            let l = self.learn.as_mut().expect("on");
            for &j in &l.idx {
                let c = &mut l.t[j];
                if c.count() == 0 {
                    *c = Counter::INIT;
                }
                c.update(bit, LIMIT);
            }
            for m in &mut l.mixers {
                m.update(&l.x, bit);
            }
            for a in &mut l.apms {
                a.update(bit);
            }
        }
        if self.on() && !self.feed(bit) {
            self.broken = true;
        }
        self.byte = self.byte << 1 | bit;
        if self.byte >= 256 {
            let b = (self.byte & 255) as u8;
            self.byte = 1;
            self.next_byte(b);
        }
    }

    // ---- the byte parser ----

    fn next_byte(&mut self, b: u8) {
        self.tail = self.tail << 8 | b as u32;
        match self.parse {
            Parse::Idle => {
                if self.tail & 0xFF_FFFF == 0xFF_D8FF {
                    self.start_picture();
                    self.parse = Parse::ExpectCode;
                }
            }
            Parse::ExpectFf => self.parse = if b == 0xFF { Parse::ExpectCode } else { Parse::Idle },
            Parse::ExpectCode => self.marker(b),
            Parse::Len1(code) => self.parse = Parse::Len2(code, b),
            Parse::Len2(code, hi) => {
                let len = (hi as u16) << 8 | b as u16;
                self.seg.clear();
                self.parse = match len {
                    0 | 1 => Parse::Idle,
                    2 => {
                        self.parse = Parse::ExpectFf;
                        self.segment(code);
                        self.parse
                    }
                    _ => Parse::Payload(code, len - 2),
                };
            }
            Parse::Payload(code, left) => {
                if matches!(code, 0xC0..=0xCF | 0xDA | 0xDB) {
                    self.seg.push(b);
                }
                if left > 1 {
                    self.parse = Parse::Payload(code, left - 1);
                } else {
                    self.parse = Parse::ExpectFf;
                    self.segment(code);
                }
            }
            Parse::Scan => {
                if self.after_ff {
                    match b {
                        0x00 => self.after_ff = false,
                        0xD0..=0xD7 => {
                            self.after_ff = false;
                            self.restart();
                        }
                        0xFF => {}
                        _ => {
                            self.after_ff = false;
                            self.marker(b);
                        }
                    }
                } else if b == 0xFF {
                    self.after_ff = true;
                }
            }
        }
    }

    /// A new picture (SOI): no tables, no frame.
    fn start_picture(&mut self) {
        self.quant = [[1; 64]; 4];
        self.huff = [[Huffman::NONE; 4]; 2];
        self.frame = None;
    }

    /// Marker `code` (after its FF).
    fn marker(&mut self, code: u8) {
        self.parse = match code {
            0xFF => Parse::ExpectCode,
            0xD8 => {
                self.start_picture();
                Parse::ExpectFf
            }
            0x01 | 0xD0..=0xD7 => Parse::ExpectFf,
            0x00 | 0xD9 => Parse::Idle,
            _ => Parse::Len1(code),
        };
    }

    /// A whole segment of marker `code` is in `seg` (only those the model reads are kept).
    fn segment(&mut self, code: u8) {
        let ok = match code {
            0xDB => self.quant_tables(),
            0xC4 => self.huffman_tables(),
            0xC0 | 0xC1 => self.frame_header(),
            0xDA => self.scan_header(),
            // other frame kinds (progressive, lossless, arithmetic-coded): not this model's
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => false,
            _ => true,
        };
        if !ok {
            self.parse = Parse::Idle;
        }
    }

    fn quant_tables(&mut self) -> bool {
        let s = &self.seg;
        let mut i = 0;
        while i < s.len() {
            let (pq, tq) = ((s[i] >> 4) as usize, (s[i] & 15) as usize);
            let n = 64 << pq;
            if pq > 1 || tq > 3 || s.len() < i + 1 + n {
                return false;
            }
            for z in 0..64 {
                let q = if pq == 0 {
                    s[i + 1 + z] as u16
                } else {
                    (s[i + 1 + 2 * z] as u16) << 8 | s[i + 2 + 2 * z] as u16
                };
                self.quant[tq][z] = q.max(1);
            }
            i += 1 + n;
        }
        true
    }

    fn huffman_tables(&mut self) -> bool {
        let s = &self.seg;
        let mut i = 0;
        while i < s.len() {
            let (tc, th) = ((s[i] >> 4) as usize, (s[i] & 15) as usize);
            if tc > 1 || th > 3 || s.len() < i + 17 {
                return false;
            }
            let counts = &s[i + 1..i + 17];
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            if total > 256 || s.len() < i + 17 + total {
                return false;
            }
            match Huffman::new(counts, &s[i + 17..i + 17 + total]) {
                Some(h) => self.huff[tc][th] = h,
                None => return false,
            }
            i += 17 + total;
        }
        true
    }

    fn frame_header(&mut self) -> bool {
        let s = &self.seg;
        if s.len() < 6 || s[0] != 8 {
            return false;
        }
        let width = (s[3] as u32) << 8 | s[4] as u32;
        let nf = s[5] as usize;
        if width == 0 || !(1..=4).contains(&nf) || s.len() < 6 + 3 * nf {
            return false;
        }
        let mut comps = Vec::with_capacity(nf);
        for c in s[6..6 + 3 * nf].chunks_exact(3) {
            let (h, v, tq) = ((c[1] >> 4) as u32, (c[1] & 15) as u32, c[2] as usize);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
                return false;
            }
            comps.push(Component { id: c[0], h, v, tq });
        }
        self.frame = Some((comps, width));
        true
    }

    fn scan_header(&mut self) -> bool {
        let Some((comps, width)) = &self.frame else {
            return false;
        };
        let s = &self.seg;
        let ns = s.first().copied().unwrap_or(0) as usize;
        if !(1..=4).contains(&ns) || s.len() < 4 + 2 * ns || s[1 + 2 * ns..4 + 2 * ns] != [0, 63, 0] {
            return false;
        }
        let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let mut blocks = 0;
        let mut mcu_width = 0;
        for i in 0..ns {
            let (cs, t) = (s[1 + 2 * i], s[2 + 2 * i]);
            let Some(c) = comps.iter().find(|c| c.id == cs) else {
                return false;
            };
            let (td, ta) = ((t >> 4) as usize, (t & 15) as usize);
            if td > 3 || ta > 3 || !self.huff[0][td].defined || !self.huff[1][ta].defined {
                return false;
            }
            let n = if ns == 1 { 1 } else { (c.h * c.v) as usize };
            if blocks + n > MAX_BLOCKS {
                return false;
            }
            for _ in 0..n {
                self.color[blocks] = i;
                self.dc_sel[blocks] = td;
                self.ac_sel[blocks] = ta;
                self.qt[blocks] = c.tq;
                blocks += 1;
            }
            // a single component's scan has one block per MCU, over the component's own width
            mcu_width = if ns == 1 {
                (width * c.h).div_ceil(hmax).div_ceil(8)
            } else {
                width.div_ceil(8 * hmax)
            };
        }
        self.mcu_blocks = blocks as u32;
        for b in 0..blocks {
            // the nearest earlier block of the same component, this MCU's or the last one's
            let d = (1..=blocks)
                .find(|&d| self.color[(b + blocks - d) % blocks] == self.color[b])
                .unwrap_or(blocks);
            self.back[b] = 64 * d as u32;
        }
        self.width = mcu_width;
        let stride = mcu_width as u64 * blocks as u64 * 64;
        self.row_back = if stride < RING as u64 { stride as u32 } else { 0 };
        self.parse = Parse::Scan;
        self.after_ff = false;
        self.column = 0;
        self.row = 0;
        self.mcupos = 0;
        if self.learn.is_none() {
            self.learn = Some(Box::new(Learn {
                t: Table::zeroed(1 << self.table_bits),
                idx: [0; N],
                x: [0; N_IN],
                mixers: [COEF_SETS, CODE_SETS, ADV_SETS]
                    .map(|sets| Mixer::new(N_IN, sets, MIXER_RATE, MIXER_W0).warmed(self.warmup)),
                apms: [APM1_BITS, APM2_BITS].map(|bits| Apm::with_warm_up(1 << bits, APM_RATE, self.warmup)),
            }));
            self.coefs = vec![0; RING as usize];
        }
        self.restart();
        true
    }

    // ---- the Huffman decoder ----

    /// Start of a scan or after a restart marker: the decoder's state, the DC predictions.
    fn restart(&mut self) {
        self.broken = false;
        self.code = 0;
        self.bits = 0;
        self.rs = None;
        // a partly decoded MCU is dropped: the next one starts
        if self.mcupos != 0 {
            self.cpos = self.cpos.wrapping_add((self.mcu_blocks << 6) - self.mcupos);
            self.mcupos = 0;
            self.next_mcu();
        }
        self.dc_pred = [0; 4];
        self.ssum = 0;
        self.contexts();
    }

    fn next_mcu(&mut self) {
        self.column += 1;
        if self.column >= self.width {
            self.column = 0;
            self.row += 1;
        }
    }

    /// One bit of entropy-coded data; false if it cannot be one of a valid code.
    fn feed(&mut self, bit: u32) -> bool {
        self.code = self.code << 1 | bit;
        self.bits += 1;
        let blk = (self.mcupos >> 6) as usize;
        let zz = self.mcupos & 63;
        if self.rs.is_none() {
            if self.bits > 16 {
                return false;
            }
            let h = if zz == 0 {
                &self.huff[0][self.dc_sel[blk]]
            } else {
                &self.huff[1][self.ac_sel[blk]]
            };
            if let Some(v) = h.value(self.code, self.bits) {
                // a DC difference has at most 11 extra bits, an AC coefficient 10 (T.81 F.1.2)
                if (zz == 0 && v > 11) || (zz > 0 && v & 15 > 10) {
                    return false;
                }
                self.rs = Some((v as u32, self.bits));
            }
        }
        let Some((rs, size)) = self.rs else {
            return true;
        };
        let s = rs & 15;
        if self.bits < size + s {
            return true;
        }
        // a whole code and its extra bits: the coefficient's value (T.81 F.2.2.1)
        let extra = self.code & ((1 << s) - 1);
        let mut v = extra as i32;
        if s > 0 && extra < 1 << (s - 1) {
            v -= (1 << s) - 1;
        }
        if zz == 0 {
            let c = self.color[blk];
            self.dc_pred[c] = (self.dc_pred[c] + v).clamp(-32768, 32767);
            self.store(self.dc_pred[c]);
            self.ssum = s;
        } else if rs == 0 {
            // end of block: the rest are zeros
            while self.mcupos & 63 != 0 {
                self.store(0);
            }
        } else {
            let r = rs >> 4;
            if (s == 0 && r != 15) || zz + r + 1 > 64 {
                return false;
            }
            for _ in 0..r {
                self.store(0);
            }
            self.store(v);
            self.ssum += s;
        }
        self.rs2 = self.rs1;
        self.rs1 = rs;
        if self.mcupos & 63 == 0 {
            self.ssum1 = self.ssum;
        }
        if self.mcupos >= self.mcu_blocks << 6 {
            self.mcupos = 0;
            self.next_mcu();
        }
        self.code = 0;
        self.bits = 0;
        self.rs = None;
        self.contexts();
        true
    }

    fn store(&mut self, v: i32) {
        if v != 0 {
            let blk = (self.mcupos >> 6) as usize;
            let zz = (self.mcupos & 63) as usize;
            let d = v as i64 * self.quant[self.qt[blk]][zz] as i64;
            let (u, w) = (ZZ_U[zz] as usize, ZZ_V[zz] as usize);
            self.su[u] -= d * EDGE[w];
            self.sv[w] -= d * EDGE[u];
        }
        self.coefs[(self.cpos & (RING - 1)) as usize] = v.clamp(-32768, 32767) as i16;
        self.cpos = self.cpos.wrapping_add(1);
        self.mcupos += 1;
    }

    fn coef_at(&self, back: u32) -> i32 {
        self.coefs[(self.cpos.wrapping_sub(back) & (RING - 1)) as usize] as i32
    }

    /// The contexts of the next code, from what is decoded so far.
    fn contexts(&mut self) {
        let blk = (self.mcupos >> 6) as usize;
        let zz = (self.mcupos & 63) as usize;
        let (comp, coef) = self.coef();
        let (u, v) = (ZZ_U[zz] as usize, ZZ_V[zz] as usize);
        let q = &self.quant[self.qt[blk]];
        let has_above = self.row > 0 && self.row_back != 0;
        let has_left = self.column > 0 || blk > 0;
        if zz == 0 {
            // a block starts: the edges of the blocks above and to the left
            self.su = [0; 8];
            self.sv = [0; 8];
            for z in 0..64 {
                let (cu, cv) = (ZZ_U[z] as usize, ZZ_V[z] as usize);
                let qz = q[z] as i64;
                if has_above {
                    let a = self.coef_at(self.row_back - z as u32) as i64 * qz;
                    self.su[cu] += if cv & 1 == 0 { a } else { -a } * EDGE[cv];
                }
                if has_left {
                    let l = self.coef_at(self.back[blk] - z as u32) as i64 * qz;
                    self.sv[cv] += if cu & 1 == 0 { l } else { -l } * EDGE[cu];
                }
            }
        }
        let qz = q[zz] as i64;
        let from_above = has_above.then(|| self.su[u] / (qz * EDGE[v]));
        let from_left = has_left.then(|| self.sv[v] / (qz * EDGE[u]));
        let (pa, pl) = match (from_above, from_left) {
            (Some(a), Some(l)) => (a, l),
            (Some(a), None) => (a, a),
            (None, Some(l)) => (l, l),
            (None, None) => (0, 0),
        };
        let base = if zz == 0 { self.dc_pred[comp] as i64 } else { 0 };
        let adv = |x: i64| lgh((x - base).clamp(-1 << 20, 1 << 20) as i32);
        let (a0, a1, a2) = (adv(pa), adv(pl), adv((pa + pl) / 2));
        self.adv_set = ((a2.clamp(-63, 63) + 64) as u32) | (comp as u32 & 1) << 7;
        // the same coefficient in the block above and the block to the left (the DC: their
        // difference from this block's prediction)
        let above = if has_above { self.coef_at(self.row_back) } else { 0 };
        let left = self.coef_at(self.back[blk]);
        let (above, left) = if zz == 0 {
            let p = self.dc_pred[comp];
            (
                if self.row > 0 { lg(above - p) } else { 99 },
                if self.column > 0 { lg(left - p) } else { 99 },
            )
        } else {
            (lg(above), lg(left))
        };
        // earlier coefficients of this block: one and two to the left, one and two above, scaled
        // to this one's quantization
        let mut near = [99i32; 4];
        for (i, n) in near.iter_mut().enumerate() {
            let (a, step) = if i & 1 == 0 { (u, 1) } else { (v, 8) };
            let dist = 1 + (i >> 1);
            if a >= dist {
                let z2 = zigzag_of(u + 8 * v - step * dist);
                let c = self.coef_at((zz - z2) as u32);
                *n = lg((c as i64 * q[z2] as i64 / q[zz] as i64).clamp(-1 << 30, 1 << 30) as i32);
            }
        }
        self.near = (near[0].clamp(-15, 15) + 16) as u32;
        let h = |i: u32, a: i32, b: i32, d: i32| -> u32 {
            fmix(i.wrapping_mul(0x9E37_79B1) ^ fmix((a as u32) ^ (b as u32) << 8 ^ (d as u32) << 16))
        };
        let (c, n0, n1, n2, n3) = (coef as i32, near[0], near[1], near[2], near[3]);
        let (rs1, rs2) = (self.rs1 as i32, self.rs2 as i32);
        self.feats = [
            h(0, c, 0, 0),
            h(1, c, rs1, 0),
            h(2, c, above, 0),
            h(3, c, left, 0),
            h(4, c, above, left),
            h(5, c, n0, n1),
            h(6, u as i32 | (comp as i32) << 4, n0, n2),
            h(7, v as i32 | (comp as i32) << 4, n1, n3),
            h(8, c, self.ssum.min(255) as i32 >> 2, 0),
            h(9, c, rs1, rs2),
            h(10, c, self.column as i32 >> 1, 0),
            h(11, c, self.ssum1.min(255) as i32 >> 2, 0),
            h(12, c, n0 << 8 | (n1 & 255), above),
            h(13, c, n0 << 8 | (n1 & 255), left),
            h(14, 0, 0, 0),
            h(15, c, a2, 0),
            h(16, c, a0, 0),
            h(17, c, a1, 0),
            h(18, c, rs1, a2),
            h(19, c, a0, a1),
            h(20, c, n0, a2),
            h(21, c, n1, a2),
            h(22, comp as i32, a2, 0),
        ];
    }
}

/// The zigzag index of the coefficient at `u + 8v`.
fn zigzag_of(pos: usize) -> usize {
    ZIGZAG_OF[pos & 63] as usize
}

const ZIGZAG_OF: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut z = 0;
    while z < 64 {
        t[ZZ_U[z] as usize + 8 * ZZ_V[z] as usize] = z as u8;
        z += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `data` through the model as a deep CM frame would, with `pr` standing in for the final
    /// mixer; returns how many bits it predicted.
    fn run(data: &[u8]) -> usize {
        let mut j = Jpeg::new(data.len() as u64, false);
        let mut on = 0;
        for &b in data {
            for k in (0..8).rev() {
                if j.on() {
                    let x = j.inputs();
                    let p = j.refine(squash_sum(&x));
                    assert!((1..=4095).contains(&p));
                    on += 1;
                }
                j.update((b as u32 >> k) & 1);
            }
        }
        on
    }

    fn squash_sum(x: &[i32]) -> i32 {
        super::super::logistic::squash((x.iter().sum::<i32>() / 3).clamp(-2047, 2047))
    }

    /// The model reads a baseline JPEG's scan, and damaged headers and scans (bytes changed, markers
    /// and FF bytes inserted, segments cut) never make it index out of bounds or overflow: it turns
    /// off or reads garbage, deterministically.
    #[test]
    fn the_parser_survives_damage() {
        let root = env!("CARGO_MANIFEST_DIR");
        let pic = std::fs::read(format!("{root}/testdata/golden/picture.jpg")).unwrap();
        assert!(run(&pic) > 8 * pic.len() * 3 / 4, "the scan is most of the picture");
        let mut next = crate::test_support::xorshift64(0x9E37_79B9_7F4A_7C15);
        for _ in 0..150 {
            let mut bad = pic.clone();
            for _ in 0..1 + next() % 4 {
                // mostly in the headers (the first 620 bytes), sometimes in the scan
                let span = if next().is_multiple_of(3) { bad.len() } else { 620 };
                let at = 3 + (next() as usize) % (span - 3);
                match next() % 5 {
                    0 => bad[at] = next() as u8,
                    1 => bad[at] ^= 1 << (next() % 8),
                    2 => bad.insert(at, 0xFF),
                    3 => bad.splice(at..at, [0xFF, next() as u8]).for_each(drop),
                    _ => {
                        let n = (next() as usize % 40).min(bad.len() - at);
                        bad.drain(at..at + n);
                    }
                }
            }
            run(&bad);
        }
    }
}
