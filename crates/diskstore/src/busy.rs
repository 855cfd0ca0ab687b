//! How a connection waits for a lock another process holds.
//!
//! SQLite's own handler (`sqlite3_busy_timeout`) sleeps 1 ms, then 2, 5, 10 … ms between
//! tries: far longer than one of our writes holds the lock (tens of µs), so a process that
//! met another's write mostly slept after the lock was already free. This handler starts
//! at 20 µs and doubles up to 1 ms, and gives up once `timeout` has passed since the first
//! try of the current wait. (Writers in one process never get here: they queue on the
//! in-process writer lock first.)

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ffi};

use crate::error::Result;

/// The first pause.
const FIRST: Duration = Duration::from_micros(20);
/// The longest pause.
const LONGEST: Duration = Duration::from_millis(1);

thread_local! {
    /// When the current wait of this thread began (SQLite calls the handler on the thread
    /// that waits, with `attempt` 0 on a wait's first call).
    static BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Makes `conn` wait up to `timeout` for a lock held elsewhere, then report `SQLITE_BUSY`.
pub(crate) fn install(conn: &Connection, timeout: Duration) -> Result<()> {
    let micros = usize::try_from(timeout.as_micros()).unwrap_or(usize::MAX);
    // SAFETY: `conn` is open; the context is the timeout in µs carried as an integer, never
    // dereferenced, so it needs no lifetime.
    let rc = unsafe { ffi::sqlite3_busy_handler(conn.handle(), Some(wait), micros as *mut c_void) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None).into())
    }
}

/// The pause before try `attempt + 1` of a wait that began `waited` ago, or `None` once
/// `timeout` is spent.
fn pause(attempt: c_int, waited: Duration, timeout: Duration) -> Option<Duration> {
    let left = timeout.checked_sub(waited).filter(|d| !d.is_zero())?;
    let doublings = u32::try_from(attempt.clamp(0, 16)).unwrap_or(16);
    Some(FIRST.saturating_mul(1 << doublings).min(LONGEST).min(left))
}

/// SQLite's busy callback: nonzero means "try again".
extern "C" fn wait(timeout_micros: *mut c_void, attempt: c_int) -> c_int {
    let timeout = Duration::from_micros(timeout_micros as usize as u64);
    c_int::from(busy_wait_step(attempt, timeout))
}

/// One step of waiting for a lock another connection holds, for a busy handler of any
/// connection: pauses 20 µs, doubling up to 1 ms (less when the time left is shorter), and
/// returns true to try again, or false once `timeout` has passed since the wait began
/// (`attempt` 0 begins one, on the calling thread).
pub fn busy_wait_step(attempt: c_int, timeout: Duration) -> bool {
    let now = Instant::now();
    let began = BEGAN
        .try_with(|b| {
            let began = match b.get() {
                Some(t) if attempt > 0 => t,
                _ => now,
            };
            b.set(Some(began));
            began
        })
        // Thread-local storage is gone (thread exit): count the pauses as the time waited.
        .unwrap_or_else(|_| {
            let paused = LONGEST.saturating_mul(u32::try_from(attempt).unwrap_or(0));
            now.checked_sub(paused).unwrap_or(now)
        });
    match pause(attempt, now.saturating_duration_since(began), timeout) {
        Some(d) => {
            crate::fork::step_out(|| std::thread::sleep(d));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_start_short_double_and_stop_at_the_timeout() {
        let t = Duration::from_secs(1);
        let us = |a| pause(a, Duration::ZERO, t).map(|d| d.as_micros());
        assert_eq!(us(0), Some(20));
        assert_eq!(us(1), Some(40));
        assert_eq!(us(5), Some(640));
        assert_eq!(us(6), Some(1000));
        assert_eq!(us(1000), Some(1000));
        assert_eq!(us(-1), Some(20));
        let near = pause(9, Duration::from_micros(999_900), t).unwrap();
        assert_eq!(near.as_micros(), 100);
        assert_eq!(pause(3, t, t), None);
        assert_eq!(pause(0, Duration::ZERO, Duration::ZERO), None);
    }
}
