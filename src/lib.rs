//! nnz: a lossless compressor with a small integer transformer as its predictor.
//!
//! - [`coder`]: the fixed-point range coder
//! - [`tokenizer`]: byte-exact BPE
//! - [`model`]: the model file and the integer arithmetic
//! - [`backend`]: the model's forward pass (CPU reference)
//! - [`cm`]: context mixing (the match model, counters, mixers) that codes tokens or bytes bit by bit
//! - [`format`](mod@format): the `.nnz` container
//! - [`codec`]: whole-stream compression and decompression
//! - [`stream`]: [`Encoder`] and [`Decoder`], streaming adapters over `Write` and `Read`

pub mod backend;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cm;
pub mod codec;
pub mod coder;
pub mod error;
pub mod format;
pub mod mixer_v2;
pub mod model;
pub mod stream;
pub mod tokenizer;

pub use codec::{Cancel, Stats};
pub use error::{Error, Result};
pub use stream::{CompressOptions, Decoder, DecompressOptions, Encoder};
