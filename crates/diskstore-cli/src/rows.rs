//! Reading and writing single entries: `ls`, `get`, `set`, `rm`.

use std::io::Write;
use std::path::Path;

use diskstore::{
    Cell, Column, ColumnType, Direction, KeyRef, RangeEnd, Row, Table, TableSpec, Value, ValueRef,
};

use crate::dump::row_line;
use crate::fail::{Fail, Outcome, io_to_engine};
use crate::file::{self, StoreFile};
use crate::show::{BytesAs, Given, as_key, human, parse_given};

/// One entry copied out of a row: the key and the value columns.
pub struct Entry {
    /// The key.
    pub key: Value,
    /// The value columns, in table order.
    pub fields: Vec<Value>,
}

impl Entry {
    /// Copies a row out.
    pub fn read(row: &Row<'_>) -> diskstore::Result<Entry> {
        Ok(Entry {
            key: row.key()?.to_owned(),
            fields: (0..row.len())
                .map(|i| row.value(i).map(ValueRef::to_owned))
                .collect::<diskstore::Result<_>>()?,
        })
    }
}

const PAGE: usize = 512;

/// Options of `ls`.
pub struct LsOptions<'a> {
    /// The table (default: the only one).
    pub table: Option<&'a str>,
    /// At most this many entries.
    pub limit: Option<u64>,
    /// Newest first (or, with a prefix, descending key order).
    pub reverse: bool,
    /// Only keys starting with this (text or bytes).
    pub prefix: Option<&'a str>,
    /// How the prefix is read.
    pub key_type: Given,
    /// Print dump lines instead.
    pub json: bool,
    /// How bytes are shown.
    pub bytes: BytesAs,
}

fn entry_text(spec: &TableSpec, e: &Entry, bytes: BytesAs, max: Option<usize>) -> String {
    let key = human(e.key.as_ref(), bytes, max);
    let value = match (spec.columns.as_slice(), e.fields.as_slice()) {
        ([c], [v]) if c.name == "value" => human(v.as_ref(), bytes, max),
        _ => spec
            .columns
            .iter()
            .zip(&e.fields)
            .map(|(c, v)| format!("{}={}", c.name, human(v.as_ref(), bytes, max)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{key}  {value}")
}

/// The smallest key above every key that starts with `prefix` (bytes compared as
/// SQLite's BINARY collation does), or `None` when there is none.
fn bytes_after(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < u8::MAX {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// As [`bytes_after`] for text (UTF-8 order is code point order).
fn text_after(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn starts_with(key: &Value, prefix: &Value) -> bool {
    match (key, prefix) {
        (Value::Text(k), Value::Text(p)) => k.starts_with(p.as_str()),
        (Value::Blob(k), Value::Blob(p)) => k.starts_with(p),
        _ => false,
    }
}

/// Lists entries.
pub fn ls(path: &Path, o: &LsOptions<'_>) -> Outcome<()> {
    let table = file::open_store(path, o.table, false)?;
    let spec = table.spec().clone();
    let prefix = match o.prefix {
        None => None,
        Some(p) => {
            let given = if o.key_type == Given::Auto {
                Given::Text
            } else {
                o.key_type
            };
            let v = parse_given(p, given, ColumnType::Text).map_err(Fail::usage)?;
            if !matches!(v, Value::Text(_) | Value::Blob(_)) {
                return Err(Fail::usage("--prefix needs a text or bytes prefix"));
            }
            Some(v)
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut left = o.limit.unwrap_or(u64::MAX);
    let mut emit = |e: &Entry| -> diskstore::Result<bool> {
        if left == 0 {
            return Ok(false);
        }
        left -= 1;
        let line = if o.json {
            row_line(&spec, e)
        } else {
            entry_text(&spec, e, o.bytes, Some(64))
        };
        writeln!(out, "{line}").map_err(io_to_engine)?;
        Ok(true)
    };
    let direction = if o.reverse {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let r = table.read(|| match &prefix {
        None => scan_all(&table, direction, &mut emit),
        Some(p) => scan_prefix(&table, p, direction, &mut emit),
    });
    r.map_err(|e| Fail::engine(path, e))?;
    out.flush().map_err(Fail::output)
}

/// Every entry in insertion order (or reversed), page by page; stops when `emit` says so.
pub fn scan_all(
    table: &Table,
    direction: Direction,
    emit: &mut dyn FnMut(&Entry) -> diskstore::Result<bool>,
) -> diskstore::Result<()> {
    let (mut from, mut to) = (i64::MIN, i64::MAX);
    loop {
        let mut page = Vec::with_capacity(PAGE);
        let n = table.scan(from, to, direction, PAGE, false, |rowid, row| {
            page.push((rowid, Entry::read(row)?));
            Ok(())
        })?;
        for (_, e) in &page {
            if !emit(e)? {
                return Ok(());
            }
        }
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        let next = match direction {
            Direction::Forward => last.checked_add(1).map(|n| from = n),
            Direction::Reverse => last.checked_sub(1).map(|n| to = n),
        };
        if n < PAGE || next.is_none() {
            return Ok(());
        }
    }
}

fn scan_prefix(
    table: &Table,
    prefix: &Value,
    direction: Direction,
    emit: &mut dyn FnMut(&Entry) -> diskstore::Result<bool>,
) -> diskstore::Result<()> {
    let after = match prefix {
        Value::Text(t) => text_after(t).map(Value::Text),
        Value::Blob(b) => bytes_after(b).map(Value::Blob),
        _ => None,
    };
    fn key(v: &Value) -> KeyRef<'_> {
        as_key(v).unwrap_or(KeyRef::Int(0))
    }
    fn bound(v: Option<&Value>) -> RangeEnd<'_> {
        v.map_or(RangeEnd::Unbounded, |v| RangeEnd::Excluded(key(v)))
    }
    let mut cursor: Option<Value> = None;
    loop {
        let (lower, upper) = match direction {
            Direction::Forward => (
                cursor
                    .as_ref()
                    .map_or(RangeEnd::Included(key(prefix)), |c| {
                        RangeEnd::Excluded(key(c))
                    }),
                bound(after.as_ref()),
            ),
            Direction::Reverse => (
                RangeEnd::Included(key(prefix)),
                bound(cursor.as_ref().or(after.as_ref())),
            ),
        };
        let mut page = Vec::with_capacity(PAGE);
        let n = table.range(lower, upper, direction, PAGE, |row| {
            page.push(Entry::read(row)?);
            Ok(())
        })?;
        for e in &page {
            if !starts_with(&e.key, prefix) {
                if direction == Direction::Forward {
                    return Ok(());
                }
                continue;
            }
            if !emit(e)? {
                return Ok(());
            }
        }
        match page.pop() {
            Some(last) if n == PAGE => cursor = Some(last.key),
            _ => return Ok(()),
        }
    }
}

/// Reads the key typed on the command line for `spec`'s key column.
fn key_arg(spec: &TableSpec, text: &str, given: Given) -> Outcome<Value> {
    let v = parse_given(text, given, spec.key_type).map_err(Fail::usage)?;
    as_key(&v).map_err(Fail::usage)?;
    Ok(v)
}

fn not_found(path: &Path, spec: &TableSpec, text: &str, given: Given, key: &Value) -> Fail {
    let hint = match (given, spec.key_type, key) {
        (Given::Auto, ColumnType::Blob, Value::Text(t)) if t.parse::<i64>().is_ok() => {
            " (looked up as text; add --key-type int for an integer key)"
        }
        _ => "",
    };
    Fail::at(
        path,
        format!("no key {text:?} in table {:?}{hint}", spec.name),
    )
}

/// How `get` prints bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GetBytes {
    /// Hexadecimal.
    Hex,
    /// Base64.
    Base64,
    /// The bytes themselves (single-column values only).
    Raw,
}

/// Prints one entry's value.
pub fn get(
    path: &Path,
    table: Option<&str>,
    key_text: &str,
    given: Given,
    json: bool,
    bytes: GetBytes,
) -> Outcome<()> {
    let table = file::open_store(path, table, false)?;
    let spec = table.spec().clone();
    let key = key_arg(&spec, key_text, given)?;
    let k = as_key(&key).map_err(Fail::usage)?;
    let entry = table
        .get(k, Entry::read)
        .map_err(|e| Fail::engine(path, e))?
        .ok_or_else(|| not_found(path, &spec, key_text, given, &key))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let shown = match bytes {
        GetBytes::Base64 => BytesAs::Base64,
        _ => BytesAs::Hex,
    };
    let r = if json {
        writeln!(out, "{}", row_line(&spec, &entry))
    } else if let [v] = entry.fields.as_slice() {
        match (v, bytes) {
            (Value::Text(s), _) => writeln!(out, "{s}"),
            (Value::Blob(b), GetBytes::Raw) => out.write_all(b),
            (v, _) => writeln!(out, "{}", human(v.as_ref(), shown, None)),
        }
    } else if bytes == GetBytes::Raw {
        return Err(Fail::usage(
            "--bytes raw needs a table with one value column",
        ));
    } else {
        spec.columns
            .iter()
            .zip(&entry.fields)
            .try_for_each(|(c, v)| writeln!(out, "{}: {}", c.name, human(v.as_ref(), shown, None)))
    };
    r.and_then(|()| out.flush()).map_err(Fail::output)
}

/// The layout `set --create` gives a new table: the Python original's default
/// (`BaseConfig`: BLOB keys, one BLOB `value` column, so any value type fits).
fn default_spec(table: Option<&str>) -> TableSpec {
    TableSpec {
        name: table.unwrap_or(diskstore::DEFAULT_TABLE).to_owned(),
        key_type: ColumnType::Blob,
        columns: vec![Column::new("value", ColumnType::Blob, false, None)],
    }
}

/// Stores one entry (inserting or replacing).
pub fn set(
    path: &Path,
    table: Option<&str>,
    create: bool,
    key_text: &str,
    values: &[String],
    key_given: Given,
    value_given: Given,
) -> Outcome<()> {
    let table = if create {
        let existing = if path.exists() {
            let f = StoreFile::open(path)?;
            let tables = f.tables()?;
            match table {
                Some(t) => tables.iter().any(|i| i.name == t).then(|| f.pick(Some(t))),
                None => tables
                    .iter()
                    .any(|i| i.spec.is_some())
                    .then(|| f.pick(None)),
            }
            .transpose()?
        } else {
            None
        };
        match existing {
            Some(spec) => file::open_table(path, spec, true)?,
            None => file::create_table(path, default_spec(table))?,
        }
    } else {
        file::open_store(path, table, true)?
    };
    let spec = table.spec().clone();
    if values.len() > spec.columns.len() {
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        return Err(Fail::usage(format!(
            "table {:?} has {} value column(s) ({}); {} value(s) given",
            spec.name,
            names.len(),
            names.join(", "),
            values.len()
        )));
    }
    let key = key_arg(&spec, key_text, key_given)?;
    let mut cells = Vec::with_capacity(spec.columns.len());
    for (i, c) in spec.columns.iter().enumerate() {
        let cell = match (values.get(i), &c.default) {
            (Some(text), _) => parse_given(text, value_given, c.sql_type)
                .map_err(|e| Fail::usage(format!("column {:?}: {e}", c.name)))?,
            (None, Some(d)) => d.clone(),
            (None, None) if c.nullable => Value::Null,
            (None, None) => {
                return Err(Fail::usage(format!(
                    "column {:?} has no default: give a value for it (columns: {})",
                    c.name,
                    spec.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        cells.push(Cell::Owned(cell));
    }
    let k = as_key(&key).map_err(Fail::usage)?;
    table.set(k, &cells).map_err(|e| Fail::engine(path, e))
}

/// Deletes entries; fails naming the keys that were not there.
pub fn rm(path: &Path, table: Option<&str>, keys: &[String], given: Given) -> Outcome<()> {
    let table = file::open_store(path, table, true)?;
    let spec = table.spec().clone();
    let parsed = keys
        .iter()
        .map(|k| key_arg(&spec, k, given))
        .collect::<Outcome<Vec<_>>>()?;
    let mut missing = Vec::new();
    for (text, key) in keys.iter().zip(&parsed) {
        let k = as_key(key).map_err(Fail::usage)?;
        if !table.delete(k).map_err(|e| Fail::engine(path, e))? {
            missing.push(format!("{text:?}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Fail::at(
            path,
            format!(
                "not found in table {:?}: {} (the other keys were removed)",
                spec.name,
                missing.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_bound_every_key_with_the_prefix() {
        assert_eq!(bytes_after(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(bytes_after(&[1, 255]), Some(vec![2]));
        assert_eq!(bytes_after(&[255]), None);
        assert_eq!(text_after("ab").as_deref(), Some("ac"));
        assert_eq!(text_after("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(text_after("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(text_after(""), None);
    }
}
