//! One writer connection per file: every thread's writes (autocommitted, grouped, and
//! explicit transactions) run on the file's shared writer connection while that thread
//! holds the writer lock; reads outside a write transaction stay on each thread's own.
//!
//! These tests check what that must not change: each write is all-or-nothing, explicit
//! transactions of two threads serialize and see their own writes, no other thread reads
//! uncommitted data, `len()` stays exact, and fork and `close_all` at any moment lose
//! nothing.

use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use diskstore::{DiskStore, Error, Query, Result};

type Store = DiskStore<String, String>;

fn open(dir: &tempfile::TempDir) -> Store {
    DiskStore::open(dir.path().join("w.db")).unwrap()
}

/// A trigger that makes SQLite refuse every row whose key starts with `bad`.
fn refuse_bad_keys(s: &Store) {
    s.table()
        .with_connection(|c| {
            c.execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON \"DiskStore\" \
                 WHEN NEW._key LIKE 'bad%' BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )?;
            Ok(())
        })
        .unwrap();
}

fn sorted_keys(s: &Store) -> Vec<String> {
    let mut keys: Vec<String> = s.keys().collect::<Result<_>>().unwrap();
    keys.sort();
    keys
}

#[test]
fn writes_from_many_threads_are_each_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    refuse_bad_keys(&s);
    let threads = 6;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (s, start) = (s.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut expected = Vec::new();
                for i in 0..60 {
                    let key = format!("t{t}-{i:03}");
                    match i % 4 {
                        // A single autocommitted write (grouped when the lock is taken).
                        0 => {
                            s.insert(&key, &key).unwrap();
                            expected.push(key);
                        }
                        // A batch of three: all of it or none of it.
                        1 => {
                            let rows: Vec<(String, String)> = (0..3)
                                .map(|j| (format!("{key}.{j}"), key.clone()))
                                .collect();
                            s.extend(rows.iter().map(|(k, v)| (k.as_str(), v.clone())))
                                .unwrap();
                            expected.extend(rows.into_iter().map(|(k, _)| k));
                        }
                        // A batch whose last row is refused: nothing of it stays.
                        2 => {
                            let rows = [
                                (format!("{key}.a"), key.clone()),
                                (format!("bad-{key}"), key.clone()),
                            ];
                            let r = s.extend(rows.iter().map(|(k, v)| (k.as_str(), v.clone())));
                            assert!(r.is_err(), "a refused row must fail its batch");
                        }
                        // A refused single write fails alone.
                        _ => {
                            let r = s.insert(&format!("bad-{key}"), &key);
                            let e = r.expect_err("a refused write fails");
                            assert!(e.to_string().contains("refused"), "{e}");
                        }
                    }
                }
                expected
            })
        })
        .collect();
    let mut expected: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    expected.sort();
    assert_eq!(sorted_keys(&s), expected);
    assert_eq!(s.len().unwrap(), expected.len() as u64);
    assert!(s.check().unwrap().is_empty());
}

#[test]
fn explicit_transactions_of_two_threads_serialize_and_see_their_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("n", &"0".to_string()).unwrap();
    // Each thread increments `n` 50 times, each time reading it inside its transaction
    // and writing it back: lost updates would show if the transactions interleaved.
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let s = s.clone();
            thread::spawn(move || {
                for i in 0..50 {
                    let tx = s.begin().unwrap();
                    let n: u64 = tx.get("n").unwrap().unwrap().parse().unwrap();
                    tx.insert("n", &(n + 1).to_string()).unwrap();
                    let mine = format!("t{t}-{i}");
                    tx.insert(&mine, &"x".to_string()).unwrap();
                    // Its own writes, read back inside it (on the writer connection).
                    assert_eq!(tx.get("n").unwrap(), Some((n + 1).to_string()));
                    assert!(tx.contains_key(&mine).unwrap());
                    if i % 5 == 4 {
                        tx.rollback().unwrap();
                        // (Not a count: the other thread may commit rows meanwhile.)
                        assert!(
                            !s.contains_key(&mine).unwrap(),
                            "the rolled-back row is gone"
                        );
                    } else {
                        tx.commit().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // 2 × 50 transactions, 2 × 10 rolled back.
    assert_eq!(s.get("n").unwrap(), Some("80".to_string()));
    assert_eq!(s.len().unwrap(), 1 + 80);
}

#[test]
fn other_threads_never_read_uncommitted_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("seed", &"s".to_string()).unwrap();
    let (written, written_rx) = mpsc::channel();
    let (checked, checked_rx) = mpsc::channel::<()>();
    let writer = {
        let s = s.clone();
        thread::spawn(move || {
            let tx = s.begin().unwrap();
            for i in 0..100 {
                tx.insert(&format!("u{i:03}"), &"x".to_string()).unwrap();
            }
            assert_eq!(tx.len().unwrap(), 101);
            written.send(()).unwrap();
            checked_rx.recv().unwrap();
            // Rolled back: nobody may ever have seen these rows.
            tx.rollback().unwrap();
            let tx = s.begin().unwrap();
            tx.insert("committed", &"c".to_string()).unwrap();
            tx.commit().unwrap();
        })
    };
    written_rx.recv().unwrap();
    // The writer's transaction is open, with 100 rows in it, on the shared connection.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || {
                for _ in 0..20 {
                    assert_eq!(s.len().unwrap(), 1);
                    assert!(!s.contains_key("u000").unwrap());
                    assert_eq!(s.get("u099").unwrap(), None);
                    assert_eq!(sorted_keys(&s), ["seed"]);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(s.len().unwrap(), 1);
    checked.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(sorted_keys(&s), ["committed", "seed"]);
    assert_eq!(s.len().unwrap(), 2);
}

#[test]
fn len_stays_exact_when_other_threads_write_on_the_shared_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    refuse_bad_keys(&s);
    let threads = 4;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (s, start) = (s.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for i in 0..40 {
                    let key = format!("t{t}-{i}");
                    s.insert(&key, &"v".to_string()).unwrap();
                    // Refused writes (rolled back to their savepoint when grouped) and
                    // deletes, mixed in, while every thread keeps asking len().
                    assert!(s.insert(&format!("bad{t}-{i}"), &"v".to_string()).is_err());
                    if i % 3 == 0 {
                        assert!(s.remove(&key).unwrap().is_some());
                    }
                    let n = s.len().unwrap();
                    assert!(n <= (threads * 40) as u64, "len {n}");
                    if i % 7 == 0 {
                        let tx = s.begin().unwrap();
                        let before = tx.len().unwrap();
                        tx.insert(&format!("gone{t}-{i}"), &"v".to_string())
                            .unwrap();
                        assert_eq!(tx.len().unwrap(), before + 1);
                        tx.rollback().unwrap();
                    }
                }
                // Only this thread's own rows, counted from here: 40 minus the deleted.
                let mine = s
                    .keys()
                    .filter(|k| k.as_ref().unwrap().starts_with(&format!("t{t}-")))
                    .count();
                assert_eq!(mine, 40 - 14);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let counted = s.keys().count() as u64;
    assert_eq!(counted, (threads * (40 - 14)) as u64);
    // Every thread's cached count, asked again, is exact.
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || s.len().unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), counted);
    }
    assert_eq!(s.len().unwrap(), counted);
}

#[test]
fn a_query_open_when_its_transaction_ends_keeps_reading_while_others_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let tx = s.begin().unwrap();
    for i in 0..50 {
        tx.insert(&format!("k{i:02}"), &i.to_string()).unwrap();
    }
    // Run inside the transaction (this thread's calls join it): its view, its connection.
    let mut rows = s.query(&Query::new().order("_key")).unwrap();
    let first = rows.next().unwrap().unwrap();
    assert_eq!(first.0, "k00");
    tx.commit().unwrap();
    // The cursor still holds the connection the transaction ran on: other threads' writes
    // go on (on another writer connection) meanwhile.
    let other = {
        let s = s.clone();
        thread::spawn(move || {
            for i in 0..50 {
                s.insert(&format!("o{i:02}"), &"o".to_string()).unwrap();
            }
        })
    };
    other.join().unwrap();
    let rest: Vec<(String, String)> = rows.collect::<Result<_>>().unwrap();
    assert_eq!(rest.len(), 49);
    assert_eq!(rest[48], ("k49".to_string(), "49".to_string()));
    assert_eq!(s.len().unwrap(), 100);
    s.insert("after", &"a".to_string()).unwrap();
    assert_eq!(s.len().unwrap(), 101);
}

#[test]
fn close_all_while_idle_and_while_a_transaction_runs_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for i in 0..10 {
        s.insert(&format!("a{i}"), &"x".to_string()).unwrap();
    }
    // Idle: the writer connection closes and reopens at the next write.
    s.close_all().unwrap();
    s.insert("after-idle", &"x".to_string()).unwrap();
    // Busy: another thread is inside a transaction on the writer connection.
    let (began, began_rx) = mpsc::channel();
    let (closed, closed_rx) = mpsc::channel::<()>();
    let holder = {
        let s = s.clone();
        thread::spawn(move || {
            let tx = s.begin().unwrap();
            tx.insert("in-tx-1", &"x".to_string()).unwrap();
            began.send(()).unwrap();
            closed_rx.recv().unwrap();
            tx.insert("in-tx-2", &"x".to_string()).unwrap();
            assert!(tx.contains_key("in-tx-1").unwrap());
            tx.commit().unwrap();
        })
    };
    began_rx.recv().unwrap();
    s.close_all().unwrap();
    // Queued behind the transaction (grouped after it), from another thread.
    let queued = {
        let s = s.clone();
        thread::spawn(move || s.insert("queued", &"x".to_string()))
    };
    closed.send(()).unwrap();
    holder.join().unwrap();
    queued.join().unwrap().unwrap();
    s.close_all().unwrap();
    let keys = sorted_keys(&s);
    for k in ["after-idle", "in-tx-1", "in-tx-2", "queued", "a0", "a9"] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    assert_eq!(s.len().unwrap(), 14);
}

#[test]
fn a_child_forked_while_another_thread_holds_the_writer_connection_never_joins_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let s: Store = DiskStore::builder(&path)
        .timeout(Duration::from_millis(300))
        .open()
        .unwrap();
    s.insert("before", &"b".to_string()).unwrap();
    let (began, began_rx) = mpsc::channel();
    let (forked, forked_rx) = mpsc::channel::<()>();
    let holder = {
        let s = s.clone();
        thread::spawn(move || {
            let tx = s.begin().unwrap();
            tx.insert("parent-tx", &"p".to_string()).unwrap();
            began.send(()).unwrap();
            forked_rx.recv().unwrap();
            tx.commit().unwrap();
        })
    };
    began_rx.recv().unwrap();
    // SAFETY: the child only uses the store and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The holder thread does not exist here, and its writer connection, inside the
        // parent's transaction, must never be touched: had the child written on it, its
        // write would have joined that transaction (and seen "parent-tx"). The inherited
        // handle opens connections of its own; the file stays locked by the parent (SQLite
        // keeps the parent's lock records in the child, docs/compat.md), so the write is
        // refused after the timeout, and nothing waits for ever.
        let start = Instant::now();
        let read = s.get("before").ok() == Some(Some("b".to_string()))
            && s.contains_key("parent-tx").ok() == Some(false);
        let write = s.insert("child", &"c".to_string());
        let ok = read
            && matches!(write, Err(Error::Busy { .. }))
            && s.contains_key("child").ok() == Some(false)
            && start.elapsed() < Duration::from_secs(5);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    forked.send(()).unwrap();
    holder.join().unwrap();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // The parent goes on writing on its own writer connection.
    s.insert("after", &"a".to_string()).unwrap();
    assert_eq!(sorted_keys(&s), ["after", "before", "parent-tx"]);
}

#[test]
fn a_write_from_inside_a_lookups_row_callback_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.insert("a", &"1".to_string()).unwrap();
    // The lookup runs on the writer connection, holding its lock: a write from its
    // callback would wait for itself, so it fails at once instead.
    let inner = s
        .table()
        .get(diskstore::KeyRef::Text("a"), |_row| {
            Ok(s.insert("from-callback", &"x".to_string()))
        })
        .unwrap()
        .unwrap();
    assert!(matches!(inner, Err(Error::Usage(_))), "{inner:?}");
    assert!(!s.contains_key("from-callback").unwrap());
    // Nothing is left locked.
    s.insert("b", &"2".to_string()).unwrap();
    assert_eq!(sorted_keys(&s), ["a", "b"]);
}

#[test]
fn a_child_forked_while_another_threads_lookup_holds_the_writer_lock_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let s: Store = DiskStore::builder(&path)
        .timeout(Duration::from_millis(300))
        .open()
        .unwrap();
    s.insert("before", &"b".to_string()).unwrap();
    let (looking, looking_rx) = mpsc::channel();
    let (forked, forked_rx) = mpsc::channel::<()>();
    let reader = {
        let s = s.clone();
        thread::spawn(move || {
            // The lookup runs on the writer connection, holding the writer lock (lock-free,
            // by the lock's state word) until its row callback returns.
            s.table()
                .get(diskstore::KeyRef::Text("before"), |_row| {
                    looking.send(()).unwrap();
                    forked_rx.recv().unwrap();
                    Ok(())
                })
                .unwrap()
        })
    };
    looking_rx.recv().unwrap();
    // SAFETY: the child only uses the store and then `_exit`s. (The fork waits up to the
    // fork gate's limit for the reader, which stays inside SQLite meanwhile.)
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The reader does not exist here: its hold on the lock, made in the parent's fork
        // generation, is no one's, so the child's write takes the lock at once instead of
        // waiting for it until the timeout.
        let start = Instant::now();
        let write = s.insert("child", &"c".to_string());
        let ok = write.is_ok()
            && s.contains_key("child").ok() == Some(true)
            && start.elapsed() < Duration::from_secs(5);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    forked.send(()).unwrap();
    assert_eq!(reader.join().unwrap(), Some(()));
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // The parent's lock is free again once the lookup ended.
    s.insert("after", &"a".to_string()).unwrap();
    assert_eq!(sorted_keys(&s), ["after", "before", "child"]);
}
