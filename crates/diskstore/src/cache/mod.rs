//! [`DiskCache`]: a persistent, process-safe cache with per-entry expiry, a hard size
//! bound with eviction policies, tags and hit/miss statistics, on one SQLite table.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use diskstore::{DiskCache, EvictionPolicy, ManualClock};
//!
//! # fn main() -> diskstore::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
//! let cache: DiskCache<String, String> = DiskCache::builder(dir.path().join("c.db"))
//!     .default_ttl(Duration::from_secs(60))
//!     .size_limit(1 << 20)
//!     .eviction_policy(EvictionPolicy::LeastRecentlyUsed)
//!     .clock(clock.clone())
//!     .open()?;
//!
//! cache.set("greeting", &"hello".to_string(), None)?; // default TTL: 60 s
//! assert_eq!(cache.get("greeting")?.as_deref(), Some("hello"));
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(cache.get("greeting")?, None); // expired entries are never returned
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/cache.md` for the file layout, the size accounting and its tolerance, and
//! what each policy costs.

mod clock;
mod core;
mod files;
mod policy;
mod sql;
mod stats;

use std::borrow::Borrow;
use std::fmt::Display;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use self::clock::{Clock, ManualClock, SystemClock};
pub use self::core::{
    CACHE_PAGE_SIZE, CacheOptions, CacheTable, IncrRefusal, ValueFile, entry_size,
};
pub use self::files::DEFAULT_FILE_THRESHOLD;
#[doc(hidden)]
pub use self::files::{FileSystem, RealFileSystem, set_value_file_system};
pub use self::policy::{EvictionPolicy, Ttl};
pub use self::sql::{PURGE_PER_WRITE, SCAN_PAGE};
pub use self::stats::Stats;

use crate::error::{Error, Result};
use crate::key::{AsKey, Key};
use crate::record::{Record, Row};
use crate::store::{Iter, PageSource};
use crate::table::Direction;
use crate::transaction::Transaction;
use crate::value::Cell;

/// The table a cache uses unless the builder names another.
pub const DEFAULT_CACHE_TABLE: &str = "Cache";

/// A time to live that means forever: `cache.set(k, &v, Some(NEVER))` overrides a default TTL.
pub const NEVER: Duration = Duration::MAX;

/// Options for opening a cache; from [`DiskCache::builder`].
#[must_use]
pub struct CacheBuilder<K, V> {
    options: CacheOptions,
    lease: Option<Duration>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Key, V: Record> CacheBuilder<K, V> {
    /// The table name. Default: `"Cache"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.options.table = name.into();
        self
    }

    /// The time to live of entries written without one. Default: none (they live until
    /// evicted or deleted).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.options.default_ttl = Some(ttl);
        self
    }

    /// The most bytes of keys and values kept (see [`entry_size`]); every write
    /// returns with the total at or below it. Default: no limit.
    pub fn size_limit(mut self, bytes: u64) -> Self {
        self.options.size_limit = Some(bytes);
        self
    }

    /// The most entries kept. Default: no limit.
    pub fn count_limit(mut self, entries: u64) -> Self {
        self.options.count_limit = Some(entries);
        self
    }

    /// Which entries make room when a limit is reached. Default:
    /// [`EvictionPolicy::LeastRecentlyStored`].
    pub fn eviction_policy(mut self, policy: EvictionPolicy) -> Self {
        self.options.policy = policy;
        self
    }

    /// The time source for expiry. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.options.clock = Arc::new(clock);
        self
    }

    /// Whether [`DiskCache::get`] counts hits and misses (in memory, written out with
    /// later writes; see [`DiskCache::stats`]). Default: on.
    pub fn stats(mut self, on: bool) -> Self {
        self.options.stats = on;
        self
    }

    /// Stampede protection for [`DiskCache::get_or_insert_with`]: on a miss, one caller
    /// (in any thread or process) computes while the others wait for its result; a
    /// computation that has not finished after `hold` (by the cache's clock) is taken
    /// over. Default: off (every caller that misses computes).
    pub fn compute_lease(mut self, hold: Duration) -> Self {
        self.lease = Some(hold);
        self
    }

    /// Text and blob values of at least `bytes` go to a file of their own beside the
    /// database (`<file>-values/`); `None` keeps every value in the table. Default:
    /// [`DEFAULT_FILE_THRESHOLD`] (32 KiB). See `docs/cache.md`.
    pub fn file_threshold(mut self, bytes: Option<u64>) -> Self {
        self.options.file_threshold = bytes;
        self
    }

    /// How long a call waits for a lock before [`Error::Busy`]. Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Sets a pragma on every connection, over the store defaults. Defaults:
    /// `page_size` = [`CACHE_PAGE_SIZE`] (for a new file), `mmap_size` = 0 and
    /// `wal_autocheckpoint` = 1000.
    pub fn pragma(mut self, name: &str, value: impl Display) -> Self {
        self.options
            .pragmas
            .push((name.to_owned(), value.to_string()));
        self
    }

    /// Opens the cache, creating the file, table, indexes and triggers if needed.
    ///
    /// # Errors
    /// See [`CacheTable::open`].
    pub fn open(self) -> Result<DiskCache<K, V>> {
        Ok(DiskCache {
            core: CacheTable::open(self.options)?,
            lease: self.lease,
            _types: PhantomData,
        })
    }
}

/// A typed, persistent cache: keys `K` (see [`Key`]), values `V` (see [`Record`]).
///
/// Every entry may expire (a per-entry TTL or the cache's default); expired entries are
/// never returned, and are purged a few at a time by later writes (or all at once by
/// [`DiskCache::expire`]). With a `size_limit` or `count_limit`, each write evicts by the
/// [`EvictionPolicy`] so that the limits hold when it returns. A cheap handle: clone it
/// and use it from many threads; other processes may use the same file at the same time.
pub struct DiskCache<K, V> {
    core: CacheTable,
    lease: Option<Duration>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for DiskCache<K, V> {
    fn clone(&self) -> Self {
        DiskCache {
            core: self.core.clone(),
            lease: self.lease,
            _types: PhantomData,
        }
    }
}

fn cells<V: Record>(value: &V) -> Result<Vec<Cell<'_>>> {
    let mut out = Vec::with_capacity(2);
    value.write(&mut out)?;
    Ok(out)
}

fn decode_key<K: Key>(row: &Row<'_>) -> Result<K> {
    K::from_value(row.key()?).map_err(|message| Error::Decode {
        column: "_key".into(),
        message,
    })
}

fn decode_item<K: Key, V: Record>(row: &Row<'_>) -> Result<(K, V)> {
    Ok((decode_key(row)?, V::read(row)?))
}

impl<K: Key, V: Record> DiskCache<K, V> {
    /// Opens `path` with the defaults (no TTL, no limits).
    ///
    /// # Errors
    /// See [`CacheTable::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// A builder for the options; finish with [`CacheBuilder::open`].
    pub fn builder(path: impl AsRef<Path>) -> CacheBuilder<K, V> {
        let path: PathBuf = path.as_ref().to_owned();
        CacheBuilder {
            options: CacheOptions::new(path, V::TABLE.unwrap_or(DEFAULT_CACHE_TABLE), V::columns()),
            lease: None,
            _types: PhantomData,
        }
    }

    /// The type-erased engine underneath.
    pub fn cache_table(&self) -> &CacheTable {
        &self.core
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.core.table().path()
    }

    /// The live value of `key`, or `None` (absent or expired). Counts a hit or miss;
    /// under LRU/LFU a hit is also recorded in the file (a write).
    ///
    /// # Errors
    /// [`Error::Decode`] if the stored value does not fit `V`; file and lock errors.
    pub fn get<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        self.core.get(key.as_key(), V::read)
    }

    /// True if `key` has a live entry (not counted in the stats, not a use).
    ///
    /// # Errors
    /// File and lock errors.
    pub fn contains_key<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.core.contains(key.as_key())
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL; [`NEVER`]: forever),
    /// replacing any old entry; evicts as needed to stay within the limits.
    ///
    /// # Errors
    /// [`Error::Full`] when the entry alone exceeds the size limit, or the policy is
    /// [`EvictionPolicy::None`] and there is no room; [`Error::InvalidKey`],
    /// [`Error::InvalidValue`]; write errors.
    pub fn set<Q: AsKey + ?Sized>(&self, key: &Q, value: &V, ttl: Option<Duration>) -> Result<()>
    where
        K: Borrow<Q>,
    {
        self.core
            .set(key.as_key(), &cells(value)?, Ttl::from(ttl), None)
    }

    /// As [`DiskCache::set`], with a tag for [`DiskCache::evict`].
    ///
    /// # Errors
    /// As [`DiskCache::set`].
    pub fn set_tagged<Q: AsKey + ?Sized>(
        &self,
        key: &Q,
        value: &V,
        ttl: Option<Duration>,
        tag: &str,
    ) -> Result<()>
    where
        K: Borrow<Q>,
    {
        self.core.set(
            key.as_key(),
            &cells(value)?,
            Ttl::from(ttl),
            Some(crate::key::KeyRef::Text(tag)),
        )
    }

    /// Stores `value` only if `key` has no live entry; returns whether it was stored.
    /// Atomic across threads and processes.
    ///
    /// # Errors
    /// As [`DiskCache::set`].
    pub fn add<Q: AsKey + ?Sized>(&self, key: &Q, value: &V, ttl: Option<Duration>) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.core
            .add(key.as_key(), &cells(value)?, Ttl::from(ttl), None)
    }

    /// Deletes `key`; returns whether it had a live entry.
    ///
    /// # Errors
    /// Write errors.
    pub fn delete<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.core.delete(key.as_key())
    }

    /// Deletes `key` and returns its live value.
    ///
    /// # Errors
    /// Write errors; [`Error::Decode`] (nothing is deleted then).
    pub fn pop<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        self.core.pop(key.as_key(), V::read)
    }

    /// Gives the live entry of `key` a new TTL, counted from now (`None`: the default);
    /// returns whether there was one.
    ///
    /// # Errors
    /// Write errors.
    pub fn touch<Q: AsKey + ?Sized>(&self, key: &Q, ttl: Option<Duration>) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.core.touch(key.as_key(), Ttl::from(ttl))
    }

    /// The live value of `key`; on a miss, `compute`s it, stores it for `ttl` and returns
    /// it. With [`CacheBuilder::compute_lease`], concurrent misses on one key (threads or
    /// processes) compute it once: the others wait, polling the cache, for the result.
    ///
    /// # Errors
    /// Errors of `compute` (nothing is stored); cache errors converted into `E`.
    pub fn get_or_insert_with<Q, E, F>(
        &self,
        key: &Q,
        ttl: Option<Duration>,
        compute: F,
    ) -> std::result::Result<V, E>
    where
        Q: AsKey + ?Sized,
        K: Borrow<Q>,
        E: From<Error>,
        F: FnOnce() -> std::result::Result<V, E>,
    {
        if let Some(v) = self.get(key)? {
            return Ok(v);
        }
        let Some(hold) = self.lease else {
            let v = compute()?;
            self.set(key, &v, ttl)?;
            return Ok(v);
        };
        let k = key.as_key();
        let mut pause = Duration::from_millis(1);
        loop {
            if self.core.try_lease(k, hold)? {
                // Someone may have finished between our miss and our lease.
                let result = match self.core.lookup(k, V::read) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => compute().and_then(|v| {
                        self.set(key, &v, ttl)?;
                        Ok(v)
                    }),
                    Err(e) => Err(E::from(e)),
                };
                let released = self.core.release_lease(k);
                let v = result?;
                released?;
                return Ok(v);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
            if let Some(v) = self.core.lookup(k, V::read)? {
                return Ok(v);
            }
        }
    }

    /// Deletes every expired entry now; returns how many.
    ///
    /// # Errors
    /// Write errors.
    pub fn expire(&self) -> Result<u64> {
        self.core.expire()
    }

    /// Deletes every entry tagged `tag`; returns how many.
    ///
    /// # Errors
    /// Write errors.
    pub fn evict(&self, tag: &str) -> Result<u64> {
        self.core.evict(crate::key::KeyRef::Text(tag))
    }

    /// Deletes every entry.
    ///
    /// # Errors
    /// Write errors.
    pub fn clear(&self) -> Result<()> {
        self.core.clear()
    }

    /// The number of live entries.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn len(&self) -> Result<u64> {
        self.core.len()
    }

    /// True if there is no live entry.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn is_empty(&self) -> Result<bool> {
        self.core.is_empty()
    }

    /// The accounted bytes of the stored entries (see [`entry_size`]).
    ///
    /// # Errors
    /// File and lock errors.
    pub fn volume(&self) -> Result<u64> {
        self.core.volume()
    }

    /// Hits and misses of every process and handle since the last reset.
    ///
    /// # Errors
    /// Write errors (this handle's pending counts are written out first).
    pub fn stats(&self) -> Result<Stats> {
        self.core.stats()
    }

    /// Zeroes the hit and miss counters; returns the counts before.
    ///
    /// # Errors
    /// Write errors.
    pub fn reset_stats(&self) -> Result<Stats> {
        self.core.reset_stats()
    }

    /// Live entries in store order, oldest first (`.rev()` for newest first), read in
    /// pages of [`SCAN_PAGE`].
    pub fn iter(&self) -> CacheIter<(K, V)> {
        Iter::over(self.core.clone(), decode_item::<K, V>)
    }

    /// Live keys in store order.
    pub fn keys(&self) -> CacheIter<K> {
        Iter::over(self.core.clone(), decode_key::<K>)
    }

    /// SQLite's integrity check and the value files' (see [`DiskCache::check_files`]):
    /// empty when the file and its values are healthy.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the file is too damaged to check; file-system errors.
    pub fn check(&self) -> Result<Vec<String>> {
        let mut problems = self.core.table().check()?;
        problems.extend(self.core.check_files(false, Duration::ZERO)?);
        Ok(problems)
    }

    /// Checks the values kept in files of their own: entries whose file is missing (they
    /// read as absent) and files no entry refers to. With `fix`, deletes those entries
    /// and removes orphan files older than the timeout plus a minute (a younger one may
    /// belong to a write in progress). Returns a line per problem found.
    ///
    /// # Errors
    /// File-system, file and lock errors.
    pub fn check_files(&self, fix: bool) -> Result<Vec<String>> {
        let age = self.core.table().timeout() + Duration::from_secs(60);
        self.core.check_files(fix, age)
    }

    /// Starts a write transaction on this thread, or joins the open one: the cache calls
    /// made on this thread until it ends are all-or-nothing.
    ///
    /// # Errors
    /// [`Error::Busy`] if another writer holds the lock past the timeout.
    pub fn transaction(&self) -> Result<Transaction<'_>> {
        Transaction::begin(self.core.table())
    }
}

impl<K: Key> DiskCache<K, i64> {
    /// Adds `delta` to the counter at `key` and returns the new value; an absent or
    /// expired counter starts at `default` and gets the default TTL. Atomic across
    /// threads and processes.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] on overflow; write errors.
    pub fn incr<Q: AsKey + ?Sized>(&self, key: &Q, delta: i64, default: i64) -> Result<i64>
    where
        K: Borrow<Q>,
    {
        self.core
            .incr(key.as_key(), delta, default, Ttl::Default, &[])
    }

    /// Subtracts `delta`; see [`DiskCache::incr`].
    ///
    /// # Errors
    /// As [`DiskCache::incr`].
    pub fn decr<Q: AsKey + ?Sized>(&self, key: &Q, delta: i64, default: i64) -> Result<i64>
    where
        K: Borrow<Q>,
    {
        let delta = delta
            .checked_neg()
            .ok_or_else(|| Error::InvalidValue("integer overflow in decr".into()))?;
        self.core
            .incr(key.as_key(), delta, default, Ttl::Default, &[])
    }
}

/// An iterator over a cache's live entries in store order, in pages of [`SCAN_PAGE`]; from
/// [`DiskCache::iter`] and [`DiskCache::keys`].
pub type CacheIter<T> = Iter<T>;

impl PageSource for CacheTable {
    fn page(
        &self,
        from: i64,
        to: i64,
        direction: Direction,
        f: &mut dyn FnMut(i64, &Row<'_>) -> Result<()>,
    ) -> Result<usize> {
        self.scan(from, to, direction, f)
    }

    fn last_rowid(&self) -> Result<Option<i64>> {
        self.table().max_rowid()
    }
}

const _: () = assert!(
    SCAN_PAGE == crate::store::PAGE,
    "the iterator expects full pages"
);
