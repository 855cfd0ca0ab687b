//! `bench-scale`: the scale benchmark's workload (bench/scale.py) on our Rust `DiskStore`, at
//! one store size: bulk load in batches of 100,000 (`extend`, building each batch's pairs
//! inside the timing), 20,000 random-hit gets, 9 `len()`, then autocommitted sets of new
//! keys. Prints one JSON object with the same fields as the Python workers'.

use std::path::Path;
use std::time::Instant;

use diskstore::DiskStore;

use crate::fail::{Fail, Outcome};

/// Rows per `extend` batch, as the Python workload's `update()` batches.
const BATCH: u64 = 100_000;

/// The i-th key of the workload (`k%010d`).
fn key(i: u64) -> String {
    format!("k{i:010}")
}

/// A tiny deterministic generator (xorshift64*), so that runs probe the same keys.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The q-quantile (0..1) of sorted nanosecond samples, in µs (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).round() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Nanoseconds since `t`.
fn since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs the workload at size `n` in a new store inside `dir`; returns the figures as JSON.
pub fn run(n: u64, sets: u64, gets: u64, dir: &Path) -> Outcome<serde_json::Value> {
    if n == 0 || gets == 0 || sets == 0 {
        return Err(Fail::usage("--n, --sets and --gets must be at least 1"));
    }
    let tmp = tempfile::Builder::new()
        .prefix("diskstore-scale-")
        .tempdir_in(dir)
        .map_err(|e| Fail::at(dir, format!("cannot make a temporary folder: {e}")))?;
    let path = tmp.path().join("store.db");
    let err = |e: diskstore::Error| Fail::engine(&path, e);
    let store: DiskStore<String, Vec<u8>> = DiskStore::open(&path).map_err(err)?;
    let value: Vec<u8> = (0..100u8).collect();

    let t = Instant::now();
    for start in (0..n).step_by(BATCH as usize) {
        let stop = (start + BATCH).min(n);
        let batch: Vec<(String, &Vec<u8>)> = (start..stop).map(|i| (key(i), &value)).collect();
        store.extend(batch).map_err(err)?;
    }
    let load_s = t.elapsed().as_secs_f64();
    if store.len().map_err(err)? != n {
        return Err(Fail::new("the store lost rows while loading"));
    }

    let mut rng = Rng(n | 1);
    let probe: Vec<String> = (0..gets).map(|_| key(rng.below(n))).collect();
    let mut samples = Vec::with_capacity(probe.len());
    for k in &probe {
        let t = Instant::now();
        let v = store.get(k.as_str()).map_err(err)?;
        samples.push(since(t));
        if v.is_none() {
            return Err(Fail::new(format!("{k} is missing")));
        }
    }
    samples.sort_unstable();
    let (get50, get99, get999) = (
        quantile(&samples, 0.5),
        quantile(&samples, 0.99),
        quantile(&samples, 0.999),
    );

    let mut lens = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let count = store.len().map_err(err)?;
        lens.push(since(t));
        if count != n {
            return Err(Fail::new(format!("len() = {count}, expected {n}")));
        }
    }
    lens.sort_unstable();

    let mut samples = Vec::with_capacity(sets as usize);
    for i in 0..sets {
        let k = key(n + i);
        let t = Instant::now();
        store.insert(k.as_str(), &value).map_err(err)?;
        samples.push(since(t));
    }
    samples.sort_unstable();
    let wal = tmp.path().join("store.db-wal");
    let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    Ok(serde_json::json!({
        "system": "diskstore-rust",
        "n": n,
        "describe": format!("diskstore (Rust) {}", env!("CARGO_PKG_VERSION")),
        "bulk_rows_per_s": n as f64 / load_s,
        "bulk_s": load_s,
        "get_p50_us": get50,
        "get_p99_us": get99,
        "get_p999_us": get999,
        "len_us": lens[lens.len() / 2] as f64 / 1000.0,
        "set_p50_us": quantile(&samples, 0.5),
        "set_p99_us": quantile(&samples, 0.99),
        "set_p999_us": quantile(&samples, 0.999),
        "set_max_us": *samples.last().unwrap_or(&0) as f64 / 1000.0,
        "sets": sets,
        "wal_bytes_after_sets": wal_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let s: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        assert_eq!(quantile(&s, 0.5), 500.0);
        assert_eq!(quantile(&s, 0.999), 999.0);
        assert_eq!(quantile(&[7000], 0.99), 7.0);
    }

    #[test]
    fn a_small_run_reports_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(1000, 50, 100, dir.path()).unwrap();
        for field in ["bulk_rows_per_s", "get_p50_us", "len_us", "set_max_us"] {
            assert!(out[field].as_f64().unwrap() > 0.0, "{field}: {out}");
        }
        assert_eq!(out["n"], 1000);
    }
}
