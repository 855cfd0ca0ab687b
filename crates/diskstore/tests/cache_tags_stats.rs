//! Tags and `evict`, hit/miss statistics (kept across handles and reopening), counters,
//! `pop`, transactions and `get_or_insert_with` (with and without the compute lease).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use diskstore::{DiskCache, Error, Stats};

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn evict_removes_exactly_the_tagged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, String> = DiskCache::open(dir.path().join("c.db")).unwrap();
    for i in 0..2500 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        c.set_tagged(&format!("k{i}"), &s("v"), None, tag).unwrap();
    }
    c.set("untagged", &s("v"), None).unwrap();
    assert_eq!(c.evict("even").unwrap(), 1250);
    assert_eq!(c.evict("even").unwrap(), 0);
    assert_eq!(c.evict("nope").unwrap(), 0);
    assert_eq!(c.len().unwrap(), 1251);
    assert_eq!(c.get("k1").unwrap(), Some(s("v")));
    assert_eq!(c.get("k2").unwrap(), None);
    // Storing again without a tag drops the old tag.
    c.set("k1", &s("w"), None).unwrap();
    assert_eq!(c.evict("odd").unwrap(), 1249);
    assert_eq!(c.get("k1").unwrap(), Some(s("w")));
}

#[test]
fn stats_count_hits_and_misses_across_handles_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let a: DiskCache<String, String> = DiskCache::open(&path).unwrap();
    let b: DiskCache<String, String> = DiskCache::open(&path).unwrap();
    a.set("k", &s("v"), None).unwrap();
    a.get("k").unwrap();
    a.get("k").unwrap();
    a.get("x").unwrap();
    b.get("k").unwrap();
    b.get("y").unwrap();
    // Each handle's counts reach the file on its next write, stats() call or drop.
    assert_eq!(a.stats().unwrap(), Stats { hits: 2, misses: 1 });
    drop(b);
    assert_eq!(a.stats().unwrap(), Stats { hits: 3, misses: 2 });
    drop(a);
    let c: DiskCache<String, String> = DiskCache::open(&path).unwrap();
    assert_eq!(c.stats().unwrap(), Stats { hits: 3, misses: 2 });
    assert_eq!(c.reset_stats().unwrap(), Stats { hits: 3, misses: 2 });
    assert_eq!(c.stats().unwrap(), Stats::default());
    // contains_key is not a lookup for the stats.
    c.contains_key("k").unwrap();
    assert_eq!(c.stats().unwrap(), Stats::default());
}

#[test]
fn stats_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, String> = DiskCache::builder(dir.path().join("c.db"))
        .stats(false)
        .open()
        .unwrap();
    c.get("k").unwrap();
    c.set("k", &s("v"), None).unwrap();
    c.get("k").unwrap();
    assert_eq!(c.stats().unwrap(), Stats::default());
}

#[test]
fn counters_increment_decrement_and_refuse_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, i64> = DiskCache::open(dir.path().join("c.db")).unwrap();
    assert_eq!(c.incr("n", 1, 0).unwrap(), 1);
    assert_eq!(c.incr("n", 5, 0).unwrap(), 6);
    assert_eq!(c.decr("n", 2, 0).unwrap(), 4);
    assert_eq!(c.decr("m", 1, 10).unwrap(), 9);
    assert_eq!(c.get("n").unwrap(), Some(4));
    c.set("big", &i64::MAX, None).unwrap();
    assert!(matches!(c.incr("big", 1, 0), Err(Error::InvalidValue(_))));
    assert_eq!(c.get("big").unwrap(), Some(i64::MAX));
    assert!(matches!(
        c.decr("n", i64::MIN, 0),
        Err(Error::InvalidValue(_))
    ));
    assert_eq!(c.volume().unwrap(), 3 * 8 + 1 + 1 + 3);
}

#[test]
fn incr_on_a_non_integer_value_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, String> = DiskCache::open(dir.path().join("c.db")).unwrap();
    c.set("t", &s("text"), None).unwrap();
    let err = c.cache_table().incr(
        diskstore::KeyRef::Text("t"),
        1,
        0,
        diskstore::Ttl::Default,
        &[],
    );
    assert!(matches!(err, Err(Error::InvalidValue(_))), "{err:?}");
}

#[test]
fn a_rolled_back_transaction_leaves_entries_and_total_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, String> = DiskCache::open(dir.path().join("c.db")).unwrap();
    c.set("a", &s("1"), None).unwrap();
    {
        let _tx = c.transaction().unwrap();
        c.set("b", &s("2"), None).unwrap();
        c.delete("a").unwrap();
        assert_eq!(c.len().unwrap(), 1);
    }
    assert_eq!(c.get("a").unwrap(), Some(s("1")));
    assert_eq!(c.get("b").unwrap(), None);
    assert_eq!(c.volume().unwrap(), 2);
    let tx = c.transaction().unwrap();
    c.set("b", &s("2"), None).unwrap();
    tx.commit().unwrap();
    assert_eq!(c.volume().unwrap(), 4);
}

#[test]
fn get_or_insert_with_computes_on_a_miss_only_and_keeps_errors_out() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, String> = DiskCache::open(dir.path().join("c.db")).unwrap();
    let calls = AtomicUsize::new(0);
    let compute = || -> Result<String, Error> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(s("computed"))
    };
    assert_eq!(
        c.get_or_insert_with("k", None, compute).unwrap(),
        "computed"
    );
    assert_eq!(
        c.get_or_insert_with("k", None, compute).unwrap(),
        "computed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let failed: Result<String, Error> =
        c.get_or_insert_with("e", None, || Err(Error::Usage("no".into())));
    assert!(failed.is_err());
    assert_eq!(c.get("e").unwrap(), None);
}

#[test]
fn the_compute_lease_lets_one_of_many_threads_compute() {
    let dir = tempfile::tempdir().unwrap();
    let c: DiskCache<String, String> = DiskCache::builder(dir.path().join("c.db"))
        .compute_lease(Duration::from_secs(60))
        .open()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (c, calls, start) = (c.clone(), calls.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                c.get_or_insert_with("slow", None, || -> Result<String, Error> {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Long enough for the other threads to miss and queue on the lease.
                    std::thread::sleep(Duration::from_millis(100));
                    Ok(s("value"))
                })
                .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "value");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The lease was given back: a later miss computes again.
    c.delete("slow").unwrap();
    let again = c
        .get_or_insert_with("slow", None, || -> Result<String, Error> { Ok(s("new")) })
        .unwrap();
    assert_eq!(again, "new");
}
