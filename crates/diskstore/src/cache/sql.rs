//! Every SQL text of a cache, built once when the cache opens.
//!
//! A cache is one store table (`_key` and the value columns, as in a plain store) with five
//! more columns, plus one row in a shared metadata table:
//!
//! * `_expire_at` — expiry in microseconds since the Unix epoch, `NULL` for never
//!   (partial index `<table>_expire_at`, used by purging and `len`);
//! * `_size` — the entry's accounted bytes (key plus value cells);
//! * `_tag` — an optional tag (partial index `<table>_tag`, used by `evict`);
//! * `_order` — recency rank for least-recently-used (index `<table>_order`);
//! * `_hits` — read count for least-frequently-used (index `<table>_hits`).
//!
//! Least-recently-stored uses the rowid: every store deletes and re-inserts the row, so
//! rowid order is store order and that policy needs no index of its own.
//!
//! The metadata row (`_cache_meta`, one row per cache table) holds the running byte total
//! and entry count, kept exact by triggers in the same transaction as every insert, delete
//! and size change, whoever makes it; plus the recency sequence and the hit/miss counters.
//! Identifiers go through [`quote_ident`]; keys, values and times are always bound.

use crate::error::Result;
use crate::schema::quote_ident;

use super::policy::EvictionPolicy;

/// The metadata table shared by every cache in a file.
pub(crate) const META_TABLE: &str = "_cache_meta";

/// The lease table used by `get_or_insert_with`'s stampede protection.
pub(crate) const LEASE_TABLE: &str = "_cache_lease";

/// The shared table of value-file references whose rows are gone (see `files.rs`).
pub(crate) const TRASH_TABLE: &str = "_cache_trash";

/// Expired entries deleted by each write, at most (the amortised purge).
pub const PURGE_PER_WRITE: i64 = 16;

/// Rows deleted per transaction by `expire` and `evict`, so that a large purge never holds
/// the write lock for long. (Limits are literals in the SQL: a bound `LIMIT` makes SQLite
/// re-prepare the statement on every new binding.)
pub(crate) const BATCH: i64 = 1000;

/// Rows per page of a scan.
pub const SCAN_PAGE: usize = 256;

/// Ids of the cache's statements kept prepared on every thread's connection (see
/// `Table::held`), after the table's own.
pub(crate) mod stmt {
    use crate::statement::held::CACHE;
    pub const GET: usize = CACHE;
    pub const GET_LRU: usize = CACHE + 1;
    pub const GET_LFU: usize = CACHE + 2;
    pub const CONTAINS: usize = CACHE + 3;
    pub const DELETE: usize = CACHE + 4;
    pub const INSERT: usize = CACHE + 5;
    pub const INSERT_NEW: usize = CACHE + 6;
    pub const ANY_EXPIRED: usize = CACHE + 7;
    pub const META_READ: usize = CACHE + 8;
    pub const ADD_STATS: usize = CACHE + 9;
    pub const NEXT_ORDER: usize = CACHE + 10;
    pub const TOUCH: usize = CACHE + 11;
    pub const FIRST_VALUE: usize = CACHE + 12;
    pub const SET_FIRST_VALUE: usize = CACHE + 13;
    pub const DELETE_IF_EXPIRED: usize = CACHE + 14;
    pub const TOUCH_STORED: usize = CACHE + 15;
    pub const ANY_TRASH: usize = CACHE + 16;
    pub const TAKE_TRASH: usize = CACHE + 17;
    pub const PROBE: usize = CACHE + 18;
    pub const PROBE_META: usize = CACHE + 19;
}

/// The cache's own columns, after the value columns.
pub(crate) const CACHE_COLUMNS: [&str; 6] =
    ["_expire_at", "_size", "_tag", "_order", "_hits", "_file"];

/// Suffixes of the cache's indexes: `<table>_<suffix>`.
pub(crate) const INDEX_SUFFIXES: [&str; 4] = ["expire_at", "tag", "order", "hits"];

/// Suffixes of the cache's triggers: `<table>_cache_<suffix>`.
pub(crate) const TRIGGER_SUFFIXES: [&str; 5] =
    ["insert", "delete", "resize", "file_delete", "file_update"];

/// What the trigger bodies of this version say, and those of older versions do not.
pub(crate) const IGNORE_MARK: &str = "OR IGNORE";

/// An SQL string literal (only for names baked into trigger bodies, which cannot take
/// parameters).
fn text_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// All SQL texts of one cache table.
#[derive(Debug)]
pub(crate) struct CacheSql {
    /// `?1` key → `_key, values…, _expire_at`.
    pub get: String,
    /// `?1` key, `?2` now, `?3` order → the live row, recording a use (LRU).
    pub get_lru: String,
    /// `?1` key, `?2` now → the live row, counting a use (LFU).
    pub get_lfu: String,
    /// `?1` key → `_size` of the row, if any.
    pub size_of: String,
    /// Deletes every row.
    pub clear: String,
    /// `?1` key → deletes it, returning `_expire_at`.
    pub delete: String,
    /// `?1` key, `?2` now → deletes the row only if it has expired.
    pub delete_if_expired: String,
    /// `?1` key, `?2..` values, then `_expire_at, _size, _tag, _order, _file`. `OR
    /// IGNORE`, as every write statement that fires triggers: no statement journal (the
    /// caller checks NOT NULL columns itself; the key is absent).
    pub insert: String,
    /// The same text as `insert`, for when the key may exist (then nothing is stored).
    pub insert_new: String,
    /// `?1` key, `?2` now, `?3` new expiry → updates a live row's expiry.
    pub touch: String,
    /// `touch` for any stored entry, expired or not (`?2`, the time, is not used).
    pub touch_stored: String,
    /// `?1` key → the first value column and `_expire_at`.
    pub first_value: String,
    /// `?1` key, `?2` value → replaces the first value column in place.
    pub set_first_value: String,
    /// `?1` now → deletes up to [`PURGE_PER_WRITE`] expired rows (oldest expiry first).
    pub purge: String,
    /// `?1` now → a row if any entry has expired (a cheap probe on the expiry index).
    pub any_expired: String,
    /// `?1` now → deletes up to [`BATCH`] expired rows.
    pub purge_batch: String,
    /// `?1` now → how many rows have expired.
    pub count_expired: String,
    /// `?1` now, `?2` rowid to keep → deletes the expired row that expired first,
    /// returning `_size`.
    pub evict_expired: String,
    /// `?1` rowid to keep → deletes the policy's next victim, returning `_size`
    /// (`None` for policy `None`).
    pub evict_one: Option<String>,
    /// `?1` tag → deletes up to [`BATCH`] rows with the tag.
    pub evict_tag: String,
    /// Live rows by rowid, [`SCAN_PAGE`] at most: `?1` from, `?2` to, `?3` now →
    /// `_key, values…, _expire_at, rowid`; ascending then descending.
    pub scan: [String; 2],
    /// `?1` now, `?2` key → true if a live row has the key.
    pub contains: String,
    /// `?1` table → `volume, count, hits, misses`.
    pub meta_read: String,
    /// `?1` table → the next recency number.
    pub next_order: String,
    /// `?1` table, `?2` hits, `?3` misses → adds to the counters.
    pub add_stats: String,
    /// `?1` table → zeroes the counters.
    pub reset_stats: String,
    /// `?1` table → creates the metadata row from the table's contents if missing.
    pub meta_init: String,
    /// `?1` now → whether any entry has expired, whether the trash table has rows: what a
    /// write checks after storing its row, in one statement.
    pub probe: String,
    /// As `probe`, then `volume, count, tbl` of the metadata row whose rowid is `?2` (the
    /// caller checks `tbl`: one b-tree descent instead of the name's two).
    pub probe_meta: String,
    /// `?1` table → the rowid of its metadata row.
    pub meta_rowid: String,
    /// Metadata table, triggers and indexes (`IF NOT EXISTS`; run at open).
    pub setup: String,
    /// `(name, CREATE TRIGGER …)` of each trigger, to replace one that a version before
    /// `OR IGNORE` bodies created (see [`IGNORE_MARK`]).
    pub triggers: Vec<(String, String)>,
    /// `?1` table, `?2` key, `?3` now → deletes a lease that has run out.
    pub lease_clear: String,
    /// `?1` table, `?2` key, `?3` until → takes the lease unless someone holds it.
    pub lease_take: String,
    /// `?1` table, `?2` key → gives a lease back.
    pub lease_release: String,
    pub any_trash: String,
    /// `?1` key, `?2` `_file` reference → deletes that entry if it still refers to it.
    pub forget: String,
    pub take_trash: String,
    pub files: String,
    pub trash: String,
}

impl CacheSql {
    /// Builds the texts for table `name` with value columns `values` (their names).
    pub fn new(name: &str, values: &[String], policy: EvictionPolicy) -> Result<CacheSql> {
        let t = quote_ident(name)?;
        let m = quote_ident(META_TABLE)?;
        let lease = quote_ident(LEASE_TABLE)?;
        let trash = quote_ident(TRASH_TABLE)?;
        let idx = |suffix: &str| quote_ident(&format!("{name}_{suffix}"));
        let names = values
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Result<Vec<_>>>()?;
        let cols: String = names.iter().map(|n| format!(", {n}")).collect();
        let first = names.first().cloned().unwrap_or_else(|| "NULL".into());
        let params: String = (0..names.len()).map(|i| format!(", ?{}", i + 2)).collect();
        let n = names.len() + 2;
        let meta_params = format!("?{n}, ?{}, ?{}, ?{}, ?{}", n + 1, n + 2, n + 3, n + 4);
        let live = "(_expire_at IS NULL OR _expire_at > ?2)";
        let returning = format!("RETURNING _key{cols}, _expire_at, _file");
        let victim_order = match policy {
            EvictionPolicy::LeastRecentlyStored => Some("rowid"),
            EvictionPolicy::LeastRecentlyUsed => Some("_order"),
            EvictionPolicy::LeastFrequentlyUsed => Some("_hits, rowid"),
            EvictionPolicy::None => None,
        };
        let scan = |order: &str| {
            format!(
                "SELECT _key{cols}, _expire_at, rowid, _file FROM {t} WHERE rowid BETWEEN ?1 AND ?2 \
                 AND (_expire_at IS NULL OR _expire_at > ?3) ORDER BY rowid {order} \
                 LIMIT {SCAN_PAGE}"
            )
        };
        let purge = |limit: i64| {
            format!(
                "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} \
                 WHERE _expire_at <= ?1 ORDER BY _expire_at LIMIT {limit})"
            )
        };
        let lit = text_literal(name);
        let trigger = |suffix: &str| quote_ident(&format!("{name}_cache_{suffix}"));
        let policy_index = match policy {
            EvictionPolicy::LeastRecentlyUsed => {
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {t} (_order);\n",
                    idx("order")?
                )
            }
            EvictionPolicy::LeastFrequentlyUsed => {
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {t} (_hits);\n",
                    idx("hits")?
                )
            }
            _ => String::new(),
        };
        let ins = trigger("insert")?;
        let del = trigger("delete")?;
        let upd = trigger("resize")?;
        let file_del = trigger("file_delete")?;
        let file_upd = trigger("file_update")?;
        // Trigger bodies say `OR IGNORE` (their constraints cannot fail: `_size` and
        // `_file` are checked by the WHEN clauses and NOT NULL columns): a statement that
        // fires a trigger which may abort needs a statement journal inside a transaction,
        // which cost a cache write about a fifth of its instructions (see docs/cache.md).
        let triggers = vec![
            (
                format!("{name}_cache_insert"),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {ins} AFTER INSERT ON {t} BEGIN \
                     UPDATE OR IGNORE {m} SET volume = volume + NEW._size, count = count + 1 \
                     WHERE tbl = {lit}; END"
                ),
            ),
            (
                format!("{name}_cache_delete"),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {del} AFTER DELETE ON {t} BEGIN \
                     UPDATE OR IGNORE {m} SET volume = volume - OLD._size, count = count - 1 \
                     WHERE tbl = {lit}; END"
                ),
            ),
            (
                format!("{name}_cache_resize"),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {upd} AFTER UPDATE OF _size ON {t} BEGIN \
                     UPDATE OR IGNORE {m} SET volume = volume + NEW._size - OLD._size \
                     WHERE tbl = {lit}; END"
                ),
            ),
            (
                format!("{name}_cache_file_delete"),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {file_del} AFTER DELETE ON {t} \
                     WHEN OLD._file IS NOT NULL BEGIN \
                     INSERT OR IGNORE INTO {trash} (file) VALUES (OLD._file); END"
                ),
            ),
            (
                format!("{name}_cache_file_update"),
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {file_upd} AFTER UPDATE OF _file ON {t} \
                     WHEN OLD._file IS NOT NULL AND OLD._file IS NOT NEW._file BEGIN \
                     INSERT OR IGNORE INTO {trash} (file) VALUES (OLD._file); END"
                ),
            ),
        ];
        let trigger_sql: String = triggers
            .iter()
            .map(|(_, sql)| format!("{sql};\n"))
            .collect();
        let setup = format!(
            "CREATE TABLE IF NOT EXISTS {m} (tbl TEXT PRIMARY KEY NOT NULL, \
               volume INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 0, \
               seq INTEGER NOT NULL DEFAULT 0, hits INTEGER NOT NULL DEFAULT 0, \
               misses INTEGER NOT NULL DEFAULT 0);\n\
             CREATE TABLE IF NOT EXISTS {lease} (tbl TEXT NOT NULL, key NOT NULL, \
               until INTEGER NOT NULL, PRIMARY KEY (tbl, key));\n\
             CREATE INDEX IF NOT EXISTS {exp} ON {t} (_expire_at) WHERE _expire_at IS NOT NULL;\n\
             CREATE INDEX IF NOT EXISTS {tag} ON {t} (_tag) WHERE _tag IS NOT NULL;\n\
             {policy_index}\
             CREATE TABLE IF NOT EXISTS {trash} (file TEXT NOT NULL);\n\
             {trigger_sql}",
            exp = idx("expire_at")?,
            tag = idx("tag")?,
        );
        let expired = format!("EXISTS (SELECT 1 FROM {t} WHERE _expire_at <= ?1)");
        let any_trash = format!("EXISTS (SELECT 1 FROM {trash})");
        Ok(CacheSql {
            get: format!("SELECT _key{cols}, _expire_at, _file FROM {t} WHERE _key = ?1"),
            get_lru: format!("UPDATE {t} SET _order = ?3 WHERE _key = ?1 AND {live} {returning}"),
            get_lfu: format!(
                "UPDATE {t} SET _hits = _hits + 1 WHERE _key = ?1 AND {live} {returning}"
            ),
            size_of: format!("SELECT _size FROM {t} WHERE _key = ?1"),
            clear: format!("DELETE FROM {t}"),
            delete: format!("DELETE FROM {t} WHERE _key = ?1 RETURNING _expire_at, _file"),
            delete_if_expired: format!("DELETE FROM {t} WHERE _key = ?1 AND _expire_at <= ?2"),
            insert: format!(
                "INSERT OR IGNORE INTO {t} (_key{cols}, _expire_at, _size, _tag, _order, _file) \
                 VALUES (?1{params}, {meta_params})"
            ),
            insert_new: format!(
                "INSERT OR IGNORE INTO {t} (_key{cols}, _expire_at, _size, _tag, _order, _file) \
                 VALUES (?1{params}, {meta_params})"
            ),
            touch: format!("UPDATE {t} SET _expire_at = ?3 WHERE _key = ?1 AND {live}"),
            touch_stored: format!("UPDATE {t} SET _expire_at = ?3 WHERE _key = ?1"),
            first_value: format!("SELECT {first}, _expire_at FROM {t} WHERE _key = ?1"),
            set_first_value: format!("UPDATE {t} SET {first} = ?2 WHERE _key = ?1"),
            purge: purge(PURGE_PER_WRITE),
            any_expired: format!("SELECT 1 FROM {t} WHERE _expire_at <= ?1 LIMIT 1"),
            purge_batch: purge(BATCH),
            count_expired: format!("SELECT count(*) FROM {t} WHERE _expire_at <= ?1"),
            evict_expired: format!(
                "DELETE FROM {t} WHERE rowid = (SELECT rowid FROM {t} \
                 WHERE _expire_at <= ?1 AND rowid <> ?2 ORDER BY _expire_at LIMIT 1) \
                 RETURNING _size"
            ),
            evict_one: victim_order.map(|order| {
                format!(
                    "DELETE FROM {t} WHERE rowid = (SELECT rowid FROM {t} \
                     WHERE rowid <> ?1 ORDER BY {order} LIMIT 1) RETURNING _size"
                )
            }),
            evict_tag: format!(
                "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE _tag = ?1 LIMIT {BATCH})"
            ),
            scan: [scan("ASC"), scan("DESC")],
            contains: format!(
                "SELECT 1 FROM {t} WHERE _key = ?2 AND (_expire_at IS NULL OR _expire_at > ?1)"
            ),
            meta_read: format!("SELECT volume, count, hits, misses FROM {m} WHERE tbl = ?1"),
            next_order: format!("UPDATE {m} SET seq = seq + 1 WHERE tbl = ?1 RETURNING seq"),
            add_stats: format!(
                "UPDATE {m} SET hits = hits + ?2, misses = misses + ?3 WHERE tbl = ?1"
            ),
            reset_stats: format!("UPDATE {m} SET hits = 0, misses = 0 WHERE tbl = ?1"),
            meta_init: format!(
                "INSERT OR IGNORE INTO {m} (tbl, volume, count, seq) \
                 SELECT ?1, coalesce(sum(_size), 0), count(*), coalesce(max(_order), 0) FROM {t}"
            ),
            probe: format!("SELECT {expired}, {any_trash}"),
            probe_meta: format!(
                "SELECT {expired}, {any_trash}, volume, count, tbl FROM {m} WHERE rowid = ?2"
            ),
            meta_rowid: format!("SELECT rowid FROM {m} WHERE tbl = ?1"),
            setup,
            triggers,
            lease_clear: format!("DELETE FROM {lease} WHERE tbl = ?1 AND key = ?2 AND until <= ?3"),
            lease_take: format!(
                "INSERT INTO {lease} (tbl, key, until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (tbl, key) DO NOTHING"
            ),
            lease_release: format!("DELETE FROM {lease} WHERE tbl = ?1 AND key = ?2"),
            any_trash: format!("SELECT 1 FROM {trash} LIMIT 1"),
            forget: format!("DELETE FROM {t} WHERE _key = ?1 AND _file = ?2"),
            take_trash: format!("DELETE FROM {trash} RETURNING file"),
            files: format!("SELECT _key, _file FROM {t} WHERE _file IS NOT NULL"),
            trash: format!("SELECT file FROM {trash}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_quotes_stay_names() {
        assert_eq!(text_literal("it's"), "'it''s'");
        let sql = CacheSql::new(
            "a\"b'c",
            &["value".to_string()],
            EvictionPolicy::LeastRecentlyUsed,
        )
        .unwrap();
        assert!(sql.get.contains("FROM \"a\"\"b'c\""));
        assert!(sql.setup.contains("WHERE tbl = 'a\"b''c'"));
        assert!(sql.evict_one.unwrap().contains("ORDER BY _order"));
    }

    #[test]
    fn policy_none_has_no_victim() {
        let sql = CacheSql::new("c", &["value".to_string()], EvictionPolicy::None).unwrap();
        assert!(sql.evict_one.is_none());
    }
}
