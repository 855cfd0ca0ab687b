//! # diskstore
//!
//! A fast, persistent map and disk cache on SQLite: thread-safe, process-safe, and
//! file-compatible with the Python `diskstore` library.
//!
//! A store is one SQLite table: the key in a `_key` column (integer, float, text or bytes,
//! stored natively) and one column per value field. Every thread gets its own connection;
//! writers are serialised inside the process and, through SQLite's locks, between processes.
//!
//! ```
//! use diskstore::{DiskStore, Record};
//!
//! #[derive(Record, Debug, PartialEq)]
//! struct Point {
//!     x: f64,
//!     y: f64,
//!     #[record(default = "origin")]
//!     label: String,
//! }
//!
//! # fn main() -> diskstore::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let store: DiskStore<String, Point> = DiskStore::open(dir.path().join("points.db"))?;
//!
//! store.insert("a", &Point { x: 1.0, y: 2.0, label: "first".into() })?;
//! assert_eq!(store.get("a")?.unwrap().x, 1.0);
//!
//! // Writes in a transaction are all-or-nothing; dropping it uncommitted rolls back.
//! let tx = store.begin()?;
//! tx.insert("b", &Point { x: 3.0, y: 4.0, label: "second".into() })?;
//! tx.commit()?;
//!
//! let keys: Vec<String> = store.keys().collect::<Result<_, _>>()?;
//! assert_eq!(keys, ["a", "b"]); // insertion order
//! # Ok(())
//! # }
//! ```
//!
//! Values are [`Record`]s: the built-in [`Field`] types (`i64`, `f64`, `bool`, `String`,
//! `Vec<u8>`, `Option<T>`), [`Json<T>`] for any serde type, or structs with
//! `#[derive(Record)]` (one column per field; `#[record(default = …)]` gives the default a
//! migration uses when it adds the column to an existing table; `#[record(table = "…")]`
//! names the table).
//!
//! The type-erased engine underneath, [`Table`], is public for front ends that convert
//! values themselves (the Python binding uses it).

#![warn(missing_docs)]

mod busy;
mod cache;
mod checkpoint;
mod connection;
mod count;
mod error;
mod fork;
mod group;
mod key;
mod large;
mod pager;
mod pragma;
mod record;
pub mod remote;
mod schema;
mod statement;
mod store;
mod table;
mod transaction;
mod value;
mod writer;
mod writer_conn;

pub use busy::busy_wait_step;
pub use cache::{
    CACHE_PAGE_SIZE, CacheBuilder, CacheIter, CacheOptions, CacheTable, Clock, DEFAULT_CACHE_TABLE,
    DEFAULT_FILE_THRESHOLD, DiskCache, EvictionPolicy, IncrRefusal, ManualClock, NEVER,
    PURGE_PER_WRITE, SCAN_PAGE, Stats, SystemClock, Ttl, ValueFile, entry_size,
};
/// For the power-loss tests only: the seam of the cache's value files.
#[doc(hidden)]
pub use cache::{FileSystem as ValueFileSystem, RealFileSystem, set_value_file_system};
pub use checkpoint::{Checkpointer, Pace};
pub use error::{Error, Result};
pub use key::{AsKey, Key, KeyRef};
pub use pager::RowidPager;
pub use pragma::{DEFAULT_PRAGMAS, DEFAULT_RO_PRAGMAS, DEFAULT_TIMEOUT, MMAP_SIZE};
pub use record::{Column, Field, FieldKind, Json, Record, Row};
pub use remote::any::{AnyRead, AnyStore, AnyTransaction};
pub use schema::{TableSpec, quote_ident};
pub use store::{Builder, DEFAULT_TABLE, DiskRead, DiskStore, Iter, QueryIter, RangeIter};
pub use table::{
    Direction, Found, LARGE_VALUE, Located, Query, RangeEnd, Table, TableOptions, named_parameter,
};
pub use transaction::{ReadTransaction, Savepoint, Transaction, WriteTransaction};
pub use value::{Cell, ColumnType, Value, ValueRef};

#[cfg(feature = "derive")]
pub use diskstore_derive::Record;

/// The SQLite binding underneath, for [`Table::with_connection`].
pub use rusqlite;

/// For code that drives SQLite through [`rusqlite`] on a thread of its own (the Python
/// diskcache core's background checkpoints): counts the calling thread inside SQLite until
/// the guard drops, so that a `fork()` waits for it to come out first (see `fork.rs`), and
/// installs the at-fork handlers. Call it once a connection has been opened.
pub fn enter_sqlite() -> fork::Inside {
    fork::generation();
    fork::enter()
}

/// A number that changes in a child of `fork()` (installs the at-fork handlers): tells a
/// connection made in this process from one inherited, without a `getpid` call.
pub fn fork_generation() -> u64 {
    fork::generation()
}

/// The version of the bundled SQLite library.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}
