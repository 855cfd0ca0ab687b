//! Iteration over a store in insertion (rowid) order, read in pages.

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use diskstore::Direction;

use crate::errors::IntoPyResult;
use crate::model::{OwnedRow, load_key};
use crate::store::{Reader, owned_row_with};

/// Rows fetched per page (one read snapshot each).
const PAGE: usize = 256;

/// What an iterator yields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Keys only (the value columns are not read).
    Keys,
    /// Values.
    Values,
    /// `(key, value)` tuples.
    Items,
}

/// An iterator over a store's keys, values or items, oldest first or newest first.
///
/// It reads pages of rows by rowid, so entries written or deleted while it runs may or
/// may not be seen, but none is seen twice.
#[pyclass(module = "diskstore._diskstore")]
pub struct StoreIter {
    store: Py<Reader>,
    kind: Kind,
    reverse: bool,
    /// The rowid after (forward) or before (reverse) the last row read.
    next: i64,
    done: bool,
    page: VecDeque<OwnedRow>,
}

impl StoreIter {
    pub(crate) fn new(store: Py<Reader>, kind: Kind, reverse: bool) -> StoreIter {
        StoreIter {
            store,
            kind,
            reverse,
            next: if reverse { i64::MAX } else { i64::MIN },
            done: false,
            page: VecDeque::new(),
        }
    }

    fn fill(&mut self, py: Python<'_>) -> PyResult<()> {
        let store = self.store.bind(py);
        let Some(o) = Reader::opened(store)? else {
            self.done = true;
            return Ok(());
        };
        let (from, to, dir) = if self.reverse {
            (i64::MIN, self.next, Direction::Reverse)
        } else {
            (self.next, i64::MAX, Direction::Forward)
        };
        let keys_only = self.kind == Kind::Keys;
        let with_key = self.kind != Kind::Values || o.model.needs_key();
        let rows = py
            .detach(|| {
                let mut rows = Vec::with_capacity(PAGE);
                o.table.scan(from, to, dir, PAGE, keys_only, |rowid, row| {
                    rows.push((rowid, owned_row_with(row, with_key)?));
                    Ok(())
                })?;
                Ok(rows)
            })
            .py()?;
        if rows.len() < PAGE {
            self.done = true;
        }
        if let Some((last, _)) = rows.last() {
            match (self.reverse, last.checked_sub(1), last.checked_add(1)) {
                (true, Some(n), _) => self.next = n,
                (false, _, Some(n)) => self.next = n,
                _ => self.done = true,
            }
        }
        self.page.extend(rows.into_iter().map(|(_, r)| r));
        Ok(())
    }
}

#[pymethods]
impl StoreIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if slf.page.is_empty() && !slf.done {
            slf.fill(py)?;
        }
        let Some(row) = slf.page.pop_front() else {
            return Ok(None);
        };
        let kind = slf.kind;
        let store = slf.store.clone_ref(py);
        drop(slf);
        if kind == Kind::Keys {
            return Ok(Some(load_key(py, &row)));
        }
        let store = store.bind(py);
        let o = Reader::opened(store)?.expect("rows come from an attached store");
        let value = o.model.load(py, &row)?;
        Ok(Some(match kind {
            Kind::Values => value,
            _ => PyTuple::new(py, [load_key(py, &row), value])?.into_any(),
        }))
    }
}
