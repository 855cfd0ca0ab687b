//! Bulk-load probe for issue #13: rows/s of `DiskStore::extend` (keys `k%010d`, 100-byte
//! values, batches of 100,000), and of a raw rusqlite loop as the floor, interleaved.
//!
//! `cargo run --release -p diskstore --example scale_bulk -- [rows] [page_size] [side]`
//!
//! `side` is `both` (default: two interleaved rounds), `ours`, `floor` or `floor64` (the floor with
//! one multi-row statement per 64 rows): one pass of that side only, for callgrind.

use std::time::Instant;

use diskstore::{DiskStore, rusqlite};

fn ours(dir: &std::path::Path, rows: usize, page: u32) -> f64 {
    let s: DiskStore<String, Vec<u8>> = DiskStore::builder(dir.join("ours.db"))
        .pragma("page_size", page)
        .open()
        .unwrap();
    let value = vec![b'v'; 100];
    let t = Instant::now();
    for start in (0..rows).step_by(100_000) {
        let end = rows.min(start + 100_000);
        s.extend((start..end).map(|i| (format!("k{i:010}"), &value)))
            .unwrap();
    }
    rows as f64 / t.elapsed().as_secs_f64()
}

fn floor(dir: &std::path::Path, rows: usize, page: u32) -> f64 {
    let mut c = rusqlite::Connection::open(dir.join("floor.db")).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page}; PRAGMA journal_mode=wal; PRAGMA synchronous=1; \
         PRAGMA cache_size=-32768; PRAGMA mmap_size=268435456; \
         CREATE TABLE t (_key TEXT PRIMARY KEY NOT NULL, value BLOB)"
    ))
    .unwrap();
    let value = vec![b'v'; 100];
    let t = Instant::now();
    for start in (0..rows).step_by(100_000) {
        let end = rows.min(start + 100_000);
        let tx = c.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO t (_key, value) VALUES (?1, ?2) \
                     ON CONFLICT(_key) DO UPDATE SET value = excluded.value",
                )
                .unwrap();
            for i in start..end {
                st.execute(rusqlite::params![format!("k{i:010}"), &value])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows as f64 / t.elapsed().as_secs_f64()
}

/// The floor with one statement per `chunk` rows (a multi-row `VALUES` upsert): what the
/// per-statement overhead costs.
fn floor_multi(dir: &std::path::Path, rows: usize, page: u32, chunk: usize) -> f64 {
    let mut c = rusqlite::Connection::open(dir.join("floor_multi.db")).unwrap();
    c.execute_batch(&format!(
        "PRAGMA page_size={page}; PRAGMA journal_mode=wal; PRAGMA synchronous=1; \
         PRAGMA cache_size=-32768; PRAGMA mmap_size=268435456; \
         CREATE TABLE t (_key TEXT PRIMARY KEY NOT NULL, value BLOB)"
    ))
    .unwrap();
    let values = vec!["(?, ?)"; chunk].join(", ");
    let sql = format!(
        "INSERT INTO t (_key, value) VALUES {values} \
         ON CONFLICT(_key) DO UPDATE SET value = excluded.value"
    );
    let value = vec![b'v'; 100];
    let t = Instant::now();
    for start in (0..rows).step_by(100_000) {
        let end = rows.min(start + 100_000);
        let tx = c.transaction().unwrap();
        {
            let mut st = tx.prepare_cached(&sql).unwrap();
            let keys: Vec<String> = (start..end).map(|i| format!("k{i:010}")).collect();
            let mut one = tx
                .prepare_cached(
                    "INSERT INTO t (_key, value) VALUES (?1, ?2) \
                     ON CONFLICT(_key) DO UPDATE SET value = excluded.value",
                )
                .unwrap();
            for group in keys.chunks(chunk) {
                if group.len() < chunk {
                    for k in group {
                        one.execute(rusqlite::params![k, &value]).unwrap();
                    }
                    continue;
                }
                for (j, k) in group.iter().enumerate() {
                    st.raw_bind_parameter(2 * j + 1, k).unwrap();
                    st.raw_bind_parameter(2 * j + 2, &value).unwrap();
                }
                st.raw_execute().unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let page: u32 = args.next().map_or(16384, |a| a.parse().unwrap());
    let side = args.next().unwrap_or_else(|| "both".into());
    if side != "both" {
        let dir = tempfile::tempdir().unwrap();
        let r = match side.as_str() {
            "ours" => ours(dir.path(), rows, page),
            "floor" => floor(dir.path(), rows, page),
            "floor64" => floor_multi(dir.path(), rows, page, 64),
            other => panic!("side is both, ours or floor, not {other}"),
        };
        println!("{side}: rows {rows} page {page}: {r:.0} rows/s");
        return;
    }
    for round in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let f = floor(dir.path(), rows, page);
        let o = ours(dir.path(), rows, page);
        println!(
            "round {round}: rows {rows} page {page}: floor {:.0} rows/s, ours {:.0} rows/s ({:.2}x)",
            f,
            o,
            f / o
        );
    }
}
