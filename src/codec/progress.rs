//! Progress within a chunk. The coding loops already stop now and then to see whether the call was
//! cancelled; at the same points they report how many bytes of their pass they have coded, so a
//! progress bar moves while a chunk of several MiB is coded, not only when a batch of chunks ends.
//!
//! A [`Meter`] belongs to one batch of one call: it adds up what the passes report and hands the
//! total to the caller's `progress` callback. A [`Work`] belongs to one pass over one chunk (one
//! trial of the encoder, or the decoding of one frame): a byte it codes counts for `num / den` bytes
//! of progress, so that an encoder's trials together count for the chunk's length, and a frame's
//! decoding for its length in the archive. What a pass reports is rounded down, never more than
//! its share; the caller adds what is left when the chunk is done (`Work::reported`), so the total
//! at the end of a batch is exact and the bar never runs backwards.

use super::pace::{Pace, MARK};
use super::Cancel;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes a byte-by-byte loop codes between two looks at the cancellation token and the meter.
pub(crate) const STEP: usize = 1 << 16;

/// The progress of one batch: `base` (bytes done before it) plus what its passes have reported.
pub(crate) struct Meter<'a> {
    report: &'a (dyn Fn(u64) + Sync),
    base: u64,
    done: AtomicU64,
    /// held while reporting, so the callback sees totals in order from any number of threads
    reporting: Mutex<()>,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(report: &'a (dyn Fn(u64) + Sync), base: u64) -> Meter<'a> {
        Meter {
            report,
            base,
            done: AtomicU64::new(0),
            reporting: Mutex::new(()),
        }
    }

    /// Count `n` more bytes done and tell the callback. (Passes report every 64 KiB or every token
    /// block, so the lock is seldom waited for.)
    pub(crate) fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.done.fetch_add(n, Ordering::Relaxed);
        // a callback that panicked poisons the lock; its bytes still count
        let _turn = self.reporting.lock().unwrap_or_else(|e| e.into_inner());
        // read under the lock: totals only grow, so the callback sees them in order
        (self.report)(self.base + self.done.load(Ordering::Relaxed));
    }
}

/// One pass over a chunk: where its loop looks for cancellation and reports bytes coded.
pub(crate) struct Work<'a> {
    cancel: &'a Cancel,
    /// a second token that stops this pass alone (a trial that turned out not to be needed)
    stop: Option<&'a Cancel>,
    meter: Option<&'a Meter<'a>>,
    num: u64,
    den: u64,
    /// bytes this pass has coded so far (its segments may run on several threads)
    coded: AtomicU64,
    /// the pass's part in the pacing of the model's trial by the byte mixer's, if any
    pace: Option<Pace<'a>>,
    /// the next mark of the pacing (at every `pace::MARK` bytes)
    next_mark: AtomicUsize,
    /// the model's trial stopped, behind the byte mixer's
    behind: AtomicBool,
}

impl<'a> Work<'a> {
    /// A pass that reports to nobody.
    #[cfg(test)]
    pub(crate) fn new(cancel: &'a Cancel) -> Work<'a> {
        Work::metered(cancel, None, 1, 1)
    }

    /// A pass whose bytes count for `num / den` bytes each on `meter`.
    pub(crate) fn metered(cancel: &'a Cancel, meter: Option<&'a Meter<'a>>, num: u64, den: u64) -> Work<'a> {
        Work {
            cancel,
            stop: None,
            meter,
            num,
            den: den.max(1),
            coded: AtomicU64::new(0),
            pace: None,
            next_mark: AtomicUsize::new(0),
            behind: AtomicBool::new(false),
        }
    }

    /// This pass takes part in the pacing (`codec::pace`), if `pace` says how.
    pub(crate) fn paced(mut self, pace: Option<Pace<'a>>) -> Work<'a> {
        self.pace = pace;
        self
    }

    /// For the encoders whose trials are paced, called at every byte or token (`pos`: bytes coded
    /// so far; `coded`: the payload's length so far): the byte mixer's trial marks the yardstick
    /// at every `pace::MARK` bytes, and the model's trial measures itself against those marks and
    /// stops with `Error::Interrupted` when it is behind (`fell_behind` then says so). Nothing for
    /// a pass that is not paced (every decoder).
    #[inline]
    pub(crate) fn pace(&self, pos: usize, coded: impl FnOnce() -> u64) -> Result<()> {
        match self.pace {
            Some(p) if pos >= self.next_mark.load(Ordering::Relaxed) * MARK => self.mark(p, pos, coded()),
            _ => Ok(()),
        }
    }

    #[cold]
    fn mark(&self, pace: Pace, pos: usize, coded: u64) -> Result<()> {
        let (from, to) = (self.next_mark.load(Ordering::Relaxed), pos / MARK);
        self.next_mark.store(to + 1, Ordering::Relaxed);
        for k in from..=to {
            match pace {
                Pace::Sets(y) => y.mark(k, coded),
                Pace::Follows(y) if y.left_behind(k, coded) => {
                    self.behind.store(true, Ordering::Relaxed);
                    return Err(Error::Interrupted);
                }
                Pace::Follows(_) => {}
            }
        }
        Ok(())
    }

    /// Whether the pass stopped because it fell behind the byte mixer's (`pace`).
    pub(crate) fn fell_behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    /// This pass also stops once `stop` is cancelled.
    pub(crate) fn stopped_by(mut self, stop: &'a Cancel) -> Work<'a> {
        self.stop = Some(stop);
        self
    }

    /// `Err(Error::Interrupted)` once cancelled; else count `n` more bytes coded.
    pub(crate) fn tick(&self, n: u64) -> Result<()> {
        self.cancel.check()?;
        if let Some(s) = self.stop {
            s.check()?;
        }
        if let Some(m) = self.meter {
            let after = self.coded.fetch_add(n, Ordering::Relaxed) + n;
            // the difference of two rounded totals: the pass's reports add up to `reported`
            m.add(self.share(after) - self.share(after - n));
        }
        Ok(())
    }

    /// For a loop over bytes, called at every byte `i`: a tick every `STEP` bytes.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> Result<()> {
        if i.is_multiple_of(STEP) {
            self.tick(if i == 0 { 0 } else { STEP as u64 })
        } else {
            Ok(())
        }
    }

    /// The progress this pass has reported so far.
    pub(crate) fn reported(&self) -> u64 {
        self.share(self.coded.load(Ordering::Relaxed))
    }

    fn share(&self, coded: u64) -> u64 {
        (coded as u128 * self.num as u128 / self.den as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn reports_add_up_to_the_share_and_never_run_backwards() {
        let last = AtomicU64::new(0);
        let calls = AtomicU64::new(0);
        let report = |n: u64| {
            assert!(n >= last.load(Ordering::Relaxed), "progress ran backwards");
            last.store(n, Ordering::Relaxed);
            calls.fetch_add(1, Ordering::Relaxed);
        };
        let meter = Meter::new(&report, 1000);
        let cancel = Cancel::new();
        // a pass worth a third of its bytes, fed from several threads in uneven steps
        let work = Work::metered(&cancel, Some(&meter), 1, 3);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let work = &work;
                s.spawn(move || {
                    for k in 0..1000u64 {
                        work.tick((k * 7 + t) % 13).unwrap();
                    }
                });
            }
        });
        let coded: u64 = (0..4u64)
            .map(|t| (0..1000u64).map(|k| (k * 7 + t) % 13).sum::<u64>())
            .sum();
        assert_eq!(work.reported(), coded / 3);
        assert_eq!(meter.done.load(Ordering::Relaxed), coded / 3);
        // one report per tick that moved the total
        assert!(calls.load(Ordering::Relaxed) > 1000);
        assert!(last.load(Ordering::Relaxed) <= 1000 + coded / 3);
    }

    #[test]
    fn a_cancelled_pass_stops_at_its_next_tick() {
        let cancel = Cancel::new();
        let work = Work::new(&cancel);
        assert!(work.at(0).is_ok());
        cancel.cancel();
        assert!(work.at(1).is_ok(), "between steps the loop does not look");
        assert!(matches!(work.at(STEP), Err(crate::error::Error::Interrupted)));
    }
}
