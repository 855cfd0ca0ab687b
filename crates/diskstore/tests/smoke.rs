//! A quick tour of the typed API on each key type.

use diskstore::{DiskRead, DiskStore, Error, Query, Value};

#[test]
fn every_basic_operation_works_on_text_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s: DiskStore<String, String> = DiskStore::open(&path).unwrap();
    assert!(s.is_empty().unwrap());
    s.insert("a", &"1".to_string()).unwrap();
    s.insert("b", &"2".to_string()).unwrap();
    s.insert("a", &"3".to_string()).unwrap();
    assert_eq!(s.get("a").unwrap().as_deref(), Some("3"));
    assert_eq!(s.len().unwrap(), 2);
    let keys: Vec<String> = s.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, ["a", "b"]);
    let rev: Vec<String> = s.keys().rev().collect::<Result<_, _>>().unwrap();
    assert_eq!(rev, ["b", "a"]);
    assert!(!s.add("a", &"x".to_string()).unwrap());
    assert!(s.add("c", &"x".to_string()).unwrap());
    assert_eq!(s.remove("c").unwrap().as_deref(), Some("x"));
    assert_eq!(s.remove("c").unwrap(), None);
    assert_eq!(s.pop_last().unwrap(), Some(("b".into(), "2".into())));
    assert_eq!(s.get_or_insert("z", &"d".to_string()).unwrap(), "d");
    assert_eq!(s.get_or_insert("z", &"e".to_string()).unwrap(), "d");
    assert_eq!(
        s.extend([("p", "1".to_string()), ("q", "2".to_string())])
            .unwrap(),
        2
    );
    let got = s.get_many(&["p", "nope", "q"]).unwrap();
    assert_eq!(got, vec![Some("1".into()), None, Some("2".into())]);
    let q = s
        .query(&Query::new().filter("value = ?", [Value::from("2")]))
        .unwrap();
    assert_eq!(q, vec![("q".to_string(), "2".to_string())]);
    let r: Vec<_> = s.range("p"..="z").collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(
        r.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["p", "q", "z"]
    );
    assert!(s.check().unwrap().is_empty());
    let ro: DiskRead<String, String> = s.read_only().unwrap();
    assert_eq!(ro.len().unwrap(), 4);
    s.clear().unwrap();
    assert!(s.is_empty().unwrap());
}

#[test]
fn integer_keys_get_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let s: DiskStore<i64, f64> = DiskStore::open(dir.path().join("i.db")).unwrap();
    let k1 = s.push(&1.5).unwrap();
    let k2 = s.push(&2.5).unwrap();
    assert_eq!(k2, k1 + 1);
    assert_eq!(s.get(&k2).unwrap(), Some(2.5));
    assert!(matches!(
        s.insert(&1, &f64::NAN),
        Err(Error::InvalidValue(_))
    ));
}

#[test]
fn transactions_roll_back_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let s: DiskStore<i64, i64> = DiskStore::open(dir.path().join("t.db")).unwrap();
    {
        let _tx = s.transaction().unwrap();
        s.insert(&1, &1).unwrap();
        assert_eq!(s.get(&1).unwrap(), Some(1));
    }
    assert_eq!(s.get(&1).unwrap(), None);
    let tx = s.transaction().unwrap();
    s.insert(&1, &1).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.get(&1).unwrap(), Some(1));
}
