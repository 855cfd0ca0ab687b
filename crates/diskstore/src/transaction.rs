//! Transactions as values: [`WriteTransaction`], [`Savepoint`] and [`ReadTransaction`].
//!
//! A transaction owns its level of the thread's connection to the file and, for writes,
//! the file's writer lock: committing consumes it, and dropping it unfinished rolls back,
//! on an early return, a `?` or a panic alike, so no lock outlives its owner.

use std::marker::PhantomData;
use std::ops::Deref;

use crate::connection::{Level, ReadLevel};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::record::Record;
use crate::store::{DiskRead, DiskStore};
use crate::table::Table;

/// A write transaction (`BEGIN IMMEDIATE`), from [`DiskStore::begin`].
///
/// It dereferences to the store: `tx.insert(..)`, `tx.get(..)` and every other method run
/// inside it and see its writes. [`WriteTransaction::table`] opens another table of the
/// same file inside it, so that writes to several tables are atomic together.
/// [`WriteTransaction::commit`] makes them durable; dropping the transaction without
/// committing rolls everything back. Nested work goes in a [`Savepoint`].
///
/// A transaction belongs to the thread that began it (it is neither `Send` nor `Sync`);
/// while it is open, every call the same thread makes on the file joins it.
///
/// ```
/// # fn main() -> diskstore::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use diskstore::DiskStore;
/// let store: DiskStore<String, i64> = DiskStore::open(dir.path().join("t.db"))?;
/// let tx = store.begin()?;
/// tx.insert("a", &1)?;
/// let log = tx.table::<i64, String>("log")?;
/// log.push(&"a was set".to_string())?;
/// tx.commit()?; // both tables, or neither
/// assert_eq!(store.get("a")?, Some(1));
/// # Ok(())
/// # }
/// ```
#[must_use = "a transaction rolls back when dropped; call commit()"]
pub struct WriteTransaction<'s, K, V> {
    store: &'s DiskStore<K, V>,
    level: Level<'s>,
    _not_send: PhantomData<*const ()>,
}

impl<'s, K: Key, V: Record> WriteTransaction<'s, K, V> {
    pub(crate) fn begin(store: &'s DiskStore<K, V>) -> Result<Self> {
        let table = store.table();
        if table.depth() > 0 {
            return Err(Error::Usage(
                "a write transaction is already open on this thread for this file; nest \
                 work in it with savepoint()"
                    .into(),
            ));
        }
        Self::level(store)
    }

    /// Opens a level: the transaction itself, or a savepoint inside the open one.
    fn level(store: &'s DiskStore<K, V>) -> Result<Self> {
        let table = store.table();
        let level = Level::begin(table.connections()).map_err(|e| table.in_context(e))?;
        Ok(WriteTransaction {
            store,
            level,
            _not_send: PhantomData,
        })
    }

    /// Another table of the same file, as a store whose every call runs inside this
    /// transaction (while it is open), created or migrated here if needed.
    ///
    /// # Errors
    /// As [`DiskStore::open`].
    pub fn table<K2: Key, V2: Record>(&self, name: &str) -> Result<DiskStore<K2, V2>> {
        self.store.sibling(name)
    }

    /// Opens a savepoint: a nested level whose writes can be rolled back alone.
    ///
    /// # Errors
    /// File and lock errors.
    pub fn savepoint(&self) -> Result<Savepoint<'_, K, V>> {
        WriteTransaction::level(self.store)
    }

    /// Commits: every write made in the transaction becomes durable at once (for a
    /// savepoint: its writes become part of the enclosing transaction).
    ///
    /// # Errors
    /// A failed `COMMIT` ([`Error::Busy`], [`Error::DiskFull`], …) or a transaction SQLite
    /// already rolled back after an error; either way nothing of it is kept.
    pub fn commit(self) -> Result<()> {
        let table = self.store.table();
        self.level.end(true).map_err(|e| table.in_context(e))
    }

    /// Rolls back now instead of on drop (for a savepoint: undoes its writes alone).
    ///
    /// # Errors
    /// A failed `ROLLBACK` (the connection is then closed, which rolls back).
    pub fn rollback(self) -> Result<()> {
        let table = self.store.table();
        self.level.end(false).map_err(|e| table.in_context(e))
    }
}

impl<K, V> Deref for WriteTransaction<'_, K, V> {
    type Target = DiskStore<K, V>;
    fn deref(&self) -> &DiskStore<K, V> {
        self.store
    }
}

/// A nested level of a [`WriteTransaction`] (`SAVEPOINT`), from
/// [`WriteTransaction::savepoint`]: the same type, whose `commit` keeps its writes in the
/// enclosing transaction and whose drop (or `rollback`) undoes them alone.
pub type Savepoint<'t, K, V> = WriteTransaction<'t, K, V>;

/// A level of this thread's write transaction on a table, from
/// [`DiskCache::transaction`](crate::DiskCache::transaction): it begins the transaction,
/// or, inside one already open on this thread, a savepoint. [`Transaction::commit`] keeps
/// its writes; dropping it without committing (an early return, `?`, a panic) undoes them.
#[must_use = "a transaction rolls back when dropped; call commit()"]
pub struct Transaction<'a> {
    table: &'a Table,
    level: Level<'a>,
    outermost: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> Transaction<'a> {
    pub(crate) fn begin(table: &'a Table) -> Result<Transaction<'a>> {
        let outermost = table.depth() == 0;
        let level = Level::begin(table.connections()).map_err(|e| table.in_context(e))?;
        Ok(Transaction {
            table,
            level,
            outermost,
            _not_send: PhantomData,
        })
    }

    /// True if this level began the transaction (false for a savepoint inside one).
    pub fn is_outermost(&self) -> bool {
        self.outermost
    }

    /// Commits (or, nested, keeps the savepoint's writes in the enclosing transaction).
    ///
    /// # Errors
    /// A failed `COMMIT` ([`Error::Busy`], [`Error::DiskFull`], …); nothing is kept.
    pub fn commit(self) -> Result<()> {
        self.level.end(true).map_err(|e| self.table.in_context(e))
    }

    /// Rolls back now instead of on drop.
    ///
    /// # Errors
    /// A failed `ROLLBACK`.
    pub fn rollback(self) -> Result<()> {
        self.level.end(false).map_err(|e| self.table.in_context(e))
    }
}

/// A read transaction, from [`DiskRead::read`]: every read through it (and every other
/// read the same thread makes on the file meanwhile) sees one snapshot, taken at its first
/// read. Writes on the thread fail until it ends; it ends when dropped.
///
/// ```
/// # fn main() -> diskstore::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use diskstore::DiskStore;
/// let store: DiskStore<String, i64> = DiskStore::open(dir.path().join("t.db"))?;
/// store.insert("a", &1)?;
/// let snap = store.read()?;
/// assert_eq!((snap.get("a")?, snap.len()?), (Some(1), 1));
/// # Ok(())
/// # }
/// ```
pub struct ReadTransaction<'s, K, V> {
    store: &'s DiskRead<K, V>,
    _level: ReadLevel<'s>,
    _not_send: PhantomData<*const ()>,
}

impl<'s, K: Key, V: Record> ReadTransaction<'s, K, V> {
    pub(crate) fn begin(store: &'s DiskRead<K, V>) -> Result<Self> {
        let table = store.table();
        let level = ReadLevel::begin(table.connections()).map_err(|e| table.in_context(e))?;
        Ok(ReadTransaction {
            store,
            _level: level,
            _not_send: PhantomData,
        })
    }
}

impl<K, V> Deref for ReadTransaction<'_, K, V> {
    type Target = DiskRead<K, V>;
    fn deref(&self) -> &DiskRead<K, V> {
        self.store
    }
}
