//! How Python values map onto table columns: the value models of both generations of the
//! original API (raw scalars, NamedTuples, any `ConfigProtocol` object).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use diskstore::{Cell, KeyRef, Value};

use crate::convert::{cell, key_ref, to_py};

/// A row copied out of SQLite: the key first, then the value columns.
pub(crate) type OwnedRow = Vec<Value>;

/// The value model of an open store.
pub(crate) enum Model {
    /// One column holding the Python value itself (`BaseConfig` and the 0.7.0 default).
    Raw,
    /// A NamedTuple class, one column per field. `strict` refuses values of another class
    /// with `ValueError` (the 0.1.0 `value_class` rule).
    Tuple {
        /// The class.
        cls: Py<PyAny>,
        /// Refuse other classes.
        strict: bool,
    },
    /// Any object with `dump_value(key, value)` and `load_data(row)`.
    Config(Py<PyAny>),
}

/// The Python objects a key and value were dumped into; the cells borrow from them.
pub(crate) struct Dumped<'py> {
    key: Bound<'py, PyAny>,
    items: Items<'py>,
}

enum Items<'py> {
    One(Bound<'py, PyAny>),
    Many(Vec<Bound<'py, PyAny>>),
}

impl<'py> Dumped<'py> {
    /// The engine key.
    pub(crate) fn key(&self) -> PyResult<KeyRef<'_>> {
        key_ref(&self.key)
    }

    /// The key object (after `dump_value`, which may derive it).
    pub(crate) fn key_object(&self) -> &Bound<'py, PyAny> {
        &self.key
    }

    /// True if the key is `None` (the key column assigns it: next rowid on INTEGER keys).
    pub(crate) fn key_is_none(&self) -> bool {
        self.key.is_none()
    }

    /// Runs `f` with the engine key and the cells of the value.
    pub(crate) fn with_cells<R>(
        &self,
        f: impl FnOnce(KeyRef<'_>, &[Cell<'_>]) -> PyResult<R>,
    ) -> PyResult<R> {
        let key = key_ref(&self.key)?;
        match &self.items {
            Items::One(v) => f(key, &[cell(v)?]),
            Items::Many(vs) => {
                let cells = vs.iter().map(cell).collect::<PyResult<Vec<_>>>()?;
                f(key, &cells)
            }
        }
    }

    /// Appends the cells of the value to `out` (a batch keeps every row's cells in one
    /// vector: no allocation per row).
    pub(crate) fn push_cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) -> PyResult<()> {
        match &self.items {
            Items::One(v) => out.push(cell(v)?),
            Items::Many(vs) => {
                for v in vs {
                    out.push(cell(v)?);
                }
            }
        }
        Ok(())
    }

    /// The cells of the value, borrowing from this object.
    pub(crate) fn cells(&self) -> PyResult<Vec<Cell<'_>>> {
        match &self.items {
            Items::One(v) => Ok(vec![cell(v)?]),
            Items::Many(vs) => vs.iter().map(cell).collect(),
        }
    }
}

fn sequence_items<'py>(seq: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(t) = seq.cast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    if let Ok(l) = seq.cast::<PyList>() {
        return Ok(l.iter().collect());
    }
    seq.try_iter()?.collect()
}

impl Model {
    /// Turns a key and a value into the objects to store, calling user code
    /// (`dump_value`) before any engine call. `width` is the number of value columns.
    pub(crate) fn dump<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        width: usize,
    ) -> PyResult<Dumped<'py>> {
        self.dump_with(key, value, width, false)
    }

    /// As [`Model::dump`], for `update()`: a strict (0.1.0) model also takes a plain
    /// `tuple` of the right length there, as 0.1.0's `update` did (it did not type-check).
    pub(crate) fn dump_for_update<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        width: usize,
    ) -> PyResult<Dumped<'py>> {
        self.dump_with(key, value, width, true)
    }

    fn dump_with<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        width: usize,
        plain_tuple_ok: bool,
    ) -> PyResult<Dumped<'py>> {
        let py = key.py();
        let items = match self {
            Model::Raw => Items::One(value.clone()),
            Model::Tuple { cls, strict } => {
                let cls = cls.bind(py);
                let plain = plain_tuple_ok && value.is_exact_instance_of::<PyTuple>();
                if *strict && !plain && !value.is_instance(cls)? {
                    return Err(PyValueError::new_err(format!(
                        "value must be an instance of {}, not {}",
                        cls.getattr(intern!(py, "__name__"))?,
                        value.get_type().name()?
                    )));
                }
                // Duck-typed like the original: anything that iterates over its field
                // values (a NamedTuple, a dataclass with `__iter__`, ...).
                let items = sequence_items(value).map_err(|e| {
                    if e.is_instance_of::<PyTypeError>(py) {
                        PyTypeError::new_err(format!(
                            "value must be a tuple (or an iterable) of {width} fields, not {}",
                            value
                                .get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ))
                    } else {
                        e
                    }
                })?;
                if items.len() != width {
                    return Err(PyValueError::new_err(format!(
                        "value has {} fields, the table has {width} value columns",
                        items.len()
                    )));
                }
                Items::Many(items)
            }
            Model::Config(cfg) => {
                let seq = cfg
                    .bind(py)
                    .call_method1(intern!(py, "dump_value"), (key, value))?;
                let mut items = sequence_items(&seq)?;
                if items.len() != width + 1 {
                    return Err(PyValueError::new_err(format!(
                        "dump_value returned {} items; expected the key and {width} values",
                        items.len()
                    )));
                }
                let key = items.remove(0);
                return Ok(Dumped {
                    key,
                    items: Items::Many(items),
                });
            }
        };
        Ok(Dumped {
            key: key.clone(),
            items,
        })
    }

    /// Builds the Python value from a row (key first), calling user code (`load_data`,
    /// the NamedTuple's `_make`) only after the engine call has finished.
    pub(crate) fn load<'py>(&self, py: Python<'py>, row: &[Value]) -> PyResult<Bound<'py, PyAny>> {
        self.load_with_last(py, row, None)
    }

    /// As [`Model::load`], with `last` (when given) as the Python object of the last
    /// column, read separately (a large value; `row` has NULL there).
    pub(crate) fn load_with_last<'py>(
        &self,
        py: Python<'py>,
        row: &[Value],
        last: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = row.len();
        let mut last = last;
        let mut cell = |i: usize, v: &Value| match (i + 1 == n, last.take()) {
            (true, Some(ob)) => ob,
            (_, other) => {
                last = other;
                to_py(py, v)
            }
        };
        match self {
            Model::Raw => Ok(cell(1, &row[1])),
            Model::Tuple { cls, .. } => {
                let fields =
                    PyTuple::new(py, row.iter().enumerate().skip(1).map(|(i, v)| cell(i, v)))?;
                let cls = cls.bind(py);
                match cls.getattr(intern!(py, "_make")) {
                    Ok(make) => make.call1((fields,)),
                    Err(_) => cls.call1(fields),
                }
            }
            Model::Config(cfg) => {
                let data = PyTuple::new(py, row.iter().enumerate().map(|(i, v)| cell(i, v)))?;
                cfg.bind(py).call_method1(intern!(py, "load_data"), (data,))
            }
        }
    }

    /// True if `load` reads the key (only `load_data` of a config sees it).
    pub(crate) fn needs_key(&self) -> bool {
        matches!(self, Model::Config(_))
    }

    /// The model named by the Python side: `"raw"`, `"tuple"`, `"strict-tuple"` or `"config"`.
    pub(crate) fn from_kind(kind: &str, obj: Py<PyAny>) -> PyResult<Model> {
        Ok(match kind {
            "raw" => Model::Raw,
            "tuple" => Model::Tuple {
                cls: obj,
                strict: false,
            },
            "strict-tuple" => Model::Tuple {
                cls: obj,
                strict: true,
            },
            "config" => Model::Config(obj),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown value model {other:?}"
                )));
            }
        })
    }
}

/// The key of a row as a Python object.
pub(crate) fn load_key<'py>(py: Python<'py>, row: &[Value]) -> Bound<'py, PyAny> {
    to_py(py, &row[0])
}
