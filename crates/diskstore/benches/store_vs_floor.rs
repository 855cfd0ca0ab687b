//! Each store operation beside the same operation done with plain rusqlite (the "floor"):
//! the same table, the same SQL texts, the same pragmas, `prepare_cached`, in the same run.
//!
//! Workload after `reference/baseline.md`: text keys, 1 KiB blob values, a table of
//! [`ROWS`] rows. Every module holds one operation with two cases, `ours` and `floor`;
//! read the ratio `ours / floor` of their medians. Cases named `autocommit_*` run each call
//! as its own transaction; `in_txn_*` run inside one open transaction.
//!
//! Run: `cargo bench -p diskstore --bench store_vs_floor` (add `-- --max-time 2` to shorten).

use std::cell::Cell;

use diskstore::rusqlite::{Connection, OptionalExtension};
use diskstore::{DEFAULT_PRAGMAS, DiskStore};
use divan::{Bencher, black_box, counter::ItemsCount};
use tempfile::TempDir;

fn main() {
    divan::main();
}

/// Rows in the table before each benchmark.
const ROWS: usize = 20_000;
/// Entries per bulk transaction.
const BULK: usize = 1_000;
/// The store table (the default of [`DiskStore`]).
const TABLE: &str = "DiskStore";

const CREATE: &str = r#"CREATE TABLE IF NOT EXISTS "DiskStore" (_key TEXT PRIMARY KEY NOT NULL, "value" BLOB NOT NULL)"#;
const GET: &str = r#"SELECT _key, "value" FROM "DiskStore" WHERE _key = ?1"#;
const CONTAINS: &str = r#"SELECT 1 FROM "DiskStore" WHERE _key = ?1"#;
const COUNT: &str = r#"SELECT COUNT(*) FROM "DiskStore""#;
const UPSERT: &str = r#"INSERT INTO "DiskStore" (_key, "value") VALUES (?1, ?2) ON CONFLICT(_key) DO UPDATE SET "value" = excluded."value""#;
const REMOVE: &str = r#"DELETE FROM "DiskStore" WHERE _key = ?1 RETURNING _key, "value""#;
const SCAN: &str = r#"SELECT _key, "value" FROM "DiskStore" ORDER BY rowid"#;

type Store = DiskStore<String, Vec<u8>>;

fn key(i: usize) -> String {
    format!("key-{i:08}")
}

fn value(i: usize) -> Vec<u8> {
    (0..1024).map(|j| (i + j) as u8).collect()
}

/// A store with [`ROWS`] entries, in its own folder.
fn ours() -> (TempDir, Store) {
    let dir = TempDir::new().unwrap();
    let store: Store = DiskStore::open(dir.path().join("ours.db")).unwrap();
    assert_eq!(store.table().spec().name, TABLE);
    store.extend((0..ROWS).map(|i| (key(i), value(i)))).unwrap();
    (dir, store)
}

/// A plain connection with the store's pragmas and table, and the same [`ROWS`] entries.
fn floor() -> (TempDir, Connection) {
    let dir = TempDir::new().unwrap();
    let conn = Connection::open(dir.path().join("floor.db")).unwrap();
    conn.set_prepared_statement_cache_capacity(64);
    for (name, v) in DEFAULT_PRAGMAS {
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

fn floor_get(conn: &Connection, k: &str) -> Option<Vec<u8>> {
    let mut st = conn.prepare_cached(GET).unwrap();
    st.query_row([k], |r| Ok(r.get_ref(1)?.as_blob()?.to_vec()))
        .optional()
        .unwrap()
}

fn floor_upsert(conn: &Connection, k: &str, v: &[u8]) {
    let mut st = conn.prepare_cached(UPSERT).unwrap();
    st.execute((k, v)).unwrap();
}

/// Cycles through the stored keys, made before timing.
fn stored_keys() -> impl FnMut() -> String {
    let next = Cell::new(0usize);
    move || {
        let i = next.get();
        next.set((i + 7919) % ROWS);
        key(i)
    }
}

/// Keys never stored before in this run.
fn fresh_keys(prefix: &'static str) -> impl FnMut() -> String {
    let next = Cell::new(0usize);
    move || {
        let i = next.get();
        next.set(i + 1);
        format!("{prefix}-{i:010}")
    }
}

mod autocommit_get {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| black_box(s.get(k.as_str()).unwrap().unwrap()));
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| black_box(floor_get(&c, k).unwrap()));
    }
}

mod autocommit_get_miss {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        b.with_inputs(fresh_keys("miss"))
            .bench_local_refs(|k| assert!(s.get(k.as_str()).unwrap().is_none()));
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        b.with_inputs(fresh_keys("miss"))
            .bench_local_refs(|k| assert!(floor_get(&c, k).is_none()));
    }
}

mod autocommit_contains {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| assert!(s.contains_key(k.as_str()).unwrap()));
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        b.with_inputs(stored_keys()).bench_local_refs(|k| {
            let mut st = c.prepare_cached(CONTAINS).unwrap();
            assert!(st.exists([k.as_str()]).unwrap());
        });
    }
}

mod autocommit_len {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        b.bench_local(|| assert!(s.len().unwrap() >= ROWS as u64));
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        b.bench_local(|| {
            let mut st = c.prepare_cached(COUNT).unwrap();
            let n: i64 = st.query_row([], |r| r.get(0)).unwrap();
            assert!(n >= ROWS as i64);
        });
    }
}

mod autocommit_insert {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let v = value(1);
        b.with_inputs(fresh_keys("new"))
            .bench_local_refs(|k| s.insert(k.as_str(), &v).unwrap());
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        let v = value(1);
        b.with_inputs(fresh_keys("new"))
            .bench_local_refs(|k| floor_upsert(&c, k, &v));
    }
}

mod autocommit_insert_overwrite {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let v = value(2);
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| s.insert(k.as_str(), &v).unwrap());
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        let v = value(2);
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| floor_upsert(&c, k, &v));
    }
}

mod autocommit_remove {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let v = value(3);
        let mut fresh = fresh_keys("gone");
        b.with_inputs(|| {
            let k = fresh();
            s.insert(k.as_str(), &v).unwrap();
            k
        })
        .bench_local_refs(|k| assert!(s.remove(k.as_str()).unwrap().is_some()));
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        let v = value(3);
        let mut fresh = fresh_keys("gone");
        b.with_inputs(|| {
            let k = fresh();
            floor_upsert(&c, &k, &v);
            k
        })
        .bench_local_refs(|k| {
            let mut st = c.prepare_cached(REMOVE).unwrap();
            let mut rows = st.query([k.as_str()]).unwrap();
            let mut old = None;
            while let Some(r) = rows.next().unwrap() {
                old = Some(r.get_ref(1).unwrap().as_blob().unwrap().to_vec());
            }
            assert!(old.is_some());
        });
    }
}

/// Per item: the whole table in insertion order, keys and values copied out.
mod autocommit_iterate {
    use super::*;

    #[divan::bench(sample_count = 20)]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        b.counter(ItemsCount::new(ROWS)).bench_local(|| {
            let mut n = 0;
            for item in s.iter() {
                black_box(item.unwrap());
                n += 1;
            }
            assert_eq!(n, ROWS);
        });
    }

    #[divan::bench(sample_count = 20)]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        b.counter(ItemsCount::new(ROWS)).bench_local(|| {
            let mut st = c.prepare_cached(SCAN).unwrap();
            let mut rows = st.query([]).unwrap();
            let mut n = 0;
            while let Some(r) = rows.next().unwrap() {
                let k = r.get_ref(0).unwrap().as_str().unwrap().to_owned();
                let v = r.get_ref(1).unwrap().as_blob().unwrap().to_vec();
                black_box((k, v));
                n += 1;
            }
            assert_eq!(n, ROWS);
        });
    }
}

/// Per item: [`BULK`] new entries upserted in one transaction (`extend`).
mod in_txn_bulk_insert {
    use super::*;

    fn batch(next: &mut impl FnMut() -> String) -> Vec<(String, Vec<u8>)> {
        let v = value(4);
        (0..BULK).map(|_| (next(), v.clone())).collect()
    }

    #[divan::bench(sample_count = 20)]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let mut fresh = fresh_keys("bulk");
        b.counter(ItemsCount::new(BULK))
            .with_inputs(|| batch(&mut fresh))
            .bench_local_refs(|items| {
                let n = s
                    .extend(items.iter().map(|(k, v)| (k.as_str(), v)))
                    .unwrap();
                assert_eq!(n, BULK);
            });
    }

    #[divan::bench(sample_count = 20)]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        let mut fresh = fresh_keys("bulk");
        b.counter(ItemsCount::new(BULK))
            .with_inputs(|| batch(&mut fresh))
            .bench_local_refs(|items| {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                for (k, v) in items.iter() {
                    floor_upsert(&c, k, v);
                }
                c.execute_batch("COMMIT").unwrap();
            });
    }
}

/// Point reads inside one open write transaction (no per-call lock system calls).
mod in_txn_get {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let tx = s.transaction().unwrap();
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| black_box(s.get(k.as_str()).unwrap().unwrap()));
        tx.rollback().unwrap();
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| black_box(floor_get(&c, k).unwrap()));
        c.execute_batch("ROLLBACK").unwrap();
    }
}

/// Single upserts of new keys inside one open write transaction.
mod in_txn_insert {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let v = value(5);
        let tx = s.transaction().unwrap();
        b.with_inputs(fresh_keys("txn"))
            .bench_local_refs(|k| s.insert(k.as_str(), &v).unwrap());
        tx.rollback().unwrap();
    }

    #[divan::bench]
    fn floor(b: Bencher) {
        let (_d, c) = super::floor();
        let v = value(5);
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        b.with_inputs(fresh_keys("txn"))
            .bench_local_refs(|k| floor_upsert(&c, k, &v));
        c.execute_batch("ROLLBACK").unwrap();
    }
}
