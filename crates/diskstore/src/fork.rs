//! What `fork()` needs: a generation counter that tells inherited connections apart, and
//! SQLite's global mutexes held across the fork itself.
//!
//! A child of `fork()` never touches a connection it inherited (closing it could release
//! the parent's POSIX locks): connections and writer-lock owners carry the generation they
//! were made in, and an older generation means "inherited, abandon".
//!
//! SQLite keeps a few process-wide mutexes (memory accounting, the page-cache LRU, the
//! Unix VFS's inode table, …). If another thread holds one at the instant of `fork()`, the
//! child inherits it locked, with no thread to unlock it, and its first SQLite call hangs
//! for ever. We bundle SQLite, so we can close that window: a `pthread_atfork` prepare
//! handler takes all of them (in SQLite's own nesting order, outermost first), and the
//! parent and child handlers release them, so the fork happens while no other thread is
//! inside those critical sections.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::ffi;

static GENERATION: AtomicU64 = AtomicU64::new(0);

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
    // SAFETY: static mutexes, entered in nesting order; released by `parent`/`child`.
    for_each_mutex(|m| unsafe { ffi::sqlite3_mutex_enter(m) }, false);
}

extern "C" fn parent() {
    // SAFETY: this thread entered every one of them in `prepare`.
    for_each_mutex(|m| unsafe { ffi::sqlite3_mutex_leave(m) }, true);
}

extern "C" fn child() {
    // SAFETY: the child's only thread is the one that entered them in `prepare`.
    for_each_mutex(|m| unsafe { ffi::sqlite3_mutex_leave(m) }, true);
    GENERATION.fetch_add(1, Ordering::Relaxed);
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
