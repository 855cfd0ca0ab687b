//! Expiry with an injected clock: exact boundaries, default TTLs, touch, add over expired
//! entries, len/iteration skipping expired entries, and the bounded purge on writes.

use std::sync::Arc;
use std::time::Duration;

use diskstore::{DiskCache, ManualClock, NEVER, PURGE_PER_WRITE};

const T0: Duration = Duration::from_secs(1_700_000_000);

fn cache_with(
    dir: &tempfile::TempDir,
    default_ttl: Option<Duration>,
) -> (DiskCache<String, String>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut b = DiskCache::builder(dir.path().join("c.db")).clock(clock.clone());
    if let Some(ttl) = default_ttl {
        b = b.default_ttl(ttl);
    }
    (b.open().unwrap(), clock)
}

fn s(x: &str) -> String {
    x.to_string()
}

fn raw_rows(c: &DiskCache<String, String>) -> u64 {
    c.cache_table().table().len().unwrap()
}

#[test]
fn an_entry_is_live_until_exactly_its_ttl_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    c.set("k", &s("v"), Some(Duration::from_secs(10))).unwrap();
    clock.advance(Duration::from_secs(10) - Duration::from_micros(1));
    assert_eq!(c.get("k").unwrap(), Some(s("v")));
    assert!(c.contains_key("k").unwrap());
    assert_eq!(c.len().unwrap(), 1);
    clock.advance(Duration::from_micros(1));
    assert_eq!(c.get("k").unwrap(), None);
    assert!(!c.contains_key("k").unwrap());
    assert_eq!(c.len().unwrap(), 0);
    // Still stored until purged, but never returned.
    assert_eq!(raw_rows(&c), 1);
    assert_eq!(c.pop("k").unwrap(), None);
    assert_eq!(raw_rows(&c), 0);
}

#[test]
fn without_a_ttl_entries_live_forever_and_the_default_applies_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, Some(Duration::from_secs(5)));
    c.set("default", &s("d"), None).unwrap();
    c.set("never", &s("n"), Some(NEVER)).unwrap();
    c.set("long", &s("l"), Some(Duration::from_secs(100)))
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(c.get("default").unwrap(), None);
    assert_eq!(c.get("never").unwrap(), Some(s("n")));
    assert_eq!(c.get("long").unwrap(), Some(s("l")));
    clock.advance(Duration::from_secs(1_000_000_000));
    assert_eq!(c.get("never").unwrap(), Some(s("n")));
    assert_eq!(c.get("long").unwrap(), None);

    let dir2 = tempfile::tempdir().unwrap();
    let (plain, clock2) = cache_with(&dir2, None);
    plain.set("k", &s("v"), None).unwrap();
    clock2.advance(Duration::from_secs(1_000_000_000));
    assert_eq!(plain.get("k").unwrap(), Some(s("v")));
}

#[test]
fn a_zero_ttl_entry_is_expired_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _clock) = cache_with(&dir, None);
    c.set("k", &s("v"), Some(Duration::ZERO)).unwrap();
    assert_eq!(c.get("k").unwrap(), None);
}

#[test]
fn touch_restarts_the_ttl_of_live_entries_only() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    c.set("k", &s("v"), Some(Duration::from_secs(10))).unwrap();
    clock.advance(Duration::from_secs(8));
    assert!(c.touch("k", Some(Duration::from_secs(10))).unwrap());
    clock.advance(Duration::from_secs(9));
    assert_eq!(c.get("k").unwrap(), Some(s("v")));
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.get("k").unwrap(), None);
    assert!(!c.touch("k", Some(Duration::from_secs(10))).unwrap());
    assert!(!c.touch("absent", None).unwrap());
    // Touch with NEVER removes the expiry.
    c.set("p", &s("v"), Some(Duration::from_secs(1))).unwrap();
    assert!(c.touch("p", Some(NEVER)).unwrap());
    clock.advance(Duration::from_secs(100));
    assert_eq!(c.get("p").unwrap(), Some(s("v")));
}

#[test]
fn add_refuses_live_entries_and_replaces_expired_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    assert!(
        c.add("k", &s("first"), Some(Duration::from_secs(10)))
            .unwrap()
    );
    assert!(!c.add("k", &s("second"), None).unwrap());
    assert_eq!(c.get("k").unwrap(), Some(s("first")));
    clock.advance(Duration::from_secs(10));
    assert!(c.add("k", &s("third"), None).unwrap());
    assert_eq!(c.get("k").unwrap(), Some(s("third")));
}

#[test]
fn delete_reports_only_live_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    c.set("a", &s("1"), Some(Duration::from_secs(1))).unwrap();
    c.set("b", &s("2"), None).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(!c.delete("a").unwrap());
    assert!(c.delete("b").unwrap());
    assert!(!c.delete("b").unwrap());
    assert_eq!(raw_rows(&c), 0);
}

#[test]
fn iteration_and_len_skip_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    for i in 0..600 {
        let ttl = if i % 3 == 0 {
            Some(Duration::from_secs(1))
        } else {
            None
        };
        c.set(&format!("k{i:03}"), &format!("v{i}"), ttl).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.len().unwrap(), 400);
    let keys: Vec<String> = c.keys().collect::<Result<_, _>>().unwrap();
    let want: Vec<String> = (0..600)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("k{i:03}"))
        .collect();
    assert_eq!(keys, want);
    let rev: Vec<String> = c.keys().rev().collect::<Result<_, _>>().unwrap();
    assert_eq!(rev, want.iter().rev().cloned().collect::<Vec<_>>());
    let items: Vec<(String, String)> = c.iter().take(2).collect::<Result<_, _>>().unwrap();
    assert_eq!(items, [(s("k001"), s("v1")), (s("k002"), s("v2"))]);
}

#[test]
fn writes_purge_a_bounded_number_of_expired_entries_and_expire_purges_all() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    for i in 0..100 {
        c.set(&format!("old{i}"), &s("x"), Some(Duration::from_secs(1)))
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(raw_rows(&c), 100);
    c.set("new", &s("y"), None).unwrap();
    let per_write = PURGE_PER_WRITE as u64;
    assert_eq!(raw_rows(&c), 100 - per_write + 1);
    c.set("new2", &s("y"), None).unwrap();
    assert_eq!(raw_rows(&c), 100 - 2 * per_write + 2);
    assert_eq!(c.expire().unwrap(), 100 - 2 * per_write);
    assert_eq!(raw_rows(&c), 2);
    assert_eq!(c.expire().unwrap(), 0);
    assert_eq!(c.volume().unwrap(), 2 * ("new".len() as u64 + 1) + 1);
}

#[test]
fn expiry_survives_reopening_with_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (c, clock) = cache_with(&dir, None);
    c.set("k", &s("v"), Some(Duration::from_secs(30))).unwrap();
    drop(c);
    let other: DiskCache<String, String> = DiskCache::builder(dir.path().join("c.db"))
        .clock(clock.clone())
        .open()
        .unwrap();
    assert_eq!(other.get("k").unwrap(), Some(s("v")));
    clock.advance(Duration::from_secs(30));
    assert_eq!(other.get("k").unwrap(), None);
}
