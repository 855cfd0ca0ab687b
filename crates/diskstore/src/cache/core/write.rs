//! Writes of single entries: `set`, `add`, `delete`, `pop`, `touch`, `incr`, and the
//! row-level helpers they share.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::key::KeyRef;
use crate::record::Row;
use crate::table::first_row;
use crate::value::{Cell, ColumnType, ValueRef};

use super::super::policy::{EvictionPolicy, Ttl};
use super::super::sql::stmt;
use super::value_files::read_row;
use super::{CacheTable, Sweep, entry_size, held, key_checked, live, next_order};

/// The cache columns of a row being written.
#[derive(Clone, Copy)]
pub(super) struct Stored<'a> {
    expire: Option<i64>,
    size: u64,
    tag: Option<KeyRef<'a>>,
    /// The `_file` reference of a value kept in its own file.
    file: Option<&'a str>,
}

/// What [`CacheTable::write_entry`] hands its body: the clock, the cells to store (a
/// large value already moved to its file) and the cache columns.
struct NewEntry<'a> {
    now: i64,
    values: &'a [Cell<'a>],
    stored: Stored<'a>,
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

impl CacheTable {
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
        self.write_entry(key, values, ttl, tag, Result::is_ok, |c, e| {
            self.room_without_eviction(c, e.now, key, e.stored.size)?;
            // New keys (the common case) take one statement; an existing key is deleted
            // and inserted again, so that rowid order stays store order.
            let rowid = match self.insert_row(c, key, e.values, e.stored, true)? {
                Some(rowid) => rowid,
                None => {
                    let inner = &*self.inner;
                    held(inner, c, stmt::DELETE, &inner.sql.delete, |st| {
                        st.bind(1, key.checked()?)?;
                        first_row(st, |_| Ok(()))
                    })?;
                    self.insert_row(c, key, e.values, e.stored, false)?
                        .ok_or_else(|| self.not_stored())?
                }
            };
            Ok(((), self.maintain(c, e.now, rowid)?))
        })
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
        let stored_new = |r: &Result<bool>| matches!(r, Ok(true));
        self.write_entry(key, values, ttl, tag, stored_new, |c, e| {
            let k = key.checked()?;
            self.delete_if_expired(c, k, e.now)?;
            self.room_without_eviction(c, e.now, key, e.stored.size)?;
            match self.insert_row(c, key, e.values, e.stored, true)? {
                Some(rowid) => Ok((true, self.maintain(c, e.now, rowid)?)),
                // Nothing stored: the key has a live entry (`OR IGNORE` would also skip a
                // row for a NOT NULL column the file has and the record does not).
                None if self.stored_size(c, k)?.is_some() => Ok((false, Sweep::Skip)),
                None => Err(self.not_stored()),
            }
        })
    }

    /// The part `set` and `add` share: checks the key and the entry's size, computes
    /// its expiry, moves a large value to its own file, runs `body` in one write
    /// transaction (then sweeps as it asks), and removes the value file again unless
    /// `kept` says the row that names it was stored.
    fn write_entry<R>(
        &self,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
        ttl: Ttl,
        tag: Option<KeyRef<'_>>,
        kept: impl FnOnce(&Result<R>) -> bool,
        body: impl FnOnce(&Connection, NewEntry<'_>) -> Result<(R, Sweep)>,
    ) -> Result<R> {
        let key = key_checked(key)?;
        let size = self.fits(key, values)?;
        let now = self.now();
        let expire = self.expire_at(ttl, now);
        let spilled = self.spill(values)?;
        let (values, file) = spilled.as_parts(values);
        let stored = Stored {
            expire,
            size,
            tag,
            file,
        };
        let result = self.atomic_then_sweep(|c| {
            body(
                c,
                NewEntry {
                    now,
                    values,
                    stored,
                },
            )
        });
        spilled.settle(&self.inner.files, kept(&result));
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
                        // A broken value file reads as absent; the entry goes all the same.
                        read_row(inner, Row::new(r, width), file, &mut None, f).map(Some)
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

    pub(super) fn touch_with(
        &self,
        key: KeyRef<'_>,
        ttl: Ttl,
        id: usize,
        sql: &str,
    ) -> Result<bool> {
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
                        .ok_or_else(|| self.not_stored())?;
                    self.maintain(c, now, rowid)?;
                    Ok(Ok(new))
                }
            }
        })
    }

    /// The entry's size, refusing one larger than the whole size limit.
    pub(super) fn fits(&self, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<u64> {
        let size = entry_size(key, values);
        match self.inner.size_limit {
            Some(limit) if size > limit => Err(Error::Full(format!(
                "an entry of {size} bytes is larger than the cache's size limit of {limit} bytes"
            ))),
            _ => Ok(size),
        }
    }

    pub(super) fn order_for_store(&self, c: &Connection) -> Result<i64> {
        if self.inner.policy == EvictionPolicy::LeastRecentlyUsed {
            next_order(&self.inner, c)
        } else {
            Ok(0)
        }
    }

    pub(super) fn insert_row(
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
        // The insert says `OR IGNORE` (see `sql.rs`), which would skip a NULL in a NOT
        // NULL column silently: refuse it here, as SQLite would have.
        if let Some((name, _)) = inner
            .not_null
            .iter()
            .zip(values)
            .find(|(n, v)| n.is_some() && matches!(v.as_ref(), ValueRef::Null))
        {
            let name = name.as_deref().unwrap_or_default();
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL),
                Some(format!("NOT NULL constraint failed: {}.{name}", inner.name)),
            )
            .into());
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

    /// The error for a row that `INSERT OR IGNORE` skipped although the key was free.
    fn not_stored(&self) -> Error {
        Error::InvalidValue(format!(
            "the entry was not stored in cache table {:?}: a value breaks a constraint of \
             the table in the file",
            self.inner.name
        ))
    }

    /// `_size` of the stored row of `key`, if any (expired or not).
    fn stored_size(&self, c: &Connection, key: ValueRef<'_>) -> Result<Option<i64>> {
        Ok(c.prepare_cached(&self.inner.sql.size_of)?
            .query([key])?
            .next()?
            .map(|r| r.get(0))
            .transpose()?)
    }

    pub(super) fn delete_if_expired(
        &self,
        c: &Connection,
        key: ValueRef<'_>,
        now: i64,
    ) -> Result<()> {
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
}
