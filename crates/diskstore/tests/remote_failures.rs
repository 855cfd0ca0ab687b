//! Failures of the server backends, each a clear error of [`Error`]: connection refused,
//! authentication failure, statement timeout, a connection dropped inside a transaction
//! (nothing of it committed), and server restarts and crashes (the next call connects
//! again, an acknowledged write survives, a write in flight when the server dies is
//! reported as failed) — for the store and the cache on PostgreSQL and the cache on Redis.
//!
//! The restart tests start private servers through `scripts/servers.sh` (own directory
//! and ports), so that they never disturb the tests that run beside them on the shared
//! servers (`DISKSTORE_TEST_POSTGRES`, `DISKSTORE_TEST_REDIS`).

mod remote_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use diskstore::remote::postgres::PgStore;
use diskstore::remote::postgres_cache::PgCache;
use diskstore::remote::redis::RedisCache;
use diskstore::remote::{IncrOutcome, RemoteCache, RemoteCacheOptions, RemoteValue};
use diskstore::{DiskStore, Error, Ttl};
use remote_support::{PrivateServers, free_port, psql, server, unique, with_param};

/// The message of an [`Error::Connection`]; panics on anything else.
fn connection_error<T>(r: diskstore::Result<T>, what: &str) -> String {
    match r {
        Err(e @ Error::Connection { .. }) => e.to_string(),
        Err(other) => panic!("{what}: expected a connection error, got {other:?}"),
        Ok(_) => panic!("{what}: expected a connection error, got success"),
    }
}

fn pg_cache(url: &str) -> PgCache {
    PgCache::open(url, RemoteCacheOptions::new(unique("fc"))).unwrap()
}

fn int(i: i64) -> RemoteValue {
    RemoteValue::Int(i)
}

#[test]
fn connection_refused_is_a_connection_error_naming_the_address() {
    if server("DISKSTORE_TEST_POSTGRES").is_none() {
        return;
    }
    let port = free_port();
    let pg = format!("postgresql://postgres:hidden@127.0.0.1:{port}/x?sslmode=disable");
    let redis = format!("redis://127.0.0.1:{port}/0");
    let messages = [
        connection_error(PgStore::<String, i64>::open(&pg), "PgStore"),
        connection_error(DiskStore::<String, i64>::open_url(&pg), "open_url"),
        connection_error(PgCache::open(&pg, RemoteCacheOptions::new("x")), "PgCache"),
        connection_error(
            RedisCache::open(&redis, RemoteCacheOptions::new("x")),
            "RedisCache",
        ),
    ];
    for m in messages {
        assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
        assert!(!m.contains("hidden"), "the password leaked: {m}");
    }
}

#[test]
fn authentication_failure_is_a_connection_error_without_the_password() {
    let (Some(pg), Some(redis)) = (
        server("DISKSTORE_TEST_POSTGRES"),
        server("DISKSTORE_TEST_REDIS"),
    ) else {
        return;
    };
    // servers.sh makes the role diskstore_pw with the password "secret".
    let bad = pg.replace("postgres@", "diskstore_pw:not-the-password@");
    let store = connection_error(PgStore::<String, i64>::open(&bad), "store");
    let cache = connection_error(PgCache::open(&bad, RemoteCacheOptions::new("x")), "cache");
    // Redis: a user that does not exist (the server's ACL refuses the pair).
    let bad_redis = redis.replace("redis://", "redis://nobody:not-the-password@");
    let r = connection_error(
        RedisCache::open(&bad_redis, RemoteCacheOptions::new("x")),
        "redis",
    );
    for m in [store, cache, r] {
        assert!(m.contains("authentication failed"), "{m}");
        assert!(!m.contains("not-the-password"), "the password leaked: {m}");
    }
    // The right password works.
    let good = pg.replace("postgres@", "diskstore_pw:secret@");
    let s: PgStore<String, i64> = PgStore::open_table(&good, &unique("auth")).unwrap();
    s.insert("k", &1).unwrap();
    assert_eq!(s.get("k").unwrap(), Some(1));
}

#[test]
fn statement_timeout_is_a_timeout_error_and_applies_nothing() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let short = with_param(&url, "options", "-c%20statement_timeout%3D200");
    // The store: a row locked by another transaction.
    let table = unique("timeout");
    let holder: PgStore<String, i64> = PgStore::open_table(&url, &table).unwrap();
    let waiter: PgStore<String, i64> = PgStore::open_table(&short, &table).unwrap();
    holder.insert("k", &1).unwrap();
    let tx = holder.begin().unwrap();
    holder.insert("k", &2).unwrap();
    let (set, add) = std::thread::scope(|s| {
        s.spawn(|| (waiter.insert("k", &3), waiter.remove("k")))
            .join()
            .unwrap()
    });
    tx.commit().unwrap();
    for r in [set.map(|_| ()), add.map(|_| ())] {
        match r {
            Err(e @ Error::Timeout { .. }) => assert!(e.to_string().contains("timed out")),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert_eq!(waiter.get("k").unwrap(), Some(2));
    // The cache: a set and an incr (which must not run twice) time out the same way.
    let name = unique("timeoutc");
    let holder = PgCache::open(&url, RemoteCacheOptions::new(&name)).unwrap();
    let waiter = PgCache::open(&short, RemoteCacheOptions::new(&name)).unwrap();
    holder.set(b"n", &int(1), Ttl::Never, None).unwrap();
    holder.begin().unwrap();
    holder.set(b"n", &int(5), Ttl::Never, None).unwrap();
    let (set, incr) = std::thread::scope(|s| {
        s.spawn(|| {
            (
                waiter.set(b"n", &int(7), Ttl::Never, None),
                waiter.incr(b"n", 1, Some(0)),
            )
        })
        .join()
        .unwrap()
    });
    holder.end(true).unwrap();
    assert!(matches!(set, Err(Error::Timeout { .. })), "{set:?}");
    assert!(matches!(incr, Err(Error::Timeout { .. })), "{incr:?}");
    assert_eq!(waiter.get(b"n").unwrap(), Some(int(5)));
}

/// Kills the server sessions of `application_name` (this test's own).
fn terminate_sessions(url: &str, application_name: &str) -> usize {
    let plain = url.split('?').next().unwrap();
    psql(
        plain,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{application_name}'"
        ),
    )
    .parse()
    .unwrap()
}

#[test]
fn a_connection_dropped_inside_a_transaction_commits_nothing() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    // A session name of this test's own, so that only its sessions are killed.
    let app = unique("dropped");
    let url = with_param(&url, "application_name", &app);
    let lost = "nothing of the transaction was committed";

    let s: PgStore<String, i64> = PgStore::open_table(&url, &unique("drop")).unwrap();
    s.insert("before", &1).unwrap();
    let tx = s.begin().unwrap();
    s.insert("x", &1).unwrap();
    assert!(terminate_sessions(&url, &app) >= 1);
    let m = connection_error(s.insert("y", &2), "write after the drop");
    assert!(m.contains(lost), "{m}");
    let m = connection_error(tx.commit(), "commit after the drop");
    assert!(m.contains(lost), "{m}");
    assert_eq!(s.get("x").unwrap(), None); // a new connection; nothing half-applied
    assert_eq!(s.get("y").unwrap(), None);
    assert_eq!(s.get("before").unwrap(), Some(1));
    s.insert("after", &3).unwrap();
    assert_eq!(s.len().unwrap(), 2);

    let c = pg_cache(&url);
    c.set(b"before", &int(1), Ttl::Never, None).unwrap();
    c.begin().unwrap();
    c.set(b"x", &int(1), Ttl::Never, None).unwrap();
    assert_eq!(c.incr(b"before", 10, None).unwrap(), IncrOutcome::Value(11));
    assert!(terminate_sessions(&url, &app) >= 1);
    let m = connection_error(c.incr(b"before", 1, None), "incr after the drop");
    assert!(m.contains(lost), "{m}");
    let m = connection_error(c.end(true), "end after the drop");
    assert!(m.contains(lost), "{m}");
    assert_eq!(c.get(b"x").unwrap(), None);
    assert_eq!(c.get(b"before").unwrap(), Some(int(1)));
}

/// Waits until `n` sessions of the server wait for a lock.
fn wait_for_lock_waiters(url: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: usize = psql(
            url.split('?').next().unwrap(),
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        )
        .parse()
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no session waits for the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postgres_restarts_and_crashes_keep_acknowledged_writes() {
    let Some(srv) = PrivateServers::start(&["postgres"], false) else {
        return;
    };
    let url = srv.postgres();
    let s = DiskStore::<i64, i64>::builder(&url)
        .table("restart")
        .open_url()
        .unwrap();
    let c = pg_cache(&url);
    for i in 0..50 {
        s.insert(&i, &i).unwrap();
    }
    c.set(b"k", &int(1), Ttl::Never, None).unwrap();
    assert_eq!(c.incr(b"n", 5, Some(0)).unwrap(), IncrOutcome::Value(5));

    // A clean restart: every pooled connection died with the old server; reads, writes
    // and calls that must not run twice connect again.
    srv.run("restart-postgres");
    assert_eq!(s.get(&7).unwrap(), Some(7));
    assert!(s.add(&50, &50).unwrap());
    assert_eq!(c.incr(b"n", 1, None).unwrap(), IncrOutcome::Value(6));
    assert_eq!(c.get(b"k").unwrap(), Some(int(1)));

    // A crash (no shutdown checkpoint): what was acknowledged is there after recovery.
    for i in 51..100 {
        s.insert(&i, &i).unwrap();
    }
    c.set(b"k", &int(2), Ttl::Never, None).unwrap();
    srv.run("crash-postgres");
    let m = connection_error(s.get(&1), "read while the server is down");
    assert!(m.contains("127.0.0.1"), "{m}");
    srv.run("start-postgres");
    assert_eq!(s.len().unwrap(), 100);
    let all: Vec<(i64, i64)> = s.iter().collect::<diskstore::Result<_>>().unwrap();
    assert_eq!(all, (0..100).map(|i| (i, i)).collect::<Vec<_>>());
    assert_eq!(c.get(b"k").unwrap(), Some(int(2)));
    assert_eq!(c.incr(b"n", 1, None).unwrap(), IncrOutcome::Value(7));

    // Writes in flight when the server stops (each blocked by another transaction's row
    // lock) are reported as failed, and the server has none of them afterwards.
    let c = Arc::new(c);
    let tx = s.begin().unwrap();
    s.insert(&7, &-1).unwrap();
    c.begin().unwrap();
    assert_eq!(c.incr(b"n", 100, None).unwrap(), IncrOutcome::Value(107));
    let (store_write, cache_set, cache_incr) = std::thread::scope(|scope| {
        let w1 = scope.spawn(|| s.insert(&7, &-2));
        let w2 = scope.spawn(|| c.set(b"n", &int(-3), Ttl::Never, None));
        let w3 = scope.spawn(|| c.incr(b"n", 1000, None));
        wait_for_lock_waiters(&url, 3);
        srv.run("stop-postgres");
        (w1.join().unwrap(), w2.join().unwrap(), w3.join().unwrap())
    });
    connection_error(store_write, "store write in flight");
    connection_error(cache_set, "cache set in flight");
    let m = connection_error(cache_incr, "cache incr in flight");
    assert!(m.contains("may or may not have been applied"), "{m}");
    connection_error(tx.commit(), "commit of the transaction the stop ended");
    connection_error(c.end(true), "cache commit the stop ended");
    srv.run("start-postgres");
    assert_eq!(s.get(&7).unwrap(), Some(7));
    assert_eq!(c.get(b"n").unwrap(), Some(int(7)));
}

#[test]
fn redis_restarts_and_kills_keep_acknowledged_writes() {
    let Some(srv) = PrivateServers::start(&["redis"], true) else {
        return;
    };
    let c = RedisCache::open(&srv.redis(), RemoteCacheOptions::new("r")).unwrap();
    for i in 0..50_i64 {
        c.set(&i.to_be_bytes(), &int(i), Ttl::Never, None).unwrap();
    }
    assert_eq!(c.incr(b"n", 5, Some(0)).unwrap(), IncrOutcome::Value(5));
    // Killed (SIGKILL): with `appendfsync always` an acknowledged write is on disk.
    srv.run("kill-redis");
    connection_error(c.get(b"n"), "read while the server is down");
    srv.run("start-redis");
    assert_eq!(c.len().unwrap(), 51);
    for i in 0..50_i64 {
        assert_eq!(c.get(&i.to_be_bytes()).unwrap(), Some(int(i)));
    }
    assert_eq!(c.incr(b"n", 1, None).unwrap(), IncrOutcome::Value(6));
    // A clean restart: the next calls connect again.
    srv.run("restart-redis");
    assert_eq!(c.incr(b"n", 1, None).unwrap(), IncrOutcome::Value(7));
    assert!(c.add(b"new", &int(1), Ttl::Never, None).unwrap());

    // Writes in flight when the server dies: Redis holds them (CLIENT PAUSE WRITE), then
    // it is killed; each is reported as failed and none is there afterwards.
    srv.redis_cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    let (set, incr) = std::thread::scope(|scope| {
        let w1 = scope.spawn(|| c.set(b"paused", &int(1), Ttl::Never, None));
        let w2 = scope.spawn(|| c.incr(b"n", 1000, None));
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !w1.is_finished() && !w2.is_finished(),
            "the pause held nothing"
        );
        srv.run("kill-redis");
        (w1.join().unwrap(), w2.join().unwrap())
    });
    connection_error(set, "set in flight");
    let m = connection_error(incr, "incr in flight");
    assert!(m.contains("may or may not have been applied"), "{m}");
    srv.run("start-redis");
    assert_eq!(c.get(b"paused").unwrap(), None);
    assert_eq!(c.get(b"n").unwrap(), Some(int(7)));
}
