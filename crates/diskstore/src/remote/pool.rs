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

/// Whether repeating a call whose connection broke cannot apply it twice.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and idempotent writes (upsert, delete): retried once on a new connection.
    Safe,
    /// `add`, `pop`, `incr`…: reported as failed; the caller decides.
    Never,
}

/// A server client whose calls run on pooled connections (see [`run`]).
pub(crate) trait Pooled {
    /// One connection.
    type Conn;
    /// The client library's error.
    type Err;
    /// The idle connections.
    fn pool(&self) -> &Pool<Self::Conn>;
    /// A new connection.
    fn connect(&self) -> crate::error::Result<Self::Conn>;
    /// False once the client library knows the connection is closed.
    fn is_open(conn: &Self::Conn) -> bool;
    /// One round trip that shows the server still answers on `conn`.
    fn answers(conn: &mut Self::Conn) -> bool;
    /// True when `e` shows the connection (or the server) went away.
    fn is_disconnect(e: &Self::Err) -> bool;
    /// `e` as one of our errors.
    fn error(&self, e: &Self::Err) -> crate::error::Error;
}

/// Runs `f` on a pooled connection of `client`. A connection idle longer than
/// [`CHECK_AFTER_IDLE`] is checked first unless the call is [`Retry::Safe`]; when the
/// connection breaks, every idle one is dropped, and a safe call on a reused connection
/// runs once more on a new one, while any other is reported as failed and, for
/// [`Retry::Never`], as possibly applied.
pub(crate) fn run<P: Pooled, R>(
    client: &P,
    retry: Retry,
    mut f: impl FnMut(&mut P::Conn) -> Result<R, P::Err>,
) -> crate::error::Result<R> {
    use crate::error::Error;
    let pool = client.pool();
    let (mut conn, reused) = match pool.take() {
        Some((mut c, idle)) if P::is_open(&c) => {
            if retry == Retry::Safe || idle < CHECK_AFTER_IDLE || P::answers(&mut c) {
                (c, true)
            } else {
                pool.drain();
                (client.connect()?, false)
            }
        }
        _ => (client.connect()?, false),
    };
    match f(&mut conn) {
        Ok(r) => {
            pool.give(conn);
            Ok(r)
        }
        Err(e) if P::is_disconnect(&e) || !P::is_open(&conn) => {
            pool.drain();
            if reused && retry == Retry::Safe {
                let mut fresh = client.connect()?;
                let r = f(&mut fresh).map_err(|e| client.error(&e))?;
                pool.give(fresh);
                Ok(r)
            } else {
                let mut err = client.error(&e);
                if let (Error::Connection { message, .. }, Retry::Never) = (&mut err, retry) {
                    message.push_str(
                        " (the call was not acknowledged: it may or may not have been applied)",
                    );
                }
                Err(err)
            }
        }
        Err(e) => {
            pool.give(conn);
            Err(client.error(&e))
        }
    }
}
