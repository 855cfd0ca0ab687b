//! The write-transaction guard.

use std::marker::PhantomData;

use crate::error::Result;
use crate::table::Table;

/// A write transaction (`BEGIN IMMEDIATE`) on the current thread, from
/// [`DiskStore::transaction`](crate::DiskStore::transaction).
///
/// Every operation on the same store from the same thread runs inside it and sees its
/// writes. [`Transaction::commit`] makes them durable; dropping the guard without
/// committing (an early return, `?`, a panic) rolls them back. A transaction started while
/// another is open on this thread joins it: its commit and rollback only close its level,
/// and the outermost guard decides.
#[must_use = "a transaction rolls back when dropped; call commit()"]
pub struct Transaction<'a> {
    table: &'a Table,
    opened: bool,
    finished: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> Transaction<'a> {
    pub(crate) fn begin(table: &'a Table) -> Result<Transaction<'a>> {
        let opened = table.begin()?;
        Ok(Transaction {
            table,
            opened,
            finished: false,
            _not_send: PhantomData,
        })
    }

    /// True if this guard opened the transaction (false if it joined an outer one).
    pub fn is_outermost(&self) -> bool {
        self.opened
    }

    /// Commits (or, for a joined guard, closes its level).
    ///
    /// # Errors
    /// A failed `COMMIT` ([`Error::Busy`](crate::Error::Busy),
    /// [`Error::DiskFull`](crate::Error::DiskFull), …); the transaction is rolled back.
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.table.end(self.opened, true)
    }

    /// Rolls back now instead of on drop.
    ///
    /// # Errors
    /// A failed `ROLLBACK`.
    pub fn rollback(mut self) -> Result<()> {
        self.finished = true;
        self.table.end(self.opened, false)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.table.end(self.opened, false);
        }
    }
}
