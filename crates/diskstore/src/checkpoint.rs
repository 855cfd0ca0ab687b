//! Checkpoints off the write path: a background thread per file copies the WAL back into
//! the database while writers go on.
//!
//! SQLite's own policy (`wal_autocheckpoint`) makes the writer whose commit takes the WAL
//! past the limit copy the whole WAL itself, with an fsync of each file: at 10⁷ keys that
//! one `set` took a quarter of a second. Here every read-write connection gets a WAL hook
//! instead (which replaces the automatic checkpoint) that, after each commit:
//! - when a fifth of the limit has been committed since the thread last copied the WAL
//!   back, wakes the file's checkpointer thread, which runs a `PASSIVE` checkpoint (it
//!   never waits for, nor blocks, readers and writers) on its own connection — once per
//!   such fifth, not continuously: each checkpoint fsyncs both files, and a writer's
//!   `write()` to the WAL can wait behind an fsync of it;
//! - at twice the limit (`wal_autocheckpoint`, default 5000 pages, the original's), which
//!   the WAL reaches only when the thread cannot keep up (under non-stop writes a PASSIVE
//!   checkpoint never reaches the end of the WAL, so the WAL never restarts), the writer
//!   waits for the thread's checkpoint to end and copies the rest itself, so that the
//!   `-wal` file stays bounded (by about twice the limit, plus one transaction). The
//!   writer does not checkpoint at the limit itself, as SQLite's policy would: a
//!   transaction that takes the WAL past the limit (a bulk load of 20,000 1 KiB values:
//!   6,700 4 KiB pages) would then copy and fsync all of it before returning (measured:
//!   5.7–6.4 µs a row instead of 2.5–2.8 µs).
//!
//! The thread is started when first needed and ends after a quiet spell, when the last
//! handle of the file closes or on `close()`/`close_all()` (which wait for it, so that the
//! last connection's close still checkpoints and removes the WAL as before). It holds no lock
//! a fork could catch (its state is atomics), its SQLite calls go through the fork gate,
//! and a child of `fork()` starts its own when it needs one. It never keeps the process
//! alive: it is not joined at exit, and a checkpoint cut short there is one SQLite
//! recovers from (checkpoints never lose a committed transaction).

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, ffi};

use crate::error::Result;
use crate::fork;

/// How often a running checkpointer looks at the WAL size.
const POLL: Duration = Duration::from_millis(2);
/// How long a checkpointer with nothing to do stays before it ends.
const QUIET: Duration = Duration::from_millis(250);

/// The checkpointer of one file: its thresholds and the state its thread and the WAL hooks
/// share (atomics only, so that a fork never inherits a held lock).
pub(crate) struct Checkpointer {
    path: PathBuf,
    /// WAL frames at which the thread checkpoints.
    soft: AtomicI64,
    /// WAL frames at which a writer checkpoints itself.
    hard: AtomicI64,
    /// The WAL size (frames) the latest commit reported.
    frames: AtomicI64,
    /// Frames of the WAL already copied back by the thread's last checkpoint (0 once the
    /// WAL restarts): the thread works again only when `soft` more have come.
    backfilled: AtomicI64,
    /// 0, or 1 + the fork generation whose thread is running.
    running: AtomicU64,
    /// 0, or 1 + the fork generation whose thread must end now.
    stop: AtomicU64,
    /// 1 + the fork generation whose thread is inside a checkpoint now, else 0.
    busy: AtomicU64,
    /// Checkpoints run by the thread (for tests and benchmarks).
    done: AtomicU64,
}

fn me() -> u64 {
    fork::generation() + 1
}

impl Checkpointer {
    pub(crate) fn new(path: PathBuf) -> Arc<Checkpointer> {
        Arc::new(Checkpointer {
            path,
            soft: AtomicI64::new(i64::MAX),
            hard: AtomicI64::new(i64::MAX),
            frames: AtomicI64::new(0),
            backfilled: AtomicI64::new(0),
            running: AtomicU64::new(0),
            stop: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            done: AtomicU64::new(0),
        })
    }

    /// Checkpoints the background thread has run so far.
    pub(crate) fn checkpoints(&self) -> u64 {
        self.done.load(SeqCst)
    }

    /// Puts the hook on a new read-write connection whose settings are applied: the
    /// connection's `wal_autocheckpoint` becomes the writer's limit (0 leaves checkpoints
    /// off, as asked). `self` must outlive the connection.
    pub(crate) fn install(self: &Arc<Self>, conn: &Connection) -> Result<()> {
        let limit: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
        if limit <= 0 {
            return Ok(());
        }
        self.hard.store(limit, SeqCst);
        self.soft.store((limit / 5).max(1), SeqCst);
        // SAFETY: a live connection; the context is this checkpointer, which the file's
        // connections keep alive longer than any of their connections (see `install`).
        unsafe {
            ffi::sqlite3_wal_hook(
                conn.handle(),
                Some(on_commit),
                Arc::as_ptr(self).cast_mut().cast(),
            );
        }
        Ok(())
    }

    /// True when `soft` frames or more have been committed since the thread's last
    /// checkpoint copied the WAL back.
    fn behind(&self, frames: i64) -> bool {
        let mut done = self.backfilled.load(SeqCst);
        if frames < done {
            // The WAL restarted: nothing of it has been copied yet.
            self.backfilled.store(0, SeqCst);
            done = 0;
        }
        frames - done >= self.soft.load(SeqCst)
    }

    /// Starts the thread unless one of this process runs.
    fn wake(self: &Arc<Self>) {
        let mine = me();
        let seen = self.running.load(SeqCst);
        if seen == mine
            || self
                .running
                .compare_exchange(seen, mine, SeqCst, SeqCst)
                .is_err()
        {
            return;
        }
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("diskstore-checkpoint".into())
            .spawn(move || this.run(mine));
        if spawned.is_err() {
            // No thread: the writers' own limit still bounds the WAL.
            self.running.store(0, SeqCst);
        }
    }

    /// The thread: checkpoints while the WAL is past the soft limit, ends when told to or
    /// after a quiet spell.
    fn run(&self, mine: u64) {
        let mut conn = None;
        let mut quiet_since = Instant::now();
        // The WAL size at the last attempt: a checkpoint that could not copy everything (a
        // reader on an old snapshot, another checkpoint) is tried again only after the next
        // commit, never in a loop.
        let mut tried = -1;
        let due = |tried: i64| {
            let frames = self.frames.load(SeqCst);
            (frames != tried && self.behind(frames)).then_some(frames)
        };
        loop {
            if self.stop.load(SeqCst) == mine {
                break;
            }
            if let Some(frames) = due(tried) {
                if !self.checkpoint(&mut conn) {
                    break;
                }
                tried = frames;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                // Leave, unless a commit asked for work meanwhile (it saw us running).
                self.running.store(0, SeqCst);
                if due(tried).is_none()
                    || self
                        .running
                        .compare_exchange(0, mine, SeqCst, SeqCst)
                        .is_err()
                {
                    let _inside = fork::enter();
                    drop(conn.take());
                    return;
                }
                quiet_since = Instant::now();
            }
            std::thread::sleep(POLL);
        }
        {
            let _inside = fork::enter();
            drop(conn.take());
        }
        let _ = self.running.compare_exchange(mine, 0, SeqCst, SeqCst);
    }

    /// One `PASSIVE` checkpoint on the thread's connection (opened on first use); false
    /// when the file cannot be opened (the thread then ends).
    fn checkpoint(&self, conn: &mut Option<Connection>) -> bool {
        let _inside = fork::enter();
        if conn.is_none() {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            // A first read puts a new connection's pager into WAL mode; until then a
            // checkpoint finds no WAL and does nothing.
            let opened = Connection::open_with_flags(&self.path, flags).and_then(|c| {
                c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
                Ok(c)
            });
            match opened {
                Ok(c) => *conn = Some(c),
                Err(_) => return false,
            }
        }
        let Some(c) = conn.as_ref() else {
            return false;
        };
        let (mut log, mut copied) = (0, 0);
        let mine = me();
        self.busy.store(mine, SeqCst);
        // SAFETY: a live connection of this thread and two outputs of ours. A busy result
        // (another checkpoint, a WAL restart) is retried at the next poll.
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                c.handle(),
                std::ptr::null(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                &mut log,
                &mut copied,
            )
        };
        self.busy.store(0, SeqCst);
        if rc == ffi::SQLITE_OK && copied >= 0 {
            self.backfilled.store(i64::from(copied), SeqCst);
        }
        self.done.fetch_add(1, SeqCst);
        true
    }

    /// Waits (up to 10 s) while this process's thread is inside a checkpoint.
    fn wait_for_thread(&self) {
        let mine = me();
        let start = Instant::now();
        while self.busy.load(SeqCst) == mine && start.elapsed() < Duration::from_secs(10) {
            fork::step_out(|| std::thread::sleep(Duration::from_micros(100)));
        }
    }

    /// Ends this process's thread, if one runs, and waits until it has closed its
    /// connection.
    pub(crate) fn stop(&self) {
        let mine = me();
        if self.running.load(SeqCst) != mine {
            return;
        }
        self.stop.store(mine, SeqCst);
        let start = Instant::now();
        while self.running.load(SeqCst) == mine && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = self.stop.compare_exchange(mine, 0, SeqCst, SeqCst);
    }
}

/// The WAL hook (see the module doc); runs on the committing thread after each commit.
extern "C" fn on_commit(
    ctx: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    frames: c_int,
) -> c_int {
    let ptr: *const Checkpointer = ctx.cast_const().cast();
    // SAFETY: `ctx` is a live checkpointer (see `Checkpointer::install`); taking a new
    // strong count for the thread `wake` may start.
    let this = unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    };
    let frames = i64::from(frames);
    if frames >= 2 * this.hard.load(SeqCst) {
        // The thread did not keep up (under non-stop writes its checkpoints never catch up
        // with the end of the WAL, so the WAL never restarts): wait for its checkpoint
        // (which holds SQLite's checkpoint lock, so that ours would find it busy), then
        // copy the rest here, so that the next write restarts the WAL.
        this.wait_for_thread();
        // SAFETY: the committing connection and its schema name, as SQLite passed them.
        unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        this.frames.store(frames, SeqCst);
        return ffi::SQLITE_OK;
    }
    this.frames.store(frames, SeqCst);
    if this.behind(frames) {
        this.wake();
    }
    ffi::SQLITE_OK
}
