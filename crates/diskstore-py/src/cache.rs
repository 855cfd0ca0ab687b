//! `_Cache`: the Rust base of the Python `diskstore.DiskCache`, on the engine's
//! [`CacheTable`].
//!
//! Keys and values of type `int`, `float`, `str`, `bytes` (and `None` values) are stored
//! natively; anything else is pickled. With a `secret`, every pickle is stored behind an
//! HMAC-SHA256 tag and refused on load unless the tag verifies, so that a file someone
//! else can write cannot make this process unpickle (= run) their code. The table has two
//! value columns: `value` and `kind` (bits 0–1: value encoding, bit 2: pickled key).
//!
//! Every engine call runs with the GIL released; pickling and HMAC run before or after.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use diskstore::{
    CacheOptions, CacheTable, Cell, Clock, Column, ColumnType, Direction, EvictionPolicy, KeyRef,
    Row, SCAN_PAGE, SystemClock, Ttl, Value, ValueRef,
};

use crate::convert::to_py;
use crate::errors::{DecodeError, DiskStoreError, IntoPyResult};

/// Value stored as is.
const NATIVE: i64 = 0;
/// Value pickled.
const PICKLED: i64 = 1;
/// Value pickled behind an HMAC-SHA256 tag.
const SIGNED: i64 = 2;
/// Bit set when the key is a pickle (signed if the cache has a secret).
const KEY_PICKLED: i64 = 4;
/// Length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// A clock that asks a Python callable for the time (seconds since the epoch), for tests
/// that patch the time source. Called by the engine before it takes any lock.
struct PyClock(Py<PyAny>);

impl Clock for PyClock {
    fn now(&self) -> Duration {
        Python::attach(|py| {
            match self
                .0
                .call0(py)
                .and_then(|t| t.extract::<f64>(py))
                .and_then(|t| {
                    Duration::try_from_secs_f64(t)
                        .map_err(|_| PyValueError::new_err("the clock returned a bad time"))
                }) {
                Ok(d) => d,
                Err(e) => {
                    e.write_unraisable(py, Some(self.0.bind(py)));
                    SystemClock.now()
                }
            }
        })
    }
}

struct Codec {
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

fn fetched(row: &Row<'_>) -> diskstore::Result<Fetched> {
    let kind = match row.value(1)? {
        ValueRef::Integer(k) => k,
        _ => NATIVE,
    };
    Ok((row.value(0)?.to_owned(), kind))
}

impl Codec {
    fn sign(&self, py: Python<'_>, payload: &[u8]) -> PyResult<Option<Vec<u8>>> {
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let tag = self.digest.call1(
            py,
            (
                PyBytes::new(py, secret),
                PyBytes::new(py, payload),
                intern!(py, "sha256"),
            ),
        )?;
        let tag = tag.bind(py).cast::<PyBytes>()?.as_bytes();
        let mut out = Vec::with_capacity(tag.len() + payload.len());
        out.extend_from_slice(tag);
        out.extend_from_slice(payload);
        Ok(Some(out))
    }

    /// A pickle (signed with the secret, if any) and its kind.
    fn pickle(&self, py: Python<'_>, ob: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, i64)> {
        let p = self.dumps.call1(py, (ob, 5))?;
        let p = p.bind(py).cast::<PyBytes>()?.as_bytes();
        Ok(match self.sign(py, p)? {
            Some(signed) => (signed, SIGNED),
            None => (p.to_vec(), PICKLED),
        })
    }

    /// Unpickles `data` stored as `kind`, refusing what the secret does not vouch for.
    fn unpickle<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        signed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payload = match (&self.secret, signed) {
            (None, false) => data,
            (Some(_), true) => {
                if data.len() < TAG_LEN {
                    return Err(DecodeError::new_err("signed pickle is too short; refused"));
                }
                let (tag, payload) = data.split_at(TAG_LEN);
                let expected = self.sign(py, payload)?.expect("a secret is set");
                let ok = self
                    .compare
                    .call1(
                        py,
                        (
                            PyBytes::new(py, tag),
                            PyBytes::new(py, &expected[..TAG_LEN]),
                        ),
                    )?
                    .is_truthy(py)?;
                if !ok {
                    return Err(DecodeError::new_err(
                        "a pickled entry fails its HMAC check (the file was changed by someone \
                         without the secret); refusing to unpickle it",
                    ));
                }
                payload
            }
            (Some(_), false) => {
                return Err(DecodeError::new_err(
                    "an unsigned pickle in a cache opened with a secret; refusing to unpickle it",
                ));
            }
            (None, true) => {
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
        Ok(EncKey::Pickled(self.pickle(py, ob)?.0))
    }

    fn load_key<'py>(
        &self,
        py: Python<'py>,
        key: &Value,
        kind: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        match (key, kind & KEY_PICKLED != 0) {
            (Value::Blob(b), true) => self.unpickle(py, b, self.secret.is_some()),
            _ => Ok(to_py(py, key)),
        }
    }

    /// The value cell and kind of a Python value.
    fn value<'a>(&self, py: Python<'_>, ob: &'a Bound<'_, PyAny>) -> PyResult<(Cell<'a>, i64)> {
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
        let (p, kind) = self.pickle(py, ob)?;
        Ok((Cell::Owned(Value::Blob(p)), kind))
    }

    fn load<'py>(&self, py: Python<'py>, (value, kind): &Fetched) -> PyResult<Bound<'py, PyAny>> {
        match (kind & 3, value) {
            (NATIVE, v) => Ok(to_py(py, v)),
            (PICKLED, Value::Blob(b)) => self.unpickle(py, b, false),
            (SIGNED, Value::Blob(b)) => self.unpickle(py, b, true),
            _ => Err(DecodeError::new_err(format!(
                "unknown cache entry encoding {kind}"
            ))),
        }
    }
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
}

impl PyCache {
    /// Runs `op` for the encoded `key` with the GIL released, then loads the value it
    /// found, if any.
    fn load_with<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        op: impl FnOnce(&CacheTable, KeyRef<'_>) -> diskstore::Result<Option<Fetched>> + Send,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let st = self.st()?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        let found = py.detach(|| op(&st.core, kr)).py()?;
        found.map(|f| st.codec.load(py, &f)).transpose()
    }

    fn st(&self) -> PyResult<&State> {
        self.state
            .get()
            .ok_or_else(|| DiskStoreError::new_err("the cache is not open"))
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
        }
    }

    /// Opens the engine (called once by `DiskCache.__init__`).
    #[pyo3(signature = (path, table, default_ttl, size_limit, count_limit, policy, timeout, statistics, secret, clock))]
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
    ) -> PyResult<()> {
        if self.state.get().is_some() {
            return Err(DiskStoreError::new_err("the cache is already open"));
        }
        let policy: EvictionPolicy = policy.parse().py()?;
        let columns = vec![
            Column::new("value", ColumnType::Blob, true, None),
            Column::new("kind", ColumnType::Integer, false, Some(Value::Integer(0))),
        ];
        let mut options = CacheOptions::new(path, table, columns);
        let default_ttl = default_ttl.filter(|t| *t != 0.0 && t.is_finite());
        if let Some(t) = default_ttl {
            options.default_ttl = Some(
                Duration::try_from_secs_f64(t)
                    .map_err(|_| PyValueError::new_err("default_expiration must be >= 0"))?,
            );
        }
        options.size_limit = size_limit;
        options.count_limit = count_limit;
        options.policy = policy;
        options.timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| PyValueError::new_err("timeout must be a finite number of seconds"))?;
        options.stats = statistics;
        if let Some(c) = clock {
            options.clock = Arc::new(PyClock(c));
        }
        if secret.as_ref().is_some_and(Vec::is_empty) {
            return Err(PyValueError::new_err("secret must not be empty"));
        }
        let pickle = py.import("pickle")?;
        let hmac = py.import("hmac")?;
        let codec = Codec {
            secret,
            dumps: pickle.getattr("dumps")?.unbind(),
            loads: pickle.getattr("loads")?.unbind(),
            digest: hmac.getattr("digest")?.unbind(),
            compare: hmac.getattr("compare_digest")?.unbind(),
        };
        let core = py.detach(|| CacheTable::open(options)).py()?;
        let _ = self.state.set(State {
            core,
            codec,
            default_ttl,
        });
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
        let v = self.load_with(py, key, |core, k| core.get(k, fetched))?;
        Ok(v.unwrap_or_else(|| default.unwrap_or_else(|| py.None().into_bound(py))))
    }

    /// The value of `key`; `KeyError` when it is absent or expired.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.load_with(py, key, |core, k| core.get(k, fetched))?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    /// True if `key` has a live entry.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let st = self.st()?;
        let k = st.codec.key(py, key)?;
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
        let st = self.st()?;
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
    #[pyo3(signature = (key, default=None))]
    fn pop<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v = self.load_with(py, key, |core, k| core.pop(k, fetched))?;
        Ok(v.unwrap_or_else(|| default.unwrap_or_else(|| py.None().into_bound(py))))
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
        let st = self.st()?;
        let ttl = ttl_of(expire, Ttl::Default)?;
        let k = st.codec.key(py, key)?;
        let kr = k.key();
        py.detach(|| st.core.touch(kr, ttl)).py()
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
        let st = self.st()?;
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
                    .incr(kr, delta, default.unwrap_or(0), Ttl::Default, &kind)
                    .map(Some)
            })
        });
        match r {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(PyKeyError::new_err(key.clone().unbind())),
            Err(diskstore::Error::InvalidValue(m)) if m.starts_with("cannot increment") => {
                Err(PyTypeError::new_err(m))
            }
            Err(e) => Err(crate::errors::to_py_err(e)),
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
        let st = self.st()?;
        py.detach(|| st.core.expire()).py()
    }

    /// Deletes every entry tagged `tag`; returns how many.
    fn evict(&self, py: Python<'_>, tag: &Bound<'_, PyAny>) -> PyResult<u64> {
        let st = self.st()?;
        let t = st.codec.key(py, tag)?;
        let tr = t.key();
        py.detach(|| st.core.evict(tr)).py()
    }

    /// Deletes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let st = self.st()?;
        py.detach(|| st.core.clear()).py()
    }

    /// The number of live entries.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let st = self.st()?;
        let n = py.detach(|| st.core.len()).py()?;
        usize::try_from(n).map_err(|_| PyValueError::new_err("too many entries"))
    }

    /// The bytes of keys and values stored (never above `size_limit` after a write).
    fn volume(&self, py: Python<'_>) -> PyResult<u64> {
        let st = self.st()?;
        py.detach(|| st.core.volume()).py()
    }

    /// `(hits, misses)` of every process since the last reset; `enable` turns counting
    /// on or off for this handle, `reset` zeroes the counters (returning the old counts).
    #[pyo3(signature = (enable=true, reset=false))]
    fn stats(&self, py: Python<'_>, enable: bool, reset: bool) -> PyResult<(u64, u64)> {
        let st = self.st()?;
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

    /// SQLite's integrity check: `[]` when healthy; `vacuum=True` then rebuilds the file.
    #[pyo3(signature = (vacuum=false))]
    fn check(&self, py: Python<'_>, vacuum: bool) -> PyResult<Vec<String>> {
        let st = self.st()?;
        let table = st.core.table();
        py.detach(|| {
            let msgs = table.check()?;
            if vacuum {
                table.vacuum()?;
            }
            Ok(msgs)
        })
        .py()
    }

    /// Closes this thread's connection (it reopens on next use).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let st = self.st()?;
        py.detach(|| st.core.table().close()).py()
    }

    /// Opens a write transaction on this thread (or joins the open one); returns whether
    /// this call opened it, for `_end`.
    fn _begin(&self, py: Python<'_>) -> PyResult<bool> {
        let st = self.st()?;
        py.detach(|| st.core.table().begin()).py()
    }

    /// Ends what `_begin` started: commit, or roll back when `commit` is false.
    fn _end(&self, py: Python<'_>, opened: bool, commit: bool) -> PyResult<()> {
        let st = self.st()?;
        py.detach(|| st.core.table().end(opened, commit)).py()
    }

    /// The largest rowid now, or None when empty: where a forward iteration that starts
    /// now ends, so that keys added meanwhile are not visited.
    fn _last_rowid(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        let st = self.st()?;
        py.detach(|| st.core.table().max_rowid()).py()
    }

    /// One page of live keys with rowids from `start` to `end` (down to `end` when
    /// `reverse`): `(keys, next_start)`; `next_start` is None at the end.
    fn _keys_page<'py>(
        &self,
        py: Python<'py>,
        start: i64,
        end: i64,
        reverse: bool,
    ) -> PyResult<(Bound<'py, PyList>, Option<i64>)> {
        let st = self.st()?;
        let (from, to, direction) = if reverse {
            (end, start, Direction::Reverse)
        } else {
            (start, end, Direction::Forward)
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
        let next = match (rows.last(), reverse) {
            _ if n < SCAN_PAGE => None,
            (Some((_, _, r)), false) => r.checked_add(1),
            (Some((_, _, r)), true) => r.checked_sub(1),
            (None, _) => None,
        };
        let keys = PyList::empty(py);
        for (k, kind, _) in &rows {
            keys.append(st.codec.load_key(py, k, *kind)?)?;
        }
        Ok((keys, next))
    }

    /// The file.
    #[getter]
    fn filename(&self) -> PyResult<String> {
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
        Ok(self.st()?.core.size_limit())
    }

    /// The entry-count limit, or None.
    #[getter]
    fn count_limit(&self) -> PyResult<Option<u64>> {
        Ok(self.st()?.core.count_limit())
    }

    /// The eviction policy (python-diskcache's name).
    #[getter]
    fn eviction_policy(&self) -> PyResult<&'static str> {
        Ok(self.st()?.core.policy().name())
    }

    /// Seconds entries live unless told otherwise (None: forever).
    #[getter]
    fn default_expiration(&self) -> PyResult<Option<f64>> {
        Ok(self.st()?.default_ttl)
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
        let st = self.st()?;
        let k = st.codec.key(py, key)?;
        let (v, kind) = st.codec.value(py, value)?;
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

/// Adds the class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCache>()
}
