//! Eight threads doing mixed operations on one store (and on clones of its handle):
//! the final state is exactly what the operations imply.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};
use std::thread;

use diskstore::DiskStore;
use tempfile::TempDir;

const THREADS: i64 = 8;
const PER_THREAD: i64 = 150;
const INCREMENTS: i64 = 40;
const PUSHES: i64 = 30;

#[test]
fn eight_threads_of_mixed_operations_reach_the_exact_expected_state() {
    let dir = TempDir::new().unwrap();
    let store: DiskStore<String, i64> = DiskStore::open(dir.path().join("m.db")).unwrap();
    let queue: DiskStore<i64, i64> = DiskStore::builder(dir.path().join("m.db"))
        .table("queue")
        .open()
        .unwrap();
    store.insert("counter", &0).unwrap();
    let start = Arc::new(Barrier::new(THREADS as usize));

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = store.clone();
            let q = queue.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut once = Vec::new();
                let mut pushed = Vec::new();
                for i in 0..PER_THREAD {
                    let key = format!("t{t}:{i}");
                    s.insert(&key, &i).unwrap();
                    if i % 2 == 0 {
                        s.insert(&key, &(i * 10)).unwrap();
                    }
                    if i % 3 == 0 {
                        assert!(s.remove(&key).unwrap().is_some());
                    }
                    if i % 5 == 0 {
                        // Everyone races for the same ten keys; the first add wins.
                        s.add(&format!("shared:{}", (i / 5) % 10), &t).unwrap();
                    }
                    if i < INCREMENTS {
                        // Read-modify-write made atomic by the transaction.
                        let tx = s.begin().unwrap();
                        let v = s.get("counter").unwrap().unwrap();
                        s.insert("counter", &(v + 1)).unwrap();
                        tx.commit().unwrap();
                    }
                    if i < PUSHES {
                        pushed.push(q.push(&(t * 1000 + i)).unwrap());
                    }
                    if i % 17 == 0 {
                        once.push(s.get_or_insert("once", &t).unwrap());
                        assert!(s.len().unwrap() >= 1);
                        assert!(s.iter().all(|r| r.is_ok()));
                    }
                }
                (once, pushed)
            })
        })
        .collect();
    let results: Vec<(Vec<i64>, Vec<i64>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    // Per-thread keys: exactly the survivors, with their last values.
    let mut expected = BTreeMap::new();
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            if i % 3 != 0 {
                let v = if i % 2 == 0 { i * 10 } else { i };
                expected.insert(format!("t{t}:{i}"), v);
            }
        }
    }
    let all: BTreeMap<String, i64> = store.iter().collect::<Result<_, _>>().unwrap();
    let own: BTreeMap<String, i64> = all
        .iter()
        .filter(|(k, _)| k.starts_with('t'))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(own, expected);

    assert_eq!(all["counter"], THREADS * INCREMENTS);

    let shared: Vec<(&String, &i64)> = all
        .iter()
        .filter(|(k, _)| k.starts_with("shared:"))
        .collect();
    assert_eq!(shared.len(), 10);
    assert!(shared.iter().all(|(_, t)| (0..THREADS).contains(*t)));

    let once = all["once"];
    assert!(results.iter().all(|(o, _)| o.iter().all(|v| *v == once)));

    // Every push got its own key, and each thread's keys increase.
    let mut keys = BTreeSet::new();
    for (_, pushed) in &results {
        assert!(pushed.windows(2).all(|w| w[0] < w[1]));
        keys.extend(pushed.iter().copied());
    }
    assert_eq!(keys.len() as i64, THREADS * PUSHES);
    let stored: BTreeMap<i64, i64> = queue.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(stored.keys().copied().collect::<BTreeSet<_>>(), keys);
    let values: BTreeSet<i64> = stored.values().copied().collect();
    let expected_values: BTreeSet<i64> = (0..THREADS)
        .flat_map(|t| (0..PUSHES).map(move |i| t * 1000 + i))
        .collect();
    assert_eq!(values, expected_values);

    assert_eq!(store.len().unwrap(), expected.len() as u64 + 1 + 10 + 1);
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn readers_on_many_threads_see_whole_transactions() {
    let dir = TempDir::new().unwrap();
    let store: DiskStore<String, i64> = DiskStore::open(dir.path().join("r.db")).unwrap();
    store.extend([("a", 0), ("b", 0)]).unwrap();
    let writer = {
        let s = store.clone();
        thread::spawn(move || {
            for i in 1..=200 {
                let tx = s.begin().unwrap();
                s.insert("a", &i).unwrap();
                s.insert("b", &i).unwrap();
                tx.commit().unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let s = store.clone();
            thread::spawn(move || {
                let mut last = 0;
                loop {
                    // get_many reads both in one snapshot.
                    let got = s.get_many(&["a", "b"]).unwrap();
                    let (a, b) = (got[0].unwrap(), got[1].unwrap());
                    assert_eq!(a, b, "a torn read");
                    assert!(a >= last, "time went backwards: {a} < {last}");
                    last = a;
                    if a == 200 {
                        break;
                    }
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
}
