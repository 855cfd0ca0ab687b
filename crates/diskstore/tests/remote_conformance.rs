//! One conformance suite for the store on SQLite and on PostgreSQL, and for the cache on
//! PostgreSQL and Redis (the SQLite cache has its own suites; the Python conformance
//! suite runs the cache on all three). Servers come from `scripts/servers.sh`
//! (`DISKSTORE_TEST_POSTGRES`, `DISKSTORE_TEST_REDIS`); under `CI=true` (or
//! `DISKSTORE_REQUIRE_SERVERS=1`, set by .ci/run) a missing server fails the test,
//! elsewhere the test says why it skips.

mod remote_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use diskstore::remote::Backend;
use diskstore::remote::postgres::{PgStore, PgTable};
use diskstore::remote::postgres_cache::PgCache;
use diskstore::remote::redis::RedisCache;
use diskstore::remote::{IncrOutcome, RemoteCache, RemoteCacheOptions, RemoteValue};
use diskstore::{AnyStore, DiskStore, Error, Json, ManualClock, Record, Ttl, Value};
use remote_support::{server, unique};

/// The behaviour every store backend must share, through the one entry point
/// (`DiskStore::open_url`) that opens each of them.
fn store_conformance(s: &AnyStore<String, i64>) {
    let keys = || {
        s.keys()
            .collect::<diskstore::Result<Vec<String>>>()
            .unwrap()
    };
    assert_eq!(s.len().unwrap(), 0);
    assert!(s.is_empty().unwrap());
    s.insert("a", &1).unwrap();
    s.insert("b", &2).unwrap();
    s.insert("c", &3).unwrap();
    s.insert("a", &10).unwrap(); // an overwrite keeps the position
    assert_eq!(keys(), ["a", "b", "c"]);
    assert_eq!(s.get("a").unwrap(), Some(10));
    assert_eq!(s.get("zz").unwrap(), None);
    assert!(s.contains_key("b").unwrap());
    assert!(!s.add("b", &99).unwrap());
    assert!(s.add("d", &4).unwrap());
    assert_eq!(s.get_or_insert("b", &77).unwrap(), 2);
    assert_eq!(s.get_or_insert("e", &5).unwrap(), 5);
    assert_eq!(
        s.get_many(&["e", "x", "a"]).unwrap(),
        [Some(5), None, Some(10)]
    );
    let batch = [("f", 6), ("g", 7), ("f", 60)];
    assert_eq!(s.extend(batch.iter().map(|(k, v)| (k, v))).unwrap(), 3);
    assert_eq!(s.get("f").unwrap(), Some(60));
    assert_eq!(keys(), ["a", "b", "c", "d", "e", "f", "g"]);
    let items: Vec<(String, i64)> = s.iter().collect::<diskstore::Result<_>>().unwrap();
    assert_eq!(items[0], ("a".to_string(), 10));
    assert_eq!(s.remove("c").unwrap(), Some(3));
    assert_eq!(s.remove("c").unwrap(), None);
    assert_eq!(s.pop_last().unwrap(), Some(("g".into(), 7)));
    assert_eq!(s.pop_first().unwrap(), Some(("a".into(), 10)));
    assert_eq!(s.len().unwrap(), 4);
    // A transaction joined by this thread's calls; a nested level rolled back alone.
    let tx = s.begin().unwrap();
    s.insert("h", &8).unwrap();
    let sp = tx.savepoint().unwrap();
    s.insert("i", &9).unwrap();
    sp.rollback().unwrap();
    tx.commit().unwrap();
    assert_eq!(s.get("h").unwrap(), Some(8));
    assert_eq!(s.get("i").unwrap(), None);
    // Dropping an uncommitted transaction rolls it back.
    {
        let _tx = s.begin().unwrap();
        s.insert("j", &10).unwrap();
    }
    assert_eq!(s.get("j").unwrap(), None);
    assert!(s.check().unwrap().is_empty());
    s.clear().unwrap();
    assert!(s.is_empty().unwrap());
}

#[test]
fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = DiskStore::<String, i64>::open_url(path.to_str().unwrap()).unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    store_conformance(&s);
}

#[test]
fn store_on_postgres() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let s = DiskStore::<String, i64>::builder(&url)
        .table(unique("conf"))
        .open_url()
        .unwrap();
    assert_eq!(s.backend(), Backend::Postgres);
    store_conformance(&s);
    // The same table through PgStore sees the same rows.
    s.insert("k", &1).unwrap();
    let AnyStore::Postgres(pg) = &s else {
        panic!("not on PostgreSQL")
    };
    let again: PgStore<String, i64> = PgStore::open_table(&url, &pg.table().spec().name).unwrap();
    assert_eq!(again.get("k").unwrap(), Some(1));
}

#[test]
fn urls_are_not_file_paths() {
    // `open` takes paths only: a URL is a clear usage error, not a file named
    // "postgresql:"; `open_url` refuses what no backend offers.
    let err = DiskStore::<String, i64>::open("postgresql://u:pw@127.0.0.1:1/db").err();
    let msg = err.expect("a URL must not open as a file").to_string();
    assert!(msg.contains("open_url") && !msg.contains("pw"), "{msg}");
    assert!(!std::path::Path::new("postgresql:").exists());
    let err = DiskStore::<String, i64>::open_url("redis://127.0.0.1:1/0").err();
    assert!(
        matches!(
            err,
            Some(Error::NotSupported {
                backend: "redis",
                ..
            })
        ),
        "{err:?}"
    );
    let err = DiskStore::<String, i64>::builder("postgresql://127.0.0.1:1/db")
        .pragma("cache_size", 10)
        .open_url()
        .err();
    assert!(matches!(err, Some(Error::NotSupported { .. })), "{err:?}");
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Person {
    name: String,
    age: i64,
    score: f64,
    photo: Vec<u8>,
    #[record(default = "none")]
    note: String,
}

#[test]
fn postgres_typed_columns_query_and_migration() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("people");
    // An older layout of the table, then the record adds a column with its default.
    let old = diskstore::TableSpec {
        name: table.clone(),
        key_type: diskstore::ColumnType::Integer,
        columns: vec![
            diskstore::Column::new("name", diskstore::ColumnType::Text, false, None),
            diskstore::Column::new("age", diskstore::ColumnType::Integer, false, None),
            diskstore::Column::new("score", diskstore::ColumnType::Real, false, None),
            diskstore::Column::new("photo", diskstore::ColumnType::Blob, false, None),
        ],
    };
    let t = PgTable::open(&url, old).unwrap();
    t.set(
        diskstore::KeyRef::Int(1),
        &[
            diskstore::Cell::Owned(Value::Text("old".into())),
            diskstore::Cell::Owned(Value::Integer(80)),
            diskstore::Cell::Owned(Value::Real(1.5)),
            diskstore::Cell::Owned(Value::Blob(vec![1])),
        ],
    )
    .unwrap();
    let s: PgStore<i64, Person> = PgStore::open_table(&url, &table).unwrap();
    assert_eq!(s.get(&1).unwrap().unwrap().note, "none");
    for (i, age) in [(2, 30), (3, 40), (4, 50)] {
        let p = Person {
            name: format!("p{i}"),
            age,
            score: age as f64 / 10.0,
            photo: vec![i as u8; 3],
            note: "n".into(),
        };
        s.insert(&i, &p).unwrap();
        assert_eq!(s.get(&i).unwrap().unwrap(), p);
    }
    let hits = s
        .query(
            Some("age > ? AND name <> ?"),
            &[Value::Integer(35), Value::Text("p4".into())],
            Some("age DESC"),
            None,
            None,
        )
        .unwrap();
    let names: Vec<&str> = hits.iter().map(|(_, p)| p.name.as_str()).collect();
    assert_eq!(names, ["old", "p3"]);
    let paged = s.query(None, &[], None, Some(2), Some(1)).unwrap();
    assert_eq!(paged.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [2, 3]);
    // Bad SQL is a server error naming the problem, not a panic.
    assert!(matches!(
        s.query(Some("no_such_column = 1"), &[], None, None, None),
        Err(Error::Server { .. })
    ));
    // A NaN key is refused before reaching the server.
    let f: PgStore<f64, i64> = PgStore::open_table(&url, &unique("floats")).unwrap();
    assert!(matches!(f.insert(&f64::NAN, &1), Err(Error::InvalidKey(_))));
    assert!(s.check().unwrap().is_empty());
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Flags {
    active: bool,
    maybe: Option<bool>,
    doc: Json<serde_json::Value>,
    tags: Option<Json<BTreeMap<String, i64>>>,
}

fn flags(i: i64) -> Flags {
    Flags {
        active: i % 2 == 0,
        maybe: (i % 3 != 0).then_some(i % 3 == 1),
        doc: Json(
            serde_json::json!({"i": i, "name": format!("f{i}"), "big": u64::MAX, "x": [1.5, null, true]}),
        ),
        tags: (i > 1).then(|| Json(BTreeMap::from([("n".to_owned(), i)]))),
    }
}

/// The server's `data_type` of each column of `table`, by name.
fn column_types(url: &str, table: &str) -> BTreeMap<String, String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
        &[&table],
    )
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Writes and reads `Flags` through every write path: one row, a batch, add, get_many,
/// query with a bool parameter, pop.
fn flags_round_trip(s: &PgStore<i64, Flags>) {
    s.insert(&1, &flags(1)).unwrap();
    s.extend([(&2, &flags(2)), (&3, &flags(3)), (&4, &flags(4))])
        .unwrap();
    assert!(s.add(&5, &flags(5)).unwrap());
    for i in 1..=5 {
        assert_eq!(s.get(&i).unwrap(), Some(flags(i)), "row {i}");
    }
    let many = s.get_many(&[4, 9, 1]).unwrap();
    assert_eq!(many, [Some(flags(4)), None, Some(flags(1))]);
    let on = s
        .query(Some("active = ?"), &[Value::Integer(1)], None, None, None)
        .unwrap();
    assert_eq!(on.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [2, 4]);
    // Overwrite flips every field, NULLs included.
    let mut f = flags(3);
    f.active = !f.active;
    f.maybe = Some(true);
    f.tags = None;
    s.insert(&3, &f).unwrap();
    assert_eq!(s.get(&3).unwrap(), Some(f));
    assert_eq!(s.pop_last().unwrap(), Some((5, flags(5))));
}

#[test]
fn postgres_bool_and_json_fields_get_boolean_and_jsonb_columns() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("flags");
    let s: PgStore<i64, Flags> = PgStore::open_table(&url, &table).unwrap();
    let types = column_types(&url, &table);
    assert_eq!(types["active"], "boolean");
    assert_eq!(types["maybe"], "boolean");
    assert_eq!(types["doc"], "jsonb");
    assert_eq!(types["tags"], "jsonb");
    flags_round_trip(&s);
    // The columns are the server's own types: its operators work on them.
    let named = s
        .query(
            Some("doc->>'name' = ? AND (tags->>'n')::bigint >= ? AND active"),
            &[Value::Text("f4".into()), Value::Integer(2)],
            None,
            None,
            None,
        )
        .unwrap();
    assert_eq!(named.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [4]);
    // A bool column takes 0 and 1 only; text that is not JSON is refused by the server.
    let t = s.table();
    let cells = |active: i64, doc: &str| {
        vec![
            diskstore::Cell::Owned(Value::Integer(active)),
            diskstore::Cell::Owned(Value::Null),
            diskstore::Cell::Owned(Value::Text(doc.into())),
            diskstore::Cell::Owned(Value::Null),
        ]
    };
    assert!(matches!(
        t.set(diskstore::KeyRef::Int(8), &cells(2, "{}")),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        t.set(diskstore::KeyRef::Int(8), &cells(1, "not json")),
        Err(Error::InvalidValue(_))
    ));
    // JSON text travels as text both ways: a number wider than u64 or f64 keeps its
    // digits (jsonb keeps numbers exactly).
    let wide = r#"{"n": 123456789012345678901234567890.000000000000000000001}"#;
    t.set(diskstore::KeyRef::Int(9), &cells(0, wide)).unwrap();
    let row = t.get(diskstore::KeyRef::Int(9)).unwrap().unwrap();
    assert_eq!(
        row[2],
        Value::Text(r#"{"n": 123456789012345678901234567890.000000000000000000001}"#.into())
    );
    assert_eq!(row[0], Value::Integer(0));
    // A bool field added by a later record gets a boolean column with its default.
    #[derive(Record, Debug, PartialEq)]
    struct More {
        active: bool,
        maybe: Option<bool>,
        doc: Json<serde_json::Value>,
        tags: Option<Json<BTreeMap<String, i64>>>,
        #[record(default = true)]
        fresh: bool,
        #[record(default = "[1, 2]")]
        list: Json<Vec<i64>>,
    }
    let m: PgStore<i64, More> = PgStore::open_table(&url, &table).unwrap();
    let types = column_types(&url, &table);
    assert_eq!(
        (types["fresh"].as_str(), types["list"].as_str()),
        ("boolean", "jsonb")
    );
    let one = m.get(&1).unwrap().unwrap();
    assert!(one.fresh);
    assert_eq!(one.list, Json(vec![1, 2]));
    assert!(s.check().unwrap().is_empty());
}

#[test]
fn postgres_tables_with_bigint_and_text_for_bool_and_json_still_work() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("oldflags");
    // The layout earlier versions made for `Flags`: bigint and text columns.
    let old = diskstore::TableSpec {
        name: table.clone(),
        key_type: diskstore::ColumnType::Integer,
        columns: vec![
            diskstore::Column::new("active", diskstore::ColumnType::Integer, false, None),
            diskstore::Column::new("maybe", diskstore::ColumnType::Integer, true, None),
            diskstore::Column::new("doc", diskstore::ColumnType::Text, false, None),
            diskstore::Column::new("tags", diskstore::ColumnType::Text, true, None),
        ],
    };
    let t = PgTable::open(&url, old).unwrap();
    let before = column_types(&url, &table);
    assert_eq!(
        [
            &before["active"],
            &before["maybe"],
            &before["doc"],
            &before["tags"]
        ],
        ["bigint", "bigint", "text", "text"]
    );
    // A row written the old way (0/1 and JSON text) reads as the record.
    t.set(
        diskstore::KeyRef::Int(7),
        &[
            diskstore::Cell::Owned(Value::Integer(1)),
            diskstore::Cell::Owned(Value::Null),
            diskstore::Cell::Owned(Value::Text(r#"{"b":1,  "a":2}"#.into())),
            diskstore::Cell::Owned(Value::Null),
        ],
    )
    .unwrap();
    let s: PgStore<i64, Flags> = PgStore::open_table(&url, &table).unwrap();
    assert_eq!(column_types(&url, &table), before, "no column changed type");
    let seven = s.get(&7).unwrap().unwrap();
    assert!(seven.active);
    assert_eq!(seven.doc, Json(serde_json::json!({"a": 2, "b": 1})));
    // Text columns keep the JSON as written (jsonb would normalise it).
    assert_eq!(
        t.get(diskstore::KeyRef::Int(7)).unwrap().unwrap()[2],
        Value::Text(r#"{"b":1,  "a":2}"#.into())
    );
    assert_eq!(s.remove(&7).unwrap(), Some(seven));
    flags_round_trip(&s);
    assert_eq!(
        t.get(diskstore::KeyRef::Int(2)).unwrap().unwrap()[0],
        Value::Integer(1),
        "a bool is stored as 1 in a bigint column"
    );
    assert!(s.check().unwrap().is_empty());
    // A column of another type is still refused.
    #[derive(Record, Debug)]
    struct Wrong {
        active: String,
    }
    assert!(matches!(
        PgStore::<i64, Wrong>::open_table(&url, &table).err(),
        Some(Error::Schema { .. })
    ));
}

fn cache_options(table: &str, clock: &Arc<ManualClock>) -> RemoteCacheOptions {
    let mut o = RemoteCacheOptions::new(table);
    o.clock = Arc::new(Arc::clone(clock));
    o
}

/// The behaviour every remote cache shares. Expiry is checked with the server's TTL on
/// Redis (real time), so it is left to `cache_expiry_*`.
fn cache_conformance(c: &dyn RemoteCache) {
    let b = |s: &str| RemoteValue::Bytes(s.as_bytes().to_vec());
    c.clear().unwrap();
    assert_eq!(c.get(b"k").unwrap(), None);
    c.set(b"k", &b("v"), Ttl::Never, None).unwrap();
    assert_eq!(c.get(b"k").unwrap(), Some(b("v")));
    assert!(!c.add(b"k", &b("w"), Ttl::Never, None).unwrap());
    assert!(c.add(b"k2", &b("w"), Ttl::Never, Some(b"t1")).unwrap());
    c.set(b"k3", &RemoteValue::Int(5), Ttl::Never, Some(b"t1"))
        .unwrap();
    assert_eq!(c.len().unwrap(), 3);
    assert_eq!(c.incr(b"n", 2, Some(10)).unwrap(), IncrOutcome::Value(12));
    assert_eq!(c.incr(b"n", -3, Some(10)).unwrap(), IncrOutcome::Value(9));
    assert_eq!(c.incr(b"missing", 1, None).unwrap(), IncrOutcome::Missing);
    assert_eq!(c.incr(b"k", 1, Some(0)).unwrap(), IncrOutcome::NotAnInteger);
    c.set(b"big", &RemoteValue::Int(i64::MAX), Ttl::Never, None)
        .unwrap();
    assert_eq!(c.incr(b"big", 1, Some(0)).unwrap(), IncrOutcome::Overflow);
    assert_eq!(c.get(b"big").unwrap(), Some(RemoteValue::Int(i64::MAX)));
    c.set_many(&[(b"m1", b("1")), (b"m2", RemoteValue::Int(2))])
        .unwrap();
    assert_eq!(
        c.get_many(&[b"m1", b"zz", b"m2"]).unwrap(),
        [Some(b("1")), None, Some(RemoteValue::Int(2))]
    );
    // A key given twice in one batch: its last value wins, in one statement.
    let many: Vec<(Vec<u8>, RemoteValue)> = (0..300)
        .map(|i| (format!("d{}", i % 150).into_bytes(), RemoteValue::Int(i)))
        .collect();
    let refs: Vec<(&[u8], RemoteValue)> = many
        .iter()
        .map(|(k, v)| (k.as_slice(), v.clone()))
        .collect();
    c.set_many(&refs).unwrap();
    assert_eq!(c.get(b"d7").unwrap(), Some(RemoteValue::Int(157)));
    let dkeys: Vec<Vec<u8>> = (0..150).map(|i| format!("d{i}").into_bytes()).collect();
    let drefs: Vec<&[u8]> = dkeys.iter().map(Vec::as_slice).collect();
    assert_eq!(c.delete_many(&drefs).unwrap(), 150);
    assert_eq!(c.delete_many(&[b"m1", b"m2", b"zz"]).unwrap(), 2);
    assert_eq!(c.evict(b"t1").unwrap(), 2);
    assert_eq!(c.get(b"k2").unwrap(), None);
    assert_eq!(c.pop(b"k").unwrap(), Some(b("v")));
    assert_eq!(c.pop(b"k").unwrap(), None);
    assert!(c.delete(b"n").unwrap());
    assert!(!c.delete(b"n").unwrap());
    assert!(c.check().unwrap().is_empty());
    c.clear().unwrap();
    assert_eq!(c.len().unwrap(), 0);
}

#[test]
fn cache_on_postgres() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let c = PgCache::open(&url, cache_options(&unique("cache"), &clock)).unwrap();
    cache_conformance(&c);
    // Expiry and touch on the cache's clock.
    c.set(
        b"e",
        &RemoteValue::Int(1),
        Ttl::After(Duration::from_secs(10)),
        None,
    )
    .unwrap();
    clock.advance(Duration::from_secs(9));
    assert!(c.touch(b"e", Ttl::After(Duration::from_secs(10))).unwrap());
    clock.advance(Duration::from_secs(9));
    assert_eq!(c.get(b"e").unwrap(), Some(RemoteValue::Int(1)));
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.get(b"e").unwrap(), None);
    assert!(c.add(b"e", &RemoteValue::Int(2), Ttl::Never, None).unwrap());
    assert_eq!(c.expire().unwrap(), 0);
}

#[test]
fn postgres_cache_limits_and_unlogged() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let mut o = cache_options(&unique("lim"), &clock);
    o.count_limit = Some(3);
    o.unlogged = true;
    let c = PgCache::open(&url, o).unwrap();
    for i in 0..5u8 {
        c.set(&[i], &RemoteValue::Int(i.into()), Ttl::Never, None)
            .unwrap();
    }
    assert_eq!(c.len().unwrap(), 3);
    assert_eq!(c.get(&[0]).unwrap(), None); // least recently stored went first
    assert_eq!(c.get(&[4]).unwrap(), Some(RemoteValue::Int(4)));
    let mut o = cache_options(&unique("full"), &clock);
    o.size_limit = Some(100);
    o.policy = diskstore::EvictionPolicy::None;
    let c = PgCache::open(&url, o).unwrap();
    c.set(b"a", &RemoteValue::Bytes(vec![0; 60]), Ttl::Never, None)
        .unwrap();
    assert!(matches!(
        c.set(b"b", &RemoteValue::Bytes(vec![0; 60]), Ttl::Never, None),
        Err(Error::Full(_))
    ));
    assert_eq!(c.get(b"b").unwrap(), None); // nothing of the refused write was kept
    assert!(matches!(
        c.set(b"c", &RemoteValue::Bytes(vec![0; 200]), Ttl::Never, None),
        Err(Error::Full(_))
    ));
}

#[test]
fn postgres_cache_lru_evicts_least_recently_used_with_its_index() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let indexes = |table: &str| -> Vec<String> {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let rows = client
            .query(
                "SELECT indexname::text FROM pg_indexes WHERE tablename = $1 ORDER BY 1",
                &[&table],
            )
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    // Without limits nothing evicts by `accessed`: no index on it (one index entry fewer
    // per re-store).
    let table = unique("lru");
    let plain = PgCache::open(&url, cache_options(&table, &clock)).unwrap();
    plain
        .set(b"x", &RemoteValue::Int(1), Ttl::Never, None)
        .unwrap();
    assert!(!indexes(&table).iter().any(|i| i.ends_with("_accessed")));
    // An LRU cache with a limit opened on the same table adds it, and evicts by it.
    let mut o = cache_options(&table, &clock);
    o.count_limit = Some(3);
    o.policy = diskstore::EvictionPolicy::LeastRecentlyUsed;
    let c = PgCache::open(&url, o).unwrap();
    assert!(indexes(&table).iter().any(|i| i.ends_with("_accessed")));
    for i in 0..3u8 {
        clock.advance(Duration::from_secs(1));
        c.set(&[i], &RemoteValue::Int(i.into()), Ttl::Never, None)
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.get(&[0]).unwrap(), Some(RemoteValue::Int(0))); // used: now the newest
    clock.advance(Duration::from_secs(1));
    c.set(b"new", &RemoteValue::Int(9), Ttl::Never, None)
        .unwrap();
    assert_eq!(c.len().unwrap(), 3);
    assert_eq!(
        c.get(&[1]).unwrap(),
        None,
        "the least recently used went first"
    );
    assert_eq!(c.get(&[0]).unwrap(), Some(RemoteValue::Int(0)));
}

#[test]
fn cache_on_redis() {
    let Some(url) = server("DISKSTORE_TEST_REDIS") else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let c = RedisCache::open(&url, cache_options(&unique("cache"), &clock)).unwrap();
    cache_conformance(&c);
    // Native expiry: a short time to live ends on the server.
    c.set(
        b"e",
        &RemoteValue::Int(1),
        Ttl::After(Duration::from_millis(50)),
        None,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(c.get(b"e").unwrap(), None);
    // What Redis cannot do is refused, naming the operation.
    match c.keys_page(None, false, 10) {
        Err(Error::NotSupported { backend, operation }) => {
            assert_eq!(backend, "redis");
            assert!(operation.contains("insertion order"));
        }
        other => panic!("expected NotSupported, got {other:?}"),
    }
    assert!(matches!(c.begin(), Err(Error::NotSupported { .. })));
    let mut o = cache_options(&unique("lim"), &clock);
    o.size_limit = Some(10);
    assert!(matches!(
        RedisCache::open(&url, o),
        Err(Error::NotSupported { .. })
    ));
}

#[test]
fn connection_failures_are_clear_errors() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    // Nothing listens on port 1.
    match PgStore::<String, i64>::open("postgresql://postgres@127.0.0.1:1/x") {
        Err(Error::Connection { message, .. }) => assert!(!message.is_empty()),
        Err(other) => panic!("expected a connection error, got {other:?}"),
        Ok(_) => panic!("expected a connection error"),
    }
    // A wrong password (servers.sh makes diskstore_pw with password "secret").
    let bad = url.replace("postgres@", "diskstore_pw:wrong@");
    match PgStore::<String, i64>::open(&bad) {
        Err(Error::Connection { url, message }) => {
            assert!(message.contains("authentication failed"), "{message}");
            assert!(!url.contains("wrong"), "the password leaked into {url}");
        }
        Err(other) => panic!("expected an authentication error, got {other:?}"),
        Ok(_) => panic!("expected an authentication error"),
    }
    match RedisCache::open("redis://127.0.0.1:1/0", RemoteCacheOptions::new("x")) {
        Err(Error::Connection { .. }) => {}
        Err(other) => panic!("expected a connection error, got {other:?}"),
        Ok(_) => panic!("expected a connection error"),
    }
}

#[test]
fn statement_timeout_is_a_timeout_error() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("timeout");
    let holder: PgStore<String, i64> = PgStore::open_table(&url, &table).unwrap();
    holder.insert("k", &1).unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let short = format!("{url}{sep}options=-c%20statement_timeout%3D200");
    let waiter: PgStore<String, i64> = PgStore::open_table(&short, &table).unwrap();
    // The holder's open transaction locks the row; the waiter's update times out.
    let tx = holder.begin().unwrap();
    holder.insert("k", &2).unwrap();
    let t = std::thread::scope(|s| s.spawn(|| waiter.insert("k", &3)).join().unwrap());
    assert!(matches!(t, Err(Error::Timeout { .. })), "{t:?}");
    tx.commit().unwrap();
    assert_eq!(waiter.get("k").unwrap(), Some(2)); // the timed-out write left nothing
}

/// TLS (feature `tls`) against the servers' TLS side: `DISKSTORE_TEST_POSTGRES_TLS` (user
/// `diskstore_tls`, whom the server admits over TLS only, `sslmode=verify-full`) and
/// `DISKSTORE_TEST_REDIS_TLS` (`rediss://` with the test CA), from `scripts/servers.sh`.
#[cfg(feature = "tls")]
mod tls {
    use super::*;

    fn expect_connection_error<T>(r: diskstore::Result<T>, what: &str) -> String {
        match r {
            Err(Error::Connection { message, .. }) => message,
            Err(other) => panic!("{what}: expected a connection error, got {other:?}"),
            Ok(_) => panic!("{what}: expected a connection error, got a connection"),
        }
    }

    #[test]
    fn store_and_cache_over_tls_on_postgres() {
        let Some(url) = server("DISKSTORE_TEST_POSTGRES_TLS") else {
            return;
        };
        let s = DiskStore::<String, i64>::builder(&url)
            .table(unique("tls"))
            .open_url()
            .unwrap();
        store_conformance(&s);
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
        let c = PgCache::open(&url, cache_options(&unique("tlscache"), &clock)).unwrap();
        cache_conformance(&c);
    }

    #[test]
    fn cache_over_tls_on_redis() {
        let Some(url) = server("DISKSTORE_TEST_REDIS_TLS") else {
            return;
        };
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
        let c = RedisCache::open(&url, cache_options(&unique("tlscache"), &clock)).unwrap();
        cache_conformance(&c);
    }

    #[test]
    fn postgres_sslmodes() {
        let Some(url) = server("DISKSTORE_TEST_POSTGRES_TLS") else {
            return;
        };
        let open = |u: &str| PgStore::<String, i64>::open_table(u, &unique("mode"));
        // The same server under a name its certificate does not carry.
        let wrong = url.replace("@127.0.0.1:", "@wrong-name.invalid:") + "&hostaddr=127.0.0.1";
        let msg = expect_connection_error(open(&wrong), "verify-full, wrong host name");
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
        // verify-ca checks the chain only, so the wrong name passes.
        open(&wrong.replace("verify-full", "verify-ca")).unwrap();
        // require without a root certificate encrypts without verifying.
        let no_root = url.split("&sslrootcert=").next().unwrap().to_owned();
        open(&no_root.replace("verify-full", "require")).unwrap();
        // prefer, and no sslmode (libpq's default is prefer), use TLS when offered: this
        // user is admitted over TLS only.
        open(&no_root.replace("verify-full", "prefer")).unwrap();
        open(no_root.split('?').next().unwrap()).unwrap();
        // verify-full with the system's roots does not trust the test CA.
        let msg = expect_connection_error(
            open(&format!("{no_root}&sslrootcert=system")),
            "verify-full, system roots",
        );
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
        // Plain text to a server that requires TLS for this user.
        let plain = no_root.replace("verify-full", "disable");
        let msg = expect_connection_error(open(&plain), "sslmode=disable");
        assert!(msg.contains("no encryption"), "{msg}");
        // A missing root file and an unknown mode are usage errors.
        let missing = url.replace("ca.pem", "no-such-ca.pem");
        assert!(matches!(open(&missing), Err(Error::Usage(m)) if m.contains("sslrootcert")));
        let bad = url.replace("verify-full", "always");
        assert!(matches!(open(&bad), Err(Error::Usage(m)) if m.contains("sslmode")));
    }

    #[test]
    fn redis_tls_failures() {
        let Some(url) = server("DISKSTORE_TEST_REDIS_TLS") else {
            return;
        };
        let open = |u: &str| RedisCache::open(u, RemoteCacheOptions::new(unique("f")));
        // Without the test CA, the system's roots do not trust the server.
        let no_ca = url.split("?ssl_ca_certs=").next().unwrap().to_owned();
        let msg = expect_connection_error(open(&no_ca), "rediss without the CA");
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
        // Plain text to the TLS port.
        expect_connection_error(
            open(&no_ca.replace("rediss://", "redis://")),
            "plain to TLS",
        );
    }
}
