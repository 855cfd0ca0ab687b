//! Each store operation beside the same operation done with plain rusqlite (the "floor"):
//! the same table, the same SQL texts, the same pragmas, `prepare_cached`, in the same run.
//!
//! Workload after `reference/baseline.md`: text keys, 1 KiB blob values, a table of
//! [`ROWS`] rows. Every module holds one operation with two cases, `ours` and `floor`;
//! read the ratio `ours / floor` of their medians. Cases named `autocommit_*` run each call
//! as its own transaction; `in_txn_*` run inside one open transaction.
//!
//! Run: `cargo bench -p diskstore --bench store_vs_floor` (add `-- --max-time 2` to shorten).

mod workload;

use divan::{Bencher, black_box, counter::ItemsCount};
use workload::*;

fn main() {
    divan::main();
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
        b.with_inputs(stored_keys())
            .bench_local_refs(|k| assert!(floor_contains(&c, k)));
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
        b.bench_local(|| assert!(floor_len(&c) >= ROWS as u64));
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
        .bench_local_refs(|k| assert!(floor_remove(&c, k).is_some()));
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
            let n = floor_scan(&c, |k, v| {
                black_box((k, v));
            });
            assert_eq!(n, ROWS);
        });
    }
}

/// Per item: [`BULK`] new entries upserted in one transaction (`extend`).
mod in_txn_bulk_insert {
    use super::*;

    #[divan::bench(sample_count = 20)]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let mut fresh = fresh_keys("bulk");
        b.counter(ItemsCount::new(BULK))
            .with_inputs(|| batch(&mut fresh, BULK))
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
            .with_inputs(|| batch(&mut fresh, BULK))
            .bench_local_refs(|items| floor_bulk(&c, items));
    }
}

/// Point reads inside one open write transaction (no per-call lock system calls).
mod in_txn_get {
    use super::*;

    #[divan::bench]
    fn ours(b: Bencher) {
        let (_d, s) = super::ours();
        let tx = s.begin().unwrap();
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
        let tx = s.begin().unwrap();
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
