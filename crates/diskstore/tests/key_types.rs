//! Every key type (`i64`, `f64`, `String`, `Vec<u8>`) through every operation, with the
//! awkward keys of each type: empty text and bytes, unicode, extreme integers, ±0.0,
//! infinities, and NaN (refused).

use std::fmt::Debug;

use diskstore::{DiskRead, DiskStore, Error, Key, Query, Value};
use tempfile::TempDir;

/// Runs every operation of the typed API on `keys` (distinct keys, in insertion order)
/// and checks each result. `key_order` is `keys` sorted as SQLite sorts them.
fn exercise<K>(keys: &[K], key_order: &[K], rowid_is_key: bool)
where
    K: Key + Clone + PartialEq + Debug,
{
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.db");
    let s: DiskStore<K, String> = DiskStore::open(&path).unwrap();
    let val = |i: usize| format!("value {i}");

    assert!(s.is_empty().unwrap());
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(s.get(k).unwrap(), None, "{k:?} before insert");
        assert!(!s.contains_key(k).unwrap());
        s.insert(k, &val(i)).unwrap();
        assert_eq!(s.get(k).unwrap(), Some(val(i)), "{k:?} after insert");
        assert!(s.contains_key(k).unwrap());
    }
    assert_eq!(s.len().unwrap(), keys.len() as u64);

    // Insertion order (rowid order; for INTEGER keys the key is the rowid).
    let expected_order: Vec<K> = if rowid_is_key {
        key_order.to_vec()
    } else {
        keys.to_vec()
    };
    let got: Vec<K> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, expected_order);
    let mut reversed = expected_order.clone();
    reversed.reverse();
    let got: Vec<K> = s.keys().rev().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, reversed);

    // Overwriting keeps the position and replaces the value.
    s.insert(&keys[0], &"new".to_string()).unwrap();
    let got: Vec<K> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, expected_order);
    assert_eq!(s.get(&keys[0]).unwrap().as_deref(), Some("new"));
    assert_eq!(s.len().unwrap(), keys.len() as u64);

    // items and values agree with keys
    let items: Vec<(K, String)> = s.iter().collect::<Result<_, _>>().unwrap();
    let values: Vec<String> = s.values().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        items.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        expected_order
    );
    assert_eq!(
        items.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        values
    );

    // Key range: every key in SQLite's key order, both directions.
    let ranged: Vec<K> = s
        .range::<K, _>(..)
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ranged, key_order);
    let ranged: Vec<K> = s
        .range::<K, _>(..)
        .rev()
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()
        .unwrap();
    let mut desc = key_order.to_vec();
    desc.reverse();
    assert_eq!(ranged, desc);
    let (lo, hi) = (&key_order[1], &key_order[key_order.len() - 2]);
    let inner: Vec<K> = s
        .range(lo.clone()..=hi.clone())
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(inner, key_order[1..key_order.len() - 1]);

    // add refuses a present key and stores an absent one
    assert!(!s.add(&keys[1], &"ignored".to_string()).unwrap());
    assert_eq!(s.get(&keys[1]).unwrap(), Some(val(1)));

    // get_many keeps the order of the request, with misses as None
    let wanted = vec![keys[2].clone(), keys[0].clone()];
    assert_eq!(
        s.get_many(&wanted).unwrap(),
        vec![Some(val(2)), Some("new".to_string())]
    );

    // query sees the keys as stored
    let q = s
        .query(&Query::new().filter("value = ?", [Value::from(val(1))]))
        .and_then(|q| q.collect::<Result<Vec<_>, _>>())
        .unwrap();
    assert_eq!(q, vec![(keys[1].clone(), val(1))]);

    // A read-only handle reads the same
    let ro: DiskRead<K, String> = DiskRead::open(&path).unwrap();
    let got: Vec<K> = ro.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, expected_order);
    assert_eq!(ro.get(&keys[1]).unwrap(), Some(val(1)));

    // remove returns the old value once
    assert_eq!(s.remove(&keys[1]).unwrap(), Some(val(1)));
    assert_eq!(s.remove(&keys[1]).unwrap(), None);
    assert!(!s.contains_key(&keys[1]).unwrap());

    // pop_first / pop_last take the ends of insertion order
    let order: Vec<K> = s.keys().collect::<Result<_, _>>().unwrap();
    let (first, _) = s.pop_first().unwrap().unwrap();
    assert_eq!(&first, order.first().unwrap());
    let (last, _) = s.pop_last().unwrap().unwrap();
    assert_eq!(&last, order.last().unwrap());
    assert_eq!(s.len().unwrap(), keys.len() as u64 - 3);

    // get_or_insert stores once, then returns the stored value
    assert_eq!(s.get_or_insert(&keys[1], &"d1".to_string()).unwrap(), "d1");
    assert_eq!(s.get_or_insert(&keys[1], &"d2".to_string()).unwrap(), "d1");

    s.clear().unwrap();
    assert!(s.is_empty().unwrap());
    assert_eq!(s.pop_last().unwrap(), None);
    assert_eq!(s.pop_first().unwrap(), None);
}

#[test]
fn text_keys_including_empty_and_unicode() {
    let keys: Vec<String> = ["m", "", "ünïcode ✓", "a", "日本語", "z\u{0}z", "A"]
        .map(String::from)
        .to_vec();
    let mut order = keys.clone();
    order.sort(); // SQLite's BINARY collation is byte order, as Rust's str order
    exercise(&keys, &order, false);
}

#[test]
fn byte_keys_including_empty_and_non_utf8() {
    let keys: Vec<Vec<u8>> = vec![
        b"m".to_vec(),
        vec![],
        vec![0xff, 0xfe],
        vec![0],
        b"abc".to_vec(),
        vec![0, 0],
    ];
    let mut order = keys.clone();
    order.sort(); // memcmp order, shorter first on a common prefix
    exercise(&keys, &order, false);
}

#[test]
fn integer_keys_including_the_extremes() {
    let keys = vec![0, i64::MAX, -1, i64::MIN, 42, 1 << 53];
    let mut order = keys.clone();
    order.sort();
    // An INTEGER key is the rowid, so "insertion order" is key order (as in the original).
    exercise(&keys, &order, true);
}

#[test]
fn float_keys_including_infinities() {
    let keys = vec![
        0.5,
        f64::INFINITY,
        -1e300,
        f64::NEG_INFINITY,
        0.0,
        f64::MIN_POSITIVE,
        -2.5,
    ];
    let mut order = keys.clone();
    order.sort_by(f64::total_cmp);
    exercise(&keys, &order, false);
}

#[test]
fn positive_and_negative_zero_are_one_key() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<f64, i64> = DiskStore::open(dir.path().join("z.db")).unwrap();
    s.insert(&0.0, &1).unwrap();
    s.insert(&-0.0, &2).unwrap();
    assert_eq!(s.len().unwrap(), 1);
    assert_eq!(s.get(&0.0).unwrap(), Some(2));
    assert_eq!(s.get(&-0.0).unwrap(), Some(2));
    assert!(!s.add(&-0.0, &3).unwrap());
    assert_eq!(s.remove(&-0.0).unwrap(), Some(2));
    assert!(s.is_empty().unwrap());
}

#[test]
fn integral_float_keys_read_back_as_floats() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<f64, i64> = DiskStore::open(dir.path().join("f.db")).unwrap();
    s.insert(&3.0, &3).unwrap();
    s.insert(&-7.0, &7).unwrap();
    let keys: Vec<f64> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, [3.0, -7.0]);
}

#[test]
fn nan_keys_are_refused_everywhere() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<f64, i64> = DiskStore::open(dir.path().join("n.db")).unwrap();
    s.insert(&1.0, &1).unwrap();
    let nan = f64::NAN;
    assert!(matches!(s.insert(&nan, &1), Err(Error::InvalidKey(_))));
    assert!(matches!(s.add(&nan, &1), Err(Error::InvalidKey(_))));
    assert!(matches!(s.get(&nan), Err(Error::InvalidKey(_))));
    assert!(matches!(s.contains_key(&nan), Err(Error::InvalidKey(_))));
    assert!(matches!(s.remove(&nan), Err(Error::InvalidKey(_))));
    assert!(matches!(
        s.get_or_insert(&nan, &1),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(s.get_many(&[1.0, nan]), Err(Error::InvalidKey(_))));
    let first = s.range(nan..).next().unwrap();
    assert!(matches!(first, Err(Error::InvalidKey(_))), "{first:?}");
    assert_eq!(s.len().unwrap(), 1);
}

#[test]
fn push_assigns_increasing_integer_keys() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<i64, String> = DiskStore::open(dir.path().join("p.db")).unwrap();
    let a = s.push(&"a".to_string()).unwrap();
    let b = s.push(&"b".to_string()).unwrap();
    assert_eq!(b, a + 1);
    s.insert(&100, &"c".to_string()).unwrap();
    let c = s.push(&"d".to_string()).unwrap();
    assert_eq!(c, 101);
    let items: Vec<(i64, String)> = s.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        items,
        [
            (a, "a".into()),
            (b, "b".into()),
            (100, "c".into()),
            (101, "d".into())
        ]
    );
}

#[test]
fn push_needs_integer_keys() {
    let dir = TempDir::new().unwrap();
    let s: DiskStore<String, i64> = DiskStore::open(dir.path().join("p.db")).unwrap();
    assert!(matches!(s.push(&1), Err(Error::Usage(_))));
    assert!(s.is_empty().unwrap());
}

#[derive(diskstore::Record, Debug, PartialEq)]
struct Widths {
    n: u64,
    f: f32,
}

#[test]
fn narrow_integer_keys_and_other_width_fields_round_trip_and_check_ranges() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("w.db");
    let s: DiskStore<u32, Widths> = DiskStore::open(&path).unwrap();
    let top = Widths {
        n: i64::MAX as u64,
        f: 1.5,
    };
    s.insert(&7u32, &top).unwrap();
    assert_eq!(s.get(&7u32).unwrap(), Some(top));
    assert!(matches!(
        s.insert(
            &8u32,
            &Widths {
                n: u64::MAX,
                f: 0.0
            }
        ),
        Err(Error::InvalidValue(_))
    ));
    // A stored key outside the type is a decode error, not a wrapped number.
    let wide: DiskStore<i64, Widths> = DiskStore::open(&path).unwrap();
    wide.insert(&-1, &Widths { n: 0, f: 0.0 }).unwrap();
    let keys: Vec<_> = s.keys().collect();
    assert!(keys.iter().any(|k| matches!(k, Err(Error::Decode { .. }))));
    let small: DiskStore<i32, usize> = DiskStore::builder(&path).table("t2").open().unwrap();
    small.insert(&-3, &(i64::MAX as usize)).unwrap();
    assert_eq!(small.get(&-3).unwrap(), Some(i64::MAX as usize));
}

#[test]
fn values_convert_from_every_width_and_params_builds_a_list() {
    use diskstore::params;
    assert_eq!(
        params![
            1u8,
            -2i16,
            3u32,
            1.5f32,
            "a",
            b"b".as_slice(),
            None::<i64>,
            Some(4)
        ],
        [
            Value::Integer(1),
            Value::Integer(-2),
            Value::Integer(3),
            Value::Real(1.5),
            Value::Text("a".into()),
            Value::Blob(b"b".to_vec()),
            Value::Null,
            Value::Integer(4),
        ]
    );
}
