//! The cursor `transact()` yields: direct SQL on this thread's connection, so that it runs
//! inside the open transaction. A `PRAGMA` that sets a per-connection value meant for writes
//! is also applied to the file's writer connection (see `Table::set_pragma`).

use std::collections::VecDeque;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use diskstore::Value;

use crate::convert::{cell, to_py};
use crate::errors::IntoPyResult;
use crate::store::Reader;

/// Runs SQL on the store's connection of the calling thread. Each `execute` runs one
/// statement to completion and buffers its rows.
#[pyclass(module = "diskstore._diskstore")]
pub struct Cursor {
    store: Py<Reader>,
    rows: VecDeque<Vec<Value>>,
    rowcount: i64,
    /// Column names of the last statement's result (empty when it returns no rows).
    columns: Vec<String>,
    lastrowid: Option<i64>,
}

/// What one statement produced.
struct Ran {
    rows: Vec<Vec<Value>>,
    changes: i64,
    columns: Vec<String>,
    lastrowid: i64,
}

enum Params {
    Positional(Vec<Value>),
    Named(Vec<(String, Value)>),
}

fn owned(ob: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(match cell(ob)? {
        diskstore::Cell::Borrowed(v) => v.to_owned(),
        diskstore::Cell::Owned(v) => v,
    })
}

fn params(ob: Option<&Bound<'_, PyAny>>) -> PyResult<Params> {
    let Some(ob) = ob.filter(|o| !o.is_none()) else {
        return Ok(Params::Positional(Vec::new()));
    };
    if let Ok(d) = ob.cast::<PyDict>() {
        let mut named = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            named.push((k.extract::<String>()?, owned(&v)?));
        }
        return Ok(Params::Named(named));
    }
    if ob.is_instance_of::<pyo3::types::PyString>() || ob.is_instance_of::<pyo3::types::PyBytes>() {
        return Err(PyTypeError::new_err(
            "parameters must be a sequence or a dict, not a string",
        ));
    }
    let mut out = Vec::new();
    for item in ob.try_iter()? {
        out.push(owned(&item?)?);
    }
    Ok(Params::Positional(out))
}

fn run(
    conn: &diskstore::rusqlite::Connection,
    sql: &str,
    params: &Params,
) -> diskstore::Result<Ran> {
    let mut st = conn.prepare(sql)?;
    let columns = st.column_names().map(str::to_owned).collect();
    match params {
        Params::Positional(ps) => {
            for (i, p) in ps.iter().enumerate() {
                st.raw_bind_parameter(i + 1, p)?;
            }
        }
        Params::Named(ps) => {
            for (name, p) in ps {
                let idx =
                    diskstore::named_parameter(|n| st.parameter_index(n).ok().flatten(), name)?;
                st.raw_bind_parameter(idx, p)?;
            }
        }
    }
    let width = st.column_count();
    let mut rows = Vec::new();
    {
        let mut q = st.raw_query();
        while let Some(r) = q.next()? {
            let mut row = Vec::with_capacity(width);
            for i in 0..width {
                let v = r.get_ref(i)?;
                row.push(match v {
                    diskstore::rusqlite::types::ValueRef::Null => Value::Null,
                    diskstore::rusqlite::types::ValueRef::Integer(i) => Value::Integer(i),
                    diskstore::rusqlite::types::ValueRef::Real(f) => Value::Real(f),
                    diskstore::rusqlite::types::ValueRef::Text(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    diskstore::rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            rows.push(row);
        }
    }
    let changes = if st.readonly() {
        -1
    } else {
        conn.changes() as i64
    };
    Ok(Ran {
        rows,
        changes,
        columns,
        lastrowid: conn.last_insert_rowid(),
    })
}

impl Cursor {
    pub(crate) fn new(store: Py<Reader>) -> Cursor {
        Cursor {
            store,
            rows: VecDeque::new(),
            rowcount: -1,
            columns: Vec::new(),
            lastrowid: None,
        }
    }

    fn exec(&mut self, py: Python<'_>, sql: &str, p: &Params) -> PyResult<()> {
        let store = self.store.bind(py);
        // On a new default-model file, direct SQL settles the 0.7.0 model (no Value seen).
        let o = Reader::opened_for(store, py.Ellipsis().bind(py))?;
        let ran = py
            .detach(|| o.table.with_connection(|c| run(c, sql, p)))
            .py()?;
        // A per-connection setting meant for writes (`PRAGMA synchronous = FULL`) reaches
        // the file's writer connection too, which runs every write (see
        // `Table::set_pragma`); the statement itself ran on this thread's connection.
        let empty = match p {
            Params::Positional(v) => v.is_empty(),
            Params::Named(v) => v.is_empty(),
        };
        if empty && let Some((name, value)) = diskstore::Table::shared_pragma(sql) {
            py.detach(|| o.table.set_pragma(&name, &value)).py()?;
        }
        self.rows = ran.rows.into();
        self.rowcount = ran.changes;
        self.columns = ran.columns;
        self.lastrowid = Some(ran.lastrowid);
        Ok(())
    }
}

#[pymethods]
impl Cursor {
    /// Runs one SQL statement with `parameters` (a sequence for `?`, a dict for `:name`);
    /// returns the cursor, whose rows can then be fetched.
    #[pyo3(signature = (sql, parameters=None))]
    fn execute<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
        sql: &str,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let p = params(parameters)?;
        slf.exec(py, sql, &p)?;
        Ok(slf)
    }

    /// Runs one SQL statement once per parameter set.
    fn executemany<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
        sql: &str,
        seq_of_parameters: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let mut total = 0;
        for ps in seq_of_parameters.try_iter()? {
            let p = params(Some(&ps?))?;
            slf.exec(py, sql, &p)?;
            total += slf.rowcount.max(0);
        }
        slf.rowcount = total;
        Ok(slf)
    }

    /// The next row as a tuple, or None.
    fn fetchone<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.rows.pop_front() {
            Some(r) => Ok(Some(PyTuple::new(py, r.iter().map(|v| to_py(py, v)))?)),
            None => Ok(None),
        }
    }

    /// Every remaining row, as a list of tuples.
    fn fetchall<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        while let Some(r) = self.rows.pop_front() {
            out.append(PyTuple::new(py, r.iter().map(|v| to_py(py, v)))?)?;
        }
        Ok(out)
    }

    /// Rows changed by the last write statement (-1 after a query).
    #[getter]
    fn rowcount(&self) -> i64 {
        self.rowcount
    }

    /// The result columns of the last statement, as DB-API 7-tuples `(name, None, None,
    /// None, None, None, None)`; None when it returned no columns.
    #[getter]
    fn description<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if self.columns.is_empty() {
            return Ok(None);
        }
        let cols = self
            .columns
            .iter()
            .map(|name| {
                let none = py.None();
                PyTuple::new(
                    py,
                    [
                        name.into_pyobject(py)?.into_any().unbind(),
                        none.clone_ref(py),
                        none.clone_ref(py),
                        none.clone_ref(py),
                        none.clone_ref(py),
                        none.clone_ref(py),
                        none,
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, cols).map(Some)
    }

    /// The rowid of the last row inserted on this connection (SQLite's
    /// `last_insert_rowid()`), None before any statement ran.
    #[getter]
    fn lastrowid(&self) -> Option<i64> {
        self.lastrowid
    }

    /// Closes the cursor (drops its buffered rows); the connection stays open.
    fn close(&mut self) {
        self.rows.clear();
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.fetchone(py)
    }
}

/// A cursor on `store`'s connection of the calling thread.
#[pyfunction]
pub(crate) fn _cursor(store: Py<Reader>) -> Cursor {
    Cursor::new(store)
}
