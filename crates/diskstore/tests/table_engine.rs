//! The type-erased engine (`Table`) that front ends such as the Python binding use:
//! dynamic keys of every storage class in one BLOB-keyed table, several value columns,
//! and the lower-level calls the typed API does not expose directly.

use diskstore::{
    Cell, Column, ColumnType, Direction, KeyRef, Query, RangeEnd, Row, Table, TableOptions,
    TableSpec, Value, ValueRef,
};
use tempfile::TempDir;

fn spec(key_type: ColumnType) -> TableSpec {
    TableSpec {
        name: "T".into(),
        key_type,
        columns: vec![
            Column::new("a", ColumnType::Blob, false, None),
            Column::new("b", ColumnType::Integer, true, Some(Value::Integer(0))),
        ],
    }
}

fn open(dir: &TempDir, key_type: ColumnType) -> Table {
    Table::open(TableOptions::new(dir.path().join("t.db"), spec(key_type))).unwrap()
}

fn cells<'a>(a: ValueRef<'a>, b: Option<i64>) -> Vec<Cell<'a>> {
    vec![
        Cell::Borrowed(a),
        Cell::Borrowed(b.map_or(ValueRef::Null, ValueRef::Integer)),
    ]
}

/// `(key, a, b)` of a row, owned.
fn owned(row: &Row<'_>) -> diskstore::Result<(Value, Value, Value)> {
    Ok((
        row.key()?.to_owned(),
        row.value(0)?.to_owned(),
        row.value(1)?.to_owned(),
    ))
}

fn all(t: &Table) -> Vec<(Value, Value, Value)> {
    let mut out = Vec::new();
    t.scan(
        i64::MIN,
        i64::MAX,
        Direction::Forward,
        1000,
        false,
        |_, r| {
            out.push(owned(r)?);
            Ok(())
        },
    )
    .unwrap();
    out
}

#[test]
fn one_blob_keyed_table_holds_keys_of_every_storage_class() {
    let dir = TempDir::new().unwrap();
    let t = open(&dir, ColumnType::Blob);
    t.set(KeyRef::Int(1), &cells(ValueRef::Text("int"), Some(1)))
        .unwrap();
    t.set(KeyRef::Text("1"), &cells(ValueRef::Text("text"), None))
        .unwrap();
    t.set(KeyRef::Blob(b"1"), &cells(ValueRef::Blob(b"blob"), Some(3)))
        .unwrap();
    t.set(KeyRef::Float(2.5), &cells(ValueRef::Real(0.5), Some(4)))
        .unwrap();
    assert_eq!(t.len().unwrap(), 4);
    // 1 and 1.0 are one key; "1" and b"1" are two others.
    t.set(KeyRef::Float(1.0), &cells(ValueRef::Text("float"), Some(5)))
        .unwrap();
    assert_eq!(t.len().unwrap(), 4);
    let a_of = |k: KeyRef<'_>| t.get(k, |r| Ok(r.value(0)?.to_owned())).unwrap();
    assert_eq!(a_of(KeyRef::Int(1)), Some(Value::Text("float".into())));
    assert_eq!(a_of(KeyRef::Text("1")), Some(Value::Text("text".into())));
    assert_eq!(
        a_of(KeyRef::Blob(b"1")),
        Some(Value::Blob(b"blob".to_vec()))
    );
    assert_eq!(a_of(KeyRef::Blob(b"2")), None);
    // The stored key keeps its first storage class; NULL values come back as NULL.
    assert_eq!(
        all(&t),
        [
            (
                Value::Integer(1),
                Value::Text("float".into()),
                Value::Integer(5)
            ),
            (
                Value::Text("1".into()),
                Value::Text("text".into()),
                Value::Null
            ),
            (
                Value::Blob(b"1".to_vec()),
                Value::Blob(b"blob".to_vec()),
                Value::Integer(3)
            ),
            (Value::Real(2.5), Value::Real(0.5), Value::Integer(4)),
        ]
    );
    // Key order across classes: numbers, then text, then bytes.
    let mut keys = Vec::new();
    t.range(
        RangeEnd::Unbounded,
        RangeEnd::Unbounded,
        Direction::Forward,
        100,
        |r| {
            keys.push(r.key()?.to_owned());
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        keys,
        [
            Value::Integer(1),
            Value::Real(2.5),
            Value::Text("1".into()),
            Value::Blob(b"1".to_vec())
        ]
    );
}

#[test]
fn writes_report_what_they_did() {
    let dir = TempDir::new().unwrap();
    let t = open(&dir, ColumnType::Integer);
    assert!(
        t.insert_new(KeyRef::Int(5), &cells(ValueRef::Integer(50), None))
            .unwrap()
    );
    assert!(
        !t.insert_new(KeyRef::Int(5), &cells(ValueRef::Integer(51), None))
            .unwrap()
    );
    assert_eq!(
        t.insert_auto(&cells(ValueRef::Integer(60), Some(6)))
            .unwrap(),
        6
    );
    assert_eq!(t.max_rowid().unwrap(), Some(6));
    assert!(t.delete(KeyRef::Int(6)).unwrap());
    assert!(!t.delete(KeyRef::Int(6)).unwrap());
    let (got, inserted) = t
        .get_or_insert(
            KeyRef::Int(7),
            &cells(ValueRef::Integer(70), None),
            |r, new| Ok((r.value(0)?.to_owned(), new)),
        )
        .unwrap();
    assert_eq!((got, inserted), (Value::Integer(70), true));
    let (got, inserted) = t
        .get_or_insert(
            KeyRef::Int(7),
            &cells(ValueRef::Integer(71), None),
            |r, new| Ok((r.value(0)?.to_owned(), new)),
        )
        .unwrap();
    assert_eq!((got, inserted), (Value::Integer(70), false));
    let removed = t.remove(KeyRef::Int(5), owned).unwrap();
    assert_eq!(
        removed,
        Some((Value::Integer(5), Value::Integer(50), Value::Null))
    );
    assert_eq!(t.remove(KeyRef::Int(5), owned).unwrap(), None);
    assert_eq!(
        t.pop(Direction::Forward, owned).unwrap().map(|r| r.0),
        Some(Value::Integer(7))
    );
    assert_eq!(t.pop(Direction::Reverse, owned).unwrap(), None);
    assert_eq!(t.max_rowid().unwrap(), None);
}

#[test]
fn scans_page_by_rowid_and_can_skip_values() {
    let dir = TempDir::new().unwrap();
    let t = open(&dir, ColumnType::Text);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        t.set(KeyRef::Text(k), &cells(ValueRef::Integer(i as i64), None))
            .unwrap();
    }
    let mut seen = Vec::new();
    let n = t
        .scan(3, 100, Direction::Forward, 4, true, |rowid, r| {
            assert_eq!(r.len(), 0, "keys only");
            seen.push((rowid, r.key()?.to_owned()));
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        seen,
        (3..7)
            .map(|i| (i, Value::Text(format!("k{}", i - 1))))
            .collect::<Vec<_>>()
    );
    let mut back = Vec::new();
    t.scan(i64::MIN, 5, Direction::Reverse, 100, false, |rowid, r| {
        assert_eq!(r.len(), 2);
        back.push(rowid);
        Ok(())
    })
    .unwrap();
    assert_eq!(back, [5, 4, 3, 2, 1]);
    // An error from the callback stops the scan and comes back unchanged.
    let r = t.scan(
        i64::MIN,
        i64::MAX,
        Direction::Forward,
        100,
        false,
        |rowid, _| {
            if rowid == 2 {
                Err(diskstore::Error::Usage("stop".into()))
            } else {
                Ok(())
            }
        },
    );
    assert!(matches!(r, Err(diskstore::Error::Usage(m)) if m == "stop"));
}

#[test]
fn many_reads_share_one_snapshot() {
    let dir = TempDir::new().unwrap();
    let t = open(&dir, ColumnType::Text);
    t.set(KeyRef::Text("x"), &cells(ValueRef::Integer(1), None))
        .unwrap();
    let writer = t.clone();
    let (first, second) = t
        .read(|| {
            let first = t.get(KeyRef::Text("x"), |r| Ok(r.value(0)?.to_owned()))?;
            // A commit from another thread while the snapshot is open…
            std::thread::scope(|s| {
                s.spawn(|| {
                    writer
                        .set(KeyRef::Text("x"), &cells(ValueRef::Integer(2), None))
                        .unwrap()
                });
            });
            // …is not seen inside it.
            let second = t.get(KeyRef::Text("x"), |r| Ok(r.value(0)?.to_owned()))?;
            Ok((first, second))
        })
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        t.get(KeyRef::Text("x"), |r| Ok(r.value(0)?.to_owned()))
            .unwrap(),
        Some(Value::Integer(2))
    );
}

#[test]
fn queries_bind_parameters_and_see_every_column() {
    let dir = TempDir::new().unwrap();
    let t = open(&dir, ColumnType::Text);
    for i in 0..10i64 {
        let k = format!("k{i}");
        t.set(
            KeyRef::Text(&k),
            &cells(ValueRef::Integer(i * i), Some(i % 3)),
        )
        .unwrap();
    }
    let mut got = Vec::new();
    let q = Query::new()
        .filter("b = ? AND a > ?", [Value::Integer(1), Value::Integer(1)])
        .order("a DESC")
        .limit(2);
    t.query(&q, |r| {
        got.push(r.value(0)?.to_owned());
        Ok(())
    })
    .unwrap();
    assert_eq!(got, [Value::Integer(49), Value::Integer(16)]);
    let mut got_many = Vec::new();
    t.get_many(
        &[KeyRef::Text("k3"), KeyRef::Text("nope"), KeyRef::Text("k2")],
        |i, r| {
            got_many.push((i, r.map(|r| r.value(0).unwrap().to_owned())));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        got_many,
        [
            (0, Some(Value::Integer(9))),
            (1, None),
            (2, Some(Value::Integer(4)))
        ]
    );
}

#[test]
fn a_column_default_fills_rows_added_before_the_column() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("t.db");
    let narrow = TableSpec {
        name: "T".into(),
        key_type: ColumnType::Text,
        columns: vec![Column::new("a", ColumnType::Blob, false, None)],
    };
    let t = Table::open(TableOptions::new(&path, narrow)).unwrap();
    t.set(KeyRef::Text("old"), &[Cell::Borrowed(ValueRef::Integer(1))])
        .unwrap();
    let wide = Table::open(TableOptions::new(&path, spec(ColumnType::Text))).unwrap();
    let row = wide.get(KeyRef::Text("old"), owned).unwrap().unwrap();
    assert_eq!(row.2, Value::Integer(0));
    assert_eq!(
        wide.spec().create_sql().unwrap(),
        r#"CREATE TABLE IF NOT EXISTS "T" (_key TEXT PRIMARY KEY NOT NULL, "a" BLOB NOT NULL, "b" INTEGER DEFAULT 0)"#
    );
}

#[test]
fn scans_and_ranges_without_a_limit_read_everything() {
    let dir = TempDir::new().unwrap();
    let t = open(&dir, ColumnType::Blob);
    for i in 0..5 {
        t.set(KeyRef::Int(i), &cells(ValueRef::Integer(i), None))
            .unwrap();
    }
    let mut seen = 0;
    let n = t
        .scan(
            i64::MIN,
            i64::MAX,
            Direction::Forward,
            usize::MAX,
            true,
            |_, _| {
                seen += 1;
                Ok(())
            },
        )
        .unwrap();
    assert_eq!((n, seen), (5, 5));
    let n = t
        .range(
            RangeEnd::Unbounded,
            RangeEnd::Unbounded,
            Direction::Reverse,
            usize::MAX,
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!(n, 5);
}
