//! Hit and miss counts of a server cache, kept on the server so that every process
//! sharing the cache counts into the same totals. Lookups count in memory (no extra
//! round trip per read); the counts are added on the server every [`FLUSH_EVERY`]
//! lookups, at least once a [`FLUSH_AFTER`] while lookups go on, by `stats()`, by
//! `close()` and when the cache is dropped, as the SQLite cache writes its counts out.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Lookups counted in memory before they are added on the server.
pub(crate) const FLUSH_EVERY: u64 = 4096;
/// The longest time counts wait in memory while lookups go on.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// Counts of this process not yet added on the server.
pub(crate) struct PendingStats {
    hits: AtomicU64,
    misses: AtomicU64,
    /// The process that counted them: a child after `fork()` drops its parent's.
    pid: AtomicU32,
    start: Instant,
    /// Milliseconds after `start` of the last flush.
    flushed_at: AtomicU64,
}

impl Default for PendingStats {
    fn default() -> Self {
        PendingStats {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            pid: AtomicU32::new(std::process::id()),
            start: Instant::now(),
            flushed_at: AtomicU64::new(0),
        }
    }
}

impl PendingStats {
    fn since_start(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Forgets counts inherited across `fork()` (the parent adds them itself).
    fn own(&self) {
        let pid = std::process::id();
        if self.pid.swap(pid, Relaxed) != pid {
            self.hits.store(0, Relaxed);
            self.misses.store(0, Relaxed);
        }
    }

    /// Counts one lookup per entry of `found`; true when the counts are due on the server.
    pub(crate) fn count<T>(&self, found: &[Option<T>]) -> bool {
        let hits = found.iter().filter(|v| v.is_some()).count();
        self.count_hits(hits, found.len())
    }

    /// Counts `lookups` lookups of which `hits` found a value; true when the counts are
    /// due on the server.
    pub(crate) fn count_hits(&self, hits: usize, lookups: usize) -> bool {
        self.own();
        let (hits, misses) = (hits as u64, (lookups - hits) as u64);
        let h = self.hits.fetch_add(hits, Relaxed) + hits;
        let m = self.misses.fetch_add(misses, Relaxed) + misses;
        h + m >= FLUSH_EVERY
            || self
                .since_start()
                .saturating_sub(self.flushed_at.load(Relaxed))
                >= FLUSH_AFTER.as_millis() as u64
    }

    /// Takes the counts to add on the server: `(hits, misses)`.
    pub(crate) fn take(&self) -> (u64, u64) {
        self.own();
        self.flushed_at.store(self.since_start(), Relaxed);
        (self.hits.swap(0, Relaxed), self.misses.swap(0, Relaxed))
    }

    /// Puts counts back after a flush that failed.
    pub(crate) fn restore(&self, (hits, misses): (u64, u64)) {
        self.hits.fetch_add(hits, Relaxed);
        self.misses.fetch_add(misses, Relaxed);
    }

    /// Takes the counts and runs `add` with them (when there are any), putting them back
    /// when it fails.
    pub(crate) fn flush<E>(&self, add: impl FnOnce(i64, i64) -> Result<(), E>) -> Result<(), E> {
        let (h, m) = self.take();
        if h == 0 && m == 0 {
            return Ok(());
        }
        let r = add(
            i64::try_from(h).unwrap_or(i64::MAX),
            i64::try_from(m).unwrap_or(i64::MAX),
        );
        if r.is_err() {
            self.restore((h, m));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_flush_when_due_and_come_back_after_a_failure() {
        let p = PendingStats::default();
        p.take();
        assert!(!p.count(&[Some(1), None, None]));
        assert_eq!(p.take(), (1, 2));
        assert_eq!(p.take(), (0, 0));
        p.restore((3, 4));
        let failed: Result<(), ()> = p.flush(|h, m| {
            assert_eq!((h, m), (3, 4));
            Err(())
        });
        assert!(failed.is_err());
        assert_eq!(p.take(), (3, 4));
        let many = vec![None::<u8>; FLUSH_EVERY as usize];
        assert!(p.count(&many));
        let mut seen = None;
        p.flush(|h, m| {
            seen = Some((h, m));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen, Some((0, FLUSH_EVERY as i64)));
    }
}
