//! Several OS processes on one file. The test binary spawns itself: an environment variable
//! names the child's role, and `--exact <test>` selects the test that plays it.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diskstore::{DiskRead, DiskStore, Error};
use tempfile::TempDir;

const ROLE: &str = "DISKSTORE_TEST_CHILD_ROLE";
const DB: &str = "DISKSTORE_TEST_CHILD_DB";
const WRITERS: i64 = 4;
const INCREMENTS: i64 = 60;
/// What the holder prints once its transaction is open.
const LOCKED: &str = "CHILD-HOLDS-THE-WRITE-LOCK";

/// Starts this test binary again, running only `test`, as `role` on `db`.
fn spawn(test: &str, role: &str, db: &Path) -> Child {
    Command::new(env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DB, db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child and fails with its output if it failed.
fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn child_role() -> Option<(String, PathBuf)> {
    Some((env::var(ROLE).ok()?, PathBuf::from(env::var(DB).ok()?)))
}

/// Adds 1 to both counters in one transaction, `INCREMENTS` times.
fn writer(db: &Path) {
    let s: DiskStore<String, i64> = DiskStore::open(db).unwrap();
    for _ in 0..INCREMENTS {
        let tx = s.begin().unwrap();
        let a = s.get("a").unwrap().unwrap_or(0);
        let b = s.get("b").unwrap().unwrap_or(0);
        s.insert("a", &(a + 1)).unwrap();
        s.insert("b", &(b + 1)).unwrap();
        tx.commit().unwrap();
    }
}

/// Reads both counters in one snapshot until they reach the total; they must always be
/// equal (no torn transaction) and never go down.
fn reader(db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let r: DiskRead<String, i64> = loop {
        match DiskRead::open(db) {
            Ok(r) => break r,
            // The table may not exist yet when the reader starts first.
            Err(Error::Schema { .. } | Error::NotFound { .. }) => {
                assert!(Instant::now() < deadline, "the store never appeared");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let (mut last, mut observations) = (0, 0u64);
    loop {
        let got = r.get_many(&["a", "b"]).unwrap();
        let (a, b) = (got[0].unwrap_or(0), got[1].unwrap_or(0));
        assert_eq!(a, b, "a torn read: a = {a}, b = {b}");
        assert!(a >= last, "went backwards: {a} after {last}");
        last = a;
        observations += 1;
        if a == WRITERS * INCREMENTS {
            break;
        }
        assert!(Instant::now() < deadline, "stuck at {a}");
    }
    println!("reader: {observations} consistent observations");
}

#[test]
fn counters_incremented_by_several_processes_add_up_exactly() {
    const NAME: &str = "counters_incremented_by_several_processes_add_up_exactly";
    if let Some((role, db)) = child_role() {
        match role.as_str() {
            "writer" => writer(&db),
            "reader" => reader(&db),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("counters.db");
    let s: DiskStore<String, i64> = DiskStore::open(&db).unwrap();
    let reader_child = spawn(NAME, "reader", &db);
    let writers: Vec<Child> = (0..WRITERS).map(|_| spawn(NAME, "writer", &db)).collect();
    for (i, w) in writers.into_iter().enumerate() {
        finish(w, &format!("writer {i}"));
    }
    finish(reader_child, "reader");
    let total = WRITERS * INCREMENTS;
    assert_eq!(s.get("a").unwrap(), Some(total));
    assert_eq!(s.get("b").unwrap(), Some(total));
    assert_eq!(s.len().unwrap(), 2);
    assert!(s.check().unwrap().is_empty());
}

#[test]
fn a_transaction_in_another_process_makes_writers_here_busy_then_lands() {
    const NAME: &str = "a_transaction_in_another_process_makes_writers_here_busy_then_lands";
    if let Some((role, db)) = child_role() {
        assert_eq!(role, "holder");
        let s: DiskStore<String, i64> = DiskStore::open(&db).unwrap();
        let tx = s.begin().unwrap();
        s.insert("from child", &1).unwrap();
        println!("{LOCKED}");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        tx.commit().unwrap();
        return;
    }
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("busy.db");
    let s: DiskStore<String, i64> = DiskStore::builder(&db)
        .timeout(Duration::from_millis(300))
        .open()
        .unwrap();
    s.insert("here", &0).unwrap();
    let mut child = spawn(NAME, "holder", &db);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest prints its own text on the same line, so look for the marker anywhere; a
    // child that dies first ends the stream and fails the assertion instead of hanging.
    let first = lines.find(|l| l.as_ref().map_or(true, |l| l.contains(LOCKED)));
    assert!(first.unwrap().unwrap().contains(LOCKED));

    let t0 = Instant::now();
    let r = s.insert("here", &1);
    assert!(matches!(r, Err(Error::Busy { .. })), "{r:?}");
    // The wait honours the timeout: not much less, and nowhere near ten times more.
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // Uncommitted writes of the other process are invisible; reads do not wait.
    assert_eq!(s.get("from child").unwrap(), None);
    assert_eq!(s.get("here").unwrap(), Some(0));

    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    finish(child, "holder");
    assert_eq!(s.get("from child").unwrap(), Some(1));
    s.insert("here", &1).unwrap();
    assert_eq!(s.get("here").unwrap(), Some(1));
}
