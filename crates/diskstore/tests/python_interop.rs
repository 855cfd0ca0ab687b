//! Files written by the original Python diskstore (0.7.0 and 0.1.0) read correctly, and
//! files written here have the original's layout.
//!
//! The fixtures in `tests/fixtures/` were made by `tests/fixtures/make_fixtures.sh`, which
//! installs each original version from PyPI in a throwaway venv and runs
//! `original_fixtures.py`; the contents checked here are the ones that script writes.
//! `make_fixtures.sh --check-rust` also runs `rust_files_have_the_original_layout` with
//! `DISKSTORE_INTEROP_OUT` set and has both originals read the files it leaves there.

use std::path::{Path, PathBuf};

use diskstore::{DiskRead, DiskStore, KeyRef, Record, Value, rusqlite};
use tempfile::TempDir;

#[derive(Record, Debug, Clone, PartialEq)]
struct Point {
    x: i64,
    y: f64,
    #[record(default = "none")]
    label: String,
    data: Vec<u8>,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct Item {
    name: String,
    count: i64,
    price: f64,
    blob: Vec<u8>,
}

/// A private copy of a fixture (opening a store may write beside it).
fn fixture(dir: &TempDir, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dst = dir.path().join(name);
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    dst
}

fn read<K: diskstore::Key, V: Record>(path: &Path, table: &str) -> Vec<(K, V)> {
    let r: DiskRead<K, V> = DiskRead::builder(path)
        .table(table)
        .open_read_only()
        .unwrap();
    r.iter().collect::<Result<_, _>>().unwrap()
}

/// The value column of a table whose values have mixed storage classes.
fn raw_value(path: &Path, table: &str, key: KeyRef<'_>) -> Option<Value> {
    let r: DiskRead<Vec<u8>, Vec<u8>> = DiskRead::builder(path)
        .table(table)
        .open_read_only()
        .unwrap();
    r.table()
        .get(key, |row| Ok(row.value(0)?.to_owned()))
        .unwrap()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn original_070_base_config_tables_read_for_every_key_type() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir, "v07.db");
    assert_eq!(
        read::<String, String>(&path, "TextKeys"),
        [
            (s("alpha"), s("first again")),
            (s(""), s("empty key")),
            (s("ünïcode ✓"), s("snow ☃")),
            (s("zeta"), s("")),
        ]
    );
    assert_eq!(
        read::<i64, Vec<u8>>(&path, "IntKeys"),
        [
            (i64::MIN, b"min".to_vec()),
            (-5, b"neg".to_vec()),
            (0, b"zero".to_vec()),
            (i64::MAX, b"max".to_vec()),
        ]
    );
    assert_eq!(
        read::<f64, f64>(&path, "FloatKeys"),
        [
            (3.25, 1e300),
            (-1.5, -0.25),
            (f64::INFINITY, f64::NEG_INFINITY),
            (0.0, 0.0),
        ]
    );
    assert_eq!(
        read::<Vec<u8>, i64>(&path, "BytesKeys"),
        [(b"abc".to_vec(), 1 << 62), (vec![], 0), (vec![0, 0xff], -1),]
    );
}

#[test]
fn original_070_mixed_keys_and_values_read_through_the_table_engine() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir, "v07.db");
    let t = "DiskStore";
    assert_eq!(
        raw_value(&path, t, KeyRef::Int(1)),
        Some(Value::Blob(b"int key".to_vec()))
    );
    // As in Python, 1 and 1.0 are the same key.
    assert_eq!(
        raw_value(&path, t, KeyRef::Float(1.0)),
        Some(Value::Blob(b"int key".to_vec()))
    );
    assert_eq!(
        raw_value(&path, t, KeyRef::Text("a")),
        Some(Value::Text(s("text value")))
    );
    assert_eq!(
        raw_value(&path, t, KeyRef::Blob(b"b")),
        Some(Value::Integer(7))
    );
    assert_eq!(
        raw_value(&path, t, KeyRef::Float(2.5)),
        Some(Value::Real(0.5))
    );
    assert_eq!(raw_value(&path, t, KeyRef::Text("b")), None);
    let r: DiskRead<Vec<u8>, Vec<u8>> = DiskRead::open(&path).unwrap();
    assert_eq!(r.len().unwrap(), 4);
}

#[test]
fn original_070_named_tuple_table_reads_as_a_derived_record() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir, "v07.db");
    let p = |x, y, label: &str, data: &[u8]| Point {
        x,
        y,
        label: s(label),
        data: data.to_vec(),
    };
    let want = [
        (s("p1"), p(1, 2.5, "one", b"\x01")),
        (s("p2"), p(-3, 0.0, "none", b"")),
        (s("p3"), p(1 << 40, -1e-9, "three ✓", b"")),
    ];
    assert_eq!(read::<String, Point>(&path, "Point"), want);
    // Read-write works on the original's file too, without migrating anything.
    let before = table_info(&path, "Point");
    let store: DiskStore<String, Point> = DiskStore::open(&path).unwrap();
    assert_eq!(store.get("p2").unwrap(), Some(want[1].1.clone()));
    store.insert("p4", &p(4, 4.0, "four", b"4")).unwrap();
    assert_eq!(store.len().unwrap(), 4);
    assert_eq!(table_info(&path, "Point"), before);
}

#[test]
fn original_010_value_tables_read() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir, "v01.db");
    let v = |k: &str| raw_value(&path, "Value", KeyRef::Text(k));
    assert_eq!(v("k1"), Some(Value::Text(s("text"))));
    assert_eq!(v("k2"), Some(Value::Blob(b"bytes".to_vec())));
    assert_eq!(v("k3"), Some(Value::Integer(3)));
    assert_eq!(v("k4"), Some(Value::Real(4.5)));
    let keys: Vec<String> = DiskRead::<String, Vec<u8>>::builder(&path)
        .table("Value")
        .open_read_only()
        .unwrap()
        .keys()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, ["k1", "k2", "k3", "k4"]);
    assert_eq!(
        read::<i64, String>(&path, "IntValues"),
        [(-1, s("minus one")), (2, s("two")), (10, s("ten"))]
    );
}

#[test]
fn original_010_multi_field_named_tuple_reads_with_float_keys() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir, "v01.db");
    let item = |name: &str, count, price, blob: &[u8]| Item {
        name: s(name),
        count,
        price,
        blob: blob.to_vec(),
    };
    assert_eq!(
        read::<f64, Item>(&path, "Item"),
        [
            (1.5, item("apple", 3, 0.99, b"\x00")),
            (-2.0, item("", 0, 0.0, b"")),
            (1e10, item("pear ✓", -7, 1e-3, b"\xff\xfe")),
        ]
    );
    let r: DiskRead<f64, Item> = DiskRead::open(&path).unwrap();
    assert_eq!(r.get(&-2.0).unwrap().unwrap().name, "");
    let within: Vec<f64> = r.range(0.0..).map(|e| e.unwrap().0).collect();
    assert_eq!(within, [1.5, 1e10]);
}

/// `(name, declared type, not null, primary key)` of each column.
fn table_info(path: &Path, table: &str) -> Vec<(String, String, bool, bool)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare(r#"SELECT name, type, "notnull", pk FROM pragma_table_info(?1)"#)
        .unwrap();
    st.query_map([table], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? > 0))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn pragma(path: &Path, name: &str) -> String {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("PRAGMA {name}"), [], |r| {
        r.get::<_, rusqlite::types::Value>(0)
    })
    .map(|v| format!("{v:?}"))
    .unwrap()
}

#[test]
fn rust_files_have_the_original_layout() {
    let tmp = TempDir::new().unwrap();
    let out =
        std::env::var_os("DISKSTORE_INTEROP_OUT").map_or(tmp.path().to_owned(), PathBuf::from);
    let originals = TempDir::new().unwrap();
    let v07 = fixture(&originals, "v07.db");
    let v01 = fixture(&originals, "v01.db");

    // 0.7.0 layout: table "DiskStore" (BaseConfig) and a NamedTuple table.
    let rust07 = out.join("rust07.db");
    let text: DiskStore<String, String> = DiskStore::open(&rust07).unwrap();
    text.extend([("one", s("1")), ("", s("empty")), ("ü ✓", s("unicode"))])
        .unwrap();
    let points: DiskStore<String, Point> = DiskStore::open(&rust07).unwrap();
    points
        .insert(
            "a",
            &Point {
                x: 1,
                y: 0.5,
                label: s("x"),
                data: vec![0],
            },
        )
        .unwrap();
    points
        .insert(
            "b",
            &Point {
                x: -2,
                y: -1.0,
                label: s(""),
                data: vec![],
            },
        )
        .unwrap();
    drop((text, points));

    // 0.1.0 layout: table "Value" and a multi-field record with float keys.
    let rust01 = out.join("rust01.db");
    let values: DiskStore<String, String> =
        DiskStore::builder(&rust01).table("Value").open().unwrap();
    values
        .extend([("one", s("1")), ("", s("empty")), ("ü ✓", s("unicode"))])
        .unwrap();
    let items: DiskStore<f64, Item> = DiskStore::open(&rust01).unwrap();
    items
        .insert(
            &2.5,
            &Item {
                name: s("n"),
                count: 1,
                price: 1.5,
                blob: b"b".to_vec(),
            },
        )
        .unwrap();
    drop((values, items));

    // Same columns, types, constraints and key as the originals' tables.
    let without_value_type = |cols: Vec<(String, String, bool, bool)>| {
        cols.into_iter()
            .map(|(n, t, nn, pk)| (n.clone(), if n == "_key" { t } else { s("*") }, nn, pk))
            .collect::<Vec<_>>()
    };
    // BaseConfig declares its value BLOB whatever the values are; a String record
    // declares TEXT. Both read back the same; compare everything else.
    assert_eq!(
        without_value_type(table_info(&rust07, "DiskStore")),
        without_value_type(table_info(&v07, "TextKeys"))
    );
    assert_eq!(table_info(&rust07, "Point"), table_info(&v07, "Point"));
    assert_eq!(table_info(&rust01, "Item"), table_info(&v01, "Item"));
    assert_eq!(
        without_value_type(table_info(&rust01, "Value")),
        without_value_type(table_info(&v01, "Value"))
    );
    // The 0.7.0 file settings: WAL journal; pages of 16 KiB there, 4 KiB in new files of
    // ours (each library reads either).
    assert_eq!(
        pragma(&rust07, "journal_mode"),
        pragma(&v07, "journal_mode")
    );
    assert_eq!(pragma(&v07, "page_size"), "Integer(16384)");
    assert_eq!(pragma(&rust07, "page_size"), "Integer(4096)");
    // Everything is in the main file once the stores are closed.
    assert!(!out.join("rust07.db-wal").exists());
    assert!(!out.join("rust01.db-wal").exists());
}
