//! A cache value kept in a file of its own is checked on every read against the length and
//! the checksum its row recorded: a file truncated, altered or removed behind the cache's
//! back reads as a miss (never other bytes), and the entry goes with it.

use std::path::{Path, PathBuf};

use diskstore::{CacheOptions, CacheTable, Cell, Column, ColumnType, KeyRef, Ttl, Value, ValueRef};

fn value_files(db: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![db.with_file_name("c.db-values")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn open(db: &Path, column: ColumnType, synchronous: &str) -> CacheTable {
    let columns = vec![Column::new("value", column, true, None)];
    let mut o = CacheOptions::new(db, "Cache", columns);
    o.file_threshold = Some(1024);
    o.pragmas.push(("synchronous".into(), synchronous.into()));
    CacheTable::open(o).unwrap()
}

fn payload(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

fn get(c: &CacheTable, key: &str) -> Option<Value> {
    c.get(KeyRef::Text(key), |r| Ok(r.value(0)?.to_owned()))
        .unwrap()
}

/// Each kind of damage, one entry each: the read is a miss, the entry is gone (also from
/// `len`), the other entries still read back, and `check` finds nothing left to report.
#[test]
fn damaged_value_files_read_as_misses_and_their_entries_go() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("missing", |p| std::fs::remove_file(p).unwrap()),
        ("truncated", |p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(100).unwrap();
        }),
        ("one byte altered", |p| {
            let mut b = std::fs::read(p).unwrap();
            b[5000] ^= 1;
            std::fs::write(p, b).unwrap();
        }),
        ("same length, other bytes", |p| {
            let n = std::fs::metadata(p).unwrap().len() as usize;
            std::fs::write(p, vec![0u8; n]).unwrap();
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let c = open(&db, ColumnType::Blob, "NORMAL");
        let value = |seed| [Cell::Owned(Value::Blob(payload(seed, 50_000)))];
        c.set(KeyRef::Text("bad"), &value(1), Ttl::Never, None)
            .unwrap();
        let file = value_files(&db).remove(0);
        c.set(KeyRef::Text("good"), &value(2), Ttl::Never, None)
            .unwrap();
        damage(&file);
        assert_eq!(get(&c, "bad"), None, "{what}");
        assert!(!c.contains(KeyRef::Text("bad")).unwrap(), "{what}");
        assert_eq!(c.len().unwrap(), 1, "{what}");
        assert_eq!(c.volume().unwrap(), 4 + 50_000, "{what}");
        assert_eq!(
            get(&c, "good"),
            Some(Value::Blob(payload(2, 50_000))),
            "{what}"
        );
        assert!(
            c.check_files(false, std::time::Duration::ZERO)
                .unwrap()
                .is_empty(),
            "{what}"
        );
        assert_eq!(
            value_files(&db).len(),
            1,
            "{what}: the damaged file is removed"
        );
    }
}

/// The deferred read (the Python `get` path) checks too, and text values as well.
#[test]
fn a_deferred_read_of_an_altered_file_is_a_miss_that_removes_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = open(&db, ColumnType::Text, "FULL");
    let text = "x".repeat(10_000);
    c.set(
        KeyRef::Int(7),
        &[Cell::Borrowed(ValueRef::Text(&text))],
        Ttl::Never,
        None,
    )
    .unwrap();
    let file = value_files(&db).remove(0);
    std::fs::write(&file, "y".repeat(10_000)).unwrap();
    let found = c
        .get_deferred(KeyRef::Int(7), |_, f| Ok(f.cloned()))
        .unwrap()
        .flatten()
        .expect("the row and its file");
    let mut buf = vec![0u8; found.len()];
    assert!(!c.read_value_file(KeyRef::Int(7), &found, &mut buf).unwrap());
    assert!(!c.contains(KeyRef::Int(7)).unwrap());
    assert_eq!(c.len().unwrap(), 0);
}

/// Under every `synchronous` setting a value reads back whole, from this handle and from
/// a new one after the first closed (at NORMAL the file is synced by a background thread,
/// which the closing handle waits for).
#[test]
fn values_read_back_under_every_synchronous_setting() {
    for sync in ["OFF", "NORMAL", "FULL", "EXTRA"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let c = open(&db, ColumnType::Blob, sync);
        for i in 0..20u8 {
            let v = [Cell::Owned(Value::Blob(payload(
                i,
                20_000 + usize::from(i),
            )))];
            c.set(KeyRef::Int(i64::from(i)), &v, Ttl::Never, None)
                .unwrap();
        }
        drop(c);
        let c = open(&db, ColumnType::Blob, sync);
        for i in 0..20u8 {
            let got = c
                .get(KeyRef::Int(i64::from(i)), |r| Ok(r.value(0)?.to_owned()))
                .unwrap();
            assert_eq!(
                got,
                Some(Value::Blob(payload(i, 20_000 + usize::from(i)))),
                "{sync}"
            );
        }
        assert!(
            c.check_files(false, std::time::Duration::ZERO)
                .unwrap()
                .is_empty()
        );
    }
}
