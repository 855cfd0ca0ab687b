//! `_Cache`: the Rust base of the Python `diskstore.DiskCache`, on the engine's
//! [`CacheTable`].
//!
//! Keys and values of type `int`, `float`, `str`, `bytes` (and `None` values) are stored
//! natively; anything else is pickled. With a `secret`, every pickle is stored behind an
//! HMAC-SHA256 tag and refused on load unless the tag verifies, so that a file someone
//! else can write cannot make this process unpickle (= run) their code. A value's tag also
//! covers the table name and the key it is stored under, so that a signed value cannot be
//! moved to another key. The table has two value columns: `value` and `kind` (bits 0–1:
//! value encoding, bit 2: pickled key).
//!
//! Every engine call runs with the GIL released, and nothing here waits for a lock while
//! holding the GIL (the holder of a lock may need the GIL to finish): pickling and HMAC run
//! before or after the engine call, a Python clock is read before it, and dropping the
//! last handle (which writes out pending hit/miss counts) releases the GIL first.

use std::cell::Cell as StdCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use diskstore::{
    CacheOptions, CacheTable, Cell, Clock, Column, ColumnType, Direction, EvictionPolicy,
    IncrRefusal, KeyRef, Row, RowidPager, SCAN_PAGE, Ttl, Value, ValueFile, ValueRef,
};

use crate::convert::to_py;
use crate::errors::{DecodeError, DiskStoreError, IntoPyResult};
use crate::remote::RemoteCacheCore;
use diskstore::remote::RemoteCacheOptions;

/// Value stored as is.
const NATIVE: i64 = 0;
/// Value pickled.
const PICKLED: i64 = 1;
/// Value pickled behind an HMAC-SHA256 tag of the pickle alone (written before the tag
/// covered the key; still read, see `docs/cache.md`). Also how pickled keys are signed.
const SIGNED: i64 = 2;
/// Value pickled behind an HMAC-SHA256 tag of the table name, the key and the pickle.
const SIGNED_KEYED: i64 = 3;
/// Bit set when the key is a pickle (signed if the cache has a secret).
const KEY_PICKLED: i64 = 4;
/// Length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

thread_local! {
    /// What a Python clock said last on this thread, in microseconds since the epoch.
    static PY_NOW: StdCell<u64> = const { StdCell::new(0) };
}

/// The time a Python clock callable gave, for tests that patch the time source.
///
/// The engine reads the clock from inside its calls, where it may hold a lock; so the
/// Python callable is never called from there: [`PyCache::ready`] calls it, with the GIL,
/// before each engine call and leaves the answer in a thread-local, which the engine call
/// (run on the same thread with the GIL released) reads.
struct SnapshotClock;

impl Clock for SnapshotClock {
    fn now(&self) -> Duration {
        Duration::from_micros(PY_NOW.with(StdCell::get))
    }
}

struct Codec {
    /// The table, part of what a value's tag covers.
    table: String,
    secret: Option<Vec<u8>>,
    dumps: Py<PyAny>,
    loads: Py<PyAny>,
    digest: Py<PyAny>,
    compare: Py<PyAny>,
}

struct State {
    core: CacheTable,
    codec: Codec,
    default_ttl: Option<f64>,
    /// Whether the cache reads a Python clock.
    py_clock: bool,
}

/// How a pickle is signed.
#[derive(Clone, Copy)]
enum Signed<'a> {
    /// Not at all.
    No,
    /// A tag of the pickle alone.
    Alone,
    /// A tag of the table, this key and the pickle.
    Under(KeyRef<'a>),
}

/// Appends `bytes` with its length in front (so that concatenations cannot be ambiguous).
fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// What a value's tag covers besides the pickle: the table and the key as SQLite compares
/// it (an integral float and the equal integer, or 0.0 and -0.0, find the same row, so
/// they are written the same way here).
fn binding(table: &str, key: KeyRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + table.len());
    out.extend_from_slice(b"diskstore cache entry v1\0");
    put_sized(&mut out, table.as_bytes());
    // 2^63 is exactly representable; the i64 range is [-2^63, 2^63).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let as_int = |f: f64| (f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f)).then_some(f as i64);
    match key {
        KeyRef::Int(i) => {
            out.push(b'i');
            put_sized(&mut out, &i.to_le_bytes());
        }
        KeyRef::Float(f) => match as_int(f) {
            Some(i) => {
                out.push(b'i');
                put_sized(&mut out, &i.to_le_bytes());
            }
            None => {
                out.push(b'f');
                put_sized(&mut out, &f.to_bits().to_le_bytes());
            }
        },
        KeyRef::Text(t) => {
            out.push(b't');
            put_sized(&mut out, t.as_bytes());
        }
        KeyRef::Blob(b) => {
            out.push(b'b');
            put_sized(&mut out, b);
        }
    }
    out
}

/// A key ready for the engine: borrowed from a native Python key, or a pickle.
enum EncKey<'a> {
    Native(KeyRef<'a>),
    Pickled(Vec<u8>),
}

impl EncKey<'_> {
    fn key(&self) -> KeyRef<'_> {
        match self {
            EncKey::Native(k) => *k,
            EncKey::Pickled(b) => KeyRef::Blob(b),
        }
    }

    fn kind_bit(&self) -> i64 {
        match self {
            EncKey::Native(_) => 0,
            EncKey::Pickled(_) => KEY_PICKLED,
        }
    }
}

/// A row read from the engine: value and kind (and the key, for iteration).
type Fetched = (Value, i64);

/// A row read for `get`: value and kind, or kind and the value's file when the value is
/// kept in one (then read straight into its Python object).
type Deferred = (Value, i64, Option<ValueFile>);

fn fetched_deferred(row: &Row<'_>, file: Option<&ValueFile>) -> diskstore::Result<Deferred> {
    match file {
        Some(f) if f.column() == 0 => {
            let kind = match row.value(1)? {
                ValueRef::Integer(k) => k,
                _ => NATIVE,
            };
            Ok((Value::Null, kind, Some(f.clone())))
        }
        _ => fetched(row).map(|(v, kind)| (v, kind, None)),
    }
}

fn fetched(row: &Row<'_>) -> diskstore::Result<Fetched> {
    let kind = match row.value(1)? {
        ValueRef::Integer(k) => k,
        _ => NATIVE,
    };
    Ok((row.value(0)?.to_owned(), kind))
}

impl Codec {
    /// The HMAC-SHA256 tag of `prefix` followed by `payload`, or None without a secret.
    fn tag(&self, py: Python<'_>, prefix: &[u8], payload: &[u8]) -> PyResult<Option<Vec<u8>>> {
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let message = if prefix.is_empty() {
            PyBytes::new(py, payload)
        } else {
            PyBytes::new_with(py, prefix.len() + payload.len(), |buf| {
                buf[..prefix.len()].copy_from_slice(prefix);
                buf[prefix.len()..].copy_from_slice(payload);
                Ok(())
            })?
        };
        let tag = self.digest.call1(
            py,
            (PyBytes::new(py, secret), message, intern!(py, "sha256")),
        )?;
        Ok(Some(tag.bind(py).cast::<PyBytes>()?.as_bytes().to_vec()))
    }

    fn prefix(&self, how: Signed<'_>) -> Vec<u8> {
        match how {
            Signed::Under(key) => binding(&self.table, key),
            _ => Vec::new(),
        }
    }

    /// A pickle (signed with the secret, if any, under `key` when given) and its kind.
    fn pickle(
        &self,
        py: Python<'_>,
        ob: &Bound<'_, PyAny>,
        key: Option<KeyRef<'_>>,
    ) -> PyResult<(Vec<u8>, i64)> {
        let p = self.dumps.call1(py, (ob, 5))?;
        let p = p.bind(py).cast::<PyBytes>()?.as_bytes();
        let how = key.map_or(Signed::Alone, Signed::Under);
        Ok(match self.tag(py, &self.prefix(how), p)? {
            Some(tag) => {
                let mut out = Vec::with_capacity(tag.len() + p.len());
                out.extend_from_slice(&tag);
                out.extend_from_slice(p);
                (out, if key.is_some() { SIGNED_KEYED } else { SIGNED })
            }
            None => (p.to_vec(), PICKLED),
        })
    }

    /// Unpickles `data` signed as `how`, refusing what the secret does not vouch for.
    fn unpickle<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        how: Signed<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payload = match (&self.secret, how) {
            (None, Signed::No) => data,
            (Some(_), Signed::Alone | Signed::Under(_)) => {
                if data.len() < TAG_LEN {
                    return Err(DecodeError::new_err("signed pickle is too short; refused"));
                }
                let (tag, payload) = data.split_at(TAG_LEN);
                let expected = self
                    .tag(py, &self.prefix(how), payload)?
                    .expect("a secret is set");
                let ok = self
                    .compare
                    .call1(py, (PyBytes::new(py, tag), PyBytes::new(py, &expected)))?
                    .is_truthy(py)?;
                if !ok {
                    return Err(DecodeError::new_err(
                        "a pickled entry fails its HMAC check (the file was changed by someone \
                         without the secret, or the entry was moved from another key); \
                         refusing to unpickle it",
                    ));
                }
                payload
            }
            (Some(_), Signed::No) => {
                return Err(DecodeError::new_err(
                    "an unsigned pickle in a cache opened with a secret; refusing to unpickle it",
                ));
            }
            (None, _) => {
                return Err(DecodeError::new_err(
                    "a signed pickle, but this cache was opened without the secret to check it",
                ));
            }
        };
        self.loads
            .call1(py, (PyBytes::new(py, payload),))
            .map(|o| o.into_bound(py))
    }

    fn key<'a>(&self, py: Python<'_>, ob: &'a Bound<'_, PyAny>) -> PyResult<EncKey<'a>> {
        if let Ok(s) = ob.cast_exact::<PyString>() {
            return Ok(EncKey::Native(KeyRef::Text(s.to_str()?)));
        }
        if let Ok(b) = ob.cast_exact::<PyBytes>() {
            return Ok(EncKey::Native(KeyRef::Blob(b.as_bytes())));
        }
        if ob.is_instance_of::<PyInt>() {
            // bool too: True and 1 are one key, as in a dict.
            if let Ok(i) = ob.extract::<i64>() {
                return Ok(EncKey::Native(KeyRef::Int(i)));
            }
        } else if ob.is_exact_instance_of::<PyFloat>() {
            let f: f64 = ob.extract()?;
            if f.is_nan() {
                return Err(PyValueError::new_err("NaN cannot be a key"));
            }
            return Ok(EncKey::Native(KeyRef::Float(f)));
        }
        Ok(EncKey::Pickled(self.pickle(py, ob, None)?.0))
    }

    fn load_key<'py>(
        &self,
        py: Python<'py>,
        key: &Value,
        kind: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        match (key, kind & KEY_PICKLED != 0) {
            (Value::Blob(b), true) => {
                let how = if self.secret.is_some() {
                    Signed::Alone
                } else {
                    Signed::No
                };
                self.unpickle(py, b, how)
            }
            _ => Ok(to_py(py, key)),
        }
    }

    /// The value cell and kind of a Python value stored under `key`.
    fn value<'a>(
        &self,
        py: Python<'_>,
        ob: &'a Bound<'_, PyAny>,
        key: KeyRef<'_>,
    ) -> PyResult<(Cell<'a>, i64)> {
        if let Ok(b) = ob.cast_exact::<PyBytes>() {
            return Ok((Cell::Borrowed(ValueRef::Blob(b.as_bytes())), NATIVE));
        }
        if let Ok(s) = ob.cast_exact::<PyString>() {
            return Ok((Cell::Borrowed(ValueRef::Text(s.to_str()?)), NATIVE));
        }
        if ob.is_none() {
            return Ok((Cell::Borrowed(ValueRef::Null), NATIVE));
        }
        if ob.is_exact_instance_of::<PyInt>()
            && let Ok(i) = ob.extract::<i64>()
        {
            return Ok((Cell::Borrowed(ValueRef::Integer(i)), NATIVE));
        }
        if ob.is_exact_instance_of::<PyFloat>() {
            let f: f64 = ob.extract()?;
            if !f.is_nan() {
                return Ok((Cell::Borrowed(ValueRef::Real(f)), NATIVE));
            }
        }
        let (p, kind) = self.pickle(py, ob, Some(key))?;
        Ok((Cell::Owned(Value::Blob(p)), kind))
    }

    /// Loads a pickled value (`kind` 1 to 3) found under `key`.
    fn load_pickled<'py>(
        &self,
        py: Python<'py>,
        b: &[u8],
        kind: i64,
        key: KeyRef<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match kind & 3 {
            PICKLED => self.unpickle(py, b, Signed::No),
            SIGNED => self.unpickle(py, b, Signed::Alone),
            SIGNED_KEYED => self.unpickle(py, b, Signed::Under(key)),
            _ => Err(DecodeError::new_err(format!(
                "unknown cache entry encoding {kind}"
            ))),
        }
    }

    /// Loads the value found under `key`.
    fn load<'py>(
        &self,
        py: Python<'py>,
        (value, kind): &Fetched,
        key: KeyRef<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match (kind & 3, value) {
            (NATIVE, v) => Ok(to_py(py, v)),
            (_, Value::Blob(b)) => self.load_pickled(py, b, *kind, key),
            _ => Err(DecodeError::new_err(format!(
                "unknown cache entry encoding {kind}"
            ))),
        }
    }
}

/// `default_expiration` as given (None, 0 and infinity: never) and as a duration.
fn default_expiration(seconds: Option<f64>) -> PyResult<(Option<f64>, Option<Duration>)> {
    let seconds = seconds.filter(|t| *t != 0.0 && t.is_finite());
    let ttl = seconds
        .map(|t| {
            Duration::try_from_secs_f64(t)
                .map_err(|_| PyValueError::new_err("default_expiration must be >= 0"))
        })
        .transpose()?;
    Ok((seconds, ttl))
}

/// `expire` as 0.1.0 reads it: `None` → `none` (the caller's choice), `0` → never,
/// a number of seconds otherwise (≤ 0 after the zero check: already expired).
fn ttl_of(expire: Option<&Bound<'_, PyAny>>, none: Ttl) -> PyResult<Ttl> {
    let Some(e) = expire.filter(|e| !e.is_none()) else {
        return Ok(none);
    };
    let secs: f64 = e
        .extract()
        .map_err(|_| PyTypeError::new_err("expire must be a number of seconds or None"))?;
    if secs.is_nan() {
        return Err(PyValueError::new_err("expire cannot be NaN"));
    }
    if secs == 0.0 || secs == f64::INFINITY {
        return Ok(Ttl::Never);
    }
    Ok(Ttl::After(
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX),
    ))
}

/// The Rust base of `diskstore.DiskCache` (see `python/diskstore/cache.py`).
#[pyclass(frozen, subclass, module = "diskstore._diskstore", name = "_Cache")]
pub struct PyCache {
    state: OnceLock<State>,
    /// The cache on PostgreSQL or Redis (`_open_remote`); `state` then stays unset and
    /// every pymethod hands its call to this after parsing its arguments.
    remote: OnceLock<RemoteCacheCore>,
    /// The Python clock callable, if any (apart from `state` so that `__clear__` can
    /// drop it).
    py_clock: Mutex<Option<Py<PyAny>>>,
}

impl Drop for PyCache {
    fn drop(&mut self) {
        let Some(State { core, codec, .. }) = self.state.take() else {
            return;
        };
        // Dropping the last handle writes out pending hit/miss counts, which may wait for
        // the write lock: never with the GIL held, as the lock's holder may need it.
        Python::attach(|py| {
            py.detach(move || drop(core));
            drop(codec);
        });
    }
}

impl PyCache {
    /// The live value of `key` (counting a hit or miss): a value kept in a file of its own
    /// is read straight into its Python object, with the GIL released.
    fn get_value<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Some(r) = self.remote.get() {
            return r.get(py, key);
        }
        let st = self.ready(py)?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        let found = py
            .detach(|| st.core.get_deferred(kr, fetched_deferred))
            .py()?;
        let Some((value, kind, file)) = found else {
            return Ok(None);
        };
        let Some(file) = file else {
            return st.codec.load(py, &(value, kind), kr).map(Some);
        };
        if file.is_text() {
            let mut buf = vec![0u8; file.len()];
            if !py
                .detach(|| st.core.read_value_file(kr, &file, &mut buf))
                .py()?
            {
                return Ok(None);
            }
            let text = String::from_utf8(buf)
                .map_err(|e| DecodeError::new_err(format!("stored text is not UTF-8: {e}")))?;
            return st.codec.load(py, &(Value::Text(text), kind), kr).map(Some);
        }
        let mut read = true;
        let bytes = PyBytes::new_with(py, file.len(), |buf| {
            // The new object is ours alone until returned: filling it without the GIL
            // is safe.
            read = py.detach(|| st.core.read_value_file(kr, &file, buf)).py()?;
            Ok(())
        })?;
        if !read {
            return Ok(None); // removed since the row was read, or damaged: a miss
        }
        if kind & 3 == NATIVE {
            return Ok(Some(bytes.into_any()));
        }
        st.codec
            .load_pickled(py, bytes.as_bytes(), kind, kr)
            .map(Some)
    }

    /// The server backend; an error on SQLite (the batch calls that need one).
    fn server(&self) -> PyResult<&RemoteCacheCore> {
        self.remote
            .get()
            .ok_or_else(|| DiskStoreError::new_err("not a cache on a server"))
    }

    fn st(&self) -> PyResult<&State> {
        self.state
            .get()
            .ok_or_else(|| DiskStoreError::new_err("the cache is not open"))
    }

    /// The open state, with the Python clock (if any) read: call before every engine
    /// call that may look at the time.
    fn ready(&self, py: Python<'_>) -> PyResult<&State> {
        let st = self.st()?;
        if st.py_clock {
            // Take the callable out of the mutex before calling it: Python code may switch
            // threads, and no thread may wait on this mutex while another runs Python.
            let clock = self
                .py_clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .map(|c| c.clone_ref(py))
                .ok_or_else(|| DiskStoreError::new_err("the cache's clock was cleared"))?;
            let t: f64 = clock.call0(py)?.extract(py)?;
            let d = Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err(format!("the clock returned a bad time: {t}"))
            })?;
            let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            PY_NOW.with(|now| now.set(micros));
        }
        Ok(st)
    }
}

#[pymethods]
impl PyCache {
    /// Creates an unopened cache; the Python `__init__` opens it with `_open`.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        PyCache {
            state: OnceLock::new(),
            remote: OnceLock::new(),
            py_clock: Mutex::new(None),
        }
    }

    /// Opens the engine (called once by `DiskCache.__init__`).
    #[pyo3(signature = (path, table, default_ttl, size_limit, count_limit, policy, timeout, statistics, secret, clock, file_threshold))]
    #[allow(clippy::too_many_arguments)]
    fn _open(
        &self,
        py: Python<'_>,
        path: PathBuf,
        table: String,
        default_ttl: Option<f64>,
        size_limit: Option<u64>,
        count_limit: Option<u64>,
        policy: &str,
        timeout: f64,
        statistics: bool,
        secret: Option<Vec<u8>>,
        clock: Option<Py<PyAny>>,
        file_threshold: Option<u64>,
    ) -> PyResult<()> {
        if self.state.get().is_some() {
            return Err(DiskStoreError::new_err("the cache is already open"));
        }
        let policy: EvictionPolicy = policy.parse().py()?;
        let columns = vec![
            Column::new("value", ColumnType::Blob, true, None),
            Column::new("kind", ColumnType::Integer, false, Some(Value::Integer(0))),
        ];
        let mut options = CacheOptions::new(path, table.clone(), columns);
        let (default_ttl, ttl) = default_expiration(default_ttl)?;
        options.default_ttl = ttl;
        options.size_limit = size_limit;
        options.count_limit = count_limit;
        options.policy = policy;
        options.timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| PyValueError::new_err("timeout must be a finite number of seconds"))?;
        options.stats = statistics;
        options.file_threshold = file_threshold;
        let py_clock = clock.is_some();
        if let Some(c) = clock {
            *self
                .py_clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(c);
            options.clock = Arc::new(SnapshotClock);
        }
        if secret.as_ref().is_some_and(Vec::is_empty) {
            return Err(PyValueError::new_err("secret must not be empty"));
        }
        let pickle = py.import("pickle")?;
        let hmac = py.import("hmac")?;
        let codec = Codec {
            table: table.clone(),
            secret,
            dumps: pickle.getattr("dumps")?.unbind(),
            loads: pickle.getattr("loads")?.unbind(),
            digest: hmac.getattr("digest")?.unbind(),
            compare: hmac.getattr("compare_digest")?.unbind(),
        };
        let state = State {
            core: py.detach(|| CacheTable::open(options)).py()?,
            codec,
            default_ttl,
            py_clock,
        };
        let _ = self.state.set(state);
        Ok(())
    }

    /// The value of `key`, or `default` when it is absent or expired.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v = self.get_value(py, key)?;
        Ok(v.unwrap_or_else(|| default.unwrap_or_else(|| py.None().into_bound(py))))
    }

    /// The value of `key`; `KeyError` when it is absent or expired.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.get_value(py, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    /// True if `key` has a live entry; False for a key that cannot be stored (NaN, a
    /// lone surrogate, an unpicklable object raising `TypeError`), as a dict's `in`.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Some(r) = self.remote.get() {
            return r.contains(py, key);
        }
        let st = self.ready(py)?;
        let k = match st.codec.key(py, key) {
            Ok(k) => k,
            Err(e)
                if e.is_instance_of::<PyValueError>(py) || e.is_instance_of::<PyTypeError>(py) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let kr = k.key();
        py.detach(|| st.core.contains(kr)).py()
    }

    /// Stores `value` under `key`. `expire`: seconds to live; `None` → the default
    /// expiration; `0` → never. `tag`: a label for `evict(tag)`.
    #[pyo3(signature = (key, value, expire=None, tag=None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expire: Option<&Bound<'_, PyAny>>,
        tag: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write(py, key, value, ttl_of(expire, Ttl::Default)?, tag, false)
            .map(|_| ())
    }

    /// `cache[key] = value`: stores with the default expiration.
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.write(py, key, value, Ttl::Default, None, false)
            .map(|_| ())
    }

    /// Stores `value` only if `key` has no live entry; returns whether it did.
    /// `expire=None` means never here (as in diskstore 0.1.0).
    #[pyo3(signature = (key, value, expire=None, tag=None))]
    fn add(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expire: Option<&Bound<'_, PyAny>>,
        tag: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.write(py, key, value, ttl_of(expire, Ttl::Never)?, tag, true)
    }

    /// Deletes `key`; returns whether it had a live entry.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Some(r) = self.remote.get() {
            return r.delete(py, key);
        }
        let st = self.ready(py)?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        py.detach(|| st.core.delete(kr)).py()
    }

    /// `del cache[key]`; `KeyError` when it has no live entry.
    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.delete(py, key)? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// Removes `key` and returns its value, or `default` when it had no live entry.
    ///
    /// The value is loaded (unpickled, checked) inside the transaction, before the entry
    /// is deleted: when loading fails, the error is raised and the entry stays.
    #[pyo3(signature = (key, default=None))]
    fn pop<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(r) = self.remote.get() {
            let found = r.pop(py, key)?;
            return Ok(found.unwrap_or_else(|| default.unwrap_or_else(|| py.None().into_bound(py))));
        }
        let st = self.ready(py)?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        let mut failed: Option<PyErr> = None;
        let popped = py.detach(|| {
            st.core.table().atomic(|| {
                // No engine statement is active while the value loads (Python code that
                // may use this cache again on this thread).
                let Some(found) = st.core.lookup(kr, fetched)? else {
                    return Ok(None);
                };
                match Python::attach(|py| st.codec.load(py, &found, kr).map(Bound::unbind)) {
                    Ok(value) => {
                        st.core.delete(kr)?;
                        Ok(Some(value))
                    }
                    Err(e) => {
                        failed = Some(e);
                        Err(diskstore::Error::Usage(
                            "the value could not be loaded".into(),
                        ))
                    }
                }
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let popped = popped.py()?;
        if popped.is_some() {
            // The entry's value file, if it had one, goes now that the deletion committed.
            py.detach(|| st.core.sweep_files()).py()?;
        }
        Ok(match popped {
            Some(v) => v.into_bound(py),
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    /// Gives the live entry of `key` a new expiry (`None` → the default, `0` → never);
    /// returns whether there was one.
    #[pyo3(signature = (key, expire=None))]
    fn touch(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        expire: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let ttl = ttl_of(expire, Ttl::Default)?;
        if let Some(r) = self.remote.get() {
            return r.touch(py, key, ttl);
        }
        let st = self.ready(py)?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        // 0.1.0's touch: an entry that expired but is still stored becomes readable again.
        py.detach(|| st.core.touch_stored(kr, ttl)).py()
    }

    /// Adds `delta` to the integer at `key` and returns the result, atomically across
    /// threads and processes. A missing key starts at `default` (written with the default
    /// expiration), or raises `KeyError` when `default` is None.
    #[pyo3(signature = (key, delta=1, default=Some(0)))]
    fn incr(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        delta: i64,
        default: Option<i64>,
    ) -> PyResult<i64> {
        if let Some(r) = self.remote.get() {
            return r.incr(py, key, delta, default);
        }
        let st = self.ready(py)?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        let kind = [Cell::Borrowed(ValueRef::Integer(NATIVE | k.kind_bit()))];
        let table = st.core.table();
        let r = py.detach(|| {
            table.atomic(|| {
                if default.is_none() && !st.core.contains(kr)? {
                    return Ok(None);
                }
                st.core
                    .try_incr(kr, delta, default.unwrap_or(0), Ttl::Default, &kind)
                    .map(Some)
            })
        });
        match r.py()? {
            Some(Ok(v)) => Ok(v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
            Some(Err(refusal @ IncrRefusal::NotAnInteger(_))) => {
                Err(PyTypeError::new_err(refusal.to_string()))
            }
            Some(Err(refusal @ IncrRefusal::Overflow)) => {
                Err(PyValueError::new_err(refusal.to_string()))
            }
        }
    }

    /// Subtracts `delta`; see `incr`.
    #[pyo3(signature = (key, delta=1, default=Some(0)))]
    fn decr(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        delta: i64,
        default: Option<i64>,
    ) -> PyResult<i64> {
        let delta = delta
            .checked_neg()
            .ok_or_else(|| PyValueError::new_err("integer overflow in decr"))?;
        self.incr(py, key, delta, default)
    }

    /// Deletes every expired entry now; returns how many.
    fn expire(&self, py: Python<'_>) -> PyResult<u64> {
        if let Some(r) = self.remote.get() {
            return r.expire(py);
        }
        let st = self.ready(py)?;
        py.detach(|| st.core.expire()).py()
    }

    /// Deletes every entry tagged `tag`; returns how many.
    fn evict(&self, py: Python<'_>, tag: &Bound<'_, PyAny>) -> PyResult<u64> {
        if let Some(r) = self.remote.get() {
            return r.evict(py, tag);
        }
        let st = self.ready(py)?;
        let t = st.codec.key(py, tag)?;
        let tr = t.key();
        py.detach(|| st.core.evict(tr)).py()
    }

    /// Deletes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(r) = self.remote.get() {
            return r.clear(py);
        }
        let st = self.ready(py)?;
        py.detach(|| st.core.clear()).py()
    }

    /// The number of live entries.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let n = match self.remote.get() {
            Some(r) => r.len(py)?,
            None => {
                let st = self.ready(py)?;
                py.detach(|| st.core.len()).py()?
            }
        };
        usize::try_from(n).map_err(|_| PyValueError::new_err("too many entries"))
    }

    /// The bytes of keys and values stored (never above `size_limit` after a write).
    fn volume(&self, py: Python<'_>) -> PyResult<u64> {
        if let Some(r) = self.remote.get() {
            return r.volume(py);
        }
        let st = self.ready(py)?;
        py.detach(|| st.core.volume()).py()
    }

    /// `(hits, misses)` of every process since the last reset; `enable` turns counting
    /// on or off for this handle, `reset` zeroes the counters (returning the old counts).
    #[pyo3(signature = (enable=true, reset=false))]
    fn stats(&self, py: Python<'_>, enable: bool, reset: bool) -> PyResult<(u64, u64)> {
        if let Some(r) = self.remote.get() {
            return r.stats(py, reset); // counted on the server, always on
        }
        let st = self.ready(py)?;
        st.core.set_stats_enabled(enable);
        let s = py
            .detach(|| {
                if reset {
                    st.core.reset_stats()
                } else {
                    st.core.stats()
                }
            })
            .py()?;
        Ok((s.hits, s.misses))
    }

    /// SQLite's integrity check and the value files' (entries whose file is missing,
    /// files no entry refers to): `[]` when healthy. `fix=True` deletes the entries whose
    /// file is missing and removes orphan files older than the timeout plus a minute;
    /// `vacuum=True` then rebuilds the file.
    #[pyo3(signature = (vacuum=false, fix=false))]
    fn check(&self, py: Python<'_>, vacuum: bool, fix: bool) -> PyResult<Vec<String>> {
        if let Some(r) = self.remote.get() {
            return r.check(py); // the server keeps its own files
        }
        let st = self.ready(py)?;
        let core = &st.core;
        let table = core.table();
        py.detach(|| {
            let mut msgs = table.check()?;
            let age = table.timeout() + Duration::from_secs(60);
            msgs.extend(core.check_files(fix, age)?);
            if vacuum {
                table.vacuum()?;
            }
            Ok(msgs)
        })
        .py()
    }

    /// Closes this thread's connection (it reopens on next use).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(r) = self.remote.get() {
            r.close();
            return Ok(());
        }
        let st = self.st()?;
        py.detach(|| st.core.table().close()).py()
    }

    /// A write transaction on this thread, as a context manager (`with
    /// cache.transact():`): the cache calls inside are all-or-nothing (rolled back on an
    /// exception) and other writers wait. Nests (an inner block joins the outer one). The
    /// context manager is native: a `KeyboardInterrupt` cannot land between the `BEGIN`
    /// and the block, so it never leaves a transaction open.
    fn transact(slf: Bound<'_, Self>) -> CacheTransaction {
        CacheTransaction {
            cache: slf.unbind(),
            opened: None,
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(clock) = self.py_clock.try_lock() {
            visit.call(clock.as_ref())?;
        }
        if let Some(st) = self.state.get() {
            let c = &st.codec;
            for f in [&c.dumps, &c.loads, &c.digest, &c.compare] {
                visit.call(f)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let clock = self.py_clock.try_lock().ok().and_then(|mut c| c.take());
        drop(clock);
    }

    /// Opens a write transaction on this thread (or joins the open one); returns whether
    /// this call opened it, for `_end`.
    fn _begin(&self, py: Python<'_>) -> PyResult<bool> {
        if let Some(r) = self.remote.get() {
            return r.begin(py).map(|()| true); // a server level always opens (or nests)
        }
        let st = self.ready(py)?;
        py.detach(|| st.core.table().begin()).py()
    }

    /// Ends what `_begin` started: commit, or roll back when `commit` is false.
    fn _end(&self, py: Python<'_>, opened: bool, commit: bool) -> PyResult<()> {
        if let Some(r) = self.remote.get() {
            return if opened { r.end(py, commit) } else { Ok(()) };
        }
        let st = self.ready(py)?;
        py.detach(|| end_and_sweep(&st.core, opened, commit)).py()
    }

    /// An iterator over the live keys, oldest stored first (newest first when
    /// `reverse`), read in pages; threads may share it.
    fn _key_iter(slf: &Bound<'_, Self>, reverse: bool) -> PyResult<CacheKeys> {
        if let Some(r) = slf.get().remote.get()
            && r.backend() == "redis"
        {
            // Redis keeps no order: its NotSupportedError now, not at the first key.
            r.keys_page(slf.py(), None, reverse, 1)?;
        }
        let direction = if reverse {
            Direction::Reverse
        } else {
            Direction::Forward
        };
        Ok(CacheKeys {
            cache: slf.clone().unbind(),
            state: Mutex::new((RowidPager::new(direction), VecDeque::new(), None)),
        })
    }

    /// The file.
    #[getter]
    fn filename(&self) -> PyResult<String> {
        if let Some(r) = self.remote.get() {
            return Ok(r.url().to_owned());
        }
        Ok(self
            .st()?
            .core
            .table()
            .path()
            .to_string_lossy()
            .into_owned())
    }

    /// The byte limit, or None.
    #[getter]
    fn size_limit(&self) -> PyResult<Option<u64>> {
        if let Some(r) = self.remote.get() {
            return Ok(r.limits().0);
        }
        Ok(self.st()?.core.size_limit())
    }

    /// The entry-count limit, or None.
    #[getter]
    fn count_limit(&self) -> PyResult<Option<u64>> {
        if let Some(r) = self.remote.get() {
            return Ok(r.limits().1);
        }
        Ok(self.st()?.core.count_limit())
    }

    /// The eviction policy (python-diskcache's name).
    #[getter]
    fn eviction_policy(&self) -> PyResult<&'static str> {
        if let Some(r) = self.remote.get() {
            return Ok(r.limits().2);
        }
        Ok(self.st()?.core.policy().name())
    }

    /// Seconds entries live unless told otherwise (None: forever).
    #[getter]
    fn default_expiration(&self) -> PyResult<Option<f64>> {
        if let Some(r) = self.remote.get() {
            return Ok(r.default_expiration());
        }
        Ok(self.st()?.default_ttl)
    }

    /// `"sqlite"`, `"postgres"` or `"redis"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.remote.get().map_or("sqlite", RemoteCacheCore::backend)
    }

    /// Opens the cache on a server URL instead of a file (called once by
    /// `DiskCache.__init__` for `postgresql://` and `redis://`).
    #[pyo3(signature = (url, table, default_ttl, size_limit, count_limit, policy, unlogged, clock))]
    #[allow(clippy::too_many_arguments)]
    fn _open_remote(
        &self,
        py: Python<'_>,
        url: &str,
        table: &str,
        default_ttl: Option<f64>,
        size_limit: Option<u64>,
        count_limit: Option<u64>,
        policy: &str,
        unlogged: bool,
        clock: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        if self.state.get().is_some() || self.remote.get().is_some() {
            return Err(DiskStoreError::new_err("the cache is already open"));
        }
        let mut o = RemoteCacheOptions::new(table);
        let (default_ttl, ttl) = default_expiration(default_ttl)?;
        o.default_ttl = ttl;
        o.size_limit = size_limit;
        o.count_limit = count_limit;
        o.policy = policy.parse().py()?;
        o.unlogged = unlogged;
        if let Some(c) = clock {
            o.clock = Arc::new(crate::remote::PyClock(c));
        }
        let core = RemoteCacheCore::open(py, url, o, default_ttl)?;
        let _ = self.remote.set(core);
        Ok(())
    }

    /// The values of `keys` in one round trip (server backends; `DiskCache.get_many`).
    #[pyo3(signature = (keys, default=None))]
    fn _get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.server()?.get_many(py, keys, default)
    }

    /// Stores pairs in one round trip (server backends; `DiskCache.set_many`).
    fn _set_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        self.server()?.set_many(py, items)
    }

    /// Deletes `keys` in one round trip (server backends; `DiskCache.delete_many`).
    fn _delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.server()?.delete_many(py, keys)
    }
}

impl PyCache {
    fn write(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Ttl,
        tag: Option<&Bound<'_, PyAny>>,
        only_new: bool,
    ) -> PyResult<bool> {
        if let Some(r) = self.remote.get() {
            return r.write(py, key, value, ttl, tag, only_new);
        }
        let st = self.ready(py)?;
        let k = st.codec.key(py, key)?;
        let (v, kind) = st.codec.value(py, value, k.key())?;
        let t = tag
            .filter(|t| !t.is_none())
            .map(|t| st.codec.key(py, t))
            .transpose()?;
        let cells = [v, Cell::Borrowed(ValueRef::Integer(kind | k.kind_bit()))];
        let (kr, tr) = (k.key(), t.as_ref().map(EncKey::key));
        py.detach(|| {
            if only_new {
                st.core.add(kr, &cells, ttl, tr)
            } else {
                st.core.set(kr, &cells, ttl, tr).map(|()| true)
            }
        })
        .py()
    }
}

/// Ends a transaction level; after the outermost commit, removes the value files of the
/// entries it deleted.
fn end_and_sweep(core: &CacheTable, opened: bool, commit: bool) -> diskstore::Result<()> {
    core.table().end(opened, commit)?;
    if opened && commit {
        core.sweep_files()?;
    }
    Ok(())
}

/// The context manager `DiskCache.transact()` returns: `BEGIN IMMEDIATE` on enter (or
/// joining this thread's open transaction), commit on a clean exit, rollback on an
/// exception. Native, so that no signal (`KeyboardInterrupt`) can land between beginning
/// the transaction and arming its exit, as one could in a Python generator.
///
/// A child process forked inside the block does not own the transaction (the parent
/// does): leaving the block in the child ends nothing there.
/// The live keys of a cache in insertion order (or reversed), read in pages by the
/// engine's rowid pager: a forward pass ends at the last entry present when it reads its
/// first page, so a loop that stores a key per key read ends. A key stored meanwhile is not
/// visited unless the newest entries were deleted first (SQLite reuses their rowids).
#[pyclass(frozen, module = "diskstore._diskstore", name = "_CacheKeys")]
pub struct CacheKeys {
    cache: Py<PyCache>,
    /// The pager, the keys read and not yet returned, and (on a server) the position of
    /// the last key read.
    state: Mutex<(RowidPager, VecDeque<Py<PyAny>>, Option<i64>)>,
}

impl CacheKeys {
    /// Reads the next page of keys into `keys`.
    fn fill(
        &self,
        py: Python<'_>,
        pager: &mut RowidPager,
        keys: &mut VecDeque<Py<PyAny>>,
        after: &mut Option<i64>,
    ) -> PyResult<()> {
        if let Some(r) = self.cache.get().remote.get() {
            let reverse = matches!(pager.direction(), Direction::Reverse);
            let page = r.keys_page(py, *after, reverse, SCAN_PAGE)?;
            if page.len() < SCAN_PAGE {
                pager.finish();
            }
            for (pos, k) in page {
                *after = Some(pos);
                keys.push_back(k.unbind());
            }
            return Ok(());
        }
        let st = self.cache.get().ready(py)?;
        let Some((from, to, direction)) = py
            .detach(|| pager.next_range(|| st.core.table().max_rowid()))
            .py()?
        else {
            return Ok(());
        };
        let mut rows: Vec<(Value, i64, i64)> = Vec::new();
        let n = py
            .detach(|| {
                st.core.scan(from, to, direction, |rowid, row| {
                    let kind = match row.value(1)? {
                        ValueRef::Integer(k) => k,
                        _ => NATIVE,
                    };
                    rows.push((row.key()?.to_owned(), kind, rowid));
                    Ok(())
                })
            })
            .py()?;
        pager.advance(n, SCAN_PAGE, rows.last().map(|(_, _, r)| *r));
        for (k, kind, _) in &rows {
            keys.push_back(st.codec.load_key(py, k, *kind)?.unbind());
        }
        Ok(())
    }
}

#[pymethods]
impl CacheKeys {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut guard = crate::iter::lock_detached(py, &self.state);
        let (pager, keys, after) = &mut *guard;
        loop {
            if let Some(k) = keys.pop_front() {
                return Ok(Some(k));
            }
            if pager.is_done() {
                return Ok(None);
            }
            self.fill(py, pager, keys, after)?;
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.cache)?;
        if let Ok(state) = self.state.try_lock() {
            for k in &state.1 {
                visit.call(k)?;
            }
        }
        Ok(())
    }
}

#[pyclass(module = "diskstore._diskstore", name = "_CacheTransaction")]
pub struct CacheTransaction {
    cache: Py<PyCache>,
    /// While open: whether `__enter__` opened it (rather than joined). In a child of
    /// fork() the engine ends the parent's level as a no-op.
    opened: Option<bool>,
}

#[pymethods]
impl CacheTransaction {
    /// Begins the transaction; returns the cache.
    fn __enter__<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, PyCache>> {
        if slf.opened.is_some() {
            return Err(DiskStoreError::new_err("this transaction is already open"));
        }
        let cache = slf.cache.clone_ref(py).into_bound(py);
        let opened = if let Some(r) = cache.get().remote.get() {
            r.begin(py).map(|()| true)?
        } else {
            let st = cache.get().st()?;
            py.detach(|| st.core.table().begin()).py()?
        };
        slf.opened = Some(opened);
        Ok(cache)
    }

    /// Commits (no exception) or rolls back; never swallows the exception.
    fn __exit__(
        mut slf: PyRefMut<'_, Self>,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc_value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let Some(opened) = slf.opened.take() else {
            return Ok(false);
        };
        let cache = slf.cache.clone_ref(py).into_bound(py);
        drop(slf);
        let commit = exc_type.is_none();
        if let Some(r) = cache.get().remote.get() {
            r.end(py, commit)?;
            return Ok(false);
        }
        let st = cache.get().st()?;
        py.detach(|| end_and_sweep(&st.core, opened, commit)).py()?;
        Ok(false)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.cache)
    }
}

/// Adds the classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCache>()?;
    m.add_class::<CacheKeys>()?;
    m.add_class::<CacheTransaction>()
}
