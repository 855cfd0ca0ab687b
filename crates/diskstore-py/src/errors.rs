//! The Python exception hierarchy and the one place where engine errors become Python
//! exceptions ([`IntoPyResult::py`]).

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use diskstore::Error;

/// The exception classes, defined in Python (`diskstore/_errors.py`) so that each can
/// derive from its `sqlite3` counterpart and pickle like any Python exception.
mod classes {
    pyo3::import_exception!(diskstore._errors, Error);
    pyo3::import_exception!(diskstore._errors, BusyError);
    pyo3::import_exception!(diskstore._errors, ReadOnlyError);
    pyo3::import_exception!(diskstore._errors, NotFoundError);
    pyo3::import_exception!(diskstore._errors, NotADatabaseError);
    pyo3::import_exception!(diskstore._errors, CorruptError);
    pyo3::import_exception!(diskstore._errors, DiskFullError);
    pyo3::import_exception!(diskstore._errors, SchemaError);
    pyo3::import_exception!(diskstore._errors, DecodeError);
    pyo3::import_exception!(diskstore._errors, SQLError);
    pyo3::import_exception!(diskstore._errors, IntegrityError);
    pyo3::import_exception!(diskstore._errors, NotSupportedError);
    pyo3::import_exception!(diskstore._errors, ServerError);
    pyo3::import_exception!(diskstore._errors, ConnectionLostError);
}

pub(crate) use classes::{
    BusyError, ConnectionLostError, CorruptError, DecodeError, DiskFullError,
    Error as DiskStoreError, IntegrityError, NotADatabaseError, NotFoundError, NotSupportedError,
    ReadOnlyError, SQLError, SchemaError, ServerError,
};

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
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("NotSupportedError", py.get_type::<NotSupportedError>())?;
    m.add("ServerError", py.get_type::<ServerError>())?;
    m.add("ConnectionLostError", py.get_type::<ConnectionLostError>())?;
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
        Error::NotSupported { .. } => NotSupportedError::new_err(msg),
        Error::Connection { .. } => ConnectionLostError::new_err(msg),
        Error::Timeout { .. } => BusyError::new_err(msg),
        Error::Server { code, .. } if code.starts_with("23") => IntegrityError::new_err(msg),
        Error::Server { .. } => SQLError::new_err(msg),
        _ => DiskStoreError::new_err(msg),
    }
}

fn sqlite_error(e: &diskstore::rusqlite::Error, msg: String) -> PyErr {
    use diskstore::rusqlite::{Error as E, ErrorCode};
    match e {
        E::ToSqlConversionFailure(_) | E::InvalidParameterCount(..) => PyTypeError::new_err(msg),
        E::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch
            ) =>
        {
            IntegrityError::new_err(msg)
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
