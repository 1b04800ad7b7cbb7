//! The run model (deep CM frames of format 15 on; docs/MODEL.md, "Run model"). For six contexts
//! it remembers the byte that followed the context the last time and how many times in a row the
//! same byte did, in the upper half of slot 0 of the context's line for the first nibble (the
//! check, `LineTable`, holds the lower half). While that byte agrees with the bits coded so far,
//! each gives an input: its next bit, with a confidence learned per context, run length and bit
//! position. A line that is claimed anew starts with no run.

use super::contexts::Ctx;
use super::counter::{Counter, LineTable};
use super::logistic::stretch;

/// The contexts with a run, chosen on the dev bench (6 of the 18 had 90% of what all 18 gain).
pub const CONTEXTS: [Ctx; 6] = [
    Ctx::Order(3),
    Ctx::Order(4),
    Ctx::Order(5),
    Ctx::Order(8),
    Ctx::WordS1,
    Ctx::LowerWordPair,
];

/// Inputs the run model gives the mixers.
pub const INPUTS: usize = CONTEXTS.len();

const N: usize = INPUTS;
/// Confidence maps per context: run lengths 1..=15 (longer ones count as 15) x bit positions 0, 1,
/// 2 and 3..=7.
const MAPS: usize = 16 * 4;
/// The maps' counters adapt down to 1/1023.
const MAP_LIMIT: u32 = 1023;

pub struct Runs {
    /// where each of `CONTEXTS` stands in the predictor's list
    at: [usize; N],
    /// per context, the first nibble's line and hash of the current byte
    lines: [usize; N],
    hashes: [u32; N],
    /// per context, the last byte that followed it and its run length (0: none)
    runs: [(u32, u32); N],
    maps: Vec<Counter>,
    /// the maps used for the bit being coded, with the bit each predicted
    used: [(usize, u32); N],
    n_used: usize,
}

impl Runs {
    /// A run model over the contexts `ctxs` of a predictor (which must hold all of `CONTEXTS`).
    pub fn new(ctxs: &[Ctx]) -> Runs {
        let at = CONTEXTS.map(|c| {
            ctxs.iter()
                .position(|&d| d == c)
                .expect("the run model's contexts are the predictor's")
        });
        Runs {
            at,
            lines: [0; N],
            hashes: [0; N],
            runs: [(0, 0); N],
            maps: vec![Counter::INIT; N * MAPS],
            used: [(0, 0); N],
            n_used: 0,
        }
    }

    /// Bytes a run model allocates.
    pub fn memory() -> u64 {
        (N * MAPS * std::mem::size_of::<Counter>()) as u64
    }

    /// At the start of a byte: every context's line for the first nibble (`lines`, found with the
    /// hashes `line_hashes`), and the runs they hold.
    pub fn start(&mut self, table: &LineTable, lines: &[usize], line_hashes: &[u32]) {
        for (j, &i) in self.at.iter().enumerate() {
            self.lines[j] = lines[i];
            self.hashes[j] = line_hashes[i];
            self.runs[j] = table.run(lines[i], line_hashes[i]).unwrap_or((0, 0));
        }
    }

    /// The inputs for bit `k` (0 = the most significant) of the byte whose bits so far, with a
    /// leading 1, are `node`: a run whose byte disagrees with them gives 0.
    pub fn inputs(&mut self, k: u32, node: u32, x: &mut [i32]) {
        self.n_used = 0;
        for (j, (x, &(byte, len))) in x.iter_mut().zip(&self.runs).enumerate() {
            *x = 0;
            if len == 0 || (byte | 0x100) >> (8 - k) != node {
                continue;
            }
            let bit = (byte >> (7 - k)) & 1;
            let m = j * MAPS + len.min(15) as usize * 4 + k.min(3) as usize;
            let st = stretch(self.maps[m].p12());
            *x = if bit == 1 { st } else { -st };
            self.used[self.n_used] = (m, bit);
            self.n_used += 1;
        }
    }

    /// The run of the `j`th of `CONTEXTS` for the byte being coded: (byte, length).
    #[cfg(test)]
    pub fn run(&self, j: usize) -> (u32, u32) {
        self.runs[j]
    }

    /// Learn the bit just coded: each map used learns whether its run's bit was right.
    pub fn update(&mut self, bit: u32) {
        for &(m, predicted) in &self.used[..self.n_used] {
            self.maps[m].update((bit == predicted) as u32, MAP_LIMIT);
        }
    }

    /// At the end of `byte`: each context's run goes on (up to 255) or starts again with it, in
    /// the line of the first nibble if that still holds the context.
    pub fn end(&mut self, table: &mut LineTable, byte: u32) {
        for j in 0..N {
            let (last, len) = self.runs[j];
            let (b, n) = if len > 0 && last == byte {
                (last, (len + 1).min(255))
            } else {
                (byte, 1)
            };
            table.set_run(self.lines[j], self.hashes[j], b, n);
        }
    }
}
