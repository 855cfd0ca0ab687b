//! Checkpoints off the writer's path: a cache's connections hand WAL checkpoints to a
//! background thread of the process instead of running them inside the write that crossed
//! the threshold.
//!
//! SQLite's own automatic checkpoint (every 1000 WAL pages) runs in the committing call:
//! it copies the pages into the database and syncs the WAL and the database file twice,
//! and that write waits for both syncs (measured here: a 1 KiB `set` 21.5 µs of wall clock
//! with it, 15.3 without, CPU time the same; far more while other jobs load the disk).
//! The same PASSIVE checkpoint, with the same syncs, now runs on a thread of the cache:
//!
//! - past [`SOFT_FRAMES`] WAL frames, a commit wakes the thread (started on first use in
//!   each process, gone after [`IDLE`] without work, with its own connection);
//! - past [`HARD_FRAMES`] (writes that never pause leave the checkpoints behind, and the
//!   WAL only starts over once all of it is copied), the committing call checkpoints itself,
//!   as SQLite's automatic checkpoint does; so the WAL stays under about 16 MiB.
//!
//! Durability is SQLite's: a commit is never synced (`synchronous=NORMAL`, as diskcache),
//! a checkpoint syncs the WAL before it writes the database and the database after. A
//! `sqlite_wal_autocheckpoint` setting gives a connection SQLite's own behaviour back (the
//! pragma replaces the hook).

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use diskstore::rusqlite::{Connection, OpenFlags, ffi};

/// WAL frames after which a commit asks for a background checkpoint (SQLite's default
/// automatic checkpoint threshold).
pub(super) const SOFT_FRAMES: c_int = 1000;

/// WAL frames after which the committing call checkpoints itself.
pub(super) const HARD_FRAMES: c_int = 4000;

/// How long the thread waits for more work before it ends (closing its connection).
const IDLE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// The fork generation whose thread `running` refers to (a forked child has none).
    generation: u64,
    running: bool,
    requested: bool,
    stop: bool,
}

/// The background checkpoints of one cache database in this process.
pub(super) struct Checkpointer {
    path: String,
    /// The WAL size (frames) at which the next commit asks: every [`SOFT_FRAMES`] more
    /// frames, not on every commit past the threshold.
    next_at: AtomicI32,
    state: Mutex<State>,
    wake: Condvar,
}

impl Checkpointer {
    pub(super) fn new(path: String) -> Arc<Self> {
        Arc::new(Checkpointer {
            path,
            next_at: AtomicI32::new(SOFT_FRAMES),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        })
    }

    /// Asks for a checkpoint soon, starting the thread if this process has none. Never
    /// blocks: when the state is busy (or was left locked by a thread that a `fork()`
    /// did not copy) the request is skipped; the next commit asks again.
    fn request(self: &Arc<Self>) {
        let Ok(mut st) = self.state.try_lock() else {
            return;
        };
        let generation = diskstore::fork_generation();
        if st.generation != generation {
            *st = State {
                generation,
                ..State::default()
            };
        }
        if st.stop || st.requested {
            return;
        }
        st.requested = true;
        if st.running {
            self.wake.notify_one();
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("diskcache-checkpoint".into())
            .stack_size(256 * 1024)
            .spawn(move || me.run());
        st.running = spawned.is_ok();
        if !st.running {
            st.requested = false;
        }
    }

    /// Ends the thread (after the checkpoint it may be running) and refuses new requests.
    pub(super) fn stop(&self) {
        // The thread holds the lock only between waits; a lock that stays taken was left
        // by a thread that a `fork()` did not copy, and there is no thread to stop then.
        for _ in 0..1000 {
            if let Ok(mut st) = self.state.try_lock() {
                st.stop = true;
                self.wake.notify_all();
                return;
            }
            std::thread::yield_now();
        }
    }

    fn run(self: Arc<Self>) {
        let mut conn: Option<Connection> = None;
        loop {
            {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                loop {
                    if st.stop {
                        st.running = false;
                        break;
                    }
                    if st.requested {
                        st.requested = false;
                        break;
                    }
                    let Ok((guard, waited)) = self.wake.wait_timeout(st, IDLE) else {
                        return;
                    };
                    st = guard;
                    if waited.timed_out() && !st.requested {
                        st.running = false;
                        break;
                    }
                }
                if !st.running {
                    drop(st);
                    let _inside = diskstore::enter_sqlite();
                    drop(conn);
                    return;
                }
            }
            let _inside = diskstore::enter_sqlite();
            if conn.is_none() {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI;
                // A first read opens the WAL (a checkpoint on a connection that has not
                // read yet does nothing).
                conn = Connection::open_with_flags(&self.path, flags)
                    .ok()
                    .filter(|c| c.query_row("PRAGMA schema_version", [], |_| Ok(())).is_ok());
            }
            if let Some(c) = &conn {
                // SAFETY: a live connection used by this thread only; PASSIVE never waits
                // for other connections (a busy checkpoint lock is a skipped checkpoint).
                unsafe { passive_checkpoint(c.handle()) };
            }
        }
    }
}

/// `sqlite3_wal_checkpoint_v2(db, main, PASSIVE)`; the result is not needed (a checkpoint
/// that could not run is retried by a later commit).
///
/// # Safety
/// `db` must be an open connection used by no other thread meanwhile.
unsafe fn passive_checkpoint(db: *mut ffi::sqlite3) {
    // SAFETY: per the contract; null out-pointers are allowed.
    unsafe {
        ffi::sqlite3_wal_checkpoint_v2(
            db,
            c"main".as_ptr(),
            ffi::SQLITE_CHECKPOINT_PASSIVE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}

/// The WAL hook of a cache connection: `ctx` is the `Arc<Checkpointer>` its `Conn` owns.
unsafe extern "C" fn wal_hook(
    ctx: *mut c_void,
    db: *mut ffi::sqlite3,
    _name: *const c_char,
    frames: c_int,
) -> c_int {
    if frames >= HARD_FRAMES {
        // SAFETY: called by SQLite on the committing thread, which owns `db`.
        unsafe { passive_checkpoint(db) };
        return ffi::SQLITE_OK;
    }
    // SAFETY: `ctx` points to the Arc in the connection's `Conn`, which outlives it.
    let ck = unsafe { &*(ctx as *const Arc<Checkpointer>) };
    let next = ck.next_at.load(Ordering::Relaxed);
    if frames < SOFT_FRAMES {
        if next != SOFT_FRAMES {
            // The WAL started over.
            ck.next_at.store(SOFT_FRAMES, Ordering::Relaxed);
        }
    } else if frames >= next {
        ck.next_at.store(frames + SOFT_FRAMES, Ordering::Relaxed);
        ck.request();
    }
    ffi::SQLITE_OK
}

/// Hands `conn`'s checkpoints to `ck` (replacing SQLite's automatic checkpoint); the
/// returned box must live as long as the connection.
///
/// The hook gets a pointer to the `Arc` itself (boxed, so that it does not move), from
/// which a request clones the `Arc` the thread keeps.
#[allow(clippy::redundant_allocation)]
pub(super) fn install(conn: &Connection, ck: &Arc<Checkpointer>) -> Box<Arc<Checkpointer>> {
    let ctx = Box::new(Arc::clone(ck));
    let ptr = &*ctx as *const Arc<Checkpointer> as *mut c_void;
    // SAFETY: the connection is open; `ptr` stays valid while the box lives, which the
    // caller keeps beside the connection (dropped after it).
    unsafe {
        ffi::sqlite3_wal_hook(conn.handle(), Some(wal_hook), ptr);
    }
    ctx
}
