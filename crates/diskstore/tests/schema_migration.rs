//! The table in the file against the record type: creation, automatic migration (adding
//! columns with their defaults), and the mismatches that must be a clear `Error::Schema`
//! naming table and column while leaving the file exactly as it was.

use std::fs;
use std::path::Path;

use diskstore::{DiskRead, DiskStore, Error, Record, rusqlite};
use tempfile::TempDir;

#[derive(Record, Debug, Clone, PartialEq)]
#[record(table = "Rec")]
struct V1 {
    a: i64,
}

#[derive(Record, Debug, Clone, PartialEq)]
#[record(table = "Rec")]
struct V2 {
    a: i64,
    #[record(default = 7)]
    b: i64,
    #[record(default = "it's")]
    c: String,
    #[record(default = -0.5)]
    e: f64,
    d: Option<f64>,
}

#[derive(Record, Debug, Clone, PartialEq)]
#[record(table = "Rec")]
struct NeedsValue {
    a: i64,
    required: String,
}

fn table_sql(path: &Path, table: &str) -> Option<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )
    .ok()
}

/// Folds the WAL into the file and returns its bytes: the whole state of the store.
/// (Files made here by hand start in WAL mode: opening a store switches a file to WAL,
/// which rewrites two header bytes even when the open is then refused.)
fn settled_bytes(path: &Path) -> Vec<u8> {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(c);
    fs::read(path).unwrap()
}

fn expect_schema_error(e: Error, table: &str, column: &str) {
    let text = e.to_string();
    match e {
        Error::Schema {
            table: t,
            column: c,
            ..
        } => {
            assert_eq!(t, table);
            assert_eq!(c.as_deref(), Some(column));
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert!(
        text.contains(table) && text.contains(column),
        "the message names both: {text}"
    );
}

#[test]
fn a_new_store_creates_the_original_layout() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("n.db");
    let _s: DiskStore<String, Vec<u8>> = DiskStore::open(&path).unwrap();
    assert_eq!(
        table_sql(&path, "DiskStore").unwrap(),
        r#"CREATE TABLE "DiskStore" (_key TEXT PRIMARY KEY NOT NULL, "value" BLOB NOT NULL)"#
    );
    let _r: DiskStore<i64, V2> = DiskStore::open(&path).unwrap();
    assert_eq!(
        table_sql(&path, "Rec").unwrap(),
        r#"CREATE TABLE "Rec" (_key INTEGER PRIMARY KEY NOT NULL, "a" INTEGER NOT NULL, "b" INTEGER NOT NULL DEFAULT 7, "c" TEXT NOT NULL DEFAULT 'it''s', "e" REAL NOT NULL DEFAULT -5e-1, "d" REAL)"#
    );
}

#[test]
fn auto_migrate_adds_missing_columns_with_their_defaults() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("m.db");
    let old: DiskStore<i64, V1> = DiskStore::open(&path).unwrap();
    old.insert(&1, &V1 { a: 10 }).unwrap();
    old.insert(&2, &V1 { a: 20 }).unwrap();

    let new: DiskStore<i64, V2> = DiskStore::open(&path).unwrap();
    let migrated = V2 {
        a: 10,
        b: 7,
        c: "it's".into(),
        e: -0.5,
        d: None,
    };
    assert_eq!(new.get(&1).unwrap(), Some(migrated));
    let fresh = V2 {
        a: 30,
        b: 1,
        c: "c".into(),
        e: 2.0,
        d: Some(1.5),
    };
    new.insert(&3, &fresh).unwrap();
    assert_eq!(new.get(&3).unwrap(), Some(fresh));
    assert_eq!(new.len().unwrap(), 3);

    // The old record type still works on the wider table: the new columns have
    // defaults (or accept NULL), so its writes succeed.
    old.insert(&4, &V1 { a: 40 }).unwrap();
    assert_eq!(new.get(&4).unwrap().unwrap().b, 7);
    let reopened: DiskStore<i64, V1> = DiskStore::open(&path).unwrap();
    assert_eq!(reopened.get(&3).unwrap(), Some(V1 { a: 30 }));
}

#[test]
fn a_missing_not_null_column_without_default_is_refused_and_nothing_changes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("m.db");
    let old: DiskStore<i64, V1> = DiskStore::open(&path).unwrap();
    old.insert(&1, &V1 { a: 1 }).unwrap();
    drop(old);
    let before = settled_bytes(&path);
    let e = DiskStore::<i64, NeedsValue>::open(&path).err().unwrap();
    expect_schema_error(e, "Rec", "required");
    assert!(settled_bytes(&path) == before, "the file changed");
}

#[test]
fn a_column_of_another_type_is_refused_and_nothing_changes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("t.db");
    let text: DiskStore<String, String> = DiskStore::open(&path).unwrap();
    text.insert("a", &"x".to_string()).unwrap();
    drop(text);
    let before = settled_bytes(&path);
    let e = DiskStore::<String, i64>::open(&path).err().unwrap();
    expect_schema_error(e, "DiskStore", "value");
    let e = DiskRead::<String, i64>::open(&path).err().unwrap();
    expect_schema_error(e, "DiskStore", "value");
    // A key column of another type is refused the same way.
    let e = DiskStore::<i64, String>::open(&path).err().unwrap();
    expect_schema_error(e, "DiskStore", "_key");
    assert!(settled_bytes(&path) == before, "the file changed");
}

#[test]
fn blob_columns_accept_any_value_type() {
    // BLOB (no affinity) keeps every value as written, so any record type fits it:
    // the layout of the original's BaseConfig tables.
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("b.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        r#"CREATE TABLE "DiskStore" (_key BLOB PRIMARY KEY NOT NULL, "value" BLOB NOT NULL);
           INSERT INTO "DiskStore" VALUES ('t', 5);"#,
    )
    .unwrap();
    drop(c);
    let s: DiskStore<String, i64> = DiskStore::open(&path).unwrap();
    assert_eq!(s.get("t").unwrap(), Some(5));
    s.insert("u", &6).unwrap();
    assert_eq!(s.len().unwrap(), 2);
}

#[test]
fn a_table_without_a_key_column_is_refused_and_nothing_changes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("k.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        r#"PRAGMA journal_mode = wal;
           CREATE TABLE "DiskStore" (id TEXT PRIMARY KEY, "value" BLOB);
           INSERT INTO "DiskStore" VALUES ('a', x'00');"#,
    )
    .unwrap();
    drop(c);
    let before = settled_bytes(&path);
    let e = DiskStore::<String, Vec<u8>>::open(&path).err().unwrap();
    expect_schema_error(e, "DiskStore", "_key");
    let e = DiskRead::<String, Vec<u8>>::open(&path).err().unwrap();
    expect_schema_error(e, "DiskStore", "_key");
    assert!(settled_bytes(&path) == before, "the file changed");
}

#[test]
fn an_extra_not_null_column_the_record_lacks_blocks_writing_but_not_reading() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.db");
    let wide: DiskStore<i64, NeedsValue> = DiskStore::open(&path).unwrap();
    wide.insert(
        &1,
        &NeedsValue {
            a: 1,
            required: "r".into(),
        },
    )
    .unwrap();
    drop(wide);
    let before = settled_bytes(&path);
    // Inserting a V1 would leave `required` NULL: refused at open, naming the column.
    let e = DiskStore::<i64, V1>::open(&path).err().unwrap();
    expect_schema_error(e, "Rec", "required");
    // A read-only view of fewer columns is fine.
    let ro: DiskRead<i64, V1> = DiskRead::open(&path).unwrap();
    assert_eq!(ro.get(&1).unwrap(), Some(V1 { a: 1 }));
    assert!(settled_bytes(&path) == before, "the file changed");
}

#[test]
fn without_auto_migrate_a_missing_column_is_an_error() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("o.db");
    let old: DiskStore<i64, V1> = DiskStore::open(&path).unwrap();
    old.insert(&1, &V1 { a: 1 }).unwrap();
    drop(old);
    let before = settled_bytes(&path);
    let e = DiskStore::<i64, V2>::builder(&path)
        .auto_migrate(false)
        .open()
        .err()
        .unwrap();
    expect_schema_error(e, "Rec", "b");
    // A read-only store never migrates either.
    let e = DiskRead::<i64, V2>::open(&path).err().unwrap();
    expect_schema_error(e, "Rec", "b");
    assert!(settled_bytes(&path) == before, "the file changed");
    // With migration on (the default) it goes through.
    let new: DiskStore<i64, V2> = DiskStore::open(&path).unwrap();
    assert_eq!(new.get(&1).unwrap().unwrap().b, 7);
}

#[test]
fn a_read_only_store_on_a_file_without_the_table_is_a_schema_error() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("e.db");
    let _s: DiskStore<String, i64> = DiskStore::open(&path).unwrap();
    let e = DiskRead::<i64, V1>::open(&path).err().unwrap();
    assert!(
        matches!(&e, Error::Schema { table, .. } if table == "Rec"),
        "{e:?}"
    );
    assert_eq!(table_sql(&path, "Rec"), None);
}

#[test]
fn several_tables_live_in_one_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("many.db");
    let a: DiskStore<String, i64> = DiskStore::builder(&path).table("a").open().unwrap();
    let b: DiskStore<String, String> = DiskStore::builder(&path).table("b").open().unwrap();
    let r: DiskStore<i64, V1> = DiskStore::open(&path).unwrap();
    a.insert("k", &1).unwrap();
    b.insert("k", &"one".to_string()).unwrap();
    r.insert(&1, &V1 { a: 1 }).unwrap();
    assert_eq!(a.get("k").unwrap(), Some(1));
    assert_eq!(b.get("k").unwrap().as_deref(), Some("one"));
    a.clear().unwrap();
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(r.len().unwrap(), 1);
}
