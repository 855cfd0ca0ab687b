//! Backends on a database server, opened by URL: PostgreSQL (the store and the cache,
//! feature `postgres`) and Redis (the cache, feature `redis`).
//!
//! Connections come from a small pool of our own ([`pool::Pool`]); a connection that
//! failed is dropped, so the next call after a server restart connects again. TLS (feature
//! `tls`) is set in the URL: see [`tls`].

pub mod any;
pub mod found;
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_cache;
#[cfg(feature = "postgres")]
mod postgres_cache_meta;
#[cfg(feature = "postgres")]
mod postgres_sql;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) mod shared_stats;
pub mod tls;

/// Which backend a store or cache location names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A file path: SQLite.
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `redis://` (or `rediss://`: TLS, feature `tls`).
    Redis,
}

impl Backend {
    /// The backend a location names: a URL of a known scheme, else a SQLite file path.
    pub fn of(location: &str) -> Backend {
        let lower = location.get(..11).unwrap_or(location).to_ascii_lowercase();
        if lower.starts_with("postgresql:") || lower.starts_with("postgres://") {
            Backend::Postgres
        } else if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            Backend::Redis
        } else {
            Backend::Sqlite
        }
    }
}

/// The URL with any password replaced by `***`, for error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}://{}:***{}",
                    &url[..scheme_end],
                    &userinfo[..colon],
                    &rest[at..]
                ),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// A cached value as the remote caches store it: integers natively (so that `incr` is one
/// atomic server-side addition), everything else as bytes the caller encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteValue {
    /// An integer.
    Int(i64),
    /// Encoded bytes.
    Bytes(Vec<u8>),
}

/// What `incr` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncrOutcome {
    /// The new value.
    Value(i64),
    /// The key is missing and no default was given; nothing was written.
    Missing,
    /// The stored value is not an integer; nothing was written.
    NotAnInteger,
    /// The sum does not fit in 64 bits; nothing was written.
    Overflow,
}

/// Options of a remote cache (the meanings of [`CacheBuilder`](crate::CacheBuilder)'s).
#[derive(Clone)]
pub struct RemoteCacheOptions {
    /// The table (PostgreSQL) or key prefix (Redis).
    pub table: String,
    /// The time to live of [`Ttl::Default`](crate::Ttl::Default); `None`: forever.
    pub default_ttl: Option<std::time::Duration>,
    /// The most bytes of keys and values kept (PostgreSQL only).
    pub size_limit: Option<u64>,
    /// The most entries kept (PostgreSQL only).
    pub count_limit: Option<u64>,
    /// Which entries make room (PostgreSQL; Redis uses its own `maxmemory-policy`).
    pub policy: crate::EvictionPolicy,
    /// Create the PostgreSQL table `UNLOGGED` (faster writes; emptied after a crash).
    pub unlogged: bool,
    /// The clock of expiry times.
    pub clock: std::sync::Arc<dyn crate::Clock>,
}

impl RemoteCacheOptions {
    /// Defaults: no expiry, no limits, least-recently-stored, logged, the system clock.
    pub fn new(table: impl Into<String>) -> RemoteCacheOptions {
        RemoteCacheOptions {
            table: table.into(),
            default_ttl: None,
            size_limit: None,
            count_limit: None,
            policy: crate::EvictionPolicy::LeastRecentlyStored,
            unlogged: false,
            clock: std::sync::Arc::new(crate::SystemClock),
        }
    }

    /// The expiry time (seconds since the epoch) of a write now with `ttl`; `None`:
    /// never.
    #[cfg(feature = "postgres")]
    pub(crate) fn expire_at(&self, ttl: crate::Ttl) -> Option<f64> {
        let d = match ttl {
            crate::Ttl::Default => self.default_ttl?,
            crate::Ttl::Never => return None,
            crate::Ttl::After(d) => d,
        };
        if d >= crate::NEVER {
            return None;
        }
        Some(self.now() + d.as_secs_f64())
    }

    /// Now, in seconds since the epoch.
    #[cfg(feature = "postgres")]
    pub(crate) fn now(&self) -> f64 {
        self.clock.now().as_secs_f64()
    }
}

/// The operations every remote cache offers; an operation a backend cannot provide
/// returns [`Error::NotSupported`](crate::Error::NotSupported).
pub trait RemoteCache: Send + Sync {
    /// `"postgres"` or `"redis"`.
    fn backend(&self) -> &'static str;
    /// The live value of `key`.
    fn get(&self, key: &[u8]) -> crate::Result<Option<RemoteValue>>;
    /// The live values of many keys, in one round trip.
    fn get_many(&self, keys: &[&[u8]]) -> crate::Result<Vec<Option<RemoteValue>>>;
    /// The values of `keys` as [`get_many`](RemoteCache::get_many) finds them, in one
    /// buffer (no allocation per value).
    fn get_many_found(&self, keys: &[&[u8]]) -> crate::Result<found::Found> {
        self.get_many(keys).map(found::Found::from)
    }
    /// Stores `value` under `key` with a time to live and an optional tag.
    fn set(
        &self,
        key: &[u8],
        value: &RemoteValue,
        ttl: crate::Ttl,
        tag: Option<&[u8]>,
    ) -> crate::Result<()>;
    /// Stores many entries in one round trip (the default time to live, no tag).
    fn set_many(&self, items: &[(&[u8], RemoteValue)]) -> crate::Result<()>;
    /// Stores only if `key` has no live value; true if stored.
    fn add(
        &self,
        key: &[u8],
        value: &RemoteValue,
        ttl: crate::Ttl,
        tag: Option<&[u8]>,
    ) -> crate::Result<bool>;
    /// Deletes `key`; true if it had a live value.
    fn delete(&self, key: &[u8]) -> crate::Result<bool>;
    /// Deletes many keys in one round trip; how many had a live value.
    fn delete_many(&self, keys: &[&[u8]]) -> crate::Result<u64>;
    /// Deletes `key` and returns its live value (atomic).
    fn pop(&self, key: &[u8]) -> crate::Result<Option<RemoteValue>>;
    /// Gives a live entry a new time to live; true if it was live.
    fn touch(&self, key: &[u8], ttl: crate::Ttl) -> crate::Result<bool>;
    /// Adds `delta` atomically; a missing key starts at `default`.
    fn incr(&self, key: &[u8], delta: i64, default: Option<i64>) -> crate::Result<IncrOutcome>;
    /// Deletes expired entries now; how many.
    fn expire(&self) -> crate::Result<u64>;
    /// Deletes the entries tagged `tag`; how many.
    fn evict(&self, tag: &[u8]) -> crate::Result<u64>;
    /// Deletes every entry.
    fn clear(&self) -> crate::Result<()>;
    /// The number of live entries.
    fn len(&self) -> crate::Result<u64>;
    /// True when there is no live entry.
    fn is_empty(&self) -> crate::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Bytes of keys and values stored.
    fn volume(&self) -> crate::Result<u64>;
    /// Hits and misses of every process using the cache (this process's counts are
    /// added on the server first); `reset` sets the server's counts to zero and returns
    /// what they were.
    fn stats(&self, reset: bool) -> crate::Result<(u64, u64)>;
    /// Live keys in the order they were stored (or reversed), one page after `after`.
    fn keys_page(
        &self,
        after: Option<i64>,
        reverse: bool,
        limit: usize,
    ) -> crate::Result<Vec<(i64, Vec<u8>)>>;
    /// Health check; `[]` when healthy.
    fn check(&self) -> crate::Result<Vec<String>>;
    /// Begins a transaction (or savepoint) on this thread.
    fn begin(&self) -> crate::Result<()>;
    /// Ends this thread's innermost transaction level.
    fn end(&self, commit: bool) -> crate::Result<()>;
    /// Closes idle connections.
    fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_by_scheme() {
        assert_eq!(Backend::of("postgresql://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("POSTGRES://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("redis://h:6379/0"), Backend::Redis);
        assert_eq!(Backend::of("/tmp/x.db"), Backend::Sqlite);
        assert_eq!(Backend::of("postgres.db"), Backend::Sqlite);
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgresql://u:pw@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("postgresql://u@h/db"), "postgresql://u@h/db");
    }
}
