//! The in-process writer lock: one per file, shared by every handle of that file in this
//! process, so that writers queue here and SQLite's busy handler (`busy.rs`) is reached
//! only by contention between processes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fork;
use crate::group::{Job, Stage};

/// Serialises the writers of one file inside this process.
#[derive(Default)]
pub(crate) struct WriterLock {
    state: Mutex<LockState>,
    freed: Condvar,
    /// Jobs in `LockState::queue` (read without the mutex by a holder about to unlock).
    queued: AtomicUsize,
}

#[derive(Default)]
struct LockState {
    /// The holding thread and the fork generation it took the lock in.
    owner: Option<(ThreadId, u64)>,
    /// Threads waiting in `lock` (so that an uncontended unlock makes no wake-up syscall).
    waiters: usize,
    /// Autocommitted writes handed to the holder (group commit, see `group.rs`), oldest
    /// first.
    queue: VecDeque<Job>,
    /// The last unlock passed the lock to a queued job's thread (so the next one, when a
    /// thread waits in `lock`, lets that thread have it: neither side starves).
    last_to_queue: bool,
}

/// What [`WriterLock::lock_or_queue`] got.
pub(crate) enum Handed {
    /// The lock, and the job back (the caller runs it itself).
    Locked(WriterGuard, Job),
    /// The job was applied by the holder and its group committed (or failed): the outcome.
    Done(Result<()>),
    /// The lock, passed on by its holder: run the queue of this group, own job included.
    Promoted(WriterGuard),
}

/// Holds the writer lock until dropped.
#[must_use]
pub(crate) struct WriterGuard(Arc<WriterLock>);

impl WriterGuard {
    /// True when this guard holds `lock`.
    pub(crate) fn is_of(&self, lock: &Arc<WriterLock>) -> bool {
        Arc::ptr_eq(&self.0, lock)
    }
}

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

    /// True when the lock is free for this thread (a holder from before fork() does not
    /// exist in this process, nor do its queued jobs); a self-deadlock is an error.
    fn free(
        &self,
        state: &mut LockState,
        me: ThreadId,
        generation: u64,
        path: &Path,
    ) -> Result<bool> {
        if state
            .queue
            .front()
            .is_some_and(|j| j.generation != generation)
        {
            // A child of fork(): the parent's callers do not exist here. Their jobs are
            // forgotten, not dropped (a ticket's mutex may have been held at the fork).
            for job in std::mem::take(&mut state.queue) {
                if job.generation == generation {
                    state.queue.push_back(job);
                } else {
                    std::mem::forget(job);
                }
            }
            self.queued.store(state.queue.len(), Ordering::Relaxed);
        }
        match state.owner {
            Some((_, g)) if g != generation => Ok(true),
            None => Ok(true),
            Some((t, _)) if t == me => Err(Error::Usage(format!(
                "this thread already holds the write lock of {}: through another handle \
                 opened with different settings (read-only, timeout or pragmas), whose \
                 transaction this write cannot join, or inside a lookup's row callback; \
                 write through the handle that opened the transaction, after the lookup",
                path.display()
            ))),
            Some(_) => Ok(false),
        }
    }

    /// Takes the lock for a lookup if it is free now and no writer waits for it (queued or
    /// in `lock`), without waiting: lookups never make a writer wait longer.
    pub(crate) fn try_lock_idle(self: &Arc<Self>, path: &Path) -> Result<Option<WriterGuard>> {
        let me = std::thread::current().id();
        let generation = fork::generation();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !self.free(&mut state, me, generation, path)?
            || state.waiters > 0
            || !state.queue.is_empty()
        {
            return Ok(None);
        }
        state.owner = Some((me, generation));
        Ok(Some(WriterGuard(Arc::clone(self))))
    }

    /// Takes the lock if it is free now, without waiting.
    pub(crate) fn try_lock(self: &Arc<Self>, path: &Path) -> Result<Option<WriterGuard>> {
        let me = std::thread::current().id();
        let generation = fork::generation();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !self.free(&mut state, me, generation, path)? {
            return Ok(None);
        }
        state.owner = Some((me, generation));
        Ok(Some(WriterGuard(Arc::clone(self))))
    }

    /// Takes the lock if it is free, or else queues `job` for the holder and waits up to
    /// `timeout` for it to be applied (or for the lock to be passed to this thread).
    pub(crate) fn lock_or_queue(
        self: &Arc<Self>,
        job: Job,
        timeout: Duration,
        path: &Path,
    ) -> Result<Handed> {
        let me = std::thread::current().id();
        let generation = fork::generation();
        let ticket = Arc::clone(&job.ticket);
        let start = Instant::now();
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if self.free(&mut state, me, generation, path)? {
                state.owner = Some((me, generation));
                return Ok(Handed::Locked(WriterGuard(Arc::clone(self)), job));
            }
            state.queue.push_back(job);
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        let mut limit = Some(timeout);
        loop {
            match ticket.wait(limit) {
                Stage::Done(r) => return Ok(Handed::Done(r)),
                Stage::Promoted => return Ok(Handed::Promoted(WriterGuard(Arc::clone(self)))),
                Stage::Pending => {}
            }
            // The time is up: take the job back if it is still queued; once a holder has
            // taken it, its outcome is waited for (it borrows from this caller).
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.owner == Some((me, generation)) {
                // Passed to this thread just now: its ticket says so (or will).
                drop(state);
                limit = None;
                continue;
            }
            if let Some(i) = state
                .queue
                .iter()
                .position(|j| Arc::ptr_eq(&j.ticket, &ticket))
            {
                if let Some(job) = state.queue.remove(i) {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    drop(job.take_back());
                }
                return Err(Error::Busy {
                    path: path.to_owned(),
                    waited: start.elapsed(),
                });
            }
            limit = None;
        }
    }

    /// How many jobs are queued (a hint, read without locking).
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// True when jobs of `group` are queued.
    pub(crate) fn has_jobs(&self, group: usize) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.queue.iter().any(|j| j.group == group)
    }

    /// Takes the job of `ticket` out of the queue, unrun, if it is there.
    pub(crate) fn withdraw(&self, ticket: &Arc<crate::group::Ticket>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = state
            .queue
            .iter()
            .position(|j| Arc::ptr_eq(&j.ticket, ticket))
            && let Some(job) = state.queue.remove(i)
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            drop(job.take_back());
        }
    }

    /// Takes the queued jobs of `group` (the holder applies them).
    pub(crate) fn take_jobs(&self, group: usize) -> Vec<Job> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = fork::generation();
        let mut mine = Vec::new();
        let mut rest = VecDeque::with_capacity(state.queue.len());
        for job in std::mem::take(&mut state.queue) {
            if job.group == group && job.generation == generation {
                mine.push(job);
            } else {
                rest.push_back(job);
            }
        }
        state.queue = rest;
        self.queued.store(state.queue.len(), Ordering::Relaxed);
        mine
    }

    /// Waits up to `timeout` for the lock. A thread that holds it already gets an
    /// immediate [`Error::Usage`] instead of waiting for itself.
    pub(crate) fn lock(self: &Arc<Self>, timeout: Duration, path: &Path) -> Result<WriterGuard> {
        let me = std::thread::current().id();
        let generation = fork::generation();
        let start = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.free(&mut state, me, generation, path)? {
                break;
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

    /// Frees the lock, or passes it to the thread of the oldest queued job (which then
    /// applies its group's jobs), taking turns with threads waiting in `lock`.
    fn unlock(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = fork::current();
        let to_queue = !state.queue.is_empty() && (state.waiters == 0 || !state.last_to_queue);
        let next = state
            .queue
            .iter()
            .find(|j| j.generation == generation)
            .map(|j| (j.thread, Arc::clone(&j.ticket)));
        if to_queue && let Some((thread, ticket)) = next {
            state.owner = Some((thread, generation));
            state.last_to_queue = true;
            ticket.set(Stage::Promoted);
            return;
        }
        state.owner = None;
        state.last_to_queue = false;
        if state.waiters > 0 {
            self.freed.notify_one();
        }
    }
}
