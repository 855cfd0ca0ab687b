//! The type-erased table engine: one SQLite table, every operation on it, for any front end.
//!
//! [`Table`] knows the layout ([`TableSpec`]), holds all SQL texts (built once at open) and
//! the per-thread connections. It works on borrowed keys ([`KeyRef`]) and cells ([`Cell`])
//! and hands each result row ([`Row`]) to a closure, so a front end converts straight
//! from and into its own types without intermediate copies. The typed Rust API
//! ([`DiskStore`](crate::DiskStore)) and the Python binding both sit on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::connection::{ConnectionConfig, Connections, Level, Pin, ReadLevel};
use crate::count::{self, CountCache, Delta};
use crate::error::{Error, Result};
use crate::key::KeyRef;
use crate::pragma::{DEFAULT_TIMEOUT, connection_sql};
use crate::record::Row;
use crate::schema::{self, Edge, Plan, Statements, TableSpec};
use crate::statement::{Prepared, RawRow, Stmt, with_fresh};
use crate::value::{Cell, Value, ValueRef};

pub(crate) mod bulk;
mod large;
mod pragma;
pub use large::{Found, LARGE_VALUE, Located};

/// How to open a [`Table`].
#[derive(Clone, Debug)]
pub struct TableOptions {
    /// The store file.
    pub path: PathBuf,
    /// The table layout.
    pub spec: TableSpec,
    /// Open with `SQLITE_OPEN_READONLY` (the file must exist; nothing is ever written).
    pub read_only: bool,
    /// Busy timeout: how long a call waits for a lock before [`Error::Busy`].
    pub timeout: Duration,
    /// Pragmas applied, in order, after the defaults on every new connection.
    pub pragmas: Vec<(String, String)>,
    /// Add columns the record has and the table lacks (with their defaults).
    pub auto_migrate: bool,
}

impl TableOptions {
    /// Options with the defaults: read-write, 10 s timeout, auto-migrate on.
    pub fn new(path: impl Into<PathBuf>, spec: TableSpec) -> TableOptions {
        TableOptions {
            path: path.into(),
            spec,
            read_only: false,
            timeout: DEFAULT_TIMEOUT,
            pragmas: Vec::new(),
            auto_migrate: true,
        }
    }
}

struct Inner {
    conns: Connections,
    spec: TableSpec,
    sql: Statements,
    /// The pragmas it was opened with beyond the defaults (for sibling tables).
    pragmas: Vec<(String, String)>,
    /// `len()`'s cached counts (see `count.rs`).
    counts: CountCache,
    /// The lookup of [`Table::get_located`], made on first use.
    large_get: std::sync::OnceLock<String>,
}

/// One store table in one file, shared by all threads (a cheap, cloneable handle).
#[derive(Clone)]
pub struct Table {
    inner: Arc<Inner>,
}

/// Which direction a scan goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Insertion (rowid) order, or ascending key order for ranges.
    Forward,
    /// The reverse.
    Reverse,
}

/// One end of a key range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeEnd<'a> {
    /// No limit on this side.
    Unbounded,
    /// Up to and including the key.
    Included(KeyRef<'a>),
    /// Up to but excluding the key.
    Excluded(KeyRef<'a>),
}

/// A trusted SQL query over a store's table (see [`Table::query`]).
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// The `WHERE` fragment, pasted in verbatim (`?` parameters allowed).
    pub filter: Option<String>,
    /// Parameters for the `?` in `filter`.
    pub params: Vec<Value>,
    /// Named parameters for `:name` (or `@name`, `$name`) in `filter`, without the prefix.
    pub named: Vec<(String, Value)>,
    /// The `ORDER BY` fragment; default insertion order.
    pub order: Option<String>,
    /// At most this many rows.
    pub limit: Option<u64>,
    /// Skip this many rows first.
    pub offset: Option<u64>,
}

impl Query {
    /// A query that returns every row in insertion order.
    pub fn new() -> Query {
        Query::default()
    }

    /// Sets the `WHERE` fragment and its parameters. The text is trusted SQL: never build
    /// it from untrusted input; pass such values as `params`.
    #[must_use]
    pub fn filter(
        mut self,
        sql: impl Into<String>,
        params: impl IntoIterator<Item = Value>,
    ) -> Query {
        self.filter = Some(sql.into());
        self.params = params.into_iter().collect();
        self
    }

    /// Sets the `WHERE` fragment and its named parameters (`:name`, `@name` or `$name` in
    /// the text; the names here without the prefix). Trusted SQL, as for [`Query::filter`].
    #[must_use]
    pub fn filter_named(
        mut self,
        sql: impl Into<String>,
        params: impl IntoIterator<Item = (String, Value)>,
    ) -> Query {
        self.filter = Some(sql.into());
        self.named = params.into_iter().collect();
        self
    }

    /// Sets the `ORDER BY` fragment (trusted SQL, e.g. `"value DESC"`). Default: insertion order.
    #[must_use]
    pub fn order(mut self, sql: impl Into<String>) -> Query {
        self.order = Some(sql.into());
        self
    }

    /// Returns at most `n` rows. Default: all.
    #[must_use]
    pub fn limit(mut self, n: u64) -> Query {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows. Default: 0.
    #[must_use]
    pub fn offset(mut self, n: u64) -> Query {
        self.offset = Some(n);
        self
    }
}

/// Ids of the table's statements kept prepared on every thread's connection.
mod stmt {
    use crate::statement::held::TABLE;
    pub const GET: usize = TABLE;
    pub const CONTAINS: usize = TABLE + 1;
    pub const COUNT: usize = TABLE + 2;
    pub const UPSERT: usize = TABLE + 3;
    pub const INSERT_NEW: usize = TABLE + 4;
    pub const INSERT_AUTO: usize = TABLE + 5;
    pub const DELETE: usize = TABLE + 6;
    pub const REMOVE: usize = TABLE + 7;
    pub const POP_LAST: usize = TABLE + 8;
    pub const POP_FIRST: usize = TABLE + 9;
    pub const DATA_VERSION: usize = TABLE + 10;
    const _: () = assert!(DATA_VERSION < TABLE + crate::statement::held::TABLE_COUNT);
}

fn bind_key<'k>(st: &mut Prepared<'_, 'k>, idx: usize, key: KeyRef<'k>) -> Result<()> {
    st.bind(idx, key.checked()?)
}

fn bind_values<'k>(st: &mut Prepared<'_, 'k>, first: usize, values: &'k [Cell<'_>]) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        st.bind(first + i, v.as_ref())?;
    }
    Ok(())
}

/// Runs a statement to completion (which `RETURNING` statements need to finish
/// promptly), handing its first row, if any, to `f`.
pub(crate) fn first_row<T>(
    st: &mut Prepared<'_, '_>,
    f: impl FnOnce(&RawRow<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut rows = st.raw_query();
    let out = match rows.next()? {
        Some(r) => Some(f(r)?),
        None => None,
    };
    while rows.next()?.is_some() {}
    Ok(out)
}

/// [`first_row`] for a row of this table's layout: the key, then `values` value columns.
pub(crate) fn one_row<T>(
    st: &mut Prepared<'_, '_>,
    values: usize,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    first_row(st, |r| f(&Row::new(r, values)))
}

/// The index of the parameter `name` (given without its prefix): `:name`, `@name` or
/// `$name`, as SQLite spells named parameters, looked up with `index_of` (the statement's
/// own lookup of a spelt name).
///
/// # Errors
/// [`Error::Usage`] when the statement has no parameter of that name.
pub fn named_parameter(index_of: impl Fn(&str) -> Option<usize>, name: &str) -> Result<usize> {
    [":", "@", "$"]
        .iter()
        .find_map(|prefix| index_of(&format!("{prefix}{name}")))
        .ok_or_else(|| Error::Usage(format!("the SQL has no parameter named {name:?}")))
}

/// Binds a [`Query`]'s parameters, `LIMIT` and `OFFSET` to its statement, checking that
/// the parameters given are the ones its fragments have.
fn bind_query(st: &mut Prepared<'_, '_>, q: &Query) -> Result<()> {
    for (i, p) in q.params.iter().enumerate() {
        st.raw_bind_parameter(i + 1, p)?;
    }
    for (name, p) in &q.named {
        let idx = named_parameter(|n| st.parameter_index(n), name)?;
        st.raw_bind_parameter(idx, p)?;
    }
    // LIMIT and OFFSET are the statement's last two parameters (unless a fragment
    // swallowed them, e.g. with an unclosed comment).
    let n = st.parameter_count();
    let own = n.checked_sub(2).ok_or_else(|| {
        Error::Usage("a query fragment hides the query's LIMIT and OFFSET".into())
    })?;
    let given = q.params.len() + q.named.len();
    if given != own {
        return Err(Error::Usage(format!(
            "the query has {own} parameter(s) but {given} were given"
        )));
    }
    let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let offset = q.offset.map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX));
    st.raw_bind_parameter(n - 1, limit)?;
    st.raw_bind_parameter(n, offset)?;
    Ok(())
}

/// The rows of a query read one at a time (see [`Table::query_cursor`]).
pub(crate) struct QueryCursor<'t> {
    /// Dropped first: finalized while the pin keeps its connection open.
    stmt: Option<Stmt>,
    pin: Pin<'t>,
    level: Option<ReadLevel<'t>>,
    table: &'t Table,
}

impl QueryCursor<'_> {
    /// Hands the next row to `f`; `None` at the end.
    ///
    /// # Errors
    /// [`Error::Usage`] in a child of `fork()` (the cursor is the parent's); SQLite's
    /// errors for the step; errors from `f`.
    pub(crate) fn next_row<T>(
        &mut self,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let width = self.table.width();
        let Some(stmt) = self.stmt.as_mut() else {
            return Ok(None);
        };
        self.pin.check().map_err(|e| self.table.in_context(e))?;
        let _inside = crate::fork::enter();
        match stmt.step() {
            Ok(true) => f(&Row::new(&stmt.row(), width)).map(Some),
            Ok(false) => {
                self.finish()?;
                Ok(None)
            }
            Err(e) => {
                let _ = self.finish();
                Err(self.table.in_context(e.into()))
            }
        }
    }
}

impl QueryCursor<'_> {
    /// Ends the cursor at the last row: the statement and the read transaction go.
    fn finish(&mut self) -> Result<()> {
        self.stmt = None;
        match self.level.take() {
            Some(level) => level.end().map_err(|e| self.table.in_context(e)),
            None => Ok(()),
        }
    }
}

impl Drop for QueryCursor<'_> {
    fn drop(&mut self) {
        if self.pin.check().is_err() {
            // Inherited across fork(): its connection is the parent's; never touched.
            std::mem::forget(self.stmt.take());
        }
    }
}

fn split_end(e: RangeEnd<'_>) -> (Edge, Option<KeyRef<'_>>) {
    match e {
        RangeEnd::Unbounded => (Edge::Open, None),
        RangeEnd::Included(k) => (Edge::Included, Some(k)),
        RangeEnd::Excluded(k) => (Edge::Excluded, Some(k)),
    }
}

impl Table {
    /// Opens (and, read-write, creates or migrates) the table.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing file opened read-only, [`Error::NotADatabase`] or
    /// [`Error::Corrupt`] for a bad file, [`Error::Schema`] when the table does not fit the
    /// spec and cannot be migrated, [`Error::ReadOnly`] when the file cannot be written,
    /// [`Error::Busy`] when another process holds the lock too long.
    pub fn open(options: TableOptions) -> Result<Table> {
        let sql = Statements::new(&options.spec)?;
        let conns = Connections::new(ConnectionConfig {
            path: options.path.clone(),
            read_only: options.read_only,
            timeout: options.timeout,
            pragma_sql: connection_sql(options.read_only, &options.pragmas)?,
        })
        .map_err(|e| e.at(&options.path, options.timeout))?;
        let table = Table {
            inner: Arc::new(Inner {
                conns,
                spec: options.spec,
                sql,
                pragmas: options.pragmas,
                counts: CountCache::default(),
                large_get: std::sync::OnceLock::new(),
            }),
        };
        let result = table.prepare_schema(options.read_only, options.auto_migrate);
        table.ctx(result)?;
        Ok(table)
    }

    fn prepare_schema(&self, read_only: bool, auto_migrate: bool) -> Result<()> {
        let spec = &self.inner.spec;
        let plan = self
            .inner
            .conns
            .with(|c| schema::plan(c, spec, !read_only))?;
        let missing = |what: String| Error::Schema {
            table: spec.name.clone(),
            column: None,
            message: what,
        };
        match (&plan, read_only, auto_migrate) {
            (Plan::Fits, ..) => Ok(()),
            (Plan::Create, true, _) => Err(missing("the file has no such table".into())),
            (Plan::AddColumns(cols), true, _) | (Plan::AddColumns(cols), _, false) => {
                Err(Error::Schema {
                    table: spec.name.clone(),
                    column: Some(cols[0].name.clone()),
                    message: if read_only {
                        "the column is missing and a read-only store cannot add it".into()
                    } else {
                        "the column is missing and auto-migrate is off".into()
                    },
                })
            }
            _ => self.inner.conns.atomic(|c| {
                // Plan again under the write lock: another process may have done it.
                let plan = schema::plan(c, spec, true)?;
                schema::apply(c, &self.inner.sql, &plan)
            }),
        }
    }

    fn ctx<R>(&self, r: Result<R>) -> Result<R> {
        r.map_err(|e| e.at(self.inner.conns.path(), self.inner.conns.timeout()))
    }

    /// The table layout.
    pub fn spec(&self) -> &TableSpec {
        &self.inner.spec
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        self.inner.conns.path()
    }

    /// The busy timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.conns.timeout()
    }

    /// True if opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.conns.read_only()
    }

    fn width(&self) -> usize {
        self.inner.spec.columns.len()
    }

    /// Runs `f` with one of this table's statements kept prepared on `c` (see
    /// [`Connections::held`]); `id` comes from [`stmt`] or, for the cache, after it.
    pub(crate) fn held<'k, R>(
        &self,
        c: &Connection,
        id: usize,
        sql: &str,
        f: impl FnOnce(&mut Prepared<'_, 'k>) -> Result<R>,
    ) -> Result<R> {
        self.inner.conns.held(c, id, sql, f)
    }

    fn insert_new_with(
        &self,
        c: &Connection,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
    ) -> Result<bool> {
        let before = count::total_changes(c);
        let inserted = self.held(c, stmt::INSERT_NEW, &self.inner.sql.insert_new, |st| {
            bind_key(st, 1, key)?;
            bind_values(st, 2, values)?;
            Ok(st.raw_execute()? == 1)
        })?;
        self.wrote(c, before, Delta::By(i64::from(inserted)));
        Ok(inserted)
    }

    /// Carries `len()`'s cached count over a write of this table that succeeded.
    fn wrote(&self, c: &Connection, changes_before: i64, delta: Delta) {
        let conns = &self.inner.conns;
        self.inner
            .counts
            .wrote(c, || conns.mark(), changes_before, delta);
    }

    /// Upserts one row on `c` (see [`Table::set`]), carrying the cached count along.
    fn set_with(&self, c: &Connection, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<()> {
        let before = count::total_changes(c);
        count::clear_last_insert(c);
        let changed = self.held(c, stmt::UPSERT, &self.inner.sql.upsert, |st| {
            bind_key(st, 1, key)?;
            bind_values(st, 2, values)?;
            Ok(st.raw_execute()?)
        })?;
        // With INTEGER keys the rowid is the key: only an integer key other than the
        // sentinel tells a replacement from an insert under the sentinel's rowid.
        let ambiguous = match (self.inner.spec.key_type, key) {
            (crate::value::ColumnType::Integer, KeyRef::Int(k)) => k == count::NO_INSERT,
            (crate::value::ColumnType::Integer, _) => true,
            _ => false,
        };
        self.wrote(c, before, count::upsert_delta(c, changed, ambiguous));
        Ok(())
    }

    /// Looks up `key` and hands its row to `f`. `f` must not write to the file: the lookup
    /// may run on the file's writer connection, holding its lock (a write from `f` then
    /// fails with [`Error::Usage`]).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a NaN key; errors from `f`; file and lock errors.
    pub fn get<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let r = self.inner.conns.with_lookup(|c| {
            self.held(c, stmt::GET, &self.inner.sql.get, |st| {
                bind_key(st, 1, key)?;
                let mut rows = st.raw_query();
                match rows.next()? {
                    Some(r) => f(&Row::new(r, self.width())).map(Some),
                    None => Ok(None),
                }
            })
        });
        self.ctx(r)
    }

    /// Looks up several keys in one read transaction; `f` gets each key's index and row.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn get_many(
        &self,
        keys: &[KeyRef<'_>],
        mut f: impl FnMut(usize, Option<&Row<'_>>) -> Result<()>,
    ) -> Result<()> {
        let r = self.inner.conns.read(|c| {
            self.held(c, stmt::GET, &self.inner.sql.get, |st| {
                for (i, key) in keys.iter().enumerate() {
                    bind_key(st, 1, *key)?;
                    let mut rows = st.raw_query();
                    match rows.next()? {
                        Some(r) => f(i, Some(&Row::new(r, self.width())))?,
                        None => f(i, None)?,
                    }
                }
                Ok(())
            })
        });
        self.ctx(r)
    }

    /// True if `key` is stored.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub fn contains(&self, key: KeyRef<'_>) -> Result<bool> {
        let r = self.inner.conns.with_lookup(|c| {
            self.held(c, stmt::CONTAINS, &self.inner.sql.contains, |st| {
                bind_key(st, 1, key)?;
                Ok(st.raw_query().next()?.is_some())
            })
        });
        self.ctx(r)
    }

    /// The number of rows.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn len(&self) -> Result<u64> {
        let r = self.inner.conns.with_lookup(|c| {
            let mark = self.inner.conns.mark();
            let version = self.held(c, stmt::DATA_VERSION, "PRAGMA data_version", |st| {
                Ok(st.query_row([0i64; 0], |r| r.get::<_, i64>(0))?)
            })?;
            if let Some(n) = self.inner.counts.get(c, mark, version) {
                return Ok(n);
            }
            let n = self.held(c, stmt::COUNT, &self.inner.sql.count, |st| {
                Ok(st.query_row([0i64; 0], |r| r.get::<_, i64>(0))? as u64)
            })?;
            // Counted after the version was read: a commit in between leaves the version
            // older than the count, which only makes the next call count again.
            self.inner.counts.put(c, mark, version, n);
            Ok(n)
        });
        self.ctx(r)
    }

    /// True if the table has no rows.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Inserts or replaces the row of `key`; a replaced key keeps its position.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::TooBig`], [`Error::ReadOnly`], [`Error::DiskFull`],
    /// [`Error::Busy`], constraint errors from SQLite.
    pub fn set(&self, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<()> {
        if let Some(data) = self.large_last(values) {
            return self.set_large(key, values, data);
        }
        let r = self
            .inner
            .conns
            .write_grouped(|c| self.set_with(c, key, values));
        self.ctx(r)
    }

    /// Stores every row of `rows` all-or-nothing (in one transaction, or a savepoint of
    /// the one open on this thread), each as [`Table::set`] would; a `None` key takes the
    /// next integer key as [`Table::insert_auto`]. Returns how many rows it stored.
    ///
    /// # Errors
    /// As [`Table::set`]; on an error nothing of `rows` is kept.
    pub fn set_many<'k, 'v: 'k>(
        &self,
        rows: impl IntoIterator<Item = (Option<KeyRef<'k>>, &'k [Cell<'v>])>,
    ) -> Result<usize> {
        let r = self.inner.conns.atomic(|c| self.set_many_with(c, rows));
        self.ctx(r)
    }

    /// Inserts the row only if `key` is absent; returns whether it was inserted.
    ///
    /// # Errors
    /// As [`Table::set`].
    pub fn insert_new(&self, key: KeyRef<'_>, values: &[Cell<'_>]) -> Result<bool> {
        let r = self
            .inner
            .conns
            .write_grouped(|c| self.insert_new_with(c, key, values));
        self.ctx(r)
    }

    /// Inserts a row under the next free integer key (SQLite's rowid) and returns that key.
    /// Needs an `INTEGER` key column.
    ///
    /// # Errors
    /// [`Error::Usage`] for a table whose keys are not integers; as [`Table::set`].
    pub fn insert_auto(&self, values: &[Cell<'_>]) -> Result<i64> {
        let r = self.inner.conns.write(|c| self.insert_auto_with(c, values));
        self.ctx(r)
    }

    fn insert_auto_with(&self, c: &Connection, values: &[Cell<'_>]) -> Result<i64> {
        if self.inner.spec.key_type != crate::value::ColumnType::Integer {
            return Err(Error::Usage(format!(
                "a key is needed: table {:?} has {} keys, and only INTEGER keys are assigned automatically",
                self.inner.spec.name, self.inner.spec.key_type
            )));
        }
        let before = count::total_changes(c);
        let key = self.held(c, stmt::INSERT_AUTO, &self.inner.sql.insert_auto, |st| {
            bind_values(st, 2, values)?;
            let key = one_row(st, 0, |row| match row.key()? {
                ValueRef::Integer(i) => Ok(i),
                other => Err(Error::Decode {
                    column: "_key".into(),
                    message: format!("assigned key is {}", other.type_name()),
                }),
            })?;
            key.ok_or_else(|| {
                Error::Usage(
                    "no key can be assigned: the largest integer key (2**63-1) is taken; \
                     give the key explicitly"
                        .into(),
                )
            })
        })?;
        self.wrote(c, before, Delta::By(1));
        Ok(key)
    }

    /// Deletes the row of `key`; returns whether there was one.
    ///
    /// # Errors
    /// As [`Table::set`].
    pub fn delete(&self, key: KeyRef<'_>) -> Result<bool> {
        let r = self.inner.conns.write_grouped(|c| {
            let before = count::total_changes(c);
            let deleted = self.held(c, stmt::DELETE, &self.inner.sql.delete, |st| {
                bind_key(st, 1, key)?;
                Ok(st.raw_execute()? > 0)
            })?;
            self.wrote(c, before, Delta::By(-i64::from(deleted)));
            Ok(deleted)
        });
        self.ctx(r)
    }

    /// Deletes the row of `key` and hands the deleted row to `f` (one `DELETE … RETURNING`
    /// in its own all-or-nothing level: when `f` fails, the row is not deleted).
    ///
    /// # Errors
    /// As [`Table::set`], and errors from `f`.
    pub fn remove<T>(
        &self,
        key: KeyRef<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let r = self.inner.conns.atomic(|c| {
            self.held(c, stmt::REMOVE, &self.inner.sql.remove, |st| {
                bind_key(st, 1, key)?;
                one_row(st, self.width(), f)
            })
        });
        self.ctx(r)
    }

    /// Deletes the newest (`Reverse`) or oldest (`Forward`) row and hands it to `f`; when
    /// `f` fails, nothing is deleted.
    ///
    /// # Errors
    /// As [`Table::remove`].
    pub fn pop<T>(
        &self,
        end: Direction,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let (id, sql) = match end {
            Direction::Reverse => (stmt::POP_LAST, &self.inner.sql.pop_last),
            Direction::Forward => (stmt::POP_FIRST, &self.inner.sql.pop_first),
        };
        let r = self
            .inner
            .conns
            .atomic(|c| self.held(c, id, sql, |st| one_row(st, self.width(), f)));
        self.ctx(r)
    }

    /// Returns the row of `key`, inserting `values` first if it is absent, atomically.
    /// `f` gets the row and whether it was just inserted.
    ///
    /// # Errors
    /// As [`Table::set`].
    pub fn get_or_insert<T>(
        &self,
        key: KeyRef<'_>,
        values: &[Cell<'_>],
        f: impl FnOnce(&Row<'_>, bool) -> Result<T>,
    ) -> Result<T> {
        let r = self.inner.conns.atomic(|c| {
            let inserted = self.insert_new_with(c, key, values)?;
            self.held(c, stmt::GET, &self.inner.sql.get, |st| {
                bind_key(st, 1, key)?;
                let mut rows = st.raw_query();
                let row = rows
                    .next()?
                    .ok_or_else(|| Error::Usage("row vanished inside a transaction".into()))?;
                f(&Row::new(row, self.width()), inserted)
            })
        });
        self.ctx(r)
    }

    /// Reads up to `limit` rows with rowids in `from..=to` in insertion order (or
    /// reversed); `f` gets each rowid and row. With `keys_only` the rows have no values.
    /// Returns how many rows were read.
    ///
    /// # Errors
    /// File and lock errors, and errors from `f`.
    pub fn scan(
        &self,
        from: i64,
        to: i64,
        direction: Direction,
        limit: usize,
        keys_only: bool,
        mut f: impl FnMut(i64, &Row<'_>) -> Result<()>,
    ) -> Result<usize> {
        let sql = self
            .inner
            .sql
            .scan(direction == Direction::Reverse, keys_only, limit);
        let width = if keys_only { 0 } else { self.width() };
        let r = self.inner.conns.with(|c| {
            let mut st = c.prepare_cached(&sql)?;
            st.raw_bind_parameter(1, from)?;
            st.raw_bind_parameter(2, to)?;
            let mut rows = st.raw_query();
            let mut n = 0;
            while let Some(r) = rows.next()? {
                let rowid: i64 = r.get(width + 1)?;
                f(rowid, &Row::new(r, width))?;
                n += 1;
            }
            Ok(n)
        });
        self.ctx(r)
    }

    /// Reads up to `limit` rows in key order (SQLite's order: numbers, text, bytes)
    /// between two ends; `f` gets each row. Returns how many rows were read.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a NaN bound; file and lock errors; errors from `f`.
    pub fn range(
        &self,
        lower: RangeEnd<'_>,
        upper: RangeEnd<'_>,
        direction: Direction,
        limit: usize,
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<usize> {
        let (le, lk) = split_end(lower);
        let (ue, uk) = split_end(upper);
        let reverse = direction == Direction::Reverse;
        let sql = self.inner.sql.range(le, ue, reverse, limit);
        let (first, last) = if reverse { (uk, lk) } else { (lk, uk) };
        let r = self.inner.conns.with(|c| {
            let mut st = c.prepare_cached(&sql)?;
            if let Some(k) = first {
                st.raw_bind_parameter(1, k.checked()?)?;
            }
            if let Some(k) = last {
                st.raw_bind_parameter(2, k.checked()?)?;
            }
            let mut rows = st.raw_query();
            let mut n = 0;
            while let Some(r) = rows.next()? {
                f(&Row::new(r, self.width()))?;
                n += 1;
            }
            Ok(n)
        });
        self.ctx(r)
    }

    /// Runs a trusted query (see [`Query`]) in one read transaction; `f` gets each row.
    ///
    /// # Errors
    /// SQL errors from the fragments; file and lock errors; errors from `f`.
    pub fn query(&self, q: &Query, mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let sql = self
            .inner
            .sql
            .query(q.filter.as_deref(), q.order.as_deref());
        let r = self.inner.conns.read(|c| {
            with_fresh(c, &sql, |st| {
                bind_query(st, q)?;
                let mut rows = st.raw_query();
                while let Some(r) = rows.next()? {
                    f(&Row::new(r, self.width()))?;
                }
                Ok(())
            })
        });
        self.ctx(r)
    }

    /// Starts a trusted query (see [`Query`]) whose rows are read one at a time, in one
    /// read transaction held until the cursor is dropped.
    ///
    /// # Errors
    /// SQL errors from the fragments; parameter mismatches; file and lock errors.
    pub(crate) fn query_cursor(&self, q: &Query) -> Result<QueryCursor<'_>> {
        let sql = self
            .inner
            .sql
            .query(q.filter.as_deref(), q.order.as_deref());
        let conns = &self.inner.conns;
        let level = ReadLevel::begin(conns).map_err(|e| self.in_context(e))?;
        let pin = conns.pin();
        // SAFETY: the pin keeps this thread's connection open until it drops, and the
        // cursor drops the statement first.
        let mut stmt = conns
            .with(|c| unsafe { Stmt::prepare(c, &sql) })
            .map_err(|e| self.in_context(e))?;
        bind_query(&mut stmt.work(), q).map_err(|e| self.in_context(e))?;
        Ok(QueryCursor {
            stmt: Some(stmt),
            pin,
            level: Some(level),
            table: self,
        })
    }

    /// Deletes every row (the file keeps its size until [`Table::vacuum`]).
    ///
    /// # Errors
    /// As [`Table::set`].
    pub fn clear(&self) -> Result<()> {
        let r = self.inner.conns.write(|c| {
            let before = count::total_changes(c);
            c.execute_batch(&self.inner.sql.clear)?;
            self.wrote(c, before, Delta::Emptied);
            Ok(())
        });
        self.ctx(r)
    }

    /// Rebuilds the file to give free pages back to the file system.
    ///
    /// # Errors
    /// [`Error::Usage`] inside a transaction; as [`Table::set`].
    pub fn vacuum(&self) -> Result<()> {
        if self.inner.conns.depth() > 0 {
            return Err(Error::Usage(
                "VACUUM cannot run inside a transaction".into(),
            ));
        }
        let r = self.inner.conns.write(|c| Ok(c.execute_batch("VACUUM")?));
        self.ctx(r)
    }

    /// SQLite's `integrity_check`: an empty list when the file is healthy, else the problems.
    ///
    /// # Errors
    /// File and lock errors (a file too damaged to check is [`Error::Corrupt`]).
    pub fn check(&self) -> Result<Vec<String>> {
        let r = self.inner.conns.with(|c| {
            let mut st = c.prepare("PRAGMA integrity_check")?;
            let msgs = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(msgs.into_iter().filter(|m| m != "ok").collect())
        });
        self.ctx(r)
    }

    /// The largest rowid, if any row exists (the end of an insertion-order scan).
    ///
    /// # Errors
    /// File and lock errors.
    pub fn max_rowid(&self) -> Result<Option<i64>> {
        let r = self.inner.conns.with(|c| {
            let mut st = c.prepare_cached(&self.inner.sql.max_key)?;
            Ok(st.query_row([], |r| r.get::<_, Option<i64>>(0))?)
        });
        self.ctx(r)
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE`) on this thread, or joins the open
    /// one. Returns true if this call opened it; pass that to [`Table::end`].
    /// Prefer the guard of [`DiskStore::transaction`](crate::DiskStore::transaction).
    ///
    /// # Errors
    /// [`Error::Busy`] when the lock is not free within the timeout; [`Error::ReadOnly`].
    pub fn begin(&self) -> Result<bool> {
        let r = self.inner.conns.begin();
        self.ctx(r)
    }

    /// Ends a level opened by [`Table::begin`]: the opener commits (or rolls back when
    /// `commit` is false); a joined level only counts down.
    ///
    /// # Errors
    /// A failed `COMMIT` (the transaction is then rolled back); [`Error::Usage`] when no
    /// transaction is open.
    pub fn end(&self, opened: bool, commit: bool) -> Result<()> {
        let r = self.inner.conns.end(opened, commit);
        self.ctx(r)
    }

    /// Runs `f` all-or-nothing: in a write transaction opened around it, or, inside the one
    /// already open on this thread, in a savepoint, so that when `f` fails (or panics) its
    /// writes are undone and the enclosing transaction's are kept.
    ///
    /// # Errors
    /// Errors from `f` (first), then from opening and ending the level.
    pub fn atomic<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let level = Level::begin(&self.inner.conns).map_err(|e| self.in_context(e))?;
        let result = f();
        let ended = level.end(result.is_ok()).map_err(|e| self.in_context(e));
        let value = result?;
        ended?;
        Ok(value)
    }

    /// `e` as the variant a caller can act on, naming this table's file.
    pub(crate) fn in_context(&self, e: Error) -> Error {
        e.at(self.inner.conns.path(), self.inner.conns.timeout())
    }

    /// The file's connections as this table uses them.
    pub(crate) fn connections(&self) -> &Connections {
        &self.inner.conns
    }

    /// Options that open another table of the same file on the same connections.
    pub fn sibling_options(&self, spec: TableSpec) -> TableOptions {
        TableOptions {
            path: self.path().to_owned(),
            spec,
            read_only: self.is_read_only(),
            timeout: self.timeout(),
            pragmas: self.inner.pragmas.clone(),
            auto_migrate: true,
        }
    }

    /// How many transaction levels are open on this thread.
    pub fn depth(&self) -> u32 {
        self.inner.conns.depth()
    }

    /// Runs `f` inside one read transaction (or the write transaction already open on
    /// this thread), so that several reads see one snapshot.
    ///
    /// # Errors
    /// Errors from `f`; file and lock errors.
    pub fn read<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let r = self.inner.conns.read(|_| f());
        self.ctx(r)
    }

    /// Runs `f` with this thread's raw SQLite connection, for SQL the API does not cover.
    /// Writes made this way bypass the in-process writer lock unless made inside
    /// [`Table::begin`]/[`Table::end`].
    ///
    /// # Errors
    /// Errors from `f`; opening errors.
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let r = self.inner.conns.with(f);
        // Raw SQL may have undone anything (a `ROLLBACK TO`): cached counts start over.
        self.inner.conns.touch();
        self.ctx(r)
    }

    /// Runs one lookup `f` (statements that end within the call, no writes) on the file's
    /// writer connection when its lock is free, else on this thread's connection (see
    /// `Connections::with_lookup`): a thread that writes and reads keeps one connection.
    pub(crate) fn with_lookup<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let r = self.inner.conns.with_lookup(f);
        self.ctx(r)
    }

    /// Runs one write with this thread's connection: inside this thread's open
    /// transaction, or else autocommitted under the in-process writer lock (so `f` should
    /// make a single statement, which SQLite then applies atomically).
    pub(crate) fn write_with<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let r = self.inner.conns.write(f);
        self.ctx(r)
    }

    /// How many checkpoints the file's background checkpointer has run in this process
    /// (checkpoints moved off the write path; for diagnostics and benchmarks).
    pub fn background_checkpoints(&self) -> u64 {
        self.inner.conns.background_checkpoints()
    }

    /// How many autocommitted writes of this process wait for the file's writer lock,
    /// queued for its holder to apply in one shared commit (group commit).
    pub fn pending_writes(&self) -> usize {
        self.inner.conns.pending_writes()
    }

    /// Closes this thread's connection; the next call reopens it.
    ///
    /// # Errors
    /// [`Error::Usage`] inside a transaction.
    pub fn close(&self) -> Result<()> {
        self.inner.conns.close()
    }

    /// Closes the connections of every thread to this file: each is replaced at its
    /// thread's next call made outside a transaction (a transaction in progress keeps its
    /// connection to its end, so nothing it wrote is lost), this thread's one at once if
    /// it is idle. Returns how many connections, of all threads, it closed.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for backends that close remotely.
    pub fn close_all(&self) -> Result<u64> {
        Ok(self.inner.conns.close_all())
    }
}
