//! A connection with its held statements ([`ConnSlot`]), and the file's one writer
//! connection ([`SharedWriter`]), which every thread of the process uses for its writes
//! while it holds the file's writer lock.
//!
//! Why one writer connection: SQLite empties a connection's page cache at the start of a
//! transaction when another connection has committed since. With a connection per thread,
//! writes that alternate between threads each began on a cold cache (measured: one thread
//! alternating its inserts between two connections did 42–67k sets/s, 86–95k on one). On
//! the shared connection each write finds the pages the previous one left.
//!
//! The rule that makes sharing safe: the shared connection is reached only through
//! [`SharedWriter::get`], which takes the writer lock's guard (a writer's or a lookup's,
//! see `writer.rs`), so the connection cannot be used without the lock; a thread that must keep using it after its guard goes (a query
//! cursor still open when its write transaction ends) gets it for itself instead
//! ([`SharedWriter::detach`]), and the file opens a new one.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use rusqlite::Connection;

use crate::fork;
use crate::statement::HeldStatements;
use crate::writer::{Holds, WriterGuard, WriterLock};

/// A process-wide unique value for [`ConnSlot::mark`].
pub(crate) fn next_mark() -> u64 {
    static MARKS: AtomicU64 = AtomicU64::new(1);
    MARKS.fetch_add(1, Ordering::Relaxed)
}

/// A connection, opened on first use, with its held statements and what tells when it may
/// be swapped.
pub(crate) struct ConnSlot {
    /// Declared before `conn`: statements are finalized before their connection.
    pub(crate) statements: RefCell<HeldStatements>,
    /// The connection, at a fixed address (a leaked `Box`): held statements borrow it.
    pub(crate) conn: Cell<Option<NonNull<Connection>>>,
    /// The fork generation the connection was opened in.
    pub(crate) generation: Cell<u64>,
    /// The `close_all` epoch the connection was opened in.
    pub(crate) epoch: Cell<u64>,
    /// Calls running on the connection now, and pins (it is only swapped at 0).
    pub(crate) in_use: Cell<u32>,
    /// Moves (to a process-wide unique value) whenever what the connection sees may have
    /// changed in a way SQLite's counters do not show (see `Connections::mark`).
    pub(crate) mark: Cell<u64>,
    /// Counted among the connections `close_all` reports: a thread's own, not the file's
    /// writer connection (the original counts one connection per thread).
    pub(crate) counted: bool,
}

// SAFETY: a slot is used by one thread at a time: a thread's own slot by its thread only
// (ThreadLocal), the shared writer's by the holder of the writer lock only (see
// `SharedWriter::get`), whose mutex orders one holder's use before the next's. The
// connection it points to is `Send`.
unsafe impl Send for ConnSlot {}

impl ConnSlot {
    pub(crate) fn new(counted: bool) -> ConnSlot {
        ConnSlot {
            counted,
            statements: RefCell::default(),
            conn: Cell::new(None),
            generation: Cell::new(fork::current()),
            epoch: Cell::new(0),
            in_use: Cell::new(0),
            mark: Cell::new(next_mark()),
        }
    }

    /// Moves the mark.
    pub(crate) fn bump(&self) {
        self.mark.set(next_mark());
    }

    /// True when nothing runs on the connection and no transaction is open on it.
    pub(crate) fn idle(&self, conn: &Connection) -> bool {
        self.in_use.get() == 0 && conn.is_autocommit()
    }

    /// Gives up the connection and its statements: closed normally, or leaked when they
    /// were inherited across fork() (closing them could disturb the parent's locks).
    /// Callers make sure nothing uses it (`in_use == 0`).
    pub(crate) fn release(&self, inherited: bool) {
        let statements = std::mem::take(&mut *self.statements.borrow_mut());
        let conn = self.conn.take();
        if inherited {
            std::mem::forget(statements);
        } else {
            drop(statements);
            if let Some(c) = conn {
                // SAFETY: made by `Box::into_raw` when opened; its statements are gone.
                drop(unsafe { Box::from_raw(c.as_ptr()) });
            }
        }
    }

    /// In a child of fork(), gives up what the slot inherited (never touched again).
    pub(crate) fn adopt_fork(&self, generation: u64) {
        if self.generation.get() != generation {
            self.release(true);
            self.generation.set(generation);
            self.in_use.set(0);
            self.bump();
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let inherited = self.generation.get() != fork::current();
        self.release(inherited);
    }
}

/// A writer connection's slot on the heap, at a fixed address until [`free`]d (frames and
/// pins keep pointers to its counters).
fn boxed() -> NonNull<ConnSlot> {
    NonNull::from(Box::leak(Box::new(ConnSlot::new(false))))
}

/// Frees a slot made by [`boxed`].
///
/// # Safety
/// Nothing may use the slot any more.
pub(crate) unsafe fn free(slot: NonNull<ConnSlot>) {
    // SAFETY: made by `boxed`, used by no one (the caller's promise).
    drop(unsafe { Box::from_raw(slot.as_ptr()) });
}

/// The writer connection of one file (per set of connection settings) in this process.
pub(crate) struct SharedWriter {
    slot: AtomicPtr<ConnSlot>,
}

impl SharedWriter {
    pub(crate) fn new() -> SharedWriter {
        SharedWriter {
            slot: AtomicPtr::new(boxed().as_ptr()),
        }
    }

    fn current(&self) -> NonNull<ConnSlot> {
        // Never null: set in `new` and `detach` only.
        NonNull::new(self.slot.load(Ordering::Relaxed)).unwrap_or_else(|| unreachable!())
    }

    /// The writer connection's slot, for the holder of `lock` (whose guard this is): in a
    /// child of fork(), having given up what it inherited.
    ///
    /// The guard must be of `lock`, the lock these connections share; returns `None`
    /// otherwise.
    pub(crate) fn get<'g>(
        &'g self,
        lock: &WriterLock,
        guard: &'g impl Holds,
    ) -> Option<&'g ConnSlot> {
        if !guard.is_of(lock) {
            return None;
        }
        // SAFETY: the holder of the writer lock is the only user of the slot (see the
        // module doc), and the slot lives until `detach` (which needs the guard too) or
        // drop.
        let slot = unsafe { self.current().as_ref() };
        // `current()`: the at-fork handlers are installed once a connection has opened.
        slot.adopt_fork(fork::current());
        Some(slot)
    }

    /// Hands the current slot to the caller (the holder of the writer lock, proven by
    /// `guard`) for its own use until it frees it, and puts a new, empty one in its place.
    pub(crate) fn detach(&self, _guard: &WriterGuard) -> NonNull<ConnSlot> {
        let old = self.current();
        self.slot.store(boxed().as_ptr(), Ordering::Relaxed);
        old
    }
}

impl Drop for SharedWriter {
    fn drop(&mut self) {
        // SAFETY: no guard, hence no user, outlives the connections that own this.
        unsafe { free(self.current()) };
    }
}
