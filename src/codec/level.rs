//! Compression levels: each a fixed choice of what is tried on every chunk; the smallest frame
//! wins. Levels only steer the encoder. Every frame kind decodes the same way at any level, so
//! decompression needs no flag.
//!
//! | level | tried on each chunk (besides storing) |
//! |---|---|
//! | 1 | the sorted chunk, lean predictor (fast BWT frames) |
//! | 2 | the sorted chunk (BWT frames) |
//! | 3 | the sorted chunk, LZMA preset 9 extreme |
//! | 4 | the byte mixer (CM frames) |
//! | 5 | the byte mixer, LZMA preset 6 |
//! | 6 | the mid byte mixer (mid CM frames), LZMA preset 6 |
//! | 7 | the deep byte mixer, the model (blend frames) where it may pay |
//! | 8 | the deep byte mixer, LZMA preset 9 extreme, the model where it may pay (the default) |
//! | 9 | the deep byte mixer, LZMA preset 9 extreme, the model on every chunk that is not noise |
//!
//! "The deep byte mixer" keeps bit histories beside its counters and adds a long match model
//! and a bi-level image model: 2.4% smaller than the byte mixer over the bench (format 13), at
//! about 1.6 times its instructions. "The mid byte mixer" is the deep one trimmed (each context's
//! history map alone, no mixer by column, the image mixer only on records, one context less;
//! format 14): 0.17% bigger than the deep one over the bench, at 0.83 times its instructions,
//! for the middle level's speed (zpaq -m5's). From format 15 on the deep byte mixer also has a
//! run model (0.25% smaller, 1.13 times the instructions), which the mid one does not.
//!
//! "The model" is a blend frame: the transformer and the byte mixer predicting each bit together.
//!
//! "Where it may pay": not on chunks the byte mixer already codes below half a bit per byte (on
//! the bench the model won one of those, Linux_2k.log, by 1.7% for nine times its time), nor on
//! chunks above 7.9 bits per byte of order-0 entropy (already-compressed data); and its trial
//! stops once it has fallen behind the byte mixer's (`codec::pace`). At every level, chunks that
//! look like random bytes are stored without trying anything (`probe::incompressible`).

use crate::format::{CmModel, Sorter};
use crate::frames::lzma;

/// The level used when none is given: the best ratio of the methods that pay for their time on
/// the bench (level 9 takes the model to chunks where it rarely wins).
pub const DEFAULT_LEVEL: u8 = 8;
/// The fastest level.
pub const MIN_LEVEL: u8 = 1;
/// The level with the best ratio.
pub const MAX_LEVEL: u8 = 9;

/// Where the model is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelTrial {
    /// never
    Never,
    /// where it may pay (see the module's docs)
    WherePays,
    /// on every chunk below 7.9 bits per byte of order-0 entropy
    Always,
}

/// What a level tries on each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// the LZMA preset tried, if any
    pub lzma: Option<u32>,
    /// whether the Burrows–Wheeler transform is tried, and with which predictor (BWT frames)
    pub bwt: Option<Sorter>,
    /// whether the byte mixer is tried, and which (CM or deep CM frames)
    pub cm: Option<CmModel>,
    /// where the model is tried (blend frames, or direct frames with `direct`)
    pub model: ModelTrial,
    /// direct model frames instead of mixed ones (`--direct`: no mixer at all)
    pub direct: bool,
}

impl Plan {
    /// The plan of `level` (1 to 9); with `direct`, `--direct`'s own plan at any level: direct
    /// model frames where they may pay, LZMA preset 1 as the fallback.
    pub fn of(level: u8, direct: bool) -> Plan {
        let extreme = 9 | lzma::PRESET_EXTREME;
        if direct {
            return Plan {
                lzma: Some(1),
                bwt: None,
                cm: None,
                model: ModelTrial::WherePays,
                direct: true,
            };
        }
        let bwt = match level {
            ..=1 => Some(Sorter::Lean),
            2 | 3 => Some(Sorter::Full),
            _ => None,
        };
        let (plain, deep) = (Some(CmModel::Plain), Some(CmModel::Deep));
        let (lzma, cm, model) = match level {
            ..=1 => (None, None, ModelTrial::Never),
            2 => (None, None, ModelTrial::Never),
            3 => (Some(extreme), None, ModelTrial::Never),
            4 => (None, plain, ModelTrial::Never),
            5 => (Some(6), plain, ModelTrial::Never),
            // LZMA 9e never beat the mid byte mixer on the bench (the archives are the same
            // without it), while its trial beside the mixer's slowed it; preset 6 keeps the
            // fallback (exact repeats of random blocks) for a fraction of the time
            6 => (Some(6), Some(CmModel::Mid), ModelTrial::Never),
            7 => (None, deep, ModelTrial::WherePays),
            8 => (Some(extreme), deep, ModelTrial::WherePays),
            _ => (Some(extreme), deep, ModelTrial::Always),
        };
        Plan {
            lzma,
            bwt,
            cm,
            model,
            direct: false,
        }
    }

    /// In words, for `-vv`.
    pub fn describe(&self) -> String {
        let mut tries = Vec::new();
        if let Some(p) = self.lzma {
            tries.push(if p & lzma::PRESET_EXTREME != 0 {
                format!("LZMA {}e", p & !lzma::PRESET_EXTREME)
            } else {
                format!("LZMA {p}")
            });
        }
        match self.bwt {
            Some(Sorter::Lean) => tries.push("the sorted chunk with the lean predictor (fast BWT)".into()),
            Some(Sorter::Full) => tries.push("the sorted chunk (BWT)".into()),
            None => {}
        }
        match self.cm {
            Some(CmModel::Plain) => tries.push("the byte mixer".into()),
            Some(CmModel::Deep) => tries.push("the deep byte mixer (bit histories)".into()),
            Some(CmModel::Mid) => tries.push("the mid byte mixer (bit histories, trimmed)".into()),
            None => {}
        }
        let model = if self.direct {
            "direct model frames"
        } else {
            "the model"
        };
        match self.model {
            ModelTrial::Never => {}
            ModelTrial::WherePays => tries.push(format!("{model} where it may pay")),
            ModelTrial::Always => tries.push(format!("{model} on every chunk that is not noise")),
        }
        format!("tries {} and storing", tries.join(", "))
    }

    /// Whether coding a chunk holds large context-mixing tables (the byte or the token mixer).
    pub fn mixes(&self) -> bool {
        self.cm.is_some() || (self.model != ModelTrial::Never && !self.direct)
    }
}
