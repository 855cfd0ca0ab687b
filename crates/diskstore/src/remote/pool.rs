//! A small connection pool: idle connections in a stack, a new one made when none is idle,
//! at most `max_idle` kept. A connection that failed is not returned, and a failure that
//! shows the server went away drops every idle connection (they belong to the old server).
//! After `fork()`, the child never uses (nor closes) a connection of its parent: it
//! forgets them, so that the parent's sessions stay intact.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection idle longer than this is checked (one round trip) before a call that
/// must not be repeated uses it: a server restart meanwhile would otherwise make that
/// call fail as "may or may not have been applied".
pub(crate) const CHECK_AFTER_IDLE: Duration = Duration::from_millis(200);

/// Idle connections of one kind (each with the time it was given back), made by the
/// process `pid`.
pub(crate) struct Pool<C> {
    idle: Mutex<(u32, Vec<(C, Instant)>)>,
    max_idle: usize,
}

impl<C> Pool<C> {
    pub(crate) fn new(max_idle: usize) -> Pool<C> {
        Pool {
            idle: Mutex::new((std::process::id(), Vec::new())),
            max_idle,
        }
    }

    /// An idle connection of this process and how long it was idle, if there is one.
    pub(crate) fn take(&self) -> Option<(C, Duration)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if idle.0 != pid {
            // Inherited across fork(): closing them would end the parent's sessions.
            for conn in std::mem::take(&mut idle.1) {
                std::mem::forget(conn);
            }
            idle.0 = pid;
        }
        idle.1.pop().map(|(c, since)| (c, since.elapsed()))
    }

    /// Gives a healthy connection of this process back.
    pub(crate) fn give(&self, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.0 == std::process::id() && idle.1.len() < self.max_idle {
            idle.1.push((conn, Instant::now()));
        } else if idle.0 != std::process::id() {
            std::mem::forget(conn);
        }
    }

    /// Drops every idle connection (after the server was seen to go away).
    pub(crate) fn drain(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::take(&mut idle.1);
        if idle.0 == std::process::id() {
            drop(old);
        } else {
            for conn in old {
                std::mem::forget(conn);
            }
        }
    }
}
