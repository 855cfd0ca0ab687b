//! The cache on PostgreSQL ("Solid Cache" style): one table with an expiry column and
//! index, a bounded purge of expired rows on writes, and the size/count limits and
//! eviction policies of the SQLite cache.
//!
//! Columns: `id` (identity: the order entries were stored in; a re-store moves an entry
//! to the end), `key bytea` (primary key), `num bigint` (an integer value, so that `incr`
//! is one atomic statement) or `value bytea`, `expire_at` (seconds since the epoch, NULL:
//! never), `tag bytea`, `size` (bytes of key and value), `accessed` and `hits` (for the
//! LRU and LFU policies).
//!
//! Only what reads need is indexed: `key`, `expire_at` (purge) and `tag` (evict) always,
//! `id` only for least-recently-stored eviction and `accessed` only for least-recently-used
//! eviction (caches with limits). So an overwrite that keeps its expiry and tag changes
//! no indexed column and PostgreSQL updates the row in place (a HOT update: no new index
//! entries), the table leaving [`FILLFACTOR`] room on each page for it. Iterating a table
//! without the `id` index scans it once per page, so its pages are large: a sixteenth of
//! the table (by the planner's row estimate), at least [`UNORDERED_PAGE`] and at most
//! [`UNORDERED_PAGE_MAX`] keys.
//!
//! Limits read running totals and hits/misses are counted on the server: see
//! [`postgres_cache_meta`](super::postgres_cache_meta).

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::types::ToSql;

use super::postgres::{Conn, PgConn, Retry};
use super::postgres_cache_meta::{COMPACT_AT, FULL_STATE, Meta};
use super::shared_stats::PendingStats;
use super::{IncrOutcome, RemoteCache, RemoteCacheOptions, RemoteValue};
use crate::error::{Error, Result};
use crate::schema::quote_ident;
use crate::{EvictionPolicy, Ttl};

/// Expired rows deleted by one write's purge.
const PURGE_BATCH: i64 = 64;
/// Every how many writes a purge runs.
const PURGE_EVERY: u64 = 32;
/// The fill factor of new cache tables: room on each page for overwrites in place.
pub const FILLFACTOR: u32 = 90;
/// The fewest keys per page when iterating a table without an `id` index (each page
/// scans the table).
pub const UNORDERED_PAGE: usize = 4096;
/// The most keys per page when iterating a table without an `id` index.
pub const UNORDERED_PAGE_MAX: usize = 1 << 20;

/// A cache table on PostgreSQL.
pub struct PgCache {
    conn: PgConn,
    options: RemoteCacheOptions,
    t: String,
    meta: Meta,
    /// The table has the running totals (a cache with limits opened it).
    totals: bool,
    /// An index leads with `id` (iteration reads it in order instead of sorting).
    ordered: bool,
    stats: PendingStats,
    writes: AtomicU64,
}

fn split(v: &RemoteValue) -> (Option<i64>, Option<&[u8]>, i64) {
    match v {
        RemoteValue::Int(i) => (Some(*i), None, 8),
        RemoteValue::Bytes(b) => (None, Some(b.as_slice()), b.len() as i64),
    }
}

fn joined(num: Option<i64>, value: Option<Vec<u8>>) -> RemoteValue {
    match (num, value) {
        (Some(i), _) => RemoteValue::Int(i),
        (None, Some(b)) => RemoteValue::Bytes(b),
        (None, None) => RemoteValue::Bytes(Vec::new()),
    }
}

impl PgCache {
    /// Connects and creates the table (and its indexes) if missing.
    ///
    /// # Errors
    /// [`Error::Connection`] when the server cannot be reached or refuses the credentials.
    pub fn open(url: &str, options: RemoteCacheOptions) -> Result<PgCache> {
        let conn = PgConn::new(url)?;
        let t = quote_ident(&options.table)?;
        let meta = Meta::new(&options.table)?;
        let mut cache = PgCache {
            conn,
            t,
            options,
            meta,
            totals: false,
            ordered: false,
            stats: PendingStats::default(),
            writes: AtomicU64::new(0),
        };
        (cache.totals, cache.ordered) = cache.create()?;
        Ok(cache)
    }

    /// Creates what is missing: the table, its indexes, the stats table and (with
    /// limits) the running totals. Returns whether the table has the totals and an index
    /// on `id`.
    fn create(&self) -> Result<(bool, bool)> {
        let t = &self.t;
        let name = self.options.table.clone();
        let idx = |suffix: &str| quote_ident(&format!("{name}_{suffix}"));
        let (ie, it, ia, ii) = (idx("expire_at")?, idx("tag")?, idx("accessed")?, idx("id")?);
        let unlogged = if self.options.unlogged {
            "UNLOGGED "
        } else {
            ""
        };
        // Each index on a column an overwrite writes makes that overwrite a non-HOT
        // update (new entries in every index), so the order indexes exist only where
        // eviction reads them: `id` for least-recently-stored, `accessed` for
        // least-recently-used, with limits. A cache with limits opened later on the same
        // table creates its index then.
        let evicts = |p| self.limited() && self.options.policy == p;
        let lru_index = if evicts(EvictionPolicy::LeastRecentlyUsed) {
            format!("\n             CREATE INDEX IF NOT EXISTS {ia} ON {t} (accessed);")
        } else {
            String::new()
        };
        let sql = format!(
            "CREATE {unlogged}TABLE IF NOT EXISTS {t} (
                id bigint GENERATED BY DEFAULT AS IDENTITY,
                key bytea PRIMARY KEY,
                num bigint,
                value bytea,
                expire_at double precision,
                tag bytea,
                size bigint NOT NULL,
                accessed double precision NOT NULL,
                hits bigint NOT NULL DEFAULT 0) WITH (fillfactor = {FILLFACTOR});
             CREATE INDEX IF NOT EXISTS {ie} ON {t} (expire_at) WHERE expire_at IS NOT NULL;
             CREATE INDEX IF NOT EXISTS {it} ON {t} (tag) WHERE tag IS NOT NULL;{lru_index}
             {}",
            self.meta.create_stats(unlogged)
        );
        // Tables made before 2026-12-07 have a unique index on `id`: it still serves.
        let id_indexed = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = '{}'::regclass AND a.attname = 'id')",
            t.replace('\'', "''")
        );
        let with_totals = self.limited();
        let totals_sql = self.meta.create_totals(t, unlogged);
        let write_sql = self.meta.create_write(
            t,
            &self.lock_sql(),
            &self.upsert_sql(false),
            &self.upsert_sql(true),
        );
        let id_sql = format!("CREATE INDEX IF NOT EXISTS {ii} ON {t} (id)");
        let has_totals = self.meta.has_totals();
        self.conn.run(Retry::Safe, |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&name])?;
            tx.batch_execute(&sql)?;
            let mut ordered: bool = tx.query_one(&id_indexed, &[])?.get(0);
            if !ordered && evicts(EvictionPolicy::LeastRecentlyStored) {
                tx.batch_execute(&id_sql)?;
                ordered = true;
            }
            let mut totals: bool = tx.query_one(&has_totals, &[t])?.get(0);
            if with_totals {
                // Replaced at each open with limits: the function of this version.
                tx.batch_execute(&write_sql)?;
            }
            if !totals && with_totals {
                tx.batch_execute(&totals_sql)?;
                totals = true;
            }
            tx.commit()?;
            Ok((totals, ordered))
        })
    }

    fn now(&self) -> f64 {
        self.options.now()
    }

    fn limited(&self) -> bool {
        self.options.size_limit.is_some() || self.options.count_limit.is_some()
    }

    /// The upsert of one entry; `$1` key, `$2` num, `$3` value, `$4` expire_at, `$5` tag,
    /// `$6` size, `$7` now.
    fn upsert_sql(&self, only_if_dead: bool) -> String {
        let t = &self.t;
        let cond = if only_if_dead {
            format!(" WHERE {t}.expire_at IS NOT NULL AND {t}.expire_at <= $7")
        } else {
            String::new()
        };
        format!(
            "INSERT INTO {t} (key, num, value, expire_at, tag, size, accessed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (key) DO UPDATE SET num = EXCLUDED.num, value = EXCLUDED.value, \
             expire_at = EXCLUDED.expire_at, tag = EXCLUDED.tag, size = EXCLUDED.size, \
             accessed = EXCLUDED.accessed, hits = 0, id = EXCLUDED.id{cond}"
        )
    }

    /// Runs the upsert of one entry (`p`: its parameters, see [`PgCache::upsert_sql`]).
    /// With limits it makes room, or is refused under the `none` policy, in one round
    /// trip (the table's write function, see
    /// [`Meta::create_write`](super::postgres_cache_meta::Meta::create_write)); under
    /// the `none` policy inside this thread's open transaction, in a savepoint of it (4
    /// round trips: the savepoint and the advisory lock, the write, the totals, the
    /// release), so that a refusal undoes only this write.
    fn write(
        &self,
        retry: Retry,
        size: i64,
        only_dead: bool,
        p: &[&(dyn ToSql + Sync); 7],
    ) -> Result<u64> {
        if let Some(limit) = self.options.size_limit
            && size as u64 > limit
        {
            return Err(Error::Full(format!(
                "an entry of {size} bytes is larger than the size limit ({limit} bytes)"
            )));
        }
        let sql = self.upsert_sql(only_dead);
        // Inside an open transaction a refusal must undo only this write (a savepoint);
        // an evicting policy never refuses, and any other error aborts the transaction.
        let in_one_call = self.conn.depth() == 0 || self.evict_order().is_some();
        let n = if self.limited() && in_one_call {
            let limit = |l: Option<u64>| l.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
            let (count, bytes) = (
                limit(self.options.count_limit),
                limit(self.options.size_limit),
            );
            let order = self.evict_order();
            let call = format!(
                "SELECT {}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                self.meta.write
            );
            let args: [&(dyn ToSql + Sync); 11] = [
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], &only_dead, &count, &bytes, &order,
            ];
            self.call_write(retry, &call, &args)?
        } else if !self.limited() {
            self.conn.run(retry, |c| c.execute(&sql, p))?
        } else {
            // In a savepoint: a refused write is undone; any other error aborts the open
            // transaction, whose block then rolls back.
            let open = format!("SAVEPOINT diskstore_write; {}", self.lock_sql());
            let mut full = None;
            let n = self.conn.run(retry, |c| {
                c.batch_execute(&open)?;
                let n = c.execute(&sql, p)?;
                full = self.make_room(c)?;
                c.batch_execute(if full.is_none() {
                    "RELEASE SAVEPOINT diskstore_write"
                } else {
                    "ROLLBACK TO SAVEPOINT diskstore_write; RELEASE SAVEPOINT diskstore_write"
                })?;
                Ok(n)
            })?;
            if let Some(msg) = full {
                return Err(Error::Full(msg));
            }
            n
        };
        if self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
        {
            self.purge(PURGE_BATCH)?;
        }
        Ok(n)
    }

    /// Deletes expired, then (by policy) other entries until the limits hold; with the
    /// `none` policy, the message of the refusal instead.
    fn make_room(&self, tx: &mut Conn) -> std::result::Result<Option<String>, postgres::Error> {
        let t = &self.t;
        let now = self.now();
        let (read, compact) = (self.meta.read_totals(), self.meta.compact_totals());
        // The running totals (see `postgres_cache_meta`): O(rows since the last fold),
        // not a sum over the table; folded here, under the table's advisory lock.
        let totals = |tx: &mut Conn| -> std::result::Result<(u64, u64), postgres::Error> {
            let r = tx.query_one(&read, &[])?;
            if r.get::<_, i64>(2) > COMPACT_AT {
                tx.execute(&compact, &[])?;
            }
            let (n, size): (i64, i64) = (r.get(0), r.get(1));
            Ok((n.max(0) as u64, size.max(0) as u64))
        };
        let over = |(count, size): (u64, u64)| {
            self.options.count_limit.is_some_and(|l| count > l)
                || self.options.size_limit.is_some_and(|l| size > l)
        };
        let mut now_totals = totals(tx)?;
        if !over(now_totals) {
            return Ok(None);
        }
        tx.execute(
            &format!("DELETE FROM {t} WHERE expire_at IS NOT NULL AND expire_at <= $1"),
            &[&now],
        )?;
        now_totals = totals(tx)?;
        if !over(now_totals) {
            return Ok(None);
        }
        let Some(order) = self.evict_order() else {
            return Ok(Some(format!(
                "the cache is full ({} entries, {} bytes) and its eviction policy is none",
                now_totals.0, now_totals.1
            )));
        };
        while over(now_totals) {
            let excess_count = self
                .options
                .count_limit
                .map_or(0, |l| now_totals.0.saturating_sub(l));
            let batch = excess_count.clamp(1, 256) as i64;
            tx.execute(
                &format!(
                    "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} ORDER BY {order} LIMIT $1)"
                ),
                &[&batch],
            )?;
            now_totals = totals(tx)?;
        }
        Ok(None)
    }

    /// `set_many` with limits: the write function per entry, in the given order, in one
    /// statement (atomic on its own: a refusal or error undoes the whole batch). A
    /// deadlock with another session's writes (the batch locks its rows one by one)
    /// aborts the statement; autocommitted, the batch is then run again, a few times.
    fn set_many_limited(&self, items: &[(&[u8], RemoteValue)]) -> Result<()> {
        let mut keys: Vec<&[u8]> = Vec::with_capacity(items.len());
        let mut nums: Vec<Option<i64>> = Vec::with_capacity(items.len());
        let mut vals: Vec<Option<&[u8]>> = Vec::with_capacity(items.len());
        let mut sizes: Vec<i64> = Vec::with_capacity(items.len());
        for (k, v) in items {
            let (num, bytes, vsize) = split(v);
            let size = k.len() as i64 + vsize;
            if let Some(limit) = self.options.size_limit
                && size as u64 > limit
            {
                return Err(Error::Full(format!(
                    "an entry of {size} bytes is larger than the size limit ({limit} bytes)"
                )));
            }
            keys.push(k);
            nums.push(num);
            vals.push(bytes);
            sizes.push(size);
        }
        let (exp, now) = (self.options.expire_at(Ttl::Default), self.now());
        let limit = |l: Option<u64>| l.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let (count, bytes) = (
            limit(self.options.count_limit),
            limit(self.options.size_limit),
        );
        let order = self.evict_order();
        let sql = format!(
            "SELECT count({}(k, n, v, $5, NULL, s, $6, false, $7, $8, $9)) \
             FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bigint[]) \
             WITH ORDINALITY AS u(k, n, v, s, o)",
            self.meta.write
        );
        let p: [&(dyn ToSql + Sync); 9] = [
            &keys, &nums, &vals, &sizes, &exp, &now, &count, &bytes, &order,
        ];
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.call_write(Retry::Safe, &sql, &p) {
                Err(Error::Server { code, .. })
                    if code == "40P01" && attempts < 4 && self.conn.depth() == 0 => {}
                r => return r.map(|_| ()),
            }
        }
    }

    /// Runs a statement that calls the write function; its refusal is [`Error::Full`].
    fn call_write(&self, retry: Retry, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let out = self.conn.run(retry, |c| match c.query_one(sql, p) {
            Ok(row) => Ok(Ok(row.get::<_, i64>(0) as u64)),
            Err(e) if e.code().is_some_and(|c| c.code() == FULL_STATE) => Ok(Err(e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned()))),
            Err(e) => Err(e),
        })?;
        out.map_err(Error::Full)
    }

    /// The order in which the policy evicts (`None`: it refuses writes instead).
    fn evict_order(&self) -> Option<&'static str> {
        match self.options.policy {
            EvictionPolicy::None => None,
            EvictionPolicy::LeastRecentlyStored => Some("id"),
            EvictionPolicy::LeastRecentlyUsed => Some("accessed, id"),
            EvictionPolicy::LeastFrequentlyUsed => Some("hits, accessed, id"),
        }
    }

    /// Takes the table's advisory lock (the key every writer with limits uses) as a
    /// simple-query statement: the name as an escape-string literal.
    fn lock_sql(&self) -> String {
        let name = self.options.table.replace('\\', "\\\\").replace('\'', "''");
        format!("SELECT pg_advisory_xact_lock(hashtext(E'{name}'))")
    }

    /// Deletes up to `batch` expired rows (skipping rows other sessions hold).
    fn purge(&self, batch: i64) -> Result<u64> {
        let t = &self.t;
        let now = self.now();
        let sql = format!(
            "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expire_at IS NOT NULL \
             AND expire_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        );
        self.conn
            .run(Retry::Safe, |c| c.execute(&sql, &[&now, &batch]))
    }
}

fn live(t: &str) -> String {
    format!("({t}.expire_at IS NULL OR {t}.expire_at > $2)")
}

impl RemoteCache for PgCache {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn get(&self, key: &[u8]) -> Result<Option<RemoteValue>> {
        let t = &self.t;
        let now = self.now();
        let sql = if self.options.policy.tracks_reads() {
            format!(
                "UPDATE {t} SET accessed = $2, hits = hits + 1 WHERE key = $1 AND {} RETURNING num, value",
                live(t)
            )
        } else {
            format!("SELECT num, value FROM {t} WHERE key = $1 AND {}", live(t))
        };
        let row = self
            .conn
            .run(Retry::Safe, |c| c.query_opt(&sql, &[&key, &now]))?;
        let v = row.map(|r| joined(r.get(0), r.get(1)));
        self.count(std::slice::from_ref(&v));
        Ok(v)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<RemoteValue>>> {
        let t = &self.t;
        let now = self.now();
        let sql = format!(
            "SELECT key, num, value FROM {t} WHERE key = ANY($1) AND {}",
            live(t)
        );
        let ks: Vec<&[u8]> = keys.to_vec();
        let rows = self
            .conn
            .run(Retry::Safe, |c| c.query(&sql, &[&ks, &now]))?;
        let found: Vec<(Vec<u8>, RemoteValue)> = rows
            .iter()
            .map(|r| (r.get::<_, Vec<u8>>(0), joined(r.get(1), r.get(2))))
            .collect();
        let out: Vec<Option<RemoteValue>> = keys
            .iter()
            .map(|k| {
                found
                    .iter()
                    .find(|(fk, _)| fk.as_slice() == *k)
                    .map(|(_, v)| v.clone())
            })
            .collect();
        self.count(&out);
        Ok(out)
    }

    fn set(&self, key: &[u8], value: &RemoteValue, ttl: Ttl, tag: Option<&[u8]>) -> Result<()> {
        let (num, bytes, vsize) = split(value);
        let size = key.len() as i64 + vsize;
        let (exp, now) = (self.options.expire_at(ttl), self.now());
        self.write(
            Retry::Safe,
            size,
            false,
            &[&key, &num, &bytes, &exp, &tag, &size, &now],
        )?;
        Ok(())
    }

    fn set_many(&self, items: &[(&[u8], RemoteValue)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if self.limited() && (self.conn.depth() == 0 || self.evict_order().is_some()) {
            return self.set_many_limited(items);
        }
        if self.limited() {
            // Exact accounting per entry: one at a time inside one transaction.
            self.begin()?;
            let r = items
                .iter()
                .try_for_each(|(k, v)| self.set(k, v, Ttl::Default, None));
            return match r {
                Ok(()) => self.end(true),
                Err(e) => {
                    let _ = self.end(false);
                    Err(e)
                }
            };
        }
        // The last value of a key given twice wins.
        let mut keys: Vec<&[u8]> = Vec::with_capacity(items.len());
        let mut nums: Vec<Option<i64>> = Vec::with_capacity(items.len());
        let mut vals: Vec<Option<&[u8]>> = Vec::with_capacity(items.len());
        let mut sizes: Vec<i64> = Vec::with_capacity(items.len());
        // Where each key went (a linear search made a batch of n keys cost n²/2 slice
        // comparisons on the client).
        let mut slot: std::collections::HashMap<&[u8], usize> =
            std::collections::HashMap::with_capacity(items.len());
        for (k, v) in items {
            let (num, bytes, vsize) = split(v);
            let size = k.len() as i64 + vsize;
            if let Some(&i) = slot.get(k) {
                (nums[i], vals[i], sizes[i]) = (num, bytes, size);
            } else {
                slot.insert(k, keys.len());
                keys.push(k);
                nums.push(num);
                vals.push(bytes);
                sizes.push(size);
            }
        }
        let (exp, now) = (self.options.expire_at(Ttl::Default), self.now());
        let t = &self.t;
        let sql = format!(
            "INSERT INTO {t} (key, num, value, expire_at, size, accessed) \
             SELECT k, n, v, $5, s, $6 FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bigint[]) \
             WITH ORDINALITY AS u(k, n, v, s, o) ORDER BY o \
             ON CONFLICT (key) DO UPDATE SET num = EXCLUDED.num, value = EXCLUDED.value, \
             expire_at = EXCLUDED.expire_at, tag = NULL, size = EXCLUDED.size, \
             accessed = EXCLUDED.accessed, hits = 0, id = EXCLUDED.id"
        );
        self.conn.run(Retry::Safe, |c| {
            c.execute(&sql, &[&keys, &nums, &vals, &sizes, &exp, &now])
        })?;
        Ok(())
    }

    fn add(&self, key: &[u8], value: &RemoteValue, ttl: Ttl, tag: Option<&[u8]>) -> Result<bool> {
        let (num, bytes, vsize) = split(value);
        let size = key.len() as i64 + vsize;
        let (exp, now) = (self.options.expire_at(ttl), self.now());
        let n = self.write(
            Retry::Never,
            size,
            true,
            &[&key, &num, &bytes, &exp, &tag, &size, &now],
        )?;
        Ok(n == 1)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let t = &self.t;
        let now = self.now();
        let sql = format!("DELETE FROM {t} WHERE key = $1 RETURNING {}", live(t));
        let row = self
            .conn
            .run(Retry::Safe, |c| c.query_opt(&sql, &[&key, &now]))?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    fn delete_many(&self, keys: &[&[u8]]) -> Result<u64> {
        let t = &self.t;
        let now = self.now();
        let ks: Vec<&[u8]> = keys.to_vec();
        let sql = format!(
            "WITH d AS (DELETE FROM {t} WHERE key = ANY($1) RETURNING {}) \
             SELECT count(*) FILTER (WHERE live) FROM d AS d(live)",
            live(t)
        );
        let r = self
            .conn
            .run(Retry::Safe, |c| c.query_one(&sql, &[&ks, &now]))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    fn pop(&self, key: &[u8]) -> Result<Option<RemoteValue>> {
        let t = &self.t;
        let now = self.now();
        let sql = format!(
            "DELETE FROM {t} WHERE key = $1 RETURNING num, value, {}",
            live(t)
        );
        let row = self
            .conn
            .run(Retry::Never, |c| c.query_opt(&sql, &[&key, &now]))?;
        Ok(row
            .filter(|r| r.get::<_, bool>(2))
            .map(|r| joined(r.get(0), r.get(1))))
    }

    fn touch(&self, key: &[u8], ttl: Ttl) -> Result<bool> {
        let t = &self.t;
        let (exp, now) = (self.options.expire_at(ttl), self.now());
        let sql = format!(
            "UPDATE {t} SET expire_at = $3 WHERE key = $1 AND {}",
            live(t)
        );
        let n = self
            .conn
            .run(Retry::Safe, |c| c.execute(&sql, &[&key, &now, &exp]))?;
        Ok(n == 1)
    }

    fn incr(&self, key: &[u8], delta: i64, default: Option<i64>) -> Result<IncrOutcome> {
        let t = &self.t;
        let now = self.now();
        let exp = self.options.expire_at(Ttl::Default);
        let dead = format!("({t}.expire_at IS NOT NULL AND {t}.expire_at <= $2)");
        // One statement: insert the default, or add to a live integer. A live non-integer
        // or an overflow changes nothing (the WHERE fails / the statement errors).
        let Some(start) = default else {
            let sql = format!(
                "UPDATE {t} SET num = num + $3, size = length(key) + 8 WHERE key = $1 AND num IS NOT NULL AND NOT {dead} RETURNING num"
            );
            let r = self
                .conn
                .run(Retry::Never, |c| c.query_opt(&sql, &[&key, &now, &delta]));
            return match r {
                Ok(Some(row)) => Ok(IncrOutcome::Value(row.get(0))),
                Ok(None) => {
                    let sql = format!("SELECT 1 FROM {t} WHERE key = $1 AND NOT {dead}");
                    let exists = self
                        .conn
                        .run(Retry::Safe, |c| c.query_opt(&sql, &[&key, &now]))?;
                    Ok(if exists.is_some() {
                        IncrOutcome::NotAnInteger
                    } else {
                        IncrOutcome::Missing
                    })
                }
                Err(Error::InvalidValue(_)) => Ok(IncrOutcome::Overflow),
                Err(e) => Err(e),
            };
        };
        let Some(first) = start.checked_add(delta) else {
            return Ok(IncrOutcome::Overflow);
        };
        let sql = format!(
            "INSERT INTO {t} (key, num, value, expire_at, size, accessed) VALUES ($1::bytea, $4, NULL, $5, length($1::bytea) + 8, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             num = CASE WHEN {dead} THEN $4 ELSE {t}.num + $3 END, \
             expire_at = CASE WHEN {dead} THEN $5 ELSE {t}.expire_at END, \
             value = NULL WHERE {t}.num IS NOT NULL OR {dead} RETURNING num"
        );
        let r = self.conn.run(Retry::Never, |c| {
            c.query_opt(&sql, &[&key, &now, &delta, &first, &exp])
        });
        match r {
            Ok(Some(row)) => Ok(IncrOutcome::Value(row.get(0))),
            Ok(None) => Ok(IncrOutcome::NotAnInteger),
            Err(Error::InvalidValue(_)) => Ok(IncrOutcome::Overflow),
            Err(e) => Err(e),
        }
    }

    fn expire(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.purge(1000)?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    fn evict(&self, tag: &[u8]) -> Result<u64> {
        let t = &self.t;
        let sql = format!("DELETE FROM {t} WHERE tag = $1");
        self.conn.run(Retry::Safe, |c| c.execute(&sql, &[&tag]))
    }

    fn clear(&self) -> Result<()> {
        let sql = format!("DELETE FROM {}", self.t);
        self.conn.run(Retry::Safe, |c| c.execute(&sql, &[]))?;
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        let t = &self.t;
        let now = self.now();
        let sql =
            format!("SELECT count(*) FROM {t} WHERE ({t}.expire_at IS NULL OR {t}.expire_at > $1)");
        let r = self.conn.run(Retry::Safe, |c| c.query_one(&sql, &[&now]))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    fn volume(&self) -> Result<u64> {
        let sql = format!("SELECT COALESCE(sum(size), 0)::bigint FROM {}", self.t);
        let r = self.conn.run(Retry::Safe, |c| c.query_one(&sql, &[]))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    fn stats(&self, reset: bool) -> Result<(u64, u64)> {
        self.flush_stats()?;
        let sql = if reset {
            self.meta.reset_stats()
        } else {
            self.meta.read_stats()
        };
        let retry = if reset { Retry::Never } else { Retry::Safe };
        let r = self.conn.run(retry, |c| c.query_one(&sql, &[]))?;
        let (h, m): (i64, i64) = (r.get(0), r.get(1));
        Ok((h.max(0) as u64, m.max(0) as u64))
    }

    fn keys_page(
        &self,
        after: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let t = &self.t;
        let now = self.now();
        let (cmp, dir, from) = if reverse {
            ("<", "DESC", after.unwrap_or(i64::MAX))
        } else {
            (">", "", after.unwrap_or(i64::MIN))
        };
        let select = format!(
            "SELECT id, key FROM {t} WHERE id {cmp} $1 AND ({t}.expire_at IS NULL OR {t}.expire_at > $2) ORDER BY id {dir}"
        );
        let rows = if self.ordered {
            let sql = format!("{select} LIMIT $3");
            let limit = limit as i64;
            self.conn
                .run(Retry::Safe, |c| c.query(&sql, &[&from, &now, &limit]))?
        } else {
            // Each page is a scan of the table (and a top-N sort): a whole iteration takes
            // about 16 of them at any size, not one per few thousand keys.
            let sql = format!(
                "{select} LIMIT GREATEST($3, LEAST($4, (SELECT reltuples::bigint / 16 \
                 FROM pg_class WHERE oid = $5::text::regclass)))"
            );
            let (limit, most) = (limit.max(UNORDERED_PAGE) as i64, UNORDERED_PAGE_MAX as i64);
            self.conn.run(Retry::Safe, |c| {
                c.query(&sql, &[&from, &now, &limit, &most, &self.t])
            })?
        };
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn check(&self) -> Result<Vec<String>> {
        let t = &self.t;
        let sql =
            format!("SELECT count(*) FROM {t} WHERE size < 0 OR (num IS NULL AND value IS NULL)");
        let r = self.conn.run(Retry::Safe, |c| c.query_one(&sql, &[]))?;
        let bad: i64 = r.get(0);
        Ok(if bad > 0 {
            vec![format!("{bad} malformed rows in {}", self.options.table)]
        } else {
            Vec::new()
        })
    }

    fn begin(&self) -> Result<()> {
        self.conn.begin().map(|_| ())
    }

    fn end(&self, commit: bool) -> Result<()> {
        self.conn.end(commit)
    }

    fn close(&self) {
        let _ = self.flush_stats();
        self.conn.close_idle();
    }
}

impl PgCache {
    /// Counts lookups; adds the counts on the server when they are due (best effort: on
    /// failure they stay pending).
    fn count(&self, found: &[Option<RemoteValue>]) {
        // Not inside this thread's transaction: the stats row would stay locked (other
        // processes' flushes waiting) until it ends.
        if self.stats.count(found) && self.conn.depth() == 0 {
            let _ = self.flush_stats();
        }
    }

    /// Adds this process's pending hit/miss counts on the server.
    fn flush_stats(&self) -> Result<()> {
        let sql = self.meta.add_stats();
        self.stats.flush(|h, m| {
            self.conn
                .run(Retry::Never, |c| c.execute(&sql, &[&h, &m]))
                .map(|_| ())
        })
    }
}

impl Drop for PgCache {
    fn drop(&mut self) {
        let _ = self.flush_stats();
    }
}
