//! Checkpoints run by a background thread per file (checkpoint.rs): the WAL stays bounded
//! while writers never checkpoint themselves in the normal case, nothing is lost, the
//! thread ends with the last handle (which still removes the WAL), and a forked child runs
//! its own.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use diskstore::DiskStore;
use tempfile::TempDir;

type Store = DiskStore<String, Vec<u8>>;

fn wal(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Threads of this process named as the checkpointer names its thread.
fn checkpointer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "diskstore-check")
        .count()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// Autocommitted writes of ~1 page each, `n` of them.
fn write_pages(s: &Store, from: usize, n: usize) {
    for i in from..from + n {
        s.insert(&format!("k{i:08}"), &vec![7u8; 3000]).unwrap();
    }
}

#[test]
fn the_thread_checkpoints_keeps_the_wal_bounded_and_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("w.db");
    // A small limit (writer's bound 500 pages, thread from 100) to see it in a short test.
    let s: Store = DiskStore::builder(&path)
        .pragma("wal_autocheckpoint", 500)
        .open()
        .unwrap();
    let page = 4096u64;
    let mut biggest = 0;
    for round in 0..20 {
        write_pages(&s, round * 200, 200);
        biggest = biggest.max(std::fs::metadata(wal(&path)).unwrap().len());
    }
    assert!(
        s.table().background_checkpoints() > 0,
        "the thread never ran"
    );
    // It copied pages into the main file (which holds only the header before a checkpoint).
    let main = std::fs::metadata(&path).unwrap().len();
    assert!(
        main > 300 * page,
        "the main file has {main} bytes: nothing was checkpointed"
    );
    // Bounded by twice the writer's limit (unbounded, it would hold all ~4000 pages
    // written): from there a writer waits for the thread's checkpoint and does its own.
    assert!(biggest <= 1100 * page, "WAL grew to {biggest} bytes");
    assert_eq!(s.len().unwrap(), 4000);
    drop(s);
    assert!(
        wait_until(Duration::from_secs(5), || checkpointer_threads() == 0),
        "the thread outlived the last handle"
    );
    // The last connection's close checkpointed and removed the WAL, as without the thread.
    assert!(!wal(&path).exists(), "the WAL was left behind");
    let s: Store = DiskStore::open(&path).unwrap();
    assert_eq!(s.len().unwrap(), 4000);
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
    assert_eq!(s.get("k00003999").unwrap(), Some(vec![7u8; 3000]));
}

#[test]
fn no_limit_means_no_checkpoints_and_close_all_stops_the_thread() {
    let dir = TempDir::new().unwrap();
    let off: Store = DiskStore::builder(dir.path().join("off.db"))
        .pragma("wal_autocheckpoint", 0)
        .open()
        .unwrap();
    write_pages(&off, 0, 300);
    assert_eq!(off.table().background_checkpoints(), 0);

    let on: Store = DiskStore::builder(dir.path().join("on.db"))
        .pragma("wal_autocheckpoint", 100)
        .open()
        .unwrap();
    write_pages(&on, 0, 300);
    assert!(on.table().background_checkpoints() > 0);
    on.close_all().unwrap();
    // close_all waited for the thread; a later write starts a new one as needed.
    assert!(wait_until(Duration::from_secs(2), || checkpointer_threads() == 0));
    write_pages(&on, 300, 300);
    assert_eq!(on.len().unwrap(), 600);
}

#[test]
fn a_forked_child_runs_its_own_checkpointer() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("f.db");
    let s: Store = DiskStore::builder(&path)
        .pragma("wal_autocheckpoint", 100)
        .open()
        .unwrap();
    write_pages(&s, 0, 150); // the parent's thread is running now
    let before = s.table().background_checkpoints();
    assert!(before > 0);
    // SAFETY: the child only writes through the store, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        write_pages(&s, 1000, 300);
        let ok = s.table().background_checkpoints() > before && s.len().unwrap() == 450;
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    let start = Instant::now();
    loop {
        // SAFETY: our own child, not blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            // SAFETY: our own hung child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child hung");
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(s.len().unwrap(), 450);
    write_pages(&s, 2000, 150);
    assert_eq!(s.len().unwrap(), 600);
}

#[test]
fn closing_the_only_connection_still_removes_the_wal() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("c.db");
    let s: Store = DiskStore::builder(&path)
        .pragma("wal_autocheckpoint", 100)
        .open()
        .unwrap();
    write_pages(&s, 0, 300); // the thread has a connection of its own now
    assert!(s.table().background_checkpoints() > 0);
    s.table().close().unwrap(); // the handle stays open; only this thread's connection closes
    assert!(!wal(&path).exists(), "the WAL was left behind");
    assert_eq!(s.len().unwrap(), 300);
}
