//! The in-process writer lock: one per file, shared by every handle of that file in this
//! process, so that writers queue here and SQLite's busy handler (`busy.rs`) is reached
//! only by contention between processes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fork;

/// Serialises the writers of one file inside this process.
#[derive(Default)]
pub(crate) struct WriterLock {
    state: Mutex<LockState>,
    freed: Condvar,
}

#[derive(Default)]
struct LockState {
    /// The holding thread and the fork generation it took the lock in.
    owner: Option<(ThreadId, u64)>,
    /// Threads waiting in `lock` (so that an uncontended unlock makes no wake-up syscall).
    waiters: usize,
}

/// Holds the writer lock until dropped.
#[must_use]
pub(crate) struct WriterGuard(Arc<WriterLock>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl WriterLock {
    /// The writer lock of the file at `path` (a canonical path), shared by every handle
    /// of it in this process.
    pub(crate) fn of(path: &Path) -> Arc<WriterLock> {
        static LOCKS: Mutex<Vec<(PathBuf, std::sync::Weak<WriterLock>)>> = Mutex::new(Vec::new());
        let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|(_, w)| w.strong_count() > 0);
        if let Some(lock) = locks
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, w)| w.upgrade())
        {
            return lock;
        }
        let lock = Arc::new(WriterLock::default());
        locks.push((path.to_owned(), Arc::downgrade(&lock)));
        lock
    }

    /// Waits up to `timeout` for the lock. A thread that holds it already gets an
    /// immediate [`Error::Usage`] instead of waiting for itself.
    pub(crate) fn lock(self: &Arc<Self>, timeout: Duration, path: &Path) -> Result<WriterGuard> {
        let me = std::thread::current().id();
        let generation = fork::generation();
        let start = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match state.owner {
                // A holder from before fork() does not exist in this process.
                Some((_, g)) if g != generation => break,
                None => break,
                Some((t, _)) if t == me => {
                    return Err(Error::Usage(format!(
                        "this thread already holds the write lock of {} through another \
                         handle opened with different settings (read-only, timeout or \
                         pragmas); write through the handle that opened the transaction",
                        path.display()
                    )));
                }
                Some(_) => {}
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::Busy {
                    path: path.to_owned(),
                    waited,
                });
            }
            state.waiters += 1;
            state = self
                .freed
                .wait_timeout(state, timeout - waited)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            state.waiters -= 1;
        }
        state.owner = Some((me, generation));
        Ok(WriterGuard(Arc::clone(self)))
    }

    fn unlock(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.owner = None;
        if state.waiters > 0 {
            self.freed.notify_one();
        }
    }
}
