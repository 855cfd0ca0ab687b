//! `export` and `import`: the portable JSON-lines dump (see `docs/dump-format.md`).

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use diskstore::{Cell, Column, ColumnType, Direction, Table, TableSpec, Value};
use serde_json::{Map, Value as Json};

use crate::fail::{Fail, Outcome, io_to_engine};
use crate::file::{self, StoreFile};
use crate::progress;
use crate::rows::{Entry, scan_all};
use crate::show::as_key;
use crate::typed::{decode, encode};

/// The `format` field of a dump's first line.
pub const FORMAT: &str = "diskstore-dump";
/// The dump version this tool writes and reads.
pub const VERSION: u64 = 1;

fn js(s: &str) -> String {
    Json::String(s.to_owned()).to_string()
}

/// The dump line of one entry: `{"key": K, "fields": {"col": V, …}}`, columns in table order.
pub fn row_line(spec: &TableSpec, e: &Entry) -> String {
    let mut line = format!("{{\"key\":{},\"fields\":{{", encode(e.key.as_ref()));
    for (i, (c, v)) in spec.columns.iter().zip(&e.fields).enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&js(&c.name));
        line.push(':');
        line.push_str(&encode(v.as_ref()).to_string());
    }
    line.push_str("}}");
    line
}

fn header_line() -> String {
    format!(
        "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"created\":\"{}\",\"sqlite_version\":{}}}",
        crate::clock::now(),
        js(diskstore::sqlite_version())
    )
}

fn table_line(spec: &TableSpec, rows: u64) -> String {
    let cols: Vec<String> = spec
        .columns
        .iter()
        .map(|c| {
            let default = c
                .default
                .as_ref()
                .map(|d| format!(",\"default\":{}", encode(d.as_ref())))
                .unwrap_or_default();
            format!(
                "{{\"name\":{},\"type\":\"{}\",\"not_null\":{}{default}}}",
                js(&c.name),
                c.sql_type,
                !c.nullable
            )
        })
        .collect();
    format!(
        "{{\"table\":{},\"key_type\":\"{}\",\"columns\":[{}],\"rows\":{rows}}}",
        js(&spec.name),
        spec.key_type,
        cols.join(",")
    )
}

/// Writes the dump of `path` (every store table, or the one named) to stdout.
pub fn export(path: &Path, table: Option<&str>) -> Outcome<()> {
    let f = StoreFile::open(path)?;
    let specs = match table {
        Some(t) => vec![f.pick(Some(t))?],
        None => {
            let mut specs = Vec::new();
            for t in f.tables()? {
                match t.spec {
                    Some(s) => specs.push(s),
                    // A DiskCache's running totals and leases: rebuilt by the cache.
                    None if t.name.starts_with("_cache_") => {}
                    None => eprintln!(
                        "diskstore: skipping table {:?} of {}: not a store table (no _key column)",
                        t.name,
                        path.display()
                    ),
                }
            }
            specs
        }
    };
    drop(f);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "{}", header_line()).map_err(Fail::output)?;
    for spec in specs {
        let table = file::open_table(path, spec.clone(), false)?;
        // One read transaction per table: the count and the rows are one snapshot.
        let r = table.read(|| {
            let rows = table.len()?;
            writeln!(out, "{}", table_line(&spec, rows)).map_err(io_to_engine)?;
            let bar = progress::bar(rows, &spec.name);
            scan_all(&table, Direction::Forward, &mut |e| {
                writeln!(out, "{}", row_line(&spec, e)).map_err(io_to_engine)?;
                bar.inc(1);
                Ok(true)
            })?;
            bar.finish_and_clear();
            Ok(())
        });
        r.map_err(|e| Fail::engine(path, e))?;
    }
    out.flush().map_err(Fail::output)
}

fn str_field<'a>(m: &'a Map<String, Json>, name: &str) -> Result<&'a str, String> {
    m.get(name)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("missing text field {name:?}"))
}

fn column_type(text: &str) -> Result<ColumnType, String> {
    match text {
        "INTEGER" => Ok(ColumnType::Integer),
        "REAL" => Ok(ColumnType::Real),
        "TEXT" => Ok(ColumnType::Text),
        "BLOB" => Ok(ColumnType::Blob),
        other => Err(format!(
            "unknown column type {other:?} (INTEGER, REAL, TEXT or BLOB)"
        )),
    }
}

/// Reads a table line into a layout and its announced row count.
fn parse_table(m: &Map<String, Json>) -> Result<(TableSpec, Option<u64>), String> {
    let name = str_field(m, "table")?.to_owned();
    let key_type = column_type(str_field(m, "key_type")?)?;
    let cols = m
        .get("columns")
        .and_then(Json::as_array)
        .ok_or("missing array field \"columns\"")?;
    let columns = cols
        .iter()
        .map(|c| {
            let c = c.as_object().ok_or("a column must be an object")?;
            let name = str_field(c, "name")?;
            if name.eq_ignore_ascii_case("_key") {
                return Err("a value column cannot be named _key".to_owned());
            }
            let not_null = c
                .get("not_null")
                .map(|v| v.as_bool().ok_or("\"not_null\" must be true or false"))
                .transpose()?
                .unwrap_or(false);
            let default = c
                .get("default")
                .map(|d| decode(d).map_err(|e| format!("column {name:?} default: {e}")))
                .transpose()?;
            Ok(Column::new(
                name,
                column_type(str_field(c, "type")?)?,
                !not_null,
                default,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((
        TableSpec {
            name,
            key_type,
            columns,
        },
        m.get("rows").and_then(Json::as_u64),
    ))
}

/// Reads a row line into a key and one cell per column of `spec`.
fn parse_row(spec: &TableSpec, m: &Map<String, Json>) -> Result<(Value, Vec<Value>), String> {
    let key =
        decode(m.get("key").ok_or("missing field \"key\"")?).map_err(|e| format!("key: {e}"))?;
    as_key(&key).map_err(|e| format!("key: {e}"))?;
    let empty = Map::new();
    let fields = match m.get("fields") {
        Some(Json::Object(f)) => f,
        Some(_) => return Err("\"fields\" must be an object".into()),
        None => &empty,
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !spec.columns.iter().any(|c| &c.name == *k))
    {
        return Err(format!(
            "field {unknown:?} is not a column of table {:?}",
            spec.name
        ));
    }
    let values = spec
        .columns
        .iter()
        .map(|c| match fields.get(&c.name) {
            Some(v) => decode(v).map_err(|e| format!("field {:?}: {e}", c.name)),
            None => match (&c.default, c.nullable) {
                (Some(d), _) => Ok(d.clone()),
                (None, true) => Ok(Value::Null),
                (None, false) => Err(format!("field {:?} is missing", c.name)),
            },
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((key, values))
}

/// The table being filled and its open batch transaction.
struct Target {
    table: Table,
    spec: TableSpec,
    /// Whether a transaction is open (and which level opened it).
    open: Option<bool>,
    in_batch: usize,
    bar: indicatif::ProgressBar,
}

impl Target {
    fn finish(&mut self, commit: bool) -> diskstore::Result<()> {
        self.bar.finish_and_clear();
        match self.open.take() {
            Some(opened) => self.table.end(opened, commit),
            None => Ok(()),
        }
    }
}

/// Totals of an import.
#[derive(Default)]
struct Totals {
    committed: u64,
    tables: u64,
}

/// Reads a dump from `input` into `path` (created if needed), `batch` rows per transaction.
pub fn import(path: &Path, input: impl BufRead, source: &str, batch: usize) -> Outcome<()> {
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut target: Option<Target> = None;
    let result = import_lines(path, input, batch, &mut target, &mut totals);
    let result = match (result, target.as_mut()) {
        (Ok(()), Some(t)) => {
            let n = t.in_batch as u64;
            t.finish(true)
                .map(|()| totals.committed += n)
                .map_err(|e| (0, Fail::engine(path, e)))
        }
        (Err(e), Some(t)) => {
            let _ = t.finish(false);
            Err(e)
        }
        (r, None) => r,
    };
    match result {
        Ok(()) => {
            eprintln!(
                "imported {} rows into {} table(s) of {} in {:.2} s",
                totals.committed,
                totals.tables,
                path.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err((0, fail)) => Err(fail),
        Err((line, fail)) => Err(Fail::new(format!(
            "{source} line {line}: {fail} (nothing of this batch was written; {} rows before it were)",
            totals.committed
        ))),
    }
}

fn import_lines(
    path: &Path,
    input: impl BufRead,
    batch: usize,
    target: &mut Option<Target>,
    totals: &mut Totals,
) -> Result<(), (usize, Fail)> {
    let mut seen_header = false;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let at = |f: Fail| (n, f);
        let bad = |msg: String| (n, Fail::new(msg));
        let line = line.map_err(|e| bad(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let j: Json = serde_json::from_str(&line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let Json::Object(m) = j else {
            return Err(bad("a dump line must be a JSON object".into()));
        };
        if !seen_header {
            if m.get("format").and_then(Json::as_str) != Some(FORMAT) {
                return Err(bad(format!(
                    "not a diskstore dump (the first line must be {{\"format\": \"{FORMAT}\", …}})"
                )));
            }
            match m.get("version").and_then(Json::as_u64) {
                Some(VERSION) => {}
                other => {
                    return Err(bad(format!(
                        "dump version {other:?} is not supported (this tool reads version {VERSION})"
                    )));
                }
            }
            seen_header = true;
            continue;
        }
        if m.contains_key("table") {
            if let Some(mut t) = target.take() {
                let rows = t.in_batch as u64;
                t.finish(true).map_err(|e| at(Fail::engine(path, e)))?;
                totals.committed += rows;
            }
            let (spec, rows) = parse_table(&m).map_err(bad)?;
            let table = file::create_table(path, spec).map_err(at)?;
            let spec = table.spec().clone();
            let bar = match rows {
                Some(r) => progress::bar(r, &spec.name),
                None => progress::spinner(&spec.name),
            };
            totals.tables += 1;
            *target = Some(Target {
                table,
                spec,
                open: None,
                in_batch: 0,
                bar,
            });
            continue;
        }
        let Some(t) = target.as_mut() else {
            return Err(bad("a row before any table line".into()));
        };
        let (key, values) = parse_row(&t.spec, &m).map_err(bad)?;
        if t.open.is_none() {
            t.open = Some(t.table.begin().map_err(|e| at(Fail::engine(path, e)))?);
        }
        let cells: Vec<Cell<'_>> = values.iter().map(|v| Cell::Borrowed(v.as_ref())).collect();
        let k = as_key(&key).map_err(bad)?;
        t.table
            .set(k, &cells)
            .map_err(|e| at(Fail::engine(path, e)))?;
        t.in_batch += 1;
        t.bar.inc(1);
        if t.in_batch >= batch {
            let opened = t.open.take().unwrap_or(false);
            t.table
                .end(opened, true)
                .map_err(|e| at(Fail::engine(path, e)))?;
            totals.committed += t.in_batch as u64;
            t.in_batch = 0;
        }
    }
    if !seen_header {
        return Err((0, Fail::new("the dump is empty (no header line)")));
    }
    Ok(())
}
