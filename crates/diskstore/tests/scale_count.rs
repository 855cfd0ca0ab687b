//! `len()` is served from a cached count (see count.rs): it must stay exact whatever wrote
//! the file — this handle, another handle or thread, another connection (as another process
//! or the original library would be), raw SQL — and across rollbacks, savepoints, `clear`
//! and failures. Every check compares with `SELECT count(*)` on a separate connection.

use std::path::Path;

use diskstore::{DiskStore, Error, rusqlite};
use tempfile::TempDir;

type Store = DiskStore<String, Vec<u8>>;

/// The row count as a separate connection sees it.
fn counted(path: &Path) -> u64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("SELECT count(*) FROM DiskStore", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

fn fresh() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s: Store = DiskStore::open(dir.path().join("c.db")).unwrap();
    (dir, s)
}

fn check(s: &Store) {
    assert_eq!(s.len().unwrap(), counted(s.path()));
}

#[test]
fn own_writes_of_every_kind_keep_the_count() {
    let (_d, s) = fresh();
    check(&s);
    s.insert("a", &vec![1]).unwrap();
    check(&s);
    s.insert("a", &vec![2]).unwrap(); // a replacement
    check(&s);
    assert_eq!(s.len().unwrap(), 1);
    assert!(s.add("b", &vec![1]).unwrap());
    assert!(!s.add("b", &vec![1]).unwrap());
    check(&s);
    s.extend((0..100).map(|i| (format!("k{i}"), vec![0u8; 10])))
        .unwrap();
    check(&s);
    s.extend((50..150).map(|i| (format!("k{i}"), vec![0u8; 10])))
        .unwrap();
    check(&s);
    assert_eq!(s.remove("k3").unwrap(), Some(vec![0u8; 10]));
    check(&s);
    s.pop_last().unwrap();
    s.pop_first().unwrap();
    check(&s);
    s.get_or_insert("new", &vec![9]).unwrap();
    s.get_or_insert("new", &vec![9]).unwrap();
    check(&s);
    s.clear().unwrap();
    check(&s);
    assert_eq!(s.len().unwrap(), 0);
    s.insert("after", &vec![1]).unwrap();
    check(&s);
}

#[test]
fn integer_keys_including_the_extremes() {
    let dir = tempfile::tempdir().unwrap();
    let s: DiskStore<i64, i64> = DiskStore::open(dir.path().join("i.db")).unwrap();
    for k in [i64::MIN, i64::MIN, i64::MAX, 0, -1, i64::MAX, i64::MIN + 1] {
        s.insert(&k, &1).unwrap();
        assert_eq!(s.len().unwrap(), counted(s.path()), "after {k}");
    }
    let pushed = s.push(&5).unwrap_err(); // i64::MAX is taken: no key can be assigned
    assert!(matches!(pushed, Error::Usage(_)), "{pushed:?}");
    assert_eq!(s.len().unwrap(), counted(s.path()));
}

#[test]
fn rollbacks_savepoints_and_failures_undo_the_count() {
    let (_d, s) = fresh();
    s.insert("keep", &vec![1]).unwrap();
    assert_eq!(s.len().unwrap(), 1);

    let tx = s.begin().unwrap();
    tx.insert("x", &vec![1]).unwrap();
    assert_eq!(tx.len().unwrap(), 2);
    tx.rollback().unwrap();
    assert_eq!(s.len().unwrap(), 1);

    let tx = s.begin().unwrap();
    tx.insert("y", &vec![1]).unwrap();
    {
        let sp = tx.savepoint().unwrap();
        sp.insert("z", &vec![1]).unwrap();
        sp.remove("keep").unwrap();
        assert_eq!(sp.len().unwrap(), 2);
        sp.rollback().unwrap();
    }
    assert_eq!(tx.len().unwrap(), 2);
    {
        let sp = tx.savepoint().unwrap();
        sp.insert("w", &vec![1]).unwrap();
        drop(sp); // dropped unended: rolled back
    }
    assert_eq!(tx.len().unwrap(), 2);
    tx.commit().unwrap();
    assert_eq!(s.len().unwrap(), 2);
    check(&s);

    // A transaction dropped unended rolls back too.
    {
        let tx = s.begin().unwrap();
        tx.clear().unwrap();
        assert_eq!(tx.len().unwrap(), 0);
    }
    assert_eq!(s.len().unwrap(), 2);

    // A failing all-or-nothing write leaves nothing behind, the count included.
    let failed = s.table().atomic(|| {
        s.insert("gone", &vec![1])?;
        assert_eq!(s.len()?, 3);
        Err::<(), _>(Error::Usage("stop".into()))
    });
    assert!(failed.is_err());
    assert_eq!(s.len().unwrap(), 2);
    check(&s);
}

#[test]
fn raw_sql_on_the_same_connection_is_seen() {
    let (_d, s) = fresh();
    s.insert("a", &vec![1]).unwrap();
    assert_eq!(s.len().unwrap(), 1);
    let tx = s.begin().unwrap();
    s.table()
        .with_connection(|c| Ok(c.execute_batch("SAVEPOINT mine")?))
        .unwrap();
    tx.insert("b", &vec![1]).unwrap();
    assert_eq!(tx.len().unwrap(), 2);
    s.table()
        .with_connection(|c| Ok(c.execute_batch("ROLLBACK TO mine; RELEASE mine")?))
        .unwrap();
    assert_eq!(tx.len().unwrap(), 1);
    s.table()
        .with_connection(|c| {
            Ok(c.execute_batch("INSERT INTO DiskStore (_key, value) VALUES ('raw', x'00')")?)
        })
        .unwrap();
    assert_eq!(tx.len().unwrap(), 2);
    tx.commit().unwrap();
    check(&s);
}

#[test]
fn writes_of_other_handles_threads_and_connections_are_seen() {
    let (_d, s) = fresh();
    s.extend((0..10).map(|i| (format!("k{i}"), vec![1u8])))
        .unwrap();
    assert_eq!(s.len().unwrap(), 10);

    // Another handle of the same file on this thread (same connection).
    let other: Store = DiskStore::open(s.path()).unwrap();
    other.insert("h", &vec![1]).unwrap();
    assert_eq!(s.len().unwrap(), 11);

    // Another thread (its own connection).
    std::thread::scope(|t| {
        t.spawn(|| {
            s.insert("t1", &vec![1]).unwrap();
            s.remove("k0").unwrap();
            s.insert("t2", &vec![1]).unwrap();
        });
    });
    assert_eq!(s.len().unwrap(), 12);

    // Another connection, as another process or the original library would write.
    let raw = rusqlite::Connection::open(s.path()).unwrap();
    raw.execute("DELETE FROM DiskStore WHERE _key IN ('k1', 'k2')", [])
        .unwrap();
    assert_eq!(s.len().unwrap(), 10);
    raw.execute(
        "INSERT INTO DiskStore (_key, value) VALUES ('x', x'01')",
        [],
    )
    .unwrap();
    assert_eq!(s.len().unwrap(), 11);
    check(&s);
}

/// Random operations from this handle, another thread and a foreign connection, with
/// `len()` checked against a model after each one.
#[test]
fn random_mix_matches_a_model() {
    let (_d, s) = fresh();
    let raw = rusqlite::Connection::open(s.path()).unwrap();
    let mut model = std::collections::BTreeSet::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..600 {
        let key = format!("k{}", next(40));
        match next(8) {
            0 | 1 => {
                s.insert(&key, &vec![1]).unwrap();
                model.insert(key);
            }
            2 => {
                s.remove(&key).unwrap();
                model.remove(&key);
            }
            3 => {
                raw.execute(
                    "INSERT OR REPLACE INTO DiskStore (_key, value) VALUES (?1, x'02')",
                    [&key],
                )
                .unwrap();
                model.insert(key);
            }
            4 => {
                raw.execute("DELETE FROM DiskStore WHERE _key = ?1", [&key])
                    .unwrap();
                model.remove(&key);
            }
            5 => {
                let k = key.clone();
                std::thread::scope(|t| {
                    t.spawn(|| s.insert(&k, &vec![3]).unwrap());
                });
                model.insert(key);
            }
            6 => {
                let tx = s.begin().unwrap();
                tx.insert(&key, &vec![4]).unwrap();
                tx.remove("k1").unwrap();
                if next(2) == 0 {
                    tx.commit().unwrap();
                    model.insert(key);
                    model.remove("k1");
                } else {
                    tx.rollback().unwrap();
                }
            }
            _ => {
                if next(10) == 0 {
                    s.clear().unwrap();
                    model.clear();
                }
            }
        }
        assert_eq!(s.len().unwrap(), model.len() as u64);
    }
    check(&s);
}
