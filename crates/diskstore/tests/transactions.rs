//! Transactions as values: commit, rollback on drop/panic/explicit call, savepoints,
//! several tables and handles of one file in one transaction, isolation from other
//! threads, the busy timeout, and `close_all()` while transactions run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What another connection (as another process would) reads from the file now.
fn committed(dir: &TempDir, table: &str) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    let mut st = c
        .prepare(&format!(
            "SELECT _key, value FROM \"{table}\" ORDER BY rowid"
        ))
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// True when another thread can take the write lock at once (nothing left holding it).
fn writable_from_another_thread(s: &Store) -> bool {
    let path = s.path().to_owned();
    thread::spawn(move || {
        let other: Store = DiskStore::builder(path)
            .timeout(Duration::from_millis(300))
            .open()
            .unwrap();
        let ok = other.insert("probe", &0).is_ok();
        ok && other.remove("probe").is_ok()
    })
    .join()
    .unwrap()
}

#[test]
fn commit_keeps_and_drop_rolls_back() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.insert("before", &0).unwrap();
    {
        let tx = s.begin().unwrap();
        tx.insert("a", &1).unwrap();
        tx.remove("before").unwrap();
        // dropped without commit
    }
    assert_eq!(items(&s), [("before".into(), 0)]);

    let tx = s.begin().unwrap();
    tx.insert("a", &1).unwrap();
    tx.rollback().unwrap();
    assert_eq!(items(&s), [("before".into(), 0)]);

    let tx = s.begin().unwrap();
    tx.insert("a", &1).unwrap();
    tx.insert("before", &5).unwrap();
    assert!(
        committed(&dir, "DiskStore").len() == 1,
        "visible before commit"
    );
    tx.commit().unwrap();
    assert_eq!(
        committed(&dir, "DiskStore"),
        [("before".into(), 5), ("a".into(), 1)]
    );
}

#[test]
fn reads_inside_see_the_transactions_writes() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let tx = s.begin().unwrap();
    tx.extend([("a", 1), ("b", 2)]).unwrap();
    assert_eq!(tx.get("a").unwrap(), Some(1));
    assert!(tx.contains_key("b").unwrap());
    assert_eq!(tx.len().unwrap(), 2);
    assert_eq!(items(&tx), [("a".into(), 1), ("b".into(), 2)]);
    assert_eq!(tx.get_many(&["b", "a"]).unwrap(), [Some(2), Some(1)]);
    assert_eq!(tx.get_or_insert("c", &3).unwrap(), 3);
    assert_eq!(tx.pop_last().unwrap(), Some(("c".into(), 3)));
    assert_eq!(tx.range("a"..).count(), 2);
    drop(tx);
    assert!(s.is_empty().unwrap());
}

#[test]
fn a_second_begin_on_the_thread_is_refused_and_savepoints_nest() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let other = s.clone();
    let tx = s.begin().unwrap();
    assert!(matches!(other.begin().map(drop), Err(Error::Usage(_))));
    tx.insert("a", &1).unwrap();
    {
        let sp = tx.savepoint().unwrap();
        sp.insert("b", &2).unwrap();
        // dropped: undoes "b" alone
    }
    let sp = tx.savepoint().unwrap();
    sp.insert("c", &3).unwrap();
    let inner = sp.savepoint().unwrap();
    inner.insert("d", &4).unwrap();
    inner.rollback().unwrap();
    sp.commit().unwrap();
    assert_eq!(s.table().depth(), 1);
    tx.commit().unwrap();
    assert_eq!(s.table().depth(), 0);
    assert_eq!(
        committed(&dir, "DiskStore"),
        [("a".into(), 1), ("c".into(), 3)]
    );

    // A savepoint's writes die with the transaction that holds them.
    let tx = s.begin().unwrap();
    let sp = tx.savepoint().unwrap();
    sp.insert("e", &5).unwrap();
    sp.commit().unwrap();
    drop(tx);
    assert!(!s.contains_key("e").unwrap());
}

#[test]
fn a_failed_batch_inside_a_transaction_keeps_nothing_of_itself() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<String, f64> = DiskStore::open(dir.path().join("f.db")).unwrap();
    let tx = s.begin().unwrap();
    tx.insert("a", &1.0).unwrap();
    assert!(matches!(
        tx.insert("b", &f64::NAN),
        Err(Error::InvalidValue(_))
    ));
    assert!(tx.extend([("c", 1.0), ("d", f64::NAN)]).is_err());
    tx.insert("e", &2.0).unwrap();
    tx.commit().unwrap();
    let keys: Vec<String> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, ["a", "e"]);
}

#[test]
fn tables_and_handles_of_one_file_share_the_transaction() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    // The same table opened twice, and a second table opened before and inside.
    let twin = open(&dir);
    let log: DiskStore<String, i64> = DiskStore::builder(dir.path().join("t.db"))
        .table("log")
        .timeout(Duration::from_millis(300))
        .open()
        .unwrap();
    let tx = s.begin().unwrap();
    tx.insert("a", &1).unwrap();
    let t0 = Instant::now();
    twin.insert("b", &2).unwrap(); // joins: no wait for itself
    let audit = tx.table::<String, i64>("audit").unwrap();
    audit.insert("a", &1).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    // A handle with other settings has its own connection: a clear error, not a hang.
    let t0 = Instant::now();
    assert!(matches!(log.insert("x", &0), Err(Error::Usage(_))));
    assert!(t0.elapsed() < Duration::from_millis(250));
    drop(tx);
    assert!(s.is_empty().unwrap());
    // The table was created inside the transaction: it is gone with it.
    assert!(audit.is_empty().is_err());

    let tx = s.begin().unwrap();
    tx.insert("a", &1).unwrap();
    tx.table::<String, i64>("audit")
        .unwrap()
        .insert("a", &1)
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(committed(&dir, "DiskStore"), [("a".into(), 1)]);
    assert_eq!(committed(&dir, "audit"), [("a".into(), 1)]);
    log.insert("x", &0).unwrap();
}

#[test]
fn a_panic_at_any_step_leaves_no_lock_no_transaction_and_the_file_unchanged() {
    // Each step panics at a different point of a transaction's life.
    type Step = fn(&Store);
    let steps: [(&str, Step); 9] = [
        ("after begin", |s| {
            let _tx = s.begin().unwrap();
            panic!("boom");
        }),
        ("after a write", |s| {
            let tx = s.begin().unwrap();
            tx.insert("x", &1).unwrap();
            panic!("boom");
        }),
        ("inside a savepoint", |s| {
            let tx = s.begin().unwrap();
            tx.insert("x", &1).unwrap();
            let sp = tx.savepoint().unwrap();
            sp.insert("y", &1).unwrap();
            panic!("boom");
        }),
        ("in get_many's decode inside a transaction", |s| {
            let tx = s.begin().unwrap();
            tx.insert("x", &1).unwrap();
            s.table()
                .get_many(&[diskstore::KeyRef::Text("a")], |_, _| panic!("boom"))
                .unwrap();
        }),
        ("in get_many's decode", |s| {
            s.table()
                .get_many(&[diskstore::KeyRef::Text("a")], |_, _| panic!("boom"))
                .unwrap();
        }),
        ("inside read()", |s| {
            s.table()
                .read(|| -> diskstore::Result<()> { panic!("boom") })
                .unwrap();
        }),
        ("inside a read transaction", |s| {
            let r = s.read().unwrap();
            r.get("a").unwrap();
            panic!("boom");
        }),
        ("inside atomic()", |s| {
            s.table()
                .atomic(|| -> diskstore::Result<()> {
                    s.insert("x", &1)?;
                    panic!("boom")
                })
                .unwrap();
        }),
        ("inside the engine's begin/end pair", |s| {
            let _opened = s.table().begin().unwrap();
            s.insert("x", &1).unwrap();
            panic!("boom");
        }),
    ];
    for (name, step) in steps {
        let dir = TempDir::new().unwrap();
        let s = open(&dir);
        s.insert("a", &1).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| step(&s)));
        assert!(r.is_err(), "{name}: did not panic");
        if name == "inside the engine's begin/end pair" {
            // A raw begin() has no guard: ending it is the caller's job, as documented.
            s.table().end(true, false).unwrap();
        }
        assert_eq!(s.table().depth(), 0, "{name}: a level is still open");
        let idle = s
            .table()
            .with_connection(|c| Ok(c.is_autocommit()))
            .unwrap();
        assert!(
            idle,
            "{name}: a transaction is still open on the connection"
        );
        assert!(writable_from_another_thread(&s), "{name}: lock still held");
        assert_eq!(committed(&dir, "DiskStore"), [("a".into(), 1)], "{name}");
        // The same thread's next write commits at once.
        s.insert("b", &2).unwrap();
        assert_eq!(
            committed(&dir, "DiskStore").len(),
            2,
            "{name}: write not durable"
        );
    }
}

#[test]
fn writes_inside_a_read_transaction_are_refused_at_once() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.insert("a", &1).unwrap();
    let snap = s.read().unwrap();
    assert_eq!(snap.get("a").unwrap(), Some(1));
    // Another thread commits a change the snapshot does not see.
    let s2 = s.clone();
    thread::spawn(move || s2.insert("a", &2).unwrap())
        .join()
        .unwrap();
    assert_eq!(snap.get("a").unwrap(), Some(1));
    let t0 = Instant::now();
    assert!(matches!(s.insert("b", &1), Err(Error::Usage(_))));
    assert!(matches!(s.begin().map(drop), Err(Error::Usage(_))));
    assert!(t0.elapsed() < Duration::from_secs(1));
    drop(snap);
    assert_eq!(s.get("a").unwrap(), Some(2));
    s.insert("b", &1).unwrap();
}

#[test]
fn other_threads_see_only_committed_data_and_wait_to_write() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.insert("x", &0).unwrap();
    let tx = s.begin().unwrap();
    tx.insert("x", &1).unwrap();
    tx.insert("y", &1).unwrap();

    let reader = s.clone();
    let seen = thread::spawn(move || (reader.get("x").unwrap(), reader.len().unwrap()))
        .join()
        .unwrap();
    assert_eq!(seen, (Some(0), 1));

    // The writer must find the commit done when its own write returns: it waited.
    let committing = Arc::new(AtomicBool::new(false));
    let (started, wait_started) = mpsc::channel();
    let writer = s.clone();
    let flag = Arc::clone(&committing);
    let blocked = thread::spawn(move || {
        started.send(()).unwrap();
        writer.insert("z", &2).unwrap();
        flag.load(Ordering::SeqCst)
    });
    wait_started.recv().unwrap();
    committing.store(true, Ordering::SeqCst);
    tx.commit().unwrap();
    assert!(
        blocked.join().unwrap(),
        "the writer did not wait for the commit"
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
    let tx = s.begin().unwrap();
    let s2 = s.clone();
    let r = thread::spawn(move || (s2.insert("a", &1), s2.begin().map(drop)))
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
    assert!(matches!(s.begin().map(drop), Err(Error::Busy { .. })));
    // Reads are not blocked by a writer in WAL mode.
    assert_eq!(s.get("a").unwrap(), Some(1));
    other.execute_batch("COMMIT").unwrap();
    s.insert("b", &2).unwrap();
    assert_eq!(s.len().unwrap(), 2);
}

#[test]
fn the_engines_levels_end_in_order() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    assert!(matches!(s.table().end(true, true), Err(Error::Usage(_))));
    let opened = s.table().begin().unwrap();
    assert!(opened);
    let joined = s.table().begin().unwrap();
    assert!(!joined);
    assert!(matches!(s.table().end(true, true), Err(Error::Usage(_))));
    s.insert("a", &1).unwrap();
    s.table().end(joined, true).unwrap();
    s.table().end(opened, true).unwrap();
    assert_eq!(committed(&dir, "DiskStore"), [("a".into(), 1)]);
}

#[test]
fn close_all_inside_a_transaction_on_the_same_thread_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let tx = s.begin().unwrap();
    tx.insert("a", &1).unwrap();
    assert!(s.close_all().unwrap() >= 1);
    tx.insert("b", &2).unwrap();
    assert_eq!(tx.len().unwrap(), 2, "the transaction lost its head");
    tx.commit().unwrap();
    assert_eq!(
        committed(&dir, "DiskStore"),
        [("a".into(), 1), ("b".into(), 2)]
    );
    // Nothing is left holding the writer lock; later writes commit one by one.
    assert!(writable_from_another_thread(&s));
    s.insert("c", &3).unwrap();
    assert_eq!(committed(&dir, "DiskStore").len(), 3);

    // And a rolled-back transaction keeps nothing of its tail.
    let tx = s.begin().unwrap();
    tx.insert("d", &4).unwrap();
    s.close_all().unwrap();
    tx.insert("e", &5).unwrap();
    drop(tx);
    assert_eq!(committed(&dir, "DiskStore").len(), 3);
}

#[test]
fn close_all_from_another_thread_during_a_transaction_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let (go, wait_go) = mpsc::channel();
    let (done, wait_done) = mpsc::channel::<u64>();
    let closer = s.clone();
    let t = thread::spawn(move || {
        wait_go.recv().unwrap();
        done.send(closer.close_all().unwrap()).unwrap();
    });
    let tx = s.begin().unwrap();
    tx.insert("a", &1).unwrap();
    go.send(()).unwrap();
    let closed = wait_done.recv().unwrap();
    assert!(closed >= 1, "the transaction's connection was not counted");
    tx.insert("b", &2).unwrap();
    tx.commit().unwrap();
    t.join().unwrap();
    assert_eq!(
        committed(&dir, "DiskStore"),
        [("a".into(), 1), ("b".into(), 2)]
    );
    assert!(writable_from_another_thread(&s));
}

#[test]
fn close_all_racing_writers_never_poisons_the_store() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let closer = {
        let (s, stop) = (s.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                s.close_all().unwrap();
                n += 1;
                thread::yield_now();
            }
            n
        })
    };
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let s = s.clone();
            thread::spawn(move || {
                for i in 0..300 {
                    let batch = [(format!("{w}-{i}-a"), i), (format!("{w}-{i}-b"), i)];
                    s.extend(batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(closer.join().unwrap() > 0);
    assert_eq!(committed(&dir, "DiskStore").len(), 2 * 300 * 2);
    assert!(writable_from_another_thread(&s));
}

#[test]
fn close_all_counts_every_threads_connection() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    s.insert("a", &1).unwrap();
    // Three threads alive at once (a finished thread's slot may be given to a new one).
    let all_read = Arc::new(std::sync::Barrier::new(4));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, all_read) = (s.clone(), Arc::clone(&all_read));
            thread::spawn(move || {
                s.get("a").unwrap();
                all_read.wait();
            })
        })
        .collect();
    all_read.wait();
    readers.into_iter().for_each(|t| t.join().unwrap());
    // This thread's connection and the three others' (the file's writer connection is
    // closed too, but not counted: the original counts one connection per thread).
    assert_eq!(s.close_all().unwrap(), 4);
    assert_eq!(s.close_all().unwrap(), 0);
    assert_eq!(s.get("a").unwrap(), Some(1));
    assert_eq!(s.close_all().unwrap(), 1);
}

#[test]
fn panics_inside_transactions_while_other_threads_write_lose_none_of_their_writes() {
    // Other threads' autocommitted writes share the file's writer connection (and are
    // grouped into common commits) with the transactions that panic here: each panic
    // must roll back only its own transaction.
    let dir = TempDir::new().unwrap();
    let s = Arc::new(open(&dir));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                for i in 0..300 {
                    s.insert(&format!("w{t}-{i}"), &i).unwrap();
                }
            })
        })
        .collect();
    let panicker = {
        let s = Arc::clone(&s);
        thread::spawn(move || {
            for i in 0..60 {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let tx = s.begin().unwrap();
                    tx.insert(&format!("x{i}"), &i).unwrap();
                    if i % 2 == 0 {
                        s.insert(&format!("y{i}"), &i).unwrap();
                    }
                    panic!("boom {i}");
                }));
                assert!(r.is_err());
                // Between the panics, a transaction of this thread commits normally.
                let tx = s.begin().unwrap();
                tx.insert(&format!("z{i}"), &i).unwrap();
                tx.commit().unwrap();
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    panicker.join().unwrap();
    let rows = committed(&dir, "DiskStore");
    let mut keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with('x') || k.starts_with('y')),
        "a panicked transaction's writes were committed"
    );
    for t in 0..3 {
        for i in 0..300 {
            assert!(keys.binary_search(&format!("w{t}-{i}").as_str()).is_ok());
        }
    }
    assert_eq!(rows.len(), 3 * 300 + 60);
    assert_eq!(s.len().unwrap(), 3 * 300 + 60);
    assert!(writable_from_another_thread(&s));
}
