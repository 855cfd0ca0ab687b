//! `diskstore._diskstore`: the Rust half of the `diskstore` Python package.
//!
//! The Python package (`python/diskstore/`) builds `DiskRead` and `DiskStore` on the
//! `_Reader`/`_Writer` classes defined here, which go straight from Python objects to the
//! engine (`diskstore::Table`).

use pyo3::prelude::*;

mod cache;
mod convert;
mod cursor;
mod dccore;
mod errors;
mod iter;
mod large;
mod model;
mod remote;
mod settle;
mod store;

/// The Python module. It declares that it needs the GIL (`gil_used = true`): the classes
/// are thread-safe under the GIL and tested so, but not tested on free-threaded CPython
/// (which cannot load abi3 wheels anyway).
#[pymodule(gil_used = true)]
fn _diskstore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<store::Reader>()?;
    m.add_class::<store::Writer>()?;
    m.add_class::<store::Transaction>()?;
    m.add_class::<iter::StoreIter>()?;
    m.add_class::<cursor::Cursor>()?;
    m.add_function(wrap_pyfunction!(cursor::_cursor, m)?)?;
    m.add_function(wrap_pyfunction!(settle::_file_table, m)?)?;
    m.add_function(wrap_pyfunction!(settle::_settle_default, m)?)?;
    m.add_function(wrap_pyfunction!(store::_roundtrip, m)?)?;
    m.add("SQLITE_VERSION", diskstore::sqlite_version())?;
    cache::register(m)?;
    dccore::register(m)?;
    remote::register(m)?;
    Ok(())
}
