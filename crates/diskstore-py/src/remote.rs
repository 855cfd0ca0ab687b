//! The PostgreSQL store (`_PgStore`) and the server side of the cache (`_Cache` on
//! PostgreSQL or Redis, [`RemoteCacheCore`]) behind `DiskStore("postgresql://…")` and `DiskCache("postgresql://…" |
//! "redis://…")`; the Python classes are in `python/diskstore/remote.py`.
//!
//! Keys and default-model values travel as tagged bytes: `i` + decimal integer, `f` + the
//! 8 bytes of a float, `s` + UTF-8 text, `b` + bytes, `n` for None, `p` + a pickle for
//! anything else (values only; the cache pickles keys of other types too). A float key
//! with an integral value is the integer key, as in SQLite.

use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use diskstore::remote::found::RemoteValueRef;
use diskstore::remote::postgres::PgTable;
use diskstore::remote::postgres_cache::PgCache;
use diskstore::remote::redis::RedisCache;
use diskstore::remote::{Backend, IncrOutcome, RemoteCache, RemoteCacheOptions, RemoteValue};
use diskstore::{Cell, Clock, Column, ColumnType, FieldKind, KeyRef, TableSpec, Ttl, Value};

use crate::convert;
use crate::errors::IntoPyResult;

fn pickle<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyModule>> {
    py.import("pickle")
}

/// Tagged bytes of a key: `int`, `float`, `str`, `bytes` (as SQLite keys); with
/// `pickled`, any other picklable object too (the cache's keys).
fn encode_key(py: Python<'_>, ob: &Bound<'_, PyAny>, pickled: bool) -> PyResult<Vec<u8>> {
    let mut out = Vec::new();
    encode_key_into(py, ob, pickled, &mut out)?;
    Ok(out)
}

/// [`encode_key`], appended to `out`.
fn encode_key_into(
    py: Python<'_>,
    ob: &Bound<'_, PyAny>,
    pickled: bool,
    out: &mut Vec<u8>,
) -> PyResult<()> {
    let k = match convert::key_ref(ob) {
        Ok(k) => k,
        Err(e) if pickled && e.is_instance_of::<PyTypeError>(py) => {
            out.push(b'p');
            let p = pickle(py)?.call_method1("dumps", (ob, 5))?;
            out.extend_from_slice(p.cast::<PyBytes>()?.as_bytes());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let int;
    let float;
    let (tag, body): (u8, &[u8]) = match k {
        KeyRef::Int(i) => {
            int = i.to_string();
            (b'i', int.as_bytes())
        }
        KeyRef::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            int = (f as i64).to_string();
            (b'i', int.as_bytes())
        }
        KeyRef::Float(f) => {
            float = f.to_be_bytes();
            (b'f', &float)
        }
        KeyRef::Text(s) => (b's', s.as_bytes()),
        KeyRef::Blob(b) => (b'b', b),
    };
    out.push(tag);
    out.extend_from_slice(body);
    Ok(())
}

fn int_bytes(i: i64) -> Vec<u8> {
    tagged(b'i', i.to_string().as_bytes())
}

fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// Tagged bytes of a value. `bool` is an integer unless `keep_bool` (then pickled).
fn encode_value(py: Python<'_>, ob: &Bound<'_, PyAny>, keep_bool: bool) -> PyResult<Vec<u8>> {
    if let Ok(s) = ob.cast_exact::<PyString>() {
        return Ok(tagged(b's', s.to_str()?.as_bytes()));
    }
    if let Ok(b) = ob.cast_exact::<PyBytes>() {
        return Ok(tagged(b'b', b.as_bytes()));
    }
    if ob.is_none() {
        return Ok(vec![b'n']);
    }
    if let Ok(f) = ob.cast_exact::<PyFloat>() {
        return Ok(tagged(b'f', &f.value().to_be_bytes()));
    }
    let is_bool = ob.is_instance_of::<PyBool>();
    if ob.is_instance_of::<PyInt>()
        && !(keep_bool && is_bool)
        && let Ok(i) = ob.extract::<i64>()
    {
        return Ok(int_bytes(i));
    }
    let mut out = vec![b'p'];
    let p = pickle(py)?.call_method1("dumps", (ob, 5))?;
    out.extend_from_slice(p.cast::<PyBytes>()?.as_bytes());
    Ok(out)
}

/// The object of tagged bytes.
fn decode<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let bad = || crate::errors::DecodeError::new_err("not a value written by diskstore");
    let (tag, body) = raw.split_first().ok_or_else(bad)?;
    Ok(match tag {
        b'n' => py.None().into_bound(py),
        b'i' => {
            let s = std::str::from_utf8(body).map_err(|_| bad())?;
            s.parse::<i64>()
                .map_err(|_| bad())?
                .into_pyobject(py)?
                .into_any()
        }
        b'f' => {
            let bytes: [u8; 8] = body.try_into().map_err(|_| bad())?;
            PyFloat::new(py, f64::from_be_bytes(bytes)).into_any()
        }
        b's' => PyString::new(py, std::str::from_utf8(body).map_err(|_| bad())?).into_any(),
        b'b' => PyBytes::new(py, body).into_any(),
        b'p' => pickle(py)?.call_method1("loads", (PyBytes::new(py, body),))?,
        _ => return Err(bad()),
    })
}

/// The column value of a Python object (copied out of it).
fn owned_value(ob: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(match convert::cell(ob)? {
        Cell::Borrowed(v) => v.to_owned(),
        Cell::Owned(v) => v,
    })
}

/// `(name, sqlite_type, default)` of one field of a NamedTuple value class.
type FieldSpec<'py> = (String, String, Option<Bound<'py, PyAny>>);
/// `(position, key, value)` of one entry.
type PageRow<'py> = (i64, Bound<'py, PyAny>, Bound<'py, PyAny>);

/// The store on PostgreSQL. Without a value model, one `bytea` column holds each value
/// (tagged `int`/`float`/`str`/`bytes`, as a SQLite column would); with a NamedTuple
/// `value_class` or a config, one typed
/// column per field.
#[pyclass(frozen, subclass, module = "diskstore._diskstore", name = "_PgStore")]
pub struct PgStorePy {
    table: PgTable,
    /// Builds a value from its fields (a NamedTuple class or a config's loader); None:
    /// the default model.
    load: Option<Py<PyAny>>,
    /// Makes the field tuple of a value (a config's dumper); None: the value is the tuple.
    dump: Option<Py<PyAny>>,
    read_only: bool,
    url: String,
}

impl PgStorePy {
    fn writable(&self) -> PyResult<()> {
        if self.read_only {
            return Err(crate::errors::ReadOnlyError::new_err(format!(
                "{} is open read-only (DiskRead)",
                self.url
            )));
        }
        Ok(())
    }

    fn cells<'a>(&self, py: Python<'_>, value: &'a Bound<'_, PyAny>) -> PyResult<Vec<Cell<'a>>> {
        if self.load.is_none() {
            // The default model takes what a SQLite column takes (None is refused, as by
            // its NOT NULL column), so that code behaves the same on both backends.
            if value.is_none() {
                return Err(crate::errors::IntegrityError::new_err(format!(
                    "NOT NULL constraint failed: {}.value",
                    self.table.spec().name
                )));
            }
            convert::cell(value)?;
            return Ok(vec![Cell::Owned(Value::Blob(encode_value(
                py, value, false,
            )?))]);
        }
        let dumped;
        let t = match &self.dump {
            Some(dump) => {
                dumped = dump.bind(py).call1((value,))?;
                dumped.cast::<PyTuple>()?
            }
            None => value.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "values of this store are NamedTuples, not {}",
                    value
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?,
        };
        let n = self.table.spec().columns.len();
        if t.len() != n {
            return Err(PyValueError::new_err(format!(
                "{} fields for {n} columns",
                t.len()
            )));
        }
        // A BLOB column takes any plain value on SQLite: here it holds tagged bytes.
        t.iter()
            .zip(&self.table.spec().columns)
            .map(|(f, col)| {
                if col.sql_type == ColumnType::Blob && !f.is_none() {
                    convert::cell(&f)?;
                    Ok(Cell::Owned(Value::Blob(encode_value(py, &f, false)?)))
                } else {
                    owned_value(&f).map(Cell::Owned)
                }
            })
            .collect()
    }

    fn value<'py>(&self, py: Python<'py>, values: &[Value]) -> PyResult<Bound<'py, PyAny>> {
        match &self.load {
            None => match values.first() {
                Some(Value::Blob(b)) => decode(py, b),
                _ => Err(crate::errors::DecodeError::new_err(
                    "the value column holds no diskstore value",
                )),
            },
            Some(load) => {
                let fields: Vec<Bound<'py, PyAny>> = values
                    .iter()
                    .zip(&self.table.spec().columns)
                    .map(|(v, col)| match v {
                        Value::Blob(b) if col.sql_type == ColumnType::Blob => decode(py, b),
                        v => Ok(convert::to_py(py, v)),
                    })
                    .collect::<PyResult<_>>()?;
                load.bind(py).call1(PyTuple::new(py, fields)?)
            }
        }
    }

    fn key_of<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        match v {
            Value::Blob(b) => decode(py, b),
            _ => Err(crate::errors::DecodeError::new_err(
                "a key not written by diskstore",
            )),
        }
    }
}

#[pymethods]
impl PgStorePy {
    /// Connects and creates (or migrates) the table. `fields`: `(name, sqlite_type,
    /// default)` of each value field, or None for the default model; `load(*fields)`
    /// builds a value, `dump(value)` gives its field tuple (None: the value is one).
    /// `kinds`: per field `"bool"`, `"json"` or None (a `boolean`/`jsonb` column for an
    /// INTEGER/TEXT field).
    #[new]
    #[pyo3(signature = (url, table, fields=None, load=None, dump=None, read_only=false, kinds=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &str,
        table: &str,
        fields: Option<Vec<FieldSpec<'_>>>,
        load: Option<Py<PyAny>>,
        dump: Option<Py<PyAny>>,
        read_only: bool,
        kinds: Option<Vec<Option<String>>>,
    ) -> PyResult<Self> {
        let kinds = kinds.unwrap_or_default();
        let kind = |i: usize| -> PyResult<FieldKind> {
            match kinds.get(i).and_then(Option::as_deref) {
                None => Ok(FieldKind::Plain),
                Some("bool") => Ok(FieldKind::Bool),
                Some("json") => Ok(FieldKind::Json),
                Some(other) => Err(PyValueError::new_err(format!(
                    "unknown field kind {other:?} (expected \"bool\", \"json\" or None)"
                ))),
            }
        };
        let columns = match &fields {
            None => vec![Column::new("value", ColumnType::Blob, false, None)],
            Some(fs) => fs
                .iter()
                .enumerate()
                .map(|(i, (name, sql_type, default))| {
                    let default = match default {
                        Some(d) if !d.is_none() => Some(match convert::cell(d)? {
                            Cell::Borrowed(v) => v.to_owned(),
                            Cell::Owned(v) => v,
                        }),
                        _ => None,
                    };
                    Ok(Column::new(
                        name.clone(),
                        ColumnType::from_declared(sql_type),
                        true,
                        default,
                    )
                    .with_kind(kind(i)?))
                })
                .collect::<PyResult<_>>()?,
        };
        let spec = TableSpec {
            name: table.to_owned(),
            key_type: ColumnType::Blob,
            columns,
        };
        let url_owned = url.to_owned();
        // Read-only as on the server: nothing created or migrated (a missing table is a
        // SchemaError, as for a file), and the sessions refuse writes.
        let t = py
            .detach(|| match read_only {
                true => PgTable::open_read_only(&url_owned, spec),
                false => PgTable::open(&url_owned, spec),
            })
            .py()?;
        Ok(PgStorePy {
            url: diskstore::remote::redact_url(url),
            table: t,
            load: if fields.is_some() { load } else { None },
            dump,
            read_only,
        })
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = encode_key(py, key, false)?;
        match py.detach(|| self.table.get(KeyRef::Blob(&k))).py()? {
            Some(v) => self.value(py, &v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = encode_key(py, key, false)?;
        match py.detach(|| self.table.get(KeyRef::Blob(&k))).py()? {
            Some(v) => self.value(py, &v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.writable()?;
        let k = encode_key(py, key, false)?;
        let cells = self.cells(py, value)?;
        py.detach(|| self.table.set(KeyRef::Blob(&k), &cells)).py()
    }

    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        self.writable()?;
        let k = encode_key(py, key, false)?;
        if py.detach(|| self.table.delete(KeyRef::Blob(&k))).py()? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = match encode_key(py, key, false) {
            Ok(k) => k,
            Err(e) if e.is_instance_of::<PyTypeError>(py) => return Ok(false),
            Err(e) => return Err(e),
        };
        py.detach(|| self.table.contains(KeyRef::Blob(&k))).py()
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(py.detach(|| self.table.len()).py()? as usize)
    }

    /// Stores `value` only if `key` is new; True if stored (atomic).
    fn _add(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.writable()?;
        let k = encode_key(py, key, false)?;
        let cells = self.cells(py, value)?;
        py.detach(|| self.table.insert_new(KeyRef::Blob(&k), &cells))
            .py()
    }

    /// The value of `key`, after storing `default` if the key was new (atomic).
    #[pyo3(signature = (key, default=None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.writable()?;
        let k = encode_key(py, key, false)?;
        let d = default.unwrap_or_else(|| py.None().into_bound(py));
        let cells = self.cells(py, &d)?;
        let v = py
            .detach(|| self.table.get_or_insert(KeyRef::Blob(&k), &cells))
            .py()?;
        self.value(py, &v)
    }

    /// Deletes `key` and returns `(True, value)`, or `(False, None)` (atomic).
    fn _remove<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        self.writable()?;
        let k = encode_key(py, key, false)?;
        match py.detach(|| self.table.remove(KeyRef::Blob(&k))).py()? {
            Some(v) => Ok((true, self.value(py, &v)?)),
            None => Ok((false, py.None().into_bound(py))),
        }
    }

    /// Deletes and returns the newest (`last`) or oldest `(key, value)`; KeyError when
    /// empty. Concurrent callers never get the same entry.
    #[pyo3(signature = (last=true))]
    fn popitem<'py>(
        &self,
        py: Python<'py>,
        last: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        self.writable()?;
        match py.detach(|| self.table.pop(last)).py()? {
            Some(row) => Ok((Self::key_of(py, &row[0])?, self.value(py, &row[1..])?)),
            None => Err(PyKeyError::new_err("popitem(): the store is empty")),
        }
    }

    /// The values of `keys` (`default` where missing), in one round trip.
    #[pyo3(signature = (keys, default=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let encoded: Vec<Vec<u8>> = keys
            .try_iter()?
            .map(|k| encode_key(py, &k?, false))
            .collect::<PyResult<_>>()?;
        let refs: Vec<KeyRef<'_>> = encoded.iter().map(|k| KeyRef::Blob(k)).collect();
        let found = py.detach(|| self.table.get_many(&refs)).py()?;
        let d = default.unwrap_or_else(|| py.None().into_bound(py));
        let out = PyList::empty(py);
        for v in found {
            match v {
                Some(v) => out.append(self.value(py, &v)?)?,
                None => out.append(&d)?,
            }
        }
        Ok(out)
    }

    /// Stores `(key, value)` pairs in one round trip.
    fn _set_many(&self, py: Python<'_>, pairs: &Bound<'_, PyAny>) -> PyResult<()> {
        self.writable()?;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut owned: Vec<Vec<Value>> = Vec::new();
        for pair in pairs.try_iter()? {
            let pair = pair?;
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
                .extract()
                .map_err(|_| PyTypeError::new_err("update() needs (key, value) pairs"))?;
            keys.push(encode_key(py, &k, false)?);
            let cells = self.cells(py, &v)?;
            owned.push(
                cells
                    .into_iter()
                    .map(|c| match c {
                        Cell::Borrowed(v) => v.to_owned(),
                        Cell::Owned(v) => v,
                    })
                    .collect(),
            );
        }
        let items: Vec<(KeyRef<'_>, Vec<Cell<'_>>)> = keys
            .iter()
            .zip(&owned)
            .map(|(k, v)| {
                (
                    KeyRef::Blob(k),
                    v.iter().map(|x| Cell::Borrowed(x.as_ref())).collect(),
                )
            })
            .collect();
        py.detach(|| self.table.set_many(&items)).py()
    }

    /// Deletes `keys` in one round trip; returns how many were there.
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.writable()?;
        let encoded: Vec<Vec<u8>> = keys
            .try_iter()?
            .map(|k| encode_key(py, &k?, false))
            .collect::<PyResult<_>>()?;
        let refs: Vec<KeyRef<'_>> = encoded.iter().map(|k| KeyRef::Blob(k)).collect();
        py.detach(|| self.table.delete_many(&refs)).py()
    }

    /// One page of `(position, key, value)` in insertion order (or reversed).
    fn _page<'py>(
        &self,
        py: Python<'py>,
        after: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> PyResult<Vec<PageRow<'py>>> {
        let rows = py.detach(|| self.table.page(after, reverse, limit)).py()?;
        rows.iter()
            .map(|(pos, row)| Ok((*pos, Self::key_of(py, &row[0])?, self.value(py, &row[1..])?)))
            .collect()
    }

    /// `(key, value)` pairs of a trusted SQL filter and order (see `DiskRead.query`).
    #[pyo3(signature = (where_=None, parameters=None, order=None, limit=None, offset=None))]
    fn _query<'py>(
        &self,
        py: Python<'py>,
        where_: Option<String>,
        parameters: Option<&Bound<'py, PyAny>>,
        order: Option<String>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let owned = |c: Cell<'_>| match c {
            Cell::Borrowed(v) => v.to_owned(),
            Cell::Owned(v) => v,
        };
        let mut positional = Vec::new();
        let mut named = Vec::new();
        if let Some(p) = parameters.filter(|p| !p.is_none()) {
            if let Ok(d) = p.cast::<PyDict>() {
                for (k, v) in d.iter() {
                    named.push((k.extract::<String>()?, owned(convert::cell(&v)?)));
                }
            } else {
                for v in p.try_iter()? {
                    positional.push(owned(convert::cell(&v?)?));
                }
            }
        }
        let rows = py
            .detach(|| {
                self.table.query(
                    where_.as_deref(),
                    &positional,
                    &named,
                    order.as_deref(),
                    limit,
                    offset,
                )
            })
            .py()?;
        rows.iter()
            .map(|row| Ok((Self::key_of(py, &row[0])?, self.value(py, &row[1..])?)))
            .collect()
    }

    /// Deletes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.writable()?;
        py.detach(|| self.table.clear()).py()
    }

    /// `[]` when the table is healthy, else the problems.
    #[pyo3(signature = (vacuum=false))]
    fn check(&self, py: Python<'_>, vacuum: bool) -> PyResult<Vec<String>> {
        let _ = vacuum; // PostgreSQL's autovacuum reclaims space.
        py.detach(|| self.table.check()).py()
    }

    /// Begins a transaction level on this thread.
    fn _begin(&self, py: Python<'_>) -> PyResult<u32> {
        self.writable()?;
        py.detach(|| self.table.begin_write()).py()
    }

    /// Ends this thread's innermost transaction level.
    fn _end(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        py.detach(|| self.table.conn().end(commit)).py()
    }

    /// Closes the idle connections.
    fn close(&self) {
        self.table.conn().close_idle();
    }

    /// The server URL (without its password).
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The table name.
    #[getter]
    fn tablename(&self) -> &str {
        &self.table.spec().name
    }
}

/// A clock that asks a Python callable.
pub(crate) struct PyClock(pub(crate) Py<PyAny>);

impl Clock for PyClock {
    fn now(&self) -> Duration {
        Python::attach(|py| {
            self.0
                .call0(py)
                .and_then(|t| t.extract::<f64>(py))
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
                .unwrap_or_default()
        })
    }
}

/// The server side of a `_Cache` opened on a URL (PostgreSQL or Redis): `_Cache`'s
/// pymethods hand their calls here, after parsing their arguments, so that one Python
/// class (`DiskCache`) serves every backend. What differs from SQLite is the encoding
/// (tagged bytes, integers native) and the engine ([`RemoteCache`]).
pub(crate) struct RemoteCacheCore {
    cache: Box<dyn RemoteCache>,
    url: String,
    default_ttl: Option<f64>,
    options: RemoteCacheOptions,
}

impl RemoteCacheCore {
    fn value(py: Python<'_>, ob: &Bound<'_, PyAny>) -> PyResult<RemoteValue> {
        if ob.is_instance_of::<PyInt>()
            && !ob.is_instance_of::<PyBool>()
            && let Ok(i) = ob.extract::<i64>()
        {
            return Ok(RemoteValue::Int(i));
        }
        Ok(RemoteValue::Bytes(encode_value(py, ob, true)?))
    }

    fn load<'py>(py: Python<'py>, v: &RemoteValue) -> PyResult<Bound<'py, PyAny>> {
        match v {
            RemoteValue::Int(i) => Ok(i.into_pyobject(py)?.into_any()),
            RemoteValue::Bytes(b) => decode(py, b),
        }
    }

    fn tag(py: Python<'_>, tag: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
        tag.filter(|t| !t.is_none())
            .map(|t| encode_key(py, t, true))
            .transpose()
    }

    fn keys(py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
        keys.try_iter()?
            .map(|k| encode_key(py, &k?, true))
            .collect()
    }

    /// Connects to `url` (`postgresql://…` or `redis://…`) with the options `_Cache`
    /// parsed; `default_ttl` as given, for the `default_expiration` getter.
    pub(crate) fn open(
        py: Python<'_>,
        url: &str,
        o: RemoteCacheOptions,
        default_ttl: Option<f64>,
    ) -> PyResult<Self> {
        let unlogged = o.unlogged;
        let url_owned = url.to_owned();
        let opts = o.clone();
        let cache: Box<dyn RemoteCache> = match Backend::of(url) {
            Backend::Postgres => Box::new(py.detach(|| PgCache::open(&url_owned, opts)).py()?),
            Backend::Redis => {
                if unlogged {
                    return Err(crate::errors::to_py_err(diskstore::Error::NotSupported {
                        backend: "redis",
                        operation: "unlogged=True".into(),
                    }));
                }
                Box::new(py.detach(|| RedisCache::open(&url_owned, opts)).py()?)
            }
            Backend::Sqlite => {
                return Err(PyValueError::new_err(format!("not a server URL: {url}")));
            }
        };
        Ok(RemoteCacheCore {
            cache,
            url: diskstore::remote::redact_url(url),
            default_ttl,
            options: o,
        })
    }

    /// The live value of `key`.
    pub(crate) fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let k = encode_key(py, key, true)?;
        match py.detach(|| self.cache.get(&k)).py()? {
            Some(v) => Self::load(py, &v).map(Some),
            None => Ok(None),
        }
    }

    /// True if `key` has a live value.
    pub(crate) fn contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = encode_key(py, key, true)?;
        Ok(py.detach(|| self.cache.get(&k)).py()?.is_some())
    }

    /// Stores `value` (only if `key` has no live value when `only_new`); whether stored.
    pub(crate) fn write(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Ttl,
        tag: Option<&Bound<'_, PyAny>>,
        only_new: bool,
    ) -> PyResult<bool> {
        let (k, v) = (encode_key(py, key, true)?, Self::value(py, value)?);
        let t = Self::tag(py, tag)?;
        py.detach(|| {
            if only_new {
                self.cache.add(&k, &v, ttl, t.as_deref())
            } else {
                self.cache.set(&k, &v, ttl, t.as_deref()).map(|()| true)
            }
        })
        .py()
    }

    /// Deletes `key`; true if it had a live value.
    pub(crate) fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = encode_key(py, key, true)?;
        py.detach(|| self.cache.delete(&k)).py()
    }

    /// Deletes `key` and returns its live value (atomic).
    pub(crate) fn pop<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let k = encode_key(py, key, true)?;
        match py.detach(|| self.cache.pop(&k)).py()? {
            Some(v) => Self::load(py, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Gives a live entry a new time to live; true if it was live.
    pub(crate) fn touch(&self, py: Python<'_>, key: &Bound<'_, PyAny>, ttl: Ttl) -> PyResult<bool> {
        let k = encode_key(py, key, true)?;
        py.detach(|| self.cache.touch(&k, ttl)).py()
    }

    /// Adds `delta` atomically on the server; a missing key starts at `default`
    /// (`KeyError` when None).
    pub(crate) fn incr(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        delta: i64,
        default: Option<i64>,
    ) -> PyResult<i64> {
        let k = encode_key(py, key, true)?;
        match py.detach(|| self.cache.incr(&k, delta, default)).py()? {
            IncrOutcome::Value(v) => Ok(v),
            IncrOutcome::Missing => Err(PyKeyError::new_err(key.clone().unbind())),
            IncrOutcome::NotAnInteger => Err(PyTypeError::new_err(
                "incr: the stored value is not an integer",
            )),
            IncrOutcome::Overflow => Err(PyValueError::new_err("integer overflow in incr")),
        }
    }

    /// The values of `keys` (`default` where missing), in one round trip.
    pub(crate) fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        // Every key in one buffer: no allocation per key.
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        for k in keys.try_iter()? {
            encode_key_into(py, &k?, true, &mut buf)?;
            ends.push(buf.len());
        }
        let refs: Vec<&[u8]> = std::iter::once(0)
            .chain(ends.iter().copied())
            .zip(&ends)
            .map(|(start, &end)| &buf[start..end])
            .collect();
        let found = py.detach(|| self.cache.get_many_found(&refs)).py()?;
        let d = default.unwrap_or_else(|| py.None().into_bound(py));
        let values = found
            .iter()
            .map(|v| match v {
                Some(RemoteValueRef::Int(i)) => Ok(i.into_pyobject(py)?.into_any()),
                Some(RemoteValueRef::Bytes(b)) => decode(py, b),
                None => Ok(d.clone()),
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, values)
    }

    /// Stores a mapping or `(key, value)` pairs in one round trip (default expiration).
    pub(crate) fn set_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let pairs = if let Ok(d) = items.cast::<PyDict>() {
            d.items().into_any()
        } else {
            items.clone()
        };
        let mut enc: Vec<(Vec<u8>, RemoteValue)> = Vec::new();
        for pair in pairs.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?
                .extract()
                .map_err(|_| PyTypeError::new_err("set_many() needs (key, value) pairs"))?;
            enc.push((encode_key(py, &k, true)?, Self::value(py, &v)?));
        }
        let refs: Vec<(&[u8], RemoteValue)> =
            enc.iter().map(|(k, v)| (k.as_slice(), v.clone())).collect();
        py.detach(|| self.cache.set_many(&refs)).py()
    }

    /// Deletes `keys` in one round trip; how many had a live value.
    pub(crate) fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<u64> {
        let encoded = Self::keys(py, keys)?;
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        py.detach(|| self.cache.delete_many(&refs)).py()
    }

    /// Deletes expired entries now (Redis does it itself: 0); how many.
    pub(crate) fn expire(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.cache.expire()).py()
    }

    /// Deletes every entry tagged `tag`; how many.
    pub(crate) fn evict(&self, py: Python<'_>, tag: &Bound<'_, PyAny>) -> PyResult<u64> {
        let t = encode_key(py, tag, true)?;
        py.detach(|| self.cache.evict(&t)).py()
    }

    /// Deletes every entry.
    pub(crate) fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.cache.clear()).py()
    }

    /// The number of live entries.
    pub(crate) fn len(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.cache.len()).py()
    }

    /// Bytes of keys and values stored (PostgreSQL; NotSupportedError on Redis).
    pub(crate) fn volume(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.cache.volume()).py()
    }

    /// `(hits, misses)` of every process using the cache (zeroed for all when `reset`).
    pub(crate) fn stats(&self, py: Python<'_>, reset: bool) -> PyResult<(u64, u64)> {
        py.detach(|| self.cache.stats(reset)).py()
    }

    /// `[]` when healthy, else the problems.
    pub(crate) fn check(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.cache.check()).py()
    }

    /// Closes idle connections.
    pub(crate) fn close(&self) {
        self.cache.close();
    }

    /// Begins a transaction level on this thread.
    pub(crate) fn begin(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.cache.begin()).py()
    }

    /// Ends this thread's innermost transaction level.
    pub(crate) fn end(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        py.detach(|| self.cache.end(commit)).py()
    }

    /// One page of `(position, key)` of live keys in the order stored, after `after`.
    pub(crate) fn keys_page<'py>(
        &self,
        py: Python<'py>,
        after: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> PyResult<Vec<(i64, Bound<'py, PyAny>)>> {
        let rows = py
            .detach(|| self.cache.keys_page(after, reverse, limit))
            .py()?;
        rows.iter()
            .map(|(pos, k)| Ok((*pos, decode(py, k)?)))
            .collect()
    }

    /// `"postgres"` or `"redis"`.
    pub(crate) fn backend(&self) -> &'static str {
        self.cache.backend()
    }

    /// The server URL (without its password).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Seconds entries live unless told otherwise (None: forever).
    pub(crate) fn default_expiration(&self) -> Option<f64> {
        self.default_ttl
    }

    /// The byte limit, the entry-count limit and the eviction policy.
    pub(crate) fn limits(&self) -> (Option<u64>, Option<u64>, &'static str) {
        let o = &self.options;
        (o.size_limit, o.count_limit, o.policy.name())
    }
}

/// Registers the classes.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PgStorePy>()?;
    Ok(())
}
