//! What a cache entry lives for ([`Ttl`]) and which entries make room when the cache is
//! full ([`EvictionPolicy`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// Which entries are evicted first when a write would take the cache over its
/// `size_limit` or `count_limit`. Expired entries always go before live ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EvictionPolicy {
    /// The entry stored longest ago (storing a key again makes it the newest). Reads cost
    /// no write. The default.
    #[default]
    LeastRecentlyStored,
    /// The entry read or stored longest ago. Every hit is a write (it records the access).
    LeastRecentlyUsed,
    /// The entry read the fewest times (ties: the one stored longest ago). Every hit is a
    /// write (it counts the access).
    LeastFrequentlyUsed,
    /// Nothing is evicted: a write that would exceed a limit fails with
    /// [`Error::Full`] and leaves the cache unchanged.
    None,
}

impl EvictionPolicy {
    /// python-diskcache's name for the policy (`"least-recently-stored"`, …, `"none"`).
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::LeastRecentlyStored => "least-recently-stored",
            EvictionPolicy::LeastRecentlyUsed => "least-recently-used",
            EvictionPolicy::LeastFrequentlyUsed => "least-frequently-used",
            EvictionPolicy::None => "none",
        }
    }

    /// True if a hit must be recorded in the file (LRU and LFU).
    pub(crate) fn tracks_reads(self) -> bool {
        matches!(
            self,
            EvictionPolicy::LeastRecentlyUsed | EvictionPolicy::LeastFrequentlyUsed
        )
    }
}

impl fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EvictionPolicy {
    type Err = Error;

    /// Parses python-diskcache's policy names.
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "least-recently-stored" => EvictionPolicy::LeastRecentlyStored,
            "least-recently-used" => EvictionPolicy::LeastRecentlyUsed,
            "least-frequently-used" => EvictionPolicy::LeastFrequentlyUsed,
            "none" => EvictionPolicy::None,
            other => {
                return Err(Error::Usage(format!(
                    "unknown eviction policy {other:?}; expected one of \
                     \"least-recently-stored\", \"least-recently-used\", \
                     \"least-frequently-used\", \"none\""
                )));
            }
        })
    }
}

/// How long a written entry lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ttl {
    /// The cache's default time to live (set with the builder; without one, forever).
    #[default]
    Default,
    /// Forever (until evicted, deleted or cleared).
    Never,
    /// This long after the write. A duration too large to represent means forever;
    /// zero means the entry is expired as soon as it is written.
    After(Duration),
}

impl From<Option<Duration>> for Ttl {
    /// `None` is the cache's default, `Some(d)` is [`Ttl::After`].
    fn from(ttl: Option<Duration>) -> Ttl {
        match ttl {
            None => Ttl::Default,
            Some(d) => Ttl::After(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for p in [
            EvictionPolicy::LeastRecentlyStored,
            EvictionPolicy::LeastRecentlyUsed,
            EvictionPolicy::LeastFrequentlyUsed,
            EvictionPolicy::None,
        ] {
            assert_eq!(p.name().parse::<EvictionPolicy>().unwrap(), p);
        }
        assert!("lru".parse::<EvictionPolicy>().is_err());
    }
}
