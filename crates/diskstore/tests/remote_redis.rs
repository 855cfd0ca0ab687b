//! The Redis cache's own connection on plain TCP: replies larger than one read, many
//! values in one `MGET`, server errors that leave the connection usable, and the
//! database of the URL. Server: `scripts/servers.sh` (`DISKSTORE_TEST_REDIS`); required
//! under `CI=true` or `DISKSTORE_REQUIRE_SERVERS=1`, else skipped with the reason.

mod remote_support;

use diskstore::Ttl;
use diskstore::remote::found::RemoteValueRef;
use diskstore::remote::redis::RedisCache;
use diskstore::remote::{IncrOutcome, RemoteCache, RemoteCacheOptions, RemoteValue};
use remote_support::{server, unique};

fn redis_url() -> Option<String> {
    server("DISKSTORE_TEST_REDIS")
}

/// The same URL naming database `db`.
fn with_db(url: &str, db: u32) -> String {
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{db}")
}

/// A value of `n` bytes that differ by position and by `seed`.
fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + seed) as u8).collect()
}

#[test]
fn large_and_many_values_come_back_whole_and_in_order() {
    let Some(url) = redis_url() else { return };
    let c = RedisCache::open(&url, RemoteCacheOptions::new(unique("conn"))).unwrap();
    // Sizes around the 64 KiB read and far beyond it, ints, tagged values, empty bytes.
    let mut expected: Vec<(Vec<u8>, Option<RemoteValue>)> = Vec::new();
    for (i, n) in [0, 1, 100, 65_535, 65_536, 200_000, 3 << 20]
        .into_iter()
        .enumerate()
    {
        let k = format!("big{i}").into_bytes();
        let v = RemoteValue::Bytes(pattern(n, i));
        c.set(&k, &v, Ttl::Never, None).unwrap();
        expected.push((k, Some(v)));
    }
    for i in 0..3000 {
        let k = format!("k{i}").into_bytes();
        let v = match i % 4 {
            0 => None, // never stored
            1 => Some(RemoteValue::Int(i as i64 - 1500)),
            2 => Some(RemoteValue::Bytes(pattern(i % 300, i))),
            _ => Some(RemoteValue::Bytes(pattern(10, i))),
        };
        if let Some(v) = &v {
            let tag = (i % 8 == 3).then_some(&b"t"[..]);
            c.set(&k, v, Ttl::Never, tag).unwrap();
        }
        expected.push((k, v));
    }
    let keys: Vec<&[u8]> = expected.iter().map(|(k, _)| k.as_slice()).collect();
    let found = c.get_many_found(&keys).unwrap();
    assert_eq!(found.len(), keys.len());
    for ((k, want), got) in expected.iter().zip(found.iter()) {
        assert_eq!(
            &got.map(RemoteValueRef::to_value),
            want,
            "key {}",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(
        c.get_many(&keys).unwrap(),
        expected.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );
    for (k, want) in expected.iter().step_by(97).chain(&expected[..7]) {
        assert_eq!(&c.get(k).unwrap(), want);
    }
    c.clear().unwrap();
}

#[test]
fn server_errors_leave_the_connection_in_step() {
    let Some(url) = redis_url() else { return };
    let table = unique("errs");
    let c = RedisCache::open(&url, RemoteCacheOptions::new(&table)).unwrap();
    c.set(
        b"text",
        &RemoteValue::Bytes(b"x".to_vec()),
        Ttl::Never,
        None,
    )
    .unwrap();
    c.set(b"n", &RemoteValue::Int(1), Ttl::Never, None).unwrap();
    // A key of another Redis type under the cache's name: GET and MGET answer WRONGTYPE.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_connection().unwrap();
    redis::cmd("SADD")
        .arg(format!("{table}:set"))
        .arg("m")
        .query::<()>(&mut raw)
        .unwrap();
    let wrong_type = |e: diskstore::Error| match e {
        diskstore::Error::Server { code, .. } => assert_eq!(code, "WRONGTYPE"),
        other => panic!("not a server error: {other:?}"),
    };
    for _ in 0..3 {
        wrong_type(c.get(b"set").unwrap_err());
        // MGET answers nil for a key of another type.
        assert_eq!(
            c.get_many(&[b"n", b"set"]).unwrap(),
            vec![Some(RemoteValue::Int(1)), None]
        );
        assert_eq!(c.incr(b"text", 1, None).unwrap(), IncrOutcome::NotAnInteger);
        assert_eq!(c.incr(b"n", 1, None).unwrap(), IncrOutcome::Value(2));
        c.set(b"n", &RemoteValue::Int(1), Ttl::Never, None).unwrap();
        assert_eq!(
            c.get_many(&[b"n", b"text", b"absent"]).unwrap(),
            vec![
                Some(RemoteValue::Int(1)),
                Some(RemoteValue::Bytes(b"x".to_vec())),
                None
            ]
        );
    }
    c.clear().unwrap();
}

#[test]
fn the_database_of_the_url_is_used() {
    let Some(url) = redis_url() else { return };
    let table = unique("db");
    let on3 = RedisCache::open(&with_db(&url, 3), RemoteCacheOptions::new(&table)).unwrap();
    let on0 = RedisCache::open(&with_db(&url, 0), RemoteCacheOptions::new(&table)).unwrap();
    on3.set(b"k", &RemoteValue::Int(3), Ttl::Never, None)
        .unwrap();
    assert_eq!(on0.get(b"k").unwrap(), None);
    assert_eq!(on3.get(b"k").unwrap(), Some(RemoteValue::Int(3)));
    // Seen by another client on database 3 only.
    let client = redis::Client::open(with_db(&url, 3).as_str()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{table}:*"))
        .query(&mut raw)
        .unwrap();
    assert_eq!(keys.len(), 1);
    on3.clear().unwrap();
}

#[test]
fn incr_from_zero_is_one_command_and_keeps_the_default_expiry() {
    let Some(url) = redis_url() else { return };
    let table = unique("incr");
    let c = RedisCache::open(&url, RemoteCacheOptions::new(&table)).unwrap();
    assert_eq!(c.incr(b"n", -4, Some(0)).unwrap(), IncrOutcome::Value(-4));
    assert_eq!(c.incr(b"n", 10, Some(0)).unwrap(), IncrOutcome::Value(6));
    assert_eq!(c.get(b"n").unwrap(), Some(RemoteValue::Int(6)));
    c.clear().unwrap();
    // With a default expiry, a counter made by incr gets it (the SET … NX PX path).
    let mut o = RemoteCacheOptions::new(format!("{table}_ttl"));
    o.default_ttl = Some(std::time::Duration::from_secs(600));
    let timed = RedisCache::open(&url, o).unwrap();
    assert_eq!(timed.incr(b"n", 1, Some(0)).unwrap(), IncrOutcome::Value(1));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{table}_ttl:n"))
        .query(&mut raw)
        .unwrap();
    assert!(pttl > 0 && pttl <= 600_000, "PTTL {pttl}");
    timed.clear().unwrap();
}
