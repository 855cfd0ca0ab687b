//! Large stored values read straight into their Python object: the engine locates a value
//! of [`diskstore::LARGE_VALUE`] bytes or more without reading it, the `bytes` object is
//! made at its size and the engine fills it from the file's pages with the GIL released.
//! No copy of the value is made on the way (text is read into one buffer, then decoded).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use diskstore::{KeyRef, Located, Table};

use crate::errors::{DecodeError, IntoPyResult};

/// Reads the value located at `at` for `key`; `None` when it changed meanwhile (look it
/// up again).
pub(crate) fn read<'py>(
    py: Python<'py>,
    table: &Table,
    key: KeyRef<'_>,
    at: &Located,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if at.is_text() {
        let mut buf = vec![0u8; at.len()];
        if !py.detach(|| table.read_located(key, at, &mut buf)).py()? {
            return Ok(None);
        }
        let s = std::str::from_utf8(&buf)
            .map_err(|e| DecodeError::new_err(format!("stored text is not UTF-8: {e}")))?;
        return Ok(Some(PyString::new(py, s).into_any()));
    }
    let mut same = true;
    let bytes = PyBytes::new_with(py, at.len(), |buf| {
        // The new object is ours alone until returned: filling it without the GIL is safe.
        same = py.detach(|| table.read_located(key, at, buf)).py()?;
        Ok(())
    })?;
    Ok(same.then(|| bytes.into_any()))
}
