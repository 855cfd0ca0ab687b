//! The store classes: `_Reader` (every read) and `_Writer` (every write), the Rust bases of
//! the Python `DiskRead` and `DiskStore` classes.
//!
//! The engine is attached once (`_attach`), either at construction or, for the default
//! model of a new file, when the first value is written. Until then every read calls the
//! Python method `_settle(None)`, which attaches as soon as the file decides.
//!
//! Every engine call runs with the GIL released (`py.detach`); user code (`dump_value`,
//! `load_data`) runs before or after it, never while an engine lock is held.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use diskstore::{
    Column, ColumnType, Direction, KeyRef, Query, Row, Table, TableOptions, TableSpec, Value,
};

use crate::convert::{cell, to_py};
use crate::errors::{DiskStoreError, IntoPyResult};
use crate::iter::{Kind, StoreIter, key_iter};
use crate::model::{Dumped, Model, OwnedRow, load_key};

/// An attached store: the engine table and the value model.
pub(crate) struct Opened {
    pub(crate) table: Table,
    pub(crate) model: Model,
    pub(crate) width: usize,
    /// For the default model (neither `value_class` nor `config`): which generation's
    /// table this is, [`GEN_01`] (`"Value"`) or [`GEN_07`] (`"DiskStore"`).
    pub(crate) generation: Option<usize>,
}

/// The default model's 0.1.0 generation: `Value` rows in table `"Value"`.
const GEN_01: usize = 0;
/// The default model's 0.7.0 generation: raw values in table `"DiskStore"`.
const GEN_07: usize = 1;

/// The `diskstore.Value` class, imported once.
fn value_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static VALUE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    VALUE
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("diskstore.value")?.getattr("Value")?.unbind())
        })
        .map(|v| v.bind(py))
}

/// The generation a written value names: a `Value` is 0.1.0 code, anything else 0.7.0.
fn generation_of(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    // Only a tuple can be a `Value` (a NamedTuple): one flag test on the common path.
    if value.is_instance_of::<PyTuple>() && value.is_instance(value_class(value.py())?)? {
        Ok(GEN_01)
    } else {
        Ok(GEN_07)
    }
}

/// How often a lookup starts again when a large value changed between finding and reading it.
const LOOKUP_TRIES: usize = 16;

/// Copies a row (key and values) out of SQLite.
pub(crate) fn owned_row(row: &Row<'_>) -> diskstore::Result<OwnedRow> {
    owned_row_with(row, true)
}

/// Copies a row out of SQLite; without `key` the key is left as NULL (not copied).
pub(crate) fn owned_row_with(row: &Row<'_>, key: bool) -> diskstore::Result<OwnedRow> {
    let mut out = Vec::with_capacity(row.len() + 1);
    out.push(if key {
        row.key()?.to_owned()
    } else {
        Value::Null
    });
    for i in 0..row.len() {
        out.push(row.value(i)?.to_owned());
    }
    Ok(out)
}

/// A Python value as an owned engine value (for query parameters).
pub(crate) fn owned_value(ob: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(match cell(ob)? {
        diskstore::Cell::Borrowed(v) => v.to_owned(),
        diskstore::Cell::Owned(v) => v,
    })
}

/// True if `k` is an integer that a REAL key column would round (beyond 2**53 and not
/// a double): such a key could never be found again, so it is refused.
fn inexact_real_key(o: &Opened, k: &KeyRef<'_>) -> bool {
    if o.table.spec().key_type != ColumnType::Real {
        return false;
    }
    match *k {
        KeyRef::Int(i) => (i as f64) as i128 != i128::from(i),
        _ => false,
    }
}

/// The engine key for a read of `key`, or `None` when the key can address no row of this
/// table: `None` (SQL NULL never equals a key) or an integer a REAL key column would
/// round. Keys of a type that cannot be stored at all are errors.
fn read_key<'a>(o: &Opened, key: &'a Bound<'_, PyAny>) -> PyResult<Option<KeyRef<'a>>> {
    if key.is_none() {
        return Ok(None);
    }
    let k = crate::convert::key_ref(key)?;
    Ok(if inexact_real_key(o, &k) {
        None
    } else {
        Some(k)
    })
}

/// Refuses a key for a write that the table would store as another key.
fn check_write_key(o: &Opened, k: &KeyRef<'_>) -> PyResult<()> {
    if let (true, KeyRef::Int(i)) = (inexact_real_key(o, k), k) {
        return Err(PyValueError::new_err(format!(
            "the key {i} is not exactly representable as a float, and the key column of \
             table {:?} is REAL: it would be stored rounded",
            o.table.spec().name
        )));
    }
    Ok(())
}

/// True if a key column of type `t` stores `k` unchanged (no affinity conversion).
fn stored_as_given(t: ColumnType, k: &KeyRef<'_>) -> bool {
    matches!(
        (t, k),
        (ColumnType::Blob, _)
            | (ColumnType::Integer, KeyRef::Int(_))
            | (ColumnType::Real, KeyRef::Float(_))
            | (ColumnType::Text, KeyRef::Text(_))
            | (_, KeyRef::Blob(_))
    )
}

/// The savepoint a nested `pop` rolls back to when its value cannot be decoded.
const POP_SAVEPOINT: &str = "diskstore_pop";

/// Runs `remove` (a delete returning the row) and `decode` on its row so that a value that
/// fails to decode is not lost: the delete is rolled back and the error raised. Raw values
/// always decode, so they keep the single autocommitted statement; other models run both
/// inside this thread's transaction (a savepoint when one is open already).
fn remove_decoded<'py, T>(
    py: Python<'py>,
    o: &Opened,
    remove: impl FnOnce() -> diskstore::Result<Option<OwnedRow>> + Send,
    decode: impl FnOnce(&OwnedRow) -> PyResult<T>,
) -> PyResult<Option<T>> {
    if let Model::Raw = o.model {
        return py.detach(remove).py()?.map(|r| decode(&r)).transpose();
    }
    let savepoint = |sql: String| {
        move || {
            o.table
                .with_connection(|c| c.execute_batch(&sql).map_err(diskstore::Error::from))
        }
    };
    let opened = py.detach(|| o.table.begin()).py()?;
    if !opened
        && let Err(e) = py
            .detach(savepoint(format!("SAVEPOINT {POP_SAVEPOINT}")))
            .py()
    {
        let _ = py.detach(|| o.table.end(false, false)); // count the joined level down
        return Err(e);
    }
    let out = match py.detach(remove).py() {
        Ok(Some(row)) => decode(&row).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let decoded = out.is_ok();
    let released = if opened {
        Ok(())
    } else if decoded {
        py.detach(savepoint(format!("RELEASE {POP_SAVEPOINT}")))
            .py()
    } else {
        py.detach(savepoint(format!(
            "ROLLBACK TO {POP_SAVEPOINT}; RELEASE {POP_SAVEPOINT}"
        )))
        .py()
    };
    // The opener commits or rolls back; a joined level only counts down.
    let ended = py.detach(|| o.table.end(opened, decoded)).py();
    // The first error wins: a failed decode is what the caller needs to see.
    let value = out?;
    released?;
    ended?;
    Ok(value)
}

/// The error for a `None` key where the table cannot assign one (only INTEGER keys can).
fn null_key_error(o: &Opened) -> PyErr {
    crate::errors::IntegrityError::new_err(format!(
        "NOT NULL constraint failed: {}._key (only an INTEGER key column assigns a key for None)",
        o.table.spec().name
    ))
}

/// The read side of a store (base class of `DiskRead`).
#[pyclass(frozen, subclass, module = "diskstore._diskstore", name = "_Reader")]
pub struct Reader {
    /// The attached tables: slot 0 for a store with a named model; for the default model
    /// one slot per generation ([`GEN_01`], [`GEN_07`]), attached when first used.
    slots: [OnceLock<Opened>; 2],
    /// The slot in use (a default-model store switches when a write names the other
    /// generation).
    active: AtomicUsize,
}

impl Reader {
    /// The table in use, if attached.
    fn state(&self) -> Option<&Opened> {
        self.slots[self.active.load(Ordering::Acquire)].get()
    }

    /// The attached store, asking the Python side to settle it first if needed; `None`
    /// while a new file has no table yet.
    pub(crate) fn opened<'a>(slf: &'a Bound<'_, Self>) -> PyResult<Option<&'a Opened>> {
        let me = slf.get();
        if let Some(o) = me.state() {
            return Ok(Some(o));
        }
        let py = slf.py();
        slf.call_method1(intern!(py, "_settle"), (py.None(),))?;
        Ok(me.state())
    }

    /// The attached store for a write of `value`, settling the default model with it.
    /// A default-model store given a value of the other generation (a `Value` in a 0.7.0
    /// store, anything else in a 0.1.0 one) switches to that generation's table, as the
    /// original of that generation would write there.
    pub(crate) fn opened_for<'a>(
        slf: &'a Bound<'_, Self>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<&'a Opened> {
        let me = slf.get();
        if let Some(o) = me.state() {
            match o.generation {
                Some(g) if !value.is_none() && !value.is(slf.py().Ellipsis().bind(slf.py())) => {
                    let want = generation_of(value)?;
                    if want == g {
                        return Ok(o);
                    }
                    return Self::switch(slf, o, want);
                }
                _ => return Ok(o),
            }
        }
        slf.call_method1(intern!(slf.py(), "_settle"), (value,))?;
        me.state().ok_or_else(|| {
            if value.is_none() {
                // Neither model can store None: the 0.7.0 column is NOT NULL, and a
                // 0.1.0 store takes only `Value`s.
                crate::errors::IntegrityError::new_err(
                    "None cannot be stored as a value (NOT NULL constraint)",
                )
            } else {
                DiskStoreError::new_err("the store could not be opened")
            }
        })
    }

    /// Switches a default-model store to generation `want`'s table (attaching it through
    /// the Python side's `_switch`). Refused inside a transaction of the current table.
    fn switch<'a>(slf: &'a Bound<'_, Self>, current: &Opened, want: usize) -> PyResult<&'a Opened> {
        if current.table.depth() > 0 {
            return Err(PyValueError::new_err(format!(
                "this store holds {} values (table {:?}); a value of the other generation \
                 cannot be written inside its transact() block",
                if want == GEN_01 { "raw" } else { "Value" },
                current.table.spec().name
            )));
        }
        slf.call_method1(intern!(slf.py(), "_switch"), (want,))?;
        let me = slf.get();
        me.state()
            .filter(|o| o.generation == Some(want))
            .ok_or_else(|| DiskStoreError::new_err("the store could not switch tables"))
    }

    /// The value stored under `key`, loaded through the model; `None` if absent.
    fn lookup<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        let Some(o) = Self::opened(slf)? else {
            if !key.is_none() {
                crate::convert::key_ref(key)?;
            }
            return Ok(None);
        };
        let Some(k) = read_key(o, key)? else {
            return Ok(None);
        };
        // A large value in the last column is not copied out of SQLite with the row but
        // read straight into the Python object (crate::large).
        for _ in 0..LOOKUP_TRIES {
            if let Model::Raw = o.model {
                // One value column and no key wanted: copy just that cell out of SQLite.
                let found = py
                    .detach(|| o.table.get_located(k, |r| Ok(r.value(0)?.to_owned())))
                    .py()?;
                let Some(found) = found else {
                    return Ok(None);
                };
                match found.large {
                    None => return Ok(Some(to_py(py, &found.row))),
                    Some(at) => match crate::large::read(py, &o.table, k, &at)? {
                        Some(v) => return Ok(Some(v)),
                        None => continue,
                    },
                }
            }
            let with_key = o.model.needs_key();
            let found = py
                .detach(|| o.table.get_located(k, |r| owned_row_with(r, with_key)))
                .py()?;
            let Some(found) = found else {
                return Ok(None);
            };
            let last = match found.large {
                None => None,
                Some(at) => match crate::large::read(py, &o.table, k, &at)? {
                    Some(v) => Some(v),
                    None => continue,
                },
            };
            return o.model.load_with_last(py, &found.row, last).map(Some);
        }
        Err(DiskStoreError::new_err(
            "a large value kept changing while it was read; try again",
        ))
    }
}

/// The key and value of one item of an `update()` sequence, with Python's unpacking errors.
fn unpack_pair<'py>(pair: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if let Ok(t) = pair.cast_exact::<PyTuple>()
        && t.len() == 2
    {
        return Ok((t.get_item(0)?, t.get_item(1)?));
    }
    let Ok(items) = pair.try_iter() else {
        return Err(PyTypeError::new_err(format!(
            "cannot unpack non-iterable {} object",
            pair.get_type().name()?
        )));
    };
    let mut got = Vec::with_capacity(2);
    for item in items {
        got.push(item?);
        if got.len() > 2 {
            return Err(PyValueError::new_err(
                "too many values to unpack (expected 2)",
            ));
        }
    }
    match <[_; 2]>::try_from(got) {
        Ok([k, v]) => Ok((k, v)),
        Err(got) => Err(PyValueError::new_err(format!(
            "not enough values to unpack (expected 2, got {})",
            got.len()
        ))),
    }
}

fn spec_column(
    (name, sql_type, default): (String, String, Bound<'_, PyAny>),
    no_default: &Bound<'_, PyAny>,
) -> PyResult<Column> {
    let t = ColumnType::from_declared(&sql_type);
    Ok(if default.is(no_default) {
        Column::new(name, t, false, None)
    } else if default.is_none() {
        Column::new(name, t, true, Some(Value::Null))
    } else {
        let v = match cell(&default)? {
            diskstore::Cell::Borrowed(v) => v.to_owned(),
            diskstore::Cell::Owned(v) => v,
        };
        Column::new(name, t, false, Some(v))
    })
}

#[pymethods]
impl Reader {
    /// Creates an unattached store; the Python `__init__` attaches it.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        Reader {
            slots: [OnceLock::new(), OnceLock::new()],
            active: AtomicUsize::new(0),
        }
    }

    /// Opens the engine for this store (called once by the Python side).
    #[pyo3(signature = (path, read_only, table, key_type, timeout, pragmas, fields, auto_migrate, kind, model, no_default, generation=None))]
    #[allow(clippy::too_many_arguments)]
    fn _attach(
        &self,
        py: Python<'_>,
        path: PathBuf,
        read_only: bool,
        table: String,
        key_type: &str,
        timeout: f64,
        pragmas: Vec<(String, String)>,
        fields: Vec<(String, String, Bound<'_, PyAny>)>,
        auto_migrate: bool,
        kind: &str,
        model: Py<PyAny>,
        no_default: Bound<'_, PyAny>,
        generation: Option<usize>,
    ) -> PyResult<()> {
        let slot = generation.unwrap_or(0);
        if slot >= self.slots.len() {
            return Err(PyValueError::new_err("unknown generation"));
        }
        if self.slots[slot].get().is_some() {
            // Attached before (or by another thread meanwhile): make it the one in use.
            self.active.store(slot, Ordering::Release);
            return Ok(());
        }
        let columns = fields
            .into_iter()
            .map(|f| spec_column(f, &no_default))
            .collect::<PyResult<Vec<_>>>()?;
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| PyValueError::new_err("timeout must be a finite number of seconds"))?;
        let width = columns.len();
        let options = TableOptions {
            path,
            spec: TableSpec {
                name: table,
                key_type: ColumnType::from_declared(key_type),
                columns,
            },
            read_only,
            timeout,
            pragmas,
            auto_migrate,
        };
        let model = Model::from_kind(kind, model)?;
        let table = py.detach(|| Table::open(options)).py()?;
        // A concurrent attach may have won; either result is equivalent.
        let _ = self.slots[slot].set(Opened {
            table,
            model,
            width,
            generation,
        });
        self.active.store(slot, Ordering::Release);
        Ok(())
    }

    /// True once the engine is attached.
    fn _is_attached(&self) -> bool {
        self.state().is_some()
    }

    /// The table name of the attached store, or None.
    fn _attached_table(&self) -> Option<String> {
        self.state().map(|o| o.table.spec().name.clone())
    }

    /// The value of `key`; `KeyError` if it is absent.
    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::lookup(slf, key)?.ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match Self::lookup(slf, key)? {
            Some(v) => Ok(v),
            None => Ok(default.unwrap_or_else(|| slf.py().None().into_bound(slf.py()))),
        }
    }

    /// True if `key` is stored. A key that cannot be stored (another type, an int beyond
    /// 64 bits, NaN, a string with a lone surrogate, None) is never contained.
    fn __contains__(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Some(o) = Self::opened(slf)? else {
            return Ok(false);
        };
        let py = slf.py();
        let k = match read_key(o, key) {
            Ok(Some(k)) => k,
            Ok(None) => return Ok(false),
            Err(e)
                if e.is_instance_of::<PyTypeError>(py)
                    || e.is_instance_of::<PyValueError>(py)
                    || e.is_instance_of::<pyo3::exceptions::PyOverflowError>(py) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        slf.py().detach(|| o.table.contains(k)).py()
    }

    /// The number of entries.
    fn __len__(slf: &Bound<'_, Self>) -> PyResult<usize> {
        let Some(o) = Self::opened(slf)? else {
            return Ok(0);
        };
        let n = slf.py().detach(|| o.table.len()).py()?;
        usize::try_from(n).map_err(|_| PyValueError::new_err("too many entries"))
    }

    /// Keys in insertion order.
    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        key_iter(slf, false)
    }

    /// Keys, newest first.
    fn __reversed__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        key_iter(slf, true)
    }

    /// An iterator of `"keys"`, `"values"` or `"items"`, optionally newest first.
    #[pyo3(signature = (kind, reverse=false))]
    fn _iter<'py>(
        slf: &Bound<'py, Self>,
        kind: &str,
        reverse: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = match kind {
            "keys" => return key_iter(slf, reverse),
            "values" => Kind::Values,
            "items" => Kind::Items,
            other => return Err(PyValueError::new_err(format!("unknown kind {other:?}"))),
        };
        Ok(Bound::new(
            slf.py(),
            StoreIter::new(slf.clone().unbind(), kind, reverse),
        )?
        .into_any())
    }

    /// Runs `SELECT` with trusted `where`/`order` fragments; returns a list of `(key, value)`.
    #[pyo3(signature = (r#where=None, parameters=None, order=None, limit=None, offset=None))]
    fn _query<'py>(
        slf: &Bound<'py, Self>,
        r#where: Option<String>,
        parameters: Option<Bound<'py, PyAny>>,
        order: Option<String>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let Some(o) = Self::opened(slf)? else {
            return Ok(PyList::empty(py));
        };
        let mut params = Vec::new();
        let mut named = Vec::new();
        if let Some(p) = parameters.as_ref().filter(|p| !p.is_none()) {
            if p.is_instance_of::<pyo3::types::PyString>()
                || p.is_instance_of::<pyo3::types::PyBytes>()
            {
                // A string is a sequence of characters, never what was meant.
                return Err(PyTypeError::new_err(
                    "parameters must be a sequence or a dict, not a string",
                ));
            }
            if let Ok(d) = p.cast::<pyo3::types::PyDict>() {
                for (k, v) in d.iter() {
                    named.push((k.extract::<String>()?, owned_value(&v)?));
                }
            } else {
                for item in p.try_iter()? {
                    params.push(owned_value(&item?)?);
                }
            }
        }
        let q = Query {
            filter: r#where,
            params,
            named,
            order,
            limit,
            offset,
        };
        let rows = py
            .detach(|| {
                let mut rows = Vec::new();
                o.table.query(&q, |r| {
                    rows.push(owned_row(r)?);
                    Ok(())
                })?;
                Ok(rows)
            })
            .py()?;
        let out = PyList::empty(py);
        for row in &rows {
            out.append((load_key(py, row), o.model.load(py, row)?))?;
        }
        Ok(out)
    }

    /// Closes this thread's connection (it reopens on next use). Runs without the GIL:
    /// closing may wait for the connection's lock.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        for o in self.slots.iter().filter_map(OnceLock::get) {
            py.detach(|| o.table.close()).py()?;
        }
        Ok(())
    }

    /// Makes every thread reopen its connection; returns how many were opened since the
    /// last call. Runs without the GIL, as `close`.
    fn close_all(&self, py: Python<'_>) -> PyResult<u64> {
        let mut closed = 0;
        for o in self.slots.iter().filter_map(OnceLock::get) {
            closed += py.detach(|| o.table.close_all()).py()?;
        }
        Ok(closed)
    }

    /// Opens this thread's connection now (it normally opens on first use).
    fn _connect(slf: &Bound<'_, Self>) -> PyResult<()> {
        if let Some(o) = Self::opened(slf)? {
            slf.py()
                .detach(|| o.table.with_connection(|_| Ok(())))
                .py()?;
        }
        Ok(())
    }

    /// SQLite's `integrity_check` messages (`[]` when healthy).
    fn _integrity(slf: &Bound<'_, Self>) -> PyResult<Vec<String>> {
        match Self::opened(slf)? {
            Some(o) => slf.py().detach(|| o.table.check()).py(),
            None => Ok(Vec::new()),
        }
    }
}

/// The write side of a store (base class of `DiskStore`).
#[pyclass(frozen, subclass, extends = Reader, module = "diskstore._diskstore", name = "_Writer")]
pub struct Writer;

fn reader<'a, 'py>(slf: &'a Bound<'py, Writer>) -> &'a Bound<'py, Reader> {
    slf.as_super()
}

impl Writer {
    fn set_dumped(py: Python<'_>, o: &Opened, d: &Dumped<'_>) -> PyResult<()> {
        if d.key_is_none() {
            // SQLite's rule for NULL in an INTEGER PRIMARY KEY: the next rowid.
            Self::insert_auto(py, o, d)?;
            return Ok(());
        }
        d.with_cells(|k, cells| {
            check_write_key(o, &k)?;
            py.detach(|| o.table.set(k, cells)).py()
        })
    }

    /// Inserts under the next integer key; an IntegrityError on other key types.
    fn insert_auto(py: Python<'_>, o: &Opened, d: &Dumped<'_>) -> PyResult<i64> {
        if o.table.spec().key_type != ColumnType::Integer {
            return Err(null_key_error(o));
        }
        let cells = d.cells()?;
        py.detach(|| o.table.insert_auto(&cells)).py()
    }
}

#[pymethods]
impl Writer {
    /// Creates an unattached store; the Python `__init__` attaches it.
    #[new]
    #[pyo3(signature = (*args, **kwargs))]
    fn new(
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyAny>>,
    ) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Reader::new(args, kwargs)).add_subclass(Writer)
    }

    /// Stores `value` under `key` (an existing key keeps its position).
    fn __setitem__(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let o = Reader::opened_for(reader(slf), value)?;
        let d = o.model.dump(key, value, o.width)?;
        Self::set_dumped(slf.py(), o, &d)
    }

    /// Deletes `key`; `KeyError` if it is absent.
    fn __delitem__(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        if !key.is_none() {
            crate::convert::key_ref(key)?;
        }
        let deleted = match Reader::opened(reader(slf))? {
            Some(o) => match read_key(o, key)? {
                Some(k) => py.detach(|| o.table.delete(k)).py()?,
                None => false,
            },
            None => false,
        };
        if deleted {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// Inserts `value` under `key` only if the key is absent; returns the key, or None
    /// when it already existed. `key=None` assigns the next integer key (integer-keyed
    /// tables only).
    fn add<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let o = Reader::opened_for(reader(slf), value)?;
        // A config's dump_value may derive the key from the value (even for add(None, v)).
        let d = o.model.dump(key, value, o.width)?;
        if d.key_is_none() {
            let k = Self::insert_auto(py, o, &d)?;
            return Ok(k.into_pyobject(py)?.into_any());
        }
        let stored = d.with_cells(|k, cells| {
            check_write_key(o, &k)?;
            py.detach(|| {
                if !o.table.insert_new(k, cells)? {
                    return Ok(None);
                }
                // The key as the column stored it (SQLite's affinity: "5" in an INTEGER
                // column is 5), as the original's `RETURNING _key` gives it.
                if stored_as_given(o.table.spec().key_type, &k) {
                    return Ok(Some(None));
                }
                Ok(o.table.get(k, |r| Ok(r.key()?.to_owned()))?.map(Some))
            })
            .py()
        })?;
        Ok(match stored {
            None => py.None().into_bound(py),
            Some(None) => d.key_object().clone(),
            Some(Some(k)) => to_py(py, &k),
        })
    }

    /// Removes `key` and returns its value; without a default a missing key is a `KeyError`.
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if default.len() > 1 {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        let default = default.get_item(0).ok();
        if !key.is_none() {
            crate::convert::key_ref(key)?;
        }
        let value = match Reader::opened(reader(slf))? {
            Some(o) => match read_key(o, key)? {
                Some(k) => remove_decoded(
                    py,
                    o,
                    || o.table.remove(k, owned_row),
                    |row| o.model.load(py, row),
                )?,
                None => None,
            },
            None => None,
        };
        match value {
            Some(v) => Ok(v),
            None => default.ok_or_else(|| PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes and returns the newest `(key, value)`; `KeyError` when empty.
    fn popitem<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        if let Some(o) = Reader::opened(reader(slf))?
            && let Some(item) = remove_decoded(
                py,
                o,
                || o.table.pop(Direction::Reverse, owned_row),
                |row| PyTuple::new(py, [load_key(py, row), o.model.load(py, row)?]),
            )?
        {
            return Ok(item);
        }
        Err(PyKeyError::new_err(()))
    }

    /// The value of `key`; if absent and `default` is not None, stores and returns
    /// `default` (atomically).
    #[pyo3(signature = (key, default=None))]
    fn setdefault<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let Some(default) = default.filter(|d| !d.is_none()) else {
            return Reader::get(reader(slf), key, None);
        };
        let o = Reader::opened_for(reader(slf), &default)?;
        let d = o.model.dump(key, &default, o.width)?;
        if d.key_is_none() {
            // No key can equal None: the default is added under a new key (INTEGER keys).
            Self::insert_auto(py, o, &d)?;
            return Ok(default);
        }
        let (row, inserted) = d.with_cells(|k, cells| {
            check_write_key(o, &k)?;
            py.detach(|| {
                o.table
                    .get_or_insert(k, cells, |r, inserted| Ok((owned_row(r)?, inserted)))
            })
            .py()
        })?;
        if inserted {
            Ok(default)
        } else {
            o.model.load(py, &row)
        }
    }

    /// Stores every pair of a list in one transaction: each item is a `(key, value)`
    /// tuple or any other iterable of two items (as `dict.update` takes them).
    fn _set_many(slf: &Bound<'_, Self>, pairs: &Bound<'_, PyList>) -> PyResult<()> {
        let py = slf.py();
        if pairs.is_empty() {
            return Ok(());
        }
        let unpacked = pairs
            .iter()
            .map(|p| unpack_pair(&p))
            .collect::<PyResult<Vec<_>>>()?;
        let o = Reader::opened_for(reader(slf), &unpacked[0].1)?;
        let mut dumped = Vec::with_capacity(unpacked.len());
        for (k, v) in &unpacked {
            dumped.push(o.model.dump_for_update(k, v, o.width)?);
        }
        // A None key takes the next rowid (INTEGER keys only), as in __setitem__. Every
        // row's cells go into one vector; a row is its key and its range there.
        let mut cells: Vec<diskstore::Cell<'_>> = Vec::with_capacity(dumped.len() * o.width);
        let mut rows: Vec<(Option<KeyRef<'_>>, usize)> = Vec::with_capacity(dumped.len());
        for d in &dumped {
            let key = if d.key_is_none() {
                if o.table.spec().key_type != ColumnType::Integer {
                    return Err(null_key_error(o));
                }
                None
            } else {
                let k = d.key()?;
                check_write_key(o, &k)?;
                Some(k)
            };
            d.push_cells(&mut cells)?;
            rows.push((key, cells.len()));
        }
        // One level on one connection for the whole batch (no per-row lock or lookup).
        py.detach(|| {
            let mut start = 0;
            o.table
                .set_many(rows.iter().map(|&(k, end)| {
                    let row = &cells[start..end];
                    start = end;
                    (k, row)
                }))
                .map(|_| ())
        })
        .py()
    }

    /// Deletes every entry; `vacuum` then gives the space back to the file system.
    #[pyo3(signature = (vacuum=true))]
    fn _clear(slf: &Bound<'_, Self>, vacuum: bool) -> PyResult<()> {
        let py = slf.py();
        if let Some(o) = Reader::opened(reader(slf))? {
            py.detach(|| {
                o.table.clear()?;
                if vacuum && o.table.depth() == 0 {
                    o.table.vacuum()?;
                }
                Ok(())
            })
            .py()?;
        }
        Ok(())
    }

    /// Rebuilds the file (`VACUUM`).
    fn _vacuum(slf: &Bound<'_, Self>) -> PyResult<()> {
        match Reader::opened(reader(slf))? {
            Some(o) => slf.py().detach(|| o.table.vacuum()).py(),
            None => Ok(()),
        }
    }

    /// Opens a write transaction on this thread, or joins the open one; returns whether
    /// this call opened it (pass it to `_end`).
    fn _begin(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let py = slf.py();
        let o = Reader::opened_for(reader(slf), &py.None().into_bound(py))?;
        py.detach(|| o.table.begin()).py()
    }

    /// Ends a level opened by `_begin`: commit or roll back.
    fn _end(slf: &Bound<'_, Self>, opened: bool, commit: bool) -> PyResult<()> {
        let py = slf.py();
        let o = slf
            .as_super()
            .get()
            .state()
            .ok_or_else(|| DiskStoreError::new_err("no transaction is open"))?;
        py.detach(|| o.table.end(opened, commit)).py()
    }
}

/// Converts a Python value to its stored form and back, for tests of the conversions.
#[pyfunction]
pub(crate) fn _roundtrip<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let v = match cell(value)? {
        diskstore::Cell::Borrowed(v) => v.to_owned(),
        diskstore::Cell::Owned(v) => v,
    };
    Ok(to_py(value.py(), &v))
}

/// The context manager `DiskStore.transact()` returns: `BEGIN IMMEDIATE` on enter (or
/// joining this thread's open transaction), commit on a clean exit, rollback on an
/// exception. Written in Rust so that no signal (`KeyboardInterrupt`) can arrive between
/// beginning the transaction and arming its exit.
#[pyclass(module = "diskstore._diskstore", name = "_Transaction")]
pub struct Transaction {
    store: Py<Writer>,
    opened: Option<bool>,
    retry: bool,
}

/// How long `transact(retry=True)` keeps retrying a busy `BEGIN` (0.1.0's `TIMEOUT`).
const RETRY_FOR: Duration = Duration::from_secs(60);

/// `_begin`, retried while the file is busy until [`RETRY_FOR`] has passed (0.1.0's
/// `transact(retry=True)`); the pauses release the GIL.
fn begin_retrying(store: &Bound<'_, Writer>) -> PyResult<bool> {
    let py = store.py();
    let until = std::time::Instant::now() + RETRY_FOR;
    loop {
        match Writer::_begin(store) {
            Err(e)
                if e.is_instance_of::<crate::errors::BusyError>(py)
                    && std::time::Instant::now() < until =>
            {
                py.detach(|| std::thread::sleep(Duration::from_millis(1)));
                py.check_signals()?;
            }
            other => return other,
        }
    }
}

#[pymethods]
impl Transaction {
    /// A transaction on `store` (begun by `__enter__`); `retry` keeps retrying a busy
    /// `BEGIN` for 60 s after the store's own timeout.
    #[new]
    #[pyo3(signature = (store, retry=false))]
    fn new(store: Py<Writer>, retry: bool) -> Self {
        Transaction {
            store,
            opened: None,
            retry,
        }
    }

    /// Begins the transaction; returns a cursor on this thread's connection.
    fn __enter__(mut slf: PyRefMut<'_, Self>, py: Python<'_>) -> PyResult<crate::cursor::Cursor> {
        if slf.opened.is_some() {
            return Err(DiskStoreError::new_err("this transaction is already open"));
        }
        let store = slf.store.clone_ref(py);
        let bound = store.bind(py);
        slf.opened = Some(if slf.retry {
            begin_retrying(bound)?
        } else {
            Writer::_begin(bound)?
        });
        Ok(crate::cursor::Cursor::new(
            bound.as_super().clone().unbind(),
        ))
    }

    /// Commits (no exception) or rolls back; never swallows the exception.
    fn __exit__(
        mut slf: PyRefMut<'_, Self>,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc_value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        if let Some(opened) = slf.opened.take() {
            let store = slf.store.clone_ref(py);
            drop(slf);
            Writer::_end(store.bind(py), opened, exc_type.is_none())?;
        }
        Ok(false)
    }
}
