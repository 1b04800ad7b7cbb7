//! One error type for the library. Every variant says what went wrong in words a user can act on;
//! the CLI prints it as one line and exits with status 1.

use std::io;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not an nnz archive (bad magic bytes)")]
    NotAnArchive,
    #[error("archive format version {0} is newer than this nnz supports (version {1}); upgrade nnz")]
    FutureVersion(u8, u8),
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    #[error("archive is truncated (unexpected end of data)")]
    Truncated,
    #[error("unexpected data after the end of the archive")]
    TrailingData,
    #[error("archive was made with model {archive}, but this nnz uses model {ours}; decompress it with the nnz (or --model file) that made it")]
    WrongModel { archive: String, ours: String },
    #[error("model file is invalid: {0}")]
    BadModel(String),
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("{0}")]
    Usage(String),
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
