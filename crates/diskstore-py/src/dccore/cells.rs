//! Database cells to and from Python objects, borrowed for the length of a call.

use diskstore::rusqlite;
use diskstore::rusqlite::types::{Value, ValueRef};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyMemoryView, PyString, PyTuple};

use super::sql::*;

/// About how many bytes a cell adds to the database.
pub(super) fn cell_len(p: &Param<'_>) -> i64 {
    let n = match p {
        Param::Text(s) => s.len(),
        Param::Blob(b) => b.len(),
        Param::Owned(b) => b.len(),
        _ => 8,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A parameter borrowed from a Python object for the length of a call.
pub(super) enum Param<'a> {
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
pub(super) fn param<'a>(ob: &'a Bound<'_, PyAny>) -> PyResult<Param<'a>> {
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

pub(super) fn params<'a>(items: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<Param<'a>>> {
    items.iter().map(|ob| param(ob)).collect()
}

/// A Python object for a database cell.
pub(super) fn cell_to_py<'py>(py: Python<'py>, v: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Real(f) => PyFloat::new(py, f).into_any(),
        Value::Text(s) => PyString::new(py, &s).into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

/// An owned copy of a borrowed cell (text that is not UTF-8 is kept as bytes).
pub(super) fn owned(v: ValueRef<'_>) -> Value {
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

pub(super) fn row_to_py<'py>(py: Python<'py>, row: Vec<Value>) -> PyResult<Bound<'py, PyTuple>> {
    let items = row
        .into_iter()
        .map(|v| cell_to_py(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}

pub(super) fn collect_rows(
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

/// The cell of a key the plain `Disk` stores as it is (`str`, `bytes`, `float`, 64-bit
/// `int`, exact types), or `None`.
pub(super) fn plain_key<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<Option<Param<'a>>> {
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
