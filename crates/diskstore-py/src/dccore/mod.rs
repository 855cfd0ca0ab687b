//! The native half of `diskstore.diskcache`: one SQLite connection per thread on a cache
//! directory's database (our bundled SQLite), with the cache's hot operations (`get`, `set`,
//! `add`) done in one call each and any other statement run through `execute`.
//!
//! The Python layer (`python/diskstore/diskcache/core.py`) keeps python-diskcache's `Disk`
//! protocol: it turns keys and values into database cells and files, this class stores and
//! finds them. Statements run with the GIL released; a busy database past the timeout raises
//! `diskstore.diskcache.Timeout`.
//!
//! `pool` keeps the connections (one per thread, closed when the thread ends) and the busy
//! wait; `sql` holds the statements, the cull and transactions; `cells` converts between
//! Python objects and database cells.

mod cells;
mod ckpt;
mod fanout;
mod pool;
mod sql;
mod vfs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diskstore::rusqlite::types::Value;
use diskstore::rusqlite::{self, Connection, OpenFlags};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use cells::*;
use pool::*;
use sql::*;

pyo3::create_exception!(
    diskstore.diskcache,
    Timeout,
    PyException,
    "Database timeout expired."
);

/// The settings the native operations follow; the Python layer pushes them on every change.
#[derive(Clone, Copy)]
struct Config {
    cull_limit: i64,
    size_limit: i64,
    policy: u8,
    statistics: bool,
}

/// A connection pool keyed by thread, plus the settings of the cache it serves.
#[pyclass(module = "diskstore._diskstore", name = "_DcCore", frozen)]
pub struct DcCore {
    path: String,
    timeout: Duration,
    pragmas: Mutex<Vec<(String, String)>>,
    conns: Arc<ConnMap>,
    config: Mutex<Config>,
    volume: VolumeHint,
    checkpoints: Arc<ckpt::Checkpointer>,
    /// Whether the last `set`/`add` stored a new key: the next one then tries the insert
    /// first (one statement for a new key) instead of reading the old row first.
    last_new: AtomicBool,
}

impl DcCore {
    fn open(&self) -> OpResult<Conn> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn = if vfs::register() {
            Connection::open_with_flags_and_vfs(&self.path, flags, vfs::NAME)?
        } else {
            Connection::open_with_flags(&self.path, flags)?
        };
        conn.busy_handler(Some(busy_wait))?;
        conn.set_prepared_statement_cache_capacity(64);
        // The engine's checkpointer: a `wal_autocheckpoint` pragma below sets its limit.
        let hook = ckpt::install(&conn, &self.checkpoints);
        let pragmas = self.pragmas.lock().map(|p| p.clone()).unwrap_or_default();
        for (name, value) in pragmas {
            apply_pragma(&conn, &name, &value)?;
        }
        Ok(Conn {
            conn,
            generation: diskstore::fork_generation(),
            _hook: hook,
        })
    }

    /// Runs `f` on the calling thread's connection (opened on first use, and again in a
    /// forked child), with the GIL released.
    fn with_conn<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Connection, Config) -> OpResult<T> + Send,
    ) -> PyResult<T> {
        // Every step that holds a lock of ours or is inside SQLite runs inside the fork
        // gate (`diskstore::enter_sqlite`), so that a `fork()` by another thread waits for
        // it and the child finds no mutex held by a thread it does not have. The GIL is
        // never waited for inside the gate (the forking thread holds it).
        let tid = std::thread::current().id();
        let (cfg, taken) = {
            let _inside = diskstore::enter_sqlite();
            let cfg = *self.config.lock().map_err(|_| poisoned())?;
            (cfg, self.conns.lock().map_err(|_| poisoned())?.remove(&tid))
        };
        let generation = diskstore::fork_generation();
        let (result, conn) = py.detach(|| {
            let _inside = diskstore::enter_sqlite();
            WAIT_LIMIT.with(|w| w.set(self.timeout));
            let conn = match taken {
                Some(c) if c.generation == generation => c,
                other => {
                    if let Some(stale) = other {
                        // A connection inherited over fork belongs to the parent: never
                        // close it here (that would touch the parent's locks and files).
                        std::mem::forget(stale);
                    }
                    match self.open() {
                        Ok(c) => {
                            let _ = THREAD_EXIT.try_with(|t| t.watch(&self.conns));
                            c
                        }
                        Err(e) => return (Err(e), None),
                    }
                }
            };
            WAIT_LIMIT.with(|w| w.set(self.timeout));
            let r = f(&conn.conn, cfg);
            (r, Some(conn))
        });
        if let Some(conn) = conn {
            let _inside = diskstore::enter_sqlite();
            self.conns.lock().map_err(|_| poisoned())?.insert(tid, conn);
        }
        Ok(result?)
    }
}

impl DcCore {
    /// The row `(rowid, expire_time, tag, mode, filename, value)` of a live key, counting a
    /// hit or miss (statistics on) and recording the access (LRU, LFU) in one transaction.
    fn lookup(
        &self,
        py: Python<'_>,
        key: &Param<'_>,
        raw: bool,
        now: f64,
    ) -> PyResult<Option<Vec<Value>>> {
        self.with_conn(py, |c, cfg| {
            let select = |c: &Connection| -> OpResult<Option<Vec<Value>>> {
                let mut stmt = c.prepare_cached(SELECT_ROW)?;
                let mut rows = stmt.query(rusqlite::params![key, raw, now])?;
                match rows.next()? {
                    Some(r) => {
                        let mut v = Vec::with_capacity(6);
                        for i in 0..6 {
                            v.push(owned(r.get_ref(i)?));
                        }
                        Ok(Some(v))
                    }
                    None => Ok(None),
                }
            };
            let tracks = matches!(cfg.policy, POLICY_LRU | POLICY_LFU);
            if !cfg.statistics && !tracks {
                return select(c);
            }
            in_write(c, |c| {
                let row = select(c)?;
                match &row {
                    None => {
                        if cfg.statistics {
                            c.prepare_cached("UPDATE Meta SET misses = misses + 1 WHERE id = 0")?
                                .execute([])?;
                        }
                    }
                    Some(r) => {
                        if cfg.statistics {
                            c.prepare_cached("UPDATE Meta SET hits = hits + 1 WHERE id = 0")?
                                .execute([])?;
                        }
                        let Value::Integer(rowid) = r[0] else {
                            return Ok(row);
                        };
                        if cfg.policy == POLICY_LRU {
                            c.prepare_cached("UPDATE Cache SET access_time = ?1 WHERE rowid = ?2")?
                                .execute(rusqlite::params![now, rowid])?;
                        } else if cfg.policy == POLICY_LFU {
                            c.prepare_cached(
                                "UPDATE Cache SET access_count = access_count + 1 WHERE rowid = ?1",
                            )?
                            .execute([rowid])?;
                        }
                    }
                }
                Ok(row)
            })
        })
    }
}

/// A row to store: the cells `set` writes.
struct NewRow<'a> {
    key: Param<'a>,
    raw: bool,
    now: f64,
    expire_time: Option<f64>,
    tag: Param<'a>,
    size: i64,
    mode: i64,
    filename: Option<String>,
    value: Param<'a>,
}

impl DcCore {
    /// Stores `row` (`add`: only when its key is absent or expired), then culls, in one
    /// transaction (the caller's, if one is open). Returns `(stored, files_to_remove)`.
    fn store_row(
        &self,
        py: Python<'_>,
        row: &NewRow<'_>,
        add: bool,
    ) -> PyResult<(bool, Vec<String>)> {
        let NewRow {
            key,
            raw,
            now,
            expire_time,
            tag,
            size,
            mode,
            filename,
            value,
        } = row;
        let (raw, now, expire_time, size, mode) = (*raw, *now, *expire_time, *size, *mode);
        let written = cell_len(key) + cell_len(value) + size + 64;
        self.with_conn(py, |c, cfg| {
            in_write(c, |c| {
                let mut files = Vec::new();
                let insert = |c: &Connection, sql: &str| -> OpResult<usize> {
                    Ok(c.prepare_cached(sql)?.execute(rusqlite::params![
                        key,
                        raw,
                        now,
                        expire_time,
                        tag,
                        size,
                        mode,
                        filename,
                        value
                    ])?)
                };
                // A new key is one statement when the last write stored a new key too
                // (the insert skips a stored key; its row is read only then).
                let guess_new = self.last_new.load(Ordering::Relaxed);
                if guess_new && insert(c, INSERT_NEW_ROW)? == 1 {
                    cull(c, now, cfg, None, Some((&self.volume, written)), &mut files)?;
                    return Ok((true, files));
                }
                let old: Option<(i64, Option<String>, Option<f64>)> = {
                    let mut stmt = c.prepare_cached(SELECT_OLD)?;
                    let mut rows = stmt.query(rusqlite::params![key, raw])?;
                    match rows.next()? {
                        Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
                        None => None,
                    }
                };
                let is_new = old.is_none();
                if is_new != guess_new {
                    self.last_new.store(is_new, Ordering::Relaxed);
                }
                match old {
                    Some((rowid, old_file, old_expire)) => {
                        let live = old_expire.is_none_or(|t| t > now);
                        if add && live {
                            return Ok((false, files));
                        }
                        files.extend(old_file);
                        c.prepare_cached(UPDATE_ROW)?.execute(rusqlite::params![
                            now,
                            expire_time,
                            tag,
                            size,
                            mode,
                            filename,
                            value,
                            rowid
                        ])?;
                    }
                    None => {
                        // Absent in this write transaction, so the insert cannot skip it;
                        // the skipping form spares SQLite a statement journal.
                        insert(c, INSERT_NEW_ROW)?;
                    }
                }
                cull(c, now, cfg, None, Some((&self.volume, written)), &mut files)?;
                Ok((true, files))
            })
        })
    }
}

#[pymethods]
impl DcCore {
    /// Opens nothing yet: each thread opens its connection on first use.
    #[new]
    #[pyo3(signature = (path, timeout, pragmas))]
    fn new(path: String, timeout: f64, pragmas: Vec<(String, String)>) -> PyResult<Self> {
        if !timeout.is_finite() || timeout < 0.0 {
            return Err(PyValueError::new_err(
                "timeout must be a non-negative number",
            ));
        }
        Ok(DcCore {
            checkpoints: ckpt::new(path.clone()),
            path,
            timeout: Duration::from_secs_f64(timeout.min(1e9)),
            pragmas: Mutex::new(pragmas),
            conns: Arc::new(Mutex::new(HashMap::new())),
            volume: VolumeHint::new(),
            last_new: AtomicBool::new(true),
            config: Mutex::new(Config {
                cull_limit: 10,
                size_limit: 1 << 30,
                policy: POLICY_LRS,
                statistics: false,
            }),
        })
    }

    /// Sets what `get`/`set`/`add` follow: cull limit, size limit, policy number (0 none,
    /// 1 least-recently-stored, 2 least-recently-used, 3 least-frequently-used), statistics.
    fn configure(
        &self,
        cull_limit: i64,
        size_limit: i64,
        policy: u8,
        statistics: bool,
    ) -> PyResult<()> {
        if policy > POLICY_LFU {
            return Err(PyValueError::new_err("unknown eviction policy number"));
        }
        *self.config.lock().map_err(|_| poisoned())? = Config {
            cull_limit,
            size_limit,
            policy,
            statistics,
        };
        self.volume.forget();
        Ok(())
    }

    /// Records a pragma for connections opened from now on and applies it to this
    /// thread's connection.
    fn pragma(&self, py: Python<'_>, name: String, value: String) -> PyResult<()> {
        {
            let mut p = self.pragmas.lock().map_err(|_| poisoned())?;
            p.retain(|(n, _)| *n != name);
            p.push((name.clone(), value.clone()));
        }
        self.with_conn(py, move |c, _| apply_pragma(c, &name, &value))
    }

    /// Runs one statement on this thread's connection and returns its rows as tuples.
    #[pyo3(signature = (sql, args=None))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        args: Option<Vec<Bound<'py, PyAny>>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let args = args.unwrap_or_default();
        let ps = params(&args)?;
        let rows = self.with_conn(py, |c, _| {
            let mut stmt = c.prepare_cached(sql)?;
            collect_rows(&mut stmt, &ps)
        })?;
        let out = PyList::empty(py);
        for row in rows {
            out.append(row_to_py(py, row)?)?;
        }
        Ok(out)
    }

    /// Whether this thread's connection is inside a transaction.
    fn in_transaction(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_conn(py, |c, _| Ok(!c.is_autocommit()))
    }

    /// The row `(rowid, expire_time, tag, mode, filename, value)` of a live key, or `None`.
    /// Counts a hit or miss when statistics are on and records the access for the LRU and
    /// LFU policies, in one transaction.
    fn get<'py>(
        &self,
        py: Python<'py>,
        db_key: Bound<'py, PyAny>,
        raw: bool,
        now: f64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let key = param(&db_key)?;
        let row = self.lookup(py, &key, raw, now)?;
        row.map(|r| row_to_py(py, r)).transpose()
    }

    /// `get` for the plain `Disk`, in one call (the clock read here): `slow` when the key
    /// is not one the plain `Disk` stores as it is (the caller then goes through
    /// `Disk.put`), `miss` when the key is absent or expired, the value itself when stored
    /// as it is, else the tuple `(mode, filename, value)` for `Disk.fetch`.
    fn get_plain<'py>(
        &self,
        py: Python<'py>,
        key: Bound<'py, PyAny>,
        miss: Bound<'py, PyAny>,
        slow: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(db_key) = plain_key(&key)? else {
            return Ok(slow);
        };
        let Some(mut row) = self.lookup(py, &db_key, true, unix_now())? else {
            return Ok(miss);
        };
        let value = row.pop().unwrap_or(Value::Null);
        let filename = row.pop().unwrap_or(Value::Null);
        let mode = row.pop().unwrap_or(Value::Null);
        if mode == Value::Integer(1) {
            return cell_to_py(py, value);
        }
        Ok(row_to_py(py, vec![mode, filename, value])?.into_any())
    }

    /// Stores a row (`set`), or only when the key is absent or expired (`add=True`), then
    /// culls. Returns `(stored, files_to_remove)`: the replaced row's file and the files
    /// of culled rows.
    #[pyo3(signature = (db_key, raw, now, expire_time, tag, size, mode, filename, value, add=false))]
    #[allow(clippy::too_many_arguments)]
    fn set<'py>(
        &self,
        py: Python<'py>,
        db_key: Bound<'py, PyAny>,
        raw: bool,
        now: f64,
        expire_time: Option<f64>,
        tag: Bound<'py, PyAny>,
        size: i64,
        mode: i64,
        filename: Option<String>,
        value: Bound<'py, PyAny>,
        add: bool,
    ) -> PyResult<(bool, Vec<String>)> {
        let key = param(&db_key)?;
        let tag = param(&tag)?;
        let value = param(&value)?;
        let row = NewRow {
            key,
            raw,
            now,
            expire_time,
            tag,
            size,
            mode,
            filename,
            value,
        };
        self.store_row(py, &row, add)
    }

    /// `set` for the plain `Disk` in one call: `None` when the key or the value is not one
    /// the plain `Disk` stores as it is (the caller then goes through `Disk.put` and
    /// `Disk.store`), else the files to remove (a replaced value's file, culled rows'; an
    /// empty tuple when there are none).
    #[pyo3(signature = (key, value, expire, tag, min_file_size))]
    fn set_plain<'py>(
        &self,
        py: Python<'py>,
        key: Bound<'py, PyAny>,
        value: Bound<'py, PyAny>,
        expire: Option<f64>,
        tag: Bound<'py, PyAny>,
        min_file_size: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(key) = plain_key(&key)? else {
            return Ok(None);
        };
        let small = |n: usize| i64::try_from(n).is_ok_and(|n| n < min_file_size);
        let value = if let Ok(s) = value.cast_exact::<PyString>() {
            if !small(value.len()?) {
                return Ok(None);
            }
            Param::Text(s.to_str()?)
        } else if let Ok(b) = value.cast_exact::<PyBytes>() {
            if !small(b.as_bytes().len()) {
                return Ok(None);
            }
            Param::Blob(b.as_bytes())
        } else if value.is_exact_instance_of::<PyFloat>() {
            Param::Real(value.extract::<f64>()?)
        } else if value.is_exact_instance_of::<PyInt>() {
            match value.extract::<i64>() {
                Ok(i) => Param::Int(i),
                Err(_) => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let tag = param(&tag)?;
        let now = unix_now();
        let row = NewRow {
            key,
            raw: true,
            now,
            expire_time: expire.map(|e| now + e),
            tag,
            size: 0,
            mode: 1,
            filename: None,
            value,
        };
        let files = self.store_row(py, &row, false)?.1;
        // Nearly always nothing to remove: the empty tuple is shared, a list is not.
        if files.is_empty() {
            return Ok(Some(PyTuple::empty(py).into_any()));
        }
        Ok(Some(files.into_pyobject(py)?.into_any()))
    }

    /// Appends a value to a queue (`Cache.push`): the next key after the last (`back`) or
    /// before the first (`front`) queue key, 500000000000000 for an empty queue, formatted
    /// as `"prefix-<15 digits>"` with a prefix; then culls. Returns `(key, files_to_remove)`.
    /// A generated key that is already stored fails with `ValueError` (no overwrite).
    #[pyo3(signature = (prefix, back, now, expire_time, tag, size, mode, filename, value))]
    #[allow(clippy::too_many_arguments)]
    fn push<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<String>,
        back: bool,
        now: f64,
        expire_time: Option<f64>,
        tag: Bound<'py, PyAny>,
        size: i64,
        mode: i64,
        filename: Option<String>,
        value: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
        let tag = param(&tag)?;
        let value = param(&value)?;
        let written = cell_len(&value) + size + 64;
        let (key, files) = self.with_conn(py, |c, cfg| {
            in_write(c, |c| {
                let last = {
                    let order = if back { "DESC" } else { "ASC" };
                    let sql = format!(
                        "SELECT key FROM Cache WHERE ?1 < key AND key < ?2 AND raw = 1 \
                         ORDER BY key {order} LIMIT 1"
                    );
                    let mut stmt = c.prepare_cached(&sql)?;
                    let mut rows = match &prefix {
                        None => stmt.query(rusqlite::params![0i64, 999_999_999_999_999i64])?,
                        Some(p) => stmt.query(rusqlite::params![
                            format!("{p}-000000000000000"),
                            format!("{p}-999999999999999")
                        ])?,
                    };
                    match rows.next()? {
                        Some(r) => Some(owned(r.get_ref(0)?)),
                        None => None,
                    }
                };
                let step = if back { 1 } else { -1 };
                let key = match (last, &prefix) {
                    (None, None) => Value::Integer(500_000_000_000_000),
                    (None, Some(p)) => Value::Text(format!("{p}-{:015}", 500_000_000_000_000i64)),
                    (Some(Value::Integer(i)), None) => Value::Integer(i + step),
                    (Some(Value::Real(f)), None) => Value::Real(f + step as f64),
                    (Some(Value::Text(t)), Some(p)) => {
                        let digits = t.rsplit('-').next().unwrap_or("");
                        let num: i64 = digits.trim().parse().map_err(|_| {
                            OpError::Sql(rusqlite::Error::InvalidParameterName(format!(
                                "queue key {t:?} does not end in a number"
                            )))
                        })?;
                        Value::Text(format!("{p}-{:015}", num + step))
                    }
                    (Some(other), _) => {
                        return Err(OpError::Sql(rusqlite::Error::InvalidParameterName(
                            format!("unexpected queue key {other:?}"),
                        )));
                    }
                };
                let stored = c.prepare_cached(PUSH_ROW)?.execute(rusqlite::params![
                    key,
                    now,
                    expire_time,
                    tag,
                    size,
                    mode,
                    filename,
                    value
                ])?;
                if stored == 0 {
                    return Err(OpError::Sql(key_taken()));
                }
                let mut files = Vec::new();
                cull(c, now, cfg, None, Some((&self.volume, written)), &mut files)?;
                Ok((key, files))
            })
        })?;
        Ok((cell_to_py(py, key)?, files))
    }

    /// The first (`front`) or last queue row `(key, expire_time, tag, mode, filename,
    /// value)` of a queue, removed when `remove`; expired rows met on the way are removed
    /// and their files returned. Returns `(row or None, files_to_remove)`.
    #[pyo3(signature = (prefix, front, remove, now))]
    fn pull<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<String>,
        front: bool,
        remove: bool,
        now: f64,
    ) -> PyResult<(Option<Bound<'py, PyTuple>>, Vec<String>)> {
        let (row, files) = self.with_conn(py, |c, _| {
            queue_end(c, prefix.as_deref(), front, remove, now)
        })?;
        let row = row
            .map(|mut r| {
                r.remove(0);
                row_to_py(py, r)
            })
            .transpose()?;
        Ok((row, files))
    }

    /// `Deque`'s pops and peeks (the unnamed queue) in one call: `miss` when the queue is
    /// empty and nothing expired was met, the value itself when `plain` (the plain `Disk`)
    /// and stored as it is, else `(mode, filename, value, files_to_remove)` (`mode` `None`
    /// when empty) for `Disk.fetch`.
    fn end_value<'py>(
        &self,
        py: Python<'py>,
        front: bool,
        remove: bool,
        plain: bool,
        miss: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (row, files) =
            self.with_conn(py, |c, _| queue_end(c, None, front, remove, unix_now()))?;
        let Some(mut row) = row else {
            if files.is_empty() {
                return Ok(miss);
            }
            return Ok((py.None(), py.None(), py.None(), files)
                .into_pyobject(py)?
                .into_any());
        };
        let value = row.pop().unwrap_or(Value::Null);
        let filename = row.pop().unwrap_or(Value::Null);
        let mode = row.pop().unwrap_or(Value::Null);
        if plain && files.is_empty() && mode == Value::Integer(1) {
            return cell_to_py(py, value);
        }
        let cells = (
            cell_to_py(py, mode)?,
            cell_to_py(py, filename)?,
            cell_to_py(py, value)?,
        );
        Ok((cells.0, cells.1, cells.2, files)
            .into_pyobject(py)?
            .into_any())
    }

    /// Culls as `set` does (`limit` rows at most, default the cull limit), in the caller's
    /// transaction or its own; returns the files of removed rows.
    #[pyo3(signature = (now, limit=None))]
    fn cull(&self, py: Python<'_>, now: f64, limit: Option<i64>) -> PyResult<Vec<String>> {
        self.with_conn(py, |c, cfg| {
            in_write(c, |c| {
                let mut files = Vec::new();
                cull(c, now, cfg, limit, None, &mut files)?;
                Ok(files)
            })
        })
    }

    /// Closes this thread's connection (a later call opens a new one).
    fn close(&self) -> PyResult<()> {
        let _inside = diskstore::enter_sqlite();
        let tid = std::thread::current().id();
        let conn = self.conns.lock().map_err(|_| poisoned())?.remove(&tid);
        if let Some(c) = conn {
            release(c);
        }
        Ok(())
    }

    /// Closes every thread's idle connection.
    fn close_all(&self) -> PyResult<()> {
        let _inside = diskstore::enter_sqlite();
        let all: Vec<Conn> = self
            .conns
            .lock()
            .map_err(|_| poisoned())?
            .drain()
            .map(|(_, c)| c)
            .collect();
        all.into_iter().for_each(release);
        Ok(())
    }
}

impl Drop for DcCore {
    fn drop(&mut self) {
        self.checkpoints.stop();
        let _inside = diskstore::enter_sqlite();
        let all: Vec<Conn> = match self.conns.lock() {
            Ok(mut map) => map.drain().map(|(_, c)| c).collect(),
            Err(_) => Vec::new(),
        };
        all.into_iter().for_each(release);
    }
}

/// The first (`front`) or last row of the queue `prefix` (`None`: the unnamed queue of
/// integer keys) as `(rowid, key, expire_time, tag, mode, filename, value)`, deleted when
/// `remove`; expired rows met on the way are deleted and their files listed.
///
/// A removal or a peek reads inside a write transaction (the caller's if one is open),
/// which deletes the row taken and the expired rows met. A removal is not one `DELETE ...
/// RETURNING`: SQLite gathers a `RETURNING` statement's rows in a temporary table, whose
/// opening and closing cost more than the three statements more (measured with callgrind:
/// 111.3k instructions per `Deque.popleft`, 105.8k without).
fn queue_end(
    c: &Connection,
    prefix: Option<&str>,
    front: bool,
    remove: bool,
    now: f64,
) -> OpResult<(Option<Vec<Value>>, Vec<String>)> {
    let (lo, hi) = match prefix {
        None => (Value::Integer(0), Value::Integer(999_999_999_999_999)),
        Some(p) => (
            Value::Text(format!("{p}-000000000000000")),
            Value::Text(format!("{p}-999999999999999")),
        ),
    };
    let end = usize::from(!front);
    let next = |c: &Connection, sql: &str| -> OpResult<Option<Vec<Value>>> {
        let mut stmt = c.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params![lo, hi])?;
        let found = match rows.next()? {
            Some(r) => {
                let mut v = Vec::with_capacity(7);
                for i in 0..7 {
                    v.push(owned(r.get_ref(i)?));
                }
                Some(v)
            }
            None => None,
        };
        // Runs a DELETE to its end (and commits it when it is its own transaction).
        while rows.next()?.is_some() {}
        Ok(found)
    };
    let expired = |row: &[Value]| {
        matches!(row[2], Value::Real(t) if t < now)
            || matches!(row[2], Value::Integer(t) if (t as f64) < now)
    };
    let mut files = Vec::new();
    if remove {
        return in_write(c, |c| {
            loop {
                let Some(row) = next(c, QUEUE_END[end])? else {
                    return Ok((None, files));
                };
                c.prepare_cached(DELETE_ROWID)?.execute([&row[0]])?;
                if !expired(&row) {
                    return Ok((Some(row), files));
                }
                if let Value::Text(name) = &row[5] {
                    files.push(name.clone());
                }
            }
        });
    }
    in_write(c, |c| {
        loop {
            let Some(row) = next(c, QUEUE_END[end])? else {
                return Ok((None, files));
            };
            if !expired(&row) {
                return Ok((Some(row), files));
            }
            c.prepare_cached(DELETE_ROWID)?.execute([&row[0]])?;
            if let Value::Text(name) = &row[5] {
                files.push(name.clone());
            }
        }
    })
}

/// Seconds since the Unix epoch (Python's `time.time()`).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Adler-32 of `data`: `Disk.hash` of a `str` key is `adler32(utf-8) & 0xFFFFFFFF`, and
/// a `FanoutCache` picks the shard by it.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before `b` could overflow a u32.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Adds the class and `Timeout` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DcCore>()?;
    m.add_function(wrap_pyfunction!(fanout::fanout_get_plain, m)?)?;
    m.add_function(wrap_pyfunction!(fanout::fanout_set_plain, m)?)?;
    m.add("DcTimeout", m.py().get_type::<Timeout>())?;
    Ok(())
}
