//! Contention: P processes x T threads on one file, doing transfers between accounts
//! (transactions), snapshot reads of the total, autocommitted writes and deletes of scratch
//! keys, rolled-back transfers and `get_or_insert`. The sum of the balances must never
//! change, whatever a reader sees and whatever the interleaving.
//!
//! The figures (operations, `Error::Busy` seen, invariant violations) are printed; Busy
//! must be 0 under the default 10 s timeout at this load and violations must be 0.
//! `DISKSTORE_SOAK=1` runs longer.

#[path = "reliability_support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use diskstore::{DiskStore, Error};
use support::Rng;

const ENTRY: &str = "contention_child_entry";
const ACCOUNTS: i64 = 16;
const START: i64 = 1_000;
const PROCESSES: u64 = 3;
const THREADS: u64 = 3;

type Store = DiskStore<i64, i64>;

/// Account keys are 0..ACCOUNTS; scratch keys are large, per thread.
fn scratch_key(proc_: u64, thread: u64, n: u64) -> i64 {
    (1_000_000 + proc_ * 100_000 + thread * 10_000 + n % 10_000) as i64
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    ops: u64,
    transfers: u64,
    rolled_back: u64,
    snapshots: u64,
    busy: u64,
    violations: u64,
    errors: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.ops += o.ops;
        self.transfers += o.transfers;
        self.rolled_back += o.rolled_back;
        self.snapshots += o.snapshots;
        self.busy += o.busy;
        self.violations += o.violations;
        self.errors += o.errors;
    }

    fn line(&self) -> String {
        format!(
            "STATS {} {} {} {} {} {} {}",
            self.ops,
            self.transfers,
            self.rolled_back,
            self.snapshots,
            self.busy,
            self.violations,
            self.errors
        )
    }

    fn parse(line: &str) -> Option<Stats> {
        let rest = &line[line.find("STATS ")? + 6..];
        let n: Vec<u64> = rest
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        let [
            ops,
            transfers,
            rolled_back,
            snapshots,
            busy,
            violations,
            errors,
        ] = n[..]
        else {
            return None;
        };
        Some(Stats {
            ops,
            transfers,
            rolled_back,
            snapshots,
            busy,
            violations,
            errors,
        })
    }
}

fn total(store: &Store) -> diskstore::Result<i64> {
    let keys: Vec<i64> = (0..ACCOUNTS).collect();
    // get_many reads in one transaction: one consistent snapshot.
    Ok(store
        .get_many(&keys)?
        .into_iter()
        .map(|b| b.unwrap_or(0))
        .sum())
}

fn transfer(store: &Store, rng: &mut Rng, commit: bool) -> diskstore::Result<()> {
    let from = rng.below(ACCOUNTS as u64) as i64;
    let to = rng.below(ACCOUNTS as u64) as i64;
    let amount = rng.between(1, 50) as i64;
    let tx = store.begin()?;
    let a = store.get(&from)?.unwrap_or(0);
    let b = store.get(&to)?.unwrap_or(0);
    if from != to {
        store.insert(&from, &(a - amount))?;
        store.insert(&to, &(b + amount))?;
    }
    if commit { tx.commit() } else { tx.rollback() }
}

fn work(store: &Store, proc_: u64, thread: u64, mut rng: Rng, until: Instant) -> Stats {
    let mut s = Stats::default();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let result = match rng.below(100) {
            0..35 => transfer(store, &mut rng, true).map(|()| s.transfers += 1),
            35..40 => transfer(store, &mut rng, false).map(|()| s.rolled_back += 1),
            40..65 => total(store).map(|t| {
                s.snapshots += 1;
                if t != ACCOUNTS * START {
                    s.violations += 1;
                    eprintln!("invariant violated: total {t}");
                }
            }),
            65..80 => store
                .insert(&scratch_key(proc_, thread, n), &(n as i64))
                .map(drop),
            80..90 => store
                .remove(&scratch_key(proc_, thread, rng.below(n)))
                .map(drop),
            90..95 => store
                .get_or_insert(&scratch_key(proc_, thread, n), &-1)
                .map(drop),
            _ => store
                .get(&rng.below(ACCOUNTS as u64).cast_signed())
                .map(drop),
        };
        s.ops += 1;
        match result {
            Ok(()) => {}
            Err(Error::Busy { .. }) => s.busy += 1,
            Err(e) => {
                s.errors += 1;
                eprintln!("unexpected error: {e}");
            }
        }
    }
    s
}

/// The child side: works for the given time and prints its figures.
#[test]
fn contention_child_entry() {
    let Some(role) = support::role() else {
        return; // run directly: nothing to do; the parent test starts this as a child
    };
    let v: Vec<u64> = role
        .strip_prefix("contend:")
        .expect("contend role")
        .split(':')
        .map(|x| x.parse().expect("number"))
        .collect();
    let [proc_, millis, seed] = v[..] else {
        panic!("bad role {role}");
    };
    let path = std::env::var("DISKSTORE_REL_PATH").expect("DISKSTORE_REL_PATH is set");
    let store: Store = DiskStore::open(&path).expect("open");
    let until = Instant::now() + Duration::from_millis(millis);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let rng = Rng::new(seed ^ ((t + 1) * 104_729));
            std::thread::spawn(move || work(&store, proc_, t, rng, until))
        })
        .collect();
    let mut all = Stats::default();
    for h in handles {
        all.add(&h.join().expect("worker thread"));
    }
    println!("\n{}", all.line());
}

#[test]
fn processes_and_threads_keep_the_total_under_contention() {
    if support::role().is_some() {
        return;
    }
    let seed = Rng::seed_from_env("contention");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let store: Store = DiskStore::open(&path).unwrap();
    store.extend((0..ACCOUNTS).map(|k| (k, START))).unwrap();
    let millis = if support::soak() { 60_000 } else { 4_000 };
    let started = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            support::child(ENTRY, &format!("contend:{p}:{millis}:{}", rng.next_u64()))
                .env("DISKSTORE_REL_PATH", &path)
                .spawn()
                .expect("spawn")
        })
        .collect();
    // The parent also checks the total from its own snapshots while the children run.
    let mut parent_checks = 0u64;
    while started.elapsed() < Duration::from_millis(millis) {
        assert_eq!(total(&store).unwrap(), ACCOUNTS * START, "parent snapshot");
        parent_checks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut all = Stats::default();
    for mut child in children {
        let out = child.stdout.take().unwrap();
        // Read to the end: closing the pipe early would fail the child's last prints.
        let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
        let stats = lines.iter().find_map(|l| Stats::parse(l));
        let status = child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
        all.add(&stats.expect("the child printed its figures"));
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(store.check().unwrap().is_empty(), "integrity_check");
    assert_eq!(total(&store).unwrap(), ACCOUNTS * START, "final total");
    println!(
        "contention: {PROCESSES} processes x {THREADS} threads for {secs:.1} s: {} operations \
         ({:.0}/s; {} transfers, {} rolled back, {} snapshot totals + {parent_checks} in the \
         parent), Busy errors: {}, other errors: {}, invariant violations: {}",
        all.ops,
        all.ops as f64 / secs,
        all.transfers,
        all.rolled_back,
        all.snapshots,
        all.busy,
        all.errors,
        all.violations
    );
    assert_eq!(all.violations, 0, "invariant violations");
    assert_eq!(all.errors, 0, "unexpected errors");
    assert_eq!(all.busy, 0, "Busy errors under the default timeout");
    assert!(
        all.transfers > 0 && all.snapshots > 0,
        "the workers did work"
    );
}
