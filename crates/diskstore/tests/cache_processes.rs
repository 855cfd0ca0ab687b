//! Several processes at once: `incr` from 4 processes × 2 threads is exact, and hit/miss
//! statistics from another process reach this one. The test binary spawns itself as the
//! worker processes (selected by an environment variable).

use std::path::Path;
use std::process::Command;

use diskstore::{DiskCache, Stats};

const ROLE: &str = "DISKSTORE_CACHE_TEST_ROLE";
const FILE: &str = "DISKSTORE_CACHE_TEST_FILE";
const PROCESSES: usize = 4;
const THREADS: usize = 2;
const INCREMENTS: i64 = 250;

/// Runs this test binary's `test` in a child process with the given role.
fn spawn(test: &str, role: &str, file: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(FILE, file)
        .spawn()
        .unwrap()
}

fn child_role() -> Option<(String, std::path::PathBuf)> {
    let role = std::env::var(ROLE).ok()?;
    Some((role, std::env::var(FILE).unwrap().into()))
}

#[test]
fn incr_from_four_processes_of_two_threads_is_exact() {
    if let Some((role, file)) = child_role() {
        assert_eq!(role, "incr");
        let c: DiskCache<String, i64> = DiskCache::open(&file).unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..INCREMENTS {
                        c.incr("counter", 1, 0).unwrap();
                        c.decr("down", 1, 0).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.db");
    // Create the file first so the children do not race to create it.
    let c: DiskCache<String, i64> = DiskCache::open(&file).unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            spawn(
                "incr_from_four_processes_of_two_threads_is_exact",
                "incr",
                &file,
            )
        })
        .collect();
    for mut ch in children {
        assert!(ch.wait().unwrap().success());
    }
    let total = (PROCESSES * THREADS) as i64 * INCREMENTS;
    assert_eq!(c.get("counter").unwrap(), Some(total));
    assert_eq!(c.get("down").unwrap(), Some(-total));
    assert_eq!(
        c.volume().unwrap(),
        ("counter".len() + 8 + "down".len() + 8) as u64
    );
}

#[test]
fn stats_from_another_process_are_counted() {
    if let Some((role, file)) = child_role() {
        assert_eq!(role, "reader");
        let c: DiskCache<String, String> = DiskCache::open(&file).unwrap();
        for _ in 0..7 {
            assert!(c.get("present").unwrap().is_some());
        }
        for _ in 0..3 {
            assert!(c.get("absent").unwrap().is_none());
        }
        return; // dropping the handle writes the counts out
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.db");
    let c: DiskCache<String, String> = DiskCache::open(&file).unwrap();
    c.set("present", &"v".to_string(), None).unwrap();
    c.get("present").unwrap();
    let mut ch = spawn("stats_from_another_process_are_counted", "reader", &file);
    assert!(ch.wait().unwrap().success());
    assert_eq!(c.stats().unwrap(), Stats { hits: 8, misses: 3 });
}
