//! Unit tests of the cache engine that look inside it (held statements, refusals).

use super::*;
use rusqlite::StatementStatus;

use crate::record::Row;
use crate::table::Direction;

use super::super::sql::{LEASE_TABLE, META_TABLE};

fn open_cache(path: &std::path::Path, table: &str) -> Result<CacheTable> {
    let columns = vec![Column::new("value", ColumnType::Blob, false, None)];
    CacheTable::open(CacheOptions::new(path, table, columns))
}

fn blob(b: &[u8]) -> [Cell<'_>; 1] {
    [Cell::Borrowed(ValueRef::Blob(b))]
}

/// `(name, sql)` of the triggers in the file.
fn triggers(c: &CacheTable) -> Vec<(String, String)> {
    c.table()
        .with_connection(|conn| {
            let mut st = conn.prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
            )?;
            Ok(st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .unwrap()
}

/// `(sum of _size, rows)` of table `c`, counted.
fn counted(c: &CacheTable) -> (u64, u64) {
    c.table()
        .with_connection(|conn| {
            Ok(
                conn.query_row("SELECT coalesce(sum(_size), 0), count(*) FROM c", [], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })?,
            )
        })
        .unwrap()
}

/// Files made before the `OR IGNORE` trigger bodies get them at open, and the totals stay
/// exact through inserts, overwrites, deletes and evictions either way.
#[test]
fn triggers_of_older_files_are_replaced_and_the_totals_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let c = open_cache(&path, "c").unwrap();
    assert_eq!(triggers(&c).len(), 5);
    assert!(
        triggers(&c)
            .iter()
            .all(|(_, sql)| sql.contains("OR IGNORE"))
    );
    // The body an older version created.
    c.table()
        .with_connection(|conn| {
            conn.execute_batch(
                "DROP TRIGGER c_cache_insert; \
                 CREATE TRIGGER c_cache_insert AFTER INSERT ON c BEGIN \
                 UPDATE _cache_meta SET volume = volume + NEW._size, count = count + 1 \
                 WHERE tbl = 'c'; END;",
            )?;
            Ok(())
        })
        .unwrap();
    c.set(KeyRef::Int(1), &blob(&[1; 10]), Ttl::Never, None)
        .unwrap();
    assert_eq!((c.volume().unwrap(), c.len().unwrap()), (18, 1));
    drop(c);
    let columns = vec![Column::new("value", ColumnType::Blob, false, None)];
    let mut o = CacheOptions::new(&path, "c", columns);
    o.size_limit = Some(100);
    let c = CacheTable::open(o).unwrap();
    let found = triggers(&c);
    assert_eq!(found.len(), 5);
    assert!(
        found.iter().all(|(_, sql)| sql.contains("OR IGNORE")),
        "{found:?}"
    );
    for i in 0..20usize {
        let v = vec![2u8; 10 + i];
        c.set(KeyRef::Int(i as i64 % 7), &blob(&v), Ttl::Never, None)
            .unwrap();
        let (sum, n) = counted(&c);
        assert_eq!((c.volume().unwrap(), c.len().unwrap()), (sum, n));
        assert!(sum <= 100);
    }
    c.delete(KeyRef::Int(6)).unwrap();
    let (sum, n) = counted(&c);
    assert_eq!((c.volume().unwrap(), c.len().unwrap()), (sum, n));
}

/// Inserts say `OR IGNORE` (no statement journal), so a NULL in a NOT NULL column is
/// refused by the cache itself, as SQLite refused it before, and nothing is stored.
#[test]
fn a_null_in_a_not_null_column_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = open_cache(&dir.path().join("c.db"), "c").unwrap();
    let null = [Cell::Borrowed(ValueRef::Null)];
    let k = KeyRef::Text("k");
    for e in [
        c.set(k, &null, Ttl::Never, None).err(),
        c.add(k, &null, Ttl::Never, None).err(),
    ] {
        let e = e.expect("refused");
        assert!(
            e.to_string()
                .contains("NOT NULL constraint failed: c.value"),
            "{e}"
        );
    }
    c.set(k, &blob(b"v"), Ttl::Never, None).unwrap();
    assert!(c.set(k, &null, Ttl::Never, None).is_err());
    assert!(!c.add(k, &blob(b"w"), Ttl::Never, None).unwrap());
    let got = c.get(k, |r| Ok(r.value(0)?.to_owned())).unwrap();
    assert_eq!(got, Some(Value::Blob(b"v".to_vec())));
    assert_eq!(c.len().unwrap(), 1);
}

#[test]
fn a_pop_whose_decoding_fails_deletes_nothing_even_inside_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let c = open_cache(&dir.path().join("c.db"), "c").unwrap();
    let k = KeyRef::Text("k");
    c.set(k, &blob(b"v"), Ttl::Never, None).unwrap();
    let refuse = |_: &Row<'_>| -> Result<()> { Err(Error::Usage("cannot decode".into())) };
    assert!(c.pop(k, refuse).is_err());
    assert!(c.contains(k).unwrap());
    // Joined to an outer transaction that commits: still there.
    c.table()
        .atomic(|| {
            assert!(c.pop(k, refuse).is_err());
            Ok(())
        })
        .unwrap();
    assert!(c.contains(k).unwrap());
    let got = c.pop(k, |r| Ok(r.value(0)?.to_owned())).unwrap();
    assert_eq!(got, Some(Value::Blob(b"v".to_vec())));
    assert!(!c.contains(k).unwrap());
    assert_eq!(c.pop(k, |_| Ok(())).unwrap(), None);
}

#[test]
fn clashing_names_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    open_cache(&path, "Cache_expire_at").unwrap();
    let e = open_cache(&path, "Cache").err().expect("a clash");
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("\"Cache_expire_at\"")),
        "{e}"
    );
    let other = dir.path().join("d.db");
    open_cache(&other, "Cache").unwrap();
    let e = open_cache(&other, "cache_EXPIRE_AT")
        .err()
        .expect("a clash");
    assert!(matches!(&e, Error::Usage(m) if m.contains("index")), "{e}");
    for reserved in [META_TABLE, LEASE_TABLE] {
        let e = open_cache(&other, reserved).err().expect("reserved");
        assert!(
            matches!(&e, Error::Usage(m) if m.contains("reserved")),
            "{e}"
        );
    }
    // Nothing was created by the refused opens; the first caches still work.
    let names: Vec<String> = open_cache(&other, "Cache")
        .unwrap()
        .table()
        .with_connection(|conn| {
            let mut st =
                conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            Ok(st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .unwrap();
    assert_eq!(
        names,
        ["Cache", "_cache_lease", "_cache_meta", "_cache_trash"]
    );
}

#[test]
fn try_incr_tells_a_wrong_type_from_an_overflow_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = open_cache(&dir.path().join("c.db"), "c").unwrap();
    let (t, n) = (KeyRef::Text("t"), KeyRef::Text("n"));
    c.set(t, &[Cell::Borrowed(ValueRef::Text("x"))], Ttl::Never, None)
        .unwrap();
    let r = c.try_incr(t, 1, 0, Ttl::Never, &[]).unwrap();
    assert_eq!(r, Err(IncrRefusal::NotAnInteger(Some(ColumnType::Text))));
    assert_eq!(
        c.try_incr(n, i64::MAX, 0, Ttl::Never, &[]).unwrap(),
        Ok(i64::MAX)
    );
    assert_eq!(
        c.try_incr(n, 1, 0, Ttl::Never, &[]).unwrap(),
        Err(IncrRefusal::Overflow)
    );
    assert_eq!(
        c.try_incr(KeyRef::Int(1), 1, i64::MAX, Ttl::Never, &[])
            .unwrap(),
        Err(IncrRefusal::Overflow)
    );
    assert!(!c.contains(KeyRef::Int(1)).unwrap());
    assert_eq!(
        c.try_incr(n, -1, 0, Ttl::Never, &[]).unwrap(),
        Ok(i64::MAX - 1)
    );
    assert!(matches!(
        c.incr(t, 1, 0, Ttl::Never, &[]),
        Err(Error::InvalidValue(_))
    ));
}

/// SQLite re-prepares a statement on every new binding when its plan depended on a
/// bound value; on the hot paths that would cost more than the statement itself.
#[test]
fn hot_statements_are_not_reprepared_on_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let columns = vec![Column::new("value", ColumnType::Blob, false, None)];
    for policy in [
        EvictionPolicy::LeastRecentlyStored,
        EvictionPolicy::LeastRecentlyUsed,
        EvictionPolicy::LeastFrequentlyUsed,
    ] {
        let mut o = CacheOptions::new(
            dir.path().join(format!("{policy}.db")),
            "c",
            columns.clone(),
        );
        o.policy = policy;
        o.size_limit = Some(10_000);
        let c = CacheTable::open(o).unwrap();
        let v = [Cell::Borrowed(ValueRef::Blob(&[1u8; 100]))];
        for i in 0..300i64 {
            let k = KeyRef::Int(i);
            c.set(
                k,
                &v,
                Ttl::After(Duration::from_secs(60)),
                Some(KeyRef::Text("t")),
            )
            .unwrap();
            c.get(k, |_| Ok(())).unwrap();
            c.touch(k, Ttl::Never).unwrap();
            c.add(k, &v, Ttl::Default, None).unwrap();
            if i % 3 == 0 {
                c.delete(k).unwrap();
            }
            c.contains(k).unwrap();
            c.len().unwrap();
            c.scan(i, i64::MAX, Direction::Forward, |_, _| Ok(()))
                .unwrap();
        }
        let sql = &c.inner.sql;
        // (id, name, text): statements held by id, then ones from the statement cache.
        let texts = [
            (Some(stmt::GET), "get", &sql.get),
            (Some(stmt::GET_LRU), "get_lru", &sql.get_lru),
            (Some(stmt::GET_LFU), "get_lfu", &sql.get_lfu),
            (Some(stmt::DELETE), "delete", &sql.delete),
            (Some(stmt::INSERT), "insert", &sql.insert),
            (None, "purge", &sql.purge),
            (Some(stmt::ANY_EXPIRED), "any_expired", &sql.any_expired),
            (Some(stmt::TOUCH), "touch", &sql.touch),
            (Some(stmt::CONTAINS), "contains", &sql.contains),
            (Some(stmt::INSERT_NEW), "insert_new", &sql.insert_new),
            (
                Some(stmt::DELETE_IF_EXPIRED),
                "delete_if_expired",
                &sql.delete_if_expired,
            ),
            (Some(stmt::META_READ), "meta_read", &sql.meta_read),
            (Some(stmt::PROBE_META), "probe_meta", &sql.probe_meta),
            (None, "evict_expired", &sql.evict_expired),
            (None, "count_expired", &sql.count_expired),
            (None, "scan", &sql.scan[0]),
        ];
        let mut bad = Vec::new();
        c.table()
            .with_connection(|conn| {
                for (id, name, text) in texts {
                    let (runs, re) = match id {
                        Some(id) => held(&c.inner, conn, id, text, |st| {
                            Ok((
                                st.get_status(StatementStatus::Run),
                                st.get_status(StatementStatus::RePrepare),
                            ))
                        })?,
                        None => {
                            let st = conn.prepare_cached(text)?;
                            (
                                st.get_status(StatementStatus::Run),
                                st.get_status(StatementStatus::RePrepare),
                            )
                        }
                    };
                    if re > 1 {
                        bad.push(format!(
                            "{policy}: {name} re-prepared {re} times in {runs} runs"
                        ));
                    }
                }
                if let Some(e) = &sql.evict_one {
                    let re = conn
                        .prepare_cached(e)?
                        .get_status(StatementStatus::RePrepare);
                    if re > 1 {
                        bad.push(format!("{policy}: evict_one re-prepared {re} times"));
                    }
                }
                Ok(())
            })
            .unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    }
}

/// A write finds the metadata row by its rowid; a row made again under another rowid (by
/// hand) is found by name and used from then on.
#[test]
fn a_metadata_row_made_again_is_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let columns = vec![Column::new("value", ColumnType::Blob, false, None)];
    let mut o = CacheOptions::new(dir.path().join("c.db"), "c", columns);
    o.size_limit = Some(1000);
    let c = CacheTable::open(o).unwrap();
    c.set(KeyRef::Int(1), &blob(&[1; 100]), Ttl::Never, None)
        .unwrap();
    c.table()
        .with_connection(|conn| {
            conn.execute_batch(
                "INSERT INTO _cache_meta (tbl, volume, count) VALUES ('x', 0, 0); \
                 UPDATE _cache_meta SET rowid = rowid + 100 WHERE tbl = 'c'; \
                 DELETE FROM _cache_meta WHERE tbl = 'x';",
            )?;
            Ok(())
        })
        .unwrap();
    for i in 2..30i64 {
        c.set(KeyRef::Int(i), &blob(&[1; 100]), Ttl::Never, None)
            .unwrap();
        assert!(c.volume().unwrap() <= 1000);
    }
    assert_eq!(c.len().unwrap(), 9);
    c.table()
        .with_connection(|conn| {
            conn.execute_batch("DELETE FROM _cache_meta")?;
            Ok(())
        })
        .unwrap();
    let e = c
        .set(KeyRef::Int(99), &blob(&[1; 100]), Ttl::Never, None)
        .unwrap_err();
    assert!(e.to_string().contains("metadata row is missing"), "{e}");
}
