//! Hit and miss counters: counted in memory on the read path (no write per read) and
//! added to the file's metadata row by the next write, by [`stats`](super::DiskCache::stats),
//! every [`FLUSH_EVERY`] reads, and when the last handle is dropped.

use std::sync::atomic::{AtomicU64, Ordering};

/// Reads counted in memory before they are written out even without a write.
pub(crate) const FLUSH_EVERY: u64 = 4096;

/// Cache hits and misses, summed over every process and handle that used the file since
/// the counters were last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired entry.
    pub misses: u64,
}

/// Counts not yet written to the file.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Pending {
    /// Counts one lookup; true when enough have piled up to be written out.
    pub fn count(&self, hit: bool) -> bool {
        let (mine, other) = if hit {
            (&self.hits, &self.misses)
        } else {
            (&self.misses, &self.hits)
        };
        let n = mine.fetch_add(1, Ordering::Relaxed) + 1;
        n + other.load(Ordering::Relaxed) >= FLUSH_EVERY
    }

    /// Takes the pending counts (to write them out).
    pub fn take(&self) -> Stats {
        Stats {
            hits: self.hits.swap(0, Ordering::Relaxed),
            misses: self.misses.swap(0, Ordering::Relaxed),
        }
    }

    /// Puts counts back after a write that failed.
    pub fn restore(&self, s: Stats) {
        self.hits.fetch_add(s.hits, Ordering::Relaxed);
        self.misses.fetch_add(s.misses, Ordering::Relaxed);
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.hits.load(Ordering::Relaxed) == 0 && self.misses.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_take_and_restore() {
        let p = Pending::default();
        assert!(!p.count(true));
        assert!(!p.count(false));
        assert!(!p.count(false));
        assert_eq!(p.take(), Stats { hits: 1, misses: 2 });
        assert!(p.is_empty());
        p.restore(Stats { hits: 3, misses: 0 });
        assert_eq!(p.take(), Stats { hits: 3, misses: 0 });
        for _ in 0..FLUSH_EVERY - 1 {
            assert!(!p.count(false));
        }
        assert!(p.count(true));
    }
}
