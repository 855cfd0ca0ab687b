//! Where a cache gets the time from: [`Clock`], the real [`SystemClock`] and a
//! [`ManualClock`] that tests move by hand (so that no test ever sleeps).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for expiry decisions.
///
/// Expiry times are stored in the file as microseconds since the Unix epoch, so every
/// process sharing a cache must use clocks that agree (the system clock does).
pub trait Clock: Send + Sync + 'static {
    /// The time elapsed since the Unix epoch.
    fn now(&self) -> Duration;
}

/// The operating system's wall clock (`SystemTime::now`), the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that only moves when told to; share it (`Arc<ManualClock>`) between a test and
/// the cache under test.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start` (time since the Unix epoch) until moved.
    pub fn new(start: Duration) -> ManualClock {
        ManualClock {
            micros: AtomicU64::new(micros_u64(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.micros.fetch_add(micros_u64(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to` (time since the Unix epoch); it may go backwards.
    pub fn set(&self, to: Duration) {
        self.micros.store(micros_u64(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

fn micros_u64(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A time as stored in the file: whole microseconds since the Unix epoch.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Duration::from_secs(5));
        assert_eq!(c.now(), Duration::from_secs(5));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), Duration::from_micros(6_500_000));
        c.set(Duration::from_secs(1));
        assert_eq!(c.now(), Duration::from_secs(1));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Duration::from_secs(1_577_836_800));
    }

    #[test]
    fn micros_saturate() {
        assert_eq!(micros(Duration::MAX), i64::MAX);
        assert_eq!(micros(Duration::from_millis(2)), 2000);
    }
}
