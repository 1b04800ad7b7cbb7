//! Bi-level images: once a record length is found, a chunk may be a picture of one bit per pixel,
//! a scan line at a time (a fax page such as ptt5). Byte contexts see its pixels eight at a time;
//! this model sees them one at a time, as JBIG does: for each bit, the pixels to its left in the
//! same line and the pixels around it in the two lines above, read across byte boundaries, index
//! counters directly, one table per template. A mixer of its own mixes every input of the byte
//! mixer again and gives the final mixer one more input; its weight set is the first template's
//! pixels while a template has been predicting better than the order-2 context (a picture, not
//! text that happens to hold records), else one set of its own (docs/MODEL.md, "Bi-level
//! images"). Until a record length is known, or while the chunk holds fewer than two records and
//! a byte so far, its inputs are 0.

use super::contexts::History;
use super::counter::Counter;
use super::logistic::stretch;
use super::mix::Mixer;

/// How many pixels each template takes: to the left in this line (at most 8 + the bit's position),
/// around the pixel above (an odd number, centred on it), around the pixel two lines above; their
/// sum is its table's index bits.
const TEMPLATES: [(u32, u32, u32); 4] = [(3, 3, 1), (6, 7, 3), (8, 7, 5), (1, 9, 5)];
/// Inputs to the mixers: one per template.
pub(crate) const INPUTS: usize = TEMPLATES.len();
/// Bits of the first template's index: the image mixer has one weight set per value, and one more
/// (the last) for bits where the model is off.
const NEAR: u32 = TEMPLATES[0].0 + TEMPLATES[0].1 + TEMPLATES[0].2;
const SETS: usize = (1 << NEAR) + 1;
/// The error means move by 1/2^ERR_RATE of each bit's error (measured: 9 gives the smallest total
/// of html, ptt5, kennedy.xls, sum and kppkn.gtb against 3, 5 and 7).
const ERR_RATE: u32 = 9;
/// Counters stop slowing down after this many updates (measured on ptt5: 30 beats 127 and 1023).
const LIMIT: u32 = 30;

pub(crate) struct ImageBits {
    tables: Vec<Vec<Counter>>,
    /// the counter each template chose for the current bit
    idx: [usize; INPUTS],
    /// for the current symbol: the previous byte, and the three bytes centred on the byte one
    /// record back and two records back, once a record length is known and there are two lines
    /// above
    rows: Option<(u32, u32, u32)>,
    mixer: Mixer,
    /// running mean errors (|bit · 4096 − P(1)| times 16) of the third template's counter and of
    /// the reference (the order-2 context's counter), over the bits with lines above
    err: [i32; 2],
    /// their probabilities for the current bit
    p: [i32; 2],
    /// whether the image mixer picks its weight set by pixels for the current bit: there are
    /// lines above, and the template has predicted better than the reference
    on: bool,
    /// mid CM frames: the image mixer runs only while there are lines above (else its output is 0)
    gated: bool,
}

impl ImageBits {
    /// The model for a predictor whose mixers take `n_in` inputs (these included) and learn at
    /// `rate` from initial weights `w0`; `gated`: its mixer runs only while there are lines above;
    /// `warmup`: its mixer warms up (`Mixer::warmed`; format 18 on).
    pub(crate) fn new(n_in: usize, rate: i32, w0: i32, gated: bool, warmup: bool) -> ImageBits {
        ImageBits {
            tables: TEMPLATES
                .iter()
                .map(|&(l, a, b)| vec![Counter::INIT; 1 << (l + a + b)])
                .collect(),
            idx: [0; INPUTS],
            rows: None,
            mixer: Mixer::new(n_in, SETS, rate, w0).warmed(warmup),
            err: [0; 2],
            p: [2048; 2],
            on: false,
            gated,
        }
    }

    /// Bytes of tables (counters and the mixer's weights) for mixers of `n_in` inputs.
    pub(crate) fn memory(n_in: usize) -> u64 {
        let counters: u64 = TEMPLATES.iter().map(|&(l, a, b)| 4u64 << (l + a + b)).sum();
        counters + (n_in * SETS * 4) as u64
    }

    /// At the start of each symbol: the lines above it.
    pub(crate) fn start(&mut self, hist: &History) {
        let s = &hist.syms;
        let n = s.len();
        // a record length comes with a line longer than two records: `n > 2 * len`
        self.rows = hist.record_len().map(|len| {
            let window = |back: usize| {
                let at = n - back;
                (s[at - 1] << 16) | (s[at] << 8) | s[at + 1]
            };
            (s[n - 1], window(len), window(2 * len))
        });
    }

    /// One input per template for bit `k` (0: the most significant) of the symbol whose bits so
    /// far are `node` (with a leading 1); `reference`: P(1) of the order-2 context's counter.
    pub(crate) fn inputs(&mut self, k: u32, node: u32, reference: i32, x: &mut [i32; INPUTS]) {
        self.on = false;
        let Some((prev, above, above2)) = self.rows else {
            *x = [0; INPUTS];
            return;
        };
        // the pixels coded before this one, the latest lowest
        let left = (prev << k) | (node ^ (1 << k));
        // in a window, the pixel above this one is bit 15 - k; `width / 2` pixels either side
        let around = |w: u32, width: u32| (w >> (15 - k - width / 2)) & ((1 << width) - 1);
        for (j, &(l, a, b)) in TEMPLATES.iter().enumerate() {
            let cx = ((((left & ((1 << l) - 1)) << a) | around(above, a)) << b) | around(above2, b);
            self.idx[j] = cx as usize;
        }
        self.p = [self.tables[2][self.idx[2]].p12(), reference];
        self.on = self.err[0] < self.err[1];
        for ((x, t), &i) in x.iter_mut().zip(&self.tables).zip(&self.idx) {
            *x = stretch(t[i].p12());
        }
    }

    /// The image mixer's output (stretched) over all the inputs `x`: its weight set is the first
    /// template's pixels while the model is on, else the last set. Gated and without lines above:
    /// 0, and the mixer does not run.
    pub(crate) fn mix(&mut self, x: &[i32]) -> i32 {
        if self.idle() {
            return 0;
        }
        let set = if self.on { self.idx[0] } else { SETS - 1 };
        stretch(self.mixer.mix(x, set))
    }

    /// Learn the coded bit (after `inputs` and `mix`).
    pub(crate) fn update(&mut self, x: &[i32], bit: u32) {
        if self.rows.is_some() {
            for (t, &i) in self.tables.iter_mut().zip(&self.idx) {
                t[i].update(bit, LIMIT);
            }
            for (e, &p) in self.err.iter_mut().zip(&self.p) {
                let miss = ((bit as i32) << 12) - p;
                *e += (miss.abs() * 16 - *e) >> ERR_RATE;
            }
        }
        if !self.idle() {
            self.mixer.update(x, bit);
        }
    }

    /// Whether there are lines above the current symbol (else the inputs are all 0).
    #[inline]
    pub(crate) fn has_rows(&self) -> bool {
        self.rows.is_some()
    }

    /// Whether the mixer sits this bit out: gated, and no lines above.
    #[inline]
    fn idle(&self) -> bool {
        self.gated && self.rows.is_none()
    }
}
