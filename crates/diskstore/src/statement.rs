//! Statements kept prepared on a thread's connection, and binding text and blobs in place.
//!
//! This module and `connection.rs`'s slot hold the crate's `unsafe` statement code: a held
//! statement's borrow of its connection is erased to `'static`, which is sound because the
//! slot keeps the connection at a fixed address (a leaked `Box`, reached only through a
//! raw pointer) and finalizes every held statement before it frees, replaces or abandons
//! the connection.

use std::ffi::c_int;
use std::marker::PhantomData;

use rusqlite::{Connection, ffi};

use crate::error::Result;
use crate::value::ValueRef;

/// Statements of [`Connections::held`] reserved by the connection layer itself.
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
    /// The first id free for the table's own statements.
    pub const TABLE: usize = 4;
    /// How many ids the table's statements take (the cache's start after them).
    pub const TABLE_COUNT: usize = 12;
    /// The first id free for the cache's statements.
    pub const CACHE: usize = TABLE + TABLE_COUNT;
}

/// A statement prepared on a slot's connection. Its borrow of the connection is erased:
/// the slot keeps the connection at a fixed address and drops or forgets every statement
/// before it drops, replaces or forgets the connection.
type HeldStatement = rusqlite::Statement<'static>;

/// A statement handed to the work of [`Connections::held`]: a rusqlite statement (it
/// derefs to one) that also binds text and blobs without copying them when it is held.
/// `'k` is a lifetime that outlives the whole `held` call, so bound data cannot be a
/// temporary of the work itself.
pub(crate) struct Prepared<'s, 'c, 'k> {
    st: &'s mut rusqlite::Statement<'c>,
    /// The statement's SQLite handle, or null: bind through rusqlite (a copy).
    raw: *mut ffi::sqlite3_stmt,
    _bound: PhantomData<&'k [u8]>,
}

impl<'s, 'c, 'k> Prepared<'s, 'c, 'k> {
    /// A statement that binds through rusqlite, which copies text and blobs.
    fn copying(st: &'s mut rusqlite::Statement<'c>) -> Self {
        Prepared {
            st,
            raw: std::ptr::null_mut(),
            _bound: PhantomData,
        }
    }

    /// Binds `value` to parameter `idx` (1-based). Text and blobs of a held statement
    /// are bound in place (`SQLITE_STATIC`): `held` clears the bindings before `'k` can end.
    pub(crate) fn bind(&mut self, idx: usize, value: ValueRef<'k>) -> Result<()> {
        let (ptr, len, text) = match value {
            ValueRef::Text(t) if !t.is_empty() => (t.as_ptr(), t.len(), true),
            ValueRef::Blob(b) if !b.is_empty() => (b.as_ptr(), b.len(), false),
            _ => (std::ptr::null(), 0, false),
        };
        let (Ok(col), false, false) = (c_int::try_from(idx), self.raw.is_null(), ptr.is_null())
        else {
            self.st.raw_bind_parameter(idx, value)?;
            return Ok(());
        };
        // SAFETY: `raw` is the live handle of `self.st`; the data outlives the statement's
        // use, since `held` clears the bindings before returning (see `'k`).
        let rc = unsafe {
            if text {
                ffi::sqlite3_bind_text64(
                    self.raw,
                    col,
                    ptr.cast(),
                    len as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                )
            } else {
                ffi::sqlite3_bind_blob64(
                    self.raw,
                    col,
                    ptr.cast(),
                    len as u64,
                    ffi::SQLITE_STATIC(),
                )
            }
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None).into())
        }
    }
}

impl<'c> std::ops::Deref for Prepared<'_, 'c, '_> {
    type Target = rusqlite::Statement<'c>;
    fn deref(&self) -> &Self::Target {
        self.st
    }
}

impl std::ops::DerefMut for Prepared<'_, '_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.st
    }
}

/// Prepares `sql` on `conn` and finds the new statement's SQLite handle (rusqlite does not
/// expose it): SQLite links every new statement at the head of its connection's list, so
/// right after the prepare, on the thread that owns the connection, the head is ours; its
/// SQL text is compared to be sure. The handle is null when it is not needed (no
/// parameters) or not confirmed: binding then copies through rusqlite.
fn prepare_with_handle<'c>(
    conn: &'c Connection,
    sql: &str,
) -> Result<(rusqlite::Statement<'c>, *mut ffi::sqlite3_stmt)> {
    let st = conn.prepare(sql)?;
    if st.parameter_count() == 0 {
        return Ok((st, std::ptr::null_mut()));
    }
    // SAFETY: reads the connection's newest statement and its SQL text, on the thread
    // that owns the connection, before anything else can prepare on it.
    let raw = unsafe {
        let head = ffi::sqlite3_next_stmt(conn.handle(), std::ptr::null_mut());
        let text = if head.is_null() {
            std::ptr::null()
        } else {
            ffi::sqlite3_sql(head)
        };
        let same = !text.is_null() && std::ffi::CStr::from_ptr(text).to_bytes() == sql.as_bytes();
        if same { head } else { std::ptr::null_mut() }
    };
    Ok((st, raw))
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
pub(crate) struct Held {
    st: HeldStatement,
    raw: *mut ffi::sqlite3_stmt,
    generation: u64,
}

/// The held statements of one thread's connection, by namespace and id.
#[derive(Default)]
pub(crate) struct HeldStatements(Vec<Vec<Option<Held>>>);

impl HeldStatements {
    /// Takes statement `id` of `ns` out (to be put back with [`Self::put`]), if it is held
    /// for this generation of the namespace.
    fn take(&mut self, ns: Namespace, id: usize) -> Option<Held> {
        let slot = self.0.get_mut(ns.index)?.get_mut(id)?;
        match slot {
            Some(h) if h.generation == ns.generation => slot.take(),
            _ => None,
        }
    }

    fn put(&mut self, ns: Namespace, id: usize, held: Held) {
        if self.0.len() <= ns.index {
            self.0.resize_with(ns.index + 1, Vec::new);
        }
        let list = &mut self.0[ns.index];
        if list.len() <= id {
            list.resize_with(id + 1, || None);
        }
        list[id] = Some(held);
    }
}

// SAFETY: the statements belong to their slot's connection, which is `Send`; they move
// between threads only together with it (when the slots are dropped), and are only used
// by the thread that owns the slot.
unsafe impl Send for HeldStatements {}

/// Runs `f` with statement `id` of namespace `ns` held on `own` (the slot's connection at
/// its fixed address), preparing `sql` on first use; the statement goes back into `list`
/// afterwards with its bindings cleared. Each (namespace, id) always comes with one `sql`.
///
/// # Safety
/// `own` must stay at its address and alive until every statement in `list` is dropped.
pub(crate) unsafe fn with_held<'k, R>(
    list: &std::cell::RefCell<HeldStatements>,
    own: &Connection,
    ns: Namespace,
    id: usize,
    sql: &str,
    f: impl FnOnce(&mut Prepared<'_, '_, 'k>) -> Result<R>,
) -> Result<R> {
    // Taken out while in use, so that a nested use of the same id prepares its own.
    let taken = list.borrow_mut().take(ns, id);
    let Held { mut st, raw, .. } = match taken {
        Some(held) => held,
        None => {
            let (st, raw) = prepare_with_handle(own, sql)?;
            // SAFETY: the caller keeps `own` at its address until the statement drops.
            let st = unsafe { std::mem::transmute::<rusqlite::Statement<'_>, HeldStatement>(st) };
            Held {
                st,
                raw,
                generation: ns.generation,
            }
        }
    };
    let result = f(&mut Prepared {
        st: &mut st,
        raw,
        _bound: PhantomData,
    });
    // Text and blobs were bound without a copy (see `Prepared::bind`): the data lives
    // until this call returns, and no pointer to it may stay behind.
    st.clear_bindings();
    let generation = ns.generation;
    list.borrow_mut().put(
        ns,
        id,
        Held {
            st,
            raw,
            generation,
        },
    );
    result
}

/// A statement that is not held (its connection is not a slot's): prepared through the
/// statement cache and bound by copy.
pub(crate) fn with_cached<'k, R>(
    conn: &Connection,
    sql: &str,
    f: impl FnOnce(&mut Prepared<'_, '_, 'k>) -> Result<R>,
) -> Result<R> {
    let mut st = conn.prepare_cached(sql)?;
    f(&mut Prepared::copying(&mut st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_found_is_the_new_statements_among_twins() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "SELECT ?1, ?2";
        let (older, older_raw) = prepare_with_handle(&conn, sql).unwrap();
        let (mut st, raw) = prepare_with_handle(&conn, sql).unwrap();
        assert!(!raw.is_null() && !older_raw.is_null() && raw != older_raw);
        let newer = conn.prepare(sql).unwrap();
        // Binding through the handle shows on `st` alone.
        let text = "bound in place";
        let mut p = Prepared {
            st: &mut st,
            raw,
            _bound: PhantomData,
        };
        p.bind(1, ValueRef::Text(text)).unwrap();
        p.bind(2, ValueRef::Blob(b"\x01")).unwrap();
        assert_eq!(st.expanded_sql().unwrap(), "SELECT 'bound in place', x'01'");
        assert_eq!(newer.expanded_sql().unwrap(), "SELECT NULL, NULL");
        assert_eq!(older.expanded_sql().unwrap(), "SELECT NULL, NULL");
        // No parameters: nothing to bind, no handle needed.
        let (_, none) = prepare_with_handle(&conn, "SELECT 1").unwrap();
        assert!(none.is_null());
    }
}
