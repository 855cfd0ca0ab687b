//! Checkpoints off the write path: a background thread per file copies the WAL back into
//! the database while writers go on.
//!
//! SQLite's own policy (`wal_autocheckpoint`) makes the writer whose commit takes the WAL
//! past the limit copy the whole WAL itself, with an fsync of each file: at 10⁷ keys that
//! one `set` took a quarter of a second. Here, after each commit of a connection that
//! [`Checkpointer::install`] equipped, with the connection's `wal_autocheckpoint` as the
//! limit (so the pragma keeps its meaning: see "The pragma" below) and a [`Pace`]:
//! - when the thread's share of the limit (a fifth for a store) has been committed since
//!   the thread last copied the WAL back, the commit wakes the file's checkpointer thread,
//!   which runs a `PASSIVE` checkpoint (it never waits for, nor blocks, readers and
//!   writers) on its own connection — once per such share, not continuously: each
//!   checkpoint fsyncs both files, and a writer's `write()` to the WAL can wait behind an
//!   fsync of it;
//! - past the pace's `finish` share (the limit itself for a store), the WAL has not
//!   restarted for a while: under non-stop writes a PASSIVE checkpoint never reaches the
//!   end of the WAL (writers append while it copies), and the WAL restarts only when a
//!   writer begins with all of it copied. So there the thread follows its PASSIVE
//!   checkpoint with more PASSIVE passes, each copying what the writers appended during
//!   the one before, until a pass finds only a few frames (or after a few passes), then
//!   with a `RESTART` one, which copies what is left while it holds SQLite's write lock:
//!   the writers wait for that copy (and its two fsyncs), and the next one restarts the
//!   WAL (and fsyncs its header). The extra passes shorten that wait: with one pass, the
//!   `RESTART` copied what came during a whole checkpoint (measured with the cache's
//!   10,000 `set`s on a loaded machine, 5 runs each: 10,200–14,700 frames copied under
//!   the write lock in all, 5,900–8,000 with the passes; a store's 20,000 Rust sets, 6
//!   runs: 5,600–14,700 and 2,100–14,100, wall clock within noise). Without the
//!   `RESTART`, the WAL reached the writer's share instead and a writer copied the rest
//!   itself, a larger copy (measured at 10⁶ keys, 50,000 sets from Python: 7–11 writer
//!   checkpoints of 1–204 ms, 0–2 with it);
//! - at the writer's share (twice the limit for a store), which the WAL reaches only when
//!   the thread cannot keep up or cannot take the lock, the writer waits for the thread's
//!   checkpoint to end and copies the rest itself, so that the `-wal` file stays bounded
//!   (by about that share, plus one transaction) when one process writes. A store's
//!   writer does not checkpoint at the limit itself, as SQLite's policy would: a
//!   transaction that takes the WAL past the limit (a bulk load of 20,000 1 KiB values:
//!   6,700 4 KiB pages) would then copy and fsync all of it before returning (measured:
//!   5.7–6.4 µs a row instead of 2.5–2.8 µs). With several processes writing without a
//!   pause the WAL can still grow: their writers keep appending while any one process
//!   checkpoints, and SQLite restarts the WAL only when a writer begins with all of it
//!   copied (measured: 3 processes × 5,000 non-stop 3 KB writes, limit 200: 42,711
//!   pages; SQLite's own policy has the same limit).
//!
//! The pragma: `PRAGMA wal_autocheckpoint` reads what SQLite's own WAL hook holds, so that
//! hook stays on the connection. A commit hook lends the WAL hook to us for each commit
//! that changed a row (the update hook tells), and our WAL hook gives it back at once (a
//! rollback hook does when the commit fails): the pragma reads the configured value,
//! setting it changes the limit from the next commit on, and 0 turns automatic checkpoints
//! off (the thread's and the writer's). A commit that changed no row as the update hook
//! sees it (a schema change, a `DELETE` of a whole table) keeps SQLite's own checkpoint at
//! the limit for that commit.
//!
//! Between checkpoints the thread looks at the WAL every 2 ms; with
//! [`Checkpointer::wait_for_commits`] (the `diskstore.diskcache` files) it sleeps instead
//! until the commit that makes one due wakes it (a futex on Linux): a sharded cache's
//! writer has a thread per shard file, and 8 such threads in each of 4 processes woke
//! 16,000 times a second (2.0 % of the samples of a 4-process `FanoutCache` write run in
//! `clock_nanosleep`).
//! The thread is started when first needed and ends after a quiet spell, when the last
//! handle of the file closes or on `close()`/`close_all()` (which wait for it, so that the
//! last connection's close still checkpoints and removes the WAL as before). It holds no lock
//! a fork could catch (its state is atomics), its SQLite calls go through the fork gate,
//! and a child of `fork()` starts its own when it needs one. It never keeps the process
//! alive: it is not joined at exit, and a checkpoint cut short there is one SQLite
//! recovers from (checkpoints never lose a committed transaction).

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, ffi};

use crate::error::{Error, Result};
use crate::fork;

/// How often a running checkpointer looks at the WAL size (after each checkpoint attempt
/// at least this pause; waiting for commits, see [`nap`], it looks only when woken).
const POLL: Duration = Duration::from_millis(2);
/// How long a finishing (`RESTART`) checkpoint waits for SQLite's locks: this many pauses
/// of [`FINISH_PAUSE`] (20 ms in all).
const FINISH_TRIES: c_int = 100;
/// One pause of a finishing checkpoint's wait.
const FINISH_PAUSE: Duration = Duration::from_micros(200);
/// At most this many extra `PASSIVE` passes before a finishing (`RESTART`) checkpoint.
const FINISH_PASSES: usize = 8;
/// A pass that copied this many WAL frames or fewer is the last before the `RESTART`.
const FINISH_REST: i64 = 32;
/// How long a checkpointer with nothing to do stays before it ends.
const QUIET: Duration = Duration::from_millis(250);

/// When the checkpoints run, in percent of a connection's `wal_autocheckpoint` limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// WAL frames (percent of the limit) committed since the thread's last checkpoint
    /// that wake the thread.
    pub thread: i64,
    /// WAL size (percent of the limit) from which the thread finishes its checkpoint with
    /// a `RESTART` one, so that the WAL starts over; `None`: never (the WAL then starts
    /// over when a checkpoint happens to reach its end, or at the writer's share).
    pub finish: Option<i64>,
    /// WAL size (percent of the limit) at which the committing call checkpoints itself.
    pub writer: i64,
}

impl Pace {
    /// A store's pace: the thread every fifth of the limit, finishing from the limit on,
    /// the writer at twice it.
    pub const STORE: Pace = Pace {
        thread: 20,
        finish: Some(100),
        writer: 200,
    };
}

/// The background checkpointer of one database file in this process: its thread and the
/// state the thread and the commit hooks share (atomics only, so that a fork never
/// inherits a held lock).
pub struct Checkpointer {
    path: PathBuf,
    /// The thread opens `path` as a URI.
    uri: bool,
    pace: Pace,
    /// WAL frames at which the thread checkpoints (from the latest commit's limit).
    soft: AtomicI64,
    /// The latest commit's limit (`wal_autocheckpoint`).
    limit: AtomicI64,
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
    /// 1 while the thread waits for a commit to make a checkpoint due (see [`nap`]).
    napping: AtomicU32,
    /// Whether the thread waits for commits between checkpoints instead of polling
    /// ([`Checkpointer::wait_for_commits`]).
    waits: AtomicBool,
}

fn me() -> u64 {
    fork::generation() + 1
}

impl Checkpointer {
    /// The checkpointer of a store's file (plain path, [`Pace::STORE`]).
    pub fn new(path: impl Into<PathBuf>) -> Arc<Checkpointer> {
        Checkpointer::with_pace(path, Pace::STORE, false)
    }

    /// The checkpointer of the file `path` names (a `file:` URI when `uri`), with `pace`.
    pub fn with_pace(path: impl Into<PathBuf>, pace: Pace, uri: bool) -> Arc<Checkpointer> {
        Arc::new(Checkpointer {
            path: path.into(),
            uri,
            pace,
            soft: AtomicI64::new(i64::MAX),
            limit: AtomicI64::new(i64::MAX),
            frames: AtomicI64::new(0),
            backfilled: AtomicI64::new(0),
            running: AtomicU64::new(0),
            stop: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            done: AtomicU64::new(0),
            napping: AtomicU32::new(0),
            waits: AtomicBool::new(false),
        })
    }

    /// Lets the thread sleep between checkpoints until the commit that makes one due
    /// wakes it, instead of looking at the WAL every 2 ms (see the module doc): for files
    /// with many checkpointers per process, such as a sharded cache's.
    pub fn wait_for_commits(&self) {
        self.waits.store(true, SeqCst);
    }

    /// Checkpoints the background thread has run so far.
    pub fn checkpoints(&self) -> u64 {
        self.done.load(SeqCst)
    }

    /// Hands the automatic checkpoints of `conn`, a read-write connection of this file, to
    /// this checkpointer (see the module doc); the connection keeps it alive.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when SQLite has no memory for the hook's state.
    pub fn install(self: &Arc<Self>, conn: &Connection) -> Result<()> {
        // SAFETY: the handle stays with `conn`; only the hooks below keep it, and SQLite
        // drops them with the connection.
        let db = unsafe { conn.handle() };
        let hooked = Box::into_raw(Box::new(Hooked {
            db,
            ck: Arc::clone(self),
            changed: Cell::new(false),
            limit: Cell::new(0),
        }));
        // SAFETY: a live connection; `hooked` is owned by the connection from here on
        // (freed by `free_hooked` when it closes, or at once if SQLite has no memory), and
        // the hooks get it only while it lives.
        unsafe {
            let rc = ffi::sqlite3_set_clientdata(
                db,
                HOOK_KEY.as_ptr(),
                hooked.cast(),
                Some(free_hooked),
            );
            if rc != ffi::SQLITE_OK {
                return Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
                    ffi::Error::new(rc),
                    Some("cannot install the checkpoint hook".into()),
                )));
            }
            ffi::sqlite3_update_hook(db, Some(on_change), hooked.cast());
            ffi::sqlite3_commit_hook(db, Some(before_commit), hooked.cast());
            ffi::sqlite3_rollback_hook(db, Some(after_rollback), hooked.cast());
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

    /// After a commit of `frames` WAL frames in all on `db` (limit `limit` > 0): wakes the
    /// thread, or checkpoints here when the WAL is past the writer's share.
    fn after_commit(
        self: &Arc<Self>,
        db: *mut ffi::sqlite3,
        name: *const c_char,
        frames: i64,
        limit: i64,
    ) {
        self.soft
            .store((limit * self.pace.thread / 100).max(1), SeqCst);
        self.limit.store(limit, SeqCst);
        if frames >= (limit * self.pace.writer / 100).max(1) {
            // The thread did not keep up (under non-stop writes its checkpoints never catch
            // up with the end of the WAL, so the WAL never restarts): wait for its
            // checkpoint (which holds SQLite's checkpoint lock, so that ours would find it
            // busy), then copy the rest here, so that the next write restarts the WAL.
            self.wait_for_thread();
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
            self.frames.store(frames, SeqCst);
            return;
        }
        self.frames.store(frames, SeqCst);
        if self.behind(frames) {
            self.wake();
        }
    }

    /// Starts the thread unless one of this process runs.
    fn wake(self: &Arc<Self>) {
        let mine = me();
        let seen = self.running.load(SeqCst);
        if seen == mine {
            rouse(&self.napping);
            return;
        }
        if self
            .running
            .compare_exchange(seen, mine, SeqCst, SeqCst)
            .is_err()
        {
            return;
        }
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("diskstore-checkpoint".into())
            .stack_size(256 * 1024)
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
                // Past the pace's share, the WAL has not restarted for a while: under
                // non-stop writes a PASSIVE checkpoint never reaches its end, so finish it.
                let finish = self.pace.finish.is_some_and(|share| {
                    frames >= (self.limit.load(SeqCst).saturating_mul(share) / 100).max(1)
                });
                if self.checkpoint(&mut conn, finish).is_none() {
                    break;
                }
                tried = frames;
                quiet_since = Instant::now();
                // At most one attempt per poll, even when every commit asks for one.
                std::thread::sleep(POLL);
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
            } else if !self.waits.load(SeqCst) {
                std::thread::sleep(POLL);
            } else {
                // Nothing due: wait for the commit that makes a checkpoint due (or for
                // `stop`), not looking at the WAL every poll (a sharded cache's writer has
                // a thread per file, each of which would wake 500 times a second).
                let left = QUIET.saturating_sub(quiet_since.elapsed());
                nap(&self.napping, left.max(POLL), || {
                    self.stop.load(SeqCst) == mine || due(tried).is_some()
                });
                // Then a poll's pause, as before: the checkpoint starts a little after the
                // commit that made it due, with what came meanwhile (measured: starting it
                // at once made more, smaller checkpoints, each with its two fsyncs, and
                // slowed 4 writer processes down).
                std::thread::sleep(POLL);
            }
        }
        {
            let _inside = fork::enter();
            drop(conn.take());
        }
        let _ = self.running.compare_exchange(mine, 0, SeqCst, SeqCst);
    }

    /// One `PASSIVE` checkpoint on the thread's connection (opened on first use), and when
    /// `finish` a `RESTART` one right after it (it copies what the writers appended
    /// meanwhile while it holds SQLite's write lock, waiting up to 20 ms for it
    /// and for readers to leave the WAL, so that the next writer restarts the WAL).
    /// Whether it copied the whole WAL; `None` when the file cannot be opened (the thread
    /// then ends).
    fn checkpoint(&self, conn: &mut Option<Connection>, finish: bool) -> Option<bool> {
        let _inside = fork::enter();
        if conn.is_none() {
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if self.uri {
                flags |= OpenFlags::SQLITE_OPEN_URI;
            }
            *conn = Some(self.open(flags).ok()?);
        }
        let c = conn.as_ref()?;
        let mine = me();
        self.busy.store(mine, SeqCst);
        let (mut done, mut copied) = self.run_checkpoint(c, ffi::SQLITE_CHECKPOINT_PASSIVE);
        if finish {
            // What the writers appended while that one ran: first without SQLite's write
            // lock, pass after pass while a pass still finds more than a few frames to
            // copy (each one copies what came during the one before, so the passes get
            // shorter while copying outruns the writers), then the rest with the write
            // lock held (if it is free now): a copy of a few frames for them to wait for.
            // A `close()` waiting for the thread to end does not wait for the passes.
            let stopping = || self.stop.load(SeqCst) == mine;
            for _ in 0..FINISH_PASSES {
                if stopping() {
                    break;
                }
                let before = copied;
                (done, copied) = self.run_checkpoint(c, ffi::SQLITE_CHECKPOINT_PASSIVE);
                if done || copied - before <= FINISH_REST {
                    break;
                }
            }
            if !stopping() {
                done = self.run_checkpoint(c, ffi::SQLITE_CHECKPOINT_RESTART).0;
            }
        }
        self.busy.store(0, SeqCst);
        Some(done)
    }

    /// The thread's connection.
    fn open(&self, flags: OpenFlags) -> Result<Connection> {
        let c = Connection::open_with_flags(&self.path, flags)?;
        // A finishing checkpoint waits a little for SQLite's write lock (writers of other
        // processes take it in turns) and for readers to leave the WAL, then gives up and
        // is tried again later. It waits inside the fork gate: it may hold the write lock
        // meanwhile, which a child of `fork()` must not find taken by a connection it
        // does not have (the engine's own busy handler lets forks through while it sleeps).
        // SAFETY: a live connection; the handler takes no context.
        let rc = unsafe {
            ffi::sqlite3_busy_handler(c.handle(), Some(finish_wait), std::ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None).into());
        }
        // A first read puts a new connection's pager into WAL mode; until then a
        // checkpoint finds no WAL and does nothing.
        c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(c)
    }

    /// One checkpoint of `mode` on the thread's connection `c`: whether it copied the
    /// whole WAL, and the frames of it copied back so far.
    fn run_checkpoint(&self, c: &Connection, mode: c_int) -> (bool, i64) {
        let (mut log, mut copied) = (0, 0);
        // SAFETY: a live connection of this thread and two outputs of ours. A busy result
        // (another checkpoint, a WAL restart) is retried at the next poll.
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                c.handle(),
                std::ptr::null(),
                mode,
                &mut log,
                &mut copied,
            )
        };
        if rc == ffi::SQLITE_OK && copied >= 0 {
            self.backfilled.store(i64::from(copied), SeqCst);
        }
        self.done.fetch_add(1, SeqCst);
        (
            rc == ffi::SQLITE_OK && copied == log,
            i64::from(copied.max(0)),
        )
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
    /// connection (a later commit may start a new one).
    pub fn stop(&self) {
        let mine = me();
        if self.running.load(SeqCst) != mine {
            return;
        }
        self.stop.store(mine, SeqCst);
        rouse(&self.napping);
        let start = Instant::now();
        while self.running.load(SeqCst) == mine && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = self.stop.compare_exchange(mine, 0, SeqCst, SeqCst);
    }
}

/// Waits up to `limit` unless `ready()` (checked after announcing the wait, so that a
/// [`rouse`] in between is not lost) or until a [`rouse`] of `word`.
fn nap(word: &AtomicU32, limit: Duration, ready: impl Fn() -> bool) {
    word.store(1, SeqCst);
    if !ready() {
        #[cfg(target_os = "linux")]
        {
            let ts = libc::timespec {
                tv_sec: libc::time_t::try_from(limit.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(limit.subsec_nanos() as i32),
            };
            // SAFETY: a futex wait on an `AtomicU32` of ours (a `u32` in memory) while it
            // is still 1, with a relative timeout; it returns at once otherwise.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    1u32,
                    &ts as *const libc::timespec,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        std::thread::sleep(POLL.min(limit));
    }
    word.store(0, SeqCst);
}

/// Ends a [`nap`] on `word`, if one is under way.
fn rouse(word: &AtomicU32) {
    if word.swap(0, SeqCst) == 1 {
        #[cfg(target_os = "linux")]
        // SAFETY: a futex wake on an `AtomicU32` of ours.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1i32,
            );
        }
    }
}

/// The busy handler of the thread's connection: up to [`FINISH_TRIES`] pauses, inside the
/// fork gate.
extern "C" fn finish_wait(_ctx: *mut c_void, attempt: c_int) -> c_int {
    if attempt >= FINISH_TRIES {
        return 0;
    }
    std::thread::sleep(FINISH_PAUSE);
    1
}

/// The name of the hook state in the connection's client data.
const HOOK_KEY: &CStr = c"diskstore.checkpoint";

/// The hooks' state of one connection (owned by the connection: its client data). The
/// hooks run on the thread that runs the connection's statement, one at a time.
struct Hooked {
    db: *mut ffi::sqlite3,
    ck: Arc<Checkpointer>,
    /// A row changed since the last commit or rollback (the update hook).
    changed: Cell<bool>,
    /// The connection's `wal_autocheckpoint` while a commit borrows its WAL hook.
    limit: Cell<c_int>,
}

impl Hooked {
    /// Puts SQLite's own WAL hook back with the connection's limit, if a commit borrowed
    /// it; returns that limit.
    ///
    /// # Safety
    /// `self.db` is live and used by this thread.
    unsafe fn give_back(&self, ours: *mut c_void) -> c_int {
        // SAFETY: per the contract. `sqlite3_wal_autocheckpoint` sets SQLite's own hook
        // with the limit (or none for 0), which is what `sqlite3_wal_hook` took away:
        // `wal_autocheckpoint` installs nothing else.
        unsafe {
            let prev = ffi::sqlite3_wal_hook(self.db, None, std::ptr::null_mut());
            let limit = if prev == ours {
                self.limit.get()
            } else {
                prev as isize as c_int
            };
            ffi::sqlite3_wal_autocheckpoint(self.db, limit);
            limit
        }
    }
}

/// Frees the hooks' state when SQLite drops the connection's client data, and first takes
/// the hooks off the connection: `sqlite3_close` drops client data *before* it rolls back a
/// transaction still open, which calls the rollback hook (found as a use-after-free
/// segfault when a store was closed inside a transaction).
unsafe extern "C" fn free_hooked(p: *mut c_void) {
    // SAFETY: the box `install` leaked, freed once by SQLite, while the connection is
    // still open (SQLite drops client data before the connection becomes a zombie).
    let h = unsafe { Box::from_raw(p.cast::<Hooked>()) };
    // SAFETY: `h.db` is the open connection being closed, on the thread closing it.
    unsafe {
        ffi::sqlite3_update_hook(h.db, None, std::ptr::null_mut());
        ffi::sqlite3_commit_hook(h.db, None, std::ptr::null_mut());
        ffi::sqlite3_rollback_hook(h.db, None, std::ptr::null_mut());
        // A WAL hook a commit borrowed goes back to SQLite's own, with its limit.
        h.give_back(p);
    }
}

/// The commit hook: borrows the WAL hook for a commit that changed a row (SQLite's own
/// hook's argument, the connection's limit, is kept for `on_wal`).
unsafe extern "C" fn before_commit(ctx: *mut c_void) -> c_int {
    // SAFETY: `ctx` is the connection's live `Hooked` (see `install`).
    let h = unsafe { &*ctx.cast::<Hooked>() };
    if h.changed.replace(false) {
        // SAFETY: as above; `ctx` lives as long as the connection.
        let prev = unsafe { ffi::sqlite3_wal_hook(h.db, Some(on_wal), ctx) };
        if prev != ctx {
            h.limit.set(prev as isize as c_int);
        }
    }
    0
}

/// The update hook: notes that the transaction changed a row, so that its commit writes
/// WAL frames (a commit that writes none gets no WAL callback to give the hook back).
unsafe extern "C" fn on_change(
    ctx: *mut c_void,
    _op: c_int,
    _db: *const c_char,
    _table: *const c_char,
    _rowid: ffi::sqlite3_int64,
) {
    // SAFETY: `ctx` is the connection's live `Hooked`, on the connection's thread.
    unsafe { &*ctx.cast::<Hooked>() }.changed.set(true);
}

/// The rollback hook: a commit that failed after its commit hook gets no WAL callback.
unsafe extern "C" fn after_rollback(ctx: *mut c_void) {
    // SAFETY: `ctx` is the connection's live `Hooked`, on the connection's thread.
    let h = unsafe { &*ctx.cast::<Hooked>() };
    h.changed.set(false);
    // SAFETY: as above.
    unsafe { h.give_back(ctx) };
}

/// The borrowed WAL hook (see the module doc): gives SQLite's hook back, then runs the
/// checkpointer's policy for the main database (an attached one gets SQLite's).
unsafe extern "C" fn on_wal(
    ctx: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `ctx` is the connection's live `Hooked`, on the connection's thread.
    let h = unsafe { &*ctx.cast::<Hooked>() };
    let limit = unsafe { h.give_back(ctx) };
    if limit <= 0 {
        return ffi::SQLITE_OK;
    }
    // SAFETY: SQLite passes the schema name as a C string.
    let main = name.is_null() || unsafe { CStr::from_ptr(name) } == c"main";
    if !main {
        if frames >= limit {
            // SAFETY: the committing connection and the schema name SQLite passed.
            unsafe { ffi::sqlite3_wal_checkpoint(db, name) };
        }
        return ffi::SQLITE_OK;
    }
    h.ck.after_commit(db, name, i64::from(frames), i64::from(limit));
    ffi::SQLITE_OK
}
