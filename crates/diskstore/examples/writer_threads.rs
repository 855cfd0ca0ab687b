//! Autocommitted sets of new keys from several threads on one store: prints sets/s as JSON
//! (`bench/threads_bench.py` runs it for the Rust figures).
//!
//! `cargo run --release --example writer_threads -- THREADS [TOTAL [VALUE_BYTES [PAGE_SIZE]]]`

use std::time::Instant;

use diskstore::DiskStore;

fn main() -> diskstore::Result<()> {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let page: Option<u32> = args.next().and_then(|a| a.parse().ok());
    let dir = tempfile::tempdir().map_err(|e| diskstore::Error::Usage(e.to_string()))?;
    let mut builder = DiskStore::<String, Vec<u8>>::builder(dir.path().join("t.db"));
    if let Some(p) = page {
        builder = builder.pragma("page_size", p);
    }
    let store = builder.open()?;
    let value = vec![b'x'; size];
    let per = total / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                let value = &value;
                s.spawn(move || -> diskstore::Result<()> {
                    for i in 0..per {
                        store.insert(&format!("key-{t:02}-{i:09}"), value)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread panicked"))
    })?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(store.len()?, (per * threads) as u64);
    println!(
        "{{\"threads\": {threads}, \"sets\": {}, \"seconds\": {secs:.6}, \"sets_per_s\": {:.1}}}",
        per * threads,
        (per * threads) as f64 / secs
    );
    Ok(())
}
