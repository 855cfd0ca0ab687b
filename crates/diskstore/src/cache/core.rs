//! The type-erased cache engine, [`CacheTable`]: a store [`Table`] plus expiry, size
//! accounting, eviction, tags, hit/miss counting and compute leases. The typed
//! [`DiskCache`](super::DiskCache) and the Python binding both sit on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::key::KeyRef;
use crate::pragma::DEFAULT_TIMEOUT;
use crate::record::{Column, Row};
use crate::schema::TableSpec;
use crate::statement::Prepared;
use crate::table::{Direction, Table, TableOptions, first_row};
use crate::value::{Cell, ColumnType, Value, ValueRef};

use super::clock::{Clock, SystemClock, micros};
use super::files::{DEFAULT_FILE_THRESHOLD, FileRef, ValueFiles};
use super::policy::{EvictionPolicy, Ttl};
use super::sql::{
    BATCH, CACHE_COLUMNS, CacheSql, INDEX_SUFFIXES, LEASE_TABLE, META_TABLE, TRASH_TABLE,
    TRIGGER_SUFFIXES, stmt,
};
use super::stats::{Pending, Stats};

/// The page size of a new cache file (a store's default is 16 KiB). Every write commits
/// each page it changed whole to the write-ahead log, and a cache write changes about
/// three (the row, the key index, the metadata row), so small pages make cache writes
/// cheaper; bulk loads, which a cache rarely does, get slower. It only applies when the
/// file is created.
pub const CACHE_PAGE_SIZE: u32 = 4096;

/// How to open a [`CacheTable`].
#[derive(Clone)]
pub struct CacheOptions {
    /// The file.
    pub path: PathBuf,
    /// The cache table's name.
    pub table: String,
    /// The value columns (the cache adds its own after them).
    pub columns: Vec<Column>,
    /// The time to live of entries written with [`Ttl::Default`]; `None`: forever.
    pub default_ttl: Option<Duration>,
    /// The most bytes of keys and values kept (see [`entry_size`]); `None`: no limit.
    pub size_limit: Option<u64>,
    /// The most entries kept; `None`: no limit.
    pub count_limit: Option<u64>,
    /// Which entries make room when a limit is reached.
    pub policy: EvictionPolicy,
    /// The time source for expiry.
    pub clock: Arc<dyn Clock>,
    /// Whether lookups count hits and misses.
    pub stats: bool,
    /// The busy timeout.
    pub timeout: Duration,
    /// Pragmas over the store defaults; starts with `page_size` = [`CACHE_PAGE_SIZE`],
    /// `mmap_size` = 0 and `wal_autocheckpoint` = 1000, because the metadata page is
    /// rewritten by every write (see `docs/cache.md`).
    pub pragmas: Vec<(String, String)>,
    /// Text and blob values of at least this many bytes are kept in a file of their own
    /// beside the database (`<file>-values/`) instead of in the table; `None`: never.
    /// Default: 32 KiB. Files already written are read whatever this says.
    pub file_threshold: Option<u64>,
}

impl CacheOptions {
    /// Options with the defaults: no TTL, no limits, least-recently-stored, the system
    /// clock, stats on, 10 s timeout, 4 KiB pages, no memory-mapped reads, a checkpoint
    /// every 1000 pages of log.
    pub fn new(path: impl Into<PathBuf>, table: impl Into<String>, columns: Vec<Column>) -> Self {
        CacheOptions {
            path: path.into(),
            table: table.into(),
            columns,
            default_ttl: None,
            size_limit: None,
            count_limit: None,
            policy: EvictionPolicy::default(),
            clock: Arc::new(SystemClock),
            stats: true,
            timeout: DEFAULT_TIMEOUT,
            pragmas: vec![
                ("page_size".into(), CACHE_PAGE_SIZE.to_string()),
                ("mmap_size".into(), "0".into()),
                ("wal_autocheckpoint".into(), "1000".into()),
            ],
            file_threshold: Some(DEFAULT_FILE_THRESHOLD),
        }
    }
}

struct Inner {
    table: Table,
    sql: CacheSql,
    name: String,
    width: usize,
    default_ttl: Option<Duration>,
    size_limit: Option<u64>,
    count_limit: Option<u64>,
    policy: EvictionPolicy,
    clock: Arc<dyn Clock>,
    stats: Pending,
    stats_on: AtomicBool,
    files: ValueFiles,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: write out the counts still in memory (best effort).
        if !self.stats.is_empty() {
            let _ = atomic(self, |_| Ok(()));
        }
    }
}

/// The cache columns of a row being written.
#[derive(Clone, Copy)]
struct Stored<'a> {
    expire: Option<i64>,
    size: u64,
    tag: Option<KeyRef<'a>>,
    /// The `_file` reference of a value kept in its own file.
    file: Option<&'a str>,
}

/// The cells of an entry about to be written, with its largest value moved to a file of
/// its own when it reaches the threshold.
struct Spilled<'v> {
    /// The cells to store (the moved one left empty); `None`: store the given ones.
    cells: Option<Vec<Cell<'v>>>,
    /// The `_file` reference of the moved value.
    reference: Option<String>,
}

impl<'v> Spilled<'v> {
    /// The cells to store and the `_file` reference.
    fn as_parts<'s>(&'s self, values: &'s [Cell<'s>]) -> (&'s [Cell<'s>], Option<&'s str>) {
        match &self.cells {
            Some(cells) => (cells, self.reference.as_deref()),
            None => (values, None),
        }
    }

    /// Removes the file again unless its row was stored (`kept`): a write that failed
    /// (or was rolled back to its savepoint) or an `add` that stored nothing.
    fn settle(&self, files: &ValueFiles, kept: bool) {
        if let (false, Some(r)) = (kept, &self.reference) {
            files.remove(r);
        }
    }
}

/// Why [`CacheTable::try_incr`] left an entry alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrRefusal {
    /// The live value is not an integer: its storage type (`None` for NULL).
    NotAnInteger(Option<ColumnType>),
    /// The sum does not fit in 64 bits.
    Overflow,
}

impl std::fmt::Display for IncrRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IncrRefusal::NotAnInteger(None) => write!(f, "cannot increment a NULL value"),
            IncrRefusal::NotAnInteger(Some(t)) => {
                write!(f, "cannot increment a {} value", t.sql())
            }
            IncrRefusal::Overflow => write!(f, "integer overflow in incr"),
        }
    }
}

/// One cache table in one file, shared by all threads (a cheap, cloneable handle).
#[derive(Clone)]
pub struct CacheTable {
    inner: Arc<Inner>,
}

/// The bytes an entry is accounted for: the key's and each value cell's stored bytes
/// (text and blobs: their length in bytes; integers and floats: 8; NULL: 0). Tags and the
/// cache's bookkeeping columns are not counted.
pub fn entry_size(key: KeyRef<'_>, values: &[Cell<'_>]) -> u64 {
    let key_size = match key {
        KeyRef::Int(_) | KeyRef::Float(_) => 8,
        KeyRef::Text(s) => s.len(),
        KeyRef::Blob(b) => b.len(),
    };
    let value_size: usize = values
        .iter()
        .map(|c| match c.as_ref() {
            ValueRef::Null => 0,
            ValueRef::Integer(_) | ValueRef::Real(_) => 8,
            ValueRef::Text(s) => s.len(),
            ValueRef::Blob(b) => b.len(),
        })
        .sum();
    (key_size + value_size) as u64
}

fn live(expire_at: Option<i64>, now: i64) -> bool {
    expire_at.is_none_or(|e| e > now)
}

/// Runs `f` in a write transaction (joining one open on this thread), then writes out
/// pending hit/miss counts in the same transaction.
///
/// The outermost level also takes the references of value files whose rows are gone out
/// of the trash table; their files are removed once the transaction has committed.
fn atomic<R>(inner: &Inner, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    let mut trash = Vec::new();
    let out = inner.table.atomic(|| {
        inner.table.with_connection(|c| {
            let out = f(c)?;
            flush_stats(inner, c)?;
            if inner.table.depth() == 1 {
                trash = take_trash(inner, c)?;
            }
            Ok(out)
        })
    })?;
    for reference in &trash {
        inner.files.remove(reference);
    }
    Ok(out)
}

/// Empties the trash table (in the caller's transaction); returns the references.
fn take_trash(inner: &Inner, c: &Connection) -> Result<Vec<String>> {
    let any = held(inner, c, stmt::ANY_TRASH, &inner.sql.any_trash, |st| {
        Ok(st.raw_query().next()?.is_some())
    })?;
    if !any {
        return Ok(Vec::new());
    }
    held(inner, c, stmt::TAKE_TRASH, &inner.sql.take_trash, |st| {
        let mut out = Vec::new();
        let mut rows = st.raw_query();
        while let Some(r) = rows.next()? {
            out.push(r.get::<_, String>(0)?);
        }
        Ok(out)
    })
}

/// Hands `row` to `f`, with the value kept in a file (`file`: its reference) read in;
/// `Ok(None)` when that file is missing or incomplete (the entry reads as absent).
fn read_row<T>(
    inner: &Inner,
    row: Row<'_>,
    file: Option<String>,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(reference) = file else {
        return f(&row).map(Some);
    };
    let bad = |message: String| Error::Decode {
        column: "_file".into(),
        message,
    };
    let r = FileRef::parse(&reference)
        .filter(|r| r.column < inner.width)
        .ok_or_else(|| bad(format!("not a value file reference: {reference:?}")))?;
    let Some(bytes) = inner.files.read(&r)? else {
        return Ok(None);
    };
    let value = match row.value(r.column)? {
        ValueRef::Text(_) => ValueRef::Text(
            std::str::from_utf8(&bytes)
                .map_err(|e| bad(format!("the text in {:?} is not UTF-8: {e}", r.path)))?,
        ),
        _ => ValueRef::Blob(&bytes),
    };
    f(&row.with_value(r.column, value)).map(Some)
}

/// For [`CacheTable::get_deferred`]: hands `row` and its value file (not read) to `f`.
fn defer_row<T>(
    inner: &Inner,
    row: Row<'_>,
    file: Option<String>,
    f: impl FnOnce(&Row<'_>, Option<&ValueFile>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(reference) = file else {
        return f(&row, None).map(Some);
    };
    let r = parse_reference(inner, &reference)?;
    let vf = ValueFile {
        path: inner.files.path_of(&r),
        len: r.len,
        column: r.column,
        text: matches!(row.value(r.column)?, ValueRef::Text(_)),
    };
    let load = || -> Result<Value> {
        let mut buf = vec![0u8; vf.len()];
        if !vf.read_into(&mut buf)? {
            return Err(Error::Decode {
                column: "_file".into(),
                message: format!("the value file {:?} is gone", vf.path),
            });
        }
        Ok(if vf.text {
            Value::Text(String::from_utf8(buf).map_err(|e| Error::Decode {
                column: "_file".into(),
                message: format!("the text in {:?} is not UTF-8: {e}", vf.path),
            })?)
        } else {
            Value::Blob(buf)
        })
    };
    f(&row.with_lazy_value(r.column, &load), Some(&vf)).map(Some)
}

fn parse_reference<'s>(inner: &Inner, reference: &'s str) -> Result<FileRef<'s>> {
    FileRef::parse(reference)
        .filter(|r| r.column < inner.width)
        .ok_or_else(|| Error::Decode {
            column: "_file".into(),
            message: format!("not a value file reference: {reference:?}"),
        })
}

/// A cache value kept in a file of its own, not read yet (see
/// [`CacheTable::get_deferred`]).
#[derive(Clone, Debug)]
pub struct ValueFile {
    path: PathBuf,
    len: u64,
    column: usize,
    text: bool,
}

impl ValueFile {
    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        usize::try_from(self.len).unwrap_or(usize::MAX)
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value column it belongs to.
    pub fn column(&self) -> usize {
        self.column
    }

    /// True when the value is text (UTF-8 in the file), false for a blob.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Reads the value into `buf` (of its length). False when the file is gone or not
    /// that long: the entry was removed meanwhile (read it as a miss).
    ///
    /// # Errors
    /// [`Error::Usage`] for a buffer of another length; file-system errors.
    pub fn read_into(&self, buf: &mut [u8]) -> Result<bool> {
        use std::io::Read;
        if buf.len() as u64 != self.len {
            return Err(Error::Usage(format!(
                "a buffer of {} bytes for a value of {}",
                buf.len(),
                self.len
            )));
        }
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(Error::Io {
                    path: self.path.clone(),
                    source: e,
                });
            }
        };
        let io = |e: std::io::Error| Error::Io {
            path: self.path.clone(),
            source: e,
        };
        if f.metadata().map_err(io)?.len() != self.len {
            return Ok(false);
        }
        f.read_exact(buf).map_err(io)?;
        Ok(true)
    }
}

/// As [`read_row`], but the file is only read if `f` asks for its column (iterating over
/// keys reads no value file); an entry whose file is missing is skipped all the same.
fn read_row_lazily<T>(
    inner: &Inner,
    row: Row<'_>,
    file: Option<String>,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(reference) = file else {
        return f(&row).map(Some);
    };
    let r = FileRef::parse(&reference)
        .filter(|r| r.column < inner.width)
        .ok_or_else(|| Error::Decode {
            column: "_file".into(),
            message: format!("not a value file reference: {reference:?}"),
        })?;
    if !inner.files.intact(&r) {
        return Ok(None);
    }
    let text = matches!(row.value(r.column)?, ValueRef::Text(_));
    let load = || -> Result<Value> {
        let gone = || Error::Decode {
            column: "_file".into(),
            message: format!("the value file {:?} is gone", r.path),
        };
        let bytes = inner.files.read(&r)?.ok_or_else(gone)?;
        Ok(if text {
            Value::Text(String::from_utf8(bytes).map_err(|e| Error::Decode {
                column: "_file".into(),
                message: format!("the text in {:?} is not UTF-8: {e}", r.path),
            })?)
        } else {
            Value::Blob(bytes)
        })
    };
    f(&row.with_lazy_value(r.column, &load)).map(Some)
}

fn flush_stats(inner: &Inner, c: &Connection) -> Result<()> {
    let pending = &inner.stats;
    if pending.is_empty() {
        return Ok(());
    }
    let s = pending.take();
    let r = held(inner, c, stmt::ADD_STATS, &inner.sql.add_stats, |st| {
        st.execute(rusqlite::params![
            inner.name,
            s.hits as i64,
            s.misses as i64
        ])?;
        Ok(())
    });
    if r.is_err() {
        pending.restore(s);
    }
    r
}

impl CacheTable {
    /// Opens (creating or migrating) the cache table, its indexes, triggers and
    /// metadata row.
    ///
    /// # Errors
    /// [`Error::Usage`] when a value column uses a name the cache reserves (`_expire_at`,
    /// `_size`, `_tag`, `_order`, `_hits`); otherwise as [`Table::open`].
    pub fn open(options: CacheOptions) -> Result<CacheTable> {
        if let Some(c) = options
            .columns
            .iter()
            .find(|c| CACHE_COLUMNS.iter().any(|r| c.name.eq_ignore_ascii_case(r)))
        {
            return Err(Error::Usage(format!(
                "value column {:?} clashes with a column the cache reserves",
                c.name
            )));
        }
        check_names(&options)?;
        let width = options.columns.len();
        let value_names: Vec<String> = options.columns.iter().map(|c| c.name.clone()).collect();
        let mut columns = options.columns;
        let zero = Some(Value::Integer(0));
        columns.extend([
            Column::new("_expire_at", ColumnType::Integer, true, None),
            Column::new("_size", ColumnType::Integer, false, zero.clone()),
            Column::new("_tag", ColumnType::Blob, true, None),
            Column::new("_order", ColumnType::Integer, false, zero.clone()),
            Column::new("_hits", ColumnType::Integer, false, zero),
            Column::new("_file", ColumnType::Text, true, None),
        ]);
        let spec = TableSpec {
            name: options.table.clone(),
            // BLOB keys: any key type, and a rowid apart from the key (store order).
            key_type: ColumnType::Blob,
            columns,
        };
        let mut table_options = TableOptions::new(options.path, spec);
        table_options.timeout = options.timeout;
        table_options.pragmas = options.pragmas;
        let table = Table::open(table_options)?;
        let sql = CacheSql::new(&options.table, &value_names, options.policy)?;
        let synchronous: i64 =
            table.with_connection(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))?;
        let files = ValueFiles::new(
            table.path(),
            &options.table,
            options.file_threshold,
            synchronous != 0,
        );
        let inner = Inner {
            table,
            sql,
            name: options.table,
            width,
            default_ttl: options.default_ttl,
            size_limit: options.size_limit,
            count_limit: options.count_limit,
            policy: options.policy,
            clock: options.clock,
            stats: Pending::default(),
            stats_on: AtomicBool::new(options.stats),
            files,
        };
        atomic(&inner, |c| {
            c.execute_batch(&inner.sql.setup)?;
            c.execute(&inner.sql.meta_init, [&inner.name])?;
            Ok(())
        })?;
        Ok(CacheTable {
            inner: Arc::new(inner),
        })
    }

    /// The store table underneath (for transactions, `check`, `vacuum`, raw SQL).
    pub fn table(&self) -> &Table {
        &self.inner.table
    }

    /// The eviction policy.
    pub fn policy(&self) -> EvictionPolicy {
        self.inner.policy
    }

    /// The default time to live.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// The byte limit.
    pub fn size_limit(&self) -> Option<u64> {
        self.inner.size_limit
    }

    /// The entry-count limit.
    pub fn count_limit(&self) -> Option<u64> {
        self.inner.count_limit
    }

    /// Whether lookups count hits and misses.
    pub fn stats_enabled(&self) -> bool {
        self.inner.stats_on.load(Ordering::Relaxed)
    }

    /// Turns hit/miss counting on or off for this handle (and its clones).
    pub fn set_stats_enabled(&self, on: bool) {
        self.inner.stats_on.store(on, Ordering::Relaxed);
    }

    /// How many value columns an entry has.
    pub fn width(&self) -> usize {
        self.inner.width
    }

    /// The clock's time as stored: microseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        micros(self.inner.clock.now())
    }

    /// When an entry written now with `ttl` expires (microseconds since the Unix
    /// epoch), or `None` for never.
    pub fn expire_at(&self, ttl: Ttl, now: i64) -> Option<i64> {
        let d = match ttl {
            Ttl::Never => return None,
            Ttl::Default => self.inner.default_ttl?,
            Ttl::After(d) => d,
        };
        now.checked_add(i64::try_from(d.as_micros()).ok()?)
    }

    fn atomic<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        atomic(&self.inner, f)
    }

    /// Runs a write made of one statement: on its own (autocommitted, or inside this
    /// thread's open transaction) unless hit/miss counts are pending, which [`atomic`]
    /// then writes out in the same transaction.
    fn single<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        if self.inner.stats.is_empty() {
            self.inner.table.write_with(f)
        } else {
            self.atomic(f)
        }
    }

    fn count(&self, hit: bool) {
        if self.inner.stats_on.load(Ordering::Relaxed) && self.inner.stats.count(hit) {
            // Enough counted in memory: write them out now (best effort; on failure the
            // counts stay pending).
            let _ = self.atomic(|_| Ok(()));
        }
    }

    /// Looks up the live entry of `key` and hands its row (`_key`, the value columns) to
    /// `f`. Counts a hit or a miss; under LRU and LFU a hit is also recorded in the file.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a NaN key; errors from `f`; file and lock errors.
    pub fn get<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let out = self.lookup(key, f)?;
        self.count(out.is_some());
        Ok(out)
    }

    /// As [`CacheTable::get`] without counting a hit or miss.
    ///
    /// # Errors
    /// As [`CacheTable::get`].
    pub fn lookup<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        self.lookup_by(key, |inner, row, file| read_row(inner, row, file, f))
    }

    /// As [`CacheTable::get`], but a value kept in a file of its own is not read: `f` gets
    /// the row and that file (which it may read into a buffer of its own, for example a
    /// Python object made at the value's size); reading that column of the row reads the
    /// file. Counts a hit when the row is found, even if the file turns out to be gone.
    ///
    /// # Errors
    /// As [`CacheTable::get`].
    pub fn get_deferred<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>, Option<&ValueFile>) -> Result<T>,
    ) -> Result<Option<T>> {
        let out = self.lookup_by(key, |inner, row, file| defer_row(inner, row, file, f))?;
        self.count(out.is_some());
        Ok(out)
    }

    fn lookup_by<T>(
        &self,
        key: KeyRef<'_>,
        read: impl for<'r> FnOnce(&Inner, Row<'r>, Option<String>) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let f = read;
        let inner = &*self.inner;
        let key = key.checked()?;
        let now = self.now();
        let width = inner.width;
        if inner.policy.tracks_reads() {
            return self.atomic(|c| {
                let (id, sql, order) = if inner.policy == EvictionPolicy::LeastRecentlyUsed {
                    (
                        stmt::GET_LRU,
                        &inner.sql.get_lru,
                        Some(next_order(inner, c)?),
                    )
                } else {
                    (stmt::GET_LFU, &inner.sql.get_lfu, None)
                };
                held(inner, c, id, sql, |st| {
                    if let Some(order) = order {
                        st.raw_bind_parameter(3, order)?;
                    }
                    st.bind(1, key)?;
                    st.raw_bind_parameter(2, now)?;
                    let found = first_row(st, |r| {
                        let file = r.get(width + 2)?;
                        f(inner, Row::new(r, width), file)
                    })?;
                    Ok(found.flatten())
                })
            });
        }
        inner.table.with_lookup(|c| {
            held(inner, c, stmt::GET, &inner.sql.get, |st| {
                st.bind(1, key)?;
                let mut rows = st.raw_query();
                match rows.next()? {
                    Some(r) if live(r.get(width + 1)?, now) => {
                        let file = r.get(width + 2)?;
                        f(inner, Row::new(r, width), file)
                    }
                    _ => Ok(None),
                }
            })
        })
    }

    /// True if `key` has a live entry (counts nothing, records no use).
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; file and lock errors.
    pub fn contains(&self, key: KeyRef<'_>) -> Result<bool> {
        let key = key.checked()?;
        let now = self.now();
        self.inner.table.with_lookup(|c| {
            let inner = &*self.inner;
            held(inner, c, stmt::CONTAINS, &inner.sql.contains, |st| {
                st.raw_bind_parameter(1, now)?;
                st.bind(2, key)?;
                Ok(st.raw_query().next()?.is_some())
            })
        })
    }

    /// Stores an entry, replacing any old one (which then counts as newly stored).
    ///
    /// # Errors
    /// [`Error::Full`] when the entry alone exceeds the size limit, or the policy is
    /// [`EvictionPolicy::None`] and the cache has no room; [`Error::InvalidKey`]; write
    /// errors.
    pub fn set(
        &self,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
        ttl: Ttl,
        tag: Option<KeyRef<'_>>,
    ) -> Result<()> {
        let key = key_checked(key)?;
        let size = self.fits(key, values)?;
        let now = self.now();
        let expire = self.expire_at(ttl, now);
        let spilled = self.spill(values)?;
        let (values, file) = spilled.as_parts(values);
        let result = self.atomic(|c| {
            self.room_without_eviction(c, now, key, size)?;
            // New keys (the common case) take one statement; an existing key is deleted
            // and inserted again, so that rowid order stays store order.
            let stored = Stored {
                expire,
                size,
                tag,
                file,
            };
            let rowid = match self.insert_row(c, key, values, stored, true)? {
                Some(rowid) => rowid,
                None => {
                    let inner = &*self.inner;
                    held(inner, c, stmt::DELETE, &inner.sql.delete, |st| {
                        st.bind(1, key.checked()?)?;
                        first_row(st, |_| Ok(()))
                    })?;
                    self.insert_row(c, key, values, stored, false)?
                        .ok_or_else(|| Error::Usage("the replaced entry came back".into()))?
                }
            };
            self.maintain(c, now, rowid)
        });
        spilled.settle(&self.inner.files, result.as_ref().is_ok());
        result
    }

    /// Stores an entry only if `key` has no live one (an expired one is replaced);
    /// returns whether it was stored. Atomic across threads and processes.
    ///
    /// # Errors
    /// As [`CacheTable::set`].
    pub fn add(
        &self,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
        ttl: Ttl,
        tag: Option<KeyRef<'_>>,
    ) -> Result<bool> {
        let key = key_checked(key)?;
        let size = self.fits(key, values)?;
        let now = self.now();
        let expire = self.expire_at(ttl, now);
        let spilled = self.spill(values)?;
        let (values, file) = spilled.as_parts(values);
        let result = self.atomic(|c| {
            let k = key.checked()?;
            self.delete_if_expired(c, k, now)?;
            self.room_without_eviction(c, now, key, size)?;
            let stored = Stored {
                expire,
                size,
                tag,
                file,
            };
            match self.insert_row(c, key, values, stored, true)? {
                Some(rowid) => {
                    self.maintain(c, now, rowid)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        });
        spilled.settle(&self.inner.files, matches!(result, Ok(true)));
        result
    }

    /// Deletes the entry of `key`; returns whether a live one was deleted (an expired
    /// one is deleted too, but reported as absent).
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; write errors.
    pub fn delete(&self, key: KeyRef<'_>) -> Result<bool> {
        let key = key.checked()?;
        let now = self.now();
        // One statement (its trigger keeps the totals in step), so it needs no explicit
        // transaction; and a delete never grows the cache, so it skips the purge.
        let found = self.single(|c| {
            let inner = &*self.inner;
            held(inner, c, stmt::DELETE, &inner.sql.delete, |st| {
                st.bind(1, key)?;
                first_row(st, |r| {
                    Ok((
                        live(r.get(0)?, now),
                        r.get::<_, Option<String>>(1)?.is_some(),
                    ))
                })
            })
        })?;
        if found.is_some_and(|(_, file)| file) && self.inner.table.depth() == 0 {
            // The row is gone for good: remove its file now (through the trash table,
            // as any other deletion).
            self.sweep_files()?;
        }
        Ok(found.is_some_and(|(live, _)| live))
    }

    /// Removes the files of value-file entries whose deletion has committed (by any
    /// process, or raw SQL), unless a transaction is open on this thread (its commit
    /// decides); returns how many. Cache writes do this by themselves.
    ///
    /// # Errors
    /// Write errors.
    pub fn sweep_files(&self) -> Result<u64> {
        let inner = &*self.inner;
        if inner.table.depth() > 0 {
            return Ok(0);
        }
        // A read first: most calls find nothing to do, and a read takes no write lock.
        let any = inner.table.with_connection(|c| {
            held(inner, c, stmt::ANY_TRASH, &inner.sql.any_trash, |st| {
                Ok(st.raw_query().next()?.is_some())
            })
        })?;
        if !any {
            return Ok(0);
        }
        let mut n = 0;
        self.atomic(|c| {
            n = c.query_row(
                &format!(
                    "SELECT count(*) FROM {}",
                    crate::schema::quote_ident(TRASH_TABLE)?
                ),
                [],
                |r| r.get::<_, i64>(0),
            )?;
            Ok(())
        })?;
        Ok(n.max(0) as u64)
    }

    /// Hands the live entry of `key` to `f`, then deletes it (an expired entry is deleted
    /// too, and reported as absent).
    ///
    /// `f` runs before anything is deleted, inside the same write transaction: when it
    /// fails (a value that cannot be decoded), the entry stays, even when this call joined
    /// a transaction that goes on to commit.
    ///
    /// # Errors
    /// As [`CacheTable::delete`]; errors from `f` (nothing is deleted then).
    pub fn pop<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let key = key.checked()?;
        let now = self.now();
        let width = self.inner.width;
        self.atomic(|c| {
            let inner = &*self.inner;
            // None: no row; Some(None): an expired row; Some(Some(_)): the live value.
            let found = held(inner, c, stmt::GET, &inner.sql.get, |st| {
                st.bind(1, key)?;
                let mut rows = st.raw_query();
                match rows.next()? {
                    Some(r) if live(r.get(width + 1)?, now) => {
                        let file = r.get(width + 2)?;
                        read_row(inner, Row::new(r, width), file, f).map(Some)
                    }
                    Some(_) => Ok(Some(None)),
                    None => Ok(None),
                }
            })?;
            let Some(out) = found else {
                return Ok(None);
            };
            held(inner, c, stmt::DELETE, &inner.sql.delete, |st| {
                st.bind(1, key)?;
                first_row(st, |_| Ok(()))
            })?;
            self.purge_some(c, now)?;
            Ok(out)
        })
    }

    /// Gives the live entry of `key` a new expiry; returns whether there was one.
    ///
    /// # Errors
    /// As [`CacheTable::delete`].
    pub fn touch(&self, key: KeyRef<'_>, ttl: Ttl) -> Result<bool> {
        self.touch_with(key, ttl, stmt::TOUCH, &self.inner.sql.touch)
    }

    /// Gives the entry of `key` a new expiry, also when it has expired but is still stored
    /// (diskstore 0.1.0's `touch`, which makes such an entry readable again); returns
    /// whether there was one.
    ///
    /// # Errors
    /// As [`CacheTable::delete`].
    pub fn touch_stored(&self, key: KeyRef<'_>, ttl: Ttl) -> Result<bool> {
        self.touch_with(key, ttl, stmt::TOUCH_STORED, &self.inner.sql.touch_stored)
    }

    fn touch_with(&self, key: KeyRef<'_>, ttl: Ttl, id: usize, sql: &str) -> Result<bool> {
        let key = key.checked()?;
        let now = self.now();
        let expire = self.expire_at(ttl, now);
        self.atomic(|c| {
            let inner = &*self.inner;
            let n = held(inner, c, id, sql, |st| {
                Ok(st.execute(rusqlite::params![key, now, expire])?)
            })?;
            self.purge_some(c, now)?;
            Ok(n == 1)
        })
    }

    /// Adds `delta` to the integer in the first value column of `key`'s entry and returns
    /// the result; an absent or expired entry starts from `default` and is written with
    /// `ttl`, and with `rest` as its other value columns (one cell per column after the
    /// first). Atomic across threads and processes. An existing entry keeps its expiry.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when the stored value is not an integer or the sum
    /// overflows (see [`CacheTable::try_incr`] to tell these apart by type);
    /// [`Error::Usage`] when `rest` does not fill the other columns; as
    /// [`CacheTable::set`].
    pub fn incr(
        &self,
        key: KeyRef<'_>,
        delta: i64,
        default: i64,
        ttl: Ttl,
        rest: &[Cell<'_>],
    ) -> Result<i64> {
        self.try_incr(key, delta, default, ttl, rest)?
            .map_err(|refusal| Error::InvalidValue(refusal.to_string()))
    }

    /// As [`CacheTable::incr`], but an entry that cannot be incremented is an
    /// [`IncrRefusal`] (the inner `Err`) instead of an error: nothing is written then.
    ///
    /// # Errors
    /// [`Error::Usage`] when `rest` does not fill the other columns; as
    /// [`CacheTable::set`].
    pub fn try_incr(
        &self,
        key: KeyRef<'_>,
        delta: i64,
        default: i64,
        ttl: Ttl,
        rest: &[Cell<'_>],
    ) -> Result<std::result::Result<i64, IncrRefusal>> {
        let key = key_checked(key)?;
        let k = key.checked()?;
        let now = self.now();
        let expire = self.expire_at(ttl, now);
        self.atomic(|c| {
            let inner = &*self.inner;
            let current = held(inner, c, stmt::FIRST_VALUE, &inner.sql.first_value, |st| {
                Ok(st.query_row([k], |r| {
                    Ok((
                        r.get::<_, rusqlite::types::Value>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                    ))
                }))
            })?;
            let current = match current {
                Ok(row) => Some(row),
                Err(rusqlite::Error::QueryReturnedNoRows) => None,
                Err(e) => return Err(e.into()),
            };
            match current {
                Some((value, expire_at)) if live(expire_at, now) => {
                    let old = match value {
                        rusqlite::types::Value::Integer(old) => old,
                        other => {
                            let found = match other {
                                rusqlite::types::Value::Null => None,
                                rusqlite::types::Value::Real(_) => Some(ColumnType::Real),
                                rusqlite::types::Value::Text(_) => Some(ColumnType::Text),
                                _ => Some(ColumnType::Blob),
                            };
                            return Ok(Err(IncrRefusal::NotAnInteger(found)));
                        }
                    };
                    let Some(new) = old.checked_add(delta) else {
                        return Ok(Err(IncrRefusal::Overflow));
                    };
                    held(
                        inner,
                        c,
                        stmt::SET_FIRST_VALUE,
                        &inner.sql.set_first_value,
                        |st| Ok(st.execute(rusqlite::params![k, new])?),
                    )?;
                    self.purge_some(c, now)?;
                    Ok(Ok(new))
                }
                expired => {
                    let Some(new) = default.checked_add(delta) else {
                        return Ok(Err(IncrRefusal::Overflow));
                    };
                    if expired.is_some() {
                        self.delete_if_expired(c, k, now)?;
                    }
                    let mut cells = Vec::with_capacity(rest.len() + 1);
                    cells.push(Cell::Borrowed(ValueRef::Integer(new)));
                    cells.extend(rest.iter().cloned());
                    let size = self.fits(key, &cells)?;
                    self.room_without_eviction(c, now, key, size)?;
                    let rowid = self
                        .insert_row(
                            c,
                            key,
                            &cells,
                            Stored {
                                expire,
                                size,
                                tag: None,
                                file: None,
                            },
                            false,
                        )?
                        .ok_or_else(|| Error::Usage("the counter was not inserted".into()))?;
                    self.maintain(c, now, rowid)?;
                    Ok(Ok(new))
                }
            }
        })
    }

    /// Deletes every expired entry; returns how many (in batches of 1000 per transaction).
    ///
    /// # Errors
    /// Write errors.
    pub fn expire(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let now = self.now();
            let n = self.atomic(|c| {
                Ok(c.prepare_cached(&self.inner.sql.purge_batch)?
                    .execute([now])?)
            })?;
            total += n as u64;
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Deletes every entry tagged `tag`; returns how many (in batches of 1000 per
    /// transaction).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a NaN tag; write errors.
    pub fn evict(&self, tag: KeyRef<'_>) -> Result<u64> {
        let tag = tag.checked()?;
        let mut total = 0;
        loop {
            let n = self.atomic(|c| {
                Ok(c.prepare_cached(&self.inner.sql.evict_tag)?
                    .execute([tag])?)
            })?;
            total += n as u64;
            if (n as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Deletes every entry (the byte total and count go to zero with them).
    ///
    /// # Errors
    /// Write errors.
    pub fn clear(&self) -> Result<()> {
        self.atomic(|c| Ok(c.execute_batch(&self.inner.sql.clear)?))
    }

    /// The number of live entries (the stored count minus the expired ones, counted on
    /// the expiry index, in one read transaction).
    ///
    /// # Errors
    /// File and lock errors.
    pub fn len(&self) -> Result<u64> {
        let now = self.now();
        let inner = &*self.inner;
        inner.table.read(|| {
            inner.table.with_connection(|c| {
                let (_, count, _) = meta(inner, c)?;
                let expired: i64 = c
                    .prepare_cached(&inner.sql.count_expired)?
                    .query_row([now], |r| r.get(0))?;
                Ok(count.saturating_sub(expired as u64))
            })
        })
    }

    /// True if there is no live entry.
    ///
    /// # Errors
    /// As [`CacheTable::len`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The accounted bytes of every stored entry (expired ones not yet purged included);
    /// see [`entry_size`]. Never above the size limit after a write returns.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn volume(&self) -> Result<u64> {
        self.inner
            .table
            .with_connection(|c| Ok(meta(&self.inner, c)?.0))
    }

    /// The hits and misses of every process since the last reset (this handle's
    /// in-memory counts are written out first).
    ///
    /// # Errors
    /// Write errors (writing out the pending counts).
    pub fn stats(&self) -> Result<Stats> {
        self.atomic(|c| {
            flush_stats(&self.inner, c)?;
            Ok(meta(&self.inner, c)?.2)
        })
    }

    /// Zeroes the hit and miss counters of the file (and this handle's pending counts);
    /// returns the counts before the reset.
    ///
    /// # Errors
    /// Write errors.
    pub fn reset_stats(&self) -> Result<Stats> {
        self.atomic(|c| {
            flush_stats(&self.inner, c)?;
            let before = meta(&self.inner, c)?.2;
            c.prepare_cached(&self.inner.sql.reset_stats)?
                .execute([&self.inner.name])?;
            Ok(before)
        })
    }

    /// Reads up to [`SCAN_PAGE`](super::SCAN_PAGE) live entries with rowids in `from..=to`, in store order
    /// (or reversed); `f` gets each rowid and row. Returns how many rows were read.
    ///
    /// # Errors
    /// File and lock errors; errors from `f`.
    pub fn scan(
        &self,
        from: i64,
        to: i64,
        direction: Direction,
        mut f: impl FnMut(i64, &Row<'_>) -> Result<()>,
    ) -> Result<usize> {
        let now = self.now();
        let width = self.inner.width;
        let sql = &self.inner.sql.scan[usize::from(direction == Direction::Reverse)];
        self.inner.table.with_connection(|c| {
            let mut st = c.prepare_cached(sql)?;
            st.raw_bind_parameter(1, from)?;
            st.raw_bind_parameter(2, to)?;
            st.raw_bind_parameter(3, now)?;
            let mut rows = st.raw_query();
            let mut n = 0;
            while let Some(r) = rows.next()? {
                let rowid: i64 = r.get(width + 2)?;
                let file = r.get(width + 3)?;
                // An entry whose value file is gone is skipped (but counted as read: the
                // pager knows a page's end by its count).
                read_row_lazily(&self.inner, Row::new(r, width), file, |row| f(rowid, row))?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Takes the compute lease on `key` for `hold` (by the clock) unless someone else
    /// holds an unexpired one; returns whether it was taken. Leases live in the file, so
    /// they work across processes; one left by a crashed holder runs out after `hold`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; write errors.
    pub fn try_lease(&self, key: KeyRef<'_>, hold: Duration) -> Result<bool> {
        let key = key.checked()?;
        let now = self.now();
        let until = now.saturating_add(i64::try_from(hold.as_micros()).unwrap_or(i64::MAX));
        let name = &self.inner.name;
        self.atomic(|c| {
            c.prepare_cached(&self.inner.sql.lease_clear)?
                .execute(rusqlite::params![name, key, now])?;
            let n = c
                .prepare_cached(&self.inner.sql.lease_take)?
                .execute(rusqlite::params![name, key, until])?;
            Ok(n == 1)
        })
    }

    /// Gives back a lease taken with [`CacheTable::try_lease`].
    ///
    /// # Errors
    /// As [`CacheTable::try_lease`].
    pub fn release_lease(&self, key: KeyRef<'_>) -> Result<()> {
        let key = key.checked()?;
        self.atomic(|c| {
            c.prepare_cached(&self.inner.sql.lease_release)?
                .execute(rusqlite::params![&self.inner.name, key])?;
            Ok(())
        })
    }

    /// Checks the value files against the table: entries whose file is missing or
    /// incomplete (they read as absent) and files no entry refers to (orphans, left by a
    /// write that died between its file and its row, or one rolled back inside a
    /// transaction). Returns a line per problem; empty when all is well.
    ///
    /// With `fix`, first removes the files of entries whose deletion has committed, then
    /// deletes the broken entries and removes orphans last written at least `orphan_age`
    /// ago (a younger one may belong to a write about to commit its row).
    ///
    /// # Errors
    /// File-system, file and lock errors.
    pub fn check_files(&self, fix: bool, orphan_age: Duration) -> Result<Vec<String>> {
        let inner = &*self.inner;
        if fix {
            self.sweep_files()?;
        }
        let (rows, trash) = inner.table.read(|| {
            inner.table.with_connection(|c| {
                let rows = c
                    .prepare(&inner.sql.files)?
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, rusqlite::types::Value>(0)?,
                            r.get::<_, String>(1)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let trash = c
                    .prepare(&inner.sql.trash)?
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((rows, trash))
            })
        })?;
        let mut problems = Vec::new();
        let mut known = std::collections::HashSet::new();
        let mut broken = Vec::new();
        for (key, reference) in &rows {
            match FileRef::parse(reference) {
                Some(r) if r.column < inner.width => {
                    known.insert(r.path.to_owned());
                    if !inner.files.intact(&r) {
                        problems.push(format!(
                            "entry {key:?}: value file {} is missing or incomplete",
                            r.path
                        ));
                        broken.push((key, reference));
                    }
                }
                _ => {
                    problems.push(format!(
                        "entry {key:?}: not a value file reference: {reference:?}"
                    ));
                    broken.push((key, reference));
                }
            }
        }
        known.extend(
            trash
                .iter()
                .filter_map(|t| FileRef::parse(t).map(|r| r.path.to_owned())),
        );
        for rel in inner.files.list()? {
            if known.contains(&rel) {
                continue;
            }
            problems.push(format!("orphan value file {rel}"));
            if fix && inner.files.age(&rel).is_some_and(|a| a >= orphan_age) {
                inner.files.remove_path(&rel)?;
            }
        }
        if fix && !broken.is_empty() {
            let sql = format!(
                "DELETE FROM {} WHERE _key = ?1 AND _file = ?2",
                crate::schema::quote_ident(&inner.name)?
            );
            self.atomic(|c| {
                let mut st = c.prepare(&sql)?;
                for (key, reference) in &broken {
                    st.execute(rusqlite::params![key, reference])?;
                }
                Ok(())
            })?;
        }
        Ok(problems)
    }

    /// Writes the value that goes to a file of its own, if one does (before the row, so
    /// that a row never points to a file not yet complete).
    fn spill<'v>(&self, values: &'v [Cell<'_>]) -> Result<Spilled<'v>> {
        let files = &self.inner.files;
        let Some(i) = files.pick(values) else {
            return Ok(Spilled {
                cells: None,
                reference: None,
            });
        };
        let (bytes, empty): (&[u8], ValueRef<'_>) = match values[i].as_ref() {
            ValueRef::Text(s) => (s.as_bytes(), ValueRef::Text("")),
            ValueRef::Blob(b) => (b, ValueRef::Blob(&[])),
            _ => unreachable!("only text and blobs are picked"),
        };
        let reference = files.write(i, bytes)?;
        let cells = values
            .iter()
            .enumerate()
            .map(|(j, c)| Cell::Borrowed(if j == i { empty } else { c.as_ref() }))
            .collect();
        Ok(Spilled {
            cells: Some(cells),
            reference: Some(reference),
        })
    }

    /// The entry's size, refusing one larger than the whole size limit.
    fn fits(&self, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<u64> {
        let size = entry_size(key, values);
        match self.inner.size_limit {
            Some(limit) if size > limit => Err(Error::Full(format!(
                "an entry of {size} bytes is larger than the cache's size limit of {limit} bytes"
            ))),
            _ => Ok(size),
        }
    }

    /// Under policy `None`, makes sure the entry fits before anything is written: purges
    /// expired entries if needed, else fails with [`Error::Full`].
    fn room_without_eviction(
        &self,
        c: &Connection,
        now: i64,
        key: KeyRef<'_>,
        size: u64,
    ) -> Result<()> {
        let inner = &*self.inner;
        if inner.policy != EvictionPolicy::None
            || (inner.size_limit.is_none() && inner.count_limit.is_none())
        {
            return Ok(());
        }
        loop {
            let (volume, count, _) = meta(inner, c)?;
            let old: Option<i64> = c
                .prepare_cached(&inner.sql.size_of)?
                .query([key.checked()?])?
                .next()?
                .map(|r| r.get(0))
                .transpose()?;
            let (old_size, old_count) = old.map_or((0, 0), |s| (s as u64, 1));
            let volume = volume - old_size + size;
            let count = count - old_count + 1;
            if !self.over(volume, count) {
                return Ok(());
            }
            if evict_step(c, &inner.sql.evict_expired, &[&now, &-1i64])?.is_none() {
                return Err(Error::Full(format!(
                    "the cache is full ({volume} bytes, {count} entries with this one) and \
                     its eviction policy is none"
                )));
            }
        }
    }

    fn over(&self, volume: u64, count: u64) -> bool {
        self.inner.size_limit.is_some_and(|l| volume > l)
            || self.inner.count_limit.is_some_and(|l| count > l)
    }

    fn order_for_store(&self, c: &Connection) -> Result<i64> {
        if self.inner.policy == EvictionPolicy::LeastRecentlyUsed {
            next_order(&self.inner, c)
        } else {
            Ok(0)
        }
    }

    fn insert_row(
        &self,
        c: &Connection,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
        meta: Stored<'_>,
        if_absent: bool,
    ) -> Result<Option<i64>> {
        let Stored {
            expire,
            size,
            tag,
            file,
        } = meta;
        let inner = &*self.inner;
        if values.len() != inner.width {
            return Err(Error::Usage(format!(
                "{} values given for {} value columns",
                values.len(),
                inner.width
            )));
        }
        let order = self.order_for_store(c)?;
        let (id, sql) = if if_absent {
            (stmt::INSERT_NEW, &inner.sql.insert_new)
        } else {
            (stmt::INSERT, &inner.sql.insert)
        };
        held(inner, c, id, sql, |st| {
            st.bind(1, key.checked()?)?;
            for (i, v) in values.iter().enumerate() {
                st.bind(i + 2, v.as_ref())?;
            }
            let n = inner.width + 2;
            st.raw_bind_parameter(n, expire)?;
            st.raw_bind_parameter(n + 1, size as i64)?;
            st.raw_bind_parameter(n + 2, tag.map(KeyRef::checked).transpose()?)?;
            st.raw_bind_parameter(n + 3, order)?;
            st.raw_bind_parameter(n + 4, file)?;
            Ok((st.raw_execute()? == 1).then(|| c.last_insert_rowid()))
        })
    }

    fn delete_if_expired(&self, c: &Connection, key: ValueRef<'_>, now: i64) -> Result<()> {
        let inner = &*self.inner;
        held(
            inner,
            c,
            stmt::DELETE_IF_EXPIRED,
            &inner.sql.delete_if_expired,
            |st| {
                st.execute(rusqlite::params![key, now])?;
                Ok(())
            },
        )
    }

    fn purge_some(&self, c: &Connection, now: i64) -> Result<()> {
        // A read probe first: a DELETE costs far more than a seek even when it deletes
        // nothing, and most writes find nothing expired.
        let inner = &*self.inner;
        let any = held(inner, c, stmt::ANY_EXPIRED, &inner.sql.any_expired, |st| {
            Ok(st.query([now])?.next()?.is_some())
        })?;
        if any {
            c.prepare_cached(&self.inner.sql.purge)?.execute([now])?;
        }
        Ok(())
    }

    /// After a write that may have grown the cache: purges a few expired entries, then
    /// evicts until both limits hold, never evicting the row just written (`keep`).
    fn maintain(&self, c: &Connection, now: i64, keep: i64) -> Result<()> {
        self.purge_some(c, now)?;
        let inner = &*self.inner;
        if inner.size_limit.is_none() && inner.count_limit.is_none() {
            return Ok(());
        }
        let (mut volume, mut count, _) = meta(inner, c)?;
        while self.over(volume, count) {
            let freed = match evict_step(c, &inner.sql.evict_expired, &[&now, &keep])? {
                Some(size) => size,
                None => match &inner.sql.evict_one {
                    Some(sql) => evict_step(c, sql, &[&keep])?.ok_or_else(|| {
                        Error::Full(format!(
                            "nothing left to evict, and the cache holds {volume} bytes in \
                             {count} entries"
                        ))
                    })?,
                    None => {
                        return Err(Error::Full(format!(
                            "the cache is full ({volume} bytes, {count} entries) and its \
                             eviction policy is none"
                        )));
                    }
                },
            };
            volume = volume.saturating_sub(freed);
            count = count.saturating_sub(1);
        }
        Ok(())
    }
}

/// Refuses, before anything is created, a cache whose table or internal objects would
/// clash with what the file already has under the same names (SQLite names are
/// case-insensitive): a user table named like another cache's index, or a cache named like
/// the shared bookkeeping tables. Without this the open would fail half-way with "there is
/// already a table named …" (or leave an empty table behind).
fn check_names(options: &CacheOptions) -> Result<()> {
    let name = options.table.as_str();
    for reserved in [META_TABLE, LEASE_TABLE, TRASH_TABLE] {
        if name.eq_ignore_ascii_case(reserved) {
            return Err(Error::Usage(format!(
                "the table name {reserved:?} is reserved for the cache's own bookkeeping; \
                 choose another table name"
            )));
        }
    }
    if !options.path.exists() {
        return Ok(());
    }
    // (kind, object name, the table it must belong to; None: any)
    let mut wanted: Vec<(&str, String, Option<&str>)> = vec![
        ("table", name.to_owned(), Some(name)),
        ("table", META_TABLE.to_owned(), None),
        ("table", LEASE_TABLE.to_owned(), None),
        ("table", TRASH_TABLE.to_owned(), None),
    ];
    wanted.extend(
        INDEX_SUFFIXES
            .iter()
            .map(|s| ("index", format!("{name}_{s}"), Some(name))),
    );
    wanted.extend(
        TRIGGER_SUFFIXES
            .iter()
            .map(|s| ("trigger", format!("{name}_cache_{s}"), Some(name))),
    );
    // Best effort: a file that cannot be read here gives its real error when opened.
    let Ok(found) = schema_objects(options) else {
        return Ok(());
    };
    for (kind, object, owner) in &wanted {
        let clash = found.iter().find(|(k, n, t)| {
            n.eq_ignore_ascii_case(object)
                && (k != kind || owner.is_some_and(|o| !t.eq_ignore_ascii_case(o)))
        });
        if let Some((k, n, t)) = clash {
            let what = if *kind == "table" && object == name {
                format!("the cache table {name:?}")
            } else {
                format!("the {kind} {object:?} that cache {name:?} needs")
            };
            let article = if k == "index" { "an" } else { "a" };
            let on = if k == "table" {
                String::new()
            } else {
                format!(" (on table {t:?})")
            };
            return Err(Error::Usage(format!(
                "the file already has {article} {k} named {n:?}{on}, which clashes with \
                 {what}; give one of the two another table name"
            )));
        }
    }
    Ok(())
}

/// `(type, name, tbl_name)` of every table, index and trigger in the file.
fn schema_objects(options: &CacheOptions) -> rusqlite::Result<Vec<(String, String, String)>> {
    let conn = Connection::open_with_flags(
        &options.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(options.timeout)?;
    let mut st = conn.prepare(
        "SELECT type, name, tbl_name FROM sqlite_master \
         WHERE type IN ('table', 'index', 'trigger', 'view')",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// A float key stored as an integer-valued REAL compares equal to the integer: fine. This
/// only refuses NaN early so that sizes are never computed for a key that cannot be stored.
fn key_checked(key: KeyRef<'_>) -> Result<KeyRef<'_>> {
    key.checked()?;
    Ok(key)
}

/// Deletes one victim; returns its size, or `None` when there was none.
fn evict_step(c: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Option<u64>> {
    let mut st = c.prepare_cached(sql)?;
    for (i, p) in params.iter().enumerate() {
        st.raw_bind_parameter(i + 1, p)?;
    }
    let mut rows = st.raw_query();
    let size = match rows.next()? {
        Some(r) => Some(r.get::<_, i64>(0)?.max(0) as u64),
        None => None,
    };
    while rows.next()?.is_some() {} // RETURNING statements finish their work when run out
    Ok(size)
}

fn next_order(inner: &Inner, c: &Connection) -> Result<i64> {
    held(inner, c, stmt::NEXT_ORDER, &inner.sql.next_order, |st| {
        Ok(st.query_row([&inner.name], |r| r.get(0))?)
    })
}

/// Runs `f` with the cache statement `id` (from [`stmt`]) kept prepared on `c`.
fn held<'k, R>(
    inner: &Inner,
    c: &Connection,
    id: usize,
    sql: &str,
    f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>,
) -> Result<R> {
    inner.table.held(c, id, sql, f)
}

/// `(volume, count, stats)` from the metadata row.
fn meta(inner: &Inner, c: &Connection) -> Result<(u64, u64, Stats)> {
    let row = held(inner, c, stmt::META_READ, &inner.sql.meta_read, |st| {
        Ok(st.query_row([&inner.name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        }))
    })?;
    let (v, n, h, m) = match row {
        Ok(row) => row,
        Err(rusqlite::Error::QueryReturnedNoRows) => {
            return Err(Error::Schema {
                table: inner.name.clone(),
                column: None,
                message: "the cache's metadata row is missing".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let u = |x: i64| x.max(0) as u64;
    Ok((
        u(v),
        u(n),
        Stats {
            hits: u(h),
            misses: u(m),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    fn open_cache(path: &std::path::Path, table: &str) -> Result<CacheTable> {
        let columns = vec![Column::new("value", ColumnType::Blob, false, None)];
        CacheTable::open(CacheOptions::new(path, table, columns))
    }

    fn blob(b: &[u8]) -> [Cell<'_>; 1] {
        [Cell::Borrowed(ValueRef::Blob(b))]
    }

    #[test]
    fn a_pop_whose_decoding_fails_deletes_nothing_even_inside_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_cache(&dir.path().join("c.db"), "c").unwrap();
        let k = KeyRef::Text("k");
        c.set(k, &blob(b"v"), Ttl::Never, None).unwrap();
        let refuse = |_: &Row<'_>| -> Result<()> { Err(Error::Usage("cannot decode".into())) };
        assert!(c.pop(k, refuse).is_err());
        assert!(c.contains(k).unwrap());
        // Joined to an outer transaction that commits: still there.
        c.table()
            .atomic(|| {
                assert!(c.pop(k, refuse).is_err());
                Ok(())
            })
            .unwrap();
        assert!(c.contains(k).unwrap());
        let got = c.pop(k, |r| Ok(r.value(0)?.to_owned())).unwrap();
        assert_eq!(got, Some(Value::Blob(b"v".to_vec())));
        assert!(!c.contains(k).unwrap());
        assert_eq!(c.pop(k, |_| Ok(())).unwrap(), None);
    }

    #[test]
    fn clashing_names_are_refused_before_anything_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        open_cache(&path, "Cache_expire_at").unwrap();
        let e = open_cache(&path, "Cache").err().expect("a clash");
        assert!(
            matches!(&e, Error::Usage(m) if m.contains("\"Cache_expire_at\"")),
            "{e}"
        );
        let other = dir.path().join("d.db");
        open_cache(&other, "Cache").unwrap();
        let e = open_cache(&other, "cache_EXPIRE_AT")
            .err()
            .expect("a clash");
        assert!(matches!(&e, Error::Usage(m) if m.contains("index")), "{e}");
        for reserved in [META_TABLE, LEASE_TABLE] {
            let e = open_cache(&other, reserved).err().expect("reserved");
            assert!(
                matches!(&e, Error::Usage(m) if m.contains("reserved")),
                "{e}"
            );
        }
        // Nothing was created by the refused opens; the first caches still work.
        let names: Vec<String> = open_cache(&other, "Cache")
            .unwrap()
            .table()
            .with_connection(|conn| {
                let mut st = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
                Ok(st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .unwrap();
        assert_eq!(
            names,
            ["Cache", "_cache_lease", "_cache_meta", "_cache_trash"]
        );
    }

    #[test]
    fn try_incr_tells_a_wrong_type_from_an_overflow_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_cache(&dir.path().join("c.db"), "c").unwrap();
        let (t, n) = (KeyRef::Text("t"), KeyRef::Text("n"));
        c.set(t, &[Cell::Borrowed(ValueRef::Text("x"))], Ttl::Never, None)
            .unwrap();
        let r = c.try_incr(t, 1, 0, Ttl::Never, &[]).unwrap();
        assert_eq!(r, Err(IncrRefusal::NotAnInteger(Some(ColumnType::Text))));
        assert_eq!(
            c.try_incr(n, i64::MAX, 0, Ttl::Never, &[]).unwrap(),
            Ok(i64::MAX)
        );
        assert_eq!(
            c.try_incr(n, 1, 0, Ttl::Never, &[]).unwrap(),
            Err(IncrRefusal::Overflow)
        );
        assert_eq!(
            c.try_incr(KeyRef::Int(1), 1, i64::MAX, Ttl::Never, &[])
                .unwrap(),
            Err(IncrRefusal::Overflow)
        );
        assert!(!c.contains(KeyRef::Int(1)).unwrap());
        assert_eq!(
            c.try_incr(n, -1, 0, Ttl::Never, &[]).unwrap(),
            Ok(i64::MAX - 1)
        );
        assert!(matches!(
            c.incr(t, 1, 0, Ttl::Never, &[]),
            Err(Error::InvalidValue(_))
        ));
    }

    /// SQLite re-prepares a statement on every new binding when its plan depended on a
    /// bound value; on the hot paths that would cost more than the statement itself.
    #[test]
    fn hot_statements_are_not_reprepared_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let columns = vec![Column::new("value", ColumnType::Blob, false, None)];
        for policy in [
            EvictionPolicy::LeastRecentlyStored,
            EvictionPolicy::LeastRecentlyUsed,
            EvictionPolicy::LeastFrequentlyUsed,
        ] {
            let mut o = CacheOptions::new(
                dir.path().join(format!("{policy}.db")),
                "c",
                columns.clone(),
            );
            o.policy = policy;
            o.size_limit = Some(10_000);
            let c = CacheTable::open(o).unwrap();
            let v = [Cell::Borrowed(ValueRef::Blob(&[1u8; 100]))];
            for i in 0..300i64 {
                let k = KeyRef::Int(i);
                c.set(
                    k,
                    &v,
                    Ttl::After(Duration::from_secs(60)),
                    Some(KeyRef::Text("t")),
                )
                .unwrap();
                c.get(k, |_| Ok(())).unwrap();
                c.touch(k, Ttl::Never).unwrap();
                c.add(k, &v, Ttl::Default, None).unwrap();
                if i % 3 == 0 {
                    c.delete(k).unwrap();
                }
                c.contains(k).unwrap();
                c.len().unwrap();
                c.scan(i, i64::MAX, Direction::Forward, |_, _| Ok(()))
                    .unwrap();
            }
            let sql = &c.inner.sql;
            // (id, name, text): statements held by id, then ones from the statement cache.
            let texts = [
                (Some(stmt::GET), "get", &sql.get),
                (Some(stmt::GET_LRU), "get_lru", &sql.get_lru),
                (Some(stmt::GET_LFU), "get_lfu", &sql.get_lfu),
                (Some(stmt::DELETE), "delete", &sql.delete),
                (Some(stmt::INSERT), "insert", &sql.insert),
                (None, "purge", &sql.purge),
                (Some(stmt::ANY_EXPIRED), "any_expired", &sql.any_expired),
                (Some(stmt::TOUCH), "touch", &sql.touch),
                (Some(stmt::CONTAINS), "contains", &sql.contains),
                (Some(stmt::INSERT_NEW), "insert_new", &sql.insert_new),
                (
                    Some(stmt::DELETE_IF_EXPIRED),
                    "delete_if_expired",
                    &sql.delete_if_expired,
                ),
                (Some(stmt::META_READ), "meta_read", &sql.meta_read),
                (None, "evict_expired", &sql.evict_expired),
                (None, "count_expired", &sql.count_expired),
                (None, "scan", &sql.scan[0]),
            ];
            let mut bad = Vec::new();
            c.table()
                .with_connection(|conn| {
                    for (id, name, text) in texts {
                        let (runs, re) = match id {
                            Some(id) => held(&c.inner, conn, id, text, |st| {
                                Ok((
                                    st.get_status(StatementStatus::Run),
                                    st.get_status(StatementStatus::RePrepare),
                                ))
                            })?,
                            None => {
                                let st = conn.prepare_cached(text)?;
                                (
                                    st.get_status(StatementStatus::Run),
                                    st.get_status(StatementStatus::RePrepare),
                                )
                            }
                        };
                        if re > 1 {
                            bad.push(format!(
                                "{policy}: {name} re-prepared {re} times in {runs} runs"
                            ));
                        }
                    }
                    if let Some(e) = &sql.evict_one {
                        let re = conn
                            .prepare_cached(e)?
                            .get_status(StatementStatus::RePrepare);
                        if re > 1 {
                            bad.push(format!("{policy}: evict_one re-prepared {re} times"));
                        }
                    }
                    Ok(())
                })
                .unwrap();
            assert!(bad.is_empty(), "{bad:#?}");
        }
    }
}
