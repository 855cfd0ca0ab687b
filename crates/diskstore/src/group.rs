//! Group commit: autocommitted writes that find the file's writer lock taken are handed to
//! the thread holding it, which applies them in one transaction, each in its own savepoint,
//! and commits once.
//!
//! A caller that hands its write over ([`Job`]) blocks until the job is finished: applied
//! and committed (or failed), or taken back by the caller itself (its timeout passed while
//! the job was still queued). The job borrows the caller's key and values for that long
//! only: the caller never returns while the holder may still run it.
//!
//! What every caller gets is its own: a write that fails is rolled back to its savepoint
//! and reports its own error, the others stay in the transaction; a commit that fails fails
//! every caller whose write was in it. Nothing is acknowledged before its commit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// A write handed over: run on the holder's connection, returns whether it succeeded (its
/// value or error goes to the caller through its own channel).
pub(crate) type Work<'a> = Box<dyn FnOnce(&Connection) -> bool + Send + 'a>;

/// Where a job stands, as its caller sees it.
pub(crate) enum Stage {
    /// In the queue, or being applied.
    Pending,
    /// The caller now holds the writer lock and runs the queue itself (its own job first).
    Promoted,
    /// Applied and committed (`Ok`), or not kept (`Err`: the commit's or the group's error).
    Done(Result<()>),
}

/// A job's state, shared by its caller and the holder that applies it.
pub(crate) struct Ticket {
    stage: Mutex<Stage>,
    changed: Condvar,
}

impl Ticket {
    fn new() -> Arc<Ticket> {
        Arc::new(Ticket {
            stage: Mutex::new(Stage::Pending),
            changed: Condvar::new(),
        })
    }

    pub(crate) fn set(&self, stage: Stage) {
        *self.stage.lock().unwrap_or_else(|p| p.into_inner()) = stage;
        self.changed.notify_one();
    }

    /// Waits until the job leaves [`Stage::Pending`] or `limit` passes (`None`: no limit);
    /// returns the stage, leaving `Pending` in its place.
    pub(crate) fn wait(&self, limit: Option<Duration>) -> Stage {
        let mut stage = self.stage.lock().unwrap_or_else(|p| p.into_inner());
        let start = std::time::Instant::now();
        while matches!(*stage, Stage::Pending) {
            match limit {
                None => {
                    stage = self.changed.wait(stage).unwrap_or_else(|p| p.into_inner());
                }
                Some(l) => {
                    let Some(left) = l.checked_sub(start.elapsed()).filter(|d| !d.is_zero()) else {
                        break;
                    };
                    stage = self
                        .changed
                        .wait_timeout(stage, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        std::mem::replace(&mut *stage, Stage::Pending)
    }
}

/// An autocommitted write waiting for the writer lock's holder.
pub(crate) struct Job {
    /// Which connections it must run on (the address of its `FileConnections`): only a
    /// holder with the same settings may apply it.
    pub(crate) group: usize,
    /// The fork generation it was queued in (a child never runs its parent's jobs).
    pub(crate) generation: u64,
    /// The caller's thread (owner of the lock when promoted).
    pub(crate) thread: ThreadId,
    pub(crate) ticket: Arc<Ticket>,
    /// The write; `None` once run. Borrowed from the caller, who waits until the job is
    /// finished or taken back (see the module doc), hence `'static` by promise only.
    work: Option<Work<'static>>,
    /// Whether it succeeded, once run.
    ok: bool,
    /// Its caller has been told the outcome.
    finished: bool,
}

impl Job {
    /// A job for `work`, which borrows from the caller's stack.
    ///
    /// # Safety
    /// The caller must not return (nor drop what `work` borrows) until the job is finished
    /// (its ticket leaves `Pending` with `Done`, or `Promoted` and the caller ran it) or it
    /// took the job back out of the queue.
    pub(crate) unsafe fn new(group: usize, generation: u64, work: Work<'_>) -> Job {
        // SAFETY: the lifetime is upheld by the caller, see above.
        let work: Work<'static> = unsafe { std::mem::transmute(work) };
        Job {
            group,
            generation,
            thread: std::thread::current().id(),
            ticket: Ticket::new(),
            work: Some(work),
            ok: false,
            finished: false,
        }
    }

    /// Runs the write on `conn` (once); a panic counts as a failure.
    pub(crate) fn run(&mut self, conn: &Connection) -> bool {
        if let Some(work) = self.work.take() {
            self.ok = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or(false);
        }
        self.ok
    }

    /// Reports the outcome of its group's commit to the caller (its own error, if the
    /// write failed, is already in the caller's hands).
    pub(crate) fn finish(mut self, commit: &Result<()>) {
        let outcome = match commit {
            Ok(()) => Ok(()),
            Err(e) => Err(copy_of(e)),
        };
        self.work = None;
        self.finished = true;
        self.ticket.set(Stage::Done(outcome));
    }

    /// Marks the job as the caller's own business again (it runs or dropped it itself).
    pub(crate) fn take_back(mut self) -> Option<Work<'static>> {
        self.finished = true;
        self.work.take()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // Never leave a caller waiting: a job dropped unfinished (a panic of the holder,
        // a job of the parent found in a child of fork()) fails.
        if !self.finished {
            let mut stage = self.ticket.stage.lock().unwrap_or_else(|p| p.into_inner());
            *stage = Stage::Done(Err(Error::Usage(
                "the write was dropped by the thread applying it (it panicked); it was not \
                 kept"
                    .into(),
            )));
            self.ticket.changed.notify_one();
        }
    }
}

/// An error of the group's transaction again, for each caller that was in it.
pub(crate) fn copy_of(e: &Error) -> Error {
    match e {
        Error::Sqlite(rusqlite::Error::SqliteFailure(code, msg)) => {
            Error::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        Error::Busy { path, waited } => Error::Busy {
            path: path.clone(),
            waited: *waited,
        },
        Error::DiskFull { path } => Error::DiskFull { path: path.clone() },
        Error::ReadOnly { path, message } => Error::ReadOnly {
            path: path.clone(),
            message: message.clone(),
        },
        Error::Corrupt { path, message } => Error::Corrupt {
            path: path.clone(),
            message: message.clone(),
        },
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => Error::Usage(format!("the grouped commit failed: {other}")),
    }
}

/// The statements a group runs, supplied by the holder's connections (its held
/// statements): each runs one fixed SQL text on the holder's connection.
pub(crate) trait Steps {
    /// `BEGIN IMMEDIATE`.
    fn begin(&self, conn: &Connection) -> Result<()>;
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO` (then `RELEASE`).
    fn savepoint(&self, conn: &Connection) -> Result<()>;
    fn release(&self, conn: &Connection) -> Result<()>;
    fn undo(&self, conn: &Connection) -> Result<()>;
    /// `COMMIT` and `ROLLBACK`.
    fn commit(&self, conn: &Connection) -> Result<()>;
    fn rollback(&self, conn: &Connection) -> Result<()>;
}

/// Applies `jobs` on `conn` in one transaction opened by the caller (`BEGIN IMMEDIATE`
/// done), each in its own savepoint, commits, and reports to every caller. Returns the
/// commit's outcome.
pub(crate) fn apply(conn: &Connection, steps: &dyn Steps, jobs: Vec<Job>) -> Result<()> {
    let mut done = Vec::with_capacity(jobs.len());
    let mut failed: Option<Error> = None;
    for mut job in jobs {
        if failed.is_none() {
            if let Err(e) = steps.savepoint(conn) {
                failed = Some(e);
            } else {
                let ok = job.run(conn);
                let closed = if ok {
                    steps.release(conn)
                } else {
                    steps.undo(conn)
                };
                if let Err(e) = closed {
                    failed = Some(e);
                } else if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (e.g. a full disk): the
                    // writes before this one are gone too.
                    failed = Some(Error::Usage(
                        "the grouped transaction was rolled back by SQLite after an error; \
                         the write was not kept"
                            .into(),
                    ));
                }
            }
        }
        done.push(job);
    }
    let outcome = match failed {
        Some(e) => {
            if !conn.is_autocommit() {
                let _ = steps.rollback(conn);
            }
            Err(e)
        }
        None => match steps.commit(conn) {
            Ok(()) => Ok(()),
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = steps.rollback(conn);
                }
                Err(e)
            }
        },
    };
    for job in done {
        job.finish(&outcome);
    }
    outcome
}
