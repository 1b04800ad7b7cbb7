//! nnz: a lossless compressor with a small integer transformer as its predictor.
//!
//! Compress with an [`Encoder`] (a [`Write`](std::io::Write) over another writer), decompress with
//! a [`Decoder`] (a [`Read`](std::io::Read) over another reader); [`CompressOptions`] and
//! [`DecompressOptions`] build them. Both run the built-in model on the CPU unless given a
//! [`Backend`] of their own: a [`CpuBackend`] with another [`Model`], or a [`CudaBackend`]
//! (CUDA is loaded at run time; nothing of it is needed to build or to run on the CPU).
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let mut enc = nnz::Encoder::new(Vec::new())?;
//! enc.write_all(b"some text, some more text")?;
//! let archive = enc.finish()?;
//! let mut back = Vec::new();
//! nnz::Decoder::new(&archive[..])?.read_to_end(&mut back)?;
//! assert_eq!(back, b"some text, some more text");
//! # Ok::<(), nnz::Error>(())
//! ```
//!
//! Archives decode bit-exactly on every machine and backend: everything the coder sees is integer
//! arithmetic (docs/MODEL.md), and the container (docs/FORMAT.md) checks every frame.
//!
//! Modules marked hidden in these docs are nnz's own internals, public only for its tests and
//! tools; they may change in any release.

#![warn(missing_docs)]

pub mod backend;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod cm;
#[doc(hidden)]
pub mod codec;
mod coder;
mod error;
#[doc(hidden)]
pub mod format;
mod frames;
mod legacy;
pub mod model;
mod stream;
#[doc(hidden)]
pub mod table;
#[doc(hidden)]
pub mod tokenizer;

pub use backend::cpu::CpuBackend;
pub use backend::cuda::{CudaBackend, CudaOptions};
pub use backend::Backend;
pub use codec::{Cancel, Stats};
pub use error::{Error, Result};
pub use model::Model;
pub use stream::{CompressOptions, Decoder, DecompressOptions, Encoder};

#[cfg(test)]
mod test_support;
