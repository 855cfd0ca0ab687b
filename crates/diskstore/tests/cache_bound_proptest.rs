//! Random workloads against a simple model: after every operation the size and count
//! limits hold, the byte total equals the bytes actually stored, a value read is the last
//! one written for its key and not expired, and a write is never evicted by itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use diskstore::{DiskCache, EvictionPolicy, ManualClock};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Set {
        key: u8,
        len: usize,
        ttl: Option<u64>,
    },
    Add {
        key: u8,
        len: usize,
    },
    Get {
        key: u8,
    },
    Delete {
        key: u8,
    },
    Advance {
        secs: u64,
    },
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24, 0usize..200, prop::option::of(1u64..6))
            .prop_map(|(key, len, ttl)| Op::Set { key, len, ttl }),
        1 => (0u8..24, 0usize..200).prop_map(|(key, len)| Op::Add { key, len }),
        3 => (0u8..24).prop_map(|key| Op::Get { key }),
        1 => (0u8..24).prop_map(|key| Op::Delete { key }),
        1 => (1u64..4).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Expire),
    ]
}

fn policy() -> impl Strategy<Value = EvictionPolicy> {
    prop_oneof![
        Just(EvictionPolicy::LeastRecentlyStored),
        Just(EvictionPolicy::LeastRecentlyUsed),
        Just(EvictionPolicy::LeastFrequentlyUsed),
    ]
}

/// What the model knows about a key: its last value and expiry (µs since the epoch).
struct Written {
    value: Vec<u8>,
    expire_at: Option<u64>,
}

fn stored_bytes_and_rows(c: &DiskCache<String, Vec<u8>>) -> (u64, u64) {
    c.cache_table()
        .table()
        .with_connection(|conn| {
            Ok(conn.query_row(
                "SELECT coalesce(sum(length(CAST(_key AS BLOB)) + length(value)), 0), count(*) \
                 FROM \"Cache\"",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )?)
        })
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn limits_and_accounting_hold_under_random_workloads(
        policy in policy(),
        size_limit in 300u64..2_000,
        count_limit in prop::option::of(3u64..12),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let start = Duration::from_secs(1_000);
        let clock = Arc::new(ManualClock::new(start));
        let mut b = DiskCache::<String, Vec<u8>>::builder(dir.path().join("c.db"))
            .eviction_policy(policy)
            .size_limit(size_limit)
            .clock(clock.clone());
        if let Some(n) = count_limit {
            b = b.count_limit(n);
        }
        let c = b.open().unwrap();
        let mut model: HashMap<String, Written> = HashMap::new();
        let now_us = |clock: &ManualClock| {
            use diskstore::Clock;
            clock.now().as_micros() as u64
        };
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Set { key, len, ttl } => {
                    let k = format!("key{key}");
                    let v = vec![i as u8; len];
                    c.set(&k, &v, ttl.map(Duration::from_secs)).unwrap();
                    let expire_at = ttl.map(|t| now_us(&clock) + t * 1_000_000);
                    // The entry just written is never its own victim.
                    prop_assert_eq!(c.get(&k).unwrap(), Some(v.clone()));
                    model.insert(k, Written { value: v, expire_at });
                }
                Op::Add { key, len } => {
                    let k = format!("key{key}");
                    let v = vec![i as u8; len];
                    let was_live = c.contains_key(&k).unwrap();
                    let added = c.add(&k, &v, None).unwrap();
                    prop_assert_eq!(added, !was_live);
                    if added {
                        prop_assert_eq!(c.get(&k).unwrap(), Some(v.clone()));
                        model.insert(k, Written { value: v, expire_at: None });
                    }
                }
                Op::Get { key } => {
                    let k = format!("key{key}");
                    if let Some(v) = c.get(&k).unwrap() {
                        let w = model.get(&k).expect("a value no one wrote");
                        prop_assert_eq!(&v, &w.value);
                        prop_assert!(w.expire_at.is_none_or(|e| e > now_us(&clock)));
                    }
                }
                Op::Delete { key } => {
                    let k = format!("key{key}");
                    c.delete(&k).unwrap();
                    model.remove(&k);
                    prop_assert_eq!(c.get(&k).unwrap(), None);
                }
                Op::Advance { secs } => clock.advance(Duration::from_secs(secs)),
                Op::Expire => {
                    c.expire().unwrap();
                }
            }
            let volume = c.volume().unwrap();
            let (bytes, rows) = stored_bytes_and_rows(&c);
            prop_assert_eq!(volume, bytes, "running total differs from stored bytes");
            prop_assert!(volume <= size_limit, "volume {} over limit {}", volume, size_limit);
            if let Some(n) = count_limit {
                prop_assert!(rows <= n, "{} rows over count limit {}", rows, n);
            }
            let live_in_model = model
                .values()
                .filter(|w| w.expire_at.is_none_or(|e| e > now_us(&clock)))
                .count() as u64;
            prop_assert!(c.len().unwrap() <= live_in_model);
        }
    }
}
