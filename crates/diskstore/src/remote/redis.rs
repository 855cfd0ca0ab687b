//! The cache on Redis: one Redis key per entry (`<table>:<key>`), Redis's own expiry
//! (`SET … PX`), `INCRBY` for `incr`, tags as sets, pipelines for batches. Eviction is
//! Redis's `maxmemory-policy`: size and count limits, other eviction policies, insertion
//! order, iteration, transactions and `volume` are [`Error::NotSupported`].
//!
//! Values: an integer as its decimal text (so that `INCRBY` works on it); other values
//! as `0x00` + bytes, or `0x01` + tag length (4 bytes, big-endian) + tag + bytes when
//! tagged (so that `evict(tag)` deletes only entries still carrying that tag).
//!
//! Hits and misses of every process: a hash `<table>\0stats` (fields `hits`, `misses`),
//! added to in batches (see [`shared_stats`](super::shared_stats)); `clear()` keeps it.

use std::time::{Duration, Instant};

use redis::{Cmd, ConnectionLike, RedisError};

use super::found::{Found, RemoteValueRef};
use super::pool::{self, Pool, Pooled, Retry};
use super::redis_conn::{Bulks, Conn};
use super::shared_stats::PendingStats;
use super::{IncrOutcome, RemoteCache, RemoteCacheOptions, RemoteValue, redact_url};
use crate::error::{Error, Result};
use crate::{EvictionPolicy, Ttl};

const MAX_IDLE: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys deleted per `UNLINK` by `clear`.
const SCAN_BATCH: usize = 500;

/// A cache on a Redis database.
pub struct RedisCache {
    client: redis::Client,
    url: String,
    pool: Pool<Conn>,
    options: RemoteCacheOptions,
    prefix: Vec<u8>,
    tag_prefix: Vec<u8>,
    stats_key: Vec<u8>,
    stats: PendingStats,
}

fn not_supported(operation: &str) -> Error {
    Error::NotSupported {
        backend: "redis",
        operation: operation.to_owned(),
    }
}

fn encode(v: &RemoteValue, tag: Option<&[u8]>) -> Vec<u8> {
    let text;
    let (payload, kind): (&[u8], u8) = match v {
        RemoteValue::Int(i) if tag.is_none() => return i.to_string().into_bytes(),
        RemoteValue::Int(i) => {
            text = i.to_string();
            (text.as_bytes(), b'i')
        }
        RemoteValue::Bytes(b) => (b.as_slice(), b'b'),
    };
    let mut out = Vec::with_capacity(payload.len() + 8);
    match tag {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&(t.len() as u32).to_be_bytes());
            out.extend_from_slice(t);
        }
    }
    out.extend_from_slice(payload);
    if tag.is_some() {
        out.push(kind);
    }
    out
}

/// The value and the tag of a stored entry.
fn decode(raw: &[u8]) -> Result<(RemoteValue, Option<&[u8]>)> {
    let (v, tag) = decode_ref(raw)?;
    Ok((v.to_value(), tag))
}

/// The value (borrowed from `raw`) and the tag of a stored entry.
fn decode_ref(raw: &[u8]) -> Result<(RemoteValueRef<'_>, Option<&[u8]>)> {
    let bad = || Error::Decode {
        column: "value".into(),
        message: "not a value written by diskstore".into(),
    };
    match raw.first() {
        Some(0) => Ok((RemoteValueRef::Bytes(&raw[1..]), None)),
        Some(1) => {
            let (kind, body) = raw[1..].split_last().ok_or_else(bad)?;
            let len = u32::from_be_bytes(
                body.get(..4)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ) as usize;
            let tag = body.get(4..4 + len).ok_or_else(bad)?;
            let payload = &body[4 + len..];
            let v = if *kind == b'i' {
                RemoteValueRef::Int(
                    std::str::from_utf8(payload)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(bad)?,
                )
            } else {
                RemoteValueRef::Bytes(payload)
            };
            Ok((v, Some(tag)))
        }
        _ => std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(|i| (RemoteValueRef::Int(i), None))
            .ok_or_else(bad),
    }
}

/// The values of a `GET`/`MGET` reply, read in place: each stored value's payload is a
/// range of the reply's buffer.
fn found_of(bulks: Bulks) -> Result<Found> {
    let Bulks { buf, items } = bulks;
    let mut found = Found::with_capacity(items.len());
    for item in items {
        let Some(r) = item else {
            found.push_missing();
            continue;
        };
        let raw = &buf[r];
        match decode_ref(raw)?.0 {
            RemoteValueRef::Int(i) => found.push_int(i),
            RemoteValueRef::Bytes(b) => {
                // `b` lies inside `raw`, itself inside `buf`.
                let start = b.as_ptr() as usize - buf.as_ptr() as usize;
                found.push_range(start..start + b.len());
            }
        }
    }
    Ok(found.with_buffer(buf))
}

/// Escapes glob characters for `SCAN MATCH`.
fn glob_escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if matches!(c, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

fn is_disconnect(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

impl RedisCache {
    /// Opens the cache (connecting once to check the server).
    ///
    /// # Errors
    /// [`Error::NotSupported`] for a size or count limit or an eviction policy other than
    /// the default (configure Redis's `maxmemory` and `maxmemory-policy` instead);
    /// [`Error::Connection`] when the server cannot be reached or refuses the password.
    pub fn open(url: &str, options: RemoteCacheOptions) -> Result<RedisCache> {
        if options.size_limit.is_some() {
            return Err(not_supported(
                "size_limit (set Redis's maxmemory and maxmemory-policy instead)",
            ));
        }
        if options.count_limit.is_some() {
            return Err(not_supported("count_limit"));
        }
        if options.policy != EvictionPolicy::LeastRecentlyStored {
            return Err(not_supported(&format!(
                "eviction_policy={:?} (Redis evicts by its own maxmemory-policy)",
                options.policy.name()
            )));
        }
        let tls = super::tls::redis_url(url)?;
        let bad_url =
            |e: RedisError| Error::Usage(format!("bad Redis URL {}: {e}", redact_url(url)));
        #[cfg(feature = "tls")]
        let client = if tls.root_cert.is_some() || tls.client.is_some() {
            let client_tls = match &tls.client {
                Some(c) => {
                    let (client_cert, client_key) = super::tls::client_pem(c)?;
                    Some(redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    })
                }
                None => None,
            };
            let root_cert = match &tls.root_cert {
                Some(path) => Some(super::tls::read_pem(path, "ssl_ca_certs")?),
                None => None,
            };
            redis::Client::build_with_tls(
                tls.url.as_str(),
                redis::TlsCertificates {
                    client_tls,
                    root_cert,
                },
            )
        } else {
            redis::Client::open(tls.url.as_str())
        }
        .map_err(bad_url)?;
        #[cfg(not(feature = "tls"))]
        let client = redis::Client::open(tls.url.as_str()).map_err(bad_url)?;
        let mut prefix = options.table.as_bytes().to_vec();
        prefix.push(b':');
        let mut tag_prefix = options.table.as_bytes().to_vec();
        tag_prefix.extend_from_slice(b"\x00tag:");
        let mut stats_key = options.table.as_bytes().to_vec();
        stats_key.extend_from_slice(b"\x00stats");
        let cache = RedisCache {
            client,
            url: redact_url(url),
            pool: Pool::new(MAX_IDLE),
            options,
            prefix,
            tag_prefix,
            stats_key,
            stats: PendingStats::default(),
        };
        cache.run(Retry::Safe, |c| redis::cmd("PING").query::<String>(c))?;
        Ok(cache)
    }

    fn err(&self, e: &RedisError) -> Error {
        let url = self.url.clone();
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || e.code().is_some_and(|c| c == "NOAUTH" || c == "WRONGPASS")
        {
            return Error::Connection {
                url,
                message: format!("authentication failed: {e}"),
            };
        }
        if is_disconnect(e) {
            return Error::Connection {
                url,
                message: e.to_string(),
            };
        }
        Error::Server {
            url,
            code: e.code().unwrap_or("ERR").to_owned(),
            message: e.to_string(),
        }
    }

    /// A new connection to a server ready for commands: a server that is still loading
    /// its data after a restart refuses them (`LOADING`), so this waits for it (up to
    /// [`CONNECT_TIMEOUT`]) and the call that needed the connection runs once, after.
    fn connect(&self) -> Result<Conn> {
        let mut conn = Conn::open(&self.client, CONNECT_TIMEOUT).map_err(|e| self.err(&e))?;
        let since = Instant::now();
        loop {
            match redis::cmd("PING").query::<String>(&mut conn) {
                Err(e) if e.code() == Some("LOADING") && since.elapsed() < CONNECT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.err(&e)),
                Ok(_) => return Ok(conn),
            }
        }
    }

    fn run<R>(&self, retry: Retry, f: impl FnMut(&mut Conn) -> redis::RedisResult<R>) -> Result<R> {
        pool::run(self, retry, f)
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// The RESP form of `command` with `keys` (under this cache's prefix) as arguments,
    /// written in one buffer.
    fn packed(&self, command: &str, keys: &[&[u8]]) -> Vec<u8> {
        use std::io::Write as _;
        let room = keys.iter().map(|k| k.len()).sum::<usize>()
            + keys.len() * (self.prefix.len() + 16)
            + 32;
        let mut out = Vec::with_capacity(room);
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "*{}\r\n${}\r\n{command}\r\n",
            keys.len() + 1,
            command.len()
        );
        for k in keys {
            let _ = write!(out, "${}\r\n", self.prefix.len() + k.len());
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(k);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn tag_key(&self, tag: &[u8]) -> Vec<u8> {
        let mut k = self.tag_prefix.clone();
        k.extend_from_slice(tag);
        k
    }

    /// `SET key value [PX ms]` (+ `NX`), and `SADD` of the tag; `None` when the entry is
    /// already expired (a zero time to live): then the key is deleted instead.
    fn set_cmd(
        &self,
        key: &[u8],
        value: &RemoteValue,
        ttl: Ttl,
        tag: Option<&[u8]>,
        nx: bool,
    ) -> redis::Pipeline {
        let k = self.key(key);
        let mut p = redis::pipe();
        let ms = self.ttl_ms(ttl);
        if ms == Some(0) {
            // Expired as soon as written: a set deletes, an add stores nothing.
            if !nx {
                p.cmd("DEL").arg(&k).ignore();
            }
            return p;
        }
        let mut set = Cmd::new();
        set.arg("SET").arg(&k).arg(encode(value, tag));
        if let Some(ms) = ms {
            set.arg("PX").arg(ms);
        }
        if nx {
            set.arg("NX");
        }
        p.add_command(set);
        if let Some(t) = tag {
            p.cmd("SADD").arg(self.tag_key(t)).arg(key).ignore();
        }
        p
    }

    fn ttl_ms(&self, ttl: Ttl) -> Option<u64> {
        let d = match ttl {
            Ttl::Default => self.options.default_ttl?,
            Ttl::Never => return None,
            Ttl::After(d) => d,
        };
        if d >= crate::NEVER {
            return None;
        }
        Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn scan_keys(&self, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.run(Retry::Safe, |c| {
            let mut out = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                out.extend(keys);
                if next == 0 {
                    return Ok(out);
                }
                cursor = next;
            }
        })
    }
}

impl RemoteCache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn get(&self, key: &[u8]) -> Result<Option<RemoteValue>> {
        let cmd = self.packed("GET", &[key]);
        let bulks = self.run(Retry::Safe, |c| c.bulks(&cmd))?;
        let v = match bulks.items.first() {
            Some(Some(r)) => Some(decode(&bulks.buf[r.clone()])?.0),
            _ => None,
        };
        self.count(std::slice::from_ref(&v));
        Ok(v)
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<RemoteValue>>> {
        let found = self.get_many_found(keys)?;
        Ok(found
            .iter()
            .map(|v| v.map(RemoteValueRef::to_value))
            .collect())
    }

    fn get_many_found(&self, keys: &[&[u8]]) -> Result<Found> {
        if keys.is_empty() {
            return Ok(Found::default());
        }
        let cmd = self.packed("MGET", keys);
        let bulks = self.run(Retry::Safe, |c| c.bulks(&cmd))?;
        if bulks.items.len() != keys.len() {
            return Err(Error::Decode {
                column: "value".into(),
                message: format!("MGET of {} keys answered {}", keys.len(), bulks.items.len()),
            });
        }
        let found = found_of(bulks)?;
        if self.stats.count_hits(found.hits(), found.len()) {
            let _ = self.flush_stats();
        }
        Ok(found)
    }

    fn set(&self, key: &[u8], value: &RemoteValue, ttl: Ttl, tag: Option<&[u8]>) -> Result<()> {
        let p = self.set_cmd(key, value, ttl, tag, false);
        self.run(Retry::Safe, |c| p.query::<()>(c))
    }

    fn set_many(&self, items: &[(&[u8], RemoteValue)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        p.atomic();
        for (k, v) in items {
            for cmd in self.set_cmd(k, v, Ttl::Default, None, false).cmd_iter() {
                p.add_command(cmd.clone()).ignore();
            }
        }
        self.run(Retry::Safe, |c| p.query::<()>(c))
    }

    fn add(&self, key: &[u8], value: &RemoteValue, ttl: Ttl, tag: Option<&[u8]>) -> Result<bool> {
        if self.ttl_ms(ttl) == Some(0) {
            return Ok(!self.run(Retry::Safe, |c| {
                redis::cmd("EXISTS").arg(self.key(key)).query::<bool>(c)
            })?);
        }
        let p = self.set_cmd(key, value, ttl, tag, true);
        let r: (Option<String>,) = self.run(Retry::Never, |c| p.query(c))?;
        Ok(r.0.is_some())
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let k = self.key(key);
        let n: u64 = self.run(Retry::Safe, |c| redis::cmd("DEL").arg(&k).query(c))?;
        Ok(n == 1)
    }

    fn delete_many(&self, keys: &[&[u8]]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let ks: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        self.run(Retry::Safe, |c| redis::cmd("DEL").arg(&ks).query(c))
    }

    fn pop(&self, key: &[u8]) -> Result<Option<RemoteValue>> {
        let k = self.key(key);
        let raw: Option<Vec<u8>> =
            self.run(Retry::Never, |c| redis::cmd("GETDEL").arg(&k).query(c))?;
        raw.map(|r| decode(&r).map(|(v, _)| v)).transpose()
    }

    fn touch(&self, key: &[u8], ttl: Ttl) -> Result<bool> {
        let k = self.key(key);
        let n: u64 = match self.ttl_ms(ttl) {
            None => self.run(Retry::Safe, |c| {
                let (exists, _): (u64, u64) = redis::pipe()
                    .cmd("EXISTS")
                    .arg(&k)
                    .cmd("PERSIST")
                    .arg(&k)
                    .query(c)?;
                Ok(exists)
            })?,
            Some(ms) => self.run(Retry::Safe, |c| {
                redis::cmd("PEXPIRE").arg(&k).arg(ms.max(1)).query(c)
            })?,
        };
        Ok(n == 1)
    }

    fn incr(&self, key: &[u8], delta: i64, default: Option<i64>) -> Result<IncrOutcome> {
        let k = self.key(key);
        let r: Result<Option<i64>> = match default {
            None => self.run(Retry::Never, |c| {
                redis::cmd("EVAL")
                    .arg(
                        "if redis.call('EXISTS', KEYS[1]) == 0 then return false end \
                          return redis.call('INCRBY', KEYS[1], ARGV[1])",
                    )
                    .arg(1)
                    .arg(&k)
                    .arg(delta)
                    .query(c)
            }),
            // A missing key counts from 0 in INCRBY itself: one command, no transaction.
            Some(0) if self.ttl_ms(Ttl::Default).is_none() => self.run(Retry::Never, |c| {
                redis::cmd("INCRBY").arg(&k).arg(delta).query(c)
            }),
            Some(start) => {
                let mut p = redis::pipe();
                p.atomic();
                let mut set = Cmd::new();
                set.arg("SET").arg(&k).arg(start).arg("NX");
                if let Some(ms) = self.ttl_ms(Ttl::Default) {
                    set.arg("PX").arg(ms.max(1));
                }
                p.add_command(set).ignore();
                p.cmd("INCRBY").arg(&k).arg(delta);
                self.run(Retry::Never, |c| p.query::<(i64,)>(c))
                    .map(|r| Some(r.0))
            }
        };
        match r {
            Ok(Some(v)) => Ok(IncrOutcome::Value(v)),
            Ok(None) => Ok(IncrOutcome::Missing),
            Err(Error::Server { message, .. }) if message.contains("overflow") => {
                Ok(IncrOutcome::Overflow)
            }
            Err(Error::Server { message, .. }) if message.contains("not an integer") => {
                Ok(IncrOutcome::NotAnInteger)
            }
            Err(e) => Err(e),
        }
    }

    fn expire(&self) -> Result<u64> {
        Ok(0) // Redis deletes expired keys itself.
    }

    fn evict(&self, tag: &[u8]) -> Result<u64> {
        let tk = self.tag_key(tag);
        let members: Vec<Vec<u8>> =
            self.run(Retry::Safe, |c| redis::cmd("SMEMBERS").arg(&tk).query(c))?;
        if members.is_empty() {
            return Ok(0);
        }
        let ks: Vec<Vec<u8>> = members.iter().map(|m| self.key(m)).collect();
        let raws: Vec<Option<Vec<u8>>> =
            self.run(Retry::Safe, |c| redis::cmd("MGET").arg(&ks).query(c))?;
        // Only entries still carrying this tag (a key may have been re-set since).
        let doomed: Vec<&Vec<u8>> = ks
            .iter()
            .zip(&raws)
            .filter(|(_, raw)| {
                raw.as_ref()
                    .and_then(|r| decode(r).ok())
                    .is_some_and(|(_, t)| t == Some(tag))
            })
            .map(|(k, _)| k)
            .collect();
        let mut p = redis::pipe();
        p.atomic();
        if !doomed.is_empty() {
            p.cmd("DEL").arg(&doomed);
        } else {
            p.cmd("EXISTS").arg(&tk);
        }
        p.cmd("SREM").arg(&tk).arg(&members).ignore();
        let (n,): (u64,) = self.run(Retry::Never, |c| p.query(c))?;
        Ok(if doomed.is_empty() { 0 } else { n })
    }

    fn clear(&self) -> Result<()> {
        let mut pattern = glob_escape(&self.prefix);
        pattern.push(b'*');
        let mut keys = self.scan_keys(&pattern)?;
        let mut tags = glob_escape(&self.tag_prefix);
        tags.push(b'*');
        keys.extend(self.scan_keys(&tags)?);
        for chunk in keys.chunks(SCAN_BATCH) {
            self.run(Retry::Safe, |c| {
                redis::cmd("UNLINK").arg(chunk).query::<u64>(c)
            })?;
        }
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        let mut pattern = glob_escape(&self.prefix);
        pattern.push(b'*');
        Ok(self.scan_keys(&pattern)?.len() as u64)
    }

    fn volume(&self) -> Result<u64> {
        Err(not_supported(
            "volume (Redis accounts memory itself: INFO memory)",
        ))
    }

    fn stats(&self, reset: bool) -> Result<(u64, u64)> {
        self.flush_stats()?;
        let k = &self.stats_key;
        let mut p = redis::pipe();
        p.cmd("HMGET").arg(k).arg("hits").arg("misses");
        let retry = if reset {
            p.atomic().cmd("DEL").arg(k).ignore();
            Retry::Never
        } else {
            Retry::Safe
        };
        let ((h, m),): ((Option<u64>, Option<u64>),) = self.run(retry, |c| p.query(c))?;
        Ok((h.unwrap_or(0), m.unwrap_or(0)))
    }

    fn keys_page(&self, _: Option<i64>, _: bool, _: usize) -> Result<Vec<(i64, Vec<u8>)>> {
        Err(not_supported("iteration in insertion order"))
    }

    fn check(&self) -> Result<Vec<String>> {
        self.run(Retry::Safe, |c| redis::cmd("PING").query::<String>(c))?;
        Ok(Vec::new())
    }

    fn begin(&self) -> Result<()> {
        Err(not_supported("transact()"))
    }

    fn end(&self, _: bool) -> Result<()> {
        Err(not_supported("transact()"))
    }

    fn close(&self) {
        let _ = self.flush_stats();
        self.pool.drain();
    }
}

impl RedisCache {
    /// Counts lookups; adds the counts on the server when they are due (best effort: on
    /// failure they stay pending).
    fn count(&self, found: &[Option<RemoteValue>]) {
        if self.stats.count(found) {
            let _ = self.flush_stats();
        }
    }

    /// Adds this process's pending hit/miss counts on the server.
    fn flush_stats(&self) -> Result<()> {
        self.stats.flush(|h, m| {
            let mut p = redis::pipe();
            p.cmd("HINCRBY")
                .arg(&self.stats_key)
                .arg("hits")
                .arg(h)
                .ignore();
            p.cmd("HINCRBY")
                .arg(&self.stats_key)
                .arg("misses")
                .arg(m)
                .ignore();
            self.run(Retry::Never, |c| p.query::<()>(c))
        })
    }
}

impl Drop for RedisCache {
    fn drop(&mut self) {
        let _ = self.flush_stats();
    }
}

impl Pooled for RedisCache {
    type Conn = Conn;
    type Err = RedisError;
    fn pool(&self) -> &Pool<Conn> {
        &self.pool
    }
    fn connect(&self) -> Result<Conn> {
        RedisCache::connect(self)
    }
    fn is_open(conn: &Conn) -> bool {
        conn.is_open()
    }
    fn answers(conn: &mut Conn) -> bool {
        redis::cmd("PING").query::<String>(conn).is_ok()
    }
    fn is_disconnect(e: &RedisError) -> bool {
        is_disconnect(e)
    }
    fn error(&self, e: &RedisError) -> Error {
        self.err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in [
            RemoteValue::Int(-42),
            RemoteValue::Bytes(b"\x00abc".to_vec()),
        ] {
            for tag in [None, Some(&b"t"[..])] {
                let raw = encode(&v, tag);
                assert_eq!(decode(&raw).unwrap(), (v.clone(), tag));
            }
        }
        assert_eq!(encode(&RemoteValue::Int(7), None), b"7");
    }

    #[test]
    fn commands_are_packed_as_the_redis_crate_packs_them() {
        let c = RedisCache {
            client: redis::Client::open("redis://127.0.0.1:1/0").unwrap(),
            url: String::new(),
            pool: Pool::new(1),
            options: RemoteCacheOptions::new("t"),
            prefix: b"t:".to_vec(),
            tag_prefix: Vec::new(),
            stats_key: Vec::new(),
            stats: PendingStats::default(),
        };
        let keys: [&[u8]; 3] = [b"a", b"", b"\r\n\x00x"];
        let mut mget = redis::cmd("MGET");
        for k in keys {
            mget.arg(c.key(k));
        }
        assert_eq!(c.packed("MGET", &keys), mget.get_packed_command());
        assert!(decode(b"junk").is_err());
    }
}
