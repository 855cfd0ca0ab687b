//! The one error type of the crate, grouped by what the caller can do about it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::ErrorCode;

/// Everything that can go wrong in diskstore.
///
/// Variants are grouped by what a caller can do: retry ([`Error::Busy`]), fix the
/// environment ([`Error::ReadOnly`], [`Error::DiskFull`], [`Error::NotFound`]), fix the
/// data or the file ([`Error::Corrupt`], [`Error::NotADatabase`], [`Error::Schema`],
/// [`Error::Decode`]) or fix the call ([`Error::InvalidKey`], [`Error::InvalidValue`],
/// [`Error::TooBig`], [`Error::Usage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another connection held the lock longer than the busy timeout. Retrying later
    /// may succeed; a longer timeout can be set with the builder.
    #[error("database is busy: {path} stayed locked for {waited:?}")]
    Busy {
        /// The store file.
        path: PathBuf,
        /// How long the call waited before giving up.
        waited: Duration,
    },
    /// A table is in use by another statement of this thread's own connection
    /// (`SQLITE_LOCKED`), e.g. dropped while a read of it is still running. Waiting does
    /// not help: finish the other statement first.
    #[error("{message} ({path}): another statement of this thread is still using the table")]
    Locked {
        /// The store file.
        path: PathBuf,
        /// SQLite's explanation.
        message: String,
    },
    /// The file, its folder or the handle is read-only; writing needs write permission
    /// on the file and on its folder (SQLite creates `-wal` and `-shm` files beside it).
    #[error("cannot write to {path}: {message}")]
    ReadOnly {
        /// The store file.
        path: PathBuf,
        /// SQLite's or the operating system's explanation.
        message: String,
    },
    /// The file does not exist (read-only opens never create a file).
    #[error("no such store file: {path}")]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// The file exists but is not an SQLite database.
    #[error("{path} is not an SQLite database (or is encrypted)")]
    NotADatabase {
        /// The foreign file.
        path: PathBuf,
    },
    /// SQLite found damage in the file. Restore from a backup; `check()` lists the problems.
    #[error("{path} is corrupt: {message}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// SQLite's explanation.
        message: String,
    },
    /// The disk (or a quota) is full; nothing of the failed write was kept.
    #[error("disk full while writing {path}")]
    DiskFull {
        /// The store file.
        path: PathBuf,
    },
    /// A key or value is larger than SQLite accepts (1 GB by default).
    #[error("value too big for SQLite: {0}")]
    TooBig(String),
    /// The table in the file does not fit the record type, or cannot be migrated safely.
    /// Nothing in the file was changed.
    #[error("schema mismatch in table {table:?}{}: {message}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    Schema {
        /// The table.
        table: String,
        /// The column at fault, if one is.
        column: Option<String>,
        /// What does not fit.
        message: String,
    },
    /// A stored value cannot be decoded into the requested Rust type.
    #[error("cannot decode column {column:?}: {message}")]
    Decode {
        /// The column that holds the value.
        column: String,
        /// What was found instead.
        message: String,
    },
    /// A key that cannot be stored, such as a NaN float.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A value that cannot be stored, such as a NaN float or an unserialisable record.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The call is not allowed in this state (for example `vacuum` inside a transaction).
    #[error("{0}")]
    Usage(String),
    /// A cache's limits leave no room for the entry: it alone is larger than the size
    /// limit, or the cache is full and its eviction policy is `none`. Nothing was written.
    #[error("cache full: {0}")]
    Full(String),
    /// An operating-system error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The backend cannot provide this operation with its meaning (for example insertion
    /// order on Redis); nothing was done.
    #[error("{operation} is not supported by the {backend} backend")]
    NotSupported {
        /// `"postgres"` or `"redis"`.
        backend: &'static str,
        /// The operation (and, where it helps, why).
        operation: String,
    },
    /// A database server could not be reached, refused the credentials, or dropped the
    /// connection. Inside a transaction nothing of it was committed; outside, an operation
    /// that reports this error may or may not have been applied only if it says so.
    #[error("{url}: {message}")]
    Connection {
        /// The server URL, without its password.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server cancelled a statement (statement or lock timeout); nothing of it applied.
    #[error("{url}: timed out: {message}")]
    Timeout {
        /// The server URL, without its password.
        url: String,
        /// The server's explanation.
        message: String,
    },
    /// Any other error a database server reported (bad SQL passed to `query`, for example).
    #[error("{url}: {message} (SQLSTATE {code})")]
    Server {
        /// The server URL, without its password.
        url: String,
        /// The SQLSTATE code (`"23505"`: a unique violation; class `23` is a constraint).
        code: String,
        /// The server's explanation.
        message: String,
    },
}

/// The folder a file is in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Turns a raw SQLite error into the variant a caller can act on, naming the file.
    pub(crate) fn at(self, path: &Path, timeout: Duration) -> Error {
        let Error::Sqlite(err) = self else {
            return self;
        };
        let message = err.to_string();
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy) => Error::Busy {
                path: path.to_owned(),
                waited: timeout,
            },
            Some(ErrorCode::DatabaseLocked) => Error::Locked {
                path: path.to_owned(),
                message,
            },
            Some(ErrorCode::ReadOnly) => Error::ReadOnly {
                path: path.to_owned(),
                message,
            },
            Some(ErrorCode::NotADatabase) => Error::NotADatabase {
                path: path.to_owned(),
            },
            Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt {
                path: path.to_owned(),
                message,
            },
            Some(ErrorCode::DiskFull) => Error::DiskFull {
                path: path.to_owned(),
            },
            Some(ErrorCode::TooBig) => Error::TooBig(message),
            // A damaged header (e.g. its schema format number) reads as a generic error.
            Some(ErrorCode::Unknown) if message == "unsupported file format" => Error::Corrupt {
                path: path.to_owned(),
                message,
            },
            // A missing file in an existing folder could not be created: that folder is
            // read-only. Only a missing folder makes the path itself not found.
            Some(ErrorCode::CannotOpen) if !path.exists() && !folder_of(path).is_dir() => {
                Error::NotFound {
                    path: path.to_owned(),
                }
            }
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => Error::ReadOnly {
                path: path.to_owned(),
                message,
            },
            _ => Error::Sqlite(err),
        }
    }

    /// True for [`Error::Busy`]: the operation may succeed if retried.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy { .. })
    }
}
