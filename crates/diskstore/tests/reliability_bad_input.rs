//! Bad input: every case must end in a clear error (or correct data), never a panic, and
//! must not damage data that was there before.
//!
//! Covers damaged files (random byte corruption and truncation, many seeds), a file that
//! is not SQLite, a table with other columns or types, a read-only mount, a missing file,
//! a full disk, keys and values over SQLite's size limit, table names full of SQL, and NaN
//! keys. The read-only and full-disk cases mount a small tmpfs (the tests run as root, as
//! CI does); they fail, loudly, where mounting is impossible.

#[path = "reliability_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use diskstore::rusqlite::{self, Connection};
use diskstore::{DiskRead, DiskStore, Error};
use support::{Rng, TmpMount};

type Store = DiskStore<String, String>;

fn remove_store_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// A store with small values, a few multi-page values and keys in several pages, fully
/// checkpointed into the main file (no `-wal` left). Returns its contents.
fn build_sample(path: &Path) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    {
        let store: Store = DiskStore::open(path).unwrap();
        for i in 0..400 {
            let big = i % 50 == 7;
            let v = format!("value {i} ") + &"abcdefghij".repeat(if big { 4000 } else { 20 });
            data.insert(format!("key-{i:04}"), v);
        }
        store.extend(data.iter()).unwrap();
    }
    assert!(
        !sidecar(path, "-wal").exists(),
        "closing the last connection checkpoints"
    );
    data
}

/// What one damaged file did.
#[derive(Default, Debug)]
struct Outcome {
    clean: u64,
    errors: BTreeMap<String, u64>,
    silently_changed: u64,
}

fn kind(e: &Error) -> Option<&'static str> {
    Some(match e {
        Error::Corrupt { .. } => "Corrupt",
        Error::NotADatabase { .. } => "NotADatabase",
        Error::Decode { .. } => "Decode",
        Error::Schema { .. } => "Schema",
        // A header whose write version is newer than SQLite knows: readable, not writable.
        Error::ReadOnly { .. } => "ReadOnly",
        // A damaged record header that claims a value longer than SQLite's length limit
        // (seed 1796581485431810695, case 133): SQLite reports TOOBIG, not CORRUPT.
        Error::TooBig(_) => "TooBig",
        _ => return None,
    })
}

/// Records a clear error (the first one wins); an unclear one fails the case.
fn note(first: &mut Option<&'static str>, e: Error) -> Result<(), String> {
    match kind(&e) {
        Some(k) => {
            first.get_or_insert(k);
            Ok(())
        }
        None => Err(format!("unclear error for a damaged file: {e:?}")),
    }
}

/// Uses a damaged file in every way; an error must be one of the clear kinds.
fn exercise(path: &Path, data: &BTreeMap<String, String>, out: &mut Outcome) -> Result<(), String> {
    let mut first = None;
    let store: Store = match DiskStore::open(path) {
        Ok(s) => s,
        Err(e) => {
            note(&mut first, e)?;
            *out.errors
                .entry(first.unwrap_or_default().into())
                .or_default() += 1;
            return Ok(());
        }
    };
    let mut changed = false;
    if let Err(e) = store.len() {
        note(&mut first, e)?;
    }
    for item in store.iter() {
        match item {
            Ok((k, v)) => changed |= data.get(&k) != Some(&v),
            Err(e) => note(&mut first, e)?,
        }
    }
    for (k, v) in data.iter().step_by(7) {
        match store.get(k) {
            Ok(got) => changed |= got.as_ref() != Some(v),
            Err(e) => note(&mut first, e)?,
        }
    }
    match store.check() {
        Ok(problems) if problems.is_empty() => {}
        Ok(_) => {
            first.get_or_insert("check() listed problems");
        }
        Err(e) => note(&mut first, e)?,
    }
    if let Err(e) = store.insert("new", &"value".to_string()) {
        note(&mut first, e)?;
    }
    match first {
        Some(k) => *out.errors.entry(k.into()).or_default() += 1,
        None if changed => out.silently_changed += 1,
        None => out.clean += 1,
    }
    Ok(())
}

fn damage(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let len = bytes.len() as u64;
    match rng.below(5) {
        0 => {
            let n = rng.between(1, 9);
            for _ in 0..n {
                let at = rng.below(len) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            format!("{n} bit flips")
        }
        1 => {
            let at = rng.below(len) as usize;
            let n = (rng.between(16, 4096) as usize).min(bytes.len() - at);
            for b in &mut bytes[at..at + n] {
                *b = rng.next_u64() as u8;
            }
            format!("{n} random bytes at {at}")
        }
        2 => {
            let page = 16384;
            let pages = bytes.len() / page;
            let p = rng.below(pages as u64) as usize;
            bytes[p * page..(p + 1) * page].fill(0);
            format!("page {p} zeroed")
        }
        3 => {
            let at = rng.below(len) as usize;
            bytes.truncate(at);
            format!("truncated to {at}")
        }
        _ => {
            let at = rng.below(100) as usize;
            bytes[at] = rng.next_u64() as u8;
            format!("header byte {at} changed")
        }
    }
}

#[test]
fn damaged_files_give_clear_errors_never_a_panic() {
    let seed = Rng::seed_from_env("corruption");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    let data = build_sample(&original);
    let pristine = std::fs::read(&original).unwrap();
    let path = dir.path().join("damaged.db");
    let cases = if support::soak() { 3000 } else { 300 };
    let mut out = Outcome::default();
    for case in 0..cases {
        let mut bytes = pristine.clone();
        let what = damage(&mut rng, &mut bytes);
        remove_store_files(&path);
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = exercise(&path, &data, &mut out) {
            panic!("case {case} ({what}, seed {seed}): {e}");
        }
    }
    println!(
        "corruption: {cases} damaged files: {} read back unchanged, {} gave clear errors {:?}, \
         {} returned changed data without an error (SQLite keeps no checksums of values)",
        out.clean,
        out.errors.values().sum::<u64>(),
        out.errors,
        out.silently_changed
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "These are my notes, not a database.\n".repeat(40);
    std::fs::write(&path, &text).unwrap();
    let before = support::snapshot(dir.path());
    assert!(matches!(
        Store::open(&path),
        Err(Error::NotADatabase { .. })
    ));
    assert!(matches!(
        DiskRead::<String, String>::open(&path),
        Err(Error::NotADatabase { .. })
    ));
    assert!(
        support::snapshot(dir.path()) == before,
        "the file and its folder are unchanged"
    );
    // A short file of garbage (shorter than an SQLite header) too.
    std::fs::write(&path, b"\x00\x01garbage").unwrap();
    let before = support::snapshot(dir.path());
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert!(support::snapshot(dir.path()) == before, "unchanged");
}

#[test]
fn an_unsupported_schema_format_in_the_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    build_sample(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[47] = 9; // the schema format number (bytes 44..48) only knows 1 to 4
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("unsupported file format"), "{err}");
}

fn table_sql(conn: &Connection, table: &str) -> Option<String> {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )
    .ok()
}

#[test]
fn a_table_with_other_columns_is_a_schema_error_and_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wrong value type",
            "CREATE TABLE \"DiskStore\" (_key TEXT PRIMARY KEY, value INTEGER)",
            "INSERT INTO \"DiskStore\" VALUES ('a', 1)",
        ),
        (
            "no _key column",
            "CREATE TABLE \"DiskStore\" (id TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO \"DiskStore\" VALUES ('a', 'x')",
        ),
        (
            "wrong key type",
            "CREATE TABLE \"DiskStore\" (_key INTEGER PRIMARY KEY, value TEXT)",
            "INSERT INTO \"DiskStore\" VALUES (1, 'x')",
        ),
        (
            "extra NOT NULL column without default",
            "CREATE TABLE \"DiskStore\" (_key TEXT PRIMARY KEY, value TEXT, owner TEXT NOT NULL)",
            "INSERT INTO \"DiskStore\" VALUES ('a', 'x', 'me')",
        ),
    ];
    for (i, (what, create, insert)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("foreign{i}.db"));
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!("{create}; {insert};")).unwrap();
        }
        let err = Store::open(&path)
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        assert!(matches!(err, Error::Schema { .. }), "{what}: {err:?}");
        assert!(!err.to_string().is_empty());
        match DiskRead::<String, String>::open(&path) {
            // Reading ignores an extra column; only writes would fail on it.
            Ok(ro) if i == 3 => assert_eq!(ro.get("a").unwrap().as_deref(), Some("x")),
            Ok(_) => panic!("{what}: opened read-only"),
            Err(err) => assert!(matches!(err, Error::Schema { .. }), "{what}: {err:?}"),
        }
        let c = Connection::open(&path).unwrap();
        assert_eq!(
            table_sql(&c, "DiskStore").as_deref(),
            Some(*create),
            "{what}: the table definition is unchanged"
        );
        let rows: i64 = c
            .query_row("SELECT count(*) FROM \"DiskStore\"", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "{what}: the row is still there");
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "{what}: no table was added");
    }
}

#[test]
fn a_missing_file_is_not_found_for_diskread_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let err = DiskRead::<String, String>::open(&path)
        .err()
        .expect("refused");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing created"
    );
    let deep = dir.path().join("no/such/folder/s.db");
    let err = Store::open(&deep).err().expect("refused");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(!dir.path().join("no").exists());
}

fn mount(size: &str) -> TmpMount {
    TmpMount::new(size).unwrap_or_else(|e| {
        panic!("this test needs a tmpfs mount (root, as in CI), and mounting failed: {e}")
    })
}

#[test]
fn a_read_only_mount_refuses_writes_clearly_reads_fine_and_keeps_the_data() {
    let m = mount("8m");
    let path = m.path("ro.db");
    let data = build_sample(&path);
    // A second store as a crash leaves it: committed data still in its -wal and -shm.
    let crashed = m.path("crashed.db");
    let crashed_data = {
        let store: Store = DiskStore::open(m.path("live.db")).unwrap();
        store.extend(data.iter().take(50)).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            std::fs::copy(
                sidecar(&m.path("live.db"), suffix),
                sidecar(&crashed, suffix),
            )
            .unwrap();
        }
        data.iter()
            .take(50)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert!(std::fs::metadata(sidecar(&crashed, "-wal")).unwrap().len() > 0);
    m.remount(true).unwrap();
    let before = support::snapshot(&m.dir);

    let err = Store::open(&path).err().expect("read-write open refused");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let err = Store::open(m.path("new.db")).err().expect("no new file");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");

    let ro = DiskRead::<String, String>::open(&path).unwrap();
    let got: BTreeMap<String, String> = ro.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        got, data,
        "a read-only store reads everything from read-only media"
    );
    assert!(ro.check().unwrap().is_empty());
    let ro = DiskRead::<String, String>::open(&crashed).unwrap();
    let got: BTreeMap<String, String> = ro.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        got, crashed_data,
        "committed data in a leftover -wal is read too"
    );
    drop(ro);
    assert_eq!(
        support::snapshot(&m.dir),
        before,
        "nothing changed on the mount"
    );

    m.remount(false).unwrap();
    let store: Store = DiskStore::open(&path).unwrap();
    let got: BTreeMap<String, String> = store.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, data);
    store.insert("after", &"rw again".to_string()).unwrap();
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn a_full_disk_fails_the_write_keeps_what_was_committed_and_recovers() {
    let m = mount("3m");
    let path = m.path("full.db");
    let filler = m.path("filler");
    std::fs::write(&filler, vec![7u8; 1 << 20]).unwrap();
    let store: Store = DiskStore::open(&path).unwrap();
    let mut committed = BTreeMap::new();
    let chunk = "z".repeat(50_000);
    let full = loop {
        let key = format!("k{:05}", committed.len());
        let value = format!("{key}:{chunk}");
        match store.insert(&key, &value) {
            Ok(()) => {
                committed.insert(key, value);
            }
            Err(e) => break e,
        }
        assert!(committed.len() < 10_000, "the 3 MB disk never filled");
    };
    assert!(matches!(full, Error::DiskFull { .. }), "{full:?}");
    assert!(committed.len() > 5, "some writes fitted first");

    // A transaction that hits the full disk leaves nothing behind.
    let tx_err = store
        .extend((0..40).map(|i| (format!("tx{i}"), chunk.clone())))
        .expect_err("the batch cannot fit");
    assert!(matches!(tx_err, Error::DiskFull { .. }), "{tx_err:?}");
    assert!(
        !store.contains_key("tx0").unwrap(),
        "no part of the batch was kept"
    );

    let got: BTreeMap<String, String> = store.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, committed, "everything committed before is readable");
    assert!(store.check().unwrap().is_empty());

    std::fs::remove_file(&filler).unwrap();
    store.insert("after", &"space again".to_string()).unwrap();
    assert_eq!(store.get("after").unwrap().as_deref(), Some("space again"));
    drop(store);
    let reopened: Store = DiskStore::open(&path).unwrap();
    assert_eq!(reopened.len().unwrap(), committed.len() as u64 + 1);
    assert!(reopened.check().unwrap().is_empty());
}

/// Lowers SQLite's length limit on this thread's connection (its reads) and on the file's
/// writer connection (every write; `with_connection` reaches it inside a transaction).
fn limit_length(store: &Store, bytes: i32) {
    let limit = || {
        store
            .table()
            .with_connection(|c| {
                // SAFETY: the handle is an open connection this thread uses now;
                // sqlite3_limit only changes a per-connection setting.
                unsafe {
                    rusqlite::ffi::sqlite3_limit(
                        c.handle(),
                        rusqlite::ffi::SQLITE_LIMIT_LENGTH,
                        bytes,
                    );
                }
                Ok(())
            })
            .unwrap();
    };
    limit();
    let tx = store.begin().unwrap();
    limit();
    tx.rollback().unwrap();
}

#[test]
fn keys_and_values_over_the_size_limit_are_too_big_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Store = DiskStore::open(dir.path().join("big.db")).unwrap();
    store.insert("small", &"fine".to_string()).unwrap();
    limit_length(&store, 10_000);
    let huge = "h".repeat(20_000);
    let err = store.insert("k", &huge).expect_err("value refused");
    assert!(matches!(err, Error::TooBig(_)), "{err:?}");
    let err = store
        .insert(&huge, &"v".to_string())
        .expect_err("key refused");
    assert!(matches!(err, Error::TooBig(_)), "{err:?}");
    let err = store
        .get(&huge)
        .expect_err("lookup with a too-big key refused");
    assert!(matches!(err, Error::TooBig(_)), "{err:?}");
    let err = store
        .extend([("a", "ok".to_string()), ("b", huge.clone())])
        .expect_err("batch refused");
    assert!(matches!(err, Error::TooBig(_)), "{err:?}");
    assert_eq!(
        store.len().unwrap(),
        1,
        "nothing of the failed batch was kept"
    );
    assert_eq!(store.get("small").unwrap().as_deref(), Some("fine"));
    store.insert("after", &"still works".to_string()).unwrap();
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn table_names_full_of_sql_stay_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.db");
    let victim: Store = DiskStore::builder(&path).table("victim").open().unwrap();
    victim.insert("precious", &"data".to_string()).unwrap();
    let names = [
        "with space",
        "quote\"inside",
        "\"",
        "'single'",
        "x\"; DROP TABLE victim; --",
        "Robert'); DROP TABLE victim;--",
        "[brackets]",
        "`backticks`",
        "victim\" (a); CREATE TABLE evil(x",
        "ünïcödé 表",
        "semi;colon",
    ];
    for name in names {
        let s: Store = DiskStore::builder(&path)
            .table(name)
            .open()
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        s.insert(name, &name.to_string()).unwrap();
        assert_eq!(s.get(name).unwrap().as_deref(), Some(name));
    }
    let c = Connection::open(&path).unwrap();
    let mut tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    tables.sort();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.push("victim".into());
    expected.sort();
    assert_eq!(
        tables, expected,
        "exactly these tables, with exactly these names"
    );
    assert_eq!(victim.get("precious").unwrap().as_deref(), Some("data"));
    for bad in ["", "nul\0inside"] {
        let err = DiskStore::<String, String>::builder(&path)
            .table(bad)
            .open()
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Usage(_)), "{bad:?}: {err:?}");
    }
}

#[test]
fn nan_keys_are_invalid_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s: DiskStore<f64, String> = DiskStore::open(dir.path().join("nan.db")).unwrap();
    let v = "v".to_string();
    let nan = f64::NAN;
    let invalid = |r: Result<(), Error>| assert!(matches!(r, Err(Error::InvalidKey(_))), "{r:?}");
    invalid(s.insert(&nan, &v));
    invalid(s.add(&nan, &v).map(drop));
    invalid(s.get(&nan).map(drop));
    invalid(s.contains_key(&nan).map(drop));
    invalid(s.remove(&nan).map(drop));
    invalid(s.get_or_insert(&nan, &v).map(drop));
    invalid(s.get_many(&[1.0, nan]).map(drop));
    let first = s.range(nan..).next().expect("an error item");
    assert!(matches!(first, Err(Error::InvalidKey(_))), "{first:?}");
    assert_eq!(s.len().unwrap(), 0, "nothing written");
    // The other special floats are fine keys; -0.0 and 0.0 are one key.
    for k in [
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
    ] {
        s.insert(&k, &v).unwrap();
    }
    assert_eq!(s.len().unwrap(), 4);
    assert_eq!(s.get(&f64::INFINITY).unwrap(), Some(v));
}

/// The child side of the permission test: runs as an unprivileged user (root ignores
/// permission bits) and prints what opening for writing and for reading gave.
#[test]
fn permission_child_entry() {
    let Some(role) = support::role() else {
        return; // run directly: nothing to do; the parent test starts this as a child
    };
    let path = role.strip_prefix("perm:").expect("perm role");
    let write = match Store::open(path).and_then(|s| s.insert("new", &"x".to_string())) {
        Ok(()) => "written".to_string(),
        Err(Error::ReadOnly { .. }) => "ReadOnly".to_string(),
        Err(e) => format!("other: {e:?}"),
    };
    let read = match DiskRead::<String, String>::open(path).and_then(|r| r.len()) {
        Ok(n) => format!("read {n}"),
        Err(e) => format!("read error: {e:?}"),
    };
    println!("\nRESULT {write} / {read}");
}

fn as_nobody(path: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let out = support::child(
        "permission_child_entry",
        &format!("perm:{}", path.display()),
    )
    .uid(65534)
    .gid(65534)
    .output()
    .expect("run the child as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"))
}

#[test]
fn a_read_only_file_and_a_read_only_folder_refuse_writes_and_still_read() {
    use std::os::unix::fs::PermissionsExt;
    if support::role().is_some() {
        return;
    }
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let root = tempfile::tempdir().unwrap();
    set(root.path(), 0o755);
    // A read-only file in a writable folder.
    let dir = root.path().join("rofile");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("s.db");
    let data = build_sample(&file);
    set(&dir, 0o777);
    set(&file, 0o444);
    let before = std::fs::read(&file).unwrap();
    assert_eq!(as_nobody(&file), format!("ReadOnly / read {}", data.len()));
    assert!(
        std::fs::read(&file).unwrap() == before,
        "the file is unchanged"
    );
    // A writable file in a read-only folder (no -wal or -shm can be created).
    let dir = root.path().join("rodir");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("s.db");
    build_sample(&file);
    set(&file, 0o666);
    set(&dir, 0o555);
    let before = support::snapshot(&dir);
    assert_eq!(as_nobody(&file), format!("ReadOnly / read {}", data.len()));
    assert!(support::snapshot(&dir) == before, "the folder is unchanged");
    // And a new store in a read-only folder.
    assert!(as_nobody(&dir.join("new.db")).starts_with("ReadOnly / read error: NotFound"));
    assert!(!dir.join("new.db").exists());
}
