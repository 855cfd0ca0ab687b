//! The batched bulk path (`Table::set_many` writing many rows per statement, and
//! `DiskStore::extend` through it) leaves the table exactly as one upsert per row would:
//! values (the last of a repeated key wins), insertion order (a replaced key keeps its
//! place), the cached `len()`, all-or-nothing batches, large blobs and INTEGER keys.

use diskstore::rusqlite::{Connection, OpenFlags};
use diskstore::{DiskStore, Error, LARGE_VALUE};
use tempfile::TempDir;

/// A small deterministic generator (no dependency on an RNG crate's API).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// What the table must hold: entries in insertion order; a set of a present key
/// replaces its value in place.
#[derive(Default)]
struct Model(Vec<(String, Vec<u8>)>);

impl Model {
    fn set(&mut self, k: &str, v: &[u8]) {
        match self.0.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v.to_vec(),
            None => self.0.push((k.to_owned(), v.to_vec())),
        }
    }
}

/// The row count as another connection sees it (not our cached count).
fn counted(path: &std::path::Path) -> i64 {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row(r#"SELECT count(*) FROM "DiskStore""#, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn batches_across_chunk_boundaries_match_a_row_by_row_model() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("bulk.db");
    let s: DiskStore<String, Vec<u8>> = DiskStore::open(&path).unwrap();
    let mut model = Model::default();
    let mut rng = Lcg(7);
    // len() is cached from here on: each batch must carry it.
    assert_eq!(s.len().unwrap(), 0);
    for (round, size) in [
        0usize, 1, 63, 64, 65, 127, 128, 129, 500, 1023, 1024, 1025, 3000,
    ]
    .into_iter()
    .enumerate()
    {
        // Keys from a small space, so that batches repeat keys (within a chunk, across
        // chunks) and replace keys of earlier batches.
        let batch: Vec<(String, Vec<u8>)> = (0..size)
            .map(|i| {
                let k = format!("k{}", rng.below(1500));
                let v = format!("r{round}i{i}").into_bytes();
                (k, v)
            })
            .collect();
        assert_eq!(
            s.extend(batch.iter().map(|(k, v)| (k.as_str(), v)))
                .unwrap(),
            size
        );
        for (k, v) in &batch {
            model.set(k, v);
        }
        let items: Vec<(String, Vec<u8>)> = s.iter().collect::<Result<_, _>>().unwrap();
        assert!(items == model.0, "round {round}: contents or order differ");
        assert_eq!(s.len().unwrap(), model.0.len() as u64, "round {round}");
        assert_eq!(counted(&path), model.0.len() as i64, "round {round}");
    }
}

#[test]
fn a_bad_row_in_a_later_chunk_keeps_nothing_of_the_batch() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<f64, i64> = DiskStore::open(dir.path().join("f.db")).unwrap();
    s.extend((0..100).map(|i| (f64::from(i), i64::from(i))))
        .unwrap();
    assert_eq!(s.len().unwrap(), 100);
    // 300 rows, the NaN key at row 200: two chunks of 64 have already been written.
    let batch: Vec<(f64, i64)> = (0..300)
        .map(|i| {
            let k = if i == 200 {
                f64::NAN
            } else {
                f64::from(1000 + i)
            };
            (k, -1)
        })
        .collect();
    let r = s.extend(batch);
    assert!(matches!(r, Err(Error::InvalidKey(_))), "{r:?}");
    assert_eq!(s.len().unwrap(), 100);
    assert_eq!(s.get(&1000.0).unwrap(), None);
    assert_eq!(s.get(&5.0).unwrap(), Some(5));
    // The store still works after the rollback, and the count is still right.
    s.extend((0..200).map(|i| (f64::from(50 + i), 7))).unwrap();
    assert_eq!(s.len().unwrap(), 250);
}

#[test]
fn inside_a_transaction_a_failed_batch_rolls_back_to_its_savepoint() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<f64, i64> = DiskStore::open(dir.path().join("t.db")).unwrap();
    let tx = s.begin().unwrap();
    s.extend((0..150).map(|i| (f64::from(i), 1))).unwrap();
    let bad = s.extend((0..150).map(|i| {
        let k = if i == 140 {
            f64::NAN
        } else {
            f64::from(1000 + i)
        };
        (k, 2)
    }));
    assert!(matches!(bad, Err(Error::InvalidKey(_))), "{bad:?}");
    assert_eq!(s.len().unwrap(), 150);
    tx.commit().unwrap();
    assert_eq!(s.len().unwrap(), 150);
    let first: Vec<f64> = s.keys().take(2).collect::<Result<_, _>>().unwrap();
    assert_eq!(first, [0.0, 1.0]);
    assert_eq!(s.get(&1000.0).unwrap(), None);
}

#[test]
fn large_blobs_among_ordinary_rows_keep_their_order() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<String, Vec<u8>> = DiskStore::open(dir.path().join("l.db")).unwrap();
    let big = vec![3u8; LARGE_VALUE + 5];
    let rows: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            let v = if i % 70 == 3 {
                big.clone()
            } else {
                vec![i as u8; 10]
            };
            (format!("k{i:03}"), v)
        })
        .collect();
    assert_eq!(
        s.extend(rows.iter().map(|(k, v)| (k.as_str(), v))).unwrap(),
        200
    );
    let items: Vec<(String, Vec<u8>)> = s.iter().collect::<Result<_, _>>().unwrap();
    assert!(items == rows);
    assert_eq!(s.len().unwrap(), 200);
}

#[test]
fn integer_keys_and_repeated_keys_in_one_chunk() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<i64, String> = DiskStore::open(dir.path().join("i.db")).unwrap();
    s.extend((0..130).map(|i| (i % 50, format!("v{i}"))))
        .unwrap();
    assert_eq!(s.len().unwrap(), 50);
    assert_eq!(s.get(&0).unwrap().as_deref(), Some("v100"));
    assert_eq!(s.get(&49).unwrap().as_deref(), Some("v99"));

    let t: DiskStore<String, String> = DiskStore::open(dir.path().join("t.db")).unwrap();
    // One key 64 times: one chunk statement updating the row it inserted.
    t.extend((0..64).map(|i| ("same", format!("v{i}"))))
        .unwrap();
    t.extend([("other", "x".to_string())]).unwrap();
    assert_eq!(t.len().unwrap(), 2);
    assert_eq!(t.get("same").unwrap().as_deref(), Some("v63"));
    let keys: Vec<String> = t.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, ["same", "other"]);
}
