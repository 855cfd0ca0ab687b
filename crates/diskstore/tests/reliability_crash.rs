//! Crash consistency: writer processes are killed with SIGKILL at random moments, many
//! rounds, and after each kill the store must be intact.
//!
//! Each round starts two child processes (this test binary again, with a role) that write
//! to one file from two threads each, and report every write on stdout only after it
//! committed. The parent kills them at a random moment, then checks that:
//! - `check()` (SQLite's `integrity_check`) is clean;
//! - every write reported committed is there, with its exact value;
//! - no transaction is half-applied (each writes N keys and one marker: all or none), no
//!   rolled-back write is visible, and a counter is never behind what was reported;
//! - the store keeps working (a new write and a transaction succeed).
//!
//! Half of the rounds use a tiny `wal_autocheckpoint`, so that kills also land in the
//! middle of checkpoints. `DISKSTORE_CRASH_ROUNDS=N` or `DISKSTORE_SOAK=1` runs more
//! rounds; `DISKSTORE_SEED` replays a run.

#[path = "reliability_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diskstore::DiskStore;
use support::Rng;

const ENTRY: &str = "crash_child_entry";
const THREADS: u64 = 2;
const CHILDREN: u64 = 2;

type Store = DiskStore<String, String>;

/// A value that carries its own description, so the parent can verify every byte:
/// `<key>/<padding length>/` followed by that many `x`.
fn make_value(key: &str, pad: usize) -> String {
    let mut v = format!("{key}/{pad}/");
    v.extend(std::iter::repeat_n('x', pad));
    v
}

fn value_ok(key: &str, value: &str) -> bool {
    let Some(rest) = value.strip_prefix(key).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    let Some((n, pad)) = rest.split_once('/') else {
        return false;
    };
    n.parse::<usize>().is_ok_and(|n| n == pad.len()) && pad.bytes().all(|b| b == b'x')
}

/// The child side: writes until killed. Only does anything when started by the parent.
#[test]
fn crash_child_entry() {
    let Some(role) = support::role() else {
        return; // run directly: nothing to do; the parent test starts this as a child
    };
    let mut parts = role.split(':');
    let (Some("crash"), Some(prefix), Some(ckpt), Some(seed)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("bad role {role:?}");
    };
    let path = std::env::var("DISKSTORE_REL_PATH").expect("DISKSTORE_REL_PATH is set");
    let seed: u64 = seed.parse().expect("numeric seed");
    let store: Store = DiskStore::builder(&path)
        .pragma("wal_autocheckpoint", ckpt)
        .open()
        .unwrap_or_else(|e| {
            println!("ERR open: {e}");
            std::process::exit(1)
        });
    println!("READY");
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let prefix = format!("{prefix}t{t}");
            std::thread::spawn(move || {
                if let Err(e) = write_forever(&store, &prefix, Rng::new(seed ^ ((t + 1) * 7919))) {
                    println!("ERR {prefix}: {e}");
                    std::process::exit(1);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn write_forever(store: &Store, prefix: &str, mut rng: Rng) -> diskstore::Result<()> {
    let mut committed: Vec<(String, u64)> = Vec::new();
    let counter = format!("ctr:{prefix}");
    let mut count = 0u64;
    for n in 0u64.. {
        let id = format!("{prefix}n{n}");
        match rng.below(100) {
            0..40 => {
                let size = rng.between(2, 12);
                let tx = store.begin()?;
                for j in 0..size {
                    let key = format!("tx:{id}:{j}");
                    let pad = if rng.chance(3) { 20_000 } else { 30 };
                    store.insert(&key, &make_value(&key, pad))?;
                }
                store.insert(&format!("txm:{id}"), &size.to_string())?;
                tx.commit()?;
                println!("TX {id} {size}");
                committed.push((id, size));
            }
            40..70 => {
                let key = format!("one:{id}");
                store.insert(&key, &make_value(&key, 50))?;
                println!("ONE {id}");
            }
            70..80 => {
                count += 1;
                store.insert(&counter, &count.to_string())?;
                println!("CTR {counter} {count}");
            }
            80..90 if !committed.is_empty() => {
                let (victim, size) =
                    committed.swap_remove(rng.below(committed.len() as u64) as usize);
                println!("DELTRY {victim}");
                let tx = store.begin()?;
                for j in 0..size {
                    store.remove(&format!("tx:{victim}:{j}"))?;
                }
                store.remove(&format!("txm:{victim}"))?;
                tx.commit()?;
                println!("DEL {victim}");
            }
            _ => {
                let tx = store.begin()?;
                for j in 0..rng.between(1, 5) {
                    store.insert(&format!("rb:{id}:{j}"), &"never".to_string())?;
                }
                tx.rollback()?;
            }
        }
    }
    Ok(())
}

/// What the parent learned from the children's reports, over all rounds.
#[derive(Default)]
struct Reported {
    tx: BTreeMap<String, u64>,
    del_tried: BTreeSet<String>,
    deleted: BTreeSet<String>,
    one: BTreeSet<String>,
    counters: HashMap<String, u64>,
    writes: u64,
}

impl Reported {
    fn take(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["TX", id, n] => {
                self.tx.insert(id.to_string(), n.parse().map_err(|_| line)?);
            }
            ["ONE", id] => {
                self.one.insert(id.to_string());
            }
            ["CTR", key, n] => {
                self.counters
                    .insert(key.to_string(), n.parse().map_err(|_| line)?);
            }
            ["DELTRY", id] => {
                self.del_tried.insert(id.to_string());
                return Ok(()); // an attempt, not a committed write
            }
            ["DEL", id] => {
                self.deleted.insert(id.to_string());
            }
            ["ERR", ..] => return Err(format!("child failed: {line}")),
            _ => return Ok(()), // the test harness's own output
        }
        self.writes += 1;
        Ok(())
    }
}

fn verify(path: &Path, rep: &Reported, round: u64) -> Result<usize, String> {
    let store: Store = DiskStore::open(path).map_err(|e| format!("reopen: {e}"))?;
    let problems = store.check().map_err(|e| format!("check: {e}"))?;
    if !problems.is_empty() {
        return Err(format!("integrity_check: {problems:?}"));
    }
    let mut rows: HashMap<String, String> = HashMap::new();
    for item in store.iter() {
        let (k, v) = item.map_err(|e| format!("iter: {e}"))?;
        rows.insert(k, v);
    }
    // Every transaction in the file is whole: marker and all N keys, or nothing.
    let mut parts: HashMap<&str, BTreeSet<u64>> = HashMap::new();
    let mut markers: HashMap<&str, u64> = HashMap::new();
    for (k, v) in &rows {
        if let Some(rest) = k.strip_prefix("tx:") {
            let (id, j) = rest.rsplit_once(':').ok_or(format!("odd key {k}"))?;
            if !value_ok(k, v) {
                return Err(format!("wrong value under {k}: {:.60}", v));
            }
            parts
                .entry(id)
                .or_default()
                .insert(j.parse().map_err(|_| k.clone())?);
        } else if let Some(id) = k.strip_prefix("txm:") {
            markers.insert(id, v.parse().map_err(|_| format!("odd marker {v}"))?);
        } else if k.starts_with("rb:") {
            return Err(format!("a rolled-back write is visible: {k}"));
        } else if k.starts_with("one:") && !value_ok(k, v) {
            return Err(format!("wrong value under {k}: {:.60}", v));
        }
    }
    for (id, js) in &parts {
        let n = markers.get(id).ok_or(format!(
            "half-applied transaction {id}: keys without marker"
        ))?;
        if *js != (0..*n).collect::<BTreeSet<_>>() {
            return Err(format!("half-applied transaction {id}: {js:?} of {n}"));
        }
    }
    for (id, n) in &markers {
        if *n > 0 && !parts.contains_key(id) {
            return Err(format!("half-applied transaction {id}: marker only"));
        }
    }
    // Everything reported committed is there (or was reported deleted).
    for (id, n) in &rep.tx {
        let present = markers.get(id.as_str());
        if rep.deleted.contains(id) {
            if present.is_some() {
                return Err(format!("deleted transaction {id} is back"));
            }
        } else if !rep.del_tried.contains(id) && present != Some(n) {
            return Err(format!("committed transaction {id} lost"));
        }
    }
    for id in &rep.one {
        if !rows.contains_key(&format!("one:{id}")) {
            return Err(format!("committed write one:{id} lost"));
        }
    }
    for (key, n) in &rep.counters {
        let stored: u64 = rows
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("counter {key} lost"))?;
        if stored < *n || stored > n + 1 {
            return Err(format!("counter {key} is {stored}, reported {n}"));
        }
    }
    // The store keeps working.
    let alive = format!("alive:{round}");
    let tx = store.begin().map_err(|e| format!("begin: {e}"))?;
    store
        .insert(&alive, &"yes".to_string())
        .map_err(|e| format!("write after crash: {e}"))?;
    tx.commit()
        .map_err(|e| format!("commit after crash: {e}"))?;
    if store.get(&alive).map_err(|e| e.to_string())?.as_deref() != Some("yes") {
        return Err("write after crash not readable".into());
    }
    Ok(rows.len())
}

fn rounds() -> u64 {
    if let Some(n) = std::env::var("DISKSTORE_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if support::soak() { 300 } else { 30 }
}

#[test]
fn sigkilled_writers_lose_nothing_committed_and_leave_no_half_transaction() {
    if support::role().is_some() {
        return;
    }
    let seed = Rng::seed_from_env("crash");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let rounds = rounds();
    let mut rep = Reported::default();
    let mut rows = 0;
    let mut ready_kills = 0;
    for round in 0..rounds {
        let ckpt = if round % 2 == 0 { "5000" } else { "8" };
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut children = Vec::new();
        let mut readers = Vec::new();
        for c in 0..CHILDREN {
            let role = format!("crash:r{round}c{c}:{ckpt}:{}", rng.next_u64());
            let mut child = support::child(ENTRY, &role)
                .env("DISKSTORE_REL_PATH", &path)
                .spawn()
                .expect("spawn the writer child");
            let out = child.stdout.take().unwrap();
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }));
            children.push(child);
        }
        // Mostly in full flow, sometimes while the children are still opening the store.
        let wait = if rng.chance(10) {
            rng.below(30)
        } else {
            rng.between(30, 250)
        };
        std::thread::sleep(Duration::from_millis(wait));
        for child in &mut children {
            child.kill().expect("SIGKILL the child");
            if rng.chance(30) {
                std::thread::sleep(Duration::from_millis(rng.below(20))); // kill apart
            }
        }
        for mut child in children {
            let status = child.wait().unwrap();
            assert!(
                !status.success(),
                "round {round}: a writer ended by itself ({status})"
            );
        }
        for r in readers {
            r.join().unwrap();
        }
        let lines = std::mem::take(&mut *lines.lock().unwrap());
        ready_kills += lines.iter().filter(|l| l.ends_with("READY")).count();
        for line in &lines {
            if let Err(e) = rep.take(line) {
                panic!("round {round} (seed {seed}): {e}");
            }
        }
        match verify(&path, &rep, round) {
            Ok(n) => rows = n,
            Err(e) => panic!("round {round} (seed {seed}): {e}"),
        }
    }
    println!(
        "crash: {rounds} rounds, {ready_kills} writer processes killed mid-write, \
         {} committed writes reported ({} transactions, {} deletes), {rows} rows at the end, \
         0 lost, 0 half-applied",
        rep.writes,
        rep.tx.len(),
        rep.deleted.len()
    );
    assert!(rep.writes > 0, "the writers never committed anything");
}
