//! The typed Rust API: [`DiskRead`] (read-only) and [`DiskStore`] (read-write) over a
//! [`Table`], with their [`Builder`] and iterators.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::fmt::Display;
use std::marker::PhantomData;
use std::ops::{Bound, Deref, RangeBounds};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::key::{AsKey, Key, KeyRef};
use crate::pager::RowidPager;
use crate::pragma::DEFAULT_TIMEOUT;
use crate::record::{Record, Row};
use crate::schema::TableSpec;
use crate::table::{Direction, Query, QueryCursor, RangeEnd, Table, TableOptions};
use crate::transaction::{ReadTransaction, WriteTransaction};
use crate::value::{Cell, ColumnType, Value};

/// The table a store uses unless the record or the builder names one: the original
/// Python library's default (`BaseConfig`).
pub const DEFAULT_TABLE: &str = "DiskStore";

/// Rows per page of the iterators.
pub(crate) const PAGE: usize = 256;

/// Options for opening a store; from [`DiskStore::builder`] or [`DiskRead::builder`].
#[must_use]
pub struct Builder<K, V> {
    path: PathBuf,
    table: Option<String>,
    key_type: Option<ColumnType>,
    timeout: Duration,
    pragmas: Vec<(String, String)>,
    auto_migrate: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: Key, V: Record> Builder<K, V> {
    fn new(path: PathBuf) -> Self {
        Builder {
            path,
            table: None,
            key_type: None,
            timeout: DEFAULT_TIMEOUT,
            pragmas: Vec::new(),
            auto_migrate: true,
            _types: PhantomData,
        }
    }

    /// The table name. Default: the record's name (`#[derive(Record)]` structs) or `"DiskStore"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = Some(name.into());
        self
    }

    /// The declared type of the key column of a new table. Default: the key type's own
    /// (`INTEGER` for `i64`, `REAL`, `TEXT`, `BLOB`).
    pub fn key_type(mut self, t: ColumnType) -> Self {
        self.key_type = Some(t);
        self
    }

    /// How long a call waits for a lock before [`Error::Busy`]. Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets a pragma on every connection, over the defaults
    /// ([`DEFAULT_PRAGMAS`](crate::DEFAULT_PRAGMAS)). Default: none.
    pub fn pragma(mut self, name: &str, value: impl Display) -> Self {
        self.pragmas.push((name.to_owned(), value.to_string()));
        self
    }

    /// Whether opening adds columns the record has and the table lacks. Default: true.
    pub fn auto_migrate(mut self, on: bool) -> Self {
        self.auto_migrate = on;
        self
    }

    fn options(self, read_only: bool) -> TableOptions {
        let spec = TableSpec {
            name: self
                .table
                .unwrap_or_else(|| V::TABLE.unwrap_or(DEFAULT_TABLE).to_owned()),
            key_type: self.key_type.unwrap_or(K::COLUMN_TYPE),
            columns: V::columns(),
        };
        TableOptions {
            path: self.path,
            spec,
            read_only,
            timeout: self.timeout,
            pragmas: self.pragmas,
            auto_migrate: self.auto_migrate,
        }
    }

    /// Opens read-write, creating the file and table if needed.
    ///
    /// # Errors
    /// See [`Table::open`].
    pub fn open(self) -> Result<DiskStore<K, V>> {
        refuse_url(&self.path, false)?;
        Ok(DiskStore {
            read: DiskRead::from_table(Table::open(self.options(false))?),
        })
    }

    /// Opens read-only; the file and table must exist.
    ///
    /// # Errors
    /// See [`Table::open`].
    pub fn open_read_only(self) -> Result<DiskRead<K, V>> {
        refuse_url(&self.path, true)?;
        Ok(DiskRead::from_table(Table::open(self.options(true))?))
    }

    /// Opens read-write on the backend the location names: a `postgresql://` URL
    /// (feature `postgres`; the table and key type apply, pragmas are refused, the
    /// URL's `connect_timeout`/`options` replace the timeout) or a file path (SQLite).
    ///
    /// # Errors
    /// As [`Builder::open`]; [`Error::NotSupported`] for a URL whose backend is not
    /// compiled in or has no store (Redis); server errors.
    pub fn open_url(self) -> Result<crate::remote::any::AnyStore<K, V>> {
        use crate::remote::{Backend, any::AnyStore};
        let location = self.path.to_str().unwrap_or_default();
        match Backend::of(location) {
            Backend::Sqlite => Ok(AnyStore::Sqlite(self.open()?)),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let (url, spec) = self.server_spec(false)?;
                let store = crate::remote::postgres::PgStore::open_spec(&url, spec)?;
                Ok(AnyStore::Postgres(Box::new(store)))
            }
            _ => Err(crate::remote::any::unsupported_url(location)),
        }
    }

    /// Opens read-only on the backend the location names (see [`Builder::open_url`]):
    /// nothing is created or migrated; on PostgreSQL the server refuses writes on the
    /// store's sessions.
    ///
    /// # Errors
    /// As [`Builder::open_read_only`] ([`Error::Schema`] when the table or a column is
    /// missing); [`Error::NotSupported`] as [`Builder::open_url`]; server errors.
    pub fn open_read_only_url(self) -> Result<crate::remote::any::AnyRead<K, V>> {
        use crate::remote::{Backend, any::AnyRead};
        let location = self.path.to_str().unwrap_or_default();
        match Backend::of(location) {
            Backend::Sqlite => Ok(AnyRead::Sqlite(self.open_read_only()?)),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let (url, spec) = self.server_spec(true)?;
                let store = crate::remote::postgres::PgStore::open_read_only_spec(&url, spec)?;
                Ok(AnyRead::Postgres(Box::new(store)))
            }
            _ => Err(crate::remote::any::unsupported_url(location)),
        }
    }

    /// The URL and table of a server store; SQLite pragmas are refused there.
    #[cfg(feature = "postgres")]
    fn server_spec(self, read_only: bool) -> Result<(String, TableSpec)> {
        if let Some((name, _)) = self.pragmas.first() {
            return Err(Error::NotSupported {
                backend: "postgres",
                operation: format!("the SQLite pragma {name}"),
            });
        }
        let url = self.path.to_str().unwrap_or_default().to_owned();
        Ok((url, self.options(read_only).spec))
    }
}

/// [`Error::Usage`] for a server URL given where a file path is expected (it would
/// otherwise name a file called `postgresql:`); the message names the entry point that
/// opens URLs.
fn refuse_url(path: &Path, read_only: bool) -> Result<()> {
    let location = path.to_str().unwrap_or_default();
    if crate::remote::Backend::of(location) == crate::remote::Backend::Sqlite {
        return Ok(());
    }
    let instead = if read_only {
        "DiskRead::open_url (or Builder::open_read_only_url)"
    } else {
        "DiskStore::open_url (or Builder::open_url), or read-only with DiskRead::open_url"
    };
    Err(Error::Usage(format!(
        "{} is a server URL: open it with {instead}",
        crate::remote::redact_url(location)
    )))
}

/// A read-only, typed, persistent map: keys `K` (see [`Key`]), values `V` (see [`Record`]).
///
/// Opened with `SQLITE_OPEN_READONLY`: it never creates or changes a file. A cheap handle:
/// clone it and use it from any number of threads.
pub struct DiskRead<K, V> {
    table: Table,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for DiskRead<K, V> {
    fn clone(&self) -> Self {
        DiskRead {
            table: self.table.clone(),
            _types: PhantomData,
        }
    }
}

fn decode_key<K: Key>(row: &Row<'_>) -> Result<K> {
    K::from_value(row.key()?).map_err(|message| Error::Decode {
        column: "_key".into(),
        message,
    })
}

fn decode_item<K: Key, V: Record>(row: &Row<'_>) -> Result<(K, V)> {
    Ok((decode_key(row)?, V::read(row)?))
}

fn key_of(v: &Value) -> KeyRef<'_> {
    match v {
        Value::Integer(i) => KeyRef::Int(*i),
        Value::Real(f) => KeyRef::Float(*f),
        Value::Text(s) => KeyRef::Text(s),
        Value::Blob(b) => KeyRef::Blob(b),
        Value::Null => KeyRef::Blob(&[]),
    }
}

impl<K: Key, V: Record> DiskRead<K, V> {
    fn from_table(table: Table) -> Self {
        DiskRead {
            table,
            _types: PhantomData,
        }
    }

    /// Opens `path` read-only with the defaults.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the file does not exist; see [`Table::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open_read_only()
    }

    /// A builder for the options; finish with [`Builder::open_read_only`].
    pub fn builder(path: impl AsRef<Path>) -> Builder<K, V> {
        Builder::new(path.as_ref().to_owned())
    }

    /// Opens a store read-only by location, on the backend it names: a `postgresql://`
    /// URL (feature `postgres`) or a file path (SQLite); see
    /// [`AnyRead`](crate::AnyRead). [`DiskRead::open`] takes file paths only.
    ///
    /// # Errors
    /// See [`Builder::open_read_only_url`].
    pub fn open_url(location: &str) -> Result<crate::remote::any::AnyRead<K, V>> {
        Self::builder(location).open_read_only_url()
    }

    /// The engine underneath, for the lower-level, type-erased API.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        self.table.path()
    }

    /// Closes the connections of every thread to the file (see [`Table::close_all`]): a
    /// transaction in progress keeps its connection to its end. Returns how many it closed.
    ///
    /// # Errors
    /// None today.
    pub fn close_all(&self) -> Result<u64> {
        self.table.close_all()
    }

    /// Begins a read transaction: the reads made through it see one snapshot; see
    /// [`ReadTransaction`].
    ///
    /// # Errors
    /// File and lock errors.
    pub fn read(&self) -> Result<ReadTransaction<'_, K, V>> {
        ReadTransaction::begin(self)
    }

    /// The value of `key`, or `None`.
    ///
    /// # Errors
    /// [`Error::Decode`] if the stored value does not fit `V`; file and lock errors.
    pub fn get<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        self.table.get(key.as_key(), V::read)
    }

    /// The values of several keys, read in one transaction.
    ///
    /// # Errors
    /// As [`DiskRead::get`].
    pub fn get_many<Q: AsKey>(&self, keys: &[Q]) -> Result<Vec<Option<V>>> {
        let refs: Vec<KeyRef<'_>> = keys.iter().map(AsKey::as_key).collect();
        let mut out = Vec::with_capacity(keys.len());
        self.table.get_many(&refs, |_, row| {
            out.push(row.map(V::read).transpose()?);
            Ok(())
        })?;
        Ok(out)
    }

    /// True if `key` is stored.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn contains_key<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.table.contains(key.as_key())
    }

    /// The number of entries.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn len(&self) -> Result<u64> {
        self.table.len()
    }

    /// True if there are no entries.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn is_empty(&self) -> Result<bool> {
        self.table.is_empty()
    }

    /// All entries in insertion order (`.rev()` for newest first). Reads in pages of 256
    /// rows, each a consistent snapshot. A forward iteration ends at the last row present
    /// when it reads its first page: rows added later are not seen; other writes made
    /// meanwhile may or may not be.
    pub fn iter(&self) -> Iter<(K, V)> {
        Iter::new(self.table.clone(), decode_item::<K, V>, false)
    }

    /// All keys in insertion order (`.rev()` for newest first).
    pub fn keys(&self) -> Iter<K> {
        Iter::new(self.table.clone(), decode_key::<K>, true)
    }

    /// All values in insertion order (`.rev()` for newest first).
    pub fn values(&self) -> Iter<V> {
        Iter::new(self.table.clone(), V::read, false)
    }

    /// Entries whose keys lie in `range`, in key order (SQLite's: numbers, then text, then
    /// bytes); `.rev()` for descending.
    pub fn range<Q: AsKey, R: RangeBounds<Q>>(&self, range: R) -> RangeIter<K, V> {
        let own = |b: Bound<&Q>| match b {
            Bound::Included(k) => Bound::Included(k.as_key().checked().map(|v| v.to_owned())),
            Bound::Excluded(k) => Bound::Excluded(k.as_key().checked().map(|v| v.to_owned())),
            Bound::Unbounded => Bound::Unbounded,
        };
        RangeIter {
            table: self.table.clone(),
            lower: own(range.start_bound()),
            upper: own(range.end_bound()),
            direction: Direction::Forward,
            buf: VecDeque::new(),
            done: false,
            _types: PhantomData,
        }
    }

    /// Runs a trusted SQL query (see [`Query`]); the iterator reads the matching entries
    /// one at a time, all from one snapshot: a read transaction held until it runs out or
    /// is dropped (inside a write transaction, that transaction's view). Meanwhile this
    /// thread cannot write to the file (collect first to write in the loop).
    ///
    /// ```
    /// # fn main() -> diskstore::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use diskstore::{DiskStore, Query, params};
    /// let store: DiskStore<String, i64> = DiskStore::open(dir.path().join("q.db"))?;
    /// store.extend([("a", 1), ("b", 5), ("c", 9)])?;
    /// let q = Query::new().filter("value > ?", params![2]).order("value DESC");
    /// let big: Vec<(String, i64)> = store.query(&q)?.collect::<diskstore::Result<_>>()?;
    /// assert_eq!(big, [("c".to_string(), 9), ("b".to_string(), 5)]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// SQL errors in the fragments, parameters that do not match them; file and lock
    /// errors. Each item: decode and read errors.
    pub fn query(&self, q: &Query) -> Result<QueryIter<'_, K, V>> {
        Ok(QueryIter {
            cursor: self.table.query_cursor(q)?,
            _types: PhantomData,
        })
    }

    /// SQLite's integrity check: empty when the file is healthy.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the file is too damaged to check.
    pub fn check(&self) -> Result<Vec<String>> {
        self.table.check()
    }
}

/// A read-write, typed, persistent map: keys `K` (see [`Key`]), values `V` (see [`Record`]).
///
/// Dereferences to [`DiskRead`] for the read methods. A cheap handle: clone it and use it
/// from many threads; other processes may open the same file at the same time.
pub struct DiskStore<K, V> {
    read: DiskRead<K, V>,
}

impl<K, V> Clone for DiskStore<K, V> {
    fn clone(&self) -> Self {
        DiskStore {
            read: self.read.clone(),
        }
    }
}

impl<K, V> Deref for DiskStore<K, V> {
    type Target = DiskRead<K, V>;
    fn deref(&self) -> &DiskRead<K, V> {
        &self.read
    }
}

fn cells<V: Record>(value: &V) -> Result<Vec<Cell<'_>>> {
    let mut out = Vec::with_capacity(4);
    value.write(&mut out)?;
    Ok(out)
}

impl<K: Key, V: Record> DiskStore<K, V> {
    /// Opens `path` read-write with the defaults, creating file and table if needed.
    ///
    /// # Errors
    /// See [`Table::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// A builder for the options; finish with [`Builder::open`].
    pub fn builder(path: impl AsRef<Path>) -> Builder<K, V> {
        Builder::new(path.as_ref().to_owned())
    }

    /// Opens a store by location, on the backend it names: a `postgresql://` URL
    /// (feature `postgres`) or a file path (SQLite); see [`AnyStore`](crate::AnyStore).
    /// [`DiskStore::open`] takes file paths only.
    ///
    /// # Errors
    /// See [`Builder::open_url`].
    pub fn open_url(location: &str) -> Result<crate::remote::any::AnyStore<K, V>> {
        Self::builder(location).open_url()
    }

    /// A read-only handle on the same table (the original's `get_readonly_instance`).
    ///
    /// # Errors
    /// See [`Table::open`].
    pub fn read_only(&self) -> Result<DiskRead<K, V>> {
        let t = self.table();
        let mut options = TableOptions::new(t.path(), t.spec().clone());
        options.read_only = true;
        options.timeout = t.timeout();
        Ok(DiskRead::from_table(Table::open(options)?))
    }

    /// Stores `value` under `key`, replacing any old value; a replaced key keeps its place
    /// in insertion order.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::InvalidValue`], [`Error::TooBig`], and write errors
    /// ([`Error::ReadOnly`], [`Error::DiskFull`], [`Error::Busy`]).
    pub fn insert<Q: AsKey + ?Sized>(&self, key: &Q, value: &V) -> Result<()>
    where
        K: Borrow<Q>,
    {
        self.table().set(key.as_key(), &cells(value)?)
    }

    /// Stores `value` only if `key` is absent; returns whether it was stored.
    ///
    /// # Errors
    /// As [`DiskStore::insert`].
    pub fn add<Q: AsKey + ?Sized>(&self, key: &Q, value: &V) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.table().insert_new(key.as_key(), &cells(value)?)
    }

    /// Stores `value` under the next free integer key and returns the key (stores with
    /// `INTEGER` keys only; the original's `add(None, value)`).
    ///
    /// # Errors
    /// [`Error::Usage`] for non-integer keys; as [`DiskStore::insert`].
    pub fn push(&self, value: &V) -> Result<K> {
        let key = self.table().insert_auto(&cells(value)?)?;
        K::from_value(crate::value::ValueRef::Integer(key)).map_err(|message| Error::Decode {
            column: "_key".into(),
            message,
        })
    }

    /// Removes `key` and returns its value.
    ///
    /// # Errors
    /// As [`DiskStore::insert`]; [`Error::Decode`] (the entry is removed all the same).
    pub fn remove<Q: AsKey + ?Sized>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        self.table().remove(key.as_key(), V::read)
    }

    /// Removes and returns the newest entry (the original's `popitem`).
    ///
    /// # Errors
    /// As [`DiskStore::remove`].
    pub fn pop_last(&self) -> Result<Option<(K, V)>> {
        self.table().pop(Direction::Reverse, decode_item)
    }

    /// Removes and returns the oldest entry (a queue's pop).
    ///
    /// # Errors
    /// As [`DiskStore::remove`].
    pub fn pop_first(&self) -> Result<Option<(K, V)>> {
        self.table().pop(Direction::Forward, decode_item)
    }

    /// The value of `key`, storing `default` first if the key is absent, atomically
    /// (the original's `setdefault`).
    ///
    /// # Errors
    /// As [`DiskStore::insert`].
    pub fn get_or_insert<Q: AsKey + ?Sized>(&self, key: &Q, default: &V) -> Result<V>
    where
        K: Borrow<Q>,
    {
        self.table()
            .get_or_insert(key.as_key(), &cells(default)?, |row, _| V::read(row))
    }

    /// Stores many entries in one transaction (all or nothing; inside an open transaction,
    /// a savepoint); returns how many.
    ///
    /// # Errors
    /// As [`DiskStore::insert`]; on error nothing of the batch is kept.
    pub fn extend<Q, W, I>(&self, items: I) -> Result<usize>
    where
        Q: AsKey,
        W: Borrow<V>,
        I: IntoIterator<Item = (Q, W)>,
    {
        // Buffered so that `Table::set_many` can write many rows per statement.
        const BUFFER: usize = 1024;
        self.table().atomic(|| {
            let mut n = 0;
            let mut items = items.into_iter();
            let mut buf: Vec<(Q, W)> = Vec::with_capacity(BUFFER);
            loop {
                buf.extend(items.by_ref().take(BUFFER));
                if buf.is_empty() {
                    return Ok(n);
                }
                let rows = buf
                    .iter()
                    .map(|(_, v)| cells(v.borrow()))
                    .collect::<Result<Vec<_>>>()?;
                // Runs of ordinary rows go to `set_many`; a large blob takes `set`'s
                // incremental blob I/O.
                let mut start = 0;
                for i in 0..=buf.len() {
                    let large = rows.get(i).is_some_and(|r| is_large(r));
                    if i < buf.len() && !large {
                        continue;
                    }
                    if start < i {
                        n += self.table().set_many(
                            buf[start..i]
                                .iter()
                                .zip(&rows[start..i])
                                .map(|((k, _), c)| (Some(k.as_key()), c.as_slice())),
                        )?;
                    }
                    if large {
                        self.table().set(buf[i].0.as_key(), &rows[i])?;
                        n += 1;
                    }
                    start = i + 1;
                }
                drop(rows);
                buf.clear();
            }
        })
    }

    /// Removes every entry (see [`DiskStore::vacuum`] to shrink the file).
    ///
    /// # Errors
    /// Write errors.
    pub fn clear(&self) -> Result<()> {
        self.table().clear()
    }

    /// Rebuilds the file so that it gives free space back.
    ///
    /// # Errors
    /// [`Error::Usage`] inside a transaction; write errors.
    pub fn vacuum(&self) -> Result<()> {
        self.table().vacuum()
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`) on this thread; see
    /// [`WriteTransaction`].
    ///
    /// # Errors
    /// [`Error::Busy`] if another writer holds the lock past the timeout;
    /// [`Error::Usage`] if this thread already has one open on this file (nest work in it
    /// with [`WriteTransaction::savepoint`]).
    pub fn begin(&self) -> Result<WriteTransaction<'_, K, V>> {
        WriteTransaction::begin(self)
    }

    /// Another table of the same file, opened with this store's settings so that it shares
    /// this thread's connection and transactions.
    pub(crate) fn sibling<K2: Key, V2: Record>(&self, name: &str) -> Result<DiskStore<K2, V2>> {
        let spec = TableSpec {
            name: name.to_owned(),
            key_type: K2::COLUMN_TYPE,
            columns: V2::columns(),
        };
        let table = Table::open(self.table().sibling_options(spec))?;
        Ok(DiskStore {
            read: DiskRead::from_table(table),
        })
    }
}

/// True if the last cell is a blob that [`Table::set`] writes by incremental blob I/O.
fn is_large(cells: &[Cell<'_>]) -> bool {
    matches!(cells.last().map(Cell::as_ref), Some(crate::ValueRef::Blob(b)) if b.len() >= crate::LARGE_VALUE)
}

/// Where an [`Iter`] reads its pages from: a store's table or a cache's live entries.
pub(crate) trait PageSource: Send + Sync {
    /// Reads up to [`PAGE`] rows with rowids in `from..=to` in the given order and hands
    /// each rowid and row to `f`; returns how many rows it read.
    fn page(
        &self,
        from: i64,
        to: i64,
        direction: Direction,
        f: &mut dyn FnMut(i64, &Row<'_>) -> Result<()>,
    ) -> Result<usize>;

    /// The largest rowid now, if any row exists: where a forward iteration that starts
    /// now ends, so that rows added meanwhile are not visited (a loop that adds a row for
    /// each row it reads would otherwise never end).
    fn last_rowid(&self) -> Result<Option<i64>>;
}

/// The rows of a store's table (keys only, or whole rows).
struct TablePages {
    table: Table,
    keys_only: bool,
}

impl PageSource for TablePages {
    fn page(
        &self,
        from: i64,
        to: i64,
        direction: Direction,
        f: &mut dyn FnMut(i64, &Row<'_>) -> Result<()>,
    ) -> Result<usize> {
        self.table
            .scan(from, to, direction, PAGE, self.keys_only, f)
    }

    fn last_rowid(&self) -> Result<Option<i64>> {
        self.table.max_rowid()
    }
}

/// An iterator in insertion order, read in pages of 256 rows; from [`DiskRead::iter`],
/// [`DiskRead::keys`], [`DiskRead::values`] and the cache's `iter` and `keys`.
pub struct Iter<T> {
    source: Box<dyn PageSource>,
    decode: fn(&Row<'_>) -> Result<T>,
    pager: RowidPager,
    buf: VecDeque<(i64, T)>,
}

impl<T> Iter<T> {
    fn new(table: Table, decode: fn(&Row<'_>) -> Result<T>, keys_only: bool) -> Self {
        Iter::over(TablePages { table, keys_only }, decode)
    }

    /// An iterator over the pages of `source`.
    pub(crate) fn over(
        source: impl PageSource + 'static,
        decode: fn(&Row<'_>) -> Result<T>,
    ) -> Self {
        Iter {
            source: Box::new(source),
            decode,
            pager: RowidPager::new(Direction::Forward),
            buf: VecDeque::new(),
        }
    }

    /// The entries not yet returned, in the opposite order.
    #[allow(clippy::should_implement_trait)]
    #[must_use]
    pub fn rev(mut self) -> Self {
        self.pager
            .reverse(self.buf.front().map(|(rowid, _)| *rowid));
        self.buf.clear();
        self
    }

    fn fill(&mut self) -> Result<()> {
        let source = &self.source;
        let Some((from, to, direction)) = self.pager.next_range(|| source.last_rowid())? else {
            return Ok(());
        };
        let decode = self.decode;
        let buf = &mut self.buf;
        let n = self.source.page(from, to, direction, &mut |rowid, row| {
            buf.push_back((rowid, decode(row)?));
            Ok(())
        })?;
        let last = self.buf.back().map(|(r, _)| *r);
        self.pager.advance(n, PAGE, last);
        Ok(())
    }
}

impl<T> Iterator for Iter<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.buf.is_empty()
            && !self.pager.is_done()
            && let Err(e) = self.fill()
        {
            self.pager.finish();
            self.buf.clear();
            return Some(Err(e));
        }
        self.buf.pop_front().map(|(_, item)| Ok(item))
    }
}

/// The entries a [`Query`] matches, read one at a time; from [`DiskRead::query`]. It
/// belongs to the thread that made it.
pub struct QueryIter<'s, K, V> {
    cursor: QueryCursor<'s>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for QueryIter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryIter").finish_non_exhaustive()
    }
}

impl<K: Key, V: Record> Iterator for QueryIter<'_, K, V> {
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Result<(K, V)>> {
        self.cursor.next_row(decode_item).transpose()
    }
}

/// An iterator over a key range in key order, in pages; from [`DiskRead::range`].
pub struct RangeIter<K, V> {
    table: Table,
    lower: Bound<Result<Value>>,
    upper: Bound<Result<Value>>,
    direction: Direction,
    buf: VecDeque<(Value, (K, V))>,
    done: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

fn end_of(b: &Bound<Result<Value>>) -> Result<RangeEnd<'_>> {
    Ok(match b {
        Bound::Unbounded => RangeEnd::Unbounded,
        Bound::Included(Ok(v)) => RangeEnd::Included(key_of(v)),
        Bound::Excluded(Ok(v)) => RangeEnd::Excluded(key_of(v)),
        Bound::Included(Err(e)) | Bound::Excluded(Err(e)) => {
            return Err(Error::InvalidKey(e.to_string()));
        }
    })
}

impl<K: Key, V: Record> RangeIter<K, V> {
    /// The entries not yet returned, in the opposite key order.
    #[allow(clippy::should_implement_trait)]
    #[must_use]
    pub fn rev(mut self) -> Self {
        if let Some((key, _)) = self.buf.pop_front() {
            match self.direction {
                Direction::Forward => self.lower = Bound::Included(Ok(key)),
                Direction::Reverse => self.upper = Bound::Included(Ok(key)),
            }
            self.done = false;
        }
        self.buf.clear();
        self.direction = match self.direction {
            Direction::Forward => Direction::Reverse,
            Direction::Reverse => Direction::Forward,
        };
        self
    }

    fn fill(&mut self) -> Result<()> {
        let buf = &mut self.buf;
        let n = self.table.range(
            end_of(&self.lower)?,
            end_of(&self.upper)?,
            self.direction,
            PAGE,
            |row| {
                buf.push_back((row.key()?.to_owned(), decode_item(row)?));
                Ok(())
            },
        )?;
        if let Some((last, _)) = self.buf.back() {
            let next = Bound::Excluded(Ok(last.clone()));
            match self.direction {
                Direction::Forward => self.lower = next,
                Direction::Reverse => self.upper = next,
            }
        }
        if n < PAGE {
            self.done = true;
        }
        Ok(())
    }
}

impl<K: Key, V: Record> Iterator for RangeIter<K, V> {
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty()
            && !self.done
            && let Err(e) = self.fill()
        {
            self.done = true;
            self.buf.clear();
            return Some(Err(e));
        }
        self.buf.pop_front().map(|(_, item)| Ok(item))
    }
}
