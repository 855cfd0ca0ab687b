//! The cache's WAL checkpoints: the engine's background checkpointer
//! ([`diskstore::Checkpointer`], crates/diskstore/src/checkpoint.rs, the one the stores
//! use), at python-diskcache's pace.
//!
//! SQLite's own automatic checkpoint (every 1000 WAL pages) runs in the committing call:
//! it copies the pages into the database and syncs the WAL and the database file twice,
//! and that write waits for both syncs. With the engine's checkpointer, a commit that takes
//! the WAL [`PACE`]`.thread` % of the connection's `wal_autocheckpoint` (SQLite's default,
//! 1000 pages, unless `sqlite_wal_autocheckpoint` sets it) past what was last copied back
//! wakes a thread of the process that runs the same PASSIVE checkpoint, with the same
//! syncs. From `PACE.finish` % on, the thread ends its checkpoint with a `RESTART` one so
//! that the WAL starts over (writers wait for the last few frames' copy: see the engine's
//! module doc); from `PACE.writer` % on (writes that never pause leave the checkpoints
//! behind) the committing call checkpoints itself, so the WAL stays bounded. The pragma
//! keeps SQLite's meaning: it reads the value set, and 0 turns automatic checkpoints off.
//!
//! The finish is at twice the limit, not at the limit as a store's: every `RESTART`
//! holds the cache's writers back for its copy and syncs, so half as many of them halve
//! that wait, and a WAL of up to about twice SQLite's default (8 MB of 4 KiB pages) is
//! what it costs (measured with 10,000 `set`s of 1 KiB on a loaded machine, 3 runs each:
//! the `RESTART`s plus the writer's own checkpoints held the writer back 50–91 ms in all,
//! against 91–145 ms when finishing at the limit with a single pass).
//!
//! Durability is SQLite's: a commit is never synced (`synchronous=NORMAL`, as diskcache),
//! a checkpoint syncs the WAL before it writes the database and the database after.

use std::sync::Arc;

pub(super) use diskstore::Checkpointer;
use diskstore::Pace;
use diskstore::rusqlite::Connection;

/// The thread every `wal_autocheckpoint` pages, finishing (`RESTART`) from twice that,
/// the committing call at four times that.
pub(super) const PACE: Pace = Pace {
    thread: 100,
    finish: Some(200),
    writer: 400,
};

/// The checkpointer of the cache database at `path` (opened as a URI, as the cache's own
/// connections are). Its thread sleeps between checkpoints until a commit makes one due,
/// instead of polling every 2 ms: a `FanoutCache` has one per shard in each process
/// (measured with 4 writer processes on 8 shards: CPU per set of all the processes
/// 32.4-35.5 µs instead of 39.5-41.0).
pub(super) fn new(path: String) -> Arc<Checkpointer> {
    let ck = Checkpointer::with_pace(path, PACE, true);
    ck.wait_for_commits();
    ck
}

/// Hands `conn`'s automatic checkpoints to `ck`; the returned handle is kept beside the
/// connection. If SQLite has no memory for the hook, the connection keeps SQLite's own
/// automatic checkpoint (the same PASSIVE checkpoint, in the committing call).
#[allow(clippy::redundant_allocation)]
pub(super) fn install(conn: &Connection, ck: &Arc<Checkpointer>) -> Box<Arc<Checkpointer>> {
    let _ = ck.install(conn);
    Box::new(Arc::clone(ck))
}
