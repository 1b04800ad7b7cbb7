//! Fixed-length records: a table of fixed-width rows, an image a scan line at a time. A byte
//! value that recurs at one distance several times running votes for that distance; once one
//! distance leads the vote by enough, it is the record length, and the contexts that look at the
//! symbol above read the byte one record back instead of the one at the same column of the
//! previous text line (docs/MODEL.md, "Records").

/// Equal distances in a row a byte value must show before it votes.
const RUN: u8 = 2;
/// The lead in votes at which a distance becomes the record length.
const LEAD: u32 = 16;
/// The shortest record length.
const MIN_LEN: u32 = 8;

pub(crate) struct Records {
    /// per byte value: where it last was (position + 1; 0: not yet), the distance before that, and
    /// how many times in a row that distance repeated
    last: [u32; 256],
    dist: [u32; 256],
    run: [u8; 256],
    /// the distance leading the vote, and its lead (a majority vote: a vote for another distance
    /// takes one away)
    cand: u32,
    lead: u32,
}

impl Records {
    pub(crate) fn new() -> Records {
        Records {
            last: [0; 256],
            dist: [0; 256],
            run: [0; 256],
            cand: 0,
            lead: 0,
        }
    }

    /// The byte `c` at position `pos` (0-based) was coded.
    pub(crate) fn push(&mut self, pos: usize, c: u8) {
        let c = c as usize;
        let here = pos as u32 + 1;
        let d = here.wrapping_sub(self.last[c]);
        if self.last[c] != 0 && d == self.dist[c] {
            self.run[c] = self.run[c].saturating_add(1);
        } else {
            self.run[c] = 0;
        }
        self.dist[c] = d;
        self.last[c] = here;
        if self.run[c] >= RUN && d >= MIN_LEN {
            if d == self.cand {
                self.lead = (self.lead + 1).min(2 * LEAD);
            } else if self.lead == 0 {
                self.cand = d;
                self.lead = 1;
            } else {
                self.lead -= 1;
            }
        }
    }

    /// The record length, once one is established.
    pub(crate) fn record_len(&self) -> Option<usize> {
        (self.lead >= LEAD).then_some(self.cand as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(data: &[u8]) -> Option<usize> {
        let mut r = Records::new();
        for (i, &c) in data.iter().enumerate() {
            r.push(i, c);
        }
        r.record_len()
    }

    #[test]
    fn finds_the_length_of_rows_and_not_of_text() {
        // rows of 37 bytes that differ from one another, a few values recurring down each column
        let rows: Vec<u8> = (0..60u32)
            .flat_map(|y| (0..37u32).map(move |x| if x % 5 == 0 { x as u8 } else { (y * 31 + x * 7) as u8 }))
            .collect();
        assert_eq!(found(&rows), Some(37));
        // too short a record, and runs of one byte (a distance of 1)
        let short: Vec<u8> = (0..2000u32).map(|i| (i % 4) as u8 * 40).collect();
        assert_eq!(found(&short), None);
        assert_eq!(found(&[0u8; 5000]), None);
        let prose = b"It was the best of times, it was the worst of times, it was the age of wisdom, \
            it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. "
            .repeat(3);
        assert_eq!(found(&prose), None);
    }
}
