//! Entries whose value lives in a file of its own: writing the file before the row,
//! reading rows with their file, removing files whose rows are gone, and `check_files`.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::key::KeyRef;
use crate::record::Row;
use crate::value::{Cell, Value, ValueRef};

use super::super::files::{FileRef, ValueFiles};
use super::super::sql::{TRASH_TABLE, stmt};
use super::{CacheTable, Inner, held};

/// The cells of an entry about to be written, with its largest value moved to a file of
/// its own when it reaches the threshold.
pub(super) struct Spilled<'v> {
    /// The cells to store (the moved one left empty); `None`: store the given ones.
    cells: Option<Vec<Cell<'v>>>,
    /// The `_file` reference of the moved value.
    reference: Option<String>,
}

impl<'v> Spilled<'v> {
    /// The cells to store and the `_file` reference.
    pub(super) fn as_parts<'s>(
        &'s self,
        values: &'s [Cell<'s>],
    ) -> (&'s [Cell<'s>], Option<&'s str>) {
        match &self.cells {
            Some(cells) => (cells, self.reference.as_deref()),
            None => (values, None),
        }
    }

    /// Removes the file again unless its row was stored (`kept`): a write that failed
    /// (or was rolled back to its savepoint) or an `add` that stored nothing.
    pub(super) fn settle(&self, files: &ValueFiles, kept: bool) {
        if let (false, Some(r)) = (kept, &self.reference) {
            files.remove(r);
        }
    }
}

/// Empties the trash table (in the caller's transaction); returns the references.
pub(super) fn take_trash(inner: &Inner, c: &Connection) -> Result<Vec<String>> {
    let any = held(inner, c, stmt::ANY_TRASH, &inner.sql.any_trash, |st| {
        Ok(st.raw_query().next()?.is_some())
    })?;
    if !any {
        return Ok(Vec::new());
    }
    held(inner, c, stmt::TAKE_TRASH, &inner.sql.take_trash, |st| {
        let mut out = Vec::new();
        let mut rows = st.raw_query();
        while let Some(r) = rows.next()? {
            out.push(r.get::<_, String>(0)?);
        }
        Ok(out)
    })
}

/// Hands `row` to `f`, with the value kept in a file (`file`: its reference) read in;
/// `Ok(None)` when that file is missing, or not of the recorded length and checksum (the
/// entry reads as absent, and its reference goes to `broken`, for
/// [`CacheTable::forget_broken`]).
pub(super) fn read_row<T>(
    inner: &Inner,
    row: Row<'_>,
    file: Option<String>,
    broken: &mut Option<String>,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(reference) = file else {
        return f(&row).map(Some);
    };
    let bad = |message: String| Error::Decode {
        column: "_file".into(),
        message,
    };
    let r = FileRef::parse(&reference)
        .filter(|r| r.column < inner.width)
        .ok_or_else(|| bad(format!("not a value file reference: {reference:?}")))?;
    let Some(bytes) = inner.files.read(&r)? else {
        *broken = Some(reference.clone());
        return Ok(None);
    };
    let value = match row.value(r.column)? {
        ValueRef::Text(_) => ValueRef::Text(
            std::str::from_utf8(&bytes)
                .map_err(|e| bad(format!("the text in {:?} is not UTF-8: {e}", r.path)))?,
        ),
        _ => ValueRef::Blob(&bytes),
    };
    f(&row.with_value(r.column, value)).map(Some)
}

/// For [`CacheTable::get_deferred`]: hands `row` and its value file (not read) to `f`.
pub(super) fn defer_row<T>(
    inner: &Inner,
    row: Row<'_>,
    file: Option<String>,
    f: impl FnOnce(&Row<'_>, Option<&ValueFile>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(reference) = file else {
        return f(&row, None).map(Some);
    };
    let r = parse_reference(inner, &reference)?;
    let vf = ValueFile {
        path: inner.files.path_of(&r),
        len: r.len,
        checksum: r.checksum(),
        column: r.column,
        text: matches!(row.value(r.column)?, ValueRef::Text(_)),
        reference: reference.clone(),
    };
    let load = || -> Result<Value> {
        let mut buf = vec![0u8; vf.len()];
        if !vf.read_into(&mut buf)? {
            return Err(Error::Decode {
                column: "_file".into(),
                message: format!("the value file {:?} is gone", vf.path),
            });
        }
        Ok(if vf.text {
            Value::Text(String::from_utf8(buf).map_err(|e| Error::Decode {
                column: "_file".into(),
                message: format!("the text in {:?} is not UTF-8: {e}", vf.path),
            })?)
        } else {
            Value::Blob(buf)
        })
    };
    f(&row.with_lazy_value(r.column, &load), Some(&vf)).map(Some)
}

pub(super) fn parse_reference<'s>(inner: &Inner, reference: &'s str) -> Result<FileRef<'s>> {
    FileRef::parse(reference)
        .filter(|r| r.column < inner.width)
        .ok_or_else(|| Error::Decode {
            column: "_file".into(),
            message: format!("not a value file reference: {reference:?}"),
        })
}

/// A cache value kept in a file of its own, not read yet (see
/// [`CacheTable::get_deferred`]).
#[derive(Clone, Debug)]
pub struct ValueFile {
    path: PathBuf,
    len: u64,
    /// The recorded checksum (`None`: a file of a version before checksums).
    checksum: Option<u64>,
    column: usize,
    text: bool,
    /// The row's `_file` reference.
    reference: String,
}

impl ValueFile {
    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        usize::try_from(self.len).unwrap_or(usize::MAX)
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value column it belongs to.
    pub fn column(&self) -> usize {
        self.column
    }

    /// True when the value is text (UTF-8 in the file), false for a blob.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Reads the value into `buf` (of its length). False when the file is gone, or not
    /// of the recorded length and checksum: read it as a miss (the entry was removed
    /// meanwhile, or the file was damaged: [`CacheTable::read_value_file`] then removes
    /// the entry too). `buf` may hold some of the file's bytes then.
    ///
    /// # Errors
    /// [`Error::Usage`] for a buffer of another length; file-system errors.
    pub fn read_into(&self, buf: &mut [u8]) -> Result<bool> {
        if buf.len() as u64 != self.len {
            return Err(Error::Usage(format!(
                "a buffer of {} bytes for a value of {}",
                buf.len(),
                self.len
            )));
        }
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(Error::Io {
                    path: self.path.clone(),
                    source: e,
                });
            }
        };
        let io = |e: std::io::Error| Error::Io {
            path: self.path.clone(),
            source: e,
        };
        if f.metadata().map_err(io)?.len() != self.len {
            return Ok(false);
        }
        super::super::files::read_checked(&mut f, buf, self.checksum).map_err(io)
    }
}

impl CacheTable {
    /// Reads a value file found by [`CacheTable::get_deferred`] for `key` into `buf` (see
    /// [`ValueFile::read_into`]). When the file is gone or damaged, removes the entry if
    /// it still refers to that file (with a warning on standard error) and returns false:
    /// a miss, never wrong bytes.
    ///
    /// # Errors
    /// As [`ValueFile::read_into`]; write errors when removing the entry.
    pub fn read_value_file(
        &self,
        key: KeyRef<'_>,
        file: &ValueFile,
        buf: &mut [u8],
    ) -> Result<bool> {
        if file.read_into(buf)? {
            return Ok(true);
        }
        self.forget_broken(key, &file.reference)?;
        Ok(false)
    }

    /// Removes the entry of `key` if it still refers to the value file `reference`, which
    /// a read found missing, truncated or altered; says so on standard error when it did.
    /// (A file removed by a concurrent deletion finds the row gone: nothing to do.)
    pub(super) fn forget_broken(&self, key: KeyRef<'_>, reference: &str) -> Result<()> {
        let key = key.checked()?;
        let removed = self.atomic(|c| {
            Ok(c.prepare_cached(&self.inner.sql.forget)?
                .execute(rusqlite::params![key, reference])?)
        })?;
        if removed > 0 {
            eprintln!(
                "diskstore: warning: cache table {:?}: the value file {reference:?} was missing, \
                 truncated or altered; its entry was removed (read as a miss)",
                self.inner.name
            );
        }
        Ok(())
    }
}

/// As [`read_row`], but the file is only read if `f` asks for its column (iterating over
/// keys reads no value file); an entry whose file is missing is skipped all the same.
pub(super) fn read_row_lazily<T>(
    inner: &Inner,
    row: Row<'_>,
    file: Option<String>,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let Some(reference) = file else {
        return f(&row).map(Some);
    };
    let r = FileRef::parse(&reference)
        .filter(|r| r.column < inner.width)
        .ok_or_else(|| Error::Decode {
            column: "_file".into(),
            message: format!("not a value file reference: {reference:?}"),
        })?;
    if !inner.files.intact(&r) {
        return Ok(None);
    }
    let text = matches!(row.value(r.column)?, ValueRef::Text(_));
    let load = || -> Result<Value> {
        let gone = || Error::Decode {
            column: "_file".into(),
            message: format!("the value file {:?} is gone", r.path),
        };
        let bytes = inner.files.read(&r)?.ok_or_else(gone)?;
        Ok(if text {
            Value::Text(String::from_utf8(bytes).map_err(|e| Error::Decode {
                column: "_file".into(),
                message: format!("the text in {:?} is not UTF-8: {e}", r.path),
            })?)
        } else {
            Value::Blob(bytes)
        })
    };
    f(&row.with_lazy_value(r.column, &load)).map(Some)
}

impl CacheTable {
    /// Removes the files of value-file entries whose deletion has committed (by any
    /// process, or raw SQL), unless a transaction is open on this thread (its commit
    /// decides); returns how many. Cache writes do this by themselves.
    ///
    /// # Errors
    /// Write errors.
    pub fn sweep_files(&self) -> Result<u64> {
        let inner = &*self.inner;
        if inner.table.depth() > 0 {
            return Ok(0);
        }
        // A read first: most calls find nothing to do, and a read takes no write lock.
        let any = inner.table.with_connection(|c| {
            held(inner, c, stmt::ANY_TRASH, &inner.sql.any_trash, |st| {
                Ok(st.raw_query().next()?.is_some())
            })
        })?;
        if !any {
            return Ok(0);
        }
        let mut n = 0;
        self.atomic(|c| {
            n = c.query_row(
                &format!(
                    "SELECT count(*) FROM {}",
                    crate::schema::quote_ident(TRASH_TABLE)?
                ),
                [],
                |r| r.get::<_, i64>(0),
            )?;
            Ok(())
        })?;
        Ok(n.max(0) as u64)
    }

    /// Checks the value files against the table: entries whose file is missing or
    /// incomplete (they read as absent) and files no entry refers to (orphans, left by a
    /// write that died between its file and its row, or one rolled back inside a
    /// transaction). Returns a line per problem; empty when all is well.
    ///
    /// With `fix`, first removes the files of entries whose deletion has committed, then
    /// deletes the broken entries and removes orphans last written at least `orphan_age`
    /// ago (a younger one may belong to a write about to commit its row).
    ///
    /// # Errors
    /// File-system, file and lock errors.
    pub fn check_files(&self, fix: bool, orphan_age: Duration) -> Result<Vec<String>> {
        let inner = &*self.inner;
        if fix {
            self.sweep_files()?;
        }
        let (rows, trash) = inner.table.read(|| {
            inner.table.with_connection(|c| {
                let rows = c
                    .prepare(&inner.sql.files)?
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, rusqlite::types::Value>(0)?,
                            r.get::<_, String>(1)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let trash = c
                    .prepare(&inner.sql.trash)?
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((rows, trash))
            })
        })?;
        let mut problems = Vec::new();
        let mut known = std::collections::HashSet::new();
        let mut broken = Vec::new();
        for (key, reference) in &rows {
            match FileRef::parse(reference) {
                Some(r) if r.column < inner.width => {
                    known.insert(r.path.to_owned());
                    if !inner.files.verified(&r) {
                        problems.push(format!(
                            "entry {key:?}: value file {} is missing, incomplete or altered",
                            r.path
                        ));
                        broken.push((key, reference));
                    }
                }
                _ => {
                    problems.push(format!(
                        "entry {key:?}: not a value file reference: {reference:?}"
                    ));
                    broken.push((key, reference));
                }
            }
        }
        known.extend(
            trash
                .iter()
                .filter_map(|t| FileRef::parse(t).map(|r| r.path.to_owned())),
        );
        for rel in inner.files.list()? {
            if known.contains(&rel) {
                continue;
            }
            problems.push(format!("orphan value file {rel}"));
            if fix && inner.files.age(&rel).is_some_and(|a| a >= orphan_age) {
                inner.files.remove_path(&rel)?;
            }
        }
        if fix && !broken.is_empty() {
            let sql = format!(
                "DELETE FROM {} WHERE _key = ?1 AND _file = ?2",
                crate::schema::quote_ident(&inner.name)?
            );
            self.atomic(|c| {
                let mut st = c.prepare(&sql)?;
                for (key, reference) in &broken {
                    st.execute(rusqlite::params![key, reference])?;
                }
                Ok(())
            })?;
        }
        Ok(problems)
    }

    /// Writes the value that goes to a file of its own, if one does (before the row, so
    /// that a row never points to a file not yet complete).
    pub(super) fn spill<'v>(&self, values: &'v [Cell<'_>]) -> Result<Spilled<'v>> {
        let files = &self.inner.files;
        let Some(i) = files.pick(values) else {
            return Ok(Spilled {
                cells: None,
                reference: None,
            });
        };
        let (bytes, empty): (&[u8], ValueRef<'_>) = match values[i].as_ref() {
            ValueRef::Text(s) => (s.as_bytes(), ValueRef::Text("")),
            ValueRef::Blob(b) => (b, ValueRef::Blob(&[])),
            _ => unreachable!("only text and blobs are picked"),
        };
        let reference = files.write(i, bytes)?;
        let cells = values
            .iter()
            .enumerate()
            .map(|(j, c)| Cell::Borrowed(if j == i { empty } else { c.as_ref() }))
            .collect();
        Ok(Spilled {
            cells: Some(cells),
            reference: Some(reference),
        })
    }
}
