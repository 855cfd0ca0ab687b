//! The benchmark workload shared by `store_vs_floor` (wall clock, divan) and `icount`
//! (instruction counts under callgrind): a store of [`ROWS`] text keys with 1 KiB blob
//! values, and the same table driven through plain rusqlite with the same SQL and
//! pragmas (the "floor").

#![allow(dead_code)] // each benchmark uses a different part

use std::cell::Cell;

use diskstore::rusqlite::{Connection, OptionalExtension};
use diskstore::{DEFAULT_PRAGMAS, DiskStore};
use tempfile::TempDir;

/// Rows in the table before each benchmark.
pub const ROWS: usize = 20_000;
/// Entries per bulk transaction.
pub const BULK: usize = 1_000;
/// The store table (the default of [`DiskStore`]).
pub const TABLE: &str = "DiskStore";

pub const CREATE: &str = r#"CREATE TABLE IF NOT EXISTS "DiskStore" (_key TEXT PRIMARY KEY NOT NULL, "value" BLOB NOT NULL)"#;
pub const GET: &str = r#"SELECT _key, "value" FROM "DiskStore" WHERE _key = ?1"#;
pub const CONTAINS: &str = r#"SELECT 1 FROM "DiskStore" WHERE _key = ?1"#;
pub const COUNT: &str = r#"SELECT COUNT(*) FROM "DiskStore""#;
pub const UPSERT: &str = r#"INSERT INTO "DiskStore" (_key, "value") VALUES (?1, ?2) ON CONFLICT(_key) DO UPDATE SET "value" = excluded."value""#;
pub const REMOVE: &str = r#"DELETE FROM "DiskStore" WHERE _key = ?1 RETURNING _key, "value""#;
pub const SCAN: &str = r#"SELECT _key, "value" FROM "DiskStore" ORDER BY rowid"#;

pub type Store = DiskStore<String, Vec<u8>>;

pub fn key(i: usize) -> String {
    format!("key-{i:08}")
}

pub fn value(i: usize) -> Vec<u8> {
    (0..1024).map(|j| (i + j) as u8).collect()
}

/// The page size of new files when `DISKSTORE_BENCH_PAGE_SIZE` is set (to compare page
/// sizes with the same harness), else the default.
fn page_size() -> Option<u32> {
    let v = std::env::var("DISKSTORE_BENCH_PAGE_SIZE").ok()?;
    Some(v.parse().expect("DISKSTORE_BENCH_PAGE_SIZE is a number"))
}

/// A store with [`ROWS`] entries, in its own folder.
pub fn ours() -> (TempDir, Store) {
    let dir = TempDir::new().unwrap();
    let mut builder = DiskStore::builder(dir.path().join("ours.db"));
    if let Some(p) = page_size() {
        builder = builder.pragma("page_size", p);
    }
    let store: Store = builder.open().unwrap();
    assert_eq!(store.table().spec().name, TABLE);
    store.extend((0..ROWS).map(|i| (key(i), value(i)))).unwrap();
    (dir, store)
}

/// A plain connection with the store's pragmas and table, and the same [`ROWS`] entries.
pub fn floor() -> (TempDir, Connection) {
    let dir = TempDir::new().unwrap();
    let conn = Connection::open(dir.path().join("floor.db")).unwrap();
    conn.set_prepared_statement_cache_capacity(64);
    for (name, v) in DEFAULT_PRAGMAS {
        let v = match page_size() {
            Some(p) if *name == "page_size" => p.to_string(),
            _ => v.to_string(),
        };
        conn.execute_batch(&format!("PRAGMA {name} = {v}")).unwrap();
    }
    conn.execute_batch(CREATE).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..ROWS {
        floor_upsert(&conn, &key(i), &value(i));
    }
    conn.execute_batch("COMMIT").unwrap();
    (dir, conn)
}

pub fn floor_get(conn: &Connection, k: &str) -> Option<Vec<u8>> {
    let mut st = conn.prepare_cached(GET).unwrap();
    st.query_row([k], |r| Ok(r.get_ref(1)?.as_blob()?.to_vec()))
        .optional()
        .unwrap()
}

pub fn floor_upsert(conn: &Connection, k: &str, v: &[u8]) {
    let mut st = conn.prepare_cached(UPSERT).unwrap();
    st.execute((k, v)).unwrap();
}

/// Cycles through the stored keys, made before timing.
pub fn stored_keys() -> impl FnMut() -> String {
    let next = Cell::new(0usize);
    move || {
        let i = next.get();
        next.set((i + 7919) % ROWS);
        key(i)
    }
}

/// Keys never stored before in this run.
pub fn fresh_keys(prefix: &'static str) -> impl FnMut() -> String {
    let next = Cell::new(0usize);
    move || {
        let i = next.get();
        next.set(i + 1);
        format!("{prefix}-{i:010}")
    }
}

/// The floor of `contains_key`.
pub fn floor_contains(conn: &Connection, k: &str) -> bool {
    let mut st = conn.prepare_cached(CONTAINS).unwrap();
    st.exists([k]).unwrap()
}

/// The floor of `len`.
pub fn floor_len(conn: &Connection) -> u64 {
    let mut st = conn.prepare_cached(COUNT).unwrap();
    st.query_row([], |r| r.get::<_, i64>(0)).unwrap() as u64
}

/// The floor of `remove`: one `DELETE … RETURNING`, stepped to completion.
pub fn floor_remove(conn: &Connection, k: &str) -> Option<Vec<u8>> {
    let mut st = conn.prepare_cached(REMOVE).unwrap();
    let mut rows = st.query([k]).unwrap();
    let mut old = None;
    while let Some(r) = rows.next().unwrap() {
        old = Some(r.get_ref(1).unwrap().as_blob().unwrap().to_vec());
    }
    old
}

/// The floor of iterating: one statement over the table in rowid order, keys and values
/// copied out; returns how many rows it saw.
pub fn floor_scan(conn: &Connection, mut each: impl FnMut(String, Vec<u8>)) -> usize {
    let mut st = conn.prepare_cached(SCAN).unwrap();
    let mut rows = st.query([]).unwrap();
    let mut n = 0;
    while let Some(r) = rows.next().unwrap() {
        let k = r.get_ref(0).unwrap().as_str().unwrap().to_owned();
        let v = r.get_ref(1).unwrap().as_blob().unwrap().to_vec();
        each(k, v);
        n += 1;
    }
    n
}

/// The floor of `extend`: upserts in one `BEGIN IMMEDIATE … COMMIT`.
pub fn floor_bulk(conn: &Connection, items: &[(String, Vec<u8>)]) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    for (k, v) in items {
        floor_upsert(conn, k, v);
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// `n` new entries with keys from `next`.
pub fn batch(next: &mut impl FnMut() -> String, n: usize) -> Vec<(String, Vec<u8>)> {
    let v = value(4);
    (0..n).map(|_| (next(), v.clone())).collect()
}
