//! The native half of `diskstore.diskcache`: one SQLite connection per thread on a cache
//! directory's database (our bundled SQLite), with the cache's hot operations (`get`, `set`,
//! `add`) done in one call each and any other statement run through `execute`.
//!
//! The Python layer (`python/diskstore/diskcache/core.py`) keeps python-diskcache's `Disk`
//! protocol: it turns keys and values into database cells and files, this class stores and
//! finds them. Statements run with the GIL released; a busy database past the timeout raises
//! `diskstore.diskcache.Timeout`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use diskstore::rusqlite::types::{Value, ValueRef};
use diskstore::rusqlite::{self, Connection, ErrorCode, OpenFlags};
use pyo3::exceptions::{PyException, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple};

pyo3::create_exception!(
    diskstore.diskcache,
    Timeout,
    PyException,
    "Database timeout expired."
);

/// Eviction policies, in the order the Python layer numbers them (0 is `none`).
const POLICY_LRS: u8 = 1;
const POLICY_LRU: u8 = 2;
const POLICY_LFU: u8 = 3;

const SELECT_ROW: &str = "SELECT rowid, expire_time, tag, mode, filename, value FROM Cache \
     WHERE key = ?1 AND raw = ?2 AND (expire_time IS NULL OR expire_time > ?3)";
const SELECT_OLD: &str =
    "SELECT rowid, filename, expire_time FROM Cache WHERE key = ?1 AND raw = ?2";
const UPDATE_ROW: &str = "UPDATE Cache SET store_time = ?1, expire_time = ?2, access_time = ?1, \
     access_count = 0, tag = ?3, size = ?4, mode = ?5, filename = ?6, value = ?7 WHERE rowid = ?8";
const INSERT_ROW: &str = "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, \
     access_count, tag, size, mode, filename, value) VALUES (?1, ?2, ?3, ?4, ?3, 0, ?5, ?6, ?7, ?8, ?9)";
/// Rows that expire, soonest first; the caller appends the limit as a literal (a bound
/// `LIMIT ?` costs about 4 µs more per run: SQLite plans the statement again).
const SELECT_EXPIRING: &str = "SELECT rowid, filename, expire_time FROM Cache \
     WHERE expire_time IS NOT NULL ORDER BY expire_time LIMIT ";
const DELETE_ROWID: &str = "DELETE FROM Cache WHERE rowid = ?1";
const VOLUME: &str = "SELECT (SELECT page_count FROM pragma_page_count()) * \
     (SELECT page_size FROM pragma_page_size()) + (SELECT size FROM Meta WHERE id = 0)";

/// The index a policy's eviction order needs and the statement selecting its next victims
/// (`None` for the policy `none`).
///
/// The index is made by the first cull that evicts by policy, not when the cache is made:
/// a cache that never reaches its size limit then never writes an index page per write.
fn cull_policy_sql(policy: u8) -> Option<(&'static str, &'static str)> {
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

thread_local! {
    /// How long the operation running on this thread may wait for a lock.
    static WAIT_LIMIT: Cell<Duration> = const { Cell::new(Duration::from_secs(60)) };
    /// When this thread's current wait for a lock began.
    static WAIT_BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// SQLite's busy callback (`true`: try again). SQLite's own handler sleeps 1, 2, 5, 10 ...
/// ms between tries, far longer than a cache write holds the lock; this one pauses 20 µs,
/// doubling up to 1 ms, until the calling thread's `WAIT_LIMIT` has passed since the wait
/// began (`attempt` 0 starts a wait).
fn busy_wait(attempt: i32) -> bool {
    let now = Instant::now();
    let began = WAIT_BEGAN
        .try_with(|b| {
            let began = match b.get() {
                Some(t) if attempt > 0 => t,
                _ => now,
            };
            b.set(Some(began));
            began
        })
        .unwrap_or(now);
    let limit = WAIT_LIMIT.try_with(Cell::get).unwrap_or(Duration::ZERO);
    let Some(left) = limit
        .checked_sub(now.saturating_duration_since(began))
        .filter(|d| !d.is_zero())
    else {
        return false;
    };
    let doublings = u32::try_from(attempt.clamp(0, 16)).unwrap_or(16);
    let pause = Duration::from_micros(20)
        .saturating_mul(1 << doublings)
        .min(Duration::from_millis(1))
        .min(left);
    std::thread::sleep(pause);
    true
}

/// The settings the native operations follow; the Python layer pushes them on every change.
#[derive(Clone, Copy)]
struct Config {
    cull_limit: i64,
    size_limit: i64,
    policy: u8,
    statistics: bool,
}

struct Conn {
    conn: Connection,
    pid: u32,
}

/// The connections of one cache object, by thread.
type ConnMap = Mutex<HashMap<ThreadId, Conn>>;

/// Closes (or, inherited over fork, forgets) a connection.
fn release(c: Conn) {
    if c.pid == std::process::id() {
        drop(c.conn);
    } else {
        std::mem::forget(c.conn);
    }
}

/// Closes a thread's connections when the thread ends (its thread-local storage is torn
/// down), so that short-lived threads do not leave open files behind.
struct ThreadExit {
    tid: ThreadId,
    pools: RefCell<Vec<Weak<ConnMap>>>,
}

impl ThreadExit {
    fn watch(&self, pool: &Arc<ConnMap>) {
        let mut pools = self.pools.borrow_mut();
        pools.retain(|w| w.strong_count() > 0);
        let weak = Arc::downgrade(pool);
        if !pools.iter().any(|w| w.ptr_eq(&weak)) {
            pools.push(weak);
        }
    }
}

impl Drop for ThreadExit {
    fn drop(&mut self) {
        for pool in self.pools.borrow().iter().filter_map(Weak::upgrade) {
            let conn = pool.lock().ok().and_then(|mut m| m.remove(&self.tid));
            if let Some(c) = conn {
                release(c);
            }
        }
    }
}

thread_local! {
    static THREAD_EXIT: ThreadExit = ThreadExit {
        tid: std::thread::current().id(),
        pools: RefCell::new(Vec::new()),
    };
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
}

/// This process's view of the cache's volume, so that a write far below the size limit
/// need not measure it (two pragmas and a read, about 2 µs of a 17 µs write).
///
/// A write measures when nothing is known, when the last measure plus what this process
/// wrote since reaches half the limit, or every 64 writes (other processes' writes are
/// seen then). The size limit is soft in diskcache too: it bounds when culling starts.
struct VolumeHint {
    seen: AtomicI64,
    grown: AtomicI64,
    writes: AtomicI64,
}

/// "Not measured yet": large enough to force a measure, small enough not to overflow.
const VOLUME_UNKNOWN: i64 = i64::MAX / 4;

impl VolumeHint {
    fn new() -> Self {
        VolumeHint {
            seen: AtomicI64::new(VOLUME_UNKNOWN),
            grown: AtomicI64::new(0),
            writes: AtomicI64::new(0),
        }
    }

    fn forget(&self) {
        self.seen.store(VOLUME_UNKNOWN, Ordering::Relaxed);
    }

    /// Records a write of about `written` bytes; whether the volume may now be near `limit`.
    fn must_measure(&self, limit: i64, written: i64) -> bool {
        let grown = self
            .grown
            .fetch_add(written, Ordering::Relaxed)
            .saturating_add(written);
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        writes >= 64 || self.seen.load(Ordering::Relaxed).saturating_add(grown) >= limit / 2
    }

    fn measured(&self, volume: i64) {
        self.seen.store(volume, Ordering::Relaxed);
        self.grown.store(0, Ordering::Relaxed);
        self.writes.store(0, Ordering::Relaxed);
    }
}

/// About how many bytes a cell adds to the database.
fn cell_len(p: &Param<'_>) -> i64 {
    let n = match p {
        Param::Text(s) => s.len(),
        Param::Blob(b) => b.len(),
        Param::Owned(b) => b.len(),
        _ => 8,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An error of an operation: SQLite's, or a busy database past the timeout.
enum OpError {
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

type OpResult<T> = Result<T, OpError>;

/// A parameter borrowed from a Python object for the length of a call.
enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    Owned(Vec<u8>),
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput::Borrowed;
        Ok(match self {
            Param::Null => Borrowed(ValueRef::Null),
            Param::Int(i) => Borrowed(ValueRef::Integer(*i)),
            Param::Real(f) => Borrowed(ValueRef::Real(*f)),
            Param::Text(s) => Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Blob(b) => Borrowed(ValueRef::Blob(b)),
            Param::Owned(b) => Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// The parameter for a Python `None`, `int`, `float`, `str`, `bytes` or buffer.
fn param<'a>(ob: &'a Bound<'_, PyAny>) -> PyResult<Param<'a>> {
    if ob.is_none() {
        return Ok(Param::Null);
    }
    if let Ok(s) = ob.cast::<PyString>() {
        return Ok(Param::Text(s.to_str()?));
    }
    if let Ok(b) = ob.cast::<PyBytes>() {
        return Ok(Param::Blob(b.as_bytes()));
    }
    if ob.is_instance_of::<PyInt>() {
        return match ob.extract::<i64>() {
            Ok(i) => Ok(Param::Int(i)),
            Err(_) => Err(PyOverflowError::new_err(
                "Python int too large to convert to SQLite INTEGER",
            )),
        };
    }
    if ob.is_instance_of::<PyFloat>() {
        return Ok(Param::Real(ob.extract::<f64>()?));
    }
    if ob.is_instance_of::<PyMemoryView>() || ob.is_instance_of::<pyo3::types::PyByteArray>() {
        let b = ob
            .call_method0("__bytes__")
            .or_else(|_| ob.py().get_type::<PyBytes>().call1((ob,)))?;
        return Ok(Param::Owned(b.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "a cache cell must be None, int, float, str or bytes, not {}",
        ob.get_type().name()?
    )))
}

fn params<'a>(items: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<Param<'a>>> {
    items.iter().map(|ob| param(ob)).collect()
}

/// A Python object for a database cell.
fn cell_to_py<'py>(py: Python<'py>, v: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Real(f) => PyFloat::new(py, f).into_any(),
        Value::Text(s) => PyString::new(py, &s).into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

/// An owned copy of a borrowed cell (text that is not UTF-8 is kept as bytes).
fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Blob(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn row_to_py<'py>(py: Python<'py>, row: Vec<Value>) -> PyResult<Bound<'py, PyTuple>> {
    let items = row
        .into_iter()
        .map(|v| cell_to_py(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}

fn collect_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    args: &[Param<'_>],
) -> OpResult<Vec<Vec<Value>>> {
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(owned(row.get_ref(i)?));
        }
        out.push(vals);
    }
    Ok(out)
}

/// Deletes the rows a `SELECT rowid, filename, ...` finds, in its order and while `take`
/// accepts them (a read first, so that a cull finding nothing writes nothing), and adds
/// their files to `out`; returns how many.
fn delete_selected(
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
fn in_write<T>(conn: &Connection, f: impl FnOnce(&Connection) -> OpResult<T>) -> OpResult<T> {
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
fn cull(
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

impl DcCore {
    fn open(&self) -> OpResult<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_handler(Some(busy_wait))?;
        conn.set_prepared_statement_cache_capacity(64);
        let pragmas = self.pragmas.lock().map(|p| p.clone()).unwrap_or_default();
        for (name, value) in pragmas {
            apply_pragma(&conn, &name, &value)?;
        }
        Ok(conn)
    }

    /// Runs `f` on the calling thread's connection (opened on first use, and again in a
    /// forked child), with the GIL released.
    fn with_conn<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Connection, Config) -> OpResult<T> + Send,
    ) -> PyResult<T> {
        let tid = std::thread::current().id();
        let cfg = *self.config.lock().map_err(|_| poisoned())?;
        let taken = self.conns.lock().map_err(|_| poisoned())?.remove(&tid);
        let pid = std::process::id();
        let (result, conn) = py.detach(|| {
            WAIT_LIMIT.with(|w| w.set(self.timeout));
            let conn = match taken {
                Some(c) if c.pid == pid => c.conn,
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
            let r = f(&conn, cfg);
            (r, Some(conn))
        });
        if let Some(conn) = conn {
            self.conns
                .lock()
                .map_err(|_| poisoned())?
                .insert(tid, Conn { conn, pid });
        }
        Ok(result?)
    }
}

fn poisoned() -> PyErr {
    PyRuntimeError::new_err("diskcache connection pool poisoned by a panic")
}

/// `PRAGMA name = value` for a name of letters and underscores and a plain value.
fn apply_pragma(conn: &Connection, name: &str, value: &str) -> OpResult<()> {
    let ok_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let ok_value = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok_name || !ok_value {
        return Err(OpError::Sql(rusqlite::Error::InvalidParameterName(
            format!("invalid pragma {name} = {value}"),
        )));
    }
    // A pragma already at its value is not set again: setting some (journal_mode) takes a
    // lock, which another process may hold while this one opens the cache.
    let current: Option<String> = {
        let mut stmt = conn.prepare(&format!("PRAGMA {name}"))?;
        let mut rows = stmt.query([])?;
        match rows.next()? {
            Some(r) => Some(match r.get_ref(0)? {
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).to_lowercase(),
                ValueRef::Real(f) => f.to_string(),
                _ => String::new(),
            }),
            None => None,
        }
    };
    if current.as_deref() == Some(value.to_lowercase().as_str()) {
        return Ok(());
    }
    // Some pragmas (journal_mode) return a row; run and drain it.
    let mut stmt = conn.prepare(&format!("PRAGMA {name} = {value}"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
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

/// The cell of a key the plain `Disk` stores as it is (`str`, `bytes`, `float`, 64-bit
/// `int`, exact types), or `None`.
fn plain_key<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<Option<Param<'a>>> {
    Ok(if let Ok(s) = key.cast_exact::<PyString>() {
        Some(Param::Text(s.to_str()?))
    } else if let Ok(b) = key.cast_exact::<PyBytes>() {
        Some(Param::Blob(b.as_bytes()))
    } else if key.is_exact_instance_of::<PyFloat>() {
        Some(Param::Real(key.extract::<f64>()?))
    } else if key.is_exact_instance_of::<PyInt>() {
        key.extract::<i64>().ok().map(Param::Int)
    } else {
        None
    })
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
                let old: Option<(i64, Option<String>, Option<f64>)> = {
                    let mut stmt = c.prepare_cached(SELECT_OLD)?;
                    let mut rows = stmt.query(rusqlite::params![key, raw])?;
                    match rows.next()? {
                        Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
                        None => None,
                    }
                };
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
                        c.prepare_cached(INSERT_ROW)?.execute(rusqlite::params![
                            key,
                            raw,
                            now,
                            expire_time,
                            tag,
                            size,
                            mode,
                            filename,
                            value
                        ])?;
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
            path,
            timeout: Duration::from_secs_f64(timeout.min(1e9)),
            pragmas: Mutex::new(pragmas),
            conns: Arc::new(Mutex::new(HashMap::new())),
            volume: VolumeHint::new(),
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

    /// `get` for the plain `Disk`, in one call: `slow` when the key is not one the plain
    /// `Disk` stores as it is (the caller then goes through `Disk.put`), `miss` when the key
    /// is absent or expired, the value itself when stored as it is, else the tuple
    /// `(mode, filename, value)` for `Disk.fetch`.
    fn get_plain<'py>(
        &self,
        py: Python<'py>,
        key: Bound<'py, PyAny>,
        now: f64,
        miss: Bound<'py, PyAny>,
        slow: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(db_key) = plain_key(&key)? else {
            return Ok(slow);
        };
        let Some(mut row) = self.lookup(py, &db_key, true, now)? else {
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
    /// `Disk.store`), else the files to remove (a replaced value's file, culled rows').
    #[pyo3(signature = (key, value, expire, tag, min_file_size))]
    fn set_plain<'py>(
        &self,
        py: Python<'py>,
        key: Bound<'py, PyAny>,
        value: Bound<'py, PyAny>,
        expire: Option<f64>,
        tag: Bound<'py, PyAny>,
        min_file_size: i64,
    ) -> PyResult<Option<Vec<String>>> {
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
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
        Ok(Some(self.store_row(py, &row, false)?.1))
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
                c.prepare_cached(
                    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, \
                     access_count, tag, size, mode, filename, value) \
                     VALUES (?1, 1, ?2, ?3, ?2, 0, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(rusqlite::params![
                    key,
                    now,
                    expire_time,
                    tag,
                    size,
                    mode,
                    filename,
                    value
                ])?;
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
            in_write(c, |c| {
                let order = if front { "ASC" } else { "DESC" };
                let sql = format!(
                    "SELECT rowid, key, expire_time, tag, mode, filename, value FROM Cache \
                     WHERE ?1 < key AND key < ?2 AND raw = 1 ORDER BY key {order} LIMIT 1"
                );
                let (lo, hi) = match &prefix {
                    None => (Value::Integer(0), Value::Integer(999_999_999_999_999)),
                    Some(p) => (
                        Value::Text(format!("{p}-000000000000000")),
                        Value::Text(format!("{p}-999999999999999")),
                    ),
                };
                let mut files = Vec::new();
                loop {
                    let found = {
                        let mut stmt = c.prepare_cached(&sql)?;
                        let mut rows = stmt.query(rusqlite::params![lo, hi])?;
                        match rows.next()? {
                            Some(r) => {
                                let mut v = Vec::with_capacity(7);
                                for i in 0..7 {
                                    v.push(owned(r.get_ref(i)?));
                                }
                                Some(v)
                            }
                            None => None,
                        }
                    };
                    let Some(mut row) = found else {
                        return Ok((None, files));
                    };
                    let expired = matches!(row[2], Value::Real(t) if t < now)
                        || matches!(row[2], Value::Integer(t) if (t as f64) < now);
                    if remove || expired {
                        c.prepare_cached(DELETE_ROWID)?.execute([&row[0]])?;
                    }
                    if expired {
                        if let Value::Text(name) = &row[5] {
                            files.push(name.clone());
                        }
                        continue;
                    }
                    row.remove(0);
                    return Ok((Some(row), files));
                }
            })
        })?;
        let row = row.map(|r| row_to_py(py, r)).transpose()?;
        Ok((row, files))
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
        let tid = std::thread::current().id();
        let conn = self.conns.lock().map_err(|_| poisoned())?.remove(&tid);
        if let Some(c) = conn {
            release(c);
        }
        Ok(())
    }

    /// Closes every thread's idle connection.
    fn close_all(&self) -> PyResult<()> {
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
        let all: Vec<Conn> = match self.conns.lock() {
            Ok(mut map) => map.drain().map(|(_, c)| c).collect(),
            Err(_) => Vec::new(),
        };
        all.into_iter().for_each(release);
    }
}

/// Adds the class and `Timeout` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DcCore>()?;
    m.add("DcTimeout", m.py().get_type::<Timeout>())?;
    Ok(())
}
