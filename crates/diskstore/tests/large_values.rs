//! Large cache values kept in files of their own beside the database: written before their
//! row, removed only after the removal of their row committed (by anyone), counted in the
//! volume, checked by `check()`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use diskstore::{
    CacheOptions, CacheTable, Cell, Column, ColumnType, DiskCache, EvictionPolicy, KeyRef,
    ManualClock, Ttl, Value, ValueRef,
};

const BIG: usize = 100_000;

fn values_dir(db: &Path) -> PathBuf {
    db.with_file_name(format!(
        "{}-values",
        db.file_name().unwrap().to_string_lossy()
    ))
}

/// Every value file under the cache's folder.
fn files(db: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![values_dir(db)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn big(seed: u8) -> Vec<u8> {
    (0..BIG)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn blob_table(path: &Path, configure: impl FnOnce(&mut CacheOptions)) -> CacheTable {
    let columns = vec![Column::new("value", ColumnType::Blob, true, None)];
    let mut o = CacheOptions::new(path, "Cache", columns);
    configure(&mut o);
    CacheTable::open(o).unwrap()
}

fn get(c: &CacheTable, key: &str) -> Option<Value> {
    c.get(KeyRef::Text(key), |r| Ok(r.value(0)?.to_owned()))
        .unwrap()
}

fn set(c: &CacheTable, key: &str, v: &[u8]) {
    c.set(
        KeyRef::Text(key),
        &[Cell::Borrowed(ValueRef::Blob(v))],
        Ttl::Never,
        None,
    )
    .unwrap();
}

#[test]
fn a_large_value_lives_in_one_file_that_goes_with_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let cache: DiskCache<String, Vec<u8>> = DiskCache::open(&db).unwrap();
    cache.set("small", &vec![1u8; 100], None).unwrap();
    assert!(files(&db).is_empty(), "small values stay in the table");

    cache.set("big", &big(1), None).unwrap();
    let first = files(&db);
    assert_eq!(first.len(), 1);
    assert_eq!(std::fs::read(&first[0]).unwrap(), big(1));
    assert_eq!(cache.get("big").unwrap(), Some(big(1)));
    // Counted in full: keys and values.
    assert_eq!(cache.volume().unwrap(), (5 + 100 + 3 + BIG) as u64);

    cache.set("big", &big(2), None).unwrap();
    let second = files(&db);
    assert_eq!(
        second.len(),
        1,
        "the old file goes when the entry is replaced"
    );
    assert_ne!(second, first);
    assert_eq!(cache.get("big").unwrap(), Some(big(2)));
    assert_eq!(cache.pop("big").unwrap(), Some(big(2)));
    assert!(files(&db).is_empty());

    cache.set("big", &big(3), None).unwrap();
    assert!(cache.delete("big").unwrap());
    assert!(files(&db).is_empty());

    for i in 0..5 {
        cache.set(&format!("k{i}"), &big(i), None).unwrap();
    }
    assert_eq!(files(&db).len(), 5);
    let items: Vec<(String, Vec<u8>)> = cache.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(items[3], ("k2".to_string(), big(2)));
    assert!(cache.check().unwrap().is_empty());
    cache.clear().unwrap();
    assert!(files(&db).is_empty());
    assert_eq!(cache.volume().unwrap(), 0);
}

#[test]
fn text_values_come_back_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let cache: DiskCache<String, String> = DiskCache::open(&db).unwrap();
    let text = "é".repeat(BIG);
    cache.set("t", &text, None).unwrap();
    assert_eq!(files(&db).len(), 1);
    assert_eq!(cache.get("t").unwrap(), Some(text));
}

#[test]
fn iterating_over_keys_reads_no_value_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let cache: DiskCache<String, String> = DiskCache::open(&db).unwrap();
    cache.set("t", &"a".repeat(BIG), None).unwrap();
    cache.set("gone", &"b".repeat(BIG), None).unwrap();
    let all = files(&db);
    // Same length, not UTF-8: only a read of the value would notice.
    let (first, second) = (&all[0], &all[1]);
    std::fs::write(first, vec![0xffu8; BIG]).unwrap();
    std::fs::remove_file(second).unwrap();
    let keys: Vec<String> = cache.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys.len(), 1, "the entry without its file is skipped");
    let items: Vec<Result<(String, String), _>> = cache.iter().collect();
    assert_eq!(items.len(), 1);
    assert!(
        matches!(&items[0], Err(diskstore::Error::Decode { .. })),
        "{items:?}"
    );
}

#[test]
fn expiry_and_eviction_remove_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
    let c = blob_table(&db, |o| {
        o.size_limit = Some(3 * BIG as u64 + 2000);
        o.policy = EvictionPolicy::LeastRecentlyStored;
        o.clock = clock.clone();
    });
    for i in 0..3u8 {
        set(&c, &format!("k{i}"), &big(i));
    }
    assert_eq!(files(&db).len(), 3);
    set(&c, "k3", &big(3)); // evicts k0
    assert_eq!(files(&db).len(), 3);
    assert_eq!(get(&c, "k0"), None);
    assert_eq!(get(&c, "k3"), Some(Value::Blob(big(3))));

    c.set(
        KeyRef::Text("short"),
        &[Cell::Borrowed(ValueRef::Blob(&big(9)[..1000]))],
        Ttl::After(Duration::from_secs(1)),
        None,
    )
    .unwrap();
    let c2 = blob_table(&db, |o| {
        o.clock = clock.clone();
        o.file_threshold = Some(10);
    });
    c2.set(
        KeyRef::Text("soon"),
        &[Cell::Borrowed(ValueRef::Blob(&big(8)[..1000]))],
        Ttl::After(Duration::from_secs(1)),
        None,
    )
    .unwrap();
    assert_eq!(
        files(&db).len(),
        4,
        "a lower threshold of another handle: {:?}",
        files(&db)
    );
    assert_eq!(get(&c, "soon"), Some(Value::Blob(big(8)[..1000].to_vec())));
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.expire().unwrap(), 2);
    assert_eq!(files(&db).len(), 3);
    assert!(c.check_files(false, Duration::ZERO).unwrap().is_empty());
}

#[test]
fn a_rolled_back_removal_keeps_the_file_and_a_committed_one_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |_| {});
    set(&c, "k", &big(1));
    let t = c.table();

    // Deleted, overwritten and cleared inside a transaction that rolls back.
    let opened = t.begin().unwrap();
    assert!(c.delete(KeyRef::Text("k")).unwrap());
    set(&c, "k", &big(2));
    c.clear().unwrap();
    assert_eq!(files(&db).len(), 2, "nothing removed before the commit");
    t.end(opened, false).unwrap();
    assert_eq!(get(&c, "k"), Some(Value::Blob(big(1))));
    // The rolled-back write's file is left behind as an orphan: check() finds it.
    assert_eq!(files(&db).len(), 2);
    let problems = c.check_files(true, Duration::ZERO).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("orphan"), "{problems:?}");
    assert_eq!(files(&db).len(), 1);
    assert_eq!(get(&c, "k"), Some(Value::Blob(big(1))));

    // Nested in a savepoint that fails: the outer transaction commits, the file stays.
    t.atomic(|| {
        let r = t.atomic(|| {
            c.delete(KeyRef::Text("k"))?;
            Err::<(), _>(diskstore::Error::Usage("changed my mind".into()))
        });
        assert!(r.is_err());
        Ok(())
    })
    .unwrap();
    assert_eq!(get(&c, "k"), Some(Value::Blob(big(1))));
    assert_eq!(files(&db).len(), 1);

    // The same, committed: the file goes with the commit (at the latest at the next write).
    let opened = t.begin().unwrap();
    assert!(c.delete(KeyRef::Text("k")).unwrap());
    assert_eq!(files(&db).len(), 1);
    t.end(opened, true).unwrap();
    c.sweep_files().unwrap();
    assert!(files(&db).is_empty());
}

#[test]
fn a_removal_by_someone_else_is_cleaned_up_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |_| {});
    set(&c, "a", &big(1));
    set(&c, "b", &big(2));
    // Another program (another process, the CLI, raw SQL) deletes through plain SQLite.
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .execute("DELETE FROM Cache WHERE _key = 'a'", [])
        .unwrap();
    drop(other);
    assert_eq!(files(&db).len(), 2);
    assert!(c.check_files(false, Duration::ZERO).unwrap().is_empty());
    set(&c, "small", b"x");
    assert_eq!(files(&db).len(), 1);
    assert_eq!(get(&c, "b"), Some(Value::Blob(big(2))));
}

#[test]
fn a_missing_file_is_a_miss_that_check_reports_and_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |_| {});
    set(&c, "k", &big(1));
    let f = files(&db).remove(0);
    std::fs::remove_file(&f).unwrap();
    let problems = c.check_files(false, Duration::ZERO).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("missing"), "{problems:?}");
    // Truncated counts as missing too; `check(fix)` deletes both entries.
    set(&c, "t", &big(2));
    let f = files(&db).into_iter().next().unwrap();
    std::fs::write(&f, b"short").unwrap();
    assert_eq!(c.check_files(true, Duration::ZERO).unwrap().len(), 2);
    assert!(c.check_files(false, Duration::ZERO).unwrap().is_empty());
    assert!(!c.contains(KeyRef::Text("k")).unwrap());
    assert!(!c.contains(KeyRef::Text("t")).unwrap());
    // A read that finds the file missing is a miss and takes the entry with it.
    set(&c, "r", &big(3));
    std::fs::remove_file(files(&db).remove(0)).unwrap();
    assert_eq!(get(&c, "r"), None);
    assert!(!c.contains(KeyRef::Text("r")).unwrap());
    assert!(c.check_files(false, Duration::ZERO).unwrap().is_empty());
}

/// A writer that dies after writing its file but before committing its row leaves an
/// orphan file (here made as it would be), never a row without its file.
#[test]
fn an_orphan_file_is_reported_and_removed_only_once_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |_| {});
    set(&c, "k", &big(1));
    let kept = files(&db).remove(0);
    let orphan = kept.with_file_name("0123456789abcdef0123456789abcd.val");
    std::fs::write(&orphan, big(2)).unwrap();
    let temp = kept.with_file_name("fedcba9876543210fedcba98765432.tmp");
    std::fs::write(&temp, b"half").unwrap();
    let problems = c.check_files(false, Duration::ZERO).unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.contains("orphan")));
    // Young orphans may belong to a write about to commit: reported, not removed.
    c.check_files(true, Duration::from_secs(3600)).unwrap();
    assert_eq!(files(&db).len(), 3);
    c.check_files(true, Duration::ZERO).unwrap();
    assert_eq!(files(&db), vec![kept]);
    assert_eq!(get(&c, "k"), Some(Value::Blob(big(1))));
}

#[test]
fn a_failed_write_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |o| {
        o.size_limit = Some(2 * BIG as u64);
        o.policy = EvictionPolicy::None;
    });
    set(&c, "a", &big(1));
    let r = c.set(
        KeyRef::Text("b"),
        &[Cell::Borrowed(ValueRef::Blob(&big(2)))],
        Ttl::Never,
        None,
    );
    assert!(matches!(r, Err(diskstore::Error::Full(_))), "{r:?}");
    assert_eq!(files(&db).len(), 1);
    // add() of a present key stores nothing: its file goes again.
    let added = c
        .add(
            KeyRef::Text("a"),
            &[Cell::Borrowed(ValueRef::Blob(&big(3)))],
            Ttl::Never,
            None,
        )
        .unwrap();
    assert!(!added);
    assert_eq!(files(&db).len(), 1);
    assert_eq!(get(&c, "a"), Some(Value::Blob(big(1))));
}

#[test]
fn without_a_threshold_values_stay_in_the_table_and_old_files_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |_| {});
    set(&c, "file", &big(1));
    let inline = blob_table(&db, |o| o.file_threshold = None);
    set(&inline, "inline", &big(2));
    assert_eq!(files(&db).len(), 1);
    assert_eq!(get(&inline, "file"), Some(Value::Blob(big(1))));
    assert_eq!(get(&c, "inline"), Some(Value::Blob(big(2))));
}

/// A cache file written before value files existed (no `_file` column, trash table or
/// file triggers) opens, keeps its entries, and takes large values from then on.
#[test]
fn a_cache_file_from_before_value_files_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    {
        let c = blob_table(&db, |o| o.file_threshold = None);
        set(&c, "old", &big(1));
        c.table().close().unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP TRIGGER Cache_cache_file_delete; DROP TRIGGER Cache_cache_file_update;
             DROP TABLE _cache_trash; ALTER TABLE Cache DROP COLUMN _file;",
        )
        .unwrap();
    }
    let c = blob_table(&db, |_| {});
    assert_eq!(get(&c, "old"), Some(Value::Blob(big(1))));
    set(&c, "new", &big(2));
    assert_eq!(files(&db).len(), 1);
    assert_eq!(get(&c, "new"), Some(Value::Blob(big(2))));
    assert!(c.delete(KeyRef::Text("new")).unwrap());
    assert!(files(&db).is_empty());
    assert_eq!(c.volume().unwrap(), (3 + BIG) as u64);
}

mod store {
    use diskstore::{
        Cell, Column, ColumnType, KeyRef, LARGE_VALUE, Table, TableOptions, TableSpec, Value,
        ValueRef,
    };

    fn table(path: &std::path::Path, columns: Vec<Column>) -> Table {
        let spec = TableSpec {
            name: "T".into(),
            key_type: ColumnType::Text,
            columns,
        };
        Table::open(TableOptions::new(path, spec)).unwrap()
    }

    /// Reads `key` through get_located/read_located: (other cells, last value).
    fn read(t: &Table, key: &str) -> Option<(Vec<Value>, Value)> {
        let k = KeyRef::Text(key);
        let found = t
            .get_located(k, |r| {
                (0..r.len())
                    .map(|i| Ok(r.value(i)?.to_owned()))
                    .collect::<diskstore::Result<Vec<_>>>()
            })
            .unwrap()?;
        let mut cells = found.row;
        let last = cells.pop().unwrap();
        let Some(at) = found.large else {
            return Some((cells, last));
        };
        assert_eq!(
            last,
            Value::Null,
            "a located value is not read with the row"
        );
        let mut buf = vec![0u8; at.len()];
        assert!(t.read_located(k, &at, &mut buf).unwrap());
        let v = if at.is_text() {
            Value::Text(String::from_utf8(buf).unwrap())
        } else {
            Value::Blob(buf)
        };
        Some((cells, v))
    }

    #[test]
    fn large_last_values_round_trip_by_blob_io_and_small_ones_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(
            &dir.path().join("s.db"),
            vec![
                Column::new("n", ColumnType::Integer, false, None),
                Column::new("data", ColumnType::Blob, false, None),
            ],
        );
        let big: Vec<u8> = (0..LARGE_VALUE + 12_345).map(|i| (i % 251) as u8).collect();
        let set = |k: &str, n: i64, v: ValueRef<'_>| {
            t.set(
                KeyRef::Text(k),
                &[Cell::Borrowed(ValueRef::Integer(n)), Cell::Borrowed(v)],
            )
            .unwrap()
        };
        set("b", 1, ValueRef::Blob(&big));
        assert_eq!(
            read(&t, "b"),
            Some((vec![Value::Integer(1)], Value::Blob(big.clone())))
        );
        // The ordinary read sees the same value.
        let plain = t
            .get(KeyRef::Text("b"), |r| Ok(r.value(1)?.to_owned()))
            .unwrap();
        assert_eq!(plain, Some(Value::Blob(big.clone())));
        // Overwritten by a smaller and a larger one, and by text.
        set("b", 2, ValueRef::Blob(b"small"));
        assert_eq!(
            read(&t, "b"),
            Some((vec![Value::Integer(2)], Value::Blob(b"small".to_vec())))
        );
        let bigger = [big.as_slice(), big.as_slice()].concat();
        set("b", 3, ValueRef::Blob(&bigger));
        assert_eq!(read(&t, "b").unwrap().1, Value::Blob(bigger));
        let text = "ß".repeat(LARGE_VALUE);
        set("t", 4, ValueRef::Text(&text));
        assert_eq!(read(&t, "t").unwrap().1, Value::Text(text));
        assert_eq!(read(&t, "missing"), None);
        assert!(t.check().unwrap().is_empty());

        // A NULL is a NULL, not a large value.
        let nullable = table(
            &dir.path().join("n.db"),
            vec![Column::new("data", ColumnType::Blob, true, None)],
        );
        let k = KeyRef::Text("null");
        nullable.set(k, &[Cell::Borrowed(ValueRef::Null)]).unwrap();
        assert_eq!(read(&nullable, "null"), Some((vec![], Value::Null)));
    }

    #[test]
    fn a_large_write_is_all_or_nothing_and_a_changed_value_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(
            &dir.path().join("s.db"),
            vec![Column::new("value", ColumnType::Blob, false, None)],
        );
        let big = vec![9u8; LARGE_VALUE];
        let k = KeyRef::Text("k");
        t.set(k, &[Cell::Borrowed(ValueRef::Blob(b"old"))]).unwrap();
        // Inside a savepoint that fails: nothing of the large write stays.
        let r = t.atomic(|| {
            t.set(k, &[Cell::Borrowed(ValueRef::Blob(&big))])?;
            Err::<(), _>(diskstore::Error::Usage("undo".into()))
        });
        assert!(r.is_err());
        assert_eq!(read(&t, "k").unwrap().1, Value::Blob(b"old".to_vec()));

        t.set(k, &[Cell::Borrowed(ValueRef::Blob(&big))]).unwrap();
        let at = t
            .get_located(k, |_| Ok(()))
            .unwrap()
            .unwrap()
            .large
            .unwrap();
        let mut buf = vec![0u8; at.len()];
        // Changed between locating and reading: reported, not read.
        let other = vec![1u8; LARGE_VALUE + 1];
        t.set(k, &[Cell::Borrowed(ValueRef::Blob(&other))]).unwrap();
        assert!(!t.read_located(k, &at, &mut buf).unwrap());
        assert!(t.read_located(k, &at, &mut buf[1..]).is_err());
    }
}

#[test]
fn a_deferred_get_hands_out_the_file_and_a_removed_one_reads_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = blob_table(&db, |_| {});
    set(&c, "k", &big(5));
    set(&c, "small", b"s");
    let small = c
        .get_deferred(KeyRef::Text("small"), |r, f| {
            Ok((r.value(0)?.to_owned(), f.is_some()))
        })
        .unwrap();
    assert_eq!(small, Some((Value::Blob(b"s".to_vec()), false)));
    let file = c
        .get_deferred(KeyRef::Text("k"), |_, f| Ok(f.cloned()))
        .unwrap()
        .flatten()
        .unwrap();
    assert_eq!((file.len(), file.column(), file.is_text()), (BIG, 0, false));
    let mut buf = vec![0u8; file.len()];
    assert!(file.read_into(&mut buf).unwrap());
    assert_eq!(buf, big(5));
    // Asking the row for the column reads the file all the same.
    let v = c
        .get_deferred(KeyRef::Text("k"), |r, _| Ok(r.value(0)?.to_owned()))
        .unwrap();
    assert_eq!(v, Some(Value::Blob(big(5))));
    assert!(c.delete(KeyRef::Text("k")).unwrap());
    assert!(!file.read_into(&mut buf).unwrap());
    assert!(file.read_into(&mut buf[1..]).is_err());
}

#[test]
fn the_typed_store_reads_a_large_blob_straight_into_its_vec() {
    let dir = tempfile::tempdir().unwrap();
    let store: diskstore::DiskStore<String, Vec<u8>> =
        diskstore::DiskStore::open(dir.path().join("s.db")).unwrap();
    let big: Vec<u8> = (0..diskstore::LARGE_VALUE * 2 + 7)
        .map(|i| (i % 253) as u8)
        .collect();
    store.insert("big", &big).unwrap();
    store.insert("small", &b"tiny".to_vec()).unwrap();
    assert_eq!(store.get_blob("big").unwrap(), Some(big.clone()));
    assert_eq!(store.get("big").unwrap(), Some(big));
    assert_eq!(store.get_blob("small").unwrap(), Some(b"tiny".to_vec()));
    assert_eq!(store.get_blob("absent").unwrap(), None);
}
