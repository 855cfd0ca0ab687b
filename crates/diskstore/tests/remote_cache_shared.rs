//! Server caches shared by several clients: PostgreSQL overwrites in place (HOT) while
//! keeping the stored order, running totals that stay exact under concurrent writers,
//! and hit/miss counts shared by every handle. Each `PgCache`/`RedisCache` handle has its
//! own connections, as separate app servers would. Servers: `scripts/servers.sh`
//! (`DISKSTORE_TEST_POSTGRES`, `DISKSTORE_TEST_REDIS`); required under `CI=true` or
//! `DISKSTORE_REQUIRE_SERVERS=1`, else skipped with the reason.

mod remote_support;

use std::time::{Duration, Instant};

use diskstore::remote::postgres_cache::{PgCache, UNORDERED_PAGE};
use diskstore::remote::redis::RedisCache;
use diskstore::remote::{RemoteCache, RemoteCacheOptions, RemoteValue};
use diskstore::{EvictionPolicy, Ttl};
use remote_support::{server, unique};

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

fn bytes(n: usize) -> RemoteValue {
    RemoteValue::Bytes(vec![7; n])
}

/// Every key of the cache in stored order, read page by page as the iterators do.
fn all_keys(c: &PgCache) -> Vec<Vec<u8>> {
    let (mut out, mut after) = (Vec::new(), None);
    loop {
        let page = c.keys_page(after, false, 256).unwrap();
        let done = page.len() < 256;
        for (pos, k) in page {
            after = Some(pos);
            out.push(k);
        }
        if done {
            return out;
        }
    }
}

#[test]
fn postgres_overwrites_are_hot_and_keep_the_stored_order() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("hot");
    let c = PgCache::open(&url, RemoteCacheOptions::new(&table)).unwrap();
    let key = |i: usize| format!("k{i:05}").into_bytes();
    let n = UNORDERED_PAGE + 500;
    let items: Vec<(Vec<u8>, RemoteValue)> = (0..n).map(|i| (key(i), bytes(100))).collect();
    let refs: Vec<(&[u8], RemoteValue)> = items
        .iter()
        .map(|(k, v)| (k.as_slice(), v.clone()))
        .collect();
    c.set_many(&refs).unwrap();
    // Overwrites move an entry to the end; the rest keep their places.
    for round in 0..10 {
        for i in 0..100 {
            c.set(&key(i), &bytes(100 + round), Ttl::Never, None)
                .unwrap();
        }
    }
    let mut want: Vec<Vec<u8>> = (100..n).map(key).collect();
    want.extend((0..100).map(key));
    assert_eq!(all_keys(&c), want);
    let mut db = sql(&url);
    // No index leads with `id` (only eviction by stored order needs one).
    let id_indexes: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = i.indkey[0] WHERE i.indrelid = $1::text::regclass AND a.attname = 'id'",
            &[&table],
        )
        .unwrap()
        .get(0);
    assert_eq!(id_indexes, 0);
    // The server's own count of in-place (HOT) updates, once our sessions report it.
    c.close();
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (upd, hot) = loop {
        let r = db
            .query_one(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1",
                &[&table],
            )
            .unwrap();
        let (upd, hot): (i64, i64) = (r.get(0), r.get(1));
        if upd >= 1000 || Instant::now() > deadline {
            break (upd, hot);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(upd >= 1000, "{upd} updates reported");
    // Not all: an update is HOT only while its page has room, and the page is pruned of
    // dead versions only when no older snapshot (another test's session on the same
    // server) can still see them; 78-100 % were HOT here, 0 % with an index on `id`.
    assert!(hot * 2 >= upd, "{hot} of {upd} updates were HOT");
}

/// `(count, size)` by the running totals and by summing the table.
fn totals(url: &str, table: &str) -> ((i64, i64), (i64, i64)) {
    let mut db = sql(url);
    let t = db
        .query_one(
            &format!("SELECT sum(n)::bigint, sum(size)::bigint FROM \"{table}_totals\""),
            &[],
        )
        .unwrap();
    let s = db
        .query_one(
            &format!("SELECT count(*), COALESCE(sum(size), 0)::bigint FROM \"{table}\""),
            &[],
        )
        .unwrap();
    ((t.get(0), t.get(1)), (s.get(0), s.get(1)))
}

/// One writer's mix of every kind of write, sizes varying.
fn write_mix(c: &dyn RemoteCache, w: usize, rounds: usize) {
    for i in 0..rounds {
        let k = |j: usize| format!("w{}k{}", w % 2, j % 40).into_bytes();
        let v = bytes(1 + (i * 37 + w * 11) % 300);
        match i % 9 {
            0 | 1 => c.set(&k(i), &v, Ttl::Never, None).unwrap(),
            2 => {
                c.add(&k(i + 3), &v, Ttl::Never, Some(b"t")).unwrap();
            }
            3 => {
                c.delete(&k(i + 5)).unwrap();
            }
            4 => {
                c.pop(&k(i + 7)).unwrap();
            }
            5 => {
                let _ = c.incr(&k(i + 1), 1, Some(0));
            }
            6 => {
                let keys: Vec<Vec<u8>> = (0..5).map(|j| k(i + j)).collect();
                let items: Vec<(&[u8], RemoteValue)> =
                    keys.iter().map(|k| (k.as_slice(), v.clone())).collect();
                c.set_many(&items).unwrap();
            }
            7 => {
                let keys: Vec<Vec<u8>> = (0..3).map(|j| k(i * 3 + j)).collect();
                let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
                c.delete_many(&refs).unwrap();
            }
            _ => {
                if i % 45 == 8 {
                    c.evict(b"t").unwrap();
                } else {
                    c.set(&k(i), &v, Ttl::After(Duration::from_secs(600)), None)
                        .unwrap();
                }
            }
        }
    }
}

#[test]
fn postgres_running_totals_stay_exact_under_concurrent_writers() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("totals");
    let limited = |count: u64| {
        let mut o = RemoteCacheOptions::new(&table);
        o.count_limit = Some(count);
        o.size_limit = Some(1 << 30);
        o
    };
    // Entries before the totals exist are counted when a cache with limits first opens.
    let plain = PgCache::open(&url, RemoteCacheOptions::new(&table)).unwrap();
    plain.set(b"before", &bytes(50), Ttl::Never, None).unwrap();
    let first = PgCache::open(&url, limited(100_000)).unwrap();
    assert_eq!(totals(&url, &table).0, (1, 56));
    drop(first);
    // Writers with limits (each its own connections) and one without, at once: the
    // triggers keep the totals exact whoever writes.
    std::thread::scope(|s| {
        for w in 0..4 {
            let (url, limited) = (&url, &limited);
            s.spawn(move || {
                let c = PgCache::open(url, limited(100_000)).unwrap();
                write_mix(&c, w, 400);
            });
        }
        let plain = &plain;
        s.spawn(move || write_mix(plain, 5, 400));
    });
    let (by_totals, by_sum) = totals(&url, &table);
    assert_eq!(by_totals, by_sum);
    let c = PgCache::open(&url, limited(100_000)).unwrap();
    assert_eq!(c.volume().unwrap() as i64, by_sum.1);
    // Folding keeps them small: far fewer rows than the 2000 writes.
    let rows: i64 = sql(&url)
        .query_one(&format!("SELECT count(*) FROM \"{table}_totals\""), &[])
        .unwrap()
        .get(0);
    assert!(rows < 1000, "{rows} delta rows");

    // With a count limit that evicts, from several writers at once.
    std::thread::scope(|s| {
        for w in 0..4 {
            let (url, limited) = (&url, &limited);
            s.spawn(move || {
                let c = PgCache::open(url, limited(30)).unwrap();
                for i in 0..150 {
                    let k = format!("e{w}-{i}").into_bytes();
                    c.set(&k, &bytes(10 + i % 7), Ttl::Never, None).unwrap();
                }
            });
        }
    });
    let (by_totals, by_sum) = totals(&url, &table);
    assert_eq!(by_totals, by_sum);
    assert!(by_sum.0 <= 30, "{} entries kept", by_sum.0);
    c.clear().unwrap();
    assert_eq!(totals(&url, &table).0, (0, 0));
    // A table dropped and made again (its triggers went with it) gets fresh totals.
    c.set(b"stale", &bytes(9), Ttl::Never, None).unwrap();
    drop(c);
    sql(&url)
        .batch_execute(&format!("DROP TABLE \"{table}\""))
        .unwrap();
    let plain = PgCache::open(&url, RemoteCacheOptions::new(&table)).unwrap();
    plain.set(b"again", &bytes(4), Ttl::Never, None).unwrap();
    let c = PgCache::open(&url, limited(10)).unwrap();
    c.set(b"more", &bytes(4), Ttl::Never, None).unwrap();
    let (by_totals, by_sum) = totals(&url, &table);
    assert_eq!((by_totals, by_sum.0), (by_sum, 2));
}

#[test]
fn postgres_limits_with_each_policy_evict_in_order() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    for policy in [
        EvictionPolicy::LeastRecentlyStored,
        EvictionPolicy::LeastRecentlyUsed,
        EvictionPolicy::LeastFrequentlyUsed,
    ] {
        let table = unique("policy");
        let mut o = RemoteCacheOptions::new(&table);
        o.count_limit = Some(3);
        o.policy = policy;
        let c = PgCache::open(&url, o).unwrap();
        for k in [b"a", b"b", b"c"] {
            c.set(k, &bytes(1), Ttl::Never, None).unwrap();
        }
        c.get(b"a").unwrap(); // used: LRU and LFU keep it
        c.set(b"b", &bytes(2), Ttl::Never, None).unwrap(); // re-stored: moves to the end
        c.set(b"d", &bytes(1), Ttl::Never, None).unwrap();
        let gone: Vec<&[u8]> = [&b"a"[..], b"b", b"c", b"d"]
            .into_iter()
            .filter(|k| c.get(k).unwrap().is_none())
            .collect();
        let want: &[u8] = match policy {
            EvictionPolicy::LeastRecentlyStored => b"a",
            _ => b"c",
        };
        assert_eq!(gone, [want], "{policy:?}");
        let (by_totals, by_sum) = totals(&url, &table);
        assert_eq!(by_totals, by_sum);
    }
}

/// A write of a cache with limits inside this thread's open transaction is part of it:
/// rolled back with it, refused (policy `none`, full) without undoing the transaction's
/// earlier writes, and committed only by the transaction's own end. (Each such write used
/// to open and commit a transaction of its own on the same connection, committing the
/// caller's transaction early.)
#[test]
fn postgres_limited_writes_belong_to_the_open_transaction() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("limtx");
    let mut o = RemoteCacheOptions::new(&table);
    o.count_limit = Some(2);
    o.policy = EvictionPolicy::None;
    let c = PgCache::open(&url, o).unwrap();
    c.set(b"kept", &bytes(1), Ttl::Never, None).unwrap();
    // Rolled back with the transaction.
    c.begin().unwrap();
    c.set(b"undone", &bytes(1), Ttl::Never, None).unwrap();
    assert!(c.get(b"undone").unwrap().is_some());
    c.end(false).unwrap();
    assert_eq!(c.get(b"undone").unwrap(), None);
    // Not visible to another session before the transaction commits; refused when full
    // without losing the transaction's earlier write.
    c.begin().unwrap();
    c.set(b"second", &bytes(1), Ttl::Never, None).unwrap();
    let mut other = sql(&url);
    let seen = |db: &mut postgres::Client, k: &[u8]| {
        db.query_opt(&format!("SELECT 1 FROM \"{table}\" WHERE key = $1"), &[&k])
            .unwrap()
            .is_some()
    };
    assert!(!seen(&mut other, b"second"));
    let refused = c.set(b"third", &bytes(1), Ttl::Never, None);
    assert!(
        matches!(refused, Err(diskstore::Error::Full(_))),
        "{refused:?}"
    );
    c.end(true).unwrap();
    assert!(seen(&mut other, b"second"));
    assert!(!seen(&mut other, b"third"));
    assert_eq!(all_keys(&c), [b"kept".to_vec(), b"second".to_vec()]);
    let (by_totals, by_sum) = totals(&url, &table);
    assert_eq!((by_totals, by_sum.0), (by_sum, 2));
    // On its own, a refused write leaves the connection usable and nothing written.
    assert!(matches!(
        c.set(b"fourth", &bytes(1), Ttl::Never, None),
        Err(diskstore::Error::Full(_))
    ));
    c.set(b"kept", &bytes(3), Ttl::Never, None).unwrap();
    assert_eq!(all_keys(&c), [b"second".to_vec(), b"kept".to_vec()]);
    assert_eq!(totals(&url, &table).0, (2, 7 + 7));
}

/// The totals triggers fire per inserted row and per size change only: an overwrite of
/// the same size (or a read's `accessed` update) adds no totals row. A table with the
/// older statement-level triggers gets the current ones, with exact totals, when a cache
/// with limits opens it.
#[test]
fn postgres_totals_skip_writes_that_keep_the_size() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("rowtrig");
    let mut o = RemoteCacheOptions::new(&table);
    o.count_limit = Some(100);
    o.policy = EvictionPolicy::LeastRecentlyUsed;
    let mut db = sql(&url);
    let delta_rows = |db: &mut postgres::Client| -> i64 {
        db.query_one(&format!("SELECT count(*) FROM \"{table}_totals\""), &[])
            .unwrap()
            .get(0)
    };
    let row_level = |db: &mut postgres::Client| -> Vec<(String, bool)> {
        db.query(
            "SELECT tgname::text, tgtype & 1 = 1 FROM pg_trigger \
             WHERE tgrelid = $1::text::regclass ORDER BY 1",
            &[&format!("\"{table}\"")],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let c = PgCache::open(&url, o.clone()).unwrap();
    c.set(b"a", &bytes(10), Ttl::Never, None).unwrap();
    let before = delta_rows(&mut db);
    c.set(b"a", &bytes(10), Ttl::Never, None).unwrap();
    c.get(b"a").unwrap();
    c.touch(b"a", Ttl::Never).unwrap();
    assert_eq!(delta_rows(&mut db), before);
    c.set(b"a", &bytes(12), Ttl::Never, None).unwrap();
    assert_eq!(delta_rows(&mut db), before + 1);
    drop(c);
    // The older shape: statement-level triggers under the same names.
    let shape = row_level(&mut db);
    assert_eq!(shape.iter().filter(|(_, row)| *row).count(), 2, "{shape:?}");
    for (name, _) in &shape {
        db.batch_execute(&format!("DROP TRIGGER \"{name}\" ON \"{table}\""))
            .unwrap();
        db.batch_execute(&format!(
            "CREATE TRIGGER \"{name}\" AFTER DELETE ON \"{table}\" FOR EACH STATEMENT \
             EXECUTE FUNCTION \"{table}_totals_fn\"()"
        ))
        .unwrap();
    }
    db.batch_execute(&format!("INSERT INTO \"{table}_totals\" VALUES (5, 5)"))
        .unwrap();
    let c = PgCache::open(&url, o).unwrap();
    assert_eq!(row_level(&mut db), shape);
    c.set(b"b", &bytes(1), Ttl::Never, None).unwrap();
    let (by_totals, by_sum) = totals(&url, &table);
    assert_eq!((by_totals, by_sum.0), (by_sum, 2));
}

/// Two handles (as two app servers) count into the same hits and misses.
fn shared_stats(open: &dyn Fn() -> Box<dyn RemoteCache>) {
    let a = open();
    let b = open();
    a.clear().unwrap();
    a.stats(true).unwrap();
    a.set(b"x", &bytes(3), Ttl::Never, None).unwrap();
    for _ in 0..3 {
        a.get(b"x").unwrap();
    }
    a.get_many(&[b"x", b"nope"]).unwrap();
    assert_eq!(a.stats(false).unwrap(), (4, 1));
    b.get(b"nope").unwrap();
    b.get(b"x").unwrap();
    assert_eq!(b.stats(false).unwrap(), (5, 2));
    // A handle's counts still in memory are added when it is dropped.
    a.get(b"x").unwrap();
    drop(a);
    assert_eq!(b.stats(false).unwrap(), (6, 2));
    // A reset is for everyone, and returns the counts it cleared.
    assert_eq!(b.stats(true).unwrap(), (6, 2));
    assert_eq!(open().stats(false).unwrap(), (0, 0));
    b.clear().unwrap(); // clear() keeps the counts
    b.get(b"x").unwrap();
    assert_eq!(b.stats(false).unwrap(), (0, 1));
}

#[test]
fn postgres_stats_are_shared() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("stats");
    shared_stats(&|| Box::new(PgCache::open(&url, RemoteCacheOptions::new(&table)).unwrap()));
}

#[test]
fn redis_stats_are_shared() {
    let Some(url) = server("DISKSTORE_TEST_REDIS") else {
        return;
    };
    let table = unique("stats");
    shared_stats(&|| Box::new(RedisCache::open(&url, RemoteCacheOptions::new(&table)).unwrap()));
}
