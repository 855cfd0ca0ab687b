//! Values: `#[derive(Record)]` (table, rename, defaults), `Option` fields, `Json<T>`,
//! decode errors that name the column, and the builder's options.

use std::collections::BTreeMap;
use std::time::Duration;

use diskstore::{ColumnType, DiskStore, Error, Json, Record, rusqlite};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

#[derive(Record, Debug, Clone, PartialEq)]
#[record(table = "people")]
struct Person {
    name: String,
    #[record(rename = "years")]
    age: i64,
    #[record(default = 1.5)]
    score: f64,
    #[record(default = true)]
    active: bool,
    nickname: Option<String>,
    photo: Vec<u8>,
    tags: Json<Vec<String>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Settings {
    theme: String,
    sizes: BTreeMap<String, u32>,
    extra: Option<f64>,
}

fn person(i: i64) -> Person {
    Person {
        name: format!("name {i}"),
        age: i,
        score: i as f64 / 2.0,
        active: i % 2 == 0,
        nickname: (i % 3 == 0).then(|| format!("nick {i}")),
        photo: vec![i as u8; 3],
        tags: Json(vec!["a".into(), format!("t{i}")]),
    }
}

/// `(name, declared type, not null, default)` of each column, from the file.
fn columns(
    store_path: &std::path::Path,
    table: &str,
) -> Vec<(String, String, bool, Option<String>)> {
    let c = rusqlite::Connection::open(store_path).unwrap();
    let mut st = c
        .prepare("SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?1)")
        .unwrap();
    st.query_map([table], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn raw(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

#[test]
fn derived_records_get_one_column_per_field() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("p.db");
    let s: DiskStore<String, Person> = DiskStore::open(&path).unwrap();
    assert_eq!(s.table().spec().name, "people");
    let cols = columns(&path, "people");
    let expect = |name: &str, ty: &str, not_null: bool, default: Option<&str>| {
        (
            name.to_string(),
            ty.to_string(),
            not_null,
            default.map(String::from),
        )
    };
    assert_eq!(
        cols,
        [
            expect("_key", "TEXT", true, None),
            expect("name", "TEXT", true, None),
            expect("years", "INTEGER", true, None),
            expect("score", "REAL", true, Some("1.5e0")),
            expect("active", "INTEGER", true, Some("1")),
            expect("nickname", "TEXT", false, None),
            expect("photo", "BLOB", true, None),
            expect("tags", "TEXT", true, None),
        ]
    );
    for i in 0..6 {
        s.insert(&format!("p{i}"), &person(i)).unwrap();
    }
    for i in 0..6 {
        assert_eq!(s.get(&format!("p{i}")).unwrap(), Some(person(i)));
    }
    let all: Vec<(String, Person)> = s.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[3], ("p3".to_string(), person(3)));
}

#[test]
fn option_fields_are_stored_as_null() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("p.db");
    let s: DiskStore<String, Person> = DiskStore::open(&path).unwrap();
    let mut p = person(1);
    p.nickname = None;
    s.insert("none", &p).unwrap();
    let nulls: i64 = s
        .table()
        .with_connection(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM people WHERE nickname IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(nulls, 1);
    assert_eq!(s.get("none").unwrap().unwrap().nickname, None);

    let o: DiskStore<i64, Option<i64>> = DiskStore::open(dir.path().join("o.db")).unwrap();
    o.insert(&1, &None).unwrap();
    o.insert(&2, &Some(-3)).unwrap();
    assert_eq!(o.get(&1).unwrap(), Some(None));
    assert_eq!(o.get(&2).unwrap(), Some(Some(-3)));
    assert_eq!(o.get(&3).unwrap(), None);
}

#[test]
fn json_values_are_readable_json_text() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<String, Json<Settings>> = DiskStore::open(dir.path().join("j.db")).unwrap();
    let v = Settings {
        theme: "dark ✓".into(),
        sizes: BTreeMap::from([("a".into(), 1), ("b".into(), 2)]),
        extra: None,
    };
    s.insert("cfg", &Json(v.clone())).unwrap();
    assert_eq!(s.get("cfg").unwrap(), Some(Json(v)));
    let text: String = s
        .table()
        .with_connection(|c| Ok(c.query_row("SELECT value FROM DiskStore", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(
        text,
        r#"{"theme":"dark ✓","sizes":{"a":1,"b":2},"extra":null}"#
    );
}

#[test]
fn built_in_field_types_round_trip() {
    let dir = TempDir::new().unwrap();
    let p = |n: &str| dir.path().join(n);
    let b: DiskStore<i64, bool> = DiskStore::open(p("b.db")).unwrap();
    b.insert(&1, &true).unwrap();
    b.insert(&2, &false).unwrap();
    assert_eq!(
        b.values().collect::<Result<Vec<_>, _>>().unwrap(),
        [true, false]
    );
    let f: DiskStore<i64, f64> = DiskStore::open(p("f.db")).unwrap();
    for (i, x) in [
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-300,
        f64::MAX,
        f64::MIN_POSITIVE,
    ]
    .into_iter()
    .enumerate()
    {
        f.insert(&(i as i64), &x).unwrap();
        assert_eq!(f.get(&(i as i64)).unwrap().unwrap().to_bits(), x.to_bits());
    }
    // SQLite keeps an integral REAL as an integer on disk, so -0.0 comes back as 0.0
    // (the same happens in the original Python library).
    f.insert(&10, &-0.0).unwrap();
    assert_eq!(f.get(&10).unwrap().unwrap().to_bits(), 0.0f64.to_bits());
    let by: DiskStore<i64, Vec<u8>> = DiskStore::open(p("by.db")).unwrap();
    by.insert(&1, &vec![]).unwrap();
    by.insert(&2, &vec![0, 255]).unwrap();
    assert_eq!(by.get(&1).unwrap(), Some(vec![]));
    assert_eq!(by.get(&2).unwrap(), Some(vec![0, 255]));
    let i: DiskStore<i64, i64> = DiskStore::open(p("i.db")).unwrap();
    i.insert(&1, &i64::MIN).unwrap();
    assert_eq!(i.get(&1).unwrap(), Some(i64::MIN));
    let t: DiskStore<i64, String> = DiskStore::open(p("t.db")).unwrap();
    t.insert(&1, &String::new()).unwrap();
    assert_eq!(t.get(&1).unwrap(), Some(String::new()));
}

#[test]
fn decode_errors_name_the_column() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("p.db");
    let s: DiskStore<String, Person> = DiskStore::open(&path).unwrap();
    s.insert("a", &person(1)).unwrap();
    s.insert("b", &person(2)).unwrap();
    s.insert("c", &person(3)).unwrap();
    raw(
        &path,
        "UPDATE people SET years = 'not a number' WHERE _key = 'a';
         UPDATE people SET tags = '{broken' WHERE _key = 'b';
         UPDATE people SET active = 7 WHERE _key = 'c';",
    );
    let column_of = |key: &str| match s.get(key) {
        Err(Error::Decode { column, message }) => (column, message),
        other => panic!("{key}: expected a decode error, got {other:?}"),
    };
    let (column, message) = column_of("a");
    assert_eq!(column, "years");
    assert!(message.contains("TEXT"), "{message}");
    assert_eq!(column_of("b").0, "tags");
    assert_eq!(column_of("c").0, "active");
    // Iteration reports the same error rather than skipping the row.
    let first_err = s.iter().find_map(Result::err).unwrap();
    assert!(matches!(first_err, Error::Decode { .. }), "{first_err}");
    // A key of the wrong type (bytes in a TEXT column keep their type) is a decode error
    // on `_key`.
    raw(
        &path,
        "INSERT INTO people SELECT X'05', name, years, score, active, nickname, photo, tags FROM people WHERE _key = 'c'",
    );
    let ks: Vec<Result<String, Error>> = s.keys().collect();
    assert!(
        ks.iter()
            .any(|r| matches!(r, Err(Error::Decode { column, .. }) if column == "_key"))
    );
}

#[test]
fn builder_sets_table_and_key_type() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("b.db");
    let s: DiskStore<String, i64> = DiskStore::builder(&path)
        .table("custom \"quoted\" name")
        .key_type(ColumnType::Blob)
        .open()
        .unwrap();
    s.insert("a", &1).unwrap();
    let cols = columns(&path, "custom \"quoted\" name");
    assert_eq!(cols[0].0, "_key");
    assert_eq!(cols[0].1, "BLOB");
    assert_eq!(cols[1].0, "value");
    // The record's own table name is the default, the builder's wins over it.
    let p: DiskStore<String, Person> = DiskStore::builder(&path).table("staff").open().unwrap();
    assert_eq!(p.table().spec().name, "staff");
    p.insert("x", &person(1)).unwrap();
    assert_eq!(s.get("a").unwrap(), Some(1));
    let plain: DiskStore<String, i64> = DiskStore::open(&path).unwrap();
    assert_eq!(plain.table().spec().name, "DiskStore");
}

#[test]
fn builder_pragmas_reach_every_connection() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("b.db");
    let s: DiskStore<String, i64> = DiskStore::builder(&path)
        .pragma("cache_size", -1234)
        .pragma("synchronous", 2)
        .timeout(Duration::from_millis(1500))
        .open()
        .unwrap();
    let read = |sql: &str| -> i64 {
        s.table()
            .with_connection(|c| Ok(c.query_row(sql, [], |r| r.get(0))?))
            .unwrap()
    };
    assert_eq!(read("PRAGMA cache_size"), -1234);
    assert_eq!(read("PRAGMA synchronous"), 2);
    assert_eq!(read("PRAGMA page_size"), 4096);
    assert_eq!(s.table().timeout(), Duration::from_millis(1500));
    let s2 = s.clone();
    let from_thread = std::thread::spawn(move || {
        s2.table()
            .with_connection(|c| Ok(c.query_row("PRAGMA cache_size", [], |r| r.get::<_, i64>(0))?))
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(from_thread, -1234);
    let journal: String = s
        .table()
        .with_connection(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn builder_refuses_pragmas_that_smuggle_sql() {
    let dir = TempDir::new().unwrap();
    let r: Result<DiskStore<String, i64>, _> = DiskStore::builder(dir.path().join("x.db"))
        .pragma("cache_size", "1; DROP TABLE DiskStore")
        .open();
    assert!(matches!(r, Err(Error::Usage(_))), "{:?}", r.err());
}
