//! What `fork()` needs: a generation counter that tells inherited connections apart, and
//! SQLite's global mutexes held across the fork itself.
//!
//! A child of `fork()` never touches a connection it inherited (closing it could release
//! the parent's POSIX locks): connections and writer-lock owners carry the generation they
//! were made in, and an older generation means "inherited, abandon".
//!
//! SQLite keeps mutexes and lock bookkeeping that a child of `fork()` inherits as they
//! were at that instant: process-wide ones (memory accounting, the page-cache LRU, the
//! Unix VFS's inode table) and per-file ones (a file's lock and shared-memory mutexes,
//! which a new connection in the child shares with the inherited ones). If another thread
//! held one at the fork, the child's first SQLite call on that file hangs for ever (or
//! finds a lock "held" that no process holds). A `pthread_atfork` prepare handler closes
//! that window in two steps:
//!
//! 1. the *gate*: every call of ours into SQLite runs inside [`enter`]; the handler stops
//!    new entries and waits until no other thread is inside (threads waiting for another
//!    process's lock in the busy handler step out while they sleep; a thread that cannot
//!    come out within [`GATE_WAIT`], e.g. one waiting for a lock the forking thread holds,
//!    is waited for no longer: the fork goes ahead as it would without the gate);
//! 2. it takes SQLite's static mutexes (in SQLite's nesting order, outermost first), for
//!    other users of this SQLite in the process; the parent and child handlers release
//!    them and open the gate.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use rusqlite::ffi;
use thread_local::ThreadLocal;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Set while a fork is being prepared: no thread enters SQLite meanwhile.
static FORKING: AtomicBool = AtomicBool::new(false);

/// Per thread: how deep it is inside calls into SQLite (only its own thread writes it).
static INSIDE: ThreadLocal<AtomicU32> = ThreadLocal::new();

/// How long a fork waits for the other threads to leave SQLite.
pub(crate) const GATE_WAIT: Duration = Duration::from_secs(2);

thread_local! {
    /// This thread's counter in [`INSIDE`] (looked up once per thread).
    static MINE: Cell<Option<&'static AtomicU32>> = const { Cell::new(None) };
}

fn mine() -> &'static AtomicU32 {
    MINE.with(|m| match m.get() {
        Some(c) => c,
        None => {
            let c = INSIDE.get_or(AtomicU32::default);
            m.set(Some(c));
            c
        }
    })
}

/// Marks this thread as inside SQLite until the guard drops; waits first while a fork is
/// being prepared.
pub(crate) fn enter() -> Inside {
    let c = mine();
    let depth = c.load(Ordering::Relaxed);
    if depth == 0 {
        arrive(c, 1);
    } else {
        c.store(depth + 1, Ordering::Relaxed);
    }
    Inside(c)
}

/// Counts this thread inside SQLite at `depth` (from 0), first waiting while a fork is
/// being prepared.
fn arrive(c: &AtomicU32, depth: u32) {
    c.store(depth, Ordering::Relaxed);
    // Pairs with the fence in `close_gate`: either it sees us inside, or we see it forking.
    fence(Ordering::SeqCst);
    while FORKING.load(Ordering::Relaxed) {
        c.store(0, Ordering::Release);
        while FORKING.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        c.store(depth, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }
}

/// A thread's presence inside SQLite (see [`enter`]).
pub struct Inside(&'static AtomicU32);

impl Drop for Inside {
    fn drop(&mut self) {
        let depth = self.0.load(Ordering::Relaxed);
        self.0.store(depth.saturating_sub(1), Ordering::Release);
    }
}

/// Runs `f` (a sleep while waiting for another process's lock) with this thread counted
/// outside SQLite, so that a fork need not wait for it.
pub(crate) fn step_out<R>(f: impl FnOnce() -> R) -> R {
    let c = mine();
    let depth = c.swap(0, Ordering::Release);
    let r = f();
    if depth > 0 {
        arrive(c, depth);
    }
    r
}

/// Waits (up to [`GATE_WAIT`]) until no thread but this one is inside SQLite.
fn close_gate() {
    FORKING.store(true, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let me: *const AtomicU32 = mine();
    let start = Instant::now();
    while INSIDE
        .iter()
        .any(|c| !std::ptr::eq(c, me) && c.load(Ordering::Acquire) > 0)
        && start.elapsed() < GATE_WAIT
    {
        std::thread::yield_now();
    }
}

/// SQLite's static mutexes, outermost first: a thread holding one of these may take a
/// later one (e.g. the VFS mutex, then the allocator's), never an earlier one.
const STATIC_MUTEXES: [std::ffi::c_int; 12] = [
    ffi::SQLITE_MUTEX_STATIC_OPEN,
    ffi::SQLITE_MUTEX_STATIC_MAIN,
    ffi::SQLITE_MUTEX_STATIC_VFS1,
    ffi::SQLITE_MUTEX_STATIC_VFS2,
    ffi::SQLITE_MUTEX_STATIC_VFS3,
    ffi::SQLITE_MUTEX_STATIC_APP1,
    ffi::SQLITE_MUTEX_STATIC_APP2,
    ffi::SQLITE_MUTEX_STATIC_APP3,
    ffi::SQLITE_MUTEX_STATIC_PRNG,
    ffi::SQLITE_MUTEX_STATIC_LRU,
    ffi::SQLITE_MUTEX_STATIC_PMEM,
    ffi::SQLITE_MUTEX_STATIC_MEM,
];

fn for_each_mutex(f: impl Fn(*mut ffi::sqlite3_mutex), reverse: bool) {
    let mut ids = STATIC_MUTEXES;
    if reverse {
        ids.reverse();
    }
    for id in ids {
        // SAFETY: SQLite is initialised (the hook is installed after the first connection
        // opened); a static mutex is never freed, and null (no mutexing) is skipped.
        let m = unsafe { ffi::sqlite3_mutex_alloc(id) };
        if !m.is_null() {
            f(m);
        }
    }
}

extern "C" fn prepare() {
    close_gate();
    // SAFETY: static mutexes, entered in nesting order; released by `parent`/`child`.
    for_each_mutex(|m| unsafe { ffi::sqlite3_mutex_enter(m) }, false);
}

extern "C" fn parent() {
    // SAFETY: this thread entered every one of them in `prepare`.
    for_each_mutex(|m| unsafe { ffi::sqlite3_mutex_leave(m) }, true);
    FORKING.store(false, Ordering::Release);
}

extern "C" fn child() {
    // SAFETY: the child's only thread is the one that entered them in `prepare`.
    for_each_mutex(|m| unsafe { ffi::sqlite3_mutex_leave(m) }, true);
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // The other threads do not exist here: none of them is inside anything.
    let me: *const AtomicU32 = mine();
    for c in INSIDE.iter() {
        if !std::ptr::eq(c, me) {
            c.store(0, Ordering::Relaxed);
        }
    }
    FORKING.store(false, Ordering::Release);
}

/// The current fork generation: it changes in a child of `fork()`. The first call
/// installs the at-fork handlers; call it only once SQLite is initialised (a connection
/// has been opened).
pub(crate) fn generation() -> u64 {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: the handlers only enter/leave SQLite's static mutexes and bump an atomic.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
    });
    GENERATION.load(Ordering::Relaxed)
}

/// The current generation without installing anything (for drops).
pub(crate) fn current() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}
