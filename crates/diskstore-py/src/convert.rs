//! Conversions between Python objects and engine keys and values.
//!
//! Keys and values are dispatched on their exact type first (the common case costs one
//! pointer comparison), then on subclasses. `str` and `bytes` are borrowed from the Python
//! object, never copied, so the borrowed forms live as long as the object reference.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyFloat, PyInt, PyMemoryView, PyString};

use diskstore::{Cell, KeyRef, Value, ValueRef};

const KEY_TYPES: &str = "int, float, str or bytes";

/// The engine key of a Python key (`int`, `float`, `str`, `bytes`; `True` is `1`).
///
/// # Errors
/// `TypeError` naming the accepted types; `OverflowError` for an int beyond 64 bits;
/// `ValueError` for NaN.
pub(crate) fn key_ref<'a>(ob: &'a Bound<'_, PyAny>) -> PyResult<KeyRef<'a>> {
    if let Ok(s) = ob.cast_exact::<PyString>() {
        return Ok(KeyRef::Text(s.to_str()?));
    }
    if let Ok(b) = ob.cast_exact::<PyBytes>() {
        return Ok(KeyRef::Blob(b.as_bytes()));
    }
    if ob.is_instance_of::<PyInt>() {
        return Ok(KeyRef::Int(ob.extract::<i64>()?));
    }
    if ob.is_instance_of::<PyFloat>() {
        let f: f64 = ob.extract()?;
        if f.is_nan() {
            return Err(PyValueError::new_err("NaN cannot be a key"));
        }
        return Ok(KeyRef::Float(f));
    }
    if let Ok(s) = ob.cast::<PyString>() {
        return Ok(KeyRef::Text(s.to_str()?));
    }
    if let Ok(b) = ob.cast::<PyBytes>() {
        return Ok(KeyRef::Blob(b.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "diskstore keys must be {KEY_TYPES}, not {}",
        ob.get_type().name()?
    )))
}

/// The engine cell of a Python value stored in one column: `None`, `int`, `float`, `str`,
/// `bytes` (borrowed) or `bytearray`/`memoryview` (copied). `bool` is stored as an integer.
///
/// # Errors
/// `TypeError` for other types; `OverflowError` for an int beyond 64 bits; `ValueError`
/// for NaN (SQLite would store it as NULL).
pub(crate) fn cell<'a>(ob: &'a Bound<'_, PyAny>) -> PyResult<Cell<'a>> {
    if let Ok(b) = ob.cast_exact::<PyBytes>() {
        return Ok(Cell::Borrowed(ValueRef::Blob(b.as_bytes())));
    }
    if let Ok(s) = ob.cast_exact::<PyString>() {
        return Ok(Cell::Borrowed(ValueRef::Text(s.to_str()?)));
    }
    if ob.is_none() {
        return Ok(Cell::Borrowed(ValueRef::Null));
    }
    if ob.is_instance_of::<PyInt>() {
        return Ok(Cell::Borrowed(ValueRef::Integer(ob.extract::<i64>()?)));
    }
    if ob.is_instance_of::<PyFloat>() {
        let f: f64 = ob.extract()?;
        if f.is_nan() {
            return Err(PyValueError::new_err(
                "NaN cannot be stored (SQLite reads it back as NULL)",
            ));
        }
        return Ok(Cell::Borrowed(ValueRef::Real(f)));
    }
    if let Ok(s) = ob.cast::<PyString>() {
        return Ok(Cell::Borrowed(ValueRef::Text(s.to_str()?)));
    }
    if let Ok(b) = ob.cast::<PyBytes>() {
        return Ok(Cell::Borrowed(ValueRef::Blob(b.as_bytes())));
    }
    if let Ok(b) = ob.cast::<PyByteArray>() {
        return Ok(Cell::Owned(Value::Blob(b.to_vec())));
    }
    if ob.is_instance_of::<PyMemoryView>() {
        let b = ob.call_method0("tobytes")?;
        let b = b.cast::<PyBytes>()?;
        return Ok(Cell::Owned(Value::Blob(b.as_bytes().to_vec())));
    }
    Err(PyTypeError::new_err(format!(
        "diskstore can store None, int, float, str or bytes in a column, not {}",
        ob.get_type().name()?
    )))
}

/// A Python object for a stored value (keys included).
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> Bound<'py, PyAny> {
    match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py).expect("int conversion").into_any(),
        Value::Real(f) => PyFloat::new(py, *f).into_any(),
        Value::Text(s) => PyString::new(py, s).into_any(),
        Value::Blob(b) => PyBytes::new(py, b).into_any(),
    }
}
