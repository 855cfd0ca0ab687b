//! Settling the default value model of a store opened with neither `value_class` nor
//! `config`: the file decides if it has a store table, otherwise the first value written
//! does, under SQLite's write lock so that two processes cannot decide differently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use diskstore::rusqlite::{Connection, OpenFlags};
use diskstore::{Column, ColumnType, TableSpec};

use crate::errors::IntoPyResult;

/// The table of the 0.1.0 default model (`Value` NamedTuples).
const TABLE_01: &str = "Value";
/// The table of the 0.7.0 default model (raw values).
const TABLE_07: &str = "DiskStore";

fn store_tables(conn: &Connection) -> diskstore::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2) ORDER BY name",
    )?;
    let names = st
        .query_map([TABLE_01, TABLE_07], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// The table the file decides: 0.7.0's when it has it, else 0.1.0's, else None.
fn decided(tables: &[String]) -> Option<&'static str> {
    if tables.iter().any(|t| t == TABLE_07) {
        Some(TABLE_07)
    } else if tables.iter().any(|t| t == TABLE_01) {
        Some(TABLE_01)
    } else {
        None
    }
}

fn with_context<T>(r: diskstore::Result<T>, path: &Path) -> diskstore::Result<T> {
    r.map_err(|e| match e {
        diskstore::Error::Sqlite(ref s)
            if s.sqlite_error_code() == Some(diskstore::rusqlite::ErrorCode::NotADatabase) =>
        {
            diskstore::Error::NotADatabase {
                path: path.to_owned(),
            }
        }
        diskstore::Error::Sqlite(ref s)
            if s.sqlite_error_code() == Some(diskstore::rusqlite::ErrorCode::DatabaseBusy) =>
        {
            diskstore::Error::Busy {
                path: path.to_owned(),
                waited: Duration::ZERO,
            }
        }
        other => other,
    })
}

/// The default-model table the file at `path` already has ("DiskStore" wins over
/// "Value"), or None (also for a missing file).
#[pyfunction]
pub(crate) fn _file_table(py: Python<'_>, path: PathBuf) -> PyResult<Option<&'static str>> {
    if !path.exists() {
        return Ok(None);
    }
    py.detach(|| {
        with_context(
            (|| {
                let conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(10))?;
                Ok(decided(&store_tables(&conn)?))
            })(),
            &path,
        )
    })
    .py()
}

/// Decides the default model of the file at `path` under its write lock: the table the
/// file has, or, if none, creates `"Value"` when `first_is_value` else `"DiskStore"`
/// (both `_key BLOB PRIMARY KEY, value BLOB NOT NULL`). Returns the table name.
#[pyfunction]
pub(crate) fn _settle_default(
    py: Python<'_>,
    path: PathBuf,
    timeout: f64,
    first_is_value: bool,
) -> PyResult<&'static str> {
    let timeout = Duration::try_from_secs_f64(timeout)
        .map_err(|_| PyValueError::new_err("timeout must be a finite number of seconds"))?;
    let r = py.detach(|| -> diskstore::Result<&'static str> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(timeout)?;
        // Each pragma runs to its end: `execute_batch` would drop the error of a failed
        // switch to WAL (`journal_mode` returns a row; see the engine's `run_to_end`).
        for (name, value) in diskstore::DEFAULT_PRAGMAS {
            let mut st = conn.prepare(&format!("PRAGMA {name} = {value}"))?;
            let mut rows = st.raw_query();
            while rows.next()?.is_some() {}
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result: diskstore::Result<&'static str> = (|| {
            if let Some(t) = decided(&store_tables(&conn)?) {
                return Ok(t);
            }
            let name = if first_is_value { TABLE_01 } else { TABLE_07 };
            let spec = TableSpec {
                name: name.to_owned(),
                key_type: ColumnType::Blob,
                columns: vec![Column::new("value", ColumnType::Blob, false, None)],
            };
            conn.execute_batch(&spec.create_sql()?)?;
            Ok(name)
        })();
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = conn.execute_batch(end);
        let name = result?;
        ended?;
        Ok(name)
    });
    with_context(r, &path).py()
}
