//! The byte mixer's trial sets the pace for the model's. Where the model is tried because it may
//! pay (levels 7 and 8), its trial is stopped once it has fallen behind the byte mixer's
//! trial of the same chunk: both encoders note their payload's length at every `MARK` bytes of the
//! chunk (16 KiB), and the model's trial gives up at the first mark where its payload is longer
//! than the byte mixer's was there.
//!
//! On the bench the model starts ahead of the byte mixer on the chunks it wins (it arrives trained;
//! the byte mixer learns the chunk as it goes), 12% to 23% ahead on the texts at 16 KiB, and its
//! lead shrinks as the chunk goes on. So a model that has fallen behind does not come back, or
//! not by enough to pay for its time (a blend frame decodes ten times slower than a CM frame). On
//! misc/urls.10K it is 5% ahead at 16 KiB, 0.9% behind at 128 KiB, 3.1% at 256 KiB and 5.4% at the
//! end; its trial took two thirds of the chunk's time and its frame was never chosen. On binary
//! chunks (canterbury/sum, misc/paper-100k.pdf) it is behind from the first mark on.
//!
//! The decision is a pure function of the chunk: both lengths are those of the encoders at fixed
//! points of the chunk (the byte mixer before byte `k · MARK`, the model after the token that
//! reaches it), whatever the threads, the backend or the batch do, and the model's trial waits
//! for the byte mixer's mark if it gets there first. So archives are the same for any thread
//! count or backend, as they must be.

use std::sync::{Condvar, Mutex, PoisonError};

/// Bytes of the chunk from one mark to the next.
pub(crate) const MARK: usize = 1 << 14;

/// The byte mixer's payload length at every `MARK` bytes of a chunk, as its trial gets there.
#[derive(Default)]
pub(crate) struct Yardstick {
    marks: Mutex<Marks>,
    moved: Condvar,
}

#[derive(Default)]
struct Marks {
    /// the payload's length before byte `k · MARK`, for every `k` reached so far
    lengths: Vec<u64>,
    /// the byte mixer's trial has ended (done, failed or stopped): no more marks come
    ended: bool,
}

impl Yardstick {
    pub(crate) fn new() -> Yardstick {
        Yardstick::default()
    }

    /// The byte mixer's trial is before byte `k · MARK` with `length` bytes of payload.
    pub(crate) fn mark(&self, k: usize, length: u64) {
        let mut m = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        if m.lengths.len() == k {
            m.lengths.push(length);
            self.moved.notify_all();
        }
    }

    /// The byte mixer's trial has ended; its marks are all there are.
    pub(crate) fn end(&self) {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner).ended = true;
        self.moved.notify_all();
    }

    /// The byte mixer's length at mark `k`, once it is there; `None` if its trial ended first.
    pub(crate) fn at(&self, k: usize) -> Option<u64> {
        let mut m = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(&length) = m.lengths.get(k) {
                return Some(length);
            }
            if m.ended {
                return None;
            }
            m = self.moved.wait(m).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether a model's payload of `length` bytes after mark `k` is behind (the first mark, at
    /// the chunk's start, compares nothing).
    pub(crate) fn left_behind(&self, k: usize, length: u64) -> bool {
        k > 0 && self.at(k).is_some_and(|theirs| length > theirs)
    }
}

/// Ends the yardstick when dropped: the byte mixer's trial ends however it ends (a panic too), so
/// the model's trial never waits for a mark that will not come.
pub(crate) struct EndOnDrop<'a>(pub &'a Yardstick);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// How a pass takes part in the pacing.
#[derive(Clone, Copy)]
pub(crate) enum Pace<'a> {
    /// the byte mixer's trial: it marks the yardstick
    Sets(&'a Yardstick),
    /// the model's trial: it measures itself against the yardstick
    Follows(&'a Yardstick),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::codec::{Cancel, Work};
    use crate::format::CmModel;
    use crate::frames::blend::Blend;
    use crate::frames::{cm, TokenFrame};
    use crate::model::Model;

    fn tiny() -> CpuBackend {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/tiny.safetensors")).unwrap();
        CpuBackend::new(Model::from_bytes(&bytes).unwrap())
    }

    /// Text of 40 KB: marks at 0, 16 and 32 KiB.
    fn text() -> Vec<u8> {
        let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden/sample.txt")).unwrap();
        sample.iter().cycle().take(40_000).copied().collect()
    }

    /// The byte mixer's trial marks its payload's length at every `MARK` bytes, from 0 at the
    /// start, never more than its whole payload; its payload is the same as unpaced.
    #[test]
    fn the_byte_mixers_trial_marks_its_length() {
        let data = text();
        let (cancel, y) = (Cancel::new(), Yardstick::new());
        let paced = cm::encode(&data, CmModel::Deep, &Work::new(&cancel).paced(Some(Pace::Sets(&y)))).unwrap();
        y.end();
        let marks: Vec<u64> = (0..4).map_while(|k| y.at(k)).collect();
        assert_eq!(marks.len(), data.len().div_ceil(MARK));
        assert_eq!(marks[0], 0);
        assert!(
            marks.windows(2).all(|w| w[0] < w[1]) && marks[2] <= paced.len() as u64,
            "{marks:?}"
        );
        assert_eq!(paced, cm::encode(&data, CmModel::Deep, &Work::new(&cancel)).unwrap());
    }

    /// The model's trial gives no frame once it is behind at a mark, and its usual frame
    /// when it never is.
    #[test]
    fn a_model_trial_behind_the_yardstick_gives_no_frame() {
        let (b, data, cancel) = (tiny(), text(), Cancel::new());
        let unpaced = Blend::encode(&b, &data, &Work::new(&cancel)).unwrap().unwrap();
        for (ahead_by, stops) in [(0, true), (u64::MAX / 64, false)] {
            let y = Yardstick::new();
            for k in 0..3 {
                y.mark(k, k as u64 * ahead_by);
            }
            y.end();
            let w = Work::new(&cancel).paced(Some(Pace::Follows(&y)));
            let frame = Blend::encode(&b, &data, &w).unwrap();
            assert_eq!((frame.is_none(), w.fell_behind()), (stops, stops));
            if !stops {
                assert_eq!(frame.unwrap(), unpaced);
            }
        }
    }

    #[test]
    fn the_follower_waits_for_the_mark_and_stops_once_behind() {
        let y = Yardstick::new();
        std::thread::scope(|s| {
            // level with the byte mixer is still in the race; behind is not
            let follower = s.spawn(|| (y.left_behind(2, 1000), y.left_behind(3, 2001)));
            for (k, length) in [(0, 0), (1, 500), (2, 1000), (3, 2000)] {
                std::thread::sleep(std::time::Duration::from_millis(5));
                y.mark(k, length);
            }
            assert_eq!(follower.join().unwrap(), (false, true));
        });
    }

    #[test]
    fn a_yardstick_that_ended_early_stops_nobody() {
        let y = Yardstick::new();
        y.mark(0, 0);
        // the chunk's start compares nothing
        assert!(!y.left_behind(0, 1_000));
        drop(EndOnDrop(&y));
        assert!(!y.left_behind(5, u64::MAX / 100));
        // a mark given twice keeps the first
        y.mark(0, 7);
        assert_eq!(y.at(0), Some(0));
    }
}
