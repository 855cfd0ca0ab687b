//! Differential testing against an in-memory model: a sequence of operations (decoded from
//! bytes) runs on a real store and on a plain `Vec` in insertion order, and every result
//! and the whole contents must agree.
//!
//! The same decoder and interpreter drive the cargo-fuzz target (`fuzz/fuzz_targets/ops.rs`
//! includes this file) and, here, a seeded random soak that runs in the normal test suite
//! (`DISKSTORE_SOAK=1` runs many more sequences; `DISKSTORE_SEED` replays one run).

#![allow(dead_code)]

use std::path::Path;

use diskstore::{DiskStore, Error, Query, Value};

/// The store under test: text keys (so that insertion order and key order differ) and
/// byte values.
pub type Store = DiskStore<String, Vec<u8>>;

/// One operation.
#[derive(Clone, Debug)]
pub enum Op {
    Insert(String, Vec<u8>),
    Add(String, Vec<u8>),
    Get(String),
    Contains(String),
    Remove(String),
    GetOrInsert(String, Vec<u8>),
    PopFirst,
    PopLast,
    Extend(Vec<(String, Vec<u8>)>),
    GetMany(Vec<String>),
    Range(String, String, bool),
    Iter(bool),
    QueryValue(Vec<u8>),
    Len,
    Clear,
    Begin,
    Commit,
    Rollback,
    Vacuum,
    Reopen,
}

/// Reads operations from raw bytes; every byte string decodes to some sequence.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn key(&mut self) -> Option<String> {
        let b = self.byte()?;
        Some(match b % 16 {
            0 => String::new(),
            1 => "ключ".into(),
            2 => "k\u{0}nul".into(),
            n => format!("k{}", n % 12),
        })
    }

    fn value(&mut self) -> Option<Vec<u8>> {
        let head = self.byte()?;
        let len = usize::from(head % 8);
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(self.byte()?);
        }
        if head & 0x80 != 0 {
            v = v.repeat(3000); // large values spill into overflow pages
        }
        Some(v)
    }

    fn op(&mut self) -> Option<Op> {
        Some(match self.byte()? % 24 {
            0..=3 => Op::Insert(self.key()?, self.value()?),
            4 => Op::Add(self.key()?, self.value()?),
            5 | 6 => Op::Get(self.key()?),
            7 => Op::Contains(self.key()?),
            8 | 9 => Op::Remove(self.key()?),
            10 => Op::GetOrInsert(self.key()?, self.value()?),
            11 => Op::PopFirst,
            12 => Op::PopLast,
            13 => {
                let n = self.byte()? % 5;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push((self.key()?, self.value()?));
                }
                Op::Extend(items)
            }
            14 => Op::GetMany(vec![self.key()?, self.key()?, self.key()?]),
            15 => Op::Range(self.key()?, self.key()?, self.byte()? % 2 == 1),
            16 => Op::Iter(self.byte()? % 2 == 1),
            17 => Op::QueryValue(self.value()?),
            18 => Op::Len,
            19 => Op::Clear,
            20 => Op::Begin,
            21 => Op::Commit,
            22 => match self.byte()? % 4 {
                0 => Op::Vacuum,
                1 => Op::Reopen,
                _ => Op::Rollback,
            },
            _ => Op::Len,
        })
    }
}

/// Decodes a sequence of at most 400 operations.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut b = Bytes(data);
    let mut ops = Vec::new();
    while ops.len() < 400
        && let Some(op) = b.op()
    {
        ops.push(op);
    }
    ops
}

/// The model: entries in insertion order, plus the snapshot to return to on rollback.
#[derive(Default)]
struct Model {
    rows: Vec<(String, Vec<u8>)>,
    saved: Option<Vec<(String, Vec<u8>)>>,
    depth: usize,
}

impl Model {
    fn find(&self, k: &str) -> Option<usize> {
        self.rows.iter().position(|(key, _)| key == k)
    }

    fn get(&self, k: &str) -> Option<Vec<u8>> {
        self.find(k).map(|i| self.rows[i].1.clone())
    }

    fn set(&mut self, k: &str, v: &[u8]) {
        match self.find(k) {
            Some(i) => self.rows[i].1 = v.to_vec(),
            None => self.rows.push((k.to_owned(), v.to_vec())),
        }
    }

    fn remove(&mut self, k: &str) -> Option<Vec<u8>> {
        self.find(k).map(|i| self.rows.remove(i).1)
    }
}

fn check<T: PartialEq + std::fmt::Debug>(
    step: usize,
    op: &Op,
    got: T,
    want: T,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "step {step} {op:?}: store gave {got:?}, model wants {want:?}"
        ))
    }
}

fn contents(store: &Store) -> Result<Vec<(String, Vec<u8>)>, String> {
    store
        .iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("iter: {e}"))
}

/// Runs `ops` on a fresh store in `dir` and on the model; the first disagreement (or an
/// unexpected error) is returned as an error.
pub fn run(dir: &Path, ops: &[Op]) -> Result<(), String> {
    let path = dir.join("model.db");
    let mut store: Store = DiskStore::open(&path).map_err(|e| format!("open: {e}"))?;
    let mut m = Model::default();
    let mut opened: Vec<bool> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let e = |err: Error| format!("step {step} {op:?}: {err}");
        match op {
            Op::Insert(k, v) => {
                store.insert(k, v).map_err(e)?;
                m.set(k, v);
            }
            Op::Add(k, v) => {
                let added = store.add(k, v).map_err(e)?;
                check(step, op, added, m.find(k).is_none())?;
                if added {
                    m.set(k, v);
                }
            }
            Op::Get(k) => check(step, op, store.get(k).map_err(e)?, m.get(k))?,
            Op::Contains(k) => check(
                step,
                op,
                store.contains_key(k).map_err(e)?,
                m.find(k).is_some(),
            )?,
            Op::Remove(k) => check(step, op, store.remove(k).map_err(e)?, m.remove(k))?,
            Op::GetOrInsert(k, v) => {
                let got = store.get_or_insert(k, v).map_err(e)?;
                if m.find(k).is_none() {
                    m.set(k, v);
                }
                check(step, op, Some(got), m.get(k))?;
            }
            Op::PopFirst => {
                let want = (!m.rows.is_empty()).then(|| m.rows.remove(0));
                check(step, op, store.pop_first().map_err(e)?, want)?;
            }
            Op::PopLast => check(step, op, store.pop_last().map_err(e)?, m.rows.pop())?,
            Op::Extend(items) => {
                let n = store.extend(items.iter().map(|(k, v)| (k, v))).map_err(e)?;
                check(step, op, n, items.len())?;
                for (k, v) in items {
                    m.set(k, v);
                }
            }
            Op::GetMany(keys) => {
                let want: Vec<_> = keys.iter().map(|k| m.get(k)).collect();
                check(step, op, store.get_many(keys).map_err(e)?, want)?;
            }
            Op::Range(lo, hi, rev) => {
                let mut want: Vec<_> = m
                    .rows
                    .iter()
                    .filter(|(k, _)| lo <= k && k < hi)
                    .cloned()
                    .collect();
                want.sort();
                let it = store.range(lo.clone()..hi.clone());
                let got = if *rev {
                    want.reverse();
                    it.rev().collect::<Result<Vec<_>, _>>()
                } else {
                    it.collect::<Result<Vec<_>, _>>()
                };
                check(step, op, got.map_err(e)?, want)?;
            }
            Op::Iter(rev) => {
                let got = if *rev {
                    store.iter().rev().collect::<Result<Vec<_>, _>>()
                } else {
                    store.iter().collect::<Result<Vec<_>, _>>()
                };
                let mut want = m.rows.clone();
                if *rev {
                    want.reverse();
                }
                check(step, op, got.map_err(e)?, want)?;
            }
            Op::QueryValue(v) => {
                let q = Query::new().filter("value = ?", [Value::Blob(v.clone())]);
                let want: Vec<_> = m.rows.iter().filter(|(_, x)| x == v).cloned().collect();
                check(
                    step,
                    op,
                    store
                        .query(&q)
                        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
                        .map_err(e)?,
                    want,
                )?;
            }
            Op::Len => check(step, op, store.len().map_err(e)?, m.rows.len() as u64)?,
            Op::Clear => {
                store.clear().map_err(e)?;
                m.rows.clear();
            }
            Op::Begin => {
                opened.push(store.table().begin().map_err(e)?);
                if m.depth == 0 {
                    m.saved = Some(m.rows.clone());
                }
                m.depth += 1;
            }
            Op::Commit | Op::Rollback => {
                let commit = matches!(op, Op::Commit);
                let Some(level) = opened.pop() else {
                    let r = store.table().end(true, commit);
                    check(step, op, matches!(r, Err(Error::Usage(_))), true)?;
                    continue;
                };
                store.table().end(level, commit).map_err(e)?;
                m.depth -= 1;
                if m.depth == 0 {
                    let saved = m.saved.take().expect("saved at the outermost begin");
                    if !commit {
                        m.rows = saved;
                    }
                }
            }
            Op::Vacuum => {
                let r = store.vacuum();
                if m.depth > 0 {
                    check(step, op, matches!(r, Err(Error::Usage(_))), true)?;
                } else {
                    r.map_err(e)?;
                }
            }
            Op::Reopen => {
                if m.depth == 0 {
                    drop(store);
                    store = DiskStore::open(&path).map_err(e)?;
                }
            }
        }
    }
    // Whatever is still open rolls back, as a dropped guard would.
    while let Some(level) = opened.pop() {
        store
            .table()
            .end(level, false)
            .map_err(|e| format!("final rollback: {e}"))?;
        m.depth -= 1;
        if m.depth == 0 {
            m.rows = m.saved.take().expect("saved at the outermost begin");
        }
    }
    check(
        ops.len(),
        &Op::Iter(false),
        contents(&store)?,
        m.rows.clone(),
    )?;
    drop(store);
    let reopened: Store = DiskStore::open(&path).map_err(|e| format!("reopen: {e}"))?;
    check(ops.len(), &Op::Reopen, contents(&reopened)?, m.rows)?;
    let problems = reopened.check().map_err(|e| format!("check: {e}"))?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("integrity_check: {problems:?}"))
    }
}

#[cfg(test)]
#[path = "reliability_support.rs"]
mod support;

#[cfg(test)]
#[test]
fn random_operation_sequences_agree_with_the_model() {
    let seed = support::Rng::seed_from_env("model");
    let mut rng = support::Rng::new(seed);
    // A time budget (`DISKSTORE_MODEL_SECONDS`, used by scripts/fuzz.sh when cargo-fuzz
    // cannot run) or a number of sequences.
    let deadline = std::env::var("DISKSTORE_MODEL_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(|secs| std::time::Instant::now() + std::time::Duration::from_secs(secs));
    let sequences = match deadline {
        Some(_) => u64::MAX,
        None if support::soak() => 5_000,
        None => 120,
    };
    let mut done = 0;
    let mut ops_run = 0;
    for case in 0..sequences {
        let len = rng.between(1, 1500) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let ops = decode(&bytes);
        ops_run += ops.len();
        // On tmpfs when there is one: the model checks logic, not fsync speed.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        if let Err(e) = run(dir.path(), &ops) {
            panic!("sequence {case} (seed {seed}): {e}");
        }
        done += 1;
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    println!("model: {done} random sequences, {ops_run} operations, 0 disagreements");
}
