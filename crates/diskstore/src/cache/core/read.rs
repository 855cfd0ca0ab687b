//! Lookups: `get` (with its deferred and uncounted forms), `contains`, `len`, `volume`
//! and the page-wise scan behind iteration.

use crate::error::Result;
use crate::key::KeyRef;
use crate::record::Row;
use crate::table::{Direction, first_row};

use super::super::policy::EvictionPolicy;
use super::super::sql::stmt;
use super::value_files::{ValueFile, defer_row, read_row, read_row_lazily};
use super::{CacheTable, Inner, held, live, meta, next_order};

impl CacheTable {
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
        let mut broken = None;
        let out = self.lookup_by(key, |inner, row, file| {
            read_row(inner, row, file, &mut broken, f)
        })?;
        if let Some(reference) = broken {
            self.forget_broken(key, &reference)?;
        }
        Ok(out)
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

    pub(super) fn lookup_by<T>(
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
}
