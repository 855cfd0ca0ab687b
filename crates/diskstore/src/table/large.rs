//! Large values by incremental blob I/O. A blob of [`LARGE_VALUE`] bytes or more in a
//! table's last column is written as a zero-filled blob (which SQLite keeps as a mere
//! count at the end of the record) and then filled in place, and read straight into the
//! caller's buffer; either way SQLite never holds a copy of the whole value. Smaller values
//! and text take the ordinary statements.

use rusqlite::{Connection, MAIN_DB};

use super::{Table, bind_key, stmt};
use crate::error::{Error, Result};
use crate::key::KeyRef;
use crate::record::Row;
use crate::schema::quote_ident;
use crate::value::{Cell, ValueRef};

/// The size from which a value in a table's last column is written and read by
/// incremental blob I/O: 1 MiB.
pub const LARGE_VALUE: usize = 1 << 20;

/// The held-statement id of [`Table::get_located`]'s lookup (far after the ids of the
/// table's and the cache's own statements).
const GET_LOCATED: usize = 64;

/// Where a large value is stored, from [`Table::get_located`]; read it with
/// [`Table::read_located`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    len: usize,
    text: bool,
}

impl Located {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty value (never: located values are large).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the value is text (UTF-8), false for a blob.
    pub fn is_text(&self) -> bool {
        self.text
    }
}

/// A row found by [`Table::get_located`]: what the closure made of it and, when the last
/// value column holds a large value, where that is (the closure then saw it as NULL).
pub struct Found<T> {
    /// The closure's result.
    pub row: T,
    /// The large last value, not read yet.
    pub large: Option<Located>,
}

impl Table {
    /// The large blob in `values`' last cell, when it is the table's last column and
    /// takes the incremental path.
    pub(super) fn large_last<'v>(&self, values: &'v [Cell<'_>]) -> Option<&'v [u8]> {
        if values.len() != self.width() {
            return None;
        }
        match values.last()?.as_ref() {
            ValueRef::Blob(b) if b.len() >= LARGE_VALUE => Some(b),
            _ => None,
        }
    }

    /// [`Table::set`] of a row whose last cell is `data` (see [`Table::large_last`]): the
    /// upsert stores an empty blob there, an update makes it a zero-filled blob of the
    /// value's length (SQLite's `zeroblob()`, a mere count at the end of the record), which
    /// is then filled in place; all in one transaction (or savepoint). The pages go
    /// through SQLite's page cache (spilled to the log as it fills), never a whole copy.
    pub(super) fn set_large(
        &self,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
        data: &[u8],
    ) -> Result<()> {
        let n = values.len();
        self.atomic(|| {
            self.with_connection(|c| {
                self.held(c, stmt::UPSERT, &self.inner.sql.upsert, |st| {
                    bind_key(st, 1, key)?;
                    for (i, v) in values[..n - 1].iter().enumerate() {
                        st.bind(i + 2, v.as_ref())?;
                    }
                    st.bind(n + 1, ValueRef::Blob(&[]))?;
                    st.raw_execute()?;
                    Ok(())
                })?;
                let rowid = self.rowid_of(c, key)?;
                let sql = format!(
                    "UPDATE {} SET {} = zeroblob(?1) WHERE rowid = ?2",
                    quote_ident(&self.inner.spec.name)?,
                    quote_ident(self.last_column())?
                );
                c.prepare_cached(&sql)?
                    .execute(rusqlite::params![data.len() as i64, rowid])?;
                let mut blob = c.blob_open(
                    MAIN_DB,
                    self.inner.spec.name.as_str(),
                    self.last_column(),
                    rowid,
                    false,
                )?;
                blob.write_all_at(data, 0)?;
                Ok(())
            })
        })
    }

    fn last_column(&self) -> &str {
        self.inner
            .spec
            .columns
            .last()
            .map_or("", |c| c.name.as_str())
    }

    fn rowid_of(&self, c: &Connection, key: KeyRef<'_>) -> Result<i64> {
        let sql = format!(
            "SELECT rowid FROM {} WHERE _key = ?1",
            quote_ident(&self.inner.spec.name)?
        );
        Ok(c.prepare_cached(&sql)?
            .query_row([key.checked()?], |r| r.get(0))?)
    }

    /// As [`Table::get`], except that a value of [`LARGE_VALUE`] bytes or more in the
    /// last column is not read: `f` sees NULL there, and [`Found::large`] says where it
    /// is, for [`Table::read_located`] (with a buffer of its length).
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn get_located<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<Found<T>>> {
        let width = self.width();
        if width == 0 {
            return Ok(self.get(key, f)?.map(|row| Found { row, large: None }));
        }
        let sql = self.inner.large_get.get_or_init(|| self.located_sql());
        let r = self.inner.conns.with_lookup(|c| {
            self.held(c, GET_LOCATED, sql, |st| {
                bind_key(st, 1, key)?;
                let mut rows = st.raw_query();
                let Some(r) = rows.next()? else {
                    return Ok(None);
                };
                let row = Row::new(r, width);
                // NULL there is a NULL value or a large one (rare either way): ask which,
                // in the same read transaction (this statement's).
                let large = match row.value(width - 1)? {
                    ValueRef::Null => self.shape_of(c, key)?.map(|n| Located {
                        len: (n / 2) as usize,
                        text: n % 2 == 1,
                    }),
                    _ => None,
                };
                let out = f(&row)?;
                Ok(Some(Found { row: out, large }))
            })
        });
        self.ctx(r)
    }

    /// Twice the length of `key`'s large last value, plus one for text; `None` when it
    /// is not large.
    fn shape_of(&self, c: &Connection, key: KeyRef<'_>) -> Result<Option<i64>> {
        let last = quote_ident(self.last_column())?;
        let sql = format!(
            "SELECT 2 * octet_length({last}) + (typeof({last}) = 'text') FROM {} \
             WHERE _key = ?1 AND octet_length({last}) >= {LARGE_VALUE}",
            quote_ident(&self.inner.spec.name)?
        );
        Ok(c.prepare_cached(&sql)?
            .query([key.checked()?])?
            .next()?
            .map(|r| r.get::<_, i64>(0))
            .transpose()?)
    }

    /// `SELECT _key, …, iif(octet_length(last) >= LARGE, NULL, last)`: `octet_length`
    /// reads the record header only, so a large value is never loaded, and a small one
    /// costs one comparison.
    fn located_sql(&self) -> String {
        let cols: Vec<String> = self
            .inner
            .spec
            .columns
            .iter()
            .map(|c| quote_ident(&c.name).unwrap_or_default())
            .collect();
        let (last, rest) = cols.split_last().expect("at least one value column");
        let rest: String = rest.iter().map(|c| format!(", {c}")).collect();
        format!(
            "SELECT _key{rest}, iif(octet_length({last}) >= {LARGE_VALUE}, NULL, {last}) \
             FROM {} WHERE _key = ?1",
            quote_ident(&self.inner.spec.name).unwrap_or_default()
        )
    }

    /// Reads the large value located by [`Table::get_located`] for `key` into `buf` (of
    /// its length), straight from the file's pages. Returns false when the row changed
    /// since (another length, or another row): look it up again.
    ///
    /// # Errors
    /// [`Error::Usage`] when `buf` is not the value's length; file and lock errors.
    pub fn read_located(&self, key: KeyRef<'_>, at: &Located, buf: &mut [u8]) -> Result<bool> {
        if buf.len() != at.len {
            return Err(Error::Usage(format!(
                "a buffer of {} bytes for a value of {}",
                buf.len(),
                at.len
            )));
        }
        let sql = format!(
            "SELECT rowid, 2 * octet_length({c}) + (typeof({c}) = 'text') FROM {} \
             WHERE _key = ?1",
            quote_ident(&self.inner.spec.name)?,
            c = quote_ident(self.last_column())?
        );
        self.read(|| {
            self.with_connection(|c| {
                let now: Option<(i64, i64)> = c
                    .prepare_cached(&sql)?
                    .query([key.checked()?])?
                    .next()?
                    .map(|r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?)))
                    .transpose()?;
                // The key's row now, in this snapshot: read it if it still holds a value
                // of the located length and type (a newer one of the same shape is as
                // good: it is what a lookup now would find).
                let Some((rowid, shape)) = now else {
                    return Ok(false);
                };
                if shape != 2 * at.len as i64 + i64::from(at.text) {
                    return Ok(false);
                }
                let blob = c.blob_open(
                    MAIN_DB,
                    self.inner.spec.name.as_str(),
                    self.last_column(),
                    rowid,
                    true,
                )?;
                blob.read_at_exact(buf, 0)?;
                Ok(true)
            })
        })
    }
}
