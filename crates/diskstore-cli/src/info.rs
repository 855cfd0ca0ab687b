//! `info`, `check` and `vacuum`: the file as a whole.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use diskstore::{TableSpec, quote_ident};
use serde_json::json;

use crate::fail::{Fail, Outcome};
use crate::file::{StoreFile, raw_connection, sqlite_fail};
use crate::progress;
use crate::show::{BytesAs, human};

/// Sizes in bytes as a person reads them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

/// The cache columns of a `DiskCache` table (see `diskstore::DiskCache`).
fn is_cache(spec: &TableSpec) -> bool {
    let has = |n: &str| spec.columns.iter().any(|c| c.name == n);
    has("_expire_at") && has("_size")
}

/// Live and expired counts and stored bytes of a cache table.
struct CacheFigures {
    live: u64,
    expired: u64,
    bytes: u64,
}

fn cache_figures(f: &StoreFile, table: &str) -> Outcome<CacheFigures> {
    let t = quote_ident(table).map_err(|e| Fail::engine(&f.path, e))?;
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    f.conn
        .query_row(
            &format!(
                "SELECT count(*) - count(CASE WHEN _expire_at <= ?1 THEN 1 END), \
                 count(CASE WHEN _expire_at <= ?1 THEN 1 END), total(_size) FROM {t}"
            ),
            [now_us],
            |r| {
                Ok(CacheFigures {
                    live: r.get::<_, i64>(0)?.max(0) as u64,
                    expired: r.get::<_, i64>(1)?.max(0) as u64,
                    bytes: r.get::<_, f64>(2)?.max(0.0) as u64,
                })
            },
        )
        .map_err(|e| f.fail(&e))
}

/// Which program's default layout a table has, when it has one.
fn layout_note(spec: &TableSpec) -> Option<&'static str> {
    let one_value = matches!(spec.columns.as_slice(), [c] if c.name == "value");
    match spec.name.as_str() {
        "DiskStore" if one_value => Some("default table of Python diskstore 0.7.0 (BaseConfig)"),
        "Value" if one_value => Some("default table of Python diskstore 0.1.0 (Value)"),
        _ if is_cache(spec) => Some("a diskstore cache"),
        _ => None,
    }
}

/// Prints what is in a file.
pub fn info(path: &Path, as_json: bool) -> Outcome<()> {
    let f = StoreFile::open(path)?;
    let page_size = f.pragma_int("page_size")?;
    let page_count = f.pragma_int("page_count")?;
    let free = f.pragma_int("freelist_count")?;
    let journal = f.pragma_text("journal_mode")?;
    let encoding = f.pragma_text("encoding")?;
    let (db, wal) = (file_len(path), file_len(&wal_path(path)));
    let mut tables = Vec::new();
    let mut text = vec![
        format!("file        {}", path.display()),
        format!("size        {} (+ {} WAL)", size(db), size(wal)),
        format!(
            "sqlite      {} (library); page size {page_size}, {page_count} pages, {free} free; journal {journal}; {encoding}",
            diskstore::sqlite_version()
        ),
    ];
    let all = f.tables()?;
    text.push(format!("tables      {}", all.len()));
    for t in &all {
        let rows = f.count(&t.name)?;
        let Some(spec) = &t.spec else {
            let what = if t.name.starts_with("_cache_") {
                "a cache's bookkeeping"
            } else {
                "not a store table (no _key column)"
            };
            text.push(format!("  {:?}: {rows} rows; {what}", t.name));
            tables.push(json!({"name": t.name, "store": false, "rows": rows}));
            continue;
        };
        let note = layout_note(spec)
            .map(|n| format!(" — {n}"))
            .unwrap_or_default();
        text.push(format!(
            "  {:?}: {rows} rows, key {}{note}",
            t.name,
            if t.key_declared.is_empty() {
                "(untyped)"
            } else {
                &t.key_declared
            }
        ));
        let mut cols = Vec::new();
        for c in &spec.columns {
            let default = c
                .default
                .as_ref()
                .map(|d| format!(" DEFAULT {}", human(d.as_ref(), BytesAs::Hex, Some(32))))
                .unwrap_or_default();
            let null = if c.nullable { "" } else { " NOT NULL" };
            text.push(format!("      {} {}{null}{default}", c.name, c.sql_type));
            cols.push(json!({"name": c.name, "type": c.sql_type.sql(), "not_null": !c.nullable}));
        }
        let mut entry = json!({
            "name": t.name, "store": true, "rows": rows, "key_type": t.key_declared,
            "columns": cols,
        });
        if is_cache(spec) {
            let c = cache_figures(&f, &t.name)?;
            text.push(format!(
                "      cache: {} live, {} expired, {} stored",
                c.live,
                c.expired,
                size(c.bytes)
            ));
            entry["cache"] = json!({"live": c.live, "expired": c.expired, "bytes": c.bytes});
        }
        tables.push(entry);
    }
    if as_json {
        let doc = json!({
            "file": path.display().to_string(), "size": db, "wal_size": wal,
            "sqlite_version": diskstore::sqlite_version(), "page_size": page_size,
            "page_count": page_count, "freelist_count": free, "journal_mode": journal,
            "encoding": encoding, "tables": tables,
        });
        println!("{doc}");
    } else {
        println!("{}", text.join("\n"));
    }
    Ok(())
}

/// Runs SQLite's integrity check; fails listing the problems when there are any.
pub fn check(path: &Path) -> Outcome<()> {
    let f = StoreFile::open(path)?;
    let pages = f.pragma_int("page_count")?;
    let started = Instant::now();
    let spinner = progress::spinner(&format!("checking {} pages", pages));
    let problems: Vec<String> = f
        .conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<diskstore::rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| f.fail(&e))?
        .into_iter()
        .filter(|m| m != "ok")
        .collect();
    spinner.finish_and_clear();
    if problems.is_empty() {
        println!(
            "{}: ok ({pages} pages checked in {:.2} s)",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    } else {
        for p in &problems {
            println!("{p}");
        }
        Err(Fail::at(
            path,
            format!("integrity check found {} problem(s)", problems.len()),
        ))
    }
}

/// Rebuilds the file to give free space back, and empties the WAL.
pub fn vacuum(path: &Path) -> Outcome<()> {
    let conn = raw_connection(path, true)?;
    let before = file_len(path) + file_len(&wal_path(path));
    let started = Instant::now();
    let spinner = progress::spinner("vacuuming");
    conn.execute_batch("VACUUM")
        .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        .map_err(|e| sqlite_fail(path, &e))?;
    spinner.finish_and_clear();
    drop(conn);
    let after = file_len(path) + file_len(&wal_path(path));
    println!(
        "{}: {} → {} in {:.2} s",
        path.display(),
        size(before),
        size(after),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(10), "10 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
    }
}
