//! Runs workloads in forked children through the simulating VFS, and checks what survives.
//!
//! Per workload: one reference run (no cut, no fault) records the digest of the data after
//! every operation and how many calls of each kind it made. Then:
//! - **cut runs**: the same workload, with the power cut before a random mutating call (or
//!   after the last operation); the child reports each acknowledged operation and, at the
//!   cut, the durable floor; the parent reopens the files through the normal VFS and
//!   checks them;
//! - **fault runs**: the same workload with one planned fault; the child retries a failed
//!   operation as an application would, and checks itself as it goes.

use std::ffi::c_int;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use diskstore::Error;

use crate::support::Rng;
use crate::vfs::{self, CUT_EXIT, CutPolicy, CutStats, Fault, FaultError, FaultKind};
use crate::workload::{self, FileState, Kind, Runner, Workload};

/// The pipe a child writes its report to.
static PIPE: AtomicI32 = AtomicI32::new(-1);

fn say(line: &str) {
    let fd = PIPE.load(Ordering::SeqCst);
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writes from a live buffer to the child's end of the pipe.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

fn report_cut(stats: &CutStats) {
    say(&format!(
        "X {} {} {} {} {} {} {}",
        vfs::floor(),
        stats.pending,
        stats.kept,
        stats.torn,
        stats.lost,
        stats.dir_undone,
        stats.value_pending
    ));
}

/// Runs `body` in a forked child whose default VFS is the simulating one; returns the
/// child's exit status and report lines.
pub fn in_child(body: impl FnOnce()) -> (c_int, Vec<String>) {
    let mut fds = [0 as c_int; 2];
    // SAFETY: plain POSIX calls; the child only runs `body` and leaves with `_exit`.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "pipe");
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::close(fds[0]);
            PIPE.store(fds[1], Ordering::SeqCst);
            vfs::install();
            crate::valuefs::install();
            vfs::on_cut(report_cut);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            if let Err(p) = r {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                say(&format!("V panic: {}", msg.replace('\n', " ")));
                libc::_exit(3);
            }
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let mut text = String::new();
        let mut f = std::fs::File::from_raw_fd(fds[0]);
        let _ = f.read_to_string(&mut text);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        (code, text.lines().map(str::to_owned).collect())
    }
}

/// A fresh, empty folder for one run.
fn fresh(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("creates the run folder");
    dir.join("s.db")
}

/// What the reference run of a workload recorded.
pub struct Reference {
    /// Digest before any operation, then after each one.
    pub digests: Vec<u64>,
    /// Calls made: mutating, writes, syncs, truncates, reads.
    pub counts: vfs::Counts,
    /// Cache entries evicted (or purged as expired) by `set`s.
    pub evicted: u64,
    /// Value-file caches: the content before any operation, then after each one.
    pub files: Vec<FileState>,
}

/// Reports the value-file cache's content (`M <rows> <key>=<hash>,...`).
fn say_file_state(r: &mut Runner<'_>) {
    if r.w.kind != Kind::FileCache {
        return;
    }
    let st = r
        .handle
        .as_ref()
        .ok_or_else(|| "not open".to_string())
        .and_then(|h| workload::file_cache_state(h).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| fail(&format!("reading the value files: {e}")));
    let values: Vec<String> = st.values.iter().map(|(k, h)| format!("{k}={h}")).collect();
    say(&format!("M {} {}", st.rows, values.join(",")));
}

fn parse_file_state(parts: &[&str]) -> FileState {
    let values = parts
        .get(2)
        .map(|v| {
            v.split(',')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, h) = kv.split_once('=')?;
                    Some((k.to_string(), h.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    FileState {
        rows: parts.get(1).and_then(|r| r.parse().ok()).unwrap_or(0),
        values,
    }
}

/// Runs the workload once, uncut, recording the digest after every operation.
///
/// # Errors
/// A description when the run failed (an error without any fault is itself a finding).
pub fn reference(w: &Workload, dir: &Path) -> Result<Reference, String> {
    let path = fresh(dir);
    let (code, lines) = in_child(|| {
        vfs::reset(
            w.seed,
            CutPolicy {
                keep: 100,
                tear: 0,
                sector: 512,
                lie: false,
            },
        );
        let mut r = Runner::new(w, &path);
        let d = r
            .digest()
            .unwrap_or_else(|e| fail(&format!("digest before: {e}")));
        say(&format!("D {d}"));
        say_file_state(&mut r);
        let mut evicted = 0;
        for (i, op) in w.ops.iter().enumerate() {
            let keys = |r: &Runner<'_>| {
                r.handle
                    .as_ref()
                    .map(|h| workload::cache_keys(h).unwrap_or_default())
                    .unwrap_or_default()
            };
            let before = keys(&r);
            if let Err(e) = r.apply(op) {
                fail(&format!("op {i} {}: {e}", op.label()));
            }
            if let workload::Op::Set(k, ..) = op {
                let after = keys(&r);
                evicted += before
                    .iter()
                    .filter(|b| *b != k && !after.contains(b))
                    .count();
            }
            let d = r
                .digest()
                .unwrap_or_else(|e| fail(&format!("digest {i}: {e}")));
            say(&format!("D {d}"));
            say_file_state(&mut r);
        }
        say(&format!("E {evicted}"));
        let c = vfs::counts();
        say(&format!(
            "C {} {} {} {} {}",
            c.mutations, c.writes, c.syncs, c.truncates, c.reads
        ));
    });
    let mut digests = Vec::new();
    let mut counts = None;
    let mut evicted = 0;
    let mut files = Vec::new();
    for l in &lines {
        if l.starts_with("M ") {
            files.push(parse_file_state(&l.split(' ').collect::<Vec<_>>()));
        }
        let mut parts = l.split(' ');
        match parts.next() {
            Some("E") => evicted = parts.next().and_then(|d| d.parse().ok()).unwrap_or(0),
            Some("D") => digests.push(parts.next().and_then(|d| d.parse().ok()).unwrap_or(0)),
            Some("C") => {
                let n: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
                counts = Some(vfs::Counts {
                    mutations: n[0],
                    writes: n[1],
                    syncs: n[2],
                    truncates: n[3],
                    reads: n[4],
                    injected: 0,
                });
            }
            _ => {}
        }
    }
    match counts {
        Some(counts) if code == 0 && digests.len() == w.ops.len() + 1 => Ok(Reference {
            digests,
            counts,
            evicted,
            files,
        }),
        _ => Err(format!(
            "reference run failed (exit {code}): {}",
            lines.join(" / ")
        )),
    }
}

fn fail(msg: &str) -> ! {
    say(&format!("V {}", msg.replace('\n', " ")));
    // SAFETY: ends the child at once.
    unsafe { libc::_exit(2) }
}

/// The outcome of one cut.
#[derive(Default)]
pub struct CutOutcome {
    /// Violations found (empty = fine).
    pub violations: Vec<String>,
    /// Unsynced writes at the cut, and how they fared.
    pub stats: CutStats,
    /// True when the cut came after the last operation.
    pub at_end: bool,
    /// The operation the cut came in (its label's first word), if any.
    pub during: Option<String>,
    /// Value-file caches: entries that read as a miss after the cut (allowed at NORMAL).
    pub misses: u64,
    /// The survivor failed `integrity_check` or did not open (a violation but at OFF).
    pub damaged: bool,
}

/// The cut policy of cut number `j` of a workload (`rng` from the case seed).
fn policy(rng: &mut Rng, lie: bool) -> CutPolicy {
    let (keep, tear) = match rng.below(6) {
        0 => (0, 0),
        1 => (100, 0),
        2 => (0, 60),
        _ => (rng.below(80), rng.below(40)),
    };
    CutPolicy {
        keep,
        tear,
        sector: if rng.chance(50) { 512 } else { 4096 },
        lie,
    }
}

/// Cuts the power during `w` once (case seed `seed`) and checks what survives (`lie`: on a
/// file system whose fsync makes nothing durable).
pub fn cut(w: &Workload, reference: &Reference, seed: u64, dir: &Path, lie: bool) -> CutOutcome {
    let path = fresh(dir);
    let mut rng = Rng::new(seed);
    let policy = policy(&mut rng, lie);
    // Uniform over the mutating calls, plus "after the last operation".
    let cut_at = 1 + rng.below(reference.counts.mutations + 1);
    let (code, lines) = in_child(|| {
        vfs::reset(seed, policy);
        vfs::cut_before(cut_at);
        let mut r = Runner::new(w, &path);
        say("B 0");
        if let Err(e) = r.ensure_open() {
            fail(&format!("open: {e}"));
        }
        for (i, op) in w.ops.iter().enumerate() {
            say(&format!("B {}", i + 1));
            if let Err(e) = r.apply(op) {
                fail(&format!("op {} {}: {e}", i + 1, op.label()));
            }
            vfs::set_acked(i as u64 + 1);
            say(&format!("A {}", i + 1));
        }
        say("E");
        vfs::cut_now();
    });
    let mut out = CutOutcome::default();
    let mut acked = 0u64;
    let mut begun = None;
    let mut floor = None;
    for l in &lines {
        let parts: Vec<&str> = l.split(' ').collect();
        match parts[0] {
            "A" => acked = parts[1].parse().unwrap_or(0),
            "B" => begun = parts[1].parse::<usize>().ok(),
            "E" => out.at_end = true,
            "X" => {
                let n: Vec<u64> = parts[1..].iter().filter_map(|p| p.parse().ok()).collect();
                floor = Some(n[0]);
                out.stats = CutStats {
                    pending: n[1],
                    kept: n[2],
                    torn: n[3],
                    lost: n[4],
                    dir_undone: n[5],
                    value_pending: n[6],
                };
            }
            "V" => out.violations.push(format!("child: {}", &l[2..])),
            _ => {}
        }
    }
    if code != CUT_EXIT || floor.is_none() {
        out.violations.push(format!(
            "the child did not end in a cut (exit {code}): {}",
            lines.join(" / ")
        ));
        return out;
    }
    out.during = match begun {
        _ if out.at_end => None,
        Some(0) => Some("Open".into()),
        Some(i) => Some(
            w.ops[i - 1]
                .label()
                .split('(')
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        None => None,
    };
    let floor = floor.unwrap_or(0);
    let lo = if w.config.full() { acked } else { floor };
    let hi = (acked + 1).min(w.ops.len() as u64);
    let (violations, misses, damaged) = check_survivor(w, &path, reference, lo, hi);
    out.violations.extend(violations);
    out.misses = misses;
    out.damaged = damaged;
    out
}

/// Opens the survivor through the normal VFS and checks it: opens, `integrity_check`
/// clean, data = the state after operation `k` for some `lo <= k <= hi`, cache accounting
/// exact, a probe write works.
fn check_survivor(
    w: &Workload,
    path: &Path,
    reference: &Reference,
    lo: u64,
    hi: u64,
) -> (Vec<String>, u64, bool) {
    if w.kind == Kind::FileCache {
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::filecheck::check(w, path, reference, lo, hi)
        }));
        return checked.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (vec![format!("panic while checking: {msg}")], 0, false)
        });
    }
    let mut v = Vec::new();
    let clock = std::sync::Arc::new(diskstore::ManualClock::new(std::time::Duration::from_secs(
        1_000_000,
    )));
    // A migrated file is read with the new type (migrating it if the cut came before).
    let h = match workload::open(w, path, &clock, true) {
        Ok(h) => h,
        Err(e) => {
            v.push(format!("the file does not open: {e}"));
            return (v, 0, true);
        }
    };
    match workload::integrity(&h) {
        Ok(p) if p.is_empty() => {}
        Ok(p) => v.push(format!("integrity_check: {}", p.join("; "))),
        Err(e) => v.push(format!("integrity_check failed: {e}")),
    }
    match workload::digest(w.kind, &h) {
        Ok(d) => {
            let found: Vec<u64> = (0..reference.digests.len() as u64)
                .filter(|&k| reference.digests[k as usize] == d)
                .collect();
            if !found.iter().any(|&k| k >= lo && k <= hi) {
                v.push(format!(
                    "the data is not the state after any operation {lo}..={hi} (it matches {found:?})"
                ));
            }
        }
        Err(e) => v.push(format!("reading the data failed: {e}")),
    }
    v.extend(workload::after_checks(&h, "after the cut"));
    drop(h);
    (v, 0, false)
}

/// The outcome of one fault run.
#[derive(Default)]
pub struct FaultOutcome {
    /// Violations found.
    pub violations: Vec<String>,
    /// Faults injected (0 when the planned call never came).
    pub injected: u64,
    /// Operations that failed with a clear error.
    pub errors: u64,
    /// The plan, for the report.
    pub plan: Option<Fault>,
    /// True when the run ended in a power cut (checked like a cut run).
    pub cut: bool,
}

/// True for the errors an I/O fault may cause: an I/O error, a full disk, or the
/// engine's "rolled back by SQLite after an earlier error".
fn clear(e: &Error) -> bool {
    match e {
        Error::DiskFull { .. } | Error::Io { .. } => true,
        Error::Sqlite(s) => matches!(
            s.sqlite_error_code(),
            Some(diskstore::rusqlite::ErrorCode::SystemIoFailure)
        ),
        Error::Usage(m) => m.contains("rolled back by SQLite"),
        _ => false,
    }
}

/// Plans a fault for `w` from the reference counts.
fn plan(rng: &mut Rng, c: &vfs::Counts) -> Fault {
    let (kind, of) = match rng.below(10) {
        0..4 => (FaultKind::Write, c.writes),
        4..7 => (FaultKind::Sync, c.syncs),
        7..8 => (FaultKind::Truncate, c.truncates),
        _ => (FaultKind::Read, c.reads),
    };
    let (kind, of) = if of == 0 {
        (FaultKind::Write, c.writes)
    } else {
        (kind, of)
    };
    let error = match kind {
        FaultKind::Write => {
            [FaultError::Eio, FaultError::Enospc, FaultError::Short][rng.below(3) as usize]
        }
        _ => FaultError::Eio,
    };
    Fault {
        kind,
        nth: 1 + rng.below(of.max(1)),
        count: [1, 1, 2, 3, 5][rng.below(5) as usize],
        error,
    }
}

/// Runs `w` with one injected fault (case seed `seed`); the child retries failed
/// operations and checks, after each, that the data is the state before or after it (and
/// after it once it succeeded); then, with the fault gone, that the reopened file is
/// intact and holds every operation.
pub fn fault(w: &Workload, reference: &Reference, seed: u64, dir: &Path) -> FaultOutcome {
    let path = fresh(dir);
    let mut rng = Rng::new(seed);
    let plan = plan(&mut rng, &reference.counts);
    // Half of the runs end in a power cut instead of a clean close.
    let then_cut = rng.chance(50);
    let cut_policy = policy(&mut rng, false);
    let (code, lines) = in_child(|| {
        vfs::reset(
            seed,
            if then_cut {
                cut_policy
            } else {
                CutPolicy {
                    keep: 100,
                    tear: 0,
                    sector: 512,
                    lie: false,
                }
            },
        );
        vfs::set_fault(Some(plan));
        let mut errors = 0u64;
        let mut r = Runner::new(w, &path);
        // An attempt may fail only when a fault was injected during it.
        let note = |what: &str, e: &Error, before: u64| {
            let now = vfs::counts().injected;
            if !clear(e) {
                say(&format!("V {what}: not an I/O error: {e:?}"));
            } else if now == before && now > 0 {
                say(&format!("V {what}: failed after the fault was gone: {e}"));
            } else if now == 0 {
                say(&format!("V {what}: failed before any fault: {e}"));
            }
        };
        let d = &reference.digests;
        for (i, op) in w.ops.iter().enumerate() {
            let mut attempts = 0;
            loop {
                attempts += 1;
                if attempts > 40 {
                    fail(&format!("op {} {} still fails", i + 1, op.label()));
                }
                let before = vfs::counts().injected;
                vfs::trace(&format!("op {} {}", i + 1, op.label()));
                match r.apply(op) {
                    Ok(()) => break,
                    Err(e) => {
                        errors += 1;
                        note(&format!("op {} {}", i + 1, op.label()), &e, before);
                        // Before the retry: the data is the state before or after it.
                        if let Ok(got) = r.digest()
                            && got != d[i]
                            && got != d[i + 1]
                        {
                            say(&format!(
                                "V op {} {} failed ({e}) and left data that is neither the state before nor after it",
                                i + 1,
                                op.label()
                            ));
                        }
                    }
                }
            }
            // Acknowledged: the data must be the state after it.
            let mut tries = 0;
            loop {
                tries += 1;
                let before = vfs::counts().injected;
                match r.digest() {
                    Ok(got) => {
                        if got != d[i + 1] {
                            say(&format!(
                                "V op {} {} was acknowledged but the data is not the state after it",
                                i + 1,
                                op.label()
                            ));
                        }
                        break;
                    }
                    Err(e) => {
                        note("reading back", &e, before);
                        if tries > 40 {
                            fail("reading back still fails");
                        }
                    }
                }
            }
            vfs::set_acked(i as u64 + 1);
            say(&format!("A {}", i + 1));
        }
        let injected = vfs::counts().injected;
        if then_cut {
            say(&format!("F {injected} {errors}"));
            vfs::cut_now();
        }
        vfs::set_fault(None);
        r.handle = None;
        // Reopened with every connection closed: the file holds every operation.
        let mut again = Runner::new(w, &path);
        again.migrated = r.migrated;
        again.clock = r.clock.clone();
        match again.ensure_open() {
            Err(e) => say(&format!("V reopening after the fault: {e}")),
            Ok(()) => {
                let h = again.handle.as_ref().expect("open");
                match workload::integrity(h) {
                    Ok(p) if p.is_empty() => {}
                    other => say(&format!("V integrity after the fault: {other:?}")),
                }
                match workload::digest(w.kind, h) {
                    Ok(got) if got == d[w.ops.len()] => {}
                    other => say(&format!(
                        "V after reopening, the data is not the final state: {other:?}"
                    )),
                }
                for problem in workload::after_checks(h, "after the fault") {
                    say(&format!("V {problem}"));
                }
            }
        }
        say(&format!("F {injected} {errors}"));
    });
    let mut out = FaultOutcome {
        plan: Some(plan),
        cut: then_cut,
        ..FaultOutcome::default()
    };
    let mut acked = 0;
    let mut floor = None;
    for l in &lines {
        let parts: Vec<&str> = l.split(' ').collect();
        match parts[0] {
            "F" => {
                out.injected = parts[1].parse().unwrap_or(0);
                out.errors = parts[2].parse().unwrap_or(0);
            }
            "A" => acked = parts[1].parse().unwrap_or(0),
            "X" => floor = parts.get(1).and_then(|f| f.parse::<u64>().ok()),
            "V" => out.violations.push(l[2..].to_string()),
            _ => {}
        }
    }
    if then_cut && code == CUT_EXIT {
        // Every operation was acknowledged; with NORMAL the floor is the last -wal sync.
        let lo = if w.config.full() {
            acked
        } else {
            floor.unwrap_or(0)
        };
        let hi = (acked + 1).min(w.ops.len() as u64);
        out.violations
            .extend(check_survivor(w, &path, reference, lo, hi).0);
    } else if code != 0 && out.violations.is_empty() {
        out.violations.push(format!(
            "the child failed (exit {code}): {}",
            lines.join(" / ")
        ));
    }
    out
}
