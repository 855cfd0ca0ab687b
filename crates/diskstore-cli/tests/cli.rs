//! Runs the built `diskstore` binary on real files and checks what it prints, what it
//! changes and how it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use diskstore::rusqlite::{Connection, types::Value as Sql};
use diskstore::{DiskCache, DiskRead, DiskStore, ManualClock};
use tempfile::TempDir;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diskstore"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    stdout(&o)
}

/// Asserts a clean failure: the given exit code, one line on stderr containing `needle`,
/// and no panic.
fn fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
}

fn fixture(dir: &TempDir, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../diskstore/tests/fixtures")
        .join(name);
    let dst = dir.path().join(name);
    std::fs::copy(&src, &dst).expect("fixture present");
    dst
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every row of every table of a file, with SQLite's exact types, in insertion order.
fn contents(path: &Path) -> Vec<(String, Vec<Vec<Sql>>)> {
    let conn = Connection::open(path).unwrap();
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.retain(|n| !n.starts_with("sqlite_"));
    names
        .into_iter()
        .map(|t| {
            let mut st = conn
                .prepare(&format!(
                    "SELECT * FROM \"{}\" ORDER BY rowid",
                    t.replace('"', "\"\"")
                ))
                .unwrap();
            let width = st.column_count();
            let rows = st
                .query_map([], |r| (0..width).map(|i| r.get::<_, Sql>(i)).collect())
                .unwrap()
                .collect::<Result<Vec<Vec<Sql>>, _>>()
                .unwrap();
            (t, rows)
        })
        .collect()
}

/// Compares two values exactly (floats by bit pattern, so -0.0 and 0.0 differ).
fn same(a: &Sql, b: &Sql) -> bool {
    match (a, b) {
        (Sql::Real(x), Sql::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// A file with every awkward value: NULLs, infinities, -0.0, extreme integers,
/// non-ASCII text, empty and large blobs, in a multi-column table and a BLOB-keyed one.
fn awkward_file(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("awkward.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        r#"CREATE TABLE "Odd ""name""" (_key BLOB PRIMARY KEY NOT NULL, a, b INTEGER, c REAL DEFAULT -9e999, d TEXT NOT NULL DEFAULT 'it''s');
           CREATE TABLE plain (x, y);"#,
    )
    .unwrap();
    let rows: Vec<(Sql, Sql, Sql, Sql, Sql)> = vec![
        (
            Sql::Integer(i64::MAX),
            Sql::Null,
            Sql::Integer(i64::MIN),
            Sql::Real(f64::INFINITY),
            Sql::Text("é ✓ \n\"".into()),
        ),
        (
            Sql::Real(-0.0),
            Sql::Real(-0.0),
            Sql::Integer(9_007_199_254_740_993),
            Sql::Real(f64::NEG_INFINITY),
            Sql::Text(String::new()),
        ),
        (
            Sql::Text("text key".into()),
            Sql::Blob(vec![]),
            Sql::Null,
            Sql::Real(0.1),
            Sql::Text("x".into()),
        ),
        (
            Sql::Blob(vec![0, 255, 10]),
            Sql::Blob((0..5000).map(|i| i as u8).collect()),
            Sql::Integer(0),
            Sql::Null,
            Sql::Text("y".into()),
        ),
        (
            Sql::Real(1e300),
            Sql::Real(5e-324),
            Sql::Integer(-1),
            Sql::Real(1.0),
            Sql::Text("z".into()),
        ),
    ];
    for (k, a, b, c, d) in rows {
        conn.execute(
            r#"INSERT INTO "Odd ""name""" VALUES (?1, ?2, ?3, ?4, ?5)"#,
            [k, a, b, c, d],
        )
        .unwrap();
    }
    conn.execute("INSERT INTO plain VALUES (1, 2)", []).unwrap();
    path
}

/// The value columns of one row, read with plain SQLite.
fn row(path: &Path, table: &str, key: &str) -> Vec<Sql> {
    let conn = Connection::open(path).unwrap();
    let mut st = conn
        .prepare(&format!("SELECT * FROM \"{table}\" WHERE _key = ?1"))
        .unwrap();
    let width = st.column_count();
    st.query_row([key], |r| (1..width).map(|i| r.get(i)).collect())
        .unwrap()
}

#[test]
fn help_is_there_for_every_command() {
    for cmd in [
        "info", "ls", "get", "set", "rm", "export", "import", "check", "vacuum", "bench",
    ] {
        let out = ok(&[cmd, "--help"]);
        assert!(out.contains("Usage: diskstore"), "{cmd}: {out}");
    }
    assert!(ok(&["--help"]).contains("export"));
}

#[test]
fn info_describes_a_file_of_the_python_original() {
    let dir = TempDir::new().unwrap();
    let v07 = fixture(&dir, "v07.db");
    let text = ok(&["info", p(&v07)]);
    assert!(text.contains("\"DiskStore\": 4 rows, key BLOB"), "{text}");
    assert!(text.contains("Python diskstore 0.7.0"), "{text}");
    assert!(
        text.contains("label TEXT NOT NULL DEFAULT \"none\""),
        "{text}"
    );
    assert!(text.contains("page size 16384"), "{text}");
    assert!(text.contains(diskstore::sqlite_version()), "{text}");

    let doc: serde_json::Value = serde_json::from_str(&ok(&["info", p(&v07), "--json"])).unwrap();
    let tables = doc["tables"].as_array().unwrap();
    let rows = |name: &str| {
        tables.iter().find(|t| t["name"] == name).unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("DiskStore"), 4);
    assert_eq!(rows("Point"), 3);
    assert_eq!(doc["journal_mode"], "wal");
    assert_eq!(doc["page_size"], 16384);

    let v01 = fixture(&dir, "v01.db");
    assert!(ok(&["info", p(&v01)]).contains("Python diskstore 0.1.0"));
}

#[test]
fn info_counts_live_and_expired_cache_entries() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cache.db");
    // A clock far in the past: a 60 s entry set then has long expired in real time, and
    // one set to live 3e9 s (until 2065) has not.
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
    let cache: DiskCache<String, String> = DiskCache::builder(&path).clock(clock).open().unwrap();
    cache
        .set("stale", &"x".repeat(100), Some(Duration::from_secs(60)))
        .unwrap();
    cache
        .set(
            "fresh",
            &"y".repeat(10),
            Some(Duration::from_secs(3_000_000_000)),
        )
        .unwrap();
    cache
        .set("forever", &"z".into(), Some(diskstore::NEVER))
        .unwrap();
    drop(cache);
    let text = ok(&["info", p(&path)]);
    assert!(text.contains("cache: 2 live, 1 expired"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&ok(&["info", p(&path), "--json"])).unwrap();
    let cache = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t.get("cache").is_some())
        .expect("a cache table")["cache"]
        .clone();
    assert_eq!(
        (cache["live"].as_u64(), cache["expired"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(cache["bytes"].as_u64().unwrap() >= 111);
}

#[test]
fn ls_lists_in_insertion_order_with_limit_reverse_and_prefix() {
    let dir = TempDir::new().unwrap();
    let v07 = fixture(&dir, "v07.db");
    let lines = |args: &[&str]| -> Vec<String> { ok(args).lines().map(str::to_owned).collect() };
    // DiskStore holds {1: b"int key", "a": "text value", b"b": 7, 2.5: 0.5}.
    assert_eq!(
        lines(&["ls", p(&v07)]),
        [
            "1  x'696e74206b6579'",
            "\"a\"  \"text value\"",
            "x'62'  7",
            "2.5  0.5"
        ]
    );
    assert_eq!(
        lines(&["ls", p(&v07), "--reverse", "--limit", "2"]),
        ["2.5  0.5", "x'62'  7"]
    );
    // TextKeys holds "alpha", "", "ünïcode ✓", "zeta".
    let t = ["ls", p(&v07), "--table", "TextKeys", "--prefix"];
    assert_eq!(
        lines(&[&t[..], &["ü"]].concat()),
        ["\"ünïcode ✓\"  \"snow ☃\""]
    );
    assert_eq!(lines(&[&t[..], &["zz"]].concat()), Vec::<String>::new());
    let all: Vec<String> = lines(&[&t[..], &[""]].concat());
    assert_eq!(all.len(), 4);
    let rev: Vec<String> = lines(&[&t[..], &["", "--reverse"]].concat());
    assert_eq!(rev, all.iter().rev().cloned().collect::<Vec<_>>());
    // Point has several columns, shown by name.
    let points = lines(&["ls", p(&v07), "-t", "Point", "-n", "1"]);
    assert_eq!(points, ["\"p1\"  x=1, y=2.5, label=\"one\", data=x'01'"]);
    // --json prints dump lines.
    let json = lines(&["ls", p(&v07), "--json"]);
    let first: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"key": 1, "fields": {"value": {"b64": "aW50IGtleQ=="}}})
    );
}

#[test]
fn ls_needs_a_table_when_there_are_several() {
    let dir = TempDir::new().unwrap();
    let v01 = fixture(&dir, "v01.db");
    fails(&run(&["ls", p(&v01)]), 1, "pick one with --table");
    fails(&run(&["ls", p(&v01), "-t", "Nope"]), 1, "no table \"Nope\"");
}

#[test]
fn get_prints_values_readably() {
    let dir = TempDir::new().unwrap();
    let v07 = fixture(&dir, "v07.db");
    let f = p(&v07);
    assert_eq!(ok(&["get", f, "a"]), "text value\n");
    // A BLOB key column reads keys as text unless told otherwise.
    assert_eq!(
        ok(&["get", f, "1", "--key-type", "int"]),
        "x'696e74206b6579'\n"
    );
    assert_eq!(
        ok(&["get", f, "1", "--key-type", "int", "--bytes", "base64"]),
        "b64'aW50IGtleQ=='\n"
    );
    let raw = run(&["get", f, "1", "--key-type", "int", "--bytes", "raw"]);
    assert_eq!(raw.stdout, b"int key");
    assert_eq!(ok(&["get", f, "62", "--key-type", "hex"]), "7\n");
    assert_eq!(ok(&["get", f, "2.5", "--key-type", "float"]), "0.5\n");
    fails(&run(&["get", f, "1"]), 1, "add --key-type int");
    // Typed keys of the column's own type need no flag.
    assert_eq!(ok(&["get", f, "-t", "IntKeys", "--", "-5"]), "x'6e6567'\n");
    assert_eq!(
        ok(&["get", f, "-t", "Point", "p2"]),
        "x: -3\ny: 0.0\nlabel: \"none\"\ndata: x''\n"
    );
    let line: serde_json::Value =
        serde_json::from_str(&ok(&["get", f, "-t", "FloatKeys", "inf", "--json"])).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"key": {"real": "inf"}, "fields": {"value": {"real": "-inf"}}})
    );
    fails(
        &run(&["get", f, "-t", "IntKeys", "x"]),
        2,
        "not a 64-bit integer",
    );
}

#[test]
fn set_and_rm_change_the_file() {
    let dir = TempDir::new().unwrap();
    let v07 = fixture(&dir, "v07.db");
    let f = p(&v07);
    ok(&["set", f, "new", "value ✓"]);
    ok(&["set", f, "--value-type", "hex", "bin", "00ff"]);
    // Columns left out at the end take their defaults (data DEFAULT x'').
    ok(&[
        "set",
        f,
        "-t",
        "Point",
        "--value-type",
        "auto",
        "p9",
        "7",
        "-1.5",
        "seven",
    ]);
    fails(
        &run(&["set", f, "-t", "Point", "p9", "7"]),
        2,
        "column \"y\" has no default",
    );
    fails(
        &run(&["set", f, "-t", "Point", "p9", "1", "2", "3", "4", "5"]),
        2,
        "4 value column(s) (x, y, label, data)",
    );
    fails(
        &run(&["set", f, "-t", "Point", "p9", "x", "1", "a", "b"]),
        2,
        "column \"x\"",
    );

    assert_eq!(row(&v07, "DiskStore", "new"), [Sql::Text("value ✓".into())]);
    assert_eq!(row(&v07, "DiskStore", "bin"), [Sql::Blob(vec![0, 255])]);
    assert_eq!(
        row(&v07, "Point", "p9"),
        [
            Sql::Integer(7),
            Sql::Real(-1.5),
            Sql::Text("seven".into()),
            Sql::Blob(vec![])
        ]
    );
    ok(&["rm", f, "new", "bin"]);
    fails(
        &run(&["rm", f, "new", "a"]),
        1,
        "not found in table \"DiskStore\": \"new\"",
    );
    assert_eq!(
        ok(&["ls", f]).lines().count(),
        3,
        "\"a\" was removed, \"new\" was not there"
    );
}

#[test]
fn set_create_makes_a_file_the_library_reads() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("new.db");
    fails(&run(&["set", p(&path), "k", "v"]), 1, "no such store file");
    assert!(!path.exists(), "a failed set must not create the file");
    ok(&["set", "--create", p(&path), "k", "v"]);
    ok(&[
        "set",
        "--create",
        p(&path),
        "--value-type",
        "int",
        "n",
        "12",
    ]);
    let store: DiskRead<String, String> = DiskRead::open(&path).unwrap();
    assert_eq!(store.get("k").unwrap().as_deref(), Some("v"));
    assert_eq!(row(&path, "DiskStore", "n"), [Sql::Integer(12)]);
}

#[test]
fn export_then_import_round_trips_every_value_exactly() {
    let dir = TempDir::new().unwrap();
    for src in [
        fixture(&dir, "v07.db"),
        fixture(&dir, "v01.db"),
        awkward_file(&dir),
    ] {
        let dump = run(&["export", p(&src)]);
        assert!(dump.status.success(), "{}", stderr(&dump));
        let copy = dir.path().join(format!(
            "copy-{}",
            src.file_name().unwrap().to_str().unwrap()
        ));
        let imported = run_with_stdin(&["import", p(&copy), "--batch", "2"], &dump.stdout);
        assert!(imported.status.success(), "{}", stderr(&imported));

        let mut want = contents(&src);
        want.retain(|(t, _)| t != "plain"); // not a store table: skipped, with a note
        let got = contents(&copy);
        assert_eq!(got.len(), want.len());
        for ((ta, ra), (tb, rb)) in want.iter().zip(&got) {
            assert_eq!(ta, tb);
            assert_eq!(ra.len(), rb.len(), "rows of {ta}");
            for (x, y) in ra.iter().zip(rb) {
                assert!(
                    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
                    "{ta}: {x:?} != {y:?}"
                );
            }
        }
        // A second export of the copy is the same dump, apart from the header's date.
        let again = run(&["export", p(&copy)]);
        let body = |o: &Output| {
            stdout(o)
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(body(&dump), body(&again));
    }
    let awkward = dir.path().join("awkward.db");
    let note = stderr(&run(&["export", p(&awkward)]));
    assert!(note.contains("skipping table \"plain\""), "{note}");
}

#[test]
fn import_replaces_existing_keys_and_keeps_defaults() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s.db");
    let store: DiskStore<String, String> = DiskStore::open(&path).unwrap();
    store.insert("a", &"old".into()).unwrap();
    drop(store);
    let dump = concat!(
        "{\"format\":\"diskstore-dump\",\"version\":1}\n",
        "{\"table\":\"DiskStore\",\"key_type\":\"TEXT\",\"columns\":[{\"name\":\"value\",\"type\":\"TEXT\",\"not_null\":true}]}\n",
        "\n",
        "{\"key\":\"a\",\"fields\":{\"value\":\"new\"}}\n",
        "{\"key\":\"b\",\"fields\":{\"value\":\"two\"}}\n",
        "{\"table\":\"T\",\"key_type\":\"INTEGER\",\"columns\":[{\"name\":\"v\",\"type\":\"REAL\",\"not_null\":true,\"default\":{\"real\":\"-inf\"}}]}\n",
        "{\"key\":{\"int\":\"9223372036854775807\"},\"fields\":{}}\n",
    );
    let o = run_with_stdin(&["import", p(&path)], dump.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("imported 3 rows into 2 table(s)"),
        "{}",
        stderr(&o)
    );
    let store: DiskRead<String, String> = DiskRead::open(&path).unwrap();
    assert_eq!(store.get("a").unwrap().as_deref(), Some("new"));
    assert_eq!(store.get("b").unwrap().as_deref(), Some("two"));
    let conn = Connection::open(&path).unwrap();
    let v: f64 = conn
        .query_row("SELECT v FROM T WHERE _key = ?1", [i64::MAX], |r| r.get(0))
        .unwrap();
    assert_eq!(
        v,
        f64::NEG_INFINITY,
        "the column default fills the missing field"
    );
}

#[test]
fn import_stops_at_a_bad_line_and_keeps_earlier_batches() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("s.db");
    let head = "{\"format\":\"diskstore-dump\",\"version\":1}\n{\"table\":\"DiskStore\",\"key_type\":\"TEXT\",\"columns\":[{\"name\":\"value\",\"type\":\"BLOB\"}]}\n";
    let dump = format!(
        "{head}{{\"key\":\"a\",\"fields\":{{\"value\":1}}}}\n{{\"key\":\"b\",\"fields\":{{\"value\":2}}}}\n{{\"key\":\"c\",\"fields\":{{\"value\":3}}}}\n{{\"key\": oops}}\n"
    );
    let o = run_with_stdin(&["import", p(&path), "--batch", "2"], dump.as_bytes());
    fails(&o, 1, "<stdin> line 6: invalid JSON");
    let store: DiskRead<String, i64> = DiskRead::open(&path).unwrap();
    assert_eq!(
        store.len().unwrap(),
        2,
        "the first batch (a, b) stays, c rolls back"
    );
    assert_eq!(store.get("c").unwrap(), None);

    let cases: [(&str, &str); 6] = [
        ("{\"key\":1}\n", "line 1: not a diskstore dump"),
        (
            "{\"format\":\"diskstore-dump\",\"version\":9}\n",
            "version Some(9) is not supported",
        ),
        (
            "{\"format\":\"diskstore-dump\",\"version\":1}\n{\"key\":1}\n",
            "line 2: a row before any table line",
        ),
        (
            &format!("{head}{{\"key\":null,\"fields\":{{\"value\":1}}}}\n"),
            "line 3: key: NULL cannot be a key",
        ),
        (
            &format!("{head}{{\"key\":\"k\",\"fields\":{{\"nope\":1}}}}\n"),
            "line 3: field \"nope\" is not a column",
        ),
        ("", "the dump is empty"),
    ];
    for (i, (input, needle)) in cases.iter().enumerate() {
        let o = run_with_stdin(
            &["import", p(&dir.path().join(format!("e{i}.db")))],
            input.as_bytes(),
        );
        fails(&o, 1, needle);
    }
}

#[test]
fn missing_and_foreign_files_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing.db");
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "hello, this is not a database at all, just some text......",
    )
    .unwrap();
    let m = p(&missing);
    let t = p(&text);
    for args in [
        vec!["info", m],
        vec!["ls", m],
        vec!["get", m, "k"],
        vec!["rm", m, "k"],
        vec!["export", m],
        vec!["check", m],
        vec!["vacuum", m],
    ] {
        fails(&run(&args), 1, &format!("no such store file: {m}"));
    }
    for args in [
        vec!["info", t],
        vec!["ls", t],
        vec!["get", t, "k"],
        vec!["set", t, "k", "v"],
        vec!["export", t],
        vec!["check", t],
        vec!["vacuum", t],
    ] {
        fails(&run(&args), 1, &format!("{t}: not an SQLite database"));
    }
    assert!(!missing.exists(), "reading never creates a file");
    fails(&run(&["info", p(dir.path())]), 1, "not a file");
}

#[test]
fn check_passes_a_healthy_file_and_fails_a_damaged_one() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("c.db");
    let store: DiskStore<i64, Vec<u8>> = DiskStore::open(&path).unwrap();
    for i in 0..2000 {
        store.insert(&i, &vec![i as u8; 300]).unwrap();
    }
    store
        .table()
        .with_connection(|c| Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
        .unwrap();
    drop(store);
    assert!(ok(&["check", p(&path)]).contains(": ok ("));
    // Overwrite the middle of the file (past the header and schema pages) with junk.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 20_000].fill(0x5a);
    std::fs::write(&path, bytes).unwrap();
    let o = run(&["check", p(&path)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    assert!(stderr(&o).contains(p(&path)), "{}", stderr(&o));
}

#[test]
fn vacuum_gives_space_back() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("v.db");
    let store: DiskStore<i64, Vec<u8>> = DiskStore::open(&path).unwrap();
    for i in 0..500 {
        store.insert(&i, &vec![1; 4000]).unwrap();
    }
    store.clear().unwrap();
    store.insert(&1, &vec![2; 10]).unwrap();
    drop(store);
    let size = |p: &Path| {
        let wal = PathBuf::from(format!("{}-wal", p.display()));
        std::fs::metadata(p).unwrap().len() + std::fs::metadata(wal).map_or(0, |m| m.len())
    };
    let before = size(&path);
    let out = ok(&["vacuum", p(&path)]);
    assert!(out.contains(" → "), "{out}");
    assert!(size(&path) < before / 4, "{} → {}", before, size(&path));
    let store: DiskRead<i64, Vec<u8>> = DiskRead::open(&path).unwrap();
    assert_eq!(store.get(&1).unwrap(), Some(vec![2; 10]));
}

#[test]
fn bench_json_has_every_op_for_both_systems() {
    let dir = TempDir::new().unwrap();
    let o = run(&[
        "bench",
        "--ops",
        "40",
        "--value-size",
        "64",
        "--json",
        "--mp-seconds",
        "0.2",
        "--dir",
        p(dir.path()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["ops"], 40);
    assert_eq!(doc["value_size"], 64);
    assert!(doc["date"].as_str().unwrap().ends_with('Z'));
    let timer = doc["timer_us"].as_f64().unwrap();
    assert!(timer > 0.0 && timer < 10.0, "{timer}");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 20);
    for system in ["diskstore-rust", "sqlite-floor-rust"] {
        let mp = results
            .iter()
            .find(|r| r["op"] == "mp" && r["system"] == system)
            .unwrap_or_else(|| panic!("{system} mp missing"));
        // Two processes doing at least one stride of 64 ops each in 0.2 s.
        assert!(mp["ops_per_s"].as_f64().unwrap() >= 640.0, "{mp}");
    }
    for op in [
        "set",
        "set-overwrite",
        "get",
        "get-miss",
        "contains",
        "delete",
        "bulk",
        "iterate",
        "len",
    ] {
        for system in ["diskstore-rust", "sqlite-floor-rust"] {
            let r = results
                .iter()
                .find(|r| r["op"] == op && r["system"] == system)
                .unwrap_or_else(|| panic!("{system} {op} missing"));
            assert!(r["median_us"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["mean_us"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary files are removed"
    );

    let table = run(&[
        "bench",
        "--ops",
        "20",
        "--mp-seconds",
        "0",
        "--dir",
        p(dir.path()),
    ]);
    let text = stdout(&table);
    assert!(
        text.contains("set-overwrite") && text.contains('×') && !text.contains("mp "),
        "{text}"
    );
    let zero = run(&["bench", "--ops", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(stderr(&zero).contains("--ops"));
    let negative = run(&["bench", "--mp-seconds=-1"]);
    assert_eq!(negative.status.code(), Some(2));
    assert!(stderr(&negative).contains("--mp-seconds"));
}

#[test]
fn bytes_prefixes_and_single_table_exports() {
    let dir = TempDir::new().unwrap();
    let v07 = fixture(&dir, "v07.db");
    let f = p(&v07);
    // BytesKeys holds b"abc", b"", b"\x00\xff".
    let hex = ok(&[
        "ls",
        f,
        "-t",
        "BytesKeys",
        "--key-type",
        "hex",
        "--prefix",
        "00",
    ]);
    assert_eq!(hex.lines().collect::<Vec<_>>(), ["x'00ff'  -1"]);
    let b64 = ok(&[
        "ls",
        f,
        "-t",
        "BytesKeys",
        "--key-type",
        "base64",
        "--prefix",
        "YWI=",
    ]);
    assert_eq!(b64.lines().count(), 1, "{b64}");
    assert!(b64.starts_with("x'616263'"), "{b64}");
    fails(
        &run(&["ls", f, "--key-type", "int", "--prefix", "1"]),
        2,
        "text or bytes prefix",
    );

    let dump = ok(&["export", f, "--table", "Point"]);
    let lines: Vec<serde_json::Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1 + 1 + 3);
    assert_eq!(lines[0]["format"], "diskstore-dump");
    assert_eq!(lines[1]["table"], "Point");
    assert_eq!(lines[1]["rows"], 3);
    assert_eq!(lines[1]["columns"][2]["default"], "none");
    assert_eq!(lines[3]["fields"]["data"], serde_json::json!({"b64": ""}));
}

#[test]
fn a_cache_dump_imports_into_a_cache_that_works() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cache.db");
    let cache: DiskCache<String, String> = DiskCache::open(&path).unwrap();
    cache
        .set("a", &"alpha".into(), Some(Duration::from_secs(3600)))
        .unwrap();
    cache
        .set("b", &"beta".repeat(50), Some(diskstore::NEVER))
        .unwrap();
    let volume = cache.volume().unwrap();
    drop(cache);

    let dump = run(&["export", p(&path)]);
    assert!(dump.status.success(), "{}", stderr(&dump));
    assert!(
        stderr(&dump).is_empty(),
        "bookkeeping tables are skipped quietly"
    );
    let copy = dir.path().join("copy.db");
    let o = run_with_stdin(&["import", p(&copy)], &dump.stdout);
    assert!(o.status.success(), "{}", stderr(&o));

    let again: DiskCache<String, String> = DiskCache::open(&copy).unwrap();
    assert_eq!(again.get("a").unwrap().as_deref(), Some("alpha"));
    assert_eq!(again.get("b").unwrap(), Some("beta".repeat(50)));
    assert_eq!(again.len().unwrap(), 2);
    assert_eq!(again.volume().unwrap(), volume, "the byte total is rebuilt");
}
