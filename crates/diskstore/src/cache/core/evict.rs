//! Making room: the amortised purge of expired entries, eviction down to the limits after
//! each write, `expire`, `evict(tag)` and `clear`.

use std::sync::atomic::Ordering;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::key::KeyRef;

use super::super::policy::EvictionPolicy;
use super::super::sql::{BATCH, stmt};
use super::{CacheTable, Sweep, held, meta, meta_rowid, missing_meta};

/// Deletes one victim; returns its size, or `None` when there was none.
pub(super) fn evict_step(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Option<u64>> {
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

impl CacheTable {
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

    /// Under policy `None`, makes sure the entry fits before anything is written: purges
    /// expired entries if needed, else fails with [`Error::Full`].
    pub(super) fn room_without_eviction(
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

    pub(super) fn over(&self, volume: u64, count: u64) -> bool {
        self.inner.size_limit.is_some_and(|l| volume > l)
            || self.inner.count_limit.is_some_and(|l| count > l)
    }

    pub(super) fn purge_some(&self, c: &Connection, now: i64) -> Result<()> {
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
    /// Returns whether the trash table needs a look before the commit: one statement
    /// answers "anything expired?", "anything in the trash?" and the totals; the trash
    /// needs no look when it was empty and nothing was deleted after.
    pub(super) fn maintain(&self, c: &Connection, now: i64, keep: i64) -> Result<Sweep> {
        let inner = &*self.inner;
        let limited = inner.size_limit.is_some() || inner.count_limit.is_some();
        let (expired, trash, totals) = if limited {
            let mut found = None;
            // Twice at most: the metadata row may have been made again under another
            // rowid (by hand, or by a `clear` of its table in another tool).
            for _ in 0..2 {
                let id = inner.meta_rowid.load(Ordering::Relaxed);
                found = held(inner, c, stmt::PROBE_META, &inner.sql.probe_meta, |st| {
                    st.raw_bind_parameter(1, now)?;
                    st.raw_bind_parameter(2, id)?;
                    let mut rows = st.raw_query();
                    let Some(r) = rows.next()? else {
                        return Ok(None);
                    };
                    if r.get_ref(4)?.as_str().ok() != Some(inner.name.as_str()) {
                        return Ok(None);
                    }
                    let u = |x: i64| x.max(0) as u64;
                    Ok(Some((
                        r.get::<_, bool>(0)?,
                        r.get::<_, bool>(1)?,
                        Some((u(r.get(2)?), u(r.get(3)?))),
                    )))
                })?;
                if found.is_some() || meta_rowid(inner, c)?.is_none() {
                    break;
                }
            }
            found.ok_or_else(|| missing_meta(inner))?
        } else {
            held(inner, c, stmt::PROBE, &inner.sql.probe, |st| {
                st.raw_bind_parameter(1, now)?;
                let mut rows = st.raw_query();
                let r = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                Ok((r.get::<_, bool>(0)?, r.get::<_, bool>(1)?, None))
            })?
        };
        let mut sweep = if trash { Sweep::Look } else { Sweep::Skip };
        let Some((mut volume, mut count)) = totals else {
            if expired {
                c.prepare_cached(&inner.sql.purge)?.execute([now])?;
                sweep = Sweep::Look;
            }
            return Ok(sweep);
        };
        if expired {
            c.prepare_cached(&inner.sql.purge)?.execute([now])?;
            sweep = Sweep::Look;
            (volume, count, _) = meta(inner, c)?;
        }
        if self.over(volume, count) {
            sweep = Sweep::Look;
        }
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
        Ok(sweep)
    }
}
