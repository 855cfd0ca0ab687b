//! The map operations of `DiskStore`/`DiskRead`: order, paging, ranges, queries, bulk
//! writes, maintenance and the read-only handle.

use std::ops::Bound;

use diskstore::{DiskRead, DiskStore, Error, KeyRef, Query, Value, ValueRef};
use tempfile::TempDir;

fn store<V: diskstore::Record>(dir: &TempDir) -> DiskStore<String, V> {
    DiskStore::open(dir.path().join("store.db")).unwrap()
}

fn k(i: usize) -> String {
    format!("k{i:04}")
}

fn keys_of<V>(items: Vec<(String, V)>) -> Vec<String> {
    items.into_iter().map(|(k, _)| k).collect()
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<DiskStore<String, String>>();
    check::<DiskRead<i64, Vec<u8>>>();
    check::<diskstore::Table>();
}

#[test]
fn insertion_order_survives_overwrites_and_reopening() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    for (i, key) in ["c", "a", "b"].iter().enumerate() {
        s.insert(*key, &(i as i64)).unwrap();
    }
    s.insert("a", &10).unwrap();
    s.insert("c", &20).unwrap();
    let items: Vec<(String, i64)> = s.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(items, [("c".into(), 20), ("a".into(), 10), ("b".into(), 2)]);
    // A removed and re-added key goes to the end.
    s.remove("c").unwrap();
    s.insert("c", &30).unwrap();
    drop(s);
    let s = store::<i64>(&dir);
    let keys: Vec<String> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, ["a", "b", "c"]);
    let values: Vec<i64> = s.values().rev().collect::<Result<_, _>>().unwrap();
    assert_eq!(values, [30, 2, 10]);
}

#[test]
fn iteration_spans_many_pages_in_both_directions() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    let n = 700; // almost three pages of 256
    s.extend((0..n).map(|i| (k(i), i as i64))).unwrap();
    let keys: Vec<String> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, (0..n).map(k).collect::<Vec<_>>());
    let values: Vec<i64> = s.values().rev().collect::<Result<_, _>>().unwrap();
    assert_eq!(values, (0..n as i64).rev().collect::<Vec<_>>());
    assert_eq!(s.iter().count(), n);
}

#[test]
fn rev_mid_way_yields_the_rest_in_the_other_direction() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    let n = 600;
    s.extend((0..n).map(|i| (k(i), i as i64))).unwrap();
    for taken in [0, 3, 255, 256, 257, 599, 600] {
        let mut it = s.values();
        let head: Vec<i64> = it.by_ref().take(taken).map(Result::unwrap).collect();
        assert_eq!(head, (0..taken as i64).collect::<Vec<_>>());
        let rest: Vec<i64> = it.rev().map(Result::unwrap).collect();
        assert_eq!(
            rest,
            (taken as i64..n as i64).rev().collect::<Vec<_>>(),
            "after taking {taken}"
        );
    }
    let mut it = s.values().rev();
    let head: Vec<i64> = it.by_ref().take(300).map(Result::unwrap).collect();
    assert_eq!(head, (300..600).rev().collect::<Vec<_>>());
    let rest: Vec<i64> = it.rev().map(Result::unwrap).collect();
    assert_eq!(rest, (0..300).collect::<Vec<_>>());
}

#[test]
fn iteration_ends_at_the_rows_present_when_it_began() {
    // Each row read adds one; without an end fixed at the start this would never stop.
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    let n = 600;
    s.extend((0..n).map(|i| (k(i), i as i64))).unwrap();
    let mut seen = Vec::new();
    for item in s.keys() {
        let key = item.unwrap();
        s.insert(&k(n + seen.len()), &0).unwrap();
        seen.push(key);
    }
    assert_eq!(seen, (0..n).map(k).collect::<Vec<_>>());
    assert_eq!(s.len().unwrap(), 2 * n as u64);
    // Rows written before the first page is read are still seen.
    let it = s.values();
    s.insert(&k(9999), &7).unwrap();
    assert_eq!(it.last().unwrap().unwrap(), 7);
}

#[test]
fn iterating_an_empty_store_yields_nothing() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    assert_eq!(s.iter().count(), 0);
    assert_eq!(s.keys().rev().count(), 0);
    assert_eq!(s.range::<&str, _>(..).count(), 0);
}

#[test]
fn ranges_honour_every_kind_of_bound() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<i64, i64> = DiskStore::open(dir.path().join("r.db")).unwrap();
    let n = 600i64;
    // Inserted in a scrambled order; ranges go by key.
    s.extend((0..n).map(|i| ((i * 7) % n, i))).unwrap();
    let keys =
        |it: diskstore::RangeIter<i64, i64>| -> Vec<i64> { it.map(|r| r.unwrap().0).collect() };
    assert_eq!(keys(s.range(10..20)), (10..20).collect::<Vec<_>>());
    assert_eq!(keys(s.range(10..=20)), (10..=20).collect::<Vec<_>>());
    assert_eq!(keys(s.range(590..)), (590..600).collect::<Vec<_>>());
    assert_eq!(keys(s.range(..5)), (0..5).collect::<Vec<_>>());
    assert_eq!(keys(s.range(..=5)), (0..=5).collect::<Vec<_>>());
    assert_eq!(keys(s.range::<i64, _>(..)), (0..n).collect::<Vec<_>>());
    assert_eq!(
        keys(s.range((Bound::Excluded(10), Bound::Excluded(20)))),
        (11..20).collect::<Vec<_>>()
    );
    assert_eq!(
        keys(s.range((Bound::Excluded(10), Bound::Included(20)))),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        keys(s.range((Bound::Included(20), Bound::Excluded(10)))),
        Vec::<i64>::new()
    );
    // More than one page, both directions, and turning round mid-way.
    assert_eq!(keys(s.range(1..599)), (1..599).collect::<Vec<_>>());
    assert_eq!(
        keys(s.range(1..599).rev()),
        (1..599).rev().collect::<Vec<_>>()
    );
    let mut it = s.range(100..=500);
    let head: Vec<i64> = it.by_ref().take(300).map(|r| r.unwrap().0).collect();
    assert_eq!(head, (100..400).collect::<Vec<_>>());
    assert_eq!(keys(it.rev()), (400..=500).rev().collect::<Vec<_>>());
    // Values come with the keys.
    let (key, value) = s.range(7..8).next().unwrap().unwrap();
    assert_eq!((key, value), (7, 1));
}

#[test]
fn text_ranges_use_byte_order() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    for (i, key) in ["b", "a", "ab", "B", "é", ""].iter().enumerate() {
        s.insert(*key, &(i as i64)).unwrap();
    }
    let all: Vec<String> = s.range::<&str, _>(..).map(|r| r.unwrap().0).collect();
    assert_eq!(all, ["", "B", "a", "ab", "b", "é"]);
    let some: Vec<String> = s.range("a".."b").map(|r| r.unwrap().0).collect();
    assert_eq!(some, ["a", "ab"]);
}

#[test]
fn queries_filter_order_limit_and_offset() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    s.extend((0..20).map(|i| (k(i), (i as i64 * 37) % 20)))
        .unwrap();
    let all = s
        .query(&Query::new())
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap();
    assert_eq!(keys_of(all), (0..20).map(k).collect::<Vec<_>>());

    let q = Query::new()
        .filter(
            "value >= ? AND value < ?",
            [Value::Integer(5), Value::Integer(10)],
        )
        .order("value DESC");
    let got: Vec<i64> = s
        .query(&q)
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, [9, 8, 7, 6, 5]);

    let page = s
        .query(&q.clone().limit(2).offset(1))
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect::<Vec<_>>();
    assert_eq!(page, [8, 7]);

    let only_offset = s
        .query(&Query::new().offset(18))
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap();
    assert_eq!(keys_of(only_offset), [k(18), k(19)]);
    let by_key = s
        .query(&Query::new().order("_key DESC").limit(3))
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap();
    assert_eq!(keys_of(by_key), [k(19), k(18), k(17)]);

    let text_param = s
        .query(&Query::new().filter("_key = ?", [Value::from(k(3))]))
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap();
    assert_eq!(text_param, [(k(3), (3 * 37) % 20)]);

    let bad = s.query(&Query::new().filter("no_such_column = 1", []));
    assert!(matches!(bad, Err(Error::Sqlite(_))), "{bad:?}");
}

#[test]
fn get_many_answers_in_request_order_with_misses() {
    let dir = TempDir::new().unwrap();
    let s = store::<String>(&dir);
    s.insert("a", &"A".to_string()).unwrap();
    s.insert("b", &"B".to_string()).unwrap();
    let got = s.get_many(&["b", "x", "a", "b"]).unwrap();
    assert_eq!(
        got,
        [Some("B".into()), None, Some("A".into()), Some("B".into())]
    );
    assert_eq!(
        s.get_many::<&str>(&[]).unwrap(),
        Vec::<Option<String>>::new()
    );
}

#[test]
fn get_or_insert_stores_once() {
    let dir = TempDir::new().unwrap();
    let s = store::<String>(&dir);
    assert_eq!(s.get_or_insert("a", &"first".into()).unwrap(), "first");
    assert_eq!(s.get_or_insert("a", &"second".into()).unwrap(), "first");
    assert_eq!(s.len().unwrap(), 1);
}

#[test]
fn add_inserts_only_absent_keys() {
    let dir = TempDir::new().unwrap();
    let s = store::<String>(&dir);
    assert!(s.add("a", &"1".into()).unwrap());
    assert!(!s.add("a", &"2".into()).unwrap());
    assert_eq!(s.get("a").unwrap().as_deref(), Some("1"));
}

#[test]
fn pops_take_oldest_and_newest() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    s.extend([("x", 1), ("y", 2), ("z", 3)]).unwrap();
    s.insert("x", &10).unwrap(); // overwrite: still the oldest
    assert_eq!(s.pop_first().unwrap(), Some(("x".into(), 10)));
    assert_eq!(s.pop_last().unwrap(), Some(("z".into(), 3)));
    assert_eq!(s.pop_last().unwrap(), Some(("y".into(), 2)));
    assert_eq!(s.pop_last().unwrap(), None);
    assert_eq!(s.pop_first().unwrap(), None);
}

#[test]
fn extend_is_all_or_nothing() {
    let dir = TempDir::new().unwrap();
    let s = store::<f64>(&dir);
    s.insert("keep", &1.0).unwrap();
    let batch = vec![
        ("keep".to_string(), 2.0),
        ("new1".to_string(), 3.0),
        ("bad".to_string(), f64::NAN),
        ("new2".to_string(), 4.0),
    ];
    let r = s.extend(batch);
    assert!(matches!(r, Err(Error::InvalidValue(_))), "{r:?}");
    let items: Vec<(String, f64)> = s.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(items, [("keep".into(), 1.0)]);

    // A bad key mid-batch is refused the same way.
    let fs: DiskStore<f64, i64> = DiskStore::open(dir.path().join("f.db")).unwrap();
    let r = fs.extend([(1.0, 1), (f64::NAN, 2), (3.0, 3)]);
    assert!(matches!(r, Err(Error::InvalidKey(_))), "{r:?}");
    assert!(fs.is_empty().unwrap());

    assert_eq!(s.extend([("a", 1.0), ("b", 2.0), ("a", 3.0)]).unwrap(), 3);
    assert_eq!(s.get("a").unwrap(), Some(3.0));
    assert_eq!(s.len().unwrap(), 3);
}

#[test]
fn clear_vacuum_and_check() {
    let dir = TempDir::new().unwrap();
    let s = store::<Vec<u8>>(&dir);
    let big = vec![7u8; 64 * 1024];
    s.extend((0..64).map(|i| (k(i), big.clone()))).unwrap();
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
    s.clear().unwrap();
    assert!(s.is_empty().unwrap());
    let size = |s: &DiskStore<String, Vec<u8>>| {
        s.table()
            .with_connection(|c| Ok(c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))?))
            .unwrap()
    };
    let before = size(&s);
    s.vacuum().unwrap();
    let after = size(&s);
    assert!(after < before / 4, "vacuum: {before} pages -> {after}");
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
    // The store works on after both.
    s.insert("again", &vec![1]).unwrap();
    assert_eq!(s.get("again").unwrap(), Some(vec![1]));

    let tx = s.begin().unwrap();
    assert!(matches!(s.vacuum(), Err(Error::Usage(_))));
    tx.rollback().unwrap();
}

#[test]
fn read_only_handles_read_but_never_write() {
    let dir = TempDir::new().unwrap();
    let s = store::<String>(&dir);
    s.insert("a", &"A".to_string()).unwrap();
    let ro = s.read_only().unwrap();
    assert!(ro.table().is_read_only());
    assert_eq!(ro.get("a").unwrap().as_deref(), Some("A"));
    assert_eq!(ro.len().unwrap(), 1);

    let t = ro.table();
    let cell = [ValueRef::Text("B").into()];
    let refused = |r: diskstore::Result<()>| {
        assert!(matches!(r, Err(Error::ReadOnly { .. })), "{r:?}");
    };
    refused(t.set(KeyRef::Text("a"), &cell));
    refused(t.insert_new(KeyRef::Text("b"), &cell).map(drop));
    refused(t.delete(KeyRef::Text("a")).map(drop));
    refused(t.clear());
    refused(t.begin().map(drop));
    assert_eq!(ro.get("a").unwrap().as_deref(), Some("A"));

    // It sees later commits of the writer.
    s.insert("b", &"B".to_string()).unwrap();
    assert_eq!(ro.get("b").unwrap().as_deref(), Some("B"));
}

#[test]
fn handles_and_clones_share_one_file() {
    let dir = TempDir::new().unwrap();
    let a = store::<i64>(&dir);
    let b = a.clone();
    let c = store::<i64>(&dir);
    a.insert("x", &1).unwrap();
    assert_eq!(b.get("x").unwrap(), Some(1));
    assert_eq!(c.get("x").unwrap(), Some(1));
    assert_eq!(a.path(), dir.path().join("store.db"));
}

#[test]
fn close_and_close_all_reopen_on_next_use() {
    let dir = TempDir::new().unwrap();
    let s = store::<i64>(&dir);
    s.insert("x", &1).unwrap();
    s.table().close().unwrap();
    assert_eq!(s.get("x").unwrap(), Some(1));
    assert!(s.table().close_all().unwrap() >= 1);
    assert_eq!(s.get("x").unwrap(), Some(1));
    let tx = s.begin().unwrap();
    assert!(matches!(s.table().close(), Err(Error::Usage(_))));
    tx.commit().unwrap();
}

#[test]
fn private_databases_open_as_sqlite_names_them() {
    // "" is a private temporary file and ":memory:" a private in-memory database, one per
    // connection (so per thread here), as in SQLite and the original.
    for name in ["", ":memory:"] {
        let s: DiskStore<String, i64> = DiskStore::open(name).unwrap();
        s.insert("a", &1).unwrap();
        assert_eq!(s.get("a").unwrap(), Some(1), "{name:?}");
        let other: DiskStore<String, i64> = DiskStore::open(name).unwrap();
        assert_eq!(
            other.get("a").unwrap(),
            None,
            "{name:?} shared a private database"
        );
    }
}

#[test]
fn iteration_ends_for_every_key_type_and_sees_what_the_rowid_rule_says() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("kinds.db");
    // REAL and BLOB keys: a new key always gets a larger rowid, so it is never visited.
    let reals: DiskStore<f64, i64> = DiskStore::builder(&path).table("r").open().unwrap();
    reals
        .extend((0..300).map(|i| (f64::from(i) + 0.5, 0)))
        .unwrap();
    let mut seen = 0;
    for key in reals.keys() {
        reals.insert(&(-key.unwrap()), &1).unwrap(); // a smaller key, but a new rowid
        seen += 1;
    }
    assert_eq!((seen, reals.len().unwrap()), (300, 600));
    let blobs: DiskStore<Vec<u8>, i64> = DiskStore::builder(&path).table("b").open().unwrap();
    blobs
        .extend((0..300u16).map(|i| (i.to_be_bytes().to_vec(), 0)))
        .unwrap();
    let mut seen = 0;
    for key in blobs.keys() {
        let mut k = key.unwrap();
        k.insert(0, 0xff);
        blobs.insert(&k, &1).unwrap();
        seen += 1;
    }
    assert_eq!((seen, blobs.len().unwrap()), (300, 600));

    // INTEGER keys are the rowid: a pass still ends, new keys past the end are not
    // visited, but a new key in a gap ahead of the pages read so far is (as documented).
    let ints: DiskStore<i64, i64> = DiskStore::builder(&path).table("i").open().unwrap();
    ints.extend((0..300).map(|i| (i * 10, 0))).unwrap();
    let mut seen = Vec::new();
    for key in ints.keys() {
        let key = key.unwrap();
        seen.push(key);
        ints.insert(&(key + 100_000), &1).unwrap(); // past the end: not visited
        if key == 0 {
            ints.insert(&5, &1).unwrap(); // in the page already read: not visited
            ints.insert(&2985, &1).unwrap(); // in a gap of a later page: visited
        }
    }
    let mut expected: Vec<i64> = (0..300).map(|i| i * 10).collect();
    expected.insert(299, 2985);
    assert_eq!(seen, expected);
}
