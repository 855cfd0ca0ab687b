//! The checks after a cut of a value-file cache ([`Kind::FileCache`]), reopened through
//! the normal path:
//! - `FULL` and `NORMAL`: the file opens, passes `integrity_check`, and its rows are the
//!   state after an operation `k` in the allowed range; every entry reads, through the
//!   cache, exactly its value in that state, or (`NORMAL` only, for a value kept in a
//!   file: docs/cache.md allows a row to outlive its unsynced file) a miss; never other
//!   bytes, never an error;
//! - `OFF` (nothing is synced, so SQLite promises nothing about the rows): every value that
//!   reads is one that key had in some state: never other bytes;
//! - then `check_files(fix)` leaves no orphan and no broken entry, the totals match the
//!   entries, and a probe write works.
//!
//! [`Kind::FileCache`]: crate::workload::Kind::FileCache

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diskstore::ManualClock;

use crate::harness::Reference;
use crate::workload::{self, Handle, Workload};

/// How one entry read through the cache.
enum Read {
    Value(u64),
    Miss,
    Failed(String),
}

/// Checks the survivor at `path` (see the module); returns the violations, how many
/// entries read as a miss, and whether the file was damaged (allowed at `OFF` only).
pub fn check(
    w: &Workload,
    path: &Path,
    reference: &Reference,
    lo: u64,
    hi: u64,
) -> (Vec<String>, u64, bool) {
    let mut v = Vec::new();
    let off = w.config.off();
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let h = match workload::open(w, path, &clock, true) {
        Ok(h) => h,
        Err(_) if off => return (v, 0, true),
        Err(e) => return (vec![format!("the file does not open: {e}")], 0, true),
    };
    let Handle::Cache(cache) = &h else {
        return (vec!["not a cache".into()], 0, false);
    };
    // OFF: a damaged file is allowed (SQLite promises nothing without syncs).
    let damaged = match workload::integrity(&h) {
        Ok(p) if p.is_empty() => None,
        Ok(p) => Some(format!("integrity_check: {}", p.join("; "))),
        Err(e) => Some(format!("integrity_check failed: {e}")),
    };
    if let Some(d) = &damaged
        && !off
    {
        v.push(d.clone());
    }
    let state = match workload::file_cache_state(&h) {
        Ok(s) => s,
        Err(_) if off => return (v, 0, true),
        Err(e) => {
            v.push(format!("reading the rows failed: {e}"));
            return (v, 0, damaged.is_some());
        }
    };
    let in_files: HashSet<String> = workload::with_connection(&h, |c| {
        let mut st = c.prepare("SELECT _key FROM Cache WHERE _file IS NOT NULL")?;
        let keys = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(keys)
    })
    .unwrap_or_default();
    // Every entry, read through the cache (a damaged or missing file reads as a miss and
    // removes the entry; the rows were read above).
    let reads: Vec<(String, Read)> = state
        .values
        .iter()
        .map(|(k, _)| {
            let r = match cache.get(k.as_str()) {
                Ok(Some(value)) => Read::Value(workload::value_hash(value.as_bytes())),
                Ok(None) => Read::Miss,
                Err(e) => Read::Failed(e.to_string()),
            };
            (k.clone(), r)
        })
        .collect();
    let misses = reads
        .iter()
        .filter(|(_, r)| matches!(r, Read::Miss))
        .count() as u64;
    if off {
        // Only "never wrong bytes": each value read is one its key had at some point.
        let mut ever: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for st in &reference.files {
            for (k, h) in &st.values {
                ever.entry(k.as_str()).or_default().insert(*h);
            }
        }
        for (k, r) in &reads {
            if let Read::Value(h) = r
                && !ever.get(k.as_str()).is_some_and(|s| s.contains(h))
            {
                v.push(format!("OFF: entry {k} reads bytes it never had"));
            }
        }
    } else {
        let candidates: Vec<usize> = (lo as usize..=hi as usize)
            .filter(|&k| reference.files.get(k).is_some_and(|s| s.rows == state.rows))
            .collect();
        if candidates.is_empty() {
            let found: Vec<usize> = (0..reference.files.len())
                .filter(|&k| reference.files[k].rows == state.rows)
                .collect();
            v.push(format!(
                "the rows are not the state after any operation {lo}..={hi} (they match {found:?})"
            ));
        } else {
            let verdicts: Vec<Vec<String>> = candidates
                .iter()
                .map(|&k| entry_problems(w, &reference.files[k].values, &reads, &in_files))
                .collect();
            if !verdicts.iter().any(Vec::is_empty) {
                v.push(format!(
                    "entries after operation {}: {}",
                    candidates[0],
                    verdicts[0].join("; ")
                ));
            }
        }
    }
    // No orphan (and no broken entry) survives check_files(fix) (unless at OFF the file
    // is damaged: an index that lost rows hides them from the fix's deletes).
    let table = cache.cache_table();
    let off_damaged = off && damaged.is_some();
    match table.check_files(true, Duration::ZERO) {
        _ if off_damaged => {}
        Ok(_) => match table.check_files(false, Duration::ZERO) {
            Ok(p) if p.is_empty() => {}
            Ok(p) => v.push(format!(
                "after check_files(fix): {} ({})",
                p.join("; "),
                damaged.as_deref().unwrap_or("integrity_check clean")
            )),
            Err(e) if !off => v.push(format!("check_files after fixing failed: {e}")),
            Err(_) => {}
        },
        Err(e) if !off => v.push(format!("check_files(fix) failed: {e}")),
        Err(_) => {}
    }
    if !off {
        v.extend(workload::after_checks(&h, "after the cut"));
    }
    drop(h);
    (v, misses, damaged.is_some())
}

/// What is wrong with `reads` against the state `expected`: other bytes, errors, and
/// misses where they are not allowed (`FULL`, or a value kept in the table).
fn entry_problems(
    w: &Workload,
    expected: &[(String, u64)],
    reads: &[(String, Read)],
    in_files: &HashSet<String>,
) -> Vec<String> {
    let expected: BTreeMap<&str, u64> = expected.iter().map(|(k, h)| (k.as_str(), *h)).collect();
    let mut p = Vec::new();
    for (k, r) in reads {
        let want = expected.get(k.as_str());
        match r {
            Read::Value(h) if Some(h) == want => {}
            Read::Value(_) => p.push(format!("{k} reads other bytes")),
            Read::Miss if w.config.full() => p.push(format!(
                "{k} (acknowledged, synchronous=FULL) reads as a miss"
            )),
            Read::Miss if !in_files.contains(k) => {
                p.push(format!("{k} (kept in the table) reads as a miss"))
            }
            Read::Miss => {}
            Read::Failed(e) => p.push(format!("reading {k} failed: {e}")),
        }
    }
    p
}
