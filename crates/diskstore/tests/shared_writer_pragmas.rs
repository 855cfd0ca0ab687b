//! Per-connection pragmas and the file's one writer connection: a setting made with
//! `Table::set_pragma` reaches every autocommitted write of the process (which run on the
//! writer connection) and this thread's reads, survives the writer connection being
//! reopened, and ends with `close_all()`; one made through `with_connection` outside a
//! transaction reaches only this thread's own connection, as documented.

use std::thread;

use diskstore::{DiskStore, Error, Table};

type Store = DiskStore<String, String>;

fn open(dir: &tempfile::TempDir) -> Store {
    DiskStore::open(dir.path().join("p.db")).unwrap()
}

fn read_pragma(s: &Store, name: &str) -> i64 {
    s.table()
        .with_connection(|c| Ok(c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?))
        .unwrap()
}

/// The pragma's value on the writer connection (inside a write transaction
/// `with_connection` runs there).
fn on_writer(s: &Store, name: &str) -> i64 {
    let tx = s.begin().unwrap();
    let v = read_pragma(s, name);
    tx.commit().unwrap();
    v
}

fn pages(s: &Store) -> i64 {
    read_pragma(s, "page_count")
}

#[test]
fn a_pragma_set_with_set_pragma_reaches_the_writer_connection_and_this_threads() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("a", &"1".to_string()).unwrap();
    assert_eq!(on_writer(&s, "synchronous"), 1, "the default, NORMAL");
    s.table().set_pragma("synchronous", "FULL").unwrap();
    assert_eq!(read_pragma(&s, "synchronous"), 2);
    assert_eq!(on_writer(&s, "synchronous"), 2);
    // Another thread's writes run on the same writer connection.
    let other = s.clone();
    let seen = thread::spawn(move || {
        other.insert("b", &"2".to_string()).unwrap();
        on_writer(&other, "synchronous")
    })
    .join()
    .unwrap();
    assert_eq!(seen, 2);
}

#[test]
fn an_autocommitted_write_obeys_a_shared_max_page_count_but_not_a_raw_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("seed", &"x".to_string()).unwrap();
    let big = "y".repeat(100_000);
    let limit = pages(&s);
    // Raw SQL outside a transaction: this thread's own connection only, which no write
    // uses, so the write still grows the file.
    s.table()
        .with_connection(|c| Ok(c.execute_batch(&format!("PRAGMA max_page_count = {limit}"))?))
        .unwrap();
    s.insert("raw", &big).unwrap();
    // Through set_pragma the limit holds for the write: it fails and leaves nothing.
    let limit = pages(&s);
    s.table().set_pragma("max_page_count", limit).unwrap();
    let err = s.insert("shared", &big).unwrap_err();
    assert!(!s.contains_key("shared").unwrap(), "{err}");
    // Small writes that fit still succeed.
    s.insert("small", &"z".to_string()).unwrap();
    assert!(s.contains_key("small").unwrap());
}

#[test]
fn the_writer_connection_keeps_the_setting_when_reopened_until_close_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("a", &"1".to_string()).unwrap();
    s.table().set_pragma("cache_size", -1234).unwrap();
    // close() closes this thread's connection and the idle writer connection: the writer
    // connection reopens with the setting, this thread's with the store's settings.
    s.table().close().unwrap();
    s.insert("b", &"2".to_string()).unwrap();
    assert_eq!(on_writer(&s, "cache_size"), -1234);
    assert_eq!(read_pragma(&s, "cache_size"), -32768);
    // close_all() puts every connection back to the settings given at open.
    s.close_all().unwrap();
    s.insert("c", &"3".to_string()).unwrap();
    assert_eq!(on_writer(&s, "cache_size"), -32768);
}

#[test]
fn set_pragma_inside_a_transaction_applies_to_it_and_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let tx = s.begin().unwrap();
    s.insert("a", &"1".to_string()).unwrap();
    s.table().set_pragma("foreign_keys", 1).unwrap();
    assert_eq!(read_pragma(&s, "foreign_keys"), 1);
    tx.commit().unwrap();
    assert_eq!(read_pragma(&s, "foreign_keys"), 1);
    assert_eq!(on_writer(&s, "foreign_keys"), 1);
    // SQLite's own rule stands: the safety level cannot change inside a transaction.
    let tx = s.begin().unwrap();
    assert!(s.table().set_pragma("synchronous", 0).is_err());
    tx.rollback().unwrap();
    assert_eq!(on_writer(&s, "synchronous"), 1);
}

#[test]
fn bad_names_and_values_are_refused_before_any_sql_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for (name, value) in [
        ("synchronous; DROP TABLE x", "1"),
        ("synchronous", "1; DELETE"),
    ] {
        let err = s.table().set_pragma(name, value).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err:?}");
    }
    assert_eq!(
        Table::shared_pragma("PRAGMA synchronous = FULL"),
        Some(("synchronous".into(), "FULL".into()))
    );
    assert_eq!(Table::shared_pragma("PRAGMA synchronous"), None);
}
