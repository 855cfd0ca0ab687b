//! `len()` without a table scan: a row count cached per (table handle, thread) and proven
//! current before every use, never maintained in the file.
//!
//! A cached count is used only while three things are unchanged since it was taken:
//! - `PRAGMA data_version` of the thread's connection, which moves whenever another
//!   connection (another thread, another process, the original Python library) commits;
//! - `sqlite3_total_changes64()` of that connection, which moves with every row this
//!   connection inserts, updates or deletes, through any table or raw SQL;
//! - the connection's *mark* (see `Connections::mark`), which moves when the connection
//!   is replaced, a transaction or savepoint rolls back, a call fails, or raw SQL runs.
//!
//! Our own writes whose effect on the count is known (a `set` that inserted or replaced,
//! `insert_new`, `delete`, `clear`) carry the cached count along: when the cache was
//! current just before the write, it takes the write's delta and the new change counter.
//! Any other change only makes the next `len()` count again (exact, one scan). So the count
//! costs the write path a few C calls and the file nothing: no extra page per commit, and
//! files stay exactly as the original writes them.

use std::cell::Cell;

use rusqlite::{Connection, ffi};
use thread_local::ThreadLocal;

/// What a cached count was taken at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    mark: u64,
    data_version: i64,
    changes: i64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    stamp: Stamp,
    count: u64,
}

/// How a write changed the number of rows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Delta {
    /// Rows added (negative: removed).
    By(i64),
    /// The table is now empty.
    Emptied,
    /// Not known: the next `len()` counts.
    Unknown,
}

/// The per-thread cached counts of one table handle.
#[derive(Default)]
pub(crate) struct CountCache {
    entries: ThreadLocal<Cell<Option<Entry>>>,
}

/// The connection's change counter (rows changed by it, ever).
pub(crate) fn total_changes(c: &Connection) -> i64 {
    // SAFETY: a live connection used on this thread only.
    unsafe { ffi::sqlite3_total_changes64(c.handle()) }
}

/// The sentinel a write's last-insert rowid is set to before an upsert, to tell an insert
/// (which sets it) from a replacement (which does not).
pub(crate) const NO_INSERT: i64 = i64::MIN;

/// Sets the connection's last-insert rowid to [`NO_INSERT`].
pub(crate) fn clear_last_insert(c: &Connection) {
    // SAFETY: a live connection used on this thread only.
    unsafe { ffi::sqlite3_set_last_insert_rowid(c.handle(), NO_INSERT) }
}

/// The delta of an upsert that changed `changed` rows, from the last-insert rowid it left
/// (after [`clear_last_insert`]). `ambiguous`: an insert could have taken the sentinel's
/// own rowid (an INTEGER key that is not plainly another integer), so that an unchanged
/// rowid does not prove a replacement.
pub(crate) fn upsert_delta(c: &Connection, changed: usize, ambiguous: bool) -> Delta {
    if changed == 0 {
        Delta::By(0)
    } else if c.last_insert_rowid() != NO_INSERT {
        Delta::By(1)
    } else if ambiguous {
        Delta::Unknown
    } else {
        Delta::By(0)
    }
}

impl CountCache {
    fn slot(&self) -> &Cell<Option<Entry>> {
        self.entries.get_or(|| Cell::new(None))
    }

    /// The cached count, if it was taken at `mark`/`data_version` and the connection has
    /// changed no row since.
    pub(crate) fn get(&self, c: &Connection, mark: u64, data_version: i64) -> Option<u64> {
        let e = self.slot().get()?;
        let now = Stamp {
            mark,
            data_version,
            changes: total_changes(c),
        };
        (e.stamp == now).then_some(e.count)
    }

    /// Remembers `count`, counted after `data_version` was read at `mark`.
    pub(crate) fn put(&self, c: &Connection, mark: u64, data_version: i64, count: u64) {
        let stamp = Stamp {
            mark,
            data_version,
            changes: total_changes(c),
        };
        self.slot().set(Some(Entry { stamp, count }));
    }

    /// Carries the cached count over a write of this table that succeeded: `changes_before`
    /// is the change counter read just before it, `mark` gives the connection's mark now
    /// (asked only when a count is cached). A cache that was not current before the write
    /// is left to fail its next check.
    pub(crate) fn wrote(
        &self,
        c: &Connection,
        mark: impl FnOnce() -> u64,
        changes_before: i64,
        delta: Delta,
    ) {
        let Some(slot) = self.entries.get() else {
            return;
        };
        let Some(mut e) = slot.get() else {
            return;
        };
        if e.stamp.changes != changes_before || e.stamp.mark != mark() {
            return;
        }
        e.count = match delta {
            Delta::By(d) => match e.count.checked_add_signed(d) {
                Some(n) => n,
                None => return slot.set(None),
            },
            Delta::Emptied => 0,
            Delta::Unknown => return slot.set(None),
        };
        e.stamp.changes = total_changes(c);
        slot.set(Some(e));
    }
}
