//! Side-by-side timing of `DiskCache` against `DiskStore` on one workload, in one run:
//! 20,000 text keys, 1 KiB values, one autocommitted write per `set`/`delete`/`incr`.
//! Prints the median per-operation time of each and the cache/store ratio.
//!
//! `cargo run --release -p diskstore --example cache_bench [-- ROUNDS]`
//!
//! `cache_bench count <cache-set|store-set> N` runs only N writes of new keys (after a warm-up
//! that does not depend on N), for instruction counts under callgrind: the difference of two
//! runs with different N, divided by their difference, is the cost of one write, checkpoints
//! on the background thread included (`crates/diskstore/examples/cache_icount.sh`).
//!
//! Each round runs every phase for both, alternating which goes first; the table shows the
//! median over rounds of each phase's median per-op time. Absolute times move a lot on
//! shared machines; the ratios measured side by side are the result.

use std::time::{Duration, Instant};

use diskstore::{DiskCache, DiskStore};

const N: usize = 20_000;
const VALUE: usize = 1024;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `f` once per index and returns the median.
fn per_op(n: usize, mut f: impl FnMut(usize)) -> Duration {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i);
        times.push(t.elapsed());
    }
    median(times)
}

struct Phase {
    name: &'static str,
    store: Vec<Duration>,
    cache: Vec<Duration>,
}

/// The `count` mode (see the module doc).
fn count(op: &str, n: usize) -> diskstore::Result<()> {
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let value = vec![0xa5u8; VALUE];
    let warm: Vec<String> = (0..200).map(|i| format!("warm-{i:08}")).collect();
    let keys: Vec<String> = (0..n).map(|i| format!("key-{i:08}")).collect();
    match op {
        "cache-set" => {
            let cache: DiskCache<String, Vec<u8>> = DiskCache::builder(dir.path().join("cache.db"))
                .size_limit(1 << 30)
                .open()?;
            for k in &warm {
                cache.set(k, &value, None)?;
            }
            for k in &keys {
                cache.set(k, &value, None)?;
            }
        }
        "store-set" => {
            let store: DiskStore<String, Vec<u8>> = DiskStore::open(dir.path().join("store.db"))?;
            for k in &warm {
                store.insert(k, &value)?;
            }
            for k in &keys {
                store.insert(k, &value)?;
            }
        }
        other => panic!("unknown op {other}"),
    }
    Ok(())
}

fn main() -> diskstore::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("count") {
        let n = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
        return count(args.get(1).map_or("cache-set", String::as_str), n);
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let keys: Vec<String> = (0..N).map(|i| format!("key-{i:08}")).collect();
    let missing: Vec<String> = (0..N).map(|i| format!("absent-{i:08}")).collect();
    let value = vec![0xa5u8; VALUE];
    let names = ["set", "get", "get-miss", "incr", "delete"];
    let mut phases: Vec<Phase> = names
        .iter()
        .map(|&name| Phase {
            name,
            store: Vec::new(),
            cache: Vec::new(),
        })
        .collect();
    for round in 0..rounds {
        let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
        let store: DiskStore<String, Vec<u8>> = DiskStore::open(dir.path().join("store.db"))?;
        let counters: DiskStore<String, i64> = DiskStore::open(dir.path().join("counters.db"))?;
        let cache: DiskCache<String, Vec<u8>> = DiskCache::builder(dir.path().join("cache.db"))
            .size_limit(1 << 30)
            .open()?;
        let cache_counters: DiskCache<String, i64> =
            DiskCache::open(dir.path().join("cache_counters.db"))?;
        let store_first = round % 2 == 0;
        let mut run = |idx: usize, s: &mut dyn FnMut(usize), c: &mut dyn FnMut(usize)| {
            let n = if idx == 3 { N / 4 } else { N };
            if store_first {
                phases[idx].store.push(per_op(n, s));
                phases[idx].cache.push(per_op(n, c));
            } else {
                phases[idx].cache.push(per_op(n, c));
                phases[idx].store.push(per_op(n, s));
            }
        };
        run(
            0,
            &mut |i| store.insert(&keys[i], &value).unwrap(),
            &mut |i| cache.set(&keys[i], &value, None).unwrap(),
        );
        run(
            1,
            &mut |i| assert!(store.get(&keys[i]).unwrap().is_some()),
            &mut |i| assert!(cache.get(&keys[i]).unwrap().is_some()),
        );
        run(
            2,
            &mut |i| assert!(store.get(&missing[i]).unwrap().is_none()),
            &mut |i| assert!(cache.get(&missing[i]).unwrap().is_none()),
        );
        // The store's equivalent of incr: read, add, write in one transaction.
        run(
            3,
            &mut |i| {
                let k = &keys[i % 64];
                let tx = counters.begin().unwrap();
                let n = counters.get(k).unwrap().unwrap_or(0) + 1;
                counters.insert(k, &n).unwrap();
                tx.commit().unwrap();
            },
            &mut |i| {
                cache_counters.incr(&keys[i % 64], 1, 0).unwrap();
            },
        );
        run(
            4,
            &mut |i| assert!(store.remove(&keys[i]).unwrap().is_some()),
            &mut |i| assert!(cache.delete(&keys[i]).unwrap()),
        );
    }
    println!(
        "DiskCache vs DiskStore, {N} text keys, {VALUE}-byte values, {rounds} rounds \
         (median µs per op; ratio = cache / store)"
    );
    println!("| op | DiskStore | DiskCache | ratio |");
    println!("|---|---:|---:|---:|");
    for p in phases {
        let s = median(p.store.clone()).as_secs_f64() * 1e6;
        let c = median(p.cache.clone()).as_secs_f64() * 1e6;
        let store_op = match p.name {
            "set" => "insert",
            "delete" => "remove",
            "incr" => "get+insert in a transaction",
            other => other,
        };
        println!(
            "| {} (store: {store_op}) | {s:.2} | {c:.2} | {:.2}× |",
            p.name,
            c / s
        );
    }
    Ok(())
}
