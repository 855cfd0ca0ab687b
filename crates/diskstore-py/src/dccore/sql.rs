//! The SQL of the cache's hot operations: statements, the cull, transactions, errors.

use std::sync::atomic::{AtomicI64, Ordering};

use diskstore::rusqlite::{self, Connection, ErrorCode};
use pyo3::prelude::*;

use super::{Config, Timeout};

/// Eviction policies, in the order the Python layer numbers them (0 is `none`).
pub(super) const POLICY_LRS: u8 = 1;
pub(super) const POLICY_LRU: u8 = 2;
pub(super) const POLICY_LFU: u8 = 3;

pub(super) const SELECT_ROW: &str = "SELECT rowid, expire_time, tag, mode, filename, value FROM Cache \
     WHERE key = ?1 AND raw = ?2 AND (expire_time IS NULL OR expire_time > ?3)";
pub(super) const SELECT_OLD: &str =
    "SELECT rowid, filename, expire_time FROM Cache WHERE key = ?1 AND raw = ?2";
pub(super) const UPDATE_ROW: &str = "UPDATE Cache SET store_time = ?1, expire_time = ?2, access_time = ?1, \
     access_count = 0, tag = ?3, size = ?4, mode = ?5, filename = ?6, value = ?7 WHERE rowid = ?8";
/// A new row, or nothing when the key is already stored (one statement for a new key: the
/// unique index's check finds an old one). The skip also means the statement can never
/// abort half done, so SQLite keeps no statement journal for it.
pub(super) const INSERT_NEW_ROW: &str = "INSERT INTO Cache(key, raw, store_time, expire_time, \
     access_time, access_count, tag, size, mode, filename, value) \
     VALUES (?1, ?2, ?3, ?4, ?3, 0, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING";
/// Rows that expire, soonest first; the caller appends the limit as a literal (a bound
/// `LIMIT ?` costs about 4 µs more per run: SQLite plans the statement again).
pub(super) const SELECT_EXPIRING: &str = "SELECT rowid, filename, expire_time FROM Cache \
     WHERE expire_time IS NOT NULL ORDER BY expire_time LIMIT ";
pub(super) const DELETE_ROWID: &str = "DELETE FROM Cache WHERE rowid = ?1";

/// A queue row of `Cache.push` under a key it generated. `ON CONFLICT DO NOTHING` (the
/// caller fails the push when nothing was stored, see [`key_taken`]) rather than a unique
/// check that may abort: such a check makes SQLite copy every page the insert changes
/// into a statement journal, since the insert fires a trigger inside a transaction.
pub(super) const PUSH_ROW: &str = "INSERT INTO Cache(key, raw, store_time, expire_time, \
     access_time, access_count, tag, size, mode, filename, value) \
     VALUES (?1, 1, ?2, ?3, ?2, 0, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING";

/// The error of a push whose generated key is already stored: the unique constraint's
/// error, as a plain `INSERT` would have failed.
pub(super) fn key_taken() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
        Some("UNIQUE constraint failed: Cache.key, Cache.raw".to_owned()),
    )
}

/// The first (`[0]`) or last (`[1]`) row of a queue's key range `?1 < key < ?2`, as
/// `(rowid, key, expire_time, tag, mode, filename, value)`.
pub(super) const QUEUE_END: [&str; 2] = [
    "SELECT rowid, key, expire_time, tag, mode, filename, value FROM Cache \
     WHERE ?1 < key AND key < ?2 AND raw = 1 ORDER BY key ASC LIMIT 1",
    "SELECT rowid, key, expire_time, tag, mode, filename, value FROM Cache \
     WHERE ?1 < key AND key < ?2 AND raw = 1 ORDER BY key DESC LIMIT 1",
];

pub(super) const VOLUME: &str = "SELECT (SELECT page_count FROM pragma_page_count()) * \
     (SELECT page_size FROM pragma_page_size()) + (SELECT size FROM Meta WHERE id = 0)";

/// The index a policy's eviction order needs and the statement selecting its next victims
/// (`None` for the policy `none`).
///
/// The index is made by the first cull that evicts by policy, not when the cache is made:
/// a cache that never reaches its size limit then never writes an index page per write.
pub(super) fn cull_policy_sql(policy: u8) -> Option<(&'static str, &'static str)> {
    match policy {
        POLICY_LRS => Some((
            "CREATE INDEX IF NOT EXISTS Cache_store_time ON Cache (store_time)",
            "SELECT rowid, filename FROM Cache ORDER BY store_time LIMIT ",
        )),
        POLICY_LRU => Some((
            "CREATE INDEX IF NOT EXISTS Cache_access_time ON Cache (access_time)",
            "SELECT rowid, filename FROM Cache ORDER BY access_time LIMIT ",
        )),
        POLICY_LFU => Some((
            "CREATE INDEX IF NOT EXISTS Cache_access_count ON Cache (access_count)",
            "SELECT rowid, filename FROM Cache ORDER BY access_count LIMIT ",
        )),
        _ => None,
    }
}

/// This process's view of the cache's volume, so that a write far below the size limit
/// need not measure it (two pragmas and a read, about 2 µs of a 17 µs write).
///
/// A write measures when nothing is known, when the last measure plus what this process
/// wrote since reaches half the limit, or every 64 writes (other processes' writes are
/// seen then). The size limit is soft in diskcache too: it bounds when culling starts.
pub(super) struct VolumeHint {
    seen: AtomicI64,
    grown: AtomicI64,
    writes: AtomicI64,
}

/// "Not measured yet": large enough to force a measure, small enough not to overflow.
pub(super) const VOLUME_UNKNOWN: i64 = i64::MAX / 4;

impl VolumeHint {
    pub(super) fn new() -> Self {
        VolumeHint {
            seen: AtomicI64::new(VOLUME_UNKNOWN),
            grown: AtomicI64::new(0),
            writes: AtomicI64::new(0),
        }
    }

    pub(super) fn forget(&self) {
        self.seen.store(VOLUME_UNKNOWN, Ordering::Relaxed);
    }

    /// Records a write of about `written` bytes; whether the volume may now be near `limit`.
    pub(super) fn must_measure(&self, limit: i64, written: i64) -> bool {
        let grown = self
            .grown
            .fetch_add(written, Ordering::Relaxed)
            .saturating_add(written);
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        writes >= 64 || self.seen.load(Ordering::Relaxed).saturating_add(grown) >= limit / 2
    }

    pub(super) fn measured(&self, volume: i64) {
        self.seen.store(volume, Ordering::Relaxed);
        self.grown.store(0, Ordering::Relaxed);
        self.writes.store(0, Ordering::Relaxed);
    }
}

/// An error of an operation: SQLite's, or a busy database past the timeout.
pub(super) enum OpError {
    Busy,
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                OpError::Busy
            }
            _ => OpError::Sql(e),
        }
    }
}

impl From<OpError> for PyErr {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Busy => Timeout::new_err("database timeout expired"),
            OpError::Sql(e) => crate::errors::to_py_err(diskstore::Error::from(e)),
        }
    }
}

pub(super) type OpResult<T> = Result<T, OpError>;

/// Deletes the rows a `SELECT rowid, filename, ...` finds, in its order and while `take`
/// accepts them (a read first, so that a cull finding nothing writes nothing), and adds
/// their files to `out`; returns how many.
pub(super) fn delete_selected(
    conn: &Connection,
    select: &str,
    take: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<bool>,
    out: &mut Vec<String>,
) -> OpResult<usize> {
    let mut victims: Vec<(i64, Option<String>)> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(select)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if !take(row)? {
                break;
            }
            victims.push((row.get(0)?, row.get(1)?));
        }
    }
    if victims.is_empty() {
        return Ok(0);
    }
    let mut delete = conn.prepare_cached(DELETE_ROWID)?;
    for (rowid, file) in &victims {
        delete.execute([rowid])?;
        out.extend(file.clone());
    }
    Ok(victims.len())
}

/// Runs `f` inside a write transaction: its own `BEGIN IMMEDIATE`/`COMMIT` when the
/// connection is in autocommit mode, else inside the caller's open transaction.
pub(super) fn in_write<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> OpResult<T>,
) -> OpResult<T> {
    if !conn.is_autocommit() {
        return f(conn);
    }
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    match f(conn) {
        Ok(v) => match conn.prepare_cached("COMMIT")?.execute([]) {
            Ok(_) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

/// Evicts expired rows, then (if the cache is over its size limit) rows by policy, at most
/// `cull_limit` in all; the files of removed rows are added to `out`.
///
/// `hint` (the process's volume view and the bytes just written) lets a write far below
/// the size limit skip measuring the volume; `None` always measures.
pub(super) fn cull(
    conn: &Connection,
    now: f64,
    cfg: Config,
    limit: Option<i64>,
    hint: Option<(&VolumeHint, i64)>,
    out: &mut Vec<String>,
) -> OpResult<()> {
    let mut left = limit.unwrap_or(cfg.cull_limit);
    if left <= 0 {
        return Ok(());
    }
    let expiring = format!("{SELECT_EXPIRING}{left}");
    let n = delete_selected(conn, &expiring, |r| Ok(r.get::<_, f64>(2)? < now), out)?;
    left -= i64::try_from(n).unwrap_or(i64::MAX);
    if left <= 0 {
        return Ok(());
    }
    let Some((index, select)) = cull_policy_sql(cfg.policy) else {
        return Ok(());
    };
    if let Some((volume, written)) = hint
        && !volume.must_measure(cfg.size_limit, written)
    {
        return Ok(());
    }
    let volume: i64 = conn.prepare_cached(VOLUME)?.query_row([], |r| r.get(0))?;
    if let Some((hint, _)) = hint {
        hint.measured(volume);
    }
    if volume < cfg.size_limit {
        return Ok(());
    }
    conn.prepare_cached(index)?.execute([])?;
    delete_selected(conn, &format!("{select}{left}"), |_| Ok(true), out)?;
    Ok(())
}
