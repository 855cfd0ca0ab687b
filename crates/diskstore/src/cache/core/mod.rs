//! The type-erased cache engine, [`CacheTable`]: a store [`Table`] plus expiry, size
//! accounting, eviction, tags, hit/miss counting and compute leases. The typed
//! [`DiskCache`](super::DiskCache) and the Python binding both sit on it.
//!
//! This module holds the options, the shared state and the transaction helpers; the
//! operations are split by what they do: `read` (lookups, `len`, scans), `write`
//! (single-entry writes), `evict` (purge and eviction), `value_files` (values kept in
//! files of their own), `lease` (compute leases) and `names` (name clashes at open).

mod evict;
mod lease;
mod names;
mod read;
#[cfg(test)]
mod tests;
mod value_files;
mod write;

pub use self::value_files::ValueFile;
pub use self::write::IncrRefusal;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::key::KeyRef;
use crate::pragma::DEFAULT_TIMEOUT;
use crate::record::Column;
use crate::schema::TableSpec;
use crate::statement::Prepared;
use crate::table::{Table, TableOptions};
use crate::value::{Cell, ColumnType, Value, ValueRef};

use super::clock::{Clock, SystemClock, micros};
use super::files::{DEFAULT_FILE_THRESHOLD, Durability, ValueFiles};
use super::policy::{EvictionPolicy, Ttl};
use super::sql::{CACHE_COLUMNS, CacheSql, IGNORE_MARK, stmt};
use super::stats::{Pending, Stats};

use self::names::check_names;
use self::value_files::take_trash;

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
    /// `mmap_size` = 0 and `wal_autocheckpoint` = 250, because the metadata page is
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
    /// every 50 pages of log by the background checkpointer (and by the writer at 500).
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
                // The engine's checkpointer: its thread at a fifth, a writer at twice.
                ("wal_autocheckpoint".into(), "250".into()),
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
    /// The rowid of the metadata row, as last seen (see [`meta_rowid`]).
    meta_rowid: AtomicI64,
    /// The name of each value column that is NOT NULL (`None`: nullable).
    not_null: Vec<Option<String>>,
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
        // Value files still being synced in the background: their rows may become
        // durable when the file's last connection closes (it checkpoints).
        self.files.wait_for_syncs(Duration::from_secs(60));
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
    atomic_then(inner, |c| Ok((f(c)?, Sweep::Look)))
}

/// Whether the outermost level of a write transaction must look into the trash table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    /// The write saw the trash table empty and deleted no row since: no need.
    Skip,
    /// Look (and take what is there).
    Look,
}

/// As [`atomic`], for a write `f` that tells whether the trash table needs a look.
fn atomic_then<R>(inner: &Inner, f: impl FnOnce(&Connection) -> Result<(R, Sweep)>) -> Result<R> {
    let mut trash = Vec::new();
    let out = inner.table.atomic(|| {
        inner.table.with_connection(|c| {
            let (out, sweep) = f(c)?;
            flush_stats(inner, c)?;
            if inner.table.depth() == 1 && sweep == Sweep::Look {
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

/// Replaces the triggers a version before `OR IGNORE` bodies created (same effect, but a
/// write that fires them needed a statement journal; see `sql.rs`).
fn upgrade_triggers(sql: &CacheSql, c: &Connection) -> Result<()> {
    let mut st = c.prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1")?;
    for (name, create) in &sql.triggers {
        let text: Option<String> = st.query([name])?.next()?.map(|r| r.get(0)).transpose()?;
        if text.is_some_and(|t| !t.to_ascii_uppercase().contains(IGNORE_MARK)) {
            c.execute_batch(&format!(
                "DROP TRIGGER {};\n{create};",
                crate::schema::quote_ident(name)?
            ))?;
        }
    }
    Ok(())
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

/// A float key stored as an integer-valued REAL compares equal to the integer: fine. This
/// only refuses NaN early so that sizes are never computed for a key that cannot be stored.
fn key_checked(key: KeyRef<'_>) -> Result<KeyRef<'_>> {
    key.checked()?;
    Ok(key)
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

/// Looks up (and remembers) the rowid of this cache's metadata row; `None` when the row
/// is missing.
fn meta_rowid(inner: &Inner, c: &Connection) -> Result<Option<i64>> {
    let id: Option<i64> = c
        .prepare_cached(&inner.sql.meta_rowid)?
        .query([&inner.name])?
        .next()?
        .map(|r| r.get(0))
        .transpose()?;
    if let Some(id) = id {
        inner.meta_rowid.store(id, Ordering::Relaxed);
    }
    Ok(id)
}

/// The error for a file whose metadata row of this cache is gone.
fn missing_meta(inner: &Inner) -> Error {
    Error::Schema {
        table: inner.name.clone(),
        column: None,
        message: "the cache's metadata row is missing".into(),
    }
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
        Err(rusqlite::Error::QueryReturnedNoRows) => return Err(missing_meta(inner)),
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
        let not_null = options
            .columns
            .iter()
            .map(|c| (!c.nullable).then(|| c.name.clone()))
            .collect();
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
            Durability::for_synchronous(synchronous),
        );
        let inner = Inner {
            table,
            sql,
            name: options.table,
            width,
            not_null,
            meta_rowid: AtomicI64::new(0),
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
            upgrade_triggers(&inner.sql, c)?;
            c.execute(&inner.sql.meta_init, [&inner.name])?;
            meta_rowid(&inner, c)?;
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

    fn atomic_then_sweep<R>(&self, f: impl FnOnce(&Connection) -> Result<(R, Sweep)>) -> Result<R> {
        atomic_then(&self.inner, f)
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
}
