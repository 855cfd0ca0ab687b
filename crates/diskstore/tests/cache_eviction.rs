//! Size and count limits: the order in which each policy evicts, expired entries going
//! first, the new entry never evicting itself, policy `none` refusing writes, and exact
//! byte accounting.

use std::sync::Arc;
use std::time::Duration;

use diskstore::{DiskCache, Error, EvictionPolicy, ManualClock};

fn open(
    dir: &tempfile::TempDir,
    policy: EvictionPolicy,
    count_limit: Option<u64>,
    size_limit: Option<u64>,
) -> (DiskCache<String, Vec<u8>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
    let mut b = DiskCache::builder(dir.path().join("c.db"))
        .eviction_policy(policy)
        .clock(clock.clone());
    if let Some(n) = count_limit {
        b = b.count_limit(n);
    }
    if let Some(n) = size_limit {
        b = b.size_limit(n);
    }
    (b.open().unwrap(), clock)
}

fn keys(c: &DiskCache<String, Vec<u8>>) -> Vec<String> {
    let mut k: Vec<String> = c.keys().collect::<Result<_, _>>().unwrap();
    k.sort();
    k
}

fn set(c: &DiskCache<String, Vec<u8>>, k: &str) {
    c.set(k, &vec![0u8; 10], None).unwrap();
}

#[test]
fn least_recently_stored_evicts_the_oldest_store_and_a_restore_counts_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, Some(3), None);
    for k in ["a", "b", "c"] {
        set(&c, k);
    }
    assert!(c.get("a").unwrap().is_some()); // a read does not protect under LRS
    set(&c, "d");
    assert_eq!(keys(&c), ["b", "c", "d"]);
    set(&c, "b"); // stored again: now the newest
    set(&c, "e");
    assert_eq!(keys(&c), ["b", "d", "e"]);
}

#[test]
fn least_recently_used_evicts_the_entry_untouched_longest() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(&dir, EvictionPolicy::LeastRecentlyUsed, Some(3), None);
    for k in ["a", "b", "c"] {
        set(&c, k);
    }
    assert!(c.get("a").unwrap().is_some());
    set(&c, "d");
    assert_eq!(keys(&c), ["a", "c", "d"]);
    assert!(c.get("c").unwrap().is_some());
    set(&c, "e"); // order of use now: a, d, c, e → a goes
    assert_eq!(keys(&c), ["c", "d", "e"]);
    // A miss does not count as a use of anything.
    assert!(c.get("zz").unwrap().is_none());
    set(&c, "f");
    assert_eq!(keys(&c), ["c", "e", "f"]);
}

#[test]
fn least_frequently_used_evicts_the_entry_read_least_and_never_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(&dir, EvictionPolicy::LeastFrequentlyUsed, Some(3), None);
    for k in ["a", "b", "c"] {
        set(&c, k);
    }
    for _ in 0..3 {
        c.get("a").unwrap();
    }
    c.get("c").unwrap();
    set(&c, "d"); // b has 0 reads
    assert_eq!(keys(&c), ["a", "c", "d"]);
    set(&c, "e"); // d has 0 reads too, but is older than the new e
    assert_eq!(keys(&c), ["a", "c", "e"]);
    set(&c, "f"); // e (0 reads) goes before c (1 read)
    assert_eq!(keys(&c), ["a", "c", "f"]);
}

#[test]
fn expired_entries_are_evicted_before_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(&dir, EvictionPolicy::LeastRecentlyStored, Some(3), None);
    set(&c, "a");
    c.set("b", &vec![0; 10], Some(Duration::from_secs(5)))
        .unwrap();
    set(&c, "c");
    clock.advance(Duration::from_secs(5));
    set(&c, "d");
    assert_eq!(keys(&c), ["a", "c", "d"]);
}

#[test]
fn policy_none_refuses_writes_beyond_the_limit_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = open(&dir, EvictionPolicy::None, Some(2), None);
    set(&c, "a");
    c.set("b", &vec![1; 10], Some(Duration::from_secs(5)))
        .unwrap();
    let err = c.set("c", &vec![0; 10], None).unwrap_err();
    assert!(matches!(err, Error::Full(_)), "{err}");
    assert_eq!(keys(&c), ["a", "b"]);
    // Replacing an existing key needs no room.
    c.set("a", &vec![2; 10], None).unwrap();
    assert_eq!(c.get("a").unwrap(), Some(vec![2; 10]));
    // Once b has expired, its room is taken back.
    clock.advance(Duration::from_secs(5));
    set(&c, "c");
    assert_eq!(keys(&c), ["a", "c"]);
    assert!(matches!(c.add("d", &vec![0; 1], None), Err(Error::Full(_))));
}

#[test]
fn an_entry_larger_than_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, None, Some(100));
    set(&c, "a");
    let err = c.set("big", &vec![0; 98], None).unwrap_err();
    assert!(matches!(err, Error::Full(_)), "{err}");
    assert_eq!(keys(&c), ["a"]);
    c.set("fits", &vec![0; 96], None).unwrap(); // 4 + 96 = 100 bytes
    assert_eq!(keys(&c), ["fits"]);
    assert_eq!(c.volume().unwrap(), 100);
}

#[test]
fn the_size_limit_holds_after_every_write_and_volume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, None, Some(1_000));
    let mut expected_live: Vec<(String, usize)> = Vec::new();
    for i in 0..200usize {
        let k = format!("key{i}");
        let len = (i * 37) % 300;
        c.set(&k, &vec![7; len], None).unwrap();
        expected_live.retain(|(kk, _)| *kk != k);
        expected_live.push((k.clone(), len));
        // Oldest first until the total fits: what least-recently-stored must do.
        let total = |v: &Vec<(String, usize)>| v.iter().map(|(k, l)| k.len() + l).sum::<usize>();
        while total(&expected_live) > 1_000 {
            expected_live.remove(0);
        }
        assert_eq!(c.volume().unwrap() as usize, total(&expected_live));
        assert!(c.volume().unwrap() <= 1_000);
    }
    let mut want: Vec<String> = expected_live.into_iter().map(|(k, _)| k).collect();
    want.sort();
    assert_eq!(keys(&c), want);
}

#[test]
fn deletes_pops_and_clear_keep_the_byte_total_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, None, None);
    c.set("aa", &vec![0; 10], None).unwrap();
    c.set("bbb", &vec![0; 20], None).unwrap();
    assert_eq!(c.volume().unwrap(), 12 + 23);
    c.set("aa", &vec![0; 1], None).unwrap();
    assert_eq!(c.volume().unwrap(), 3 + 23);
    assert_eq!(c.pop("bbb").unwrap(), Some(vec![0; 20]));
    assert_eq!(c.volume().unwrap(), 3);
    c.delete("aa").unwrap();
    assert_eq!(c.volume().unwrap(), 0);
    c.set("x", &vec![0; 5], None).unwrap();
    c.clear().unwrap();
    assert_eq!(c.volume().unwrap(), 0);
    assert_eq!(c.len().unwrap(), 0);
}

#[test]
fn the_total_stays_exact_across_handles_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, None, Some(500));
    let (b, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, None, Some(500));
    for i in 0..50 {
        let c = if i % 2 == 0 { &a } else { &b };
        c.set(&format!("k{i}"), &vec![0; 40], None).unwrap();
    }
    assert!(a.volume().unwrap() <= 500);
    assert_eq!(a.volume().unwrap(), b.volume().unwrap());
    let n = a.len().unwrap();
    drop((a, b));
    let (c, _) = open(&dir, EvictionPolicy::LeastRecentlyStored, None, Some(500));
    assert_eq!(c.len().unwrap(), n);
    let sizes: u64 = c
        .iter()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.len() + v.len()) as u64
        })
        .sum();
    assert_eq!(c.volume().unwrap(), sizes);
}
