//! `bench`: the standard workload (text keys, blob values) on ours and on the raw-SQLite
//! floor (plain rusqlite, the same SQL and pragmas, `prepare_cached`), interleaved in one
//! process so that both see the same machine. Each op is timed on its own (iteration in
//! runs of 1024 entries, see [`ITER_CHUNK`]); the report is the median (and mean) per op,
//! and the ratio ours / floor.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diskstore::rusqlite::{Connection, params};
use diskstore::{DEFAULT_PRAGMAS, DiskStore, KeyRef};

use crate::fail::{Fail, Outcome};
use crate::mp;

/// The ops of the workload, in report order.
pub const OPS: [&str; 10] = [
    "set",
    "set-overwrite",
    "get",
    "get-miss",
    "contains",
    "delete",
    "bulk",
    "iterate",
    "len",
    "mp",
];

/// How many ops run on one system before the other gets its turn.
const CHUNK: usize = 64;

/// How many entries one timed sample of `iterate` covers (four of ours' 256-row pages).
const ITER_CHUNK: usize = 1024;

pub(crate) const TABLE: &str = "kv";
const CREATE: &str =
    r#"CREATE TABLE IF NOT EXISTS "kv" (_key TEXT PRIMARY KEY NOT NULL, "value" BLOB NOT NULL)"#;
pub(crate) const UPSERT: &str = r#"INSERT INTO "kv" (_key, "value") VALUES (?1, ?2) ON CONFLICT(_key) DO UPDATE SET "value" = excluded."value""#;
pub(crate) const GET: &str = r#"SELECT _key, "value" FROM "kv" WHERE _key = ?1"#;
const CONTAINS: &str = r#"SELECT 1 FROM "kv" WHERE _key = ?1"#;
const DELETE: &str = r#"DELETE FROM "kv" WHERE _key = ?1"#;
const COUNT: &str = r#"SELECT COUNT(*) FROM "kv""#;
const SCAN: &str = r#"SELECT _key, "value" FROM "kv" ORDER BY rowid"#;

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// `diskstore-rust` or `sqlite-floor-rust`.
    pub system: &'static str,
    /// The op.
    pub op: &'static str,
    /// Median of the per-op timings, µs.
    pub median_us: f64,
    /// Mean of the per-op timings, µs.
    pub mean_us: f64,
    /// Throughput, for mp (whose timings are NaN).
    pub ops_per_s: Option<f64>,
}

fn summarise(system: &'static str, op: &'static str, mut ns: Vec<u64>) -> Figure {
    ns.sort_unstable();
    let n = ns.len().max(1) as f64;
    let median = match ns.len() {
        0 => 0.0,
        l if l % 2 == 1 => ns[l / 2] as f64,
        l => (ns[l / 2 - 1] + ns[l / 2]) as f64 / 2.0,
    };
    Figure {
        system,
        op,
        median_us: median / 1000.0,
        mean_us: ns.iter().sum::<u64>() as f64 / n / 1000.0,
        ops_per_s: None,
    }
}

/// Times `f` once, in nanoseconds.
fn timed<E>(f: impl FnOnce() -> Result<(), E>) -> Result<u64, E> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_nanos() as u64)
}

type Step<'a> = Box<dyn FnMut(usize) -> Outcome<()> + 'a>;

/// Runs `n` ops of two systems in alternating chunks of `chunk` ops (which system goes
/// first alternates too). With `whole` false every op is timed on its own; with `whole`
/// true a chunk is timed as one and each of its ops gets the chunk's average (for
/// iteration, where single steps hide the cost of fetching the next page).
fn interleave<'a>(
    n: usize,
    chunk: usize,
    whole: bool,
    mut a: Step<'a>,
    mut b: Step<'a>,
) -> Outcome<(Vec<u64>, Vec<u64>)> {
    let (mut ta, mut tb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (c, start) in (0..n).step_by(chunk).enumerate() {
        let end = (start + chunk).min(n);
        for turn in 0..2 {
            let (f, out) = if (turn + c) % 2 == 0 {
                (&mut a, &mut ta)
            } else {
                (&mut b, &mut tb)
            };
            if whole {
                let ns = timed(|| (start..end).try_for_each(&mut *f))?;
                let len = (end - start) as u64;
                out.extend(std::iter::repeat_n(ns / len, end - start));
            } else {
                for i in start..end {
                    out.push(timed(|| f(i))?);
                }
            }
        }
    }
    Ok((ta, tb))
}

/// The floor's connection to `path`: 0.7.0's pragmas, its table created.
pub(crate) fn floor_connection(path: &Path) -> Outcome<Connection> {
    let fail = |e: diskstore::rusqlite::Error| Fail::at(path, e);
    let conn = Connection::open(path).map_err(fail)?;
    conn.busy_timeout(diskstore::DEFAULT_TIMEOUT)
        .map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(64);
    for (k, v) in DEFAULT_PRAGMAS {
        conn.execute_batch(&format!("PRAGMA {k} = {v}"))
            .map_err(fail)?;
    }
    conn.execute_batch(CREATE).map_err(fail)?;
    Ok(conn)
}

/// Key `i` of the workload.
pub(crate) fn key(i: usize) -> String {
    format!("key-{i:09}")
}

/// A value of `size` bytes; `seed` tells values apart.
pub(crate) fn value(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Runs the workload in a temporary folder under `dir`; returns the figures of both systems.
/// mp runs for `mp_seconds` per system (0: no mp).
pub fn run(ops: usize, value_size: usize, dir: &Path, mp_seconds: f64) -> Outcome<Vec<Figure>> {
    let tmp = tempfile::Builder::new()
        .prefix("diskstore-bench-")
        .tempdir_in(dir)
        .map_err(|e| Fail::at(dir, format!("cannot make a temporary folder: {e}")))?;
    let ours_path: PathBuf = tmp.path().join("ours.db");
    let floor_path: PathBuf = tmp.path().join("floor.db");
    let ours: DiskStore<String, Vec<u8>> = DiskStore::builder(&ours_path)
        .table(TABLE)
        .open()
        .map_err(|e| Fail::engine(&ours_path, e))?;
    let floor = floor_connection(&floor_path)?;
    let of = |e: diskstore::Error| Fail::engine(&ours_path, e);
    let ff = |e: diskstore::rusqlite::Error| Fail::at(&floor_path, e);

    let keys: Vec<String> = (0..ops).map(key).collect();
    let misses: Vec<String> = (0..ops).map(|i| format!("miss-{i:09}")).collect();
    let v1 = value(value_size, 1);
    let v2 = value(value_size, 2);
    let mut figures = Vec::new();
    let mut record = |op: &'static str, (a, b): (Vec<u64>, Vec<u64>)| {
        figures.push(summarise("diskstore-rust", op, a));
        figures.push(summarise("sqlite-floor-rust", op, b));
    };

    for (op, val) in [("set", &v1), ("set-overwrite", &v2)] {
        record(
            op,
            interleave(
                ops,
                CHUNK,
                false,
                Box::new(|i| ours.insert(&keys[i], val).map_err(of)),
                Box::new(|i| {
                    let mut st = floor.prepare_cached(UPSERT).map_err(ff)?;
                    st.execute(params![keys[i], val]).map(drop).map_err(ff)
                }),
            )?,
        );
    }
    for (op, probe) in [("get", &keys), ("get-miss", &misses)] {
        record(
            op,
            interleave(
                ops,
                CHUNK,
                false,
                Box::new(|i| {
                    std::hint::black_box(ours.get(&probe[i]).map_err(of)?);
                    Ok(())
                }),
                Box::new(|i| {
                    let mut st = floor.prepare_cached(GET).map_err(ff)?;
                    let mut rows = st.query([&probe[i]]).map_err(ff)?;
                    if let Some(r) = rows.next().map_err(ff)? {
                        let v: Vec<u8> = r.get(1).map_err(ff)?;
                        std::hint::black_box(v);
                    }
                    Ok(())
                }),
            )?,
        );
    }
    record(
        "contains",
        interleave(
            ops,
            CHUNK,
            false,
            Box::new(|i| {
                std::hint::black_box(ours.contains_key(&keys[i]).map_err(of)?);
                Ok(())
            }),
            Box::new(|i| {
                let mut st = floor.prepare_cached(CONTAINS).map_err(ff)?;
                let found = st
                    .query([&keys[i]])
                    .map_err(ff)?
                    .next()
                    .map_err(ff)?
                    .is_some();
                std::hint::black_box(found);
                Ok(())
            }),
        )?,
    );
    {
        let mut ours_iter = ours.iter();
        let mut st = floor.prepare_cached(SCAN).map_err(ff)?;
        let mut rows = st.query([]).map_err(ff)?;
        let (a, b) = interleave(
            ops,
            ITER_CHUNK,
            true,
            Box::new(|_| {
                let item = ours_iter
                    .next()
                    .ok_or_else(|| Fail::new("iteration ended early"))?;
                std::hint::black_box(item.map_err(of)?);
                Ok(())
            }),
            Box::new(|_| {
                let r = rows
                    .next()
                    .map_err(ff)?
                    .ok_or_else(|| Fail::new("scan ended early"))?;
                let k: String = r.get(0).map_err(ff)?;
                let v: Vec<u8> = r.get(1).map_err(ff)?;
                std::hint::black_box((k, v));
                Ok(())
            }),
        )?;
        record("iterate", (a, b));
    }
    record(
        "len",
        interleave(
            ops,
            CHUNK,
            false,
            Box::new(|_| {
                std::hint::black_box(ours.len().map_err(of)?);
                Ok(())
            }),
            Box::new(|_| {
                let mut st = floor.prepare_cached(COUNT).map_err(ff)?;
                let n: i64 = st.query_row([], |r| r.get(0)).map_err(ff)?;
                std::hint::black_box(n);
                Ok(())
            }),
        )?,
    );
    record(
        "delete",
        interleave(
            ops,
            CHUNK,
            false,
            Box::new(|i| {
                let gone = ours.table().delete(KeyRef::Text(&keys[i])).map_err(of)?;
                if gone {
                    Ok(())
                } else {
                    Err(Fail::new("delete found no row"))
                }
            }),
            Box::new(|i| {
                let mut st = floor.prepare_cached(DELETE).map_err(ff)?;
                match st.execute([&keys[i]]).map_err(ff)? {
                    1 => Ok(()),
                    _ => Err(Fail::new("delete found no row")),
                }
            }),
        )?,
    );
    // bulk: every upsert inside one write transaction per system; the commit's time is
    // added to the last op so that the mean includes it.
    let tx = ours.begin().map_err(of)?;
    floor.execute_batch("BEGIN IMMEDIATE").map_err(ff)?;
    let (mut a, mut b) = interleave(
        ops,
        CHUNK,
        false,
        Box::new(|i| ours.insert(&keys[i], &v1).map_err(of)),
        Box::new(|i| {
            let mut st = floor.prepare_cached(UPSERT).map_err(ff)?;
            st.execute(params![keys[i], v1]).map(drop).map_err(ff)
        }),
    )?;
    let commit_ours = timed(|| tx.commit().map_err(of))?;
    let commit_floor = timed(|| floor.execute_batch("COMMIT").map_err(ff))?;
    if let (Some(x), Some(y)) = (a.last_mut(), b.last_mut()) {
        *x += commit_ours;
        *y += commit_floor;
    }
    record("bulk", (a, b));
    drop(ours);
    drop(floor);
    if mp_seconds > 0.0 {
        for (system, name, path) in [
            (mp::System::Ours, "diskstore-rust", &ours_path),
            (mp::System::Floor, "sqlite-floor-rust", &floor_path),
        ] {
            let rate = mp::measure(system, path, ops, value_size, mp_seconds)?;
            figures.push(Figure {
                system: name,
                op: "mp",
                median_us: f64::NAN,
                mean_us: f64::NAN,
                ops_per_s: Some(rate),
            });
        }
    }
    Ok(figures)
}

fn find<'a>(figures: &'a [Figure], system: &str, op: &str) -> Option<&'a Figure> {
    figures.iter().find(|f| f.system == system && f.op == op)
}

/// Median ns of an empty timed region: what every per-op figure carries on top of the op
/// (the Python workers report theirs, which is several times larger).
pub fn timer_overhead_ns() -> f64 {
    let mut ns: Vec<u64> = (0..20_000)
        .map(|_| timed(|| Ok::<(), ()>(())).unwrap_or(0))
        .collect();
    ns.sort_unstable();
    ns[ns.len() / 2] as f64
}

/// The figures as the JSON document other tools read.
pub fn to_json(figures: &[Figure], ops: usize, value_size: usize) -> serde_json::Value {
    let results: Vec<serde_json::Value> = OPS
        .iter()
        .flat_map(|op| ["diskstore-rust", "sqlite-floor-rust"].map(|s| (s, *op)))
        .filter_map(|(s, op)| find(figures, s, op))
        .map(|f| match f.ops_per_s {
            Some(rate) => serde_json::json!({
                "system": f.system, "op": f.op, "ops_per_s": rate.round(),
            }),
            None => serde_json::json!({
                "system": f.system, "op": f.op,
                "median_us": (f.median_us * 1000.0).round() / 1000.0,
                "mean_us": (f.mean_us * 1000.0).round() / 1000.0,
            }),
        })
        .collect();
    serde_json::json!({
        "date": crate::clock::now(),
        "ops": ops,
        "value_size": value_size,
        "sqlite_version": diskstore::sqlite_version(),
        "timer_us": timer_overhead_ns() / 1000.0,
        "results": results,
    })
}

/// The figures as a table for a person.
pub fn to_table(figures: &[Figure], ops: usize, value_size: usize) -> String {
    let mut out = format!(
        "{ops} ops, {value_size}-byte values, text keys; SQLite {}; µs per op, both systems \
         interleaved in this process\n{:<14} {:>10} {:>10} {:>7}   {:>10} {:>10}\n",
        diskstore::sqlite_version(),
        "op",
        "ours",
        "floor",
        "ratio",
        "mean ours",
        "mean floor"
    );
    for op in OPS {
        if let (Some(a), Some(b)) = (
            find(figures, "diskstore-rust", op),
            find(figures, "sqlite-floor-rust", op),
        ) {
            if let (Some(x), Some(y)) = (a.ops_per_s, b.ops_per_s) {
                let ratio = if x > 0.0 { y / x } else { f64::NAN };
                out.push_str(&format!(
                    "{op:<14} {x:>10.0} {y:>10.0} {ratio:>6.2}×   (ops/s of 2 processes)\n"
                ));
                continue;
            }
            let ratio = if b.median_us > 0.0 {
                a.median_us / b.median_us
            } else {
                f64::NAN
            };
            out.push_str(&format!(
                "{op:<14} {:>10.2} {:>10.2} {:>6.2}×   {:>10.2} {:>10.2}\n",
                a.median_us, b.median_us, ratio, a.mean_us, b.mean_us
            ));
        }
    }
    out.push_str(
        "(ours = the diskstore crate; floor = plain rusqlite, same SQL and pragmas; medians)",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_means() {
        let f = summarise("x", "get", vec![5000, 1000, 3000]);
        assert_eq!((f.median_us, f.mean_us), (3.0, 3.0));
        let f = summarise("x", "get", vec![1000, 2000, 3000, 10000]);
        assert_eq!((f.median_us, f.mean_us), (2.5, 4.0));
    }
}
