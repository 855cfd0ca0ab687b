//! A tour of `DiskCache` expiry and limits with a manual clock (nothing sleeps).
//!
//! `cargo run -p diskstore --example cache_ttl`

use std::sync::Arc;
use std::time::Duration;

use diskstore::{DiskCache, Error, EvictionPolicy, ManualClock, NEVER};

fn main() -> diskstore::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Usage(e.to_string()))?;
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_700_000_000)));
    let cache: DiskCache<String, String> = DiskCache::builder(dir.path().join("ttl.db"))
        .default_ttl(Duration::from_secs(60))
        .size_limit(64)
        .eviction_policy(EvictionPolicy::LeastRecentlyStored)
        .clock(clock.clone())
        .open()?;

    cache.set("session", &"alice".to_string(), None)?; // the default: 60 s
    cache.set("token", &"t0k3n".to_string(), Some(Duration::from_secs(5)))?;
    cache.set("config", &"v1".to_string(), Some(NEVER))?;
    println!(
        "at t=0:   {} live entries, {} bytes",
        cache.len()?,
        cache.volume()?
    );

    clock.advance(Duration::from_secs(5));
    println!(
        "at t=5s:  token = {:?} (expired at exactly 5 s)",
        cache.get("token")?
    );

    cache.touch("session", Some(Duration::from_secs(120)))?;
    clock.advance(Duration::from_secs(100));
    println!(
        "at t=105s: session = {:?} (touched to 120 s at t=5s)",
        cache.get("session")?
    );
    // The write at t=5s (touch) already purged the expired token on its way.
    println!("           expire() purged {} more", cache.expire()?);

    // 64 bytes of keys and values at most: older entries make room for newer ones.
    for i in 0..6 {
        cache.set(&format!("k{i}"), &"0123456789".to_string(), Some(NEVER))?;
    }
    let keys: Vec<String> = cache.keys().collect::<Result<_, _>>()?;
    println!(
        "after 6 more writes: {keys:?}, {} bytes (limit 64)",
        cache.volume()?
    );
    let stats = cache.stats()?;
    println!("hits {}, misses {}", stats.hits, stats.misses);
    Ok(())
}
