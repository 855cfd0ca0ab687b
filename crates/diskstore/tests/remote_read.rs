//! Read-only stores by location ([`DiskRead::open_url`], [`AnyRead`]): the same reads
//! on SQLite and PostgreSQL, nothing created or migrated, and writes refused by the
//! server on PostgreSQL.

mod remote_support;

use diskstore::remote::Backend;
use diskstore::{AnyRead, DiskRead, DiskStore, Error, Record};
use remote_support::{server, unique, with_param};

/// Writes a few entries through the read-write store, then checks every read of the
/// read-only one against them.
fn reads_agree(location: &str, table: &str) -> AnyRead<String, i64> {
    let w = DiskStore::<String, i64>::builder(location)
        .table(table)
        .open_url()
        .unwrap();
    for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
        w.insert(k, &v).unwrap();
    }
    let r = DiskRead::<String, i64>::builder(location)
        .table(table)
        .open_read_only_url()
        .unwrap();
    assert_eq!(r.get("b").unwrap(), Some(2));
    assert_eq!(r.get("zz").unwrap(), None);
    assert_eq!(
        r.get_many(&["c", "x", "a"]).unwrap(),
        [Some(3), None, Some(1)]
    );
    assert!(r.contains_key("a").unwrap() && !r.contains_key("x").unwrap());
    assert_eq!(r.len().unwrap(), 3);
    assert!(!r.is_empty().unwrap());
    let keys: Vec<String> = r.keys().collect::<diskstore::Result<_>>().unwrap();
    assert_eq!(keys, ["a", "b", "c"]);
    let items: Vec<(String, i64)> = r.iter().collect::<diskstore::Result<_>>().unwrap();
    assert_eq!(items[2], ("c".to_owned(), 3));
    assert!(r.check().unwrap().is_empty());
    // It sees later writes of the read-write store.
    w.insert("d", &4).unwrap();
    assert_eq!(r.get("d").unwrap(), Some(4));
    r
}

#[derive(Record, Debug, PartialEq)]
struct Wider {
    n: i64,
    extra: String,
}

#[test]
fn read_only_on_sqlite_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let location = path.to_str().unwrap();
    let r = reads_agree(location, "t");
    assert_eq!(r.backend(), Backend::Sqlite);
    let missing = dir.path().join("missing.db");
    let err = DiskRead::<String, i64>::open_url(missing.to_str().unwrap()).err();
    assert!(matches!(err, Some(Error::NotFound { .. })), "{err:?}");
    assert!(!missing.exists(), "a read-only open created the file");
}

#[test]
fn read_only_on_postgres_creates_nothing_and_writes_nothing() {
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let table = unique("ro");
    let r = reads_agree(&url, &table);
    assert_eq!(r.backend(), Backend::Postgres);
    // The server refuses writes on the read-only sessions, even through the PgStore.
    let AnyRead::Postgres(pg) = &r else {
        panic!("not on PostgreSQL")
    };
    match pg.insert("e", &5) {
        Err(Error::Server { code, .. }) => assert_eq!(code, "25006"), // read_only_sql_transaction
        other => panic!("a write on a read-only session: {other:?}"),
    }
    assert_eq!(r.get("e").unwrap(), None);
    // A URL that sets its own session options keeps them and stays read-only.
    let with_timeout = with_param(&url, "options", "-c%20statement_timeout%3D5000");
    let r2 = DiskRead::<String, i64>::builder(&with_timeout)
        .table(&table)
        .open_read_only_url()
        .unwrap();
    assert_eq!(r2.len().unwrap(), 4);
    let AnyRead::Postgres(pg) = &r2 else {
        panic!("not on PostgreSQL")
    };
    assert!(matches!(pg.clear(), Err(Error::Server { .. })));
    assert_eq!(r2.len().unwrap(), 4);

    // Nothing is created: a missing table, or a column the record needs, is a schema
    // error (as for a file opened read-only), and the table stays missing.
    let missing = unique("nothere");
    let err = DiskRead::<String, i64>::builder(&url)
        .table(&missing)
        .open_read_only_url()
        .err();
    assert!(
        matches!(&err, Some(Error::Schema { message, .. }) if message.contains("no such table")),
        "{err:?}"
    );
    let err = DiskRead::<String, i64>::builder(&url)
        .table(&missing)
        .open_read_only_url()
        .err();
    assert!(
        matches!(err, Some(Error::Schema { .. })),
        "created: {err:?}"
    );
    let narrow = unique("narrow");
    DiskStore::<i64, i64>::builder(&url)
        .table(&narrow)
        .open_url()
        .unwrap();
    let err = DiskRead::<i64, Wider>::builder(&url)
        .table(&narrow)
        .open_read_only_url()
        .err();
    assert!(
        matches!(&err, Some(Error::Schema { column: Some(c), .. }) if c == "n"),
        "{err:?}"
    );
}

#[test]
fn entry_points_for_paths_name_the_ones_for_urls() {
    let url = "postgresql://u:pw@127.0.0.1:1/db";
    let store = DiskStore::<String, i64>::open(url)
        .err()
        .unwrap()
        .to_string();
    assert!(
        store.contains("DiskStore::open_url") && store.contains("DiskRead::open_url"),
        "{store}"
    );
    let read = DiskRead::<String, i64>::open(url)
        .err()
        .unwrap()
        .to_string();
    assert!(read.contains("DiskRead::open_url"), "{read}");
    for m in [store, read] {
        assert!(!m.contains("pw"), "the password leaked: {m}");
    }
    let err = DiskRead::<String, i64>::open_url("redis://127.0.0.1:1/0").err();
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
    let err = DiskRead::<String, i64>::builder(url)
        .pragma("cache_size", 10)
        .open_read_only_url()
        .err();
    assert!(matches!(err, Some(Error::NotSupported { .. })), "{err:?}");
}

/// `AnyStore::read_only` on `location`: the handle reads what the store wrote (and its
/// later writes), on the same backend.
fn read_only_handle_agrees(location: &str) -> AnyRead<String, i64> {
    let w = DiskStore::<String, i64>::builder(location)
        .table(unique("h"))
        .open_url()
        .unwrap();
    w.insert("a", &1).unwrap();
    let r = w.read_only().unwrap();
    assert_eq!(r.backend(), w.backend());
    assert_eq!(r.get("a").unwrap(), Some(1));
    w.insert("b", &2).unwrap();
    assert_eq!(
        r.get_many(&["b", "a", "x"]).unwrap(),
        [Some(2), Some(1), None]
    );
    assert_eq!(r.len().unwrap(), 2);
    r
}

#[test]
fn a_store_gives_a_read_only_handle_on_either_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let r = read_only_handle_agrees(path.to_str().unwrap());
    assert!(matches!(r, AnyRead::Sqlite(_)));
    let Some(url) = server("DISKSTORE_TEST_POSTGRES") else {
        return;
    };
    let r = read_only_handle_agrees(&url);
    let AnyRead::Postgres(pg) = &r else {
        panic!("not on PostgreSQL")
    };
    match pg.insert("c", &3) {
        Err(Error::Server { code, .. }) => assert_eq!(code, "25006"), // read_only_sql_transaction
        other => panic!("a write on a read-only session: {other:?}"),
    }
    assert_eq!(r.len().unwrap(), 2);
}
