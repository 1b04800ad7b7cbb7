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
