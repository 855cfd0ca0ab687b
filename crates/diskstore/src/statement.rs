//! Statements kept prepared on a thread's connection, owned through SQLite's C API.
//!
//! [`Stmt`] is a statement made with `sqlite3_prepare_v3` and finalized when dropped. It
//! borrows nothing: the slot that holds it (`connection.rs`) keeps its connection open and
//! at a fixed address until every statement of it has been dropped, which is the one rule
//! this module relies on. Work runs on a statement through [`Prepared`], which binds text
//! and blobs in place (`SQLITE_STATIC`) and clears the bindings before the data can go.
//! Together with the slot, this is the crate's `unsafe` statement code.

use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;

use rusqlite::types::ValueRef as LibValueRef;
use rusqlite::types::{FromSql, FromSqlError, ToSql, ToSqlOutput, Type};
use rusqlite::{Connection, ffi};

use crate::error::Result;
use crate::value::ValueRef;

/// Statements of [`Connections::held`](crate::connection::Connections::held) reserved by the
/// connection layer itself, and where a table's and a cache's ids start.
pub(crate) mod held {
    /// `BEGIN` (a read transaction).
    pub const BEGIN: usize = 0;
    /// `BEGIN IMMEDIATE` (a write transaction).
    pub const BEGIN_IMMEDIATE: usize = 1;
    /// `COMMIT`.
    pub const COMMIT: usize = 2;
    /// `ROLLBACK`.
    pub const ROLLBACK: usize = 3;
    /// `SAVEPOINT` of a nested all-or-nothing level.
    pub const SAVEPOINT: usize = 4;
    /// `ROLLBACK TO` that savepoint.
    pub const ROLLBACK_TO: usize = 5;
    /// `RELEASE` of that savepoint.
    pub const RELEASE: usize = 6;
    /// The first id free for the table's own statements (in the table's namespace).
    pub const TABLE: usize = 4;
    /// How many ids the table's statements take (the cache's start after them).
    pub const TABLE_COUNT: usize = 12;
    /// The first id free for the cache's statements.
    pub const CACHE: usize = TABLE + TABLE_COUNT;
}

/// The error SQLite reports for `rc` on `db`.
fn failure(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is a live connection; its message is copied at once.
    let message = unsafe {
        let p = ffi::sqlite3_errmsg(db);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message)
}

/// A prepared statement, finalized when dropped. Whoever holds one keeps its connection
/// open (and at one address) until it is dropped.
pub(crate) struct Stmt {
    raw: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
}

impl Stmt {
    /// Prepares `sql` (one statement) on `conn`, to be kept (`SQLITE_PREPARE_PERSISTENT`).
    ///
    /// # Safety
    /// The statement must be dropped before `conn` is closed.
    pub(crate) unsafe fn prepare(conn: &Connection, sql: &str) -> Result<Stmt> {
        let len = c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        // SAFETY: `conn` is open and used by this thread only; `sql` is valid for `len`.
        unsafe {
            let db = conn.handle();
            let mut raw = std::ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                std::ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                ffi::sqlite3_finalize(raw);
                return Err(failure(db, rc).into());
            }
            let raw = NonNull::new(raw).ok_or_else(|| {
                crate::error::Error::Usage(format!("no SQL statement in {sql:?}"))
            })?;
            Ok(Stmt { raw, db })
        }
    }

    fn ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.raw.as_ptr()
    }

    /// The statement for work that binds by copy only (so nothing bound can go stale).
    pub(crate) fn work(&mut self) -> Prepared<'_, 'static> {
        Prepared {
            st: self,
            _bound: PhantomData,
        }
    }

    /// Steps to the next row, keeping the statement where it is between calls: true on a
    /// row (read it with [`Stmt::row`]), false at the end.
    ///
    /// # Errors
    /// What SQLite reports for the step.
    pub(crate) fn step(&mut self) -> rusqlite::Result<bool> {
        // SAFETY: a live statement of this thread's connection.
        match unsafe { ffi::sqlite3_step(self.ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => {
                // SAFETY: as above; the extended code of the failed step.
                let code = unsafe {
                    ffi::sqlite3_reset(self.ptr());
                    ffi::sqlite3_extended_errcode(self.db)
                };
                Err(failure(self.db, code))
            }
        }
    }

    /// The row the last [`Stmt::step`] stopped at.
    pub(crate) fn row(&self) -> RawRow<'_> {
        RawRow {
            st: self.ptr(),
            _row: PhantomData,
        }
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: finalized once, while its connection is open (see `Stmt`).
        unsafe {
            ffi::sqlite3_finalize(self.ptr());
        }
    }
}

/// A statement handed to the work of `held`: binds, runs and reads rows. `'k` outlives the
/// whole `held` call, so data bound in place cannot be a temporary of the work itself.
pub(crate) struct Prepared<'s, 'k> {
    st: &'s mut Stmt,
    _bound: PhantomData<&'k [u8]>,
}

impl<'k> Prepared<'_, 'k> {
    fn check(&self, rc: c_int) -> rusqlite::Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(failure(self.st.db, rc))
        }
    }

    fn column(idx: usize) -> rusqlite::Result<c_int> {
        c_int::try_from(idx).map_err(|_| rusqlite::Error::InvalidParameterCount(idx, 0))
    }

    /// Binds `value` to parameter `idx` (1-based); text and blobs in place, without a copy
    /// (`held` clears the bindings before `'k` can end).
    pub(crate) fn bind(&mut self, idx: usize, value: ValueRef<'k>) -> Result<()> {
        let v = match value {
            ValueRef::Null => LibValueRef::Null,
            ValueRef::Integer(i) => LibValueRef::Integer(i),
            ValueRef::Real(f) => LibValueRef::Real(f),
            ValueRef::Text(t) => LibValueRef::Text(t.as_bytes()),
            ValueRef::Blob(b) => LibValueRef::Blob(b),
        };
        // SAFETY: the data outlives the statement's use of it (see `'k`).
        Ok(unsafe { self.bind_with(idx, v, ffi::SQLITE_STATIC()) }?)
    }

    /// Binds any rusqlite value to parameter `idx` (1-based), copying text and blobs.
    pub(crate) fn raw_bind_parameter<T: ToSql>(
        &mut self,
        idx: usize,
        value: T,
    ) -> rusqlite::Result<()> {
        let out = value.to_sql()?;
        let v = match &out {
            ToSqlOutput::Borrowed(v) => *v,
            ToSqlOutput::Owned(v) => LibValueRef::from(v),
            _ => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "unsupported parameter kind".into(),
                ));
            }
        };
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy text and blobs at once.
        unsafe { self.bind_with(idx, v, ffi::SQLITE_TRANSIENT()) }
    }

    /// Binds `v` to parameter `idx` with `destructor` for its text or blob.
    ///
    /// # Safety
    /// With `SQLITE_STATIC`, the data must outlive the statement's use of it.
    unsafe fn bind_with(
        &mut self,
        idx: usize,
        v: LibValueRef<'_>,
        destructor: ffi::sqlite3_destructor_type,
    ) -> rusqlite::Result<()> {
        let col = Self::column(idx)?;
        let raw = self.st.ptr();
        // SAFETY: a live statement; lengths are those of the slices; the caller answers
        // for how long the data lives.
        let rc = unsafe {
            match v {
                LibValueRef::Null => ffi::sqlite3_bind_null(raw, col),
                LibValueRef::Integer(i) => ffi::sqlite3_bind_int64(raw, col, i),
                LibValueRef::Real(f) => ffi::sqlite3_bind_double(raw, col, f),
                LibValueRef::Text(t) => ffi::sqlite3_bind_text64(
                    raw,
                    col,
                    t.as_ptr().cast(),
                    t.len() as u64,
                    destructor,
                    ffi::SQLITE_UTF8 as u8,
                ),
                LibValueRef::Blob(b) => ffi::sqlite3_bind_blob64(
                    raw,
                    col,
                    b.as_ptr().cast(),
                    b.len() as u64,
                    destructor,
                ),
            }
        };
        self.check(rc)
    }

    /// How many parameters the statement has.
    pub(crate) fn parameter_count(&self) -> usize {
        // SAFETY: a live statement.
        let n = unsafe { ffi::sqlite3_bind_parameter_count(self.st.ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// The index of the parameter spelt `name` (with its prefix), if the SQL has one.
    pub(crate) fn parameter_index(&self, name: &str) -> Option<usize> {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: a live statement; `name` is a NUL-terminated string.
        let i = unsafe { ffi::sqlite3_bind_parameter_index(self.st.ptr(), name.as_ptr()) };
        usize::try_from(i).ok().filter(|i| *i > 0)
    }

    /// Runs the statement to its end (rows, if any, are skipped); returns how many rows it
    /// changed.
    pub(crate) fn raw_execute(&mut self) -> rusqlite::Result<usize> {
        let mut rows = self.raw_query();
        while rows.next()?.is_some() {}
        drop(rows);
        // SAFETY: a live connection.
        let n = unsafe { ffi::sqlite3_changes64(self.st.db) };
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Binds `params` (1-based, in order) and runs the statement; returns the rows changed.
    pub(crate) fn execute(&mut self, params: &[&dyn ToSql]) -> rusqlite::Result<usize> {
        for (i, p) in params.iter().enumerate() {
            self.raw_bind_parameter(i + 1, *p)?;
        }
        self.raw_execute()
    }

    /// The rows of the statement with its current bindings.
    pub(crate) fn raw_query(&mut self) -> Rows<'_> {
        Rows {
            row: RawRow {
                st: self.st.ptr(),
                _row: PhantomData,
            },
            db: self.st.db,
            done: false,
        }
    }

    /// Binds `params` (1-based, in order) and returns the rows.
    pub(crate) fn query<P: ToSql, const N: usize>(
        &mut self,
        params: [P; N],
    ) -> rusqlite::Result<Rows<'_>> {
        for (i, p) in params.iter().enumerate() {
            self.raw_bind_parameter(i + 1, p)?;
        }
        Ok(self.raw_query())
    }

    /// Binds `params` and hands the first row to `f`; no row is `QueryReturnedNoRows`.
    pub(crate) fn query_row<P: ToSql, const N: usize, T>(
        &mut self,
        params: [P; N],
        f: impl FnOnce(&RawRow<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut rows = self.query(params)?;
        let out = match rows.next()? {
            Some(r) => f(r)?,
            None => return Err(rusqlite::Error::QueryReturnedNoRows),
        };
        while rows.next()?.is_some() {}
        Ok(out)
    }

    /// Clears every binding.
    pub(crate) fn clear_bindings(&mut self) {
        // SAFETY: a live statement.
        unsafe {
            ffi::sqlite3_clear_bindings(self.st.ptr());
        }
    }

    /// A counter of the statement (how often it ran, was re-prepared, …).
    #[cfg(test)]
    pub(crate) fn get_status(&self, status: rusqlite::StatementStatus) -> i32 {
        // SAFETY: a live statement; reading a counter does not reset it.
        unsafe { ffi::sqlite3_stmt_status(self.st.ptr(), status as c_int, 0) }
    }

    /// The SQL with the current bindings filled in (for tests and messages).
    #[cfg(test)]
    fn expanded_sql(&self) -> Option<String> {
        // SAFETY: a live statement; the string is copied, then freed with sqlite3_free.
        unsafe {
            let p = ffi::sqlite3_expanded_sql(self.st.ptr());
            if p.is_null() {
                return None;
            }
            let s = CStr::from_ptr(p).to_string_lossy().into_owned();
            ffi::sqlite3_free(p.cast());
            Some(s)
        }
    }
}

/// The rows of a running statement; the statement is reset when they are dropped.
pub(crate) struct Rows<'s> {
    row: RawRow<'s>,
    db: *mut ffi::sqlite3,
    done: bool,
}

impl Rows<'_> {
    /// Steps to the next row.
    ///
    /// # Errors
    /// What SQLite reports for the step (busy, constraint, I/O, …).
    #[allow(clippy::should_implement_trait)] // lends the row: not an `Iterator`
    pub(crate) fn next(&mut self) -> rusqlite::Result<Option<&RawRow<'_>>> {
        if self.done {
            return Ok(None);
        }
        // SAFETY: a live statement of this thread's connection.
        let rc = unsafe { ffi::sqlite3_step(self.row.st) };
        match rc {
            ffi::SQLITE_ROW => Ok(Some(&self.row)),
            ffi::SQLITE_DONE => {
                self.done = true;
                Ok(None)
            }
            _ => {
                self.done = true;
                // SAFETY: a live statement; the extended code after a failed step.
                let code = unsafe {
                    ffi::sqlite3_reset(self.row.st);
                    ffi::sqlite3_extended_errcode(self.db)
                };
                Err(failure(self.db, code))
            }
        }
    }
}

impl Drop for Rows<'_> {
    fn drop(&mut self) {
        // SAFETY: a live statement; resetting keeps its bindings.
        unsafe {
            ffi::sqlite3_reset(self.row.st);
        }
    }
}

/// The current row of a running statement.
pub(crate) struct RawRow<'s> {
    st: *mut ffi::sqlite3_stmt,
    _row: PhantomData<&'s Stmt>,
}

impl RawRow<'_> {
    /// Column `idx` (0-based) as SQLite holds it.
    ///
    /// # Errors
    /// `InvalidColumnIndex` past the last column.
    pub(crate) fn get_ref(&self, idx: usize) -> rusqlite::Result<LibValueRef<'_>> {
        let col = c_int::try_from(idx).map_err(|_| rusqlite::Error::InvalidColumnIndex(idx))?;
        // SAFETY: the statement stands on a row; the pointers SQLite returns stay valid
        // until the next step or reset, which need `&mut` on the rows this borrows.
        unsafe {
            if col >= ffi::sqlite3_column_count(self.st) {
                return Err(rusqlite::Error::InvalidColumnIndex(idx));
            }
            Ok(match ffi::sqlite3_column_type(self.st, col) {
                ffi::SQLITE_INTEGER => {
                    LibValueRef::Integer(ffi::sqlite3_column_int64(self.st, col))
                }
                ffi::SQLITE_FLOAT => LibValueRef::Real(ffi::sqlite3_column_double(self.st, col)),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_column_text(self.st, col);
                    let n = ffi::sqlite3_column_bytes(self.st, col) as usize;
                    LibValueRef::Text(bytes(p, n))
                }
                ffi::SQLITE_BLOB => {
                    let p = ffi::sqlite3_column_blob(self.st, col);
                    let n = ffi::sqlite3_column_bytes(self.st, col) as usize;
                    LibValueRef::Blob(bytes(p.cast(), n))
                }
                _ => LibValueRef::Null,
            })
        }
    }

    /// Column `idx` converted to `T`.
    ///
    /// # Errors
    /// A bad index, or a value that does not convert.
    pub(crate) fn get<I: ColumnIndex, T: FromSql>(&self, idx: I) -> rusqlite::Result<T> {
        let idx = idx.index();
        let v = self.get_ref(idx)?;
        T::column_result(v).map_err(|e| match e {
            FromSqlError::InvalidType => {
                rusqlite::Error::InvalidColumnType(idx, String::new(), v.data_type())
            }
            FromSqlError::OutOfRange(i) => rusqlite::Error::IntegralValueOutOfRange(idx, i),
            FromSqlError::Utf8Error(u) => rusqlite::Error::Utf8Error(idx, u),
            other => rusqlite::Error::FromSqlConversionFailure(idx, Type::Null, Box::new(other)),
        })
    }
}

/// A column index (as rusqlite's `RowIndex`, for call sites written for either).
pub(crate) trait ColumnIndex {
    /// The 0-based index.
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// `n` bytes at `p` (empty for a null pointer, which SQLite returns for empty values).
///
/// # Safety
/// `p` must be valid for `n` bytes for the returned lifetime.
unsafe fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// Whose statements these are: one namespace per open table handle of a file (index 0 is
/// the connection layer's own). An index is reused after its handle is dropped, with a new
/// generation, so a statement held for a dropped handle is never run for a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Namespace {
    pub index: usize,
    pub generation: u64,
}

impl Namespace {
    /// The connection layer's statements (`BEGIN`, `COMMIT`, …).
    pub const CONNECTION: Namespace = Namespace {
        index: 0,
        generation: 0,
    };
}

/// A held statement and the generation of the namespace it was prepared for.
struct Held {
    st: Stmt,
    generation: u64,
}

/// The held statements of one thread's connection, by namespace and id.
#[derive(Default)]
pub(crate) struct HeldStatements(Vec<Vec<Option<Held>>>);

impl HeldStatements {
    /// Takes statement `id` of `ns` out (to be put back with [`Self::put`]), if it is held
    /// for this generation of the namespace.
    fn take(&mut self, ns: Namespace, id: usize) -> Option<Stmt> {
        let slot = self.0.get_mut(ns.index)?.get_mut(id)?;
        match slot {
            Some(h) if h.generation == ns.generation => slot.take().map(|h| h.st),
            _ => None,
        }
    }

    fn put(&mut self, ns: Namespace, id: usize, st: Stmt) {
        if self.0.len() <= ns.index {
            self.0.resize_with(ns.index + 1, Vec::new);
        }
        let list = &mut self.0[ns.index];
        if list.len() <= id {
            list.resize_with(id + 1, || None);
        }
        list[id] = Some(Held {
            st,
            generation: ns.generation,
        });
    }
}

// SAFETY: the statements belong to their slot's connection, which is `Send`; they move
// between threads only together with it (when the slots are dropped), and are only used
// by the thread that owns the slot.
unsafe impl Send for HeldStatements {}

/// Runs `f` on `st`, then clears its bindings (text and blobs were bound in place).
fn run<'k, R>(st: &mut Stmt, f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>) -> Result<R> {
    let mut p = Prepared {
        st,
        _bound: PhantomData,
    };
    let result = f(&mut p);
    p.clear_bindings();
    result
}

/// Runs `f` with statement `id` of namespace `ns` held on `own` (the slot's connection at
/// its fixed address), preparing `sql` on first use; the statement goes back into `list`
/// afterwards. Each (namespace, id) always comes with one `sql`.
///
/// # Safety
/// `own` must stay open, at its address, until every statement in `list` is dropped.
pub(crate) unsafe fn with_held<'k, R>(
    list: &std::cell::RefCell<HeldStatements>,
    own: &Connection,
    ns: Namespace,
    id: usize,
    sql: &str,
    f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>,
) -> Result<R> {
    // Taken out while in use, so that a nested use of the same id prepares its own.
    let taken = list.borrow_mut().take(ns, id);
    let mut st = match taken {
        Some(st) => st,
        // SAFETY: the caller keeps `own` open until the statement drops.
        None => unsafe { Stmt::prepare(own, sql)? },
    };
    let result = run(&mut st, f);
    list.borrow_mut().put(ns, id, st);
    result
}

/// A statement on a connection that is not a slot's: prepared for this one use.
pub(crate) fn with_fresh<'k, R>(
    conn: &Connection,
    sql: &str,
    f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>,
) -> Result<R> {
    // SAFETY: the statement is dropped at the end of this call, while `conn` is borrowed.
    let mut st = unsafe { Stmt::prepare(conn, sql)? };
    run(&mut st, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value as LibValue;

    #[test]
    fn binding_in_place_reaches_this_statement_alone() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "SELECT ?1, ?2";
        // SAFETY: both statements drop before `conn`.
        let (mut a, mut b) = unsafe {
            (
                Stmt::prepare(&conn, sql).unwrap(),
                Stmt::prepare(&conn, sql).unwrap(),
            )
        };
        let text = String::from("bound in place");
        let shown = run(&mut a, |p| {
            p.bind(1, ValueRef::Text(&text))?;
            p.bind(2, ValueRef::Blob(b"\x01"))?;
            Ok(p.expanded_sql().unwrap())
        })
        .unwrap();
        assert_eq!(shown, "SELECT 'bound in place', x'01'");
        let other = run(&mut b, |p| Ok(p.expanded_sql().unwrap())).unwrap();
        assert_eq!(other, "SELECT NULL, NULL");
        // The bindings are gone once the work is done.
        let after = run(&mut a, |p| Ok(p.expanded_sql().unwrap())).unwrap();
        assert_eq!(after, "SELECT NULL, NULL");
    }

    #[test]
    fn rows_values_and_errors_read_as_rusqlite_would() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(k PRIMARY KEY, v); INSERT INTO t VALUES (1, 'x'), (2, x''), (3, NULL), (4, 2.5)")
            .unwrap();
        let got = with_fresh(&conn, "SELECT k, v FROM t ORDER BY k", |p| {
            let mut rows = p.raw_query();
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push((r.get::<_, i64>(0)?, r.get::<_, LibValue>(1)?));
            }
            assert!(matches!(rows.next(), Ok(None)));
            Ok(out)
        })
        .unwrap();
        assert_eq!(
            got,
            [
                (1, LibValue::Text("x".into())),
                (2, LibValue::Blob(vec![])),
                (3, LibValue::Null),
                (4, LibValue::Real(2.5)),
            ]
        );
        let e = with_fresh(&conn, "INSERT INTO t VALUES (?1, 0)", |p| {
            Ok(p.execute(&[&1])?)
        });
        assert!(
            matches!(e, Err(crate::Error::Sqlite(ref s)) if s.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)),
            "{e:?}"
        );
        let n = with_fresh(&conn, "DELETE FROM t WHERE k > ?1", |p| {
            Ok(p.execute(&[&2])?)
        })
        .unwrap();
        assert_eq!(n, 2);
        let none = with_fresh(&conn, "SELECT v FROM t WHERE k = ?1", |p| {
            Ok(p.query_row([9], |r| r.get::<_, i64>(0)))
        })
        .unwrap();
        assert!(matches!(none, Err(rusqlite::Error::QueryReturnedNoRows)));
        assert!(unsafe { Stmt::prepare(&conn, "SELEKT") }.is_err());
    }
}
