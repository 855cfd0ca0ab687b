//! `FanoutCache` reads and writes in one native call: the shard by the key's hash (as
//! `Disk.hash`) and the shard's `get_plain`/`set_plain`, so that an operation on a `str`
//! key with the plain `Disk` costs one crossing from Python instead of three Python frames
//! and one crossing.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use super::{DcCore, adler32};

/// The shard of `cores` for a `str` key (`adler32(utf-8) % len(cores)`, as
/// `Disk.hash`), or `None` for any other key.
fn shard_of<'py>(
    cores: &Bound<'py, PyTuple>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, DcCore>>> {
    let Ok(text) = key.cast_exact::<PyString>() else {
        return Ok(None);
    };
    let Some(count) = u32::try_from(cores.len()).ok().filter(|&n| n > 0) else {
        return Err(PyValueError::new_err("no shards"));
    };
    let shard = adler32(text.to_str()?.as_bytes()) % count;
    let core = cores.get_item(shard as usize)?;
    Ok(Some(core.cast_into::<DcCore>()?))
}

/// `FanoutCache.set` for the plain `Disk` and a `str` key, in one call: the shard's core
/// of `cores`, then its `set_plain`. `None` when the key is not a `str` or the value not
/// one the plain `Disk` stores as it is (the caller then takes the shard's `Cache.set`);
/// else the files the shard must remove (an empty tuple nearly always). A busy shard past
/// its timeout raises `Timeout`, as `set_plain` does.
#[pyfunction]
#[pyo3(name = "_dc_fanout_set_plain")]
#[pyo3(signature = (cores, key, value, expire, tag, min_file_size))]
pub(super) fn fanout_set_plain<'py>(
    py: Python<'py>,
    cores: &Bound<'py, PyTuple>,
    key: Bound<'py, PyAny>,
    value: Bound<'py, PyAny>,
    expire: Option<f64>,
    tag: Bound<'py, PyAny>,
    min_file_size: i64,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(core) = shard_of(cores, &key)? else {
        return Ok(None);
    };
    core.get()
        .set_plain(py, key, value, expire, tag, min_file_size)
}

/// `FanoutCache.get` for the plain `Disk` and a `str` key, in one call: the shard's core
/// of `cores`, then its `get_plain`. `slow` for any other key.
#[pyfunction]
#[pyo3(name = "_dc_fanout_get_plain")]
pub(super) fn fanout_get_plain<'py>(
    py: Python<'py>,
    cores: &Bound<'py, PyTuple>,
    key: Bound<'py, PyAny>,
    miss: Bound<'py, PyAny>,
    slow: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(core) = shard_of(cores, &key)? else {
        return Ok(slow);
    };
    core.get().get_plain(py, key, miss, slow)
}
