//! The Python exception hierarchy and the one place where engine errors become Python
//! exceptions ([`IntoPyResult::py`]).

use pyo3::exceptions::{PyException, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use diskstore::Error;

pyo3::create_exception!(
    diskstore,
    DiskStoreError,
    PyException,
    "Base class of every diskstore error."
);
pyo3::create_exception!(
    diskstore,
    BusyError,
    DiskStoreError,
    "The file stayed locked by another connection for longer than the timeout."
);
pyo3::create_exception!(
    diskstore,
    ReadOnlyError,
    DiskStoreError,
    "The store, the file or its folder cannot be written."
);
pyo3::create_exception!(
    diskstore,
    NotFoundError,
    DiskStoreError,
    "The store file does not exist (read-only stores never create one)."
);
pyo3::create_exception!(
    diskstore,
    NotADatabaseError,
    DiskStoreError,
    "The file exists but is not an SQLite database."
);
pyo3::create_exception!(
    diskstore,
    CorruptError,
    DiskStoreError,
    "SQLite found damage in the file."
);
pyo3::create_exception!(
    diskstore,
    DiskFullError,
    DiskStoreError,
    "The disk or a quota is full; the failed write was not kept."
);
pyo3::create_exception!(
    diskstore,
    SchemaError,
    DiskStoreError,
    "The table in the file does not fit the value model and cannot be migrated safely."
);
pyo3::create_exception!(
    diskstore,
    DecodeError,
    DiskStoreError,
    "A stored value cannot be read back (for example text that is not UTF-8)."
);
pyo3::create_exception!(
    diskstore,
    SQLError,
    DiskStoreError,
    "Any other SQLite error (for example bad SQL passed to query() or a cursor)."
);

/// Registers the exception classes on the module (as `Error`, `BusyError`, …).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<DiskStoreError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add("ReadOnlyError", py.get_type::<ReadOnlyError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("NotADatabaseError", py.get_type::<NotADatabaseError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("DiskFullError", py.get_type::<DiskFullError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("SQLError", py.get_type::<SQLError>())?;
    Ok(())
}

/// Maps an engine error onto the Python exception a caller expects.
pub(crate) fn to_py_err(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Busy { .. } => BusyError::new_err(msg),
        Error::ReadOnly { .. } => ReadOnlyError::new_err(msg),
        Error::NotFound { .. } => NotFoundError::new_err(msg),
        Error::NotADatabase { .. } => NotADatabaseError::new_err(msg),
        Error::Corrupt { .. } => CorruptError::new_err(msg),
        Error::DiskFull { .. } => DiskFullError::new_err(msg),
        Error::Schema { .. } => SchemaError::new_err(msg),
        Error::Decode { .. } => DecodeError::new_err(msg),
        Error::InvalidKey(_) | Error::InvalidValue(_) => PyValueError::new_err(msg),
        Error::TooBig(_) => PyOverflowError::new_err(msg),
        Error::Sqlite(e) => sqlite_error(&e, msg),
        _ => DiskStoreError::new_err(msg),
    }
}

fn sqlite_error(e: &diskstore::rusqlite::Error, msg: String) -> PyErr {
    use diskstore::rusqlite::{Error as E, ErrorCode};
    match e {
        E::ToSqlConversionFailure(_) | E::InvalidParameterCount(..) => PyTypeError::new_err(msg),
        E::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            PyValueError::new_err(msg)
        }
        _ => SQLError::new_err(msg),
    }
}

/// Converts an engine result into a Python result: `table.get(k, f).py()?`.
pub(crate) trait IntoPyResult<T> {
    /// The result with any engine error mapped by [`to_py_err`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for diskstore::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}
