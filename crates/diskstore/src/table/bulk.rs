//! Batched upserts for [`Table::set_many`]: [`CHUNK_ROWS`] rows per statement (one
//! multi-row `INSERT … VALUES (…), (…) ON CONFLICT(_key) DO UPDATE`) instead of one
//! statement per row. A statement's own costs (opening and closing its cursors, finding
//! the table's last rowid again, halting) are then paid once per chunk; callgrind put them
//! at about a quarter of a row's instructions (docs/design.md, "Bulk loading").
//!
//! SQLite applies the rows of one statement in order, each as the one-row upsert would
//! (a key repeated in the chunk: the later row updates the row the earlier one inserted,
//! so the last value wins and the key keeps its first position), so the table ends up as
//! the row-by-row loop leaves it. The cached count is carried by rowids: on a table whose
//! key is not its rowid, an insert takes the largest rowid plus one, so the inserts of a
//! chunk are the last-insert rowid minus the largest rowid before it; anything else (a
//! full rowid range, INTEGER keys) makes the count unknown, or takes the row-by-row path.

use rusqlite::Connection;

use super::{Table, bind_key, bind_values};
use crate::count::{self, Delta};
use crate::error::Result;
use crate::key::KeyRef;
use crate::value::{Cell, ColumnType};

/// Rows per multi-row statement (fewer when a row has so many columns that the
/// statement would pass SQLite's limit of 32,766 parameters).
pub(crate) const CHUNK_ROWS: usize = 64;

/// SQLite's default limit on a statement's parameters (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMS: usize = 32_766;

/// Held-statement ids (far after the table's and the cache's own, and large.rs's).
const UPSERT_CHUNK: usize = 65;
const MAX_ROWID: usize = 66;

/// Rows per chunk statement for a table with `key_type` keys and `width` value columns;
/// 0 when rows go one by one (INTEGER keys, whose rowid is the key; rows too wide).
pub(crate) fn chunk_rows(key_type: ColumnType, width: usize) -> usize {
    let rows = CHUNK_ROWS.min(MAX_PARAMS / (width + 1));
    if key_type == ColumnType::Integer || rows < 2 {
        0
    } else {
        rows
    }
}

impl Table {
    /// The body of [`Table::set_many`], on `c` inside its all-or-nothing level.
    pub(super) fn set_many_with<'k, 'v: 'k>(
        &self,
        c: &Connection,
        rows: impl IntoIterator<Item = (Option<KeyRef<'k>>, &'k [Cell<'v>])>,
    ) -> Result<usize> {
        let chunk = self.inner.sql.upsert_chunk_rows;
        if chunk == 0 {
            let mut n = 0;
            for (key, values) in rows {
                match key {
                    Some(k) => self.set_with(c, k, values)?,
                    None => {
                        self.insert_auto_with(c, values)?;
                    }
                }
                n += 1;
            }
            return Ok(n);
        }
        let width = self.width();
        let mut pending: Vec<(KeyRef<'k>, &'k [Cell<'v>])> = Vec::with_capacity(chunk);
        let mut last_rowid: Option<Option<i64>> = None;
        let mut n = 0;
        for (key, values) in rows {
            n += 1;
            match key {
                Some(k) if values.len() == width => {
                    pending.push((k, values));
                    if pending.len() == chunk {
                        self.upsert_chunk(c, &pending, &mut last_rowid)?;
                        pending.clear();
                    }
                }
                // A row the chunk statement cannot take goes alone, after the rows
                // before it, so that the order of effects stays the caller's.
                other => {
                    self.set_pending(c, &mut pending)?;
                    match other {
                        Some(k) => self.set_with(c, k, values)?,
                        None => {
                            self.insert_auto_with(c, values)?;
                        }
                    }
                    last_rowid = None;
                }
            }
        }
        self.set_pending(c, &mut pending)?;
        Ok(n)
    }

    /// Stores the rows of an incomplete chunk one by one.
    fn set_pending(
        &self,
        c: &Connection,
        pending: &mut Vec<(KeyRef<'_>, &[Cell<'_>])>,
    ) -> Result<()> {
        for (k, values) in pending.drain(..) {
            self.set_with(c, k, values)?;
        }
        Ok(())
    }

    /// Upserts a full chunk in one statement, carrying the cached count. `last_rowid`
    /// is the table's largest rowid as far as known (`None`: not read yet).
    fn upsert_chunk(
        &self,
        c: &Connection,
        rows: &[(KeyRef<'_>, &[Cell<'_>])],
        last_rowid: &mut Option<Option<i64>>,
    ) -> Result<()> {
        let before_rowid = match *last_rowid {
            Some(r) => r,
            None => self.held(c, MAX_ROWID, &self.inner.sql.max_key, |st| {
                Ok(st.query_row([0i64; 0], |r| r.get::<_, Option<i64>>(0))?)
            })?,
        };
        let before = count::total_changes(c);
        count::clear_last_insert(c);
        let stride = self.width() + 1;
        self.held(c, UPSERT_CHUNK, &self.inner.sql.upsert_chunk, |st| {
            for (j, (k, values)) in rows.iter().enumerate() {
                bind_key(st, j * stride + 1, *k)?;
                bind_values(st, j * stride + 2, values)?;
            }
            st.raw_execute()?;
            Ok(())
        })?;
        let last = c.last_insert_rowid();
        let (delta, now) = if last == count::NO_INSERT {
            (Delta::By(0), before_rowid)
        } else {
            // Inserts took before+1, before+2, …: anything else (SQLite picks random
            // rowids once the largest is taken) leaves the count unknown.
            let base = before_rowid.unwrap_or(0);
            match last.checked_sub(base) {
                Some(d) if d >= 1 && d <= rows.len() as i64 => (Delta::By(d), Some(last)),
                _ => (Delta::Unknown, None),
            }
        };
        *last_rowid = match delta {
            Delta::Unknown => None,
            _ => Some(now),
        };
        self.wrote(c, before, delta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_the_parameter_limit_and_skip_integer_keys() {
        assert_eq!(chunk_rows(ColumnType::Text, 1), CHUNK_ROWS);
        assert_eq!(chunk_rows(ColumnType::Blob, 0), CHUNK_ROWS);
        assert_eq!(chunk_rows(ColumnType::Integer, 1), 0);
        assert_eq!(chunk_rows(ColumnType::Text, 1000), 32);
        assert_eq!(chunk_rows(ColumnType::Text, 20_000), 0);
        for width in [1, 10, 511, 1000, 16_382] {
            assert!(chunk_rows(ColumnType::Text, width) * (width + 1) <= MAX_PARAMS);
        }
    }
}
