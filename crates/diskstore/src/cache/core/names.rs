//! Refusing a cache whose names clash with what the file already has.

use rusqlite::Connection;

use crate::error::{Error, Result};

use super::super::sql::{INDEX_SUFFIXES, LEASE_TABLE, META_TABLE, TRASH_TABLE, TRIGGER_SUFFIXES};
use super::CacheOptions;

/// Refuses, before anything is created, a cache whose table or internal objects would
/// clash with what the file already has under the same names (SQLite names are
/// case-insensitive): a user table named like another cache's index, or a cache named like
/// the shared bookkeeping tables. Without this the open would fail half-way with "there is
/// already a table named …" (or leave an empty table behind).
pub(super) fn check_names(options: &CacheOptions) -> Result<()> {
    let name = options.table.as_str();
    for reserved in [META_TABLE, LEASE_TABLE, TRASH_TABLE] {
        if name.eq_ignore_ascii_case(reserved) {
            return Err(Error::Usage(format!(
                "the table name {reserved:?} is reserved for the cache's own bookkeeping; \
                 choose another table name"
            )));
        }
    }
    if !options.path.exists() {
        return Ok(());
    }
    // (kind, object name, the table it must belong to; None: any)
    let mut wanted: Vec<(&str, String, Option<&str>)> = vec![
        ("table", name.to_owned(), Some(name)),
        ("table", META_TABLE.to_owned(), None),
        ("table", LEASE_TABLE.to_owned(), None),
        ("table", TRASH_TABLE.to_owned(), None),
    ];
    wanted.extend(
        INDEX_SUFFIXES
            .iter()
            .map(|s| ("index", format!("{name}_{s}"), Some(name))),
    );
    wanted.extend(
        TRIGGER_SUFFIXES
            .iter()
            .map(|s| ("trigger", format!("{name}_cache_{s}"), Some(name))),
    );
    // Best effort: a file that cannot be read here gives its real error when opened.
    let Ok(found) = schema_objects(options) else {
        return Ok(());
    };
    for (kind, object, owner) in &wanted {
        let clash = found.iter().find(|(k, n, t)| {
            n.eq_ignore_ascii_case(object)
                && (k != kind || owner.is_some_and(|o| !t.eq_ignore_ascii_case(o)))
        });
        if let Some((k, n, t)) = clash {
            let what = if *kind == "table" && object == name {
                format!("the cache table {name:?}")
            } else {
                format!("the {kind} {object:?} that cache {name:?} needs")
            };
            let article = if k == "index" { "an" } else { "a" };
            let on = if k == "table" {
                String::new()
            } else {
                format!(" (on table {t:?})")
            };
            return Err(Error::Usage(format!(
                "the file already has {article} {k} named {n:?}{on}, which clashes with \
                 {what}; give one of the two another table name"
            )));
        }
    }
    Ok(())
}

/// `(type, name, tbl_name)` of every table, index and trigger in the file.
pub(super) fn schema_objects(
    options: &CacheOptions,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let conn = Connection::open_with_flags(
        &options.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(options.timeout)?;
    let mut st = conn.prepare(
        "SELECT type, name, tbl_name FROM sqlite_master \
         WHERE type IN ('table', 'index', 'trigger', 'view')",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}
