//! The Rust half of `make demo` (scripts/demo.sh): writes and reads a store, reads a file
//! written by Python, and shows a cache entry expiring.
//!
//! ```text
//! cargo run --release -p diskstore-cli --example demo -- write FILE N
//! cargo run --release -p diskstore-cli --example demo -- read FILE
//! cargo run --release -p diskstore-cli --example demo -- cache FILE
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use diskstore::{DiskCache, DiskRead, DiskStore, NEVER, Record};

/// A record with one column per field (table "Point").
#[derive(Record, Debug, PartialEq)]
struct Point {
    x: f64,
    y: f64,
    #[record(default = "unnamed")]
    label: String,
}

fn ms(t: Instant) -> String {
    format!("{:.1} ms", t.elapsed().as_secs_f64() * 1000.0)
}

/// Writes `n` text entries (table "DiskStore", the Python original's default table) and
/// a few records, then reads them back.
fn write(path: &Path, n: usize) -> diskstore::Result<()> {
    let store: DiskStore<String, String> = DiskStore::open(path)?;
    let t = Instant::now();
    store.extend((0..n).map(|i| (format!("user:{i:05}"), format!("written by Rust #{i}"))))?;
    println!("  wrote {n} entries in one transaction: {}", ms(t));
    store.insert("greeting", &"hello from Rust".to_string())?;

    let t = Instant::now();
    let all: Vec<(String, String)> = store.iter().collect::<diskstore::Result<_>>()?;
    println!("  read all {} entries back: {}", all.len(), ms(t));
    let t = Instant::now();
    let one = store.get("user:00042")?;
    println!("  get(\"user:00042\") = {one:?}: {}", ms(t));

    let points: DiskStore<String, Point> = DiskStore::open(path)?;
    points.insert(
        "origin",
        &Point {
            x: 0.0,
            y: 0.0,
            label: "origin".into(),
        },
    )?;
    points.insert(
        "p",
        &Point {
            x: 1.5,
            y: -2.0,
            label: "a point".into(),
        },
    )?;
    println!(
        "  records: table \"Point\" has {} rows (one column per field)",
        points.len()?
    );
    Ok(())
}

/// Reads a store of text keys and values (for example one written by Python).
fn read(path: &Path) -> diskstore::Result<()> {
    let t = Instant::now();
    let store: DiskRead<String, String> = DiskRead::open(path)?;
    let n = store.len()?;
    let first: Vec<(String, String)> = store.iter().take(3).collect::<diskstore::Result<_>>()?;
    println!("  {n} entries; the first: {first:?} ({})", ms(t));
    if let Some(v) = store.get("greeting")? {
        println!("  get(\"greeting\") = {v:?}");
    }
    Ok(())
}

/// A cache entry with a one-second TTL, before and after it expires.
fn cache(path: &Path) -> diskstore::Result<()> {
    let cache: DiskCache<String, String> = DiskCache::open(path)?;
    cache.set(
        "session",
        &"short-lived".to_string(),
        Some(Duration::from_secs(1)),
    )?;
    cache.set("config", &"kept forever".to_string(), Some(NEVER))?;
    println!(
        "  set session (TTL 1 s) and config (no expiry); get(session) = {:?}",
        cache.get("session")?
    );
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(1100));
    println!(
        "  after {:.1} s: get(session) = {:?}, get(config) = {:?}",
        t.elapsed().as_secs_f64(),
        cache.get("session")?,
        cache.get("config")?
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write", file, n] => match n.parse() {
            Ok(n) => write(Path::new(file), n),
            Err(_) => {
                eprintln!("demo: N must be a number, not {n:?}");
                return ExitCode::from(2);
            }
        },
        ["read", file] => read(Path::new(file)),
        ["cache", file] => cache(Path::new(file)),
        _ => {
            eprintln!("usage: demo write FILE N | demo read FILE | demo cache FILE");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
