//! Looking into a store file without knowing its record types: which tables it has,
//! their layout (read with `PRAGMA table_info`), and opening one as a type-erased
//! [`Table`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use diskstore::rusqlite::{self, Connection, OpenFlags};
use diskstore::{Column, ColumnType, Table, TableOptions, TableSpec, Value, quote_ident};

use crate::fail::{Fail, Outcome};

/// The busy timeout of the tool's own connections.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One table of a file.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// The table name.
    pub name: String,
    /// The store layout, or `None` for a table that is not a store (no `_key` column).
    pub spec: Option<TableSpec>,
    /// The declared type of `_key` as written in the file.
    pub key_declared: String,
}

/// A store file opened for inspection (a raw read-only SQLite connection).
pub struct StoreFile {
    /// The file.
    pub path: PathBuf,
    /// The read-only connection.
    pub conn: Connection,
}

/// Fails unless `path` is an existing regular file.
pub fn must_exist(path: &Path) -> Outcome<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Fail::at(path, "not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Fail::new(format!("no such store file: {}", path.display())))
        }
        Err(e) => Err(Fail::at(path, e)),
    }
}

/// Explains a raw SQLite error about `path` in one line.
pub fn sqlite_fail(path: &Path, e: &rusqlite::Error) -> Fail {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase) => Fail::at(path, "not an SQLite database (or encrypted)"),
        Some(C::DatabaseCorrupt) => Fail::at(path, format!("the file is corrupt: {e}")),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            Fail::at(path, format!("locked by another process for {TIMEOUT:?}"))
        }
        Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) => {
            Fail::at(path, format!("cannot open or write: {e}"))
        }
        _ => Fail::at(path, e),
    }
}

/// Opens a raw connection: read-only, or read-write without ever creating the file.
pub fn raw_connection(path: &Path, writable: bool) -> Outcome<Connection> {
    must_exist(path)?;
    let flags = if writable {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite_fail(path, &e))?;
    conn.busy_timeout(TIMEOUT)
        .map_err(|e| sqlite_fail(path, &e))?;
    // Reading the schema makes SQLite look at the header: a foreign file fails here.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(|e| sqlite_fail(path, &e))?;
    Ok(conn)
}

/// Reads an SQL default literal (`PRAGMA table_info`'s `dflt_value`) as a value, or
/// `None` for an expression that is not a plain literal.
fn default_literal(text: &str) -> Option<Value> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("NULL") {
        return Some(Value::Null);
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::Integer(i));
    }
    if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
        return Some(Value::Text(t[1..t.len() - 1].replace("''", "'")));
    }
    if t.len() >= 3 && (t.starts_with("X'") || t.starts_with("x'")) && t.ends_with('\'') {
        return crate::typed::decode(&serde_json::json!({ "hex": &t[2..t.len() - 1] })).ok();
    }
    match t {
        "9e999" | "+9e999" => return Some(Value::Real(f64::INFINITY)),
        "-9e999" => return Some(Value::Real(f64::NEG_INFINITY)),
        _ => {}
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::Real)
}

impl StoreFile {
    /// Opens `path` read-only for inspection.
    pub fn open(path: &Path) -> Outcome<StoreFile> {
        Ok(StoreFile {
            path: path.to_owned(),
            conn: raw_connection(path, false)?,
        })
    }

    /// A failure from this file's connection.
    pub fn fail(&self, e: &rusqlite::Error) -> Fail {
        sqlite_fail(&self.path, e)
    }

    /// Every table of the file (SQLite's own `sqlite_*` tables left out), by name.
    pub fn tables(&self) -> Outcome<Vec<TableInfo>> {
        let names: Vec<String> = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .and_then(|mut st| {
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.fail(&e))?;
        names.into_iter().map(|n| self.table_info(&n)).collect()
    }

    /// The layout of one table.
    fn table_info(&self, name: &str) -> Outcome<TableInfo> {
        struct Col {
            name: String,
            declared: String,
            not_null: bool,
            default: Option<String>,
        }
        let cols: Vec<Col> = self
            .conn
            .prepare(r#"SELECT name, type, "notnull", dflt_value FROM pragma_table_info(?1)"#)
            .and_then(|mut st| {
                st.query_map([name], |r| {
                    Ok(Col {
                        name: r.get(0)?,
                        declared: r.get(1)?,
                        not_null: r.get(2)?,
                        default: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.fail(&e))?;
        let key = cols.iter().find(|c| c.name.eq_ignore_ascii_case("_key"));
        let Some(key) = key else {
            return Ok(TableInfo {
                name: name.to_owned(),
                spec: None,
                key_declared: String::new(),
            });
        };
        let columns = cols
            .iter()
            .filter(|c| !c.name.eq_ignore_ascii_case("_key"))
            .map(|c| {
                Column::new(
                    c.name.clone(),
                    ColumnType::from_declared(&c.declared),
                    !c.not_null,
                    c.default.as_deref().and_then(default_literal),
                )
            })
            .collect();
        Ok(TableInfo {
            name: name.to_owned(),
            key_declared: key.declared.clone(),
            spec: Some(TableSpec {
                name: name.to_owned(),
                key_type: ColumnType::from_declared(&key.declared),
                columns,
            }),
        })
    }

    /// The store table a command works on: `wanted` if given, else the only store table,
    /// else `DiskStore` (the Python original's default) if present.
    pub fn pick(&self, wanted: Option<&str>) -> Outcome<TableSpec> {
        let tables = self.tables()?;
        let stores: Vec<&TableSpec> = tables.iter().filter_map(|t| t.spec.as_ref()).collect();
        if let Some(w) = wanted {
            return match tables.iter().find(|t| t.name == w) {
                Some(TableInfo { spec: Some(s), .. }) => Ok(s.clone()),
                Some(_) => Err(Fail::at(
                    &self.path,
                    format!("table {w:?} is not a store table (it has no _key column)"),
                )),
                None => Err(Fail::at(
                    &self.path,
                    format!("no table {w:?} (store tables: {})", names(&stores)),
                )),
            };
        }
        match stores.as_slice() {
            [] => Err(Fail::at(&self.path, "the file has no store table")),
            [only] => Ok((*only).clone()),
            many => many
                .iter()
                .find(|s| s.name == diskstore::DEFAULT_TABLE)
                .map(|s| (*s).clone())
                .ok_or_else(|| {
                    Fail::at(
                        &self.path,
                        format!(
                            "the file has several store tables ({}); pick one with --table",
                            names(many)
                        ),
                    )
                }),
        }
    }

    /// `SELECT COUNT(*)` of a table.
    pub fn count(&self, table: &str) -> Outcome<u64> {
        let t = quote_ident(table).map_err(|e| Fail::engine(&self.path, e))?;
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.fail(&e))
    }

    /// An integer pragma (`page_size`, `page_count`, …).
    pub fn pragma_int(&self, name: &str) -> Outcome<i64> {
        self.conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| self.fail(&e))
    }

    /// A text pragma (`journal_mode`, `encoding`).
    pub fn pragma_text(&self, name: &str) -> Outcome<String> {
        self.conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| self.fail(&e))
    }
}

fn names(specs: &[&TableSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens a table of an existing file through the engine: read-only for reads (nothing
/// is created or changed), read-write without migration for writes.
pub fn open_table(path: &Path, spec: TableSpec, writable: bool) -> Outcome<Table> {
    let mut options = TableOptions::new(path, spec);
    options.read_only = !writable;
    options.auto_migrate = false;
    options.timeout = TIMEOUT;
    Table::open(options).map_err(|e| Fail::engine(path, e))
}

/// Opens (creating the file and table when needed, adding missing columns) a table for
/// writing a dump into.
pub fn create_table(path: &Path, spec: TableSpec) -> Outcome<Table> {
    let mut options = TableOptions::new(path, spec);
    options.timeout = TIMEOUT;
    Table::open(options).map_err(|e| Fail::engine(path, e))
}

/// Opens the table a command names (or the only one) of an existing file.
pub fn open_store(path: &Path, table: Option<&str>, writable: bool) -> Outcome<Table> {
    let spec = StoreFile::open(path)?.pick(table)?;
    open_table(path, spec, writable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_literals_are_read_as_values() {
        assert_eq!(default_literal("NULL"), Some(Value::Null));
        assert_eq!(default_literal("-3"), Some(Value::Integer(-3)));
        assert_eq!(default_literal("2.5e0"), Some(Value::Real(2.5)));
        assert_eq!(default_literal("'it''s'"), Some(Value::Text("it's".into())));
        assert_eq!(default_literal("X'00ff'"), Some(Value::Blob(vec![0, 255])));
        assert_eq!(
            default_literal("-9e999"),
            Some(Value::Real(f64::NEG_INFINITY))
        );
        assert_eq!(default_literal("CURRENT_TIMESTAMP"), None);
    }
}
