//! One error type for the library. Every variant says what went wrong in words a user can act on;
//! the CLI prints it as one line and exits with status 1.

use std::io;

/// What went wrong. Through `Read`/`Write` adapters it arrives inside an `io::Error` (see the
/// `From` impl below); new kinds may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// reading the input or writing the output failed
    #[error("{0}")]
    Io(#[from] io::Error),
    /// the input does not begin like an nnz archive
    #[error("not an nnz archive (bad magic bytes)")]
    NotAnArchive,
    /// the archive's format version (first) is newer than this nnz's (second)
    #[error("archive format version {0} is newer than this nnz supports (version {1}); upgrade nnz")]
    FutureVersion(u8, u8),
    /// the archive is damaged: a check failed (what, in words)
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    /// the archive ends early
    #[error("archive is truncated (unexpected end of data)")]
    Truncated,
    /// bytes follow the last stream that are not another stream
    #[error("unexpected data after the end of the archive")]
    TrailingData,
    /// the archive needs another model than the one given
    #[error("archive was made with model {archive}, but this nnz uses model {ours}; decompress it with the nnz (or --model file) that made it")]
    WrongModel {
        /// the id of the model the archive was made with (hex)
        archive: String,
        /// the id of the model this decoder has (hex)
        ours: String,
    },
    /// a model file could not be loaded
    #[error("model file is invalid: {0}")]
    BadModel(String),
    /// the tokenizer failed (on compression; the chunk could not be tokenized)
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    /// a wrong use: an option out of range, a limit too low, a missing device
    #[error("{0}")]
    Usage(String),
    /// the call's [`Cancel`](crate::Cancel) token was cancelled
    #[error("interrupted")]
    Interrupted,
}

/// `Result` with nnz's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// `Error::Corrupt` with `msg`.
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
}

/// Through `Read` and `Write` an archive's damage is `InvalidData` (with the `Error` inside, for
/// `get_ref`/`into_inner`), a wrong use `InvalidInput`, and I/O errors stay what they were.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e {
            Error::Io(e) => return e,
            Error::Usage(_) | Error::BadModel(_) => io::ErrorKind::InvalidInput,
            // not io::ErrorKind::Interrupted: io::copy would retry
            Error::Interrupted | Error::Tokenizer(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
