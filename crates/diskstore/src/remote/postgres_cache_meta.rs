//! The side tables of a PostgreSQL cache: running totals (for size and count limits) and
//! the shared hit/miss counts.
//!
//! **Totals** (`<table>_totals`, rows `(n, size)`): triggers on the cache table append
//! the change of entry count and bytes: a row per inserted entry, a row per update that
//! changes an entry's size (a `WHEN` condition, checked without calling the function, so
//! an overwrite of the same size, a touch or a read's `accessed` update costs no trigger
//! call), and one row per deleting statement (from its transition table, so that
//! `clear()` or a purge adds one row). Appending (rather than updating one row) means
//! concurrent writers never wait for each other on it; the sum of the rows is the table's
//! count and size in every snapshot, because the delta commits with the write. Limited writers fold the rows into one now and then ([`COMPACT_AT`]). A write
//! of a limited cache thus reads O(rows since the last fold) instead of summing the table.
//! The triggers exist once a cache with limits has opened the table; from then on every
//! writer (with limits or not, any process) keeps the totals exact.
//!
//! **Stats** (`<table>_stats`, one row): hits and misses of every process.

use crate::error::Result;
use crate::schema::quote_ident;

/// Delta rows a limited writer lets pile up before it folds them into one.
pub(crate) const COMPACT_AT: i64 = 64;

/// The SQLSTATE the write function raises when the `none` policy refuses a write.
pub(crate) const FULL_STATE: &str = "DSFUL";

/// The names and SQL of one cache table's side tables.
pub(crate) struct Meta {
    /// The quoted totals table.
    pub totals: String,
    /// The quoted stats table.
    pub stats: String,
    function: String,
    /// The quoted function of a limited write (see [`Meta::create_write`]).
    pub write: String,
    triggers: [String; 3],
}

impl Meta {
    /// The side tables of cache table `name` (unquoted).
    pub(crate) fn new(name: &str) -> Result<Meta> {
        let q = |suffix: &str| quote_ident(&format!("{name}_{suffix}"));
        Ok(Meta {
            totals: q("totals")?,
            stats: q("stats")?,
            function: q("totals_fn")?,
            write: q("write")?,
            triggers: [q("totals_ins")?, q("totals_upd")?, q("totals_del")?],
        })
    }

    /// Creates the stats table with its one row (if missing).
    pub(crate) fn create_stats(&self, unlogged: &str) -> String {
        let s = &self.stats;
        format!(
            "CREATE {unlogged}TABLE IF NOT EXISTS {s} (
                one int PRIMARY KEY DEFAULT 1 CHECK (one = 1),
                hits bigint NOT NULL DEFAULT 0,
                misses bigint NOT NULL DEFAULT 0);
             INSERT INTO {s} DEFAULT VALUES ON CONFLICT DO NOTHING;"
        )
    }

    /// Whether cache table `$1` (its quoted name) has all three totals triggers in their
    /// current shape (row-level for inserts and updates; tables made before 2026-12-07
    /// have statement-level ones, which cost an overwrite two function calls).
    pub(crate) fn has_totals(&self) -> String {
        let names: Vec<String> = self
            .triggers
            .iter()
            .map(|q| {
                format!(
                    "'{}'",
                    q.trim_matches('"')
                        .replace("\"\"", "\"")
                        .replace('\'', "''")
                )
            })
            .collect();
        // `tgtype & 1`: a row-level trigger.
        format!(
            "SELECT count(*) = 3 AND bool_and((tgtype & 1 = 1) = (tgname <> {})) \
             FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname IN ({})",
            names[2],
            names.join(", ")
        )
    }

    /// (Re)creates the totals table, its triggers on cache table `t` and the first row
    /// (the table's count and size now). Run when a trigger is missing (a new table, or
    /// one dropped and made again), in a transaction that first locks `t` against writes,
    /// so that no write falls between the first row and the triggers.
    pub(crate) fn create_totals(&self, t: &str, unlogged: &str) -> String {
        let (tt, f) = (&self.totals, &self.function);
        let [ti, tu, td] = &self.triggers;
        format!(
            "LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE;
             DROP TRIGGER IF EXISTS {ti} ON {t};
             DROP TRIGGER IF EXISTS {tu} ON {t};
             DROP TRIGGER IF EXISTS {td} ON {t};
             DROP TABLE IF EXISTS {tt};
             CREATE {unlogged}TABLE {tt} (n bigint NOT NULL, size bigint NOT NULL);
             CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $diskstore$
             BEGIN
                 IF TG_LEVEL = 'ROW' AND TG_OP = 'INSERT' THEN
                     INSERT INTO {tt} (n, size) VALUES (1, NEW.size);
                 ELSIF TG_LEVEL = 'ROW' THEN
                     INSERT INTO {tt} (n, size) VALUES (0, NEW.size - OLD.size);
                 ELSE
                     INSERT INTO {tt} (n, size)
                         SELECT -count(*), -COALESCE(sum(size), 0) FROM diskstore_old
                         HAVING count(*) > 0;
                 END IF;
                 RETURN NULL;
             END $diskstore$;
             CREATE TRIGGER {ti} AFTER INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {f}();
             CREATE TRIGGER {tu} AFTER UPDATE ON {t} FOR EACH ROW
                 WHEN (OLD.size IS DISTINCT FROM NEW.size) EXECUTE FUNCTION {f}();
             CREATE TRIGGER {td} AFTER DELETE ON {t} REFERENCING OLD TABLE AS diskstore_old
                 FOR EACH STATEMENT EXECUTE FUNCTION {f}();
             INSERT INTO {tt} (n, size) SELECT count(*), COALESCE(sum(size), 0) FROM {t};"
        )
    }

    /// (Re)creates the function of one write of a cache with limits, so that an
    /// autocommitted write is one round trip: under the table's advisory lock (`lock`, the
    /// statement every limited writer takes), the upsert `upsert` (its parameters `$1`–`$7`
    /// as the function's first seven arguments, `$8` whether only a dead entry may be
    /// replaced), then room made as `PgCache::make_room` makes it: expired rows first, then
    /// by the policy's order (`$11`: an `ORDER BY` list) in batches; under the `none`
    /// policy (`$11` NULL) a write that does not fit raises [`FULL_STATE`] and so is
    /// undone with its statement. `$9`/`$10`: the count and size limits (NULL: none);
    /// entries expired by `$7` (now) go first. Returns the rows the upsert wrote.
    pub(crate) fn create_write(
        &self,
        t: &str,
        lock: &str,
        upsert: &str,
        upsert_dead: &str,
    ) -> String {
        let (tt, w) = (&self.totals, &self.write);
        let params = |sql: &str| {
            (1..=7).rev().fold(sql.to_owned(), |q, i| {
                q.replace(&format!("${i}"), &format!("a{i}"))
            })
        };
        let (upsert, upsert_dead) = (params(upsert), params(upsert_dead));
        format!(
            "CREATE OR REPLACE FUNCTION {w}(a1 bytea, a2 bigint, a3 bytea, a4 double precision,
                 a5 bytea, a6 bigint, a7 double precision, only_dead boolean, count_limit bigint,
                 size_limit bigint, evict_order text)
             RETURNS bigint LANGUAGE plpgsql AS $diskstore$
             DECLARE
                 wrote bigint;
                 v_n bigint;
                 v_sz bigint;
                 v_rows bigint;
                 expired_gone boolean := false;
             BEGIN
                 {perform};
                 IF only_dead THEN
                     {upsert_dead};
                 ELSE
                     {upsert};
                 END IF;
                 GET DIAGNOSTICS wrote = ROW_COUNT;
                 LOOP
                     SELECT COALESCE(sum(x.n), 0)::bigint, COALESCE(sum(x.size), 0)::bigint, count(*)
                         INTO v_n, v_sz, v_rows FROM {tt} AS x;
                     IF v_rows > {COMPACT_AT} THEN
                         {compact};
                     END IF;
                     EXIT WHEN NOT ((count_limit IS NOT NULL AND v_n > count_limit)
                         OR (size_limit IS NOT NULL AND v_sz > size_limit));
                     IF NOT expired_gone THEN
                         DELETE FROM {t} WHERE expire_at IS NOT NULL AND expire_at <= a7;
                         expired_gone := true;
                     ELSIF evict_order IS NULL THEN
                         RAISE EXCEPTION USING ERRCODE = '{FULL_STATE}', MESSAGE = format(
                             'the cache is full (%s entries, %s bytes) and its eviction policy is none',
                             v_n, v_sz);
                     ELSE
                         EXECUTE format('DELETE FROM {t_lit} WHERE key IN (SELECT key FROM {t_lit} ORDER BY %s LIMIT $1)', evict_order)
                             USING GREATEST(1, LEAST(256, COALESCE(v_n - count_limit, 0)));
                     END IF;
                 END LOOP;
                 RETURN wrote;
             END $diskstore$;",
            compact = self.compact_totals(),
            perform = lock.replacen("SELECT", "PERFORM", 1),
            t_lit = t.replace('\'', "''").replace('%', "%%"),
        )
    }

    /// `(count, size, delta rows)` from the totals.
    pub(crate) fn read_totals(&self) -> String {
        format!(
            "SELECT COALESCE(sum(n), 0)::bigint, COALESCE(sum(size), 0)::bigint, count(*) \
             FROM {}",
            self.totals
        )
    }

    /// Folds the delta rows into one (only rows visible to the statement: rows other
    /// writers add meanwhile stay, and still count).
    pub(crate) fn compact_totals(&self) -> String {
        let tt = &self.totals;
        format!(
            "WITH d AS (DELETE FROM {tt} RETURNING n, size) \
             INSERT INTO {tt} (n, size) SELECT sum(n), sum(size) FROM d HAVING count(*) > 0"
        )
    }

    /// Adds `$1` hits and `$2` misses.
    pub(crate) fn add_stats(&self) -> String {
        format!(
            "UPDATE {} SET hits = hits + $1, misses = misses + $2",
            self.stats
        )
    }

    /// The hits and misses.
    pub(crate) fn read_stats(&self) -> String {
        format!("SELECT hits, misses FROM {}", self.stats)
    }

    /// Sets the counts to zero, returning what they were.
    pub(crate) fn reset_stats(&self) -> String {
        let s = &self.stats;
        format!(
            "UPDATE {s} SET hits = 0, misses = 0 FROM (SELECT hits, misses FROM {s} FOR UPDATE) \
             AS old RETURNING old.hits, old.misses"
        )
    }
}
