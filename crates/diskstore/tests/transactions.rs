//! Write transactions: commit, rollback on drop/panic/explicit call, nesting, isolation
//! from other threads, and the busy timeout.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use diskstore::{DiskStore, Error, rusqlite};
use tempfile::TempDir;

type Store = DiskStore<String, i64>;

fn open(dir: &TempDir) -> Store {
    DiskStore::open(dir.path().join("t.db")).unwrap()
}

fn items(s: &Store) -> Vec<(String, i64)> {
    s.iter().collect::<Result<_, _>>().unwrap()
}

#[test]
fn commit_keeps_and_drop_rolls_back() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.insert("before", &0).unwrap();
    {
        let tx = s.transaction().unwrap();
        assert!(tx.is_outermost());
        s.insert("a", &1).unwrap();
        s.remove("before").unwrap();
        // dropped without commit
    }
    assert_eq!(items(&s), [("before".into(), 0)]);

    let tx = s.transaction().unwrap();
    s.insert("a", &1).unwrap();
    tx.rollback().unwrap();
    assert_eq!(items(&s), [("before".into(), 0)]);

    let tx = s.transaction().unwrap();
    s.insert("a", &1).unwrap();
    s.insert("before", &5).unwrap();
    tx.commit().unwrap();
    drop(s);
    assert_eq!(items(&open(&dir)), [("before".into(), 5), ("a".into(), 1)]);
}

#[test]
fn reads_inside_see_the_transactions_writes() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let tx = s.transaction().unwrap();
    s.extend([("a", 1), ("b", 2)]).unwrap();
    assert_eq!(s.get("a").unwrap(), Some(1));
    assert!(s.contains_key("b").unwrap());
    assert_eq!(s.len().unwrap(), 2);
    assert_eq!(items(&s), [("a".into(), 1), ("b".into(), 2)]);
    assert_eq!(s.get_many(&["b", "a"]).unwrap(), [Some(2), Some(1)]);
    assert_eq!(s.get_or_insert("c", &3).unwrap(), 3);
    assert_eq!(s.pop_last().unwrap(), Some(("c".into(), 3)));
    assert_eq!(s.range("a"..).count(), 2);
    drop(tx);
    assert!(s.is_empty().unwrap());
}

#[test]
fn nested_transactions_join_the_outer_one() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let other = s.clone();

    // Inner commit, outer rollback: nothing is kept.
    let outer = s.transaction().unwrap();
    s.insert("a", &1).unwrap();
    let inner = other.transaction().unwrap();
    assert!(!inner.is_outermost());
    other.insert("b", &2).unwrap();
    inner.commit().unwrap();
    assert_eq!(s.len().unwrap(), 2);
    drop(outer);
    assert!(s.is_empty().unwrap());

    // Inner dropped, outer commit: the outer guard decides, so both writes are kept.
    let outer = s.transaction().unwrap();
    s.insert("a", &1).unwrap();
    {
        let _inner = s.transaction().unwrap();
        s.insert("b", &2).unwrap();
    }
    assert_eq!(s.table().depth(), 1);
    outer.commit().unwrap();
    assert_eq!(s.table().depth(), 0);
    assert_eq!(items(&s), [("a".into(), 1), ("b".into(), 2)]);

    // Three levels deep.
    let t1 = s.transaction().unwrap();
    let t2 = s.transaction().unwrap();
    let t3 = s.transaction().unwrap();
    assert_eq!(s.table().depth(), 3);
    s.insert("c", &3).unwrap();
    t3.commit().unwrap();
    t2.commit().unwrap();
    t1.commit().unwrap();
    assert_eq!(s.get("c").unwrap(), Some(3));
}

#[test]
fn failed_operations_leave_the_transaction_usable() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<String, f64> = DiskStore::open(dir.path().join("f.db")).unwrap();
    let tx = s.transaction().unwrap();
    s.insert("a", &1.0).unwrap();
    assert!(matches!(
        s.insert("b", &f64::NAN),
        Err(Error::InvalidValue(_))
    ));
    assert!(s.extend([("c", 1.0), ("d", f64::NAN)]).is_err());
    s.insert("e", &2.0).unwrap();
    tx.commit().unwrap();
    let keys: Vec<String> = s.keys().collect::<Result<_, _>>().unwrap();
    // The failed extend joined the outer transaction; its own partial write ("c")
    // belongs to that transaction and is committed with it.
    assert_eq!(keys, ["a", "c", "e"]);
}

#[test]
fn a_panic_inside_rolls_back() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _tx = s.transaction().unwrap();
        s.insert("a", &1).unwrap();
        panic!("boom");
    }));
    assert!(r.is_err());
    assert_eq!(s.table().depth(), 0);
    assert!(s.is_empty().unwrap());
    // The writer lock was released: another thread can write at once.
    let s2 = s.clone();
    thread::spawn(move || s2.insert("b", &2).unwrap())
        .join()
        .unwrap();
    assert_eq!(items(&s), [("b".into(), 2)]);
}

#[test]
fn other_threads_see_only_committed_data_and_wait_to_write() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.insert("x", &0).unwrap();
    let tx = s.transaction().unwrap();
    s.insert("x", &1).unwrap();
    s.insert("y", &1).unwrap();

    let reader = s.clone();
    let seen = thread::spawn(move || (reader.get("x").unwrap(), reader.len().unwrap()))
        .join()
        .unwrap();
    assert_eq!(seen, (Some(0), 1));

    let (started, wait_started) = mpsc::channel();
    let writer = s.clone();
    let blocked = thread::spawn(move || {
        started.send(()).unwrap();
        let t0 = Instant::now();
        writer.insert("z", &2).unwrap();
        t0.elapsed()
    });
    wait_started.recv().unwrap();
    thread::sleep(Duration::from_millis(150));
    assert!(!s.contains_key("z").unwrap(), "the writer did not wait");
    tx.commit().unwrap();
    let waited = blocked.join().unwrap();
    assert!(
        waited >= Duration::from_millis(100),
        "waited only {waited:?}"
    );
    assert_eq!(
        items(&s),
        [("x".into(), 1), ("y".into(), 1), ("z".into(), 2)]
    );
}

#[test]
fn a_writer_in_this_process_past_the_timeout_is_busy() {
    let dir = TempDir::new().unwrap();
    let s: Store = DiskStore::builder(dir.path().join("t.db"))
        .timeout(Duration::from_millis(200))
        .open()
        .unwrap();
    let tx = s.transaction().unwrap();
    let s2 = s.clone();
    let r = thread::spawn(move || (s2.insert("a", &1), s2.transaction().map(drop)))
        .join()
        .unwrap();
    assert!(matches!(r.0, Err(Error::Busy { .. })), "{:?}", r.0);
    assert!(r.0.as_ref().unwrap_err().is_busy());
    assert!(matches!(r.1, Err(Error::Busy { .. })), "{:?}", r.1);
    tx.commit().unwrap();
    s.insert("a", &1).unwrap();
}

#[test]
fn a_lock_held_by_another_connection_past_the_timeout_is_busy() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("t.db");
    let s: Store = DiskStore::builder(&path)
        .timeout(Duration::from_millis(200))
        .open()
        .unwrap();
    s.insert("a", &1).unwrap();
    // A separate connection, as another process would have, holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t0 = Instant::now();
    let r = s.insert("b", &2);
    let waited = t0.elapsed();
    match &r {
        Err(Error::Busy { path: p, .. }) => assert_eq!(p, &path),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(150),
        "gave up after {waited:?}"
    );
    assert!(matches!(s.transaction().map(drop), Err(Error::Busy { .. })));
    // Reads are not blocked by a writer in WAL mode.
    assert_eq!(s.get("a").unwrap(), Some(1));
    other.execute_batch("COMMIT").unwrap();
    s.insert("b", &2).unwrap();
    assert_eq!(s.len().unwrap(), 2);
}

#[test]
fn ending_a_transaction_that_is_not_open_is_a_usage_error() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    assert!(matches!(s.table().end(true, true), Err(Error::Usage(_))));
    let opened = s.table().begin().unwrap();
    assert!(opened);
    s.insert("a", &1).unwrap();
    s.table().end(opened, true).unwrap();
    assert_eq!(s.get("a").unwrap(), Some(1));
}
