//! The in-process writer lock: one per file, shared by every handle of that file in this
//! process, so that writers queue here and SQLite's busy handler (`busy.rs`) is reached
//! only by contention between processes.
//!
//! Writers take it under its mutex. A lookup borrows it without the mutex
//! ([`WriterLock::try_lookup`]): one compare-and-swap of the lock's state word from 0 (no
//! holder, nobody waiting or queued) to "held by a lookup", and one back. Every other taker
//! claims the word with a compare-and-swap too (under the mutex), so the two never hold
//! it at once; a writer that finds a lookup holding it marks the word contended, which
//! sends the lookup's release through the mutex to hand the lock on.

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fork;
use crate::group::{Job, Stage};

/// [`WriterLock::word`]: a writer (under the mutex) owns the lock.
const HELD: u64 = 1;
/// [`WriterLock::word`]: threads wait in `lock` or jobs are queued.
const CONTENDED: u64 = 2;
/// [`WriterLock::word`]: a lookup holds the lock; the bits from [`GEN_SHIFT`] up hold the
/// fork generation it was taken in.
const LOOKUP: u64 = 4;
const GEN_SHIFT: u32 = 3;

/// The error of a thread that would wait for the writer lock it holds itself.
fn held_already(path: &Path) -> Error {
    Error::Usage(format!(
        "this thread already holds the write lock of {}: through another handle opened \
         with different settings (read-only, timeout or pragmas), whose transaction this \
         write cannot join, or inside a lookup's row callback; write through the handle \
         that opened the transaction, after the lookup",
        path.display()
    ))
}

/// Serialises the writers of one file inside this process.
#[derive(Default)]
pub(crate) struct WriterLock {
    state: Mutex<LockState>,
    freed: Condvar,
    /// Jobs in `LockState::queue` (read without the mutex by a holder about to unlock).
    queued: AtomicUsize,
    /// 0 when nobody holds the lock and nobody waits for it; else [`HELD`] and
    /// [`CONTENDED`] (kept by the mutex's holders) and a lookup's [`LOOKUP`] bits (set and
    /// cleared by the lookup, from and to 0 only, unless contended).
    word: AtomicU64,
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

/// Proof that the writer lock is held: a [`WriterGuard`] or a [`LookupGuard`].
pub(crate) trait Holds {
    /// True when this guard holds `lock`.
    fn is_of(&self, lock: &WriterLock) -> bool;
}

/// Holds the writer lock until dropped.
#[must_use]
pub(crate) struct WriterGuard(Arc<WriterLock>);

impl Holds for WriterGuard {
    fn is_of(&self, lock: &WriterLock) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.0), lock)
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

thread_local! {
    /// The lock this thread holds for a lookup now (its address; 0 for none), so that a
    /// write from inside the lookup fails instead of waiting for itself.
    static LOOKING: Cell<usize> = const { Cell::new(0) };
}

/// Holds the writer lock for one lookup (see [`WriterLock::try_lookup`]) until dropped.
#[must_use]
pub(crate) struct LookupGuard<'a> {
    lock: &'a WriterLock,
    word: u64,
    /// What [`LOOKING`] held before (a lookup of another file this one runs inside).
    outer: usize,
    /// Released on the thread that took it (it restores that thread's [`LOOKING`]).
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Holds for LookupGuard<'_> {
    fn is_of(&self, lock: &WriterLock) -> bool {
        std::ptr::eq(self.lock, lock)
    }
}

impl Drop for LookupGuard<'_> {
    fn drop(&mut self) {
        LOOKING.set(self.outer);
        let lock = self.lock;
        if lock
            .word
            .compare_exchange(self.word, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // A writer came meanwhile and marked the word: hand the lock on under the mutex
            // (inside the fork gate, so that no fork finds the mutex held by this thread).
            let _inside = fork::enter();
            let mut state = lock.state.lock().unwrap_or_else(|p| p.into_inner());
            lock.word
                .fetch_and(!(LOOKUP | (u64::MAX << GEN_SHIFT)), Ordering::Release);
            lock.hand_on(&mut state);
        }
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
            self.sync_word(state);
        }
        match state.owner {
            Some((_, g)) if g != generation => Ok(true),
            None => Ok(true),
            Some((t, _)) if t == me => Err(held_already(path)),
            Some(_) => Ok(false),
        }
    }

    /// Takes the lock for a lookup if nobody holds it and no writer waits for it (queued or
    /// in `lock`), without waiting and without the mutex: lookups never make a writer wait
    /// longer. `None` also when this thread holds it already.
    pub(crate) fn try_lookup(&self, generation: u64) -> Option<LookupGuard<'_>> {
        let word = LOOKUP | (generation << GEN_SHIFT);
        self.word
            .compare_exchange(0, word, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let outer = LOOKING.replace(std::ptr::from_ref(self) as usize);
        Some(LookupGuard {
            lock: self,
            word,
            outer,
            _not_send: std::marker::PhantomData,
        })
    }

    /// Under the mutex, with the owner free: claims the word for a writer unless a lookup
    /// of this process holds it (one inherited across fork() does not exist here).
    fn claim_word(&self, generation: u64) -> bool {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if w & LOOKUP != 0 && w >> GEN_SHIFT == generation {
                return false;
            }
            let new = (w & CONTENDED) | HELD;
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
    }

    /// Under the mutex: takes the lock for `me` if it is free (see [`Self::free`]) and no
    /// lookup holds it. When a lookup does, the word is marked contended first, so that
    /// the lookup's release hands the lock on through the mutex (to a waiter or a queued
    /// job of the caller's).
    fn take(
        &self,
        state: &mut LockState,
        me: ThreadId,
        generation: u64,
        path: &Path,
    ) -> Result<bool> {
        if !self.free(state, me, generation, path)? {
            return Ok(false);
        }
        if !self.claim_word(generation) {
            if LOOKING.get() == std::ptr::from_ref(self) as usize {
                return Err(held_already(path));
            }
            self.word.fetch_or(CONTENDED, Ordering::AcqRel);
            // The lookup may have left just before the mark.
            if !self.claim_word(generation) {
                return Ok(false);
            }
        }
        state.owner = Some((me, generation));
        self.sync_word(state);
        Ok(true)
    }

    /// Under the mutex: sets [`HELD`] and [`CONTENDED`] from `state`, keeping a lookup's
    /// bits.
    fn sync_word(&self, state: &LockState) {
        let flags = if state.owner.is_some() { HELD } else { 0 }
            | if state.waiters > 0 || !state.queue.is_empty() {
                CONTENDED
            } else {
                0
            };
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            let new = (w & !(HELD | CONTENDED)) | flags;
            if new == w {
                return;
            }
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// Takes the lock if it is free now, without waiting.
    pub(crate) fn try_lock(self: &Arc<Self>, path: &Path) -> Result<Option<WriterGuard>> {
        let me = std::thread::current().id();
        let generation = fork::generation();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !self.take(&mut state, me, generation, path)? {
            return Ok(None);
        }
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
            if self.take(&mut state, me, generation, path)? {
                return Ok(Handed::Locked(WriterGuard(Arc::clone(self)), job));
            }
            state.queue.push_back(job);
            self.queued.fetch_add(1, Ordering::Relaxed);
            self.sync_word(&state);
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
                    self.sync_word(&state);
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
            self.sync_word(&state);
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
        self.sync_word(&state);
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
            if self.take(&mut state, me, generation, path)? {
                break;
            }
            let waited = start.elapsed();
            if waited >= timeout {
                self.sync_word(&state);
                return Err(Error::Busy {
                    path: path.to_owned(),
                    waited,
                });
            }
            state.waiters += 1;
            self.sync_word(&state);
            state = self
                .freed
                .wait_timeout(state, timeout - waited)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            // The word stays contended until `take` (or the timeout) updates it, so that no
            // lookup slips in between this thread's wake-up and its claim.
            state.waiters -= 1;
        }
        Ok(WriterGuard(Arc::clone(self)))
    }

    /// Frees the lock, or passes it to the thread of the oldest queued job (which then
    /// applies its group's jobs), taking turns with threads waiting in `lock`.
    fn unlock(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.hand_on(&mut state);
    }

    /// Under the mutex, as the holder lets go: passes the lock to a queued job's thread or
    /// frees it (waking a waiter), and updates the word.
    fn hand_on(&self, state: &mut LockState) {
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
            self.sync_word(state);
            ticket.set(Stage::Promoted);
            return;
        }
        state.owner = None;
        state.last_to_queue = false;
        self.sync_word(state);
        if state.waiters > 0 {
            self.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    const LONG: Duration = Duration::from_secs(30);

    fn path() -> &'static Path {
        Path::new("test.db")
    }

    fn word(lock: &WriterLock) -> u64 {
        lock.word.load(Ordering::SeqCst)
    }

    /// Waits until a writer has marked the word contended (it waits or queued).
    fn until_contended(lock: &WriterLock) {
        while word(lock) & CONTENDED == 0 {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_lookup_takes_only_a_free_uncontended_lock_and_leaves_it_free() {
        let lock = Arc::new(WriterLock::default());
        let g = lock.try_lookup(fork::current()).expect("free");
        assert!(
            lock.try_lookup(fork::current()).is_none(),
            "held by a lookup"
        );
        drop(g);
        assert_eq!(word(&lock), 0);
        let w = lock.try_lock(path()).unwrap().expect("free");
        assert!(
            lock.try_lookup(fork::current()).is_none(),
            "held by a writer"
        );
        drop(w);
        assert_eq!(word(&lock), 0);
        assert!(lock.try_lookup(fork::current()).is_some());
        assert_eq!(word(&lock), 0);
    }

    #[test]
    fn a_writer_waiting_for_a_lookup_gets_the_lock_when_it_ends() {
        let lock = Arc::new(WriterLock::default());
        let g = lock.try_lookup(fork::current()).expect("free");
        // Neither a try_lock nor a waiting writer (of other threads) takes it from the
        // lookup.
        let other = Arc::clone(&lock);
        let tried = std::thread::spawn(move || other.try_lock(path()).map(|g| g.is_some()));
        assert!(!tried.join().unwrap().unwrap());
        let waiter = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || lock.lock(LONG, path()).map(drop))
        };
        until_contended(&lock);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !waiter.is_finished(),
            "took the lock while a lookup held it"
        );
        // Nor does a second lookup slip in while a writer waits.
        assert!(lock.try_lookup(fork::current()).is_none());
        drop(g);
        waiter.join().unwrap().unwrap();
        assert_eq!(word(&lock), 0);
    }

    #[test]
    fn no_lookup_slips_in_between_a_waiting_writer_and_its_turn() {
        let lock = Arc::new(WriterLock::default());
        let got = Arc::new(AtomicBool::new(false));
        for _ in 0..50 {
            got.store(false, Ordering::SeqCst);
            let g = lock.try_lookup(fork::current()).expect("free");
            let waiter = {
                let (lock, got) = (Arc::clone(&lock), Arc::clone(&got));
                std::thread::spawn(move || {
                    let w = lock.lock(LONG, path()).unwrap();
                    got.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    drop(w);
                })
            };
            until_contended(&lock);
            drop(g);
            // From the release until the waiter has had its turn, lookups keep out: one
            // that gets in must come after the waiter's turn.
            while !got.load(Ordering::SeqCst) {
                if let Some(l) = lock.try_lookup(fork::current()) {
                    assert!(got.load(Ordering::SeqCst), "a lookup cut in");
                    drop(l);
                }
            }
            waiter.join().unwrap();
        }
        assert_eq!(word(&lock), 0);
    }

    #[test]
    fn a_write_queued_behind_a_lookup_is_handed_the_lock_when_it_ends() {
        let lock = Arc::new(WriterLock::default());
        let g = lock.try_lookup(fork::current()).expect("free");
        let queued = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let work: crate::group::Work<'_> = Box::new(|_| true);
                // SAFETY: the job is finished below (or taken back) before this returns.
                let job = unsafe { Job::new(7, fork::current(), work) };
                match lock.lock_or_queue(job, LONG, path()).unwrap() {
                    Handed::Promoted(guard) => {
                        for job in lock.take_jobs(7) {
                            job.finish(&Ok(()));
                        }
                        drop(guard);
                        "promoted"
                    }
                    Handed::Locked(..) => "locked",
                    Handed::Done(_) => "done",
                }
            })
        };
        until_contended(&lock);
        drop(g);
        assert_eq!(queued.join().unwrap(), "promoted");
        assert_eq!(word(&lock), 0);
    }

    #[test]
    fn a_write_from_inside_this_threads_lookup_fails_at_once() {
        let lock = Arc::new(WriterLock::default());
        let g = lock.try_lookup(fork::current()).expect("free");
        let start = Instant::now();
        assert!(matches!(lock.lock(LONG, path()), Err(Error::Usage(_))));
        assert!(matches!(lock.try_lock(path()), Err(Error::Usage(_))));
        assert!(start.elapsed() < Duration::from_secs(5));
        // A lookup of another file inside it does not hide it.
        let other = WriterLock::default();
        drop(other.try_lookup(fork::current()).expect("free"));
        assert!(matches!(lock.lock(LONG, path()), Err(Error::Usage(_))));
        drop(g);
        drop(lock.lock(LONG, path()).unwrap());
        assert_eq!(word(&lock), 0);
    }

    #[test]
    fn lookups_and_writers_never_hold_the_lock_at_once() {
        let lock = Arc::new(WriterLock::default());
        let inside = Arc::new(AtomicBool::new(false));
        let lookups = Arc::new(AtomicUsize::new(0));
        let enter = |inside: &AtomicBool| {
            assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
            std::hint::spin_loop();
            inside.store(false, Ordering::SeqCst);
        };
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (lock, inside, lookups) =
                    (Arc::clone(&lock), Arc::clone(&inside), Arc::clone(&lookups));
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        match (t + i) % 4 {
                            0 => {
                                let g = lock.lock(LONG, path()).unwrap();
                                enter(&inside);
                                drop(g);
                            }
                            1 => {
                                if let Some(g) = lock.try_lock(path()).unwrap() {
                                    enter(&inside);
                                    drop(g);
                                }
                            }
                            _ => {
                                if let Some(g) = lock.try_lookup(fork::current()) {
                                    enter(&inside);
                                    lookups.fetch_add(1, Ordering::Relaxed);
                                    drop(g);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(lookups.load(Ordering::Relaxed) > 0);
        assert_eq!(word(&lock), 0, "the word must come back to free");
    }
}
