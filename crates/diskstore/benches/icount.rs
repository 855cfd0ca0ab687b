//! One operation, `ours` or `floor`, repeated N times inside `measured()`: run it under
//! `valgrind --tool=callgrind --toggle-collect='*measured*'` for a deterministic
//! instruction count per call (wall clock on a shared 2-core machine is too noisy to
//! compare a few hundred instructions). `benches/icount.sh` runs every operation and
//! prints the ratios.
//!
//! Usage: `icount <op> <ours|floor> <n>`, op one of `get`, `get_miss`, `contains`, `len`,
//! `insert`, `overwrite`, `remove`, `iterate` (n = passes over the table with `iter()`),
//! `scan` (the same with the engine's callback `Table::scan`), `bulk` (n batches of
//! [`BULK`]), `txn_get`, `txn_insert`.

mod workload;

use std::hint::black_box;

use workload::*;

/// What to run: the same operation through the store or through plain rusqlite.
enum Side {
    Ours(Store),
    Floor(diskstore::rusqlite::Connection),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, side, n] = &args[..] else {
        eprintln!("usage: icount <op> <ours|floor> <n>");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("n is a number");
    let (_dir, side) = match side.as_str() {
        "ours" => {
            let (d, s) = ours();
            (d, Side::Ours(s))
        }
        "floor" => {
            let (d, c) = floor();
            (d, Side::Floor(c))
        }
        other => panic!("unknown side {other}"),
    };
    // Inputs are made before the measured part.
    let stored: Vec<String> = {
        let mut next = stored_keys();
        (0..n).map(|_| next()).collect()
    };
    let fresh: Vec<String> = {
        let mut next = fresh_keys("fresh");
        (0..n).map(|_| next()).collect()
    };
    let batches: Vec<Vec<(String, Vec<u8>)>> = if op == "bulk" {
        let mut next = fresh_keys("bulk");
        (0..n).map(|_| batch(&mut next, BULK)).collect()
    } else {
        Vec::new()
    };
    let v = value(9);
    if op == "remove" {
        for k in &fresh {
            match &side {
                Side::Ours(s) => s.insert(k.as_str(), &v).unwrap(),
                Side::Floor(c) => floor_upsert(c, k, &v),
            }
        }
    }
    let in_txn = op.starts_with("txn_");
    let tx = match &side {
        Side::Ours(s) if in_txn => Some(s.begin().unwrap()),
        Side::Floor(c) if in_txn => {
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            None
        }
        _ => None,
    };
    measured(op, &side, &stored, &fresh, &batches, &v);
    drop(tx);
}

#[inline(never)]
fn measured(
    op: &str,
    side: &Side,
    stored: &[String],
    fresh: &[String],
    batches: &[Vec<(String, Vec<u8>)>],
    v: &Vec<u8>,
) {
    match (op, side) {
        ("get" | "txn_get", Side::Ours(s)) => {
            for k in stored {
                black_box(s.get(k.as_str()).unwrap().unwrap());
            }
        }
        ("get" | "txn_get", Side::Floor(c)) => {
            for k in stored {
                black_box(floor_get(c, k).unwrap());
            }
        }
        ("get_miss", Side::Ours(s)) => {
            for k in fresh {
                assert!(s.get(k.as_str()).unwrap().is_none());
            }
        }
        ("get_miss", Side::Floor(c)) => {
            for k in fresh {
                assert!(floor_get(c, k).is_none());
            }
        }
        ("contains", Side::Ours(s)) => {
            for k in stored {
                assert!(s.contains_key(k.as_str()).unwrap());
            }
        }
        ("contains", Side::Floor(c)) => {
            for k in stored {
                assert!(floor_contains(c, k));
            }
        }
        ("len", Side::Ours(s)) => {
            for _ in stored {
                black_box(s.len().unwrap());
            }
        }
        ("len", Side::Floor(c)) => {
            for _ in stored {
                black_box(floor_len(c));
            }
        }
        ("insert" | "txn_insert", Side::Ours(s)) => {
            for k in fresh {
                s.insert(k.as_str(), v).unwrap();
            }
        }
        ("insert" | "txn_insert", Side::Floor(c)) => {
            for k in fresh {
                floor_upsert(c, k, v);
            }
        }
        ("overwrite", Side::Ours(s)) => {
            for k in stored {
                s.insert(k.as_str(), v).unwrap();
            }
        }
        ("overwrite", Side::Floor(c)) => {
            for k in stored {
                floor_upsert(c, k, v);
            }
        }
        ("remove", Side::Ours(s)) => {
            for k in fresh {
                assert!(s.remove(k.as_str()).unwrap().is_some());
            }
        }
        ("remove", Side::Floor(c)) => {
            for k in fresh {
                assert!(floor_remove(c, k).is_some());
            }
        }
        ("iterate", Side::Ours(s)) => {
            for _ in stored {
                let mut rows = 0;
                for item in s.iter() {
                    black_box(item.unwrap());
                    rows += 1;
                }
                assert_eq!(rows, ROWS);
            }
        }
        ("scan", Side::Ours(s)) => {
            // The engine's callback scan over the whole table: no page buffer.
            for _ in stored {
                let rows = s
                    .table()
                    .scan(
                        i64::MIN,
                        i64::MAX,
                        diskstore::Direction::Forward,
                        usize::MAX,
                        false,
                        |_, row| {
                            let k = match row.key()? {
                                diskstore::ValueRef::Text(t) => t.to_owned(),
                                _ => unreachable!("text keys"),
                            };
                            black_box((k, row.field::<Vec<u8>>(0, "value")?));
                            Ok(())
                        },
                    )
                    .unwrap();
                assert_eq!(rows, ROWS);
            }
        }
        ("iterate" | "scan", Side::Floor(c)) => {
            for _ in stored {
                assert_eq!(floor_scan(c, |k, v| drop(black_box((k, v)))), ROWS);
            }
        }
        ("bulk", Side::Ours(s)) => {
            for items in batches {
                s.extend(items.iter().map(|(k, v)| (k.as_str(), v)))
                    .unwrap();
            }
        }
        ("bulk", Side::Floor(c)) => {
            for items in batches {
                floor_bulk(c, items);
            }
        }
        (other, _) => panic!("unknown op {other}"),
    }
}
