//! Group commit: autocommitted writes of several threads that meet the writer lock taken
//! are applied by its holder in one transaction, each in its own savepoint. Each caller
//! gets its own outcome, and none is told of success before the commit that keeps it.
//!
//! The tests make the grouping happen for certain, not by chance: one thread holds the
//! lock in an explicit transaction while the others queue (seen through
//! `Table::pending_writes`); when it ends, the oldest queued thread applies the group.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use diskstore::{DiskStore, Error, Result};

type Store = DiskStore<String, String>;

fn open(dir: &tempfile::TempDir) -> Store {
    DiskStore::open(dir.path().join("g.db")).unwrap()
}

/// Waits until `n` writes are queued (fails the test after 20 s).
fn wait_queued(s: &Store, n: usize) {
    let start = Instant::now();
    while s.table().pending_writes() < n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "only {} of {n} writes queued",
            s.table().pending_writes()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `ops` on their own threads one after another, each queued (behind the
/// transaction the caller holds) before the next starts, so they queue in this order.
fn queue_in_order<F>(s: &Store, ops: Vec<F>) -> Vec<thread::JoinHandle<Result<()>>>
where
    F: FnOnce(Store) -> Result<()> + Send + 'static,
{
    let already = s.table().pending_writes();
    let mut handles = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let s2 = s.clone();
        handles.push(thread::spawn(move || op(s2)));
        wait_queued(s, already + i + 1);
    }
    handles
}

fn set(key: &'static str, value: &'static str) -> Box<dyn FnOnce(Store) -> Result<()> + Send> {
    Box::new(move |s: Store| s.insert(key, &value.to_string()))
}

/// A trigger that makes SQLite refuse the row of key `bad` (a constraint error raised
/// by the statement itself).
fn refuse_key(s: &Store, bad: &str) {
    s.table()
        .with_connection(|c| {
            c.execute_batch(&format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON \"DiskStore\" WHEN NEW._key = '{bad}' \
                 BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END;"
            ))?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn many_threads_of_autocommitted_sets_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let threads = 4;
    let per = 500;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = s.clone();
            thread::spawn(move || {
                for i in 0..per {
                    s.insert(&format!("k{t}-{i}"), &format!("v{t}-{i}"))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.len().unwrap(), threads * per);
    for t in 0..threads {
        for i in 0..per {
            assert_eq!(
                s.get(&format!("k{t}-{i}")).unwrap(),
                Some(format!("v{t}-{i}"))
            );
        }
    }
    assert_eq!(s.table().pending_writes(), 0);
}

#[test]
fn queued_writes_are_applied_by_one_holder_each_with_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    refuse_key(&s, "bad");
    let tx = s.begin().unwrap();
    tx.insert("mine", &"tx".to_string()).unwrap();
    let handles = queue_in_order(
        &s,
        vec![set("a", "1"), set("bad", "2"), set("c", "3"), set("a", "4")],
    );
    // Nothing of the queue is visible, let alone acknowledged, while the lock is held.
    assert!(handles.iter().all(|h| !h.is_finished()));
    tx.commit().unwrap();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let err = results[1].as_ref().unwrap_err();
    assert!(err.to_string().contains("refused by trigger"), "{err}");
    assert!(results[2].is_ok() && results[3].is_ok());
    // The failed write undid itself alone; the later write of `a` won.
    assert_eq!(s.get("a").unwrap(), Some("4".to_string()));
    assert_eq!(s.get("bad").unwrap(), None);
    assert_eq!(s.get("c").unwrap(), Some("3".to_string()));
    assert_eq!(s.get("mine").unwrap(), Some("tx".to_string()));
    assert_eq!(s.len().unwrap(), 3);
}

#[test]
fn a_bad_key_fails_only_its_own_write() {
    let dir = tempfile::tempdir().unwrap();
    let s: DiskStore<f64, String> = DiskStore::open(dir.path().join("f.db")).unwrap();
    let tx = s.begin().unwrap();
    let mut handles = Vec::new();
    for (i, k) in [1.0, f64::NAN, 3.0].into_iter().enumerate() {
        let s2 = s.clone();
        handles.push(thread::spawn(move || s2.insert(&k, &"v".to_string())));
        let start = Instant::now();
        while s.table().pending_writes() < i + 1 {
            assert!(start.elapsed() < Duration::from_secs(20));
            thread::sleep(Duration::from_millis(1));
        }
    }
    tx.commit().unwrap();
    let r: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(r[0].is_ok() && r[2].is_ok(), "{r:?}");
    assert!(matches!(r[1], Err(Error::InvalidKey(_))), "{:?}", r[1]);
    assert_eq!(s.len().unwrap(), 2);
}

#[test]
fn a_failed_group_commit_fails_every_write_in_it() {
    let dir = tempfile::tempdir().unwrap();
    // Deferred foreign keys are checked at COMMIT: a `poison` row makes the commit itself
    // fail (with the transaction's writes all applied until then).
    let s: Store = DiskStore::builder(dir.path().join("g.db"))
        .pragma("foreign_keys", "ON")
        .open()
        .unwrap();
    s.table()
        .with_connection(|c| {
            c.execute_batch(
                "CREATE TABLE parent(id INTEGER PRIMARY KEY);
                 CREATE TABLE child(pid INTEGER REFERENCES parent(id)
                     DEFERRABLE INITIALLY DEFERRED);
                 CREATE TRIGGER poison AFTER INSERT ON \"DiskStore\"
                     WHEN NEW._key = 'poison' BEGIN INSERT INTO child VALUES (42); END;",
            )?;
            Ok(())
        })
        .unwrap();
    let tx = s.begin().unwrap();
    let handles = queue_in_order(&s, vec![set("a", "1"), set("poison", "2"), set("c", "3")]);
    tx.commit().unwrap();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
    }
    assert_eq!(
        s.len().unwrap(),
        0,
        "nothing of the failed group may be kept"
    );
    // The holder's connection is usable again, outside any transaction.
    s.insert("after", &"x".to_string()).unwrap();
    assert_eq!(s.len().unwrap(), 1);
}

#[test]
fn a_full_disk_in_a_group_acknowledges_exactly_what_was_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("seed", &"x".to_string()).unwrap();
    let tx = s.begin().unwrap();
    let big = "y".repeat(200_000);
    // Every write of the process runs on the file's one writer connection (inside a
    // transaction, `with_connection` is that connection): it may not grow the file.
    s.table()
        .with_connection(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.execute_batch(&format!("PRAGMA max_page_count = {pages}"))?;
            Ok(())
        })
        .unwrap();
    let leader = set("small", "1");
    let big2 = big.clone();
    let handles = queue_in_order(
        &s,
        vec![
            leader,
            Box::new(move |s: Store| s.insert("big", &big2)),
            set("small2", "3"),
        ],
    );
    tx.commit().unwrap();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        matches!(results[1], Err(Error::DiskFull { .. })),
        "{:?}",
        results[1]
    );
    // Whatever SQLite undid (the statement or the whole transaction), each caller was
    // told the truth: success exactly for the writes that are in the file.
    for (key, r) in ["small", "big", "small2"].iter().zip(&results) {
        assert_eq!(
            s.contains_key(*key).unwrap(),
            r.is_ok(),
            "{key}: {r:?} but stored = {}",
            s.contains_key(*key).unwrap()
        );
    }
}

#[test]
fn explicit_transactions_are_never_merged() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let tx = s.begin().unwrap();
    let s2 = s.clone();
    let other = thread::spawn(move || -> Result<()> {
        let tx2 = s2.begin()?;
        tx2.insert("t2", &"x".to_string())?;
        tx2.rollback()
    });
    let queued = queue_in_order(&s, vec![set("q", "1")]);
    // The other transaction waits for the lock, it is not queued as a grouped write.
    assert_eq!(s.table().pending_writes(), 1);
    tx.commit().unwrap();
    other.join().unwrap().unwrap();
    for h in queued {
        h.join().unwrap().unwrap();
    }
    assert_eq!(s.get("t2").unwrap(), None);
    assert_eq!(s.get("q").unwrap(), Some("1".to_string()));
}

#[test]
fn a_queued_write_times_out_and_is_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let s: Store = DiskStore::open(&path).unwrap();
    let short: Store = DiskStore::builder(&path)
        .timeout(Duration::from_millis(200))
        .open()
        .unwrap();
    let tx = s.begin().unwrap();
    let start = Instant::now();
    let h = thread::spawn(move || short.insert("late", &"x".to_string()));
    wait_queued(&s, 1);
    let r = h.join().unwrap();
    assert!(matches!(r, Err(Error::Busy { .. })), "{r:?}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(s.table().pending_writes(), 0);
    tx.commit().unwrap();
    s.insert("next", &"y".to_string()).unwrap();
    assert_eq!(s.get("late").unwrap(), None);
}

#[test]
fn a_child_forked_while_writes_are_queued_does_not_apply_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let s: Store = DiskStore::open(&path).unwrap();
    let tx = s.begin().unwrap();
    let handles = queue_in_order(&s, vec![set("a", "1"), set("b", "2")]);
    // SAFETY: the child only uses the store and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The parent's queued callers do not exist here: their writes must neither run
        // nor block this process. The parent still holds the file's lock, so the write
        // is refused (after a short timeout).
        let child: Store = DiskStore::builder(&path)
            .timeout(Duration::from_millis(100))
            .open()
            .unwrap();
        let w = child.insert("child", &"c".to_string());
        let ok = matches!(w, Err(Error::Busy { .. })) && child.table().pending_writes() == 0;
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    tx.commit().unwrap();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let mut keys: Vec<String> = s.keys().collect::<Result<_>>().unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn grouped_writes_from_many_threads_with_failures_mixed_in() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir));
    refuse_key(&s, "never");
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                let mut refused = 0;
                for i in 0..300 {
                    if i % 10 == 0 {
                        if s.insert("never", &"x".to_string()).is_err() {
                            refused += 1;
                        }
                    } else {
                        s.insert(&format!("{t}-{i}"), &i.to_string()).unwrap();
                    }
                }
                refused
            })
        })
        .collect();
    let refused: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(refused, 4 * 30);
    assert_eq!(s.len().unwrap(), 4 * 270);
    assert_eq!(s.get("never").unwrap(), None);
}

#[test]
fn transactions_are_not_starved_by_a_stream_of_grouped_writes() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            let stop = Arc::clone(&stop);
            let written = Arc::clone(&written);
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    s.insert(&format!("w{t}-{}", i % 50), &i.to_string())
                        .unwrap();
                    written.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let start = Instant::now();
    while written.load(Ordering::Relaxed) < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the writers do not write"
        );
        thread::yield_now();
    }
    // Each transaction must get the lock within the default timeout while grouped
    // writes keep coming (the queue and a waiting transaction take turns).
    for n in 0..30 {
        let tx = s.begin().unwrap();
        tx.insert(&format!("tx{n}"), &n.to_string()).unwrap();
        tx.commit().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for h in writers {
        h.join().unwrap();
    }
    for n in 0..30 {
        assert_eq!(s.get(&format!("tx{n}")).unwrap(), Some(n.to_string()));
    }
}

#[test]
fn mixed_writers_match_a_model_of_each_thread() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let handles: Vec<_> = (0..6u64)
        .map(|t| {
            let s = s.clone();
            thread::spawn(move || -> BTreeMap<String, String> {
                let mut model = BTreeMap::new();
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..400u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("t{t}-{}", x % 40);
                    match x % 7 {
                        0 => {
                            let had = s.remove(&key).unwrap().is_some();
                            assert_eq!(had, model.remove(&key).is_some());
                        }
                        1 => {
                            let added = s.add(&key, &i.to_string()).unwrap();
                            assert_eq!(added, !model.contains_key(&key));
                            model.entry(key).or_insert_with(|| i.to_string());
                        }
                        2 => {
                            // A transaction that is rolled back leaves nothing.
                            let tx = s.begin().unwrap();
                            tx.insert(&key, &"rolled back".to_string()).unwrap();
                            tx.rollback().unwrap();
                        }
                        _ => {
                            s.insert(&key, &i.to_string()).unwrap();
                            model.insert(key, i.to_string());
                        }
                    }
                }
                model
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for h in handles {
        expected.extend(h.join().unwrap());
    }
    let stored: BTreeMap<String, String> = s.iter().collect::<Result<_>>().unwrap();
    assert_eq!(stored, expected);
}
