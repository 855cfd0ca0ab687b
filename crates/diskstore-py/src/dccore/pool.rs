//! Connections: one per thread, closed when the thread ends; the busy wait; pragmas.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use diskstore::rusqlite::types::ValueRef;
use diskstore::rusqlite::{self, Connection};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::ckpt::Checkpointer;
use super::sql::*;

thread_local! {
    /// How long the operation running on this thread may wait for a lock.
    pub(super) static WAIT_LIMIT: Cell<Duration> = const { Cell::new(Duration::from_secs(60)) };
}

/// SQLite's busy callback (`true`: try again): the engine's wait (20 µs doubling to 1 ms),
/// until the calling thread's `WAIT_LIMIT` has passed since the wait began.
pub(super) fn busy_wait(attempt: i32) -> bool {
    let limit = WAIT_LIMIT.try_with(Cell::get).unwrap_or(Duration::ZERO);
    diskstore::busy_wait_step(attempt, limit)
}

pub(super) struct Conn {
    pub(super) conn: Connection,
    /// The fork generation it was opened in (`diskstore::fork_generation`).
    pub(super) generation: u64,
    /// The WAL hook's context (declared after `conn`: dropped after it closes).
    #[allow(clippy::redundant_allocation)]
    pub(super) _hook: Box<Arc<Checkpointer>>,
}

/// The connections of one cache object, by thread.
pub(super) type ConnMap = Mutex<HashMap<ThreadId, Conn>>;

/// Closes (or, inherited over fork, forgets) a connection.
pub(super) fn release(c: Conn) {
    if c.generation == diskstore::fork_generation() {
        drop(c);
    } else {
        std::mem::forget(c);
    }
}

/// Closes a thread's connections when the thread ends (its thread-local storage is torn
/// down), so that short-lived threads do not leave open files behind.
pub(super) struct ThreadExit {
    tid: ThreadId,
    pools: RefCell<Vec<Weak<ConnMap>>>,
}

impl ThreadExit {
    pub(super) fn watch(&self, pool: &Arc<ConnMap>) {
        let mut pools = self.pools.borrow_mut();
        pools.retain(|w| w.strong_count() > 0);
        let weak = Arc::downgrade(pool);
        if !pools.iter().any(|w| w.ptr_eq(&weak)) {
            pools.push(weak);
        }
    }
}

impl Drop for ThreadExit {
    fn drop(&mut self) {
        for pool in self.pools.borrow().iter().filter_map(Weak::upgrade) {
            let conn = pool.lock().ok().and_then(|mut m| m.remove(&self.tid));
            if let Some(c) = conn {
                release(c);
            }
        }
    }
}

thread_local! {
    pub(super) static THREAD_EXIT: ThreadExit = ThreadExit {
        tid: std::thread::current().id(),
        pools: RefCell::new(Vec::new()),
    };
}

pub(super) fn poisoned() -> PyErr {
    PyRuntimeError::new_err("diskcache connection pool poisoned by a panic")
}

/// `PRAGMA name = value` for a name of letters and underscores and a plain value.
pub(super) fn apply_pragma(conn: &Connection, name: &str, value: &str) -> OpResult<()> {
    let ok_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let ok_value = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok_name || !ok_value {
        return Err(OpError::Sql(rusqlite::Error::InvalidParameterName(
            format!("invalid pragma {name} = {value}"),
        )));
    }
    // A pragma already at its value is not set again: setting some (journal_mode) takes a
    // lock, which another process may hold while this one opens the cache.
    let current: Option<String> = {
        let mut stmt = conn.prepare(&format!("PRAGMA {name}"))?;
        let mut rows = stmt.query([])?;
        match rows.next()? {
            Some(r) => Some(match r.get_ref(0)? {
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).to_lowercase(),
                ValueRef::Real(f) => f.to_string(),
                _ => String::new(),
            }),
            None => None,
        }
    };
    // `wal_autocheckpoint` is always set, even to the value it reads: setting it is what
    // (re)installs SQLite's WAL hook, which the engine's checkpointer borrows per commit.
    if name != "wal_autocheckpoint" && current.as_deref() == Some(value.to_lowercase().as_str()) {
        return Ok(());
    }
    // Some pragmas (journal_mode) return a row; run and drain it.
    let mut stmt = conn.prepare(&format!("PRAGMA {name} = {value}"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}
