//! Structured values: a derived record (one column per field), an optional field, a JSON
//! field, integer keys assigned by the store, and a read-only view.
//!
//! Run: `cargo run -p diskstore --example typed_records`

use diskstore::{DiskRead, DiskStore, Json, Query, Record, params};

/// A task: each field is a column of the table "Task".
#[derive(Record, Debug, Clone, PartialEq)]
struct Task {
    title: String,
    done: bool,
    /// Added to the table with this default when an older file lacks the column.
    #[record(default = 3)]
    priority: i64,
    due: Option<String>,
    tags: Json<Vec<String>>,
}

fn main() -> diskstore::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("tasks.db");
    let tasks: DiskStore<i64, Task> = DiskStore::open(&path)?;

    let task = |title: &str, priority, due: Option<&str>, tags: &[&str]| Task {
        title: title.into(),
        done: false,
        priority,
        due: due.map(Into::into),
        tags: Json(tags.iter().map(|t| t.to_string()).collect()),
    };
    let a = tasks.push(&task("write tests", 1, Some("2026-12-01"), &["rust"]))?;
    let b = tasks.push(&task("run benchmarks", 2, None, &["rust", "perf"]))?;
    let c = tasks.push(&task("write docs", 3, None, &[]))?;
    println!("assigned keys {a}, {b}, {c}");

    // Read-modify-write inside a transaction.
    let tx = tasks.begin()?;
    if let Some(mut t) = tasks.get(&a)? {
        t.done = true;
        tasks.insert(&a, &t)?;
    }
    tx.commit()?;

    // Columns can be queried with SQL (trusted text, values as parameters).
    let open = tasks.query(
        &Query::new()
            .filter("done = ? AND priority <= ?", params![false, 2])
            .order("priority"),
    )?;
    for entry in open {
        let (key, t) = entry?;
        println!("open #{key}: {} (tags {:?})", t.title, t.tags.0);
    }

    // A read-only handle never writes to the file.
    let view: DiskRead<i64, Task> = tasks.read_only()?;
    println!(
        "{} tasks, first done: {}",
        view.len()?,
        view.get(&a)?.is_some_and(|t| t.done)
    );
    Ok(())
}
