//! The workloads cut by the power-loss runs: random operation sequences on a store, a
//! cache and a store whose record type changes (schema migration), each with a page size
//! and a `synchronous` setting; and what the checks read back: a digest of the logical
//! content (equal digests = equal data), the cache's accounting, a probe write.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diskstore::rusqlite::types::ValueRef;
use diskstore::{
    DEFAULT_TABLE, DiskCache, DiskStore, Error, EvictionPolicy, ManualClock, Record, Result,
};

use crate::support::Rng;

/// Version 1 of the migrated record.
#[derive(Record, Debug, Clone, PartialEq)]
#[record(table = "Rec")]
pub struct V1 {
    a: i64,
}

/// Version 2: three columns added, with defaults.
#[derive(Record, Debug, Clone, PartialEq)]
#[record(table = "Rec")]
pub struct V2 {
    a: i64,
    #[record(default = 7)]
    b: i64,
    #[record(default = "it's")]
    c: String,
    d: Option<f64>,
}

/// Which engine the workload drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `DiskStore<String, String>`.
    Store,
    /// `DiskCache<String, String>` with a size limit, eviction and expiry.
    Cache,
    /// `DiskStore<String, V1>`, reopened as `DiskStore<String, V2>` half-way.
    Migration,
    /// `DiskCache<String, String>` whose values of [`FILE_THRESHOLD`] bytes or more go to
    /// value files: sets, overwrites, deletes and evictions of such values.
    FileCache,
}

/// The file threshold of [`Kind::FileCache`] workloads.
pub const FILE_THRESHOLD: u64 = 1024;

/// The file settings of a workload.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// `page_size` (4096 or 16384).
    pub page_size: u32,
    /// `synchronous`: 0 OFF, 1 NORMAL, 2 FULL.
    pub synchronous: u8,
    /// `wal_autocheckpoint` in pages.
    pub autocheckpoint: u32,
}

impl Config {
    /// A short name for the figures: `4k/NORMAL`.
    pub fn name(&self) -> String {
        format!(
            "{}k/{}",
            self.page_size / 1024,
            ["OFF", "NORMAL", "FULL"][self.synchronous.min(2) as usize]
        )
    }

    /// `synchronous=FULL`: every acknowledged operation survives a cut.
    pub fn full(&self) -> bool {
        self.synchronous >= 2
    }

    /// `synchronous=OFF`: nothing is synced; only "never wrong bytes" is promised.
    pub fn off(&self) -> bool {
        self.synchronous == 0
    }
}

/// The cache settings of a cache workload.
#[derive(Clone, Copy, Debug)]
pub struct CacheSetup {
    policy: EvictionPolicy,
    size_limit: u64,
}

/// One operation; each writes at most one transaction.
#[derive(Clone, Debug)]
pub enum Op {
    /// Autocommitted insert (store) or `set` (cache, with a TTL in seconds and a tag).
    Set(String, String, Option<u64>),
    /// Autocommitted delete.
    Delete(String),
    /// An explicit transaction (`begin()`) of sets and deletes, committed or rolled back.
    Tx(Vec<(String, Option<String>)>, bool),
    /// One `extend` batch.
    Extend(Vec<(String, String)>),
    /// `clear()`.
    Clear,
    /// `PRAGMA wal_checkpoint(<mode>)`.
    Checkpoint(&'static str),
    /// Every connection closed (the close-time checkpoint), then opened again.
    Reopen,
    /// `vacuum()` (stores).
    Vacuum,
    /// A cache lookup (a write under LRU and LFU).
    Get(String),
    /// The cache's clock moves on (seconds); nothing is written.
    Advance(u64),
    /// `expire()`: purge expired cache entries.
    Expire,
    /// Migration: reopen with the new record type.
    Migrate,
}

impl Op {
    /// The operation without its values (for reports).
    pub fn label(&self) -> String {
        match self {
            Op::Set(k, v, ttl) => format!("Set({k}, {} bytes, ttl {ttl:?})", v.len()),
            Op::Delete(k) => format!("Delete({k})"),
            Op::Tx(w, commit) => format!("Tx({} writes, commit {commit})", w.len()),
            Op::Extend(items) => format!("Extend({} items)", items.len()),
            Op::Get(k) => format!("Get({k})"),
            other => format!("{other:?}"),
        }
    }
}

/// A generated workload: everything follows from the seed.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The seed it was made from.
    pub seed: u64,
    /// The engine.
    pub kind: Kind,
    /// The file settings.
    pub config: Config,
    /// Cache settings (cache workloads).
    pub cache: CacheSetup,
    /// The operations.
    pub ops: Vec<Op>,
}

fn key(rng: &mut Rng, n: u64) -> String {
    format!("k{:02}", rng.below(n))
}

fn value(rng: &mut Rng) -> String {
    let len = match rng.below(100) {
        0..85 => rng.between(1, 200),
        85..95 => rng.between(1_000, 6_000),
        _ => rng.between(18_000, 40_000),
    };
    let c = char::from(b'a' + rng.below(26) as u8);
    let mut v = format!("{}:", rng.next_u64());
    v.extend(std::iter::repeat_n(c, len as usize));
    v
}

impl Workload {
    /// The workload of `seed`.
    pub fn generate(seed: u64) -> Workload {
        // One workload in five is a value-file cache (drawn from the seed alone, so the
        // other seeds give the same workloads as before it existed).
        if seed.is_multiple_of(5) {
            return Workload::file_cache(seed);
        }
        let mut rng = Rng::new(seed);
        let kind = match rng.below(10) {
            0..5 => Kind::Store,
            5..8 => Kind::Cache,
            _ => Kind::Migration,
        };
        let config = Config {
            page_size: if rng.chance(50) { 4096 } else { 16384 },
            synchronous: if rng.chance(50) { 2 } else { 1 },
            autocheckpoint: any_autocheckpoint(&mut rng),
        };
        let cache = CacheSetup {
            policy: any_policy(&mut rng),
            size_limit: rng.between(4_000, 16_000),
        };
        let len = rng.between(15, 50);
        let mut ops = Vec::new();
        for i in 0..len {
            if kind == Kind::Migration && i == len / 2 {
                ops.push(Op::Migrate);
                continue;
            }
            ops.push(match kind {
                Kind::Cache => cache_op(&mut rng, cache.size_limit as usize / 2),
                _ => store_op(&mut rng, kind == Kind::Store),
            });
        }
        Workload {
            seed,
            kind,
            config,
            cache,
            ops,
        }
    }
}

/// One of the eviction policies a cache workload runs with.
fn any_policy(rng: &mut Rng) -> EvictionPolicy {
    [
        EvictionPolicy::LeastRecentlyStored,
        EvictionPolicy::LeastRecentlyUsed,
        EvictionPolicy::LeastFrequentlyUsed,
    ][rng.below(3) as usize]
}

/// One of the `wal_autocheckpoint` limits a workload runs with (8 and 32 frames make
/// checkpoints, and so their cuts, frequent).
fn any_autocheckpoint(rng: &mut Rng) -> u32 {
    [8, 32, 1000][rng.below(3) as usize]
}

impl Workload {
    /// A [`Kind::FileCache`] workload: `synchronous` FULL, NORMAL or OFF, a size limit
    /// that a few large values reach (so sets evict), 20 keys (so sets overwrite).
    fn file_cache(seed: u64) -> Workload {
        let mut rng = Rng::new(seed ^ 0x5EED_F11E);
        let config = Config {
            page_size: if rng.chance(50) { 4096 } else { 16384 },
            synchronous: [0, 1, 1, 2, 2][rng.below(5) as usize],
            autocheckpoint: any_autocheckpoint(&mut rng),
        };
        let cache = CacheSetup {
            policy: any_policy(&mut rng),
            size_limit: rng.between(50_000, 150_000),
        };
        let len = rng.between(15, 40);
        let ops = (0..len).map(|_| file_cache_op(&mut rng)).collect();
        Workload {
            seed,
            kind: Kind::FileCache,
            config,
            cache,
            ops,
        }
    }
}

/// A value for a [`Kind::FileCache`] workload: most above the file threshold.
fn file_value(rng: &mut Rng) -> String {
    let len = match rng.below(100) {
        0..25 => rng.between(1, 200),
        25..80 => rng.between(FILE_THRESHOLD, 6_000),
        _ => rng.between(18_000, 40_000),
    };
    let c = char::from(b'a' + rng.below(26) as u8);
    let mut v = format!("{}:", rng.next_u64());
    v.extend(std::iter::repeat_n(c, len as usize));
    v
}

fn file_cache_op(rng: &mut Rng) -> Op {
    match rng.below(100) {
        0..50 => {
            let ttl = rng.chance(20).then(|| rng.between(1, 100));
            Op::Set(key(rng, 20), file_value(rng), ttl)
        }
        50..60 => Op::Get(key(rng, 20)),
        60..70 => Op::Delete(key(rng, 20)),
        70..73 => Op::Advance(rng.between(1, 60)),
        73..76 => Op::Expire,
        76..78 => Op::Clear,
        78..86 => {
            let n = rng.between(2, 5);
            let writes = (0..n)
                .map(|_| (key(rng, 20), rng.chance(75).then(|| file_value(rng))))
                .collect();
            Op::Tx(writes, rng.chance(80))
        }
        86..93 => checkpoint(rng),
        _ => Op::Reopen,
    }
}

fn checkpoint(rng: &mut Rng) -> Op {
    Op::Checkpoint(["PASSIVE", "FULL", "RESTART", "TRUNCATE"][rng.below(4) as usize])
}

fn store_op(rng: &mut Rng, vacuum: bool) -> Op {
    match rng.below(100) {
        0..35 => Op::Set(key(rng, 40), value(rng), None),
        35..50 => Op::Delete(key(rng, 40)),
        50..67 => {
            let n = rng.between(2, 9);
            let writes = (0..n)
                .map(|_| {
                    let k = key(rng, 40);
                    (k, rng.chance(75).then(|| value(rng)))
                })
                .collect();
            Op::Tx(writes, rng.chance(85))
        }
        67..77 => {
            let n = rng.between(3, 30);
            Op::Extend((0..n).map(|_| (key(rng, 60), value(rng))).collect())
        }
        77..80 => Op::Clear,
        80..90 => checkpoint(rng),
        90..96 => Op::Reopen,
        96..98 if vacuum => Op::Vacuum,
        _ => Op::Set(key(rng, 40), value(rng), None),
    }
}

fn cache_op(rng: &mut Rng, largest: usize) -> Op {
    match rng.below(100) {
        0..45 => {
            let ttl = rng.chance(30).then(|| rng.between(1, 100));
            let mut v = value(rng);
            v.truncate(largest);
            Op::Set(key(rng, 30), v, ttl)
        }
        45..60 => Op::Get(key(rng, 30)),
        60..70 => Op::Delete(key(rng, 30)),
        70..75 => Op::Advance(rng.between(1, 60)),
        75..79 => Op::Expire,
        79..81 => Op::Clear,
        81..86 => {
            let n = rng.between(2, 6);
            let writes = (0..n)
                .map(|_| {
                    let k = key(rng, 30);
                    let mut v = value(rng);
                    v.truncate(largest / 2);
                    (k, rng.chance(75).then_some(v))
                })
                .collect();
            Op::Tx(writes, rng.chance(85))
        }
        86..94 => checkpoint(rng),
        _ => Op::Reopen,
    }
}

/// An open workload: the handle, and (caches) the clock that outlives reopening.
pub enum Handle {
    /// A store.
    Store(DiskStore<String, String>),
    /// A cache.
    Cache(DiskCache<String, String>),
    /// The migrated store before the migration.
    V1(DiskStore<String, V1>),
    /// ... and after it.
    V2(DiskStore<String, V2>),
}

/// The live state of a running workload.
pub struct Runner<'a> {
    /// The workload.
    pub w: &'a Workload,
    /// The store file.
    pub path: &'a Path,
    /// The open handle (`None` after a failed open).
    pub handle: Option<Handle>,
    /// The cache's clock.
    pub clock: Arc<ManualClock>,
    /// Whether the migration has happened.
    pub migrated: bool,
}

fn pragmas<B>(c: &Config, b: B, set: impl Fn(B, &str, String) -> B) -> B {
    let b = set(b, "page_size", c.page_size.to_string());
    let b = set(b, "synchronous", c.synchronous.to_string());
    set(b, "wal_autocheckpoint", c.autocheckpoint.to_string())
}

/// Opens the workload's file as `kind` (`migrated`: with the new record type).
pub fn open(w: &Workload, path: &Path, clock: &Arc<ManualClock>, migrated: bool) -> Result<Handle> {
    Ok(match w.kind {
        Kind::Store => Handle::Store(
            pragmas(&w.config, DiskStore::builder(path), |b, k, v| {
                b.pragma(k, v)
            })
            .open()?,
        ),
        Kind::Cache => Handle::Cache(
            pragmas(&w.config, DiskCache::builder(path), |b, k, v| {
                b.pragma(k, v)
            })
            .size_limit(w.cache.size_limit)
            .eviction_policy(w.cache.policy)
            .stats(false)
            .clock(clock.clone())
            .open()?,
        ),
        Kind::FileCache => Handle::Cache(
            pragmas(&w.config, DiskCache::builder(path), |b, k, v| {
                b.pragma(k, v)
            })
            .size_limit(w.cache.size_limit)
            .eviction_policy(w.cache.policy)
            .stats(false)
            .clock(clock.clone())
            .file_threshold(Some(FILE_THRESHOLD))
            .open()?,
        ),
        Kind::Migration if migrated => Handle::V2(
            pragmas(&w.config, DiskStore::builder(path), |b, k, v| {
                b.pragma(k, v)
            })
            .open()?,
        ),
        Kind::Migration => Handle::V1(
            pragmas(&w.config, DiskStore::builder(path), |b, k, v| {
                b.pragma(k, v)
            })
            .open()?,
        ),
    })
}

fn v1(s: &str) -> V1 {
    V1 { a: s.len() as i64 }
}

fn v2(s: &str) -> V2 {
    V2 {
        a: s.len() as i64,
        b: s.len() as i64 % 5,
        c: s.to_string(),
        d: s.len().is_multiple_of(3).then_some(s.len() as f64 / 3.0),
    }
}

impl Runner<'_> {
    /// A runner on `path`, not yet open.
    pub fn new<'a>(w: &'a Workload, path: &'a Path) -> Runner<'a> {
        Runner {
            w,
            path,
            handle: None,
            clock: Arc::new(ManualClock::new(Duration::from_secs(1_000_000))),
            migrated: false,
        }
    }

    /// Opens the handle if it is not open.
    pub fn ensure_open(&mut self) -> Result<()> {
        if self.handle.is_none() {
            self.handle = Some(open(self.w, self.path, &self.clock, self.migrated)?);
        }
        Ok(())
    }

    /// Runs one operation.
    pub fn apply(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::Reopen => {
                self.handle = None;
                return self.ensure_open();
            }
            Op::Migrate => {
                self.handle = None;
                self.migrated = true;
                return self.ensure_open();
            }
            Op::Advance(s) => {
                self.clock.advance(Duration::from_secs(*s));
                return Ok(());
            }
            _ => {}
        }
        self.ensure_open()?;
        let h = self.handle.as_ref().expect("open");
        if let Op::Checkpoint(mode) = op {
            let sql = format!("PRAGMA wal_checkpoint({mode})");
            return with_connection(h, |c| {
                c.query_row(&sql, [], |_| Ok(()))?;
                Ok(())
            });
        }
        match h {
            Handle::Store(s) => store_apply(s, op, |v| v.to_string()),
            Handle::V1(s) => store_apply(s, op, v1),
            Handle::V2(s) => store_apply(s, op, v2),
            Handle::Cache(c) => cache_apply(c, op),
        }
    }

    /// The digest of the logical content (see [`digest`]).
    pub fn digest(&mut self) -> Result<u64> {
        self.ensure_open()?;
        digest(self.w.kind, self.handle.as_ref().expect("open"))
    }
}

fn store_apply<V: Record>(
    s: &DiskStore<String, V>,
    op: &Op,
    make: impl Fn(&str) -> V,
) -> Result<()> {
    match op {
        Op::Set(k, v, _) => s.insert(k.as_str(), &make(v)),
        Op::Delete(k) => s.remove(k.as_str()).map(|_| ()),
        Op::Tx(writes, commit) => {
            let tx = s.begin()?;
            for (k, v) in writes {
                match v {
                    Some(v) => tx.insert(k.as_str(), &make(v))?,
                    None => {
                        tx.remove(k.as_str())?;
                    }
                }
            }
            if *commit { tx.commit() } else { tx.rollback() }
        }
        Op::Extend(items) => s
            .extend(items.iter().map(|(k, v)| (k.as_str(), make(v))))
            .map(|_| ()),
        Op::Clear => s.clear(),
        Op::Vacuum => s.vacuum(),
        Op::Get(k) => s.get(k.as_str()).map(|_| ()),
        _ => Ok(()),
    }
}

fn cache_apply(c: &DiskCache<String, String>, op: &Op) -> Result<()> {
    match op {
        Op::Set(k, v, ttl) => c.set(k.as_str(), v, ttl.map(Duration::from_secs)),
        Op::Delete(k) => c.delete(k.as_str()).map(|_| ()),
        Op::Get(k) => c.get(k.as_str()).map(|_| ()),
        Op::Expire => c.expire().map(|_| ()),
        Op::Clear => c.clear(),
        Op::Tx(writes, commit) => {
            let table = c.cache_table().table();
            let opened = table.begin()?;
            let r = (|| {
                for (k, v) in writes {
                    match v {
                        Some(v) => c.set(k.as_str(), v, None)?,
                        None => {
                            c.delete(k.as_str())?;
                        }
                    }
                }
                Ok(())
            })();
            let end = table.end(opened, r.is_ok() && *commit);
            r.and(end)
        }
        _ => Ok(()),
    }
}

/// Runs `f` on the handle's connection.
pub fn with_connection<R>(
    h: &Handle,
    f: impl FnOnce(&diskstore::rusqlite::Connection) -> Result<R>,
) -> Result<R> {
    match h {
        Handle::Store(s) => s.table().with_connection(f),
        Handle::V1(s) => s.table().with_connection(f),
        Handle::V2(s) => s.table().with_connection(f),
        Handle::Cache(c) => c.cache_table().table().with_connection(f),
    }
}

fn cell(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "N".into(),
        ValueRef::Integer(i) => format!("I{i}"),
        ValueRef::Real(r) => format!("R{r:?}"),
        ValueRef::Text(t) => format!("T{}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("B{b:?}"),
    }
}

fn columns(c: &diskstore::rusqlite::Connection, table: &str) -> Result<Vec<String>> {
    let mut st = c.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let cols = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(cols)
}

/// Rows of `table` (its columns `wanted`, a missing one read as its default), in key order.
fn rows(
    c: &diskstore::rusqlite::Connection,
    table: &str,
    wanted: &[(&str, &str)],
) -> Result<Vec<String>> {
    let have = columns(c, table)?;
    let select: Vec<String> = wanted
        .iter()
        .map(|(col, default)| {
            if have.iter().any(|h| h == col) {
                format!("\"{col}\"")
            } else {
                (*default).to_string()
            }
        })
        .collect();
    if !have.iter().any(|h| h == "_key") {
        return Ok(Vec::new()); // the table does not exist (yet)
    }
    let mut st = c.prepare(&format!(
        "SELECT {} FROM \"{table}\" ORDER BY _key",
        select.join(", ")
    ))?;
    let n = wanted.len();
    let out = st
        .query_map([], |r| {
            let mut line = String::new();
            for i in 0..n {
                line.push_str(&cell(r.get_ref(i)?));
                line.push('|');
            }
            Ok(line)
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(out)
}

/// A digest of the data a workload wrote: every entry (cache: with its size, tag and expiry,
/// and the byte total and count), never the bookkeeping that differs between equal states
/// (LRU/LFU counters).
pub fn digest(kind: Kind, h: &Handle) -> Result<u64> {
    if kind == Kind::FileCache {
        return Ok(file_cache_state(h)?.digest());
    }
    let lines = with_connection(h, |c| {
        let mut lines = match kind {
            Kind::Store => rows(c, DEFAULT_TABLE, &[("_key", "NULL"), ("value", "NULL")])?,
            Kind::Migration => rows(
                c,
                "Rec",
                &[
                    ("_key", "NULL"),
                    ("a", "NULL"),
                    ("b", "7"),
                    ("c", "'it''s'"),
                    ("d", "NULL"),
                ],
            )?,
            Kind::Cache | Kind::FileCache => rows(
                c,
                "Cache",
                &[
                    ("_key", "NULL"),
                    ("value", "NULL"),
                    ("_size", "NULL"),
                    ("_tag", "NULL"),
                    ("_expire_at", "NULL"),
                ],
            )?,
        };
        if kind != Kind::Store && kind != Kind::Migration {
            let meta: (i64, i64) = c.query_row(
                "SELECT volume, count FROM _cache_meta WHERE tbl = 'Cache'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            lines.push(format!("meta {meta:?}"));
        }
        Ok(lines)
    })?;
    let mut hasher = DefaultHasher::new();
    lines.hash(&mut hasher);
    Ok(hasher.finish())
}

/// Problems found after a cut or a fault (`when`): the cache's totals against its
/// entries, and whether the store still takes a write.
pub fn after_checks(h: &Handle, when: &str) -> Vec<String> {
    let mut problems = match accounting(h) {
        Ok(p) => p,
        Err(e) => vec![format!("reading the cache totals {when} failed: {e}")],
    };
    if let Err(e) = probe(h) {
        problems.push(format!("the store did not take a write {when}: {e}"));
    }
    problems
}

/// The cache's accounting against its entries: problems found (empty = consistent).
fn accounting(h: &Handle) -> Result<Vec<String>> {
    let Handle::Cache(_) = h else {
        return Ok(Vec::new());
    };
    with_connection(h, |c| {
        let (volume, count): (i64, i64) = c.query_row(
            "SELECT volume, count FROM _cache_meta WHERE tbl = 'Cache'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (sum, n): (i64, i64) = c.query_row(
            "SELECT coalesce(sum(_size), 0), count(*) FROM Cache",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut problems = Vec::new();
        if volume != sum || count != n {
            problems.push(format!(
                "cache totals {volume} bytes / {count} entries, entries sum to {sum} / {n}"
            ));
        }
        Ok(problems)
    })
}

/// A write and a read after the checks: the store keeps working.
fn probe(h: &Handle) -> Result<()> {
    let ok = match h {
        Handle::Store(s) => {
            s.insert("__probe", &"p".to_string())?;
            s.get("__probe")?.as_deref() == Some("p")
        }
        Handle::V1(s) => {
            s.insert("__probe", &v1("p"))?;
            s.get("__probe")?.is_some()
        }
        Handle::V2(s) => {
            s.insert("__probe", &v2("p"))?;
            s.get("__probe")?.is_some()
        }
        Handle::Cache(c) => {
            c.set("__probe", &"p".to_string(), None)?;
            c.get("__probe")?.as_deref() == Some("p")
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Usage("the probe write did not read back".into()))
    }
}

/// `check()` (SQLite's `integrity_check`) of the handle's file.
pub fn integrity(h: &Handle) -> Result<Vec<String>> {
    match h {
        Handle::Store(s) => s.check(),
        Handle::V1(s) => s.check(),
        Handle::V2(s) => s.check(),
        Handle::Cache(c) => c.cache_table().table().check(),
    }
}

/// The cache's keys (empty for other workloads): the reference run counts evictions with it.
pub fn cache_keys(h: &Handle) -> Result<Vec<String>> {
    let Handle::Cache(_) = h else {
        return Ok(Vec::new());
    };
    with_connection(h, |c| {
        let mut st = c.prepare("SELECT _key FROM Cache")?;
        let keys = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(keys)
    })
}

fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    t.hash(&mut hasher);
    hasher.finish()
}

/// The content of a [`Kind::FileCache`] workload's file, read with raw SQL and plain file
/// reads (no write, so the simulation counts the same calls whether it is read or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    /// The digest of the rows without their values (key, size, tag, expiry, whether the
    /// value is in a file) and the cache's totals: the value files' names differ between
    /// runs, so they are not in it.
    pub rows: u64,
    /// Each key with the hash of its value (a value file's bytes as they are on disk).
    pub values: Vec<(String, u64)>,
}

impl FileState {
    /// The digest of rows and values.
    pub fn digest(&self) -> u64 {
        hash_of(&(self.rows, &self.values))
    }
}

/// The hash a value is recorded with in [`FileState::values`].
pub fn value_hash(v: &[u8]) -> u64 {
    hash_of(v)
}

/// Reads a [`Kind::FileCache`] workload's content.
pub fn file_cache_state(h: &Handle) -> Result<FileState> {
    with_connection(h, |c| {
        let db = std::path::PathBuf::from(c.path().unwrap_or_default());
        let mut root = db.file_name().unwrap_or_default().to_owned();
        root.push("-values");
        let root = db.with_file_name(root);
        let exists: i64 = c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'Cache'",
            [],
            |r| r.get(0),
        )?;
        let mut lines = Vec::new();
        let mut values = Vec::new();
        if exists > 0 {
            let mut st = c.prepare(
                "SELECT _key, value, _size, _tag, _expire_at, _file FROM Cache ORDER BY _key",
            )?;
            let mut q = st.query([])?;
            while let Some(r) = q.next()? {
                let key = match r.get_ref(0)? {
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
                    other => cell(other),
                };
                let file: Option<String> = r.get(5)?;
                lines.push(format!(
                    "{}|{}|{}|{}|{}",
                    cell(r.get_ref(0)?),
                    cell(r.get_ref(2)?),
                    cell(r.get_ref(3)?),
                    cell(r.get_ref(4)?),
                    if file.is_some() { "F" } else { "-" }
                ));
                let hash = match file {
                    Some(reference) => {
                        let rel = reference.splitn(3, ' ').nth(2).unwrap_or_default();
                        match std::fs::read(root.join(rel)) {
                            Ok(bytes) => value_hash(&bytes),
                            Err(_) => 0,
                        }
                    }
                    None => match r.get_ref(1)? {
                        ValueRef::Text(t) => value_hash(t),
                        other => hash_of(&cell(other)),
                    },
                };
                values.push((key, hash));
            }
            let meta: (i64, i64) = c.query_row(
                "SELECT volume, count FROM _cache_meta WHERE tbl = 'Cache'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            lines.push(format!("meta {meta:?}"));
        }
        Ok(FileState {
            rows: hash_of(&lines),
            values,
        })
    })
}
