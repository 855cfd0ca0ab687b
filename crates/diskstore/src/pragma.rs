//! Connection settings: the default pragmas and the one path that turns a store's pragma
//! list into the SQL every new connection runs.

use std::time::Duration;

use crate::error::{Error, Result};

/// The default pragmas of a read-write store, applied in this order on every new
/// connection: the original Python library's `DEFAULT_PRAGMAS` (diskstore 0.7.0) except
/// the page size of new files, 4 KiB instead of 16 KiB (a small write commits a quarter
/// of the bytes), and a memory map that covers files up to [`MMAP_SIZE`] instead of 256
/// MiB (see docs/design.md, "Scale"). Existing files keep their page size.
pub const DEFAULT_PRAGMAS: &[(&str, &str)] = &[
    ("auto_vacuum", "0"),
    ("cache_size", "-32768"),
    ("page_size", "4096"),
    ("journal_mode", "wal"),
    ("mmap_size", "2147418112"),
    ("synchronous", "1"),
    ("temp_store", "2"),
    ("wal_autocheckpoint", "5000"),
];

/// The default pragmas of a read-only store (the original's `DEFAULT_RO_PRAGMAS`, with the
/// larger memory map of [`DEFAULT_PRAGMAS`]).
pub const DEFAULT_RO_PRAGMAS: &[(&str, &str)] = &[
    ("cache_size", "-32768"),
    ("mmap_size", "2147418112"),
    ("temp_store", "2"),
    ("synchronous", "1"),
];

/// The default `mmap_size`: SQLite's compile-time ceiling (`SQLITE_MAX_MMAP_SIZE`, 2 GiB −
/// 64 KiB). SQLite maps no more than the file's size, so a small file costs no more than
/// before; a file of 10⁷ keys (1.4 GB) is read through the map instead of `read()` calls
/// and the page cache (get p50 13 → 6 µs there).
pub const MMAP_SIZE: u64 = 2_147_418_112;

/// The busy timeout unless one is set: the original's `TIMEOUT` (10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The defaults for `read_only`, overridden (same name, any case) or extended by `extra`,
/// as the `PRAGMA` statements a new connection runs.
///
/// # Errors
/// [`Error::Usage`] for a name or value that is not a plain identifier, number or quoted
/// string, so that no SQL can ride along.
pub(crate) fn connection_sql(read_only: bool, extra: &[(String, String)]) -> Result<String> {
    let defaults = if read_only {
        DEFAULT_RO_PRAGMAS
    } else {
        DEFAULT_PRAGMAS
    };
    let mut pragmas: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in extra {
        match pragmas
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
        {
            Some(slot) => slot.1 = v.clone(),
            None => pragmas.push((k.clone(), v.clone())),
        }
    }
    pragma_sql(&pragmas)
}

/// Builds the `PRAGMA` statements, refusing names and values that are not plain
/// identifiers, numbers or quoted strings.
pub(crate) fn pragma_sql(pragmas: &[(String, String)]) -> Result<String> {
    let mut sql = String::new();
    for (name, value) in pragmas {
        let name_ok =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let v = value.trim();
        let value_ok = !v.is_empty()
            && (v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c))
                || (v.len() >= 2
                    && v.starts_with('\'')
                    && v.ends_with('\'')
                    && !v[1..v.len() - 1].contains('\'')));
        if !name_ok || !value_ok {
            return Err(Error::Usage(format!("invalid pragma {name:?} = {value:?}")));
        }
        sql.push_str(&format!("PRAGMA {name} = {v};\n"));
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pragma_values_cannot_inject_sql() {
        let ok = pragma_sql(&[("cache_size".into(), "-2000".into())]).unwrap();
        assert_eq!(ok, "PRAGMA cache_size = -2000;\n");
        assert!(pragma_sql(&[("x; DROP TABLE t".into(), "1".into())]).is_err());
        assert!(pragma_sql(&[("cache_size".into(), "1; DROP TABLE t".into())]).is_err());
        assert!(pragma_sql(&[("journal_mode".into(), "'wal''".into())]).is_err());
    }

    #[test]
    fn the_mmap_default_is_mmap_size() {
        for table in [DEFAULT_PRAGMAS, DEFAULT_RO_PRAGMAS] {
            let (_, v) = table.iter().find(|(k, _)| *k == "mmap_size").unwrap();
            assert_eq!(v.parse::<u64>().unwrap(), MMAP_SIZE);
        }
    }

    #[test]
    fn extra_pragmas_override_defaults_by_name_in_any_case() {
        let sql = connection_sql(true, &[("CACHE_SIZE".into(), "-100".into())]).unwrap();
        assert!(sql.starts_with("PRAGMA cache_size = -100;\n"), "{sql}");
        let sql = connection_sql(true, &[("foreign_keys".into(), "1".into())]).unwrap();
        assert!(sql.ends_with("PRAGMA foreign_keys = 1;\n"), "{sql}");
    }
}
