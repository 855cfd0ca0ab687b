//! The table layout and every SQL text of a table, built once when a store opens.
//!
//! A store is one table: `_key` (the primary key) followed by one column per value field,
//! the file format of the original Python diskstore. All identifiers go through
//! [`quote_ident`]; all keys and values are bound as parameters.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::record::Column;
use crate::value::{ColumnType, Value};

/// Quotes an SQL identifier (table or column name) so that any text, quotes and SQL
/// included, stays a name.
///
/// # Errors
/// [`Error::Usage`] for an empty name or one with a NUL character.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::Usage(format!("invalid SQL name {name:?}")));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// An SQL literal for a column default (used only in `CREATE`/`ALTER TABLE`).
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) if f.is_infinite() => if *f > 0.0 { "9e999" } else { "-9e999" }.into(),
        Value::Real(f) => format!("{f:e}"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("X'{hex}'")
        }
    }
}

/// A row limit as an SQL integer literal (SQLite integers are 64-bit signed).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The layout of one store table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// The table name.
    pub name: String,
    /// The declared type of the `_key` column.
    pub key_type: ColumnType,
    /// The value columns.
    pub columns: Vec<Column>,
}

impl TableSpec {
    /// The `CREATE TABLE IF NOT EXISTS` statement of this layout, for a front end that must
    /// create the table inside its own write transaction (the Python binding settles which
    /// of two layouts a new file gets under the write lock).
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid table or column name.
    pub fn create_sql(&self) -> Result<String> {
        Ok(Statements::new(self)?.create)
    }
}

/// Every SQL text one table needs. Row layout of reads: `_key`, the value columns, and
/// for scans the rowid last.
#[derive(Debug)]
pub(crate) struct Statements {
    pub get: String,
    pub contains: String,
    pub count: String,
    pub upsert: String,
    /// [`Statements::upsert`] for `upsert_chunk_rows` rows at once (parameters `?` in
    /// order, the key then the values of each row); 0 rows: rows go one by one.
    pub upsert_chunk: String,
    pub upsert_chunk_rows: usize,
    pub insert_new: String,
    pub insert_auto: String,
    pub delete: String,
    pub remove: String,
    pub pop_last: String,
    pub pop_first: String,
    pub clear: String,
    pub select: String,
    pub create: String,
    pub max_key: String,
    table: String,
    columns: String,
}

fn column_def(c: &Column) -> Result<String> {
    let mut def = format!("{} {}", quote_ident(&c.name)?, c.sql_type);
    if !c.nullable {
        def.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        def.push_str(" DEFAULT ");
        def.push_str(&literal(d));
    }
    Ok(def)
}

impl Statements {
    pub fn new(spec: &TableSpec) -> Result<Statements> {
        let t = quote_ident(&spec.name)?;
        let names = spec
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Result<Vec<_>>>()?;
        let cols: String = names.iter().map(|n| format!(", {n}")).collect();
        let params: String = (0..names.len()).map(|i| format!(", ?{}", i + 2)).collect();
        let auto_params: Vec<String> = (0..names.len()).map(|i| format!("?{}", i + 2)).collect();
        let updates: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = excluded.{n}"))
            .collect();
        let upsert_tail = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let defs = spec
            .columns
            .iter()
            .map(column_def)
            .collect::<Result<Vec<_>>>()?;
        let defs: String = defs.iter().map(|d| format!(", {d}")).collect();
        // Inserts nothing once the largest rowid is taken: SQLite would then pick a random
        // free key, which a caller counting on "the next key" must not get silently.
        let (auto_cols, auto_vals) = if names.is_empty() {
            ("_key".to_owned(), "NULL".to_owned())
        } else {
            (names.join(", "), auto_params.join(", "))
        };
        let insert_auto = format!(
            "INSERT INTO {t} ({auto_cols}) SELECT {auto_vals} \
             WHERE (SELECT max(rowid) FROM {t}) IS NOT {} RETURNING _key",
            i64::MAX
        );
        let upsert_chunk_rows = crate::table::bulk::chunk_rows(spec.key_type, names.len());
        let row = format!("({})", vec!["?"; names.len() + 1].join(", "));
        let upsert_chunk = if upsert_chunk_rows == 0 {
            String::new()
        } else {
            format!(
                "INSERT INTO {t} (_key{cols}) VALUES {} ON CONFLICT(_key) {upsert_tail}",
                vec![row.as_str(); upsert_chunk_rows].join(", ")
            )
        };
        Ok(Statements {
            get: format!("SELECT _key{cols} FROM {t} WHERE _key = ?1"),
            contains: format!("SELECT 1 FROM {t} WHERE _key = ?1"),
            count: format!("SELECT COUNT(*) FROM {t}"),
            upsert: format!(
                "INSERT INTO {t} (_key{cols}) VALUES (?1{params}) ON CONFLICT(_key) {upsert_tail}"
            ),
            upsert_chunk,
            upsert_chunk_rows,
            insert_new: format!(
                "INSERT INTO {t} (_key{cols}) VALUES (?1{params}) ON CONFLICT(_key) DO NOTHING"
            ),
            insert_auto,
            delete: format!("DELETE FROM {t} WHERE _key = ?1"),
            remove: format!("DELETE FROM {t} WHERE _key = ?1 RETURNING _key{cols}"),
            pop_last: format!(
                "DELETE FROM {t} WHERE rowid = (SELECT max(rowid) FROM {t}) RETURNING _key{cols}"
            ),
            pop_first: format!(
                "DELETE FROM {t} WHERE rowid = (SELECT min(rowid) FROM {t}) RETURNING _key{cols}"
            ),
            clear: format!("DELETE FROM {t}"),
            select: format!("SELECT _key{cols} FROM {t}"),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {t} (_key {} PRIMARY KEY NOT NULL{defs})",
                spec.key_type
            ),
            max_key: format!("SELECT max(rowid) FROM {t}"),
            table: t,
            columns: cols,
        })
    }

    /// A page of up to `limit` rows with rowids between `?1` and `?2`, in rowid order (or
    /// reversed), rowid last; without the value columns when `keys_only`. The limit is a
    /// literal: a bound `LIMIT ?` makes SQLite re-prepare the statement on every run.
    pub fn scan(&self, reverse: bool, keys_only: bool, limit: usize) -> String {
        let limit = sql_limit(limit);
        let (t, cols) = (
            &self.table,
            if keys_only { "" } else { self.columns.as_str() },
        );
        let order = if reverse { "DESC" } else { "ASC" };
        format!(
            "SELECT _key{cols}, rowid FROM {t} WHERE rowid BETWEEN ?1 AND ?2 \
             ORDER BY rowid {order} LIMIT {limit}"
        )
    }

    /// A key-ordered page of up to `limit` rows between the ends `?1` and `?2` (a literal
    /// limit, as in [`Statements::scan`]).
    pub fn range(&self, lower: Edge, upper: Edge, reverse: bool, limit: usize) -> String {
        let limit = sql_limit(limit);
        let (t, cols) = (&self.table, &self.columns);
        let mut conds = Vec::new();
        let (first, last, order) = if reverse {
            (upper, lower, "DESC")
        } else {
            (lower, upper, "ASC")
        };
        let (lt, le, gt, ge) = if reverse {
            ("<", "<=", ">", ">=")
        } else {
            (">", ">=", "<", "<=")
        };
        match first {
            Edge::Open => {}
            Edge::Included => conds.push(format!("_key {le} ?1")),
            Edge::Excluded => conds.push(format!("_key {lt} ?1")),
        }
        match last {
            Edge::Open => {}
            Edge::Included => conds.push(format!("_key {ge} ?2")),
            Edge::Excluded => conds.push(format!("_key {gt} ?2")),
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        format!("SELECT _key{cols} FROM {t}{filter} ORDER BY _key {order} LIMIT {limit}")
    }

    /// A trusted query: the caller's `WHERE` and `ORDER BY` fragments pasted in verbatim.
    pub fn query(&self, filter: Option<&str>, order: Option<&str>) -> String {
        let mut sql = self.select.clone();
        // Each fragment on lines of its own, so that a `--` comment in one ends with it.
        if let Some(w) = filter {
            sql.push_str(" WHERE (\n");
            sql.push_str(w);
            sql.push_str("\n)");
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(order.unwrap_or("rowid"));
        sql.push_str("\n LIMIT ? OFFSET ?");
        sql
    }

    /// `ALTER TABLE … ADD COLUMN` for a migration.
    fn add_column(&self, c: &Column) -> Result<String> {
        Ok(format!(
            "ALTER TABLE {} ADD COLUMN {}",
            self.table,
            column_def(c)?
        ))
    }
}

/// One end of a key range in SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Edge {
    Open,
    Included,
    Excluded,
}

/// A column of the table as the file declares it.
#[derive(Debug)]
pub(crate) struct FileColumn {
    name: String,
    declared: String,
    not_null: bool,
    has_default: bool,
}

/// The columns of `table` in the file, or `None` if there is no such table.
pub(crate) fn file_columns(conn: &Connection, table: &str) -> Result<Option<Vec<FileColumn>>> {
    let mut stmt = conn.prepare(
        r#"SELECT name, type, "notnull", dflt_value IS NOT NULL FROM pragma_table_info(?1)"#,
    )?;
    let cols = stmt
        .query_map([table], |r| {
            Ok(FileColumn {
                name: r.get(0)?,
                declared: r.get(1)?,
                not_null: r.get(2)?,
                has_default: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if cols.is_empty() { None } else { Some(cols) })
}

/// Whether a value of type `wanted` survives a column declared `declared` unchanged.
fn fits(wanted: ColumnType, declared: ColumnType) -> bool {
    wanted == declared
        || declared == ColumnType::Blob
        || wanted == ColumnType::Blob
        || (wanted == ColumnType::Real && declared == ColumnType::Integer)
}

/// What must change in the file for `spec` to fit it.
pub(crate) enum Plan {
    /// Nothing: the table fits.
    Fits,
    /// The table does not exist yet.
    Create,
    /// These columns must be added.
    AddColumns(Vec<Column>),
}

/// Compares the file's table with `spec`; an impossible fit is a [`Error::Schema`].
pub(crate) fn plan(conn: &Connection, spec: &TableSpec, writable: bool) -> Result<Plan> {
    let schema_err = |column: Option<&str>, message: String| Error::Schema {
        table: spec.name.clone(),
        column: column.map(str::to_owned),
        message,
    };
    let Some(cols) = file_columns(conn, &spec.name)? else {
        return Ok(Plan::Create);
    };
    let find = |name: &str| cols.iter().find(|c| c.name.eq_ignore_ascii_case(name));
    let key = find("_key")
        .ok_or_else(|| schema_err(Some("_key"), "the table has no _key column".into()))?;
    let key_declared = ColumnType::from_declared(&key.declared);
    if !fits(spec.key_type, key_declared) {
        return Err(schema_err(
            Some("_key"),
            format!(
                "keys are declared {}, but this store uses {} keys",
                key.declared, spec.key_type
            ),
        ));
    }
    let mut missing = Vec::new();
    for c in &spec.columns {
        match find(&c.name) {
            Some(fc) => {
                let declared = ColumnType::from_declared(&fc.declared);
                if !fits(c.sql_type, declared) {
                    return Err(schema_err(
                        Some(&c.name),
                        format!(
                            "declared {}, but the record stores {}",
                            fc.declared, c.sql_type
                        ),
                    ));
                }
            }
            None if !c.nullable && c.default.is_none() => {
                return Err(schema_err(
                    Some(&c.name),
                    "the column is missing, and a NOT NULL column without a default cannot be added".into(),
                ));
            }
            None => missing.push(c.clone()),
        }
    }
    if writable {
        for fc in &cols {
            let known = fc.name.eq_ignore_ascii_case("_key")
                || spec
                    .columns
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&fc.name));
            if !known && fc.not_null && !fc.has_default {
                return Err(schema_err(
                    Some(&fc.name),
                    "the file has this NOT NULL column without a default, which the record lacks; writes would fail".into(),
                ));
            }
        }
    }
    Ok(if missing.is_empty() {
        Plan::Fits
    } else {
        Plan::AddColumns(missing)
    })
}

/// Carries out a plan inside the caller's write transaction.
pub(crate) fn apply(conn: &Connection, sql: &Statements, plan: &Plan) -> Result<()> {
    match plan {
        Plan::Fits => {}
        Plan::Create => conn.execute_batch(&sql.create)?,
        Plan::AddColumns(cols) => {
            for c in cols {
                conn.execute_batch(&sql.add_column(c)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_so_sql_stays_a_name() {
        assert_eq!(
            quote_ident(r#"a"; DROP TABLE x; --"#).unwrap(),
            r#""a""; DROP TABLE x; --""#
        );
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
    }

    #[test]
    fn literals_cover_every_storage_class() {
        assert_eq!(literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(literal(&Value::Blob(vec![0xab, 1])), "X'ab01'");
        assert_eq!(literal(&Value::Real(f64::NEG_INFINITY)), "-9e999");
        assert_eq!(literal(&Value::Null), "NULL");
    }
}
