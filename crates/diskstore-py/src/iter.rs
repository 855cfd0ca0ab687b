//! Iteration over a store in insertion (rowid) order, read in pages.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use diskstore::{Direction, RowidPager, ValueRef};

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
/// may not be seen, but none is seen twice. Threads may share one: each row goes to one
/// of them (a thread that finds another inside waits for it with the GIL released).
#[pyclass(frozen, module = "diskstore._diskstore")]
pub struct StoreIter {
    state: Mutex<IterState>,
}

/// Where a [`StoreIter`] is.
struct IterState {
    store: Py<Reader>,
    kind: Kind,
    /// Where the pass is (the engine's pager: a forward pass ends at the largest rowid
    /// present when it reads its first page).
    pager: RowidPager,
    page: VecDeque<OwnedRow>,
    keys: KeyPage,
}

/// A page of keys stored in one buffer, so that iterating keys makes no allocation per row.
#[derive(Default)]
struct KeyPage {
    bytes: Vec<u8>,
    keys: VecDeque<KeyPos>,
}

/// Where one key of a [`KeyPage`] is.
enum KeyPos {
    Null,
    Int(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

impl KeyPage {
    fn push(&mut self, key: ValueRef<'_>) {
        let mut span = |b: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            (start, self.bytes.len())
        };
        let pos = match key {
            ValueRef::Null => KeyPos::Null,
            ValueRef::Integer(i) => KeyPos::Int(i),
            ValueRef::Real(f) => KeyPos::Real(f),
            ValueRef::Text(t) => {
                let (a, b) = span(t.as_bytes());
                KeyPos::Text(a, b)
            }
            ValueRef::Blob(x) => {
                let (a, b) = span(x);
                KeyPos::Blob(a, b)
            }
        };
        self.keys.push_back(pos);
    }

    fn pop<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let text = |a: usize, b: usize| {
            // The bytes were copied from a `&str`, so they are valid UTF-8.
            std::str::from_utf8(&self.bytes[a..b]).unwrap_or_default()
        };
        Some(match self.keys.pop_front()? {
            KeyPos::Null => py.None().into_bound(py),
            KeyPos::Int(i) => i.into_pyobject(py).expect("int conversion").into_any(),
            KeyPos::Real(f) => PyFloat::new(py, f).into_any(),
            KeyPos::Text(a, b) => PyString::new(py, text(a, b)).into_any(),
            KeyPos::Blob(a, b) => PyBytes::new(py, &self.bytes[a..b]).into_any(),
        })
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// An iterator over a store's keys, oldest first or newest first.
///
/// (Pages of keys used to be flattened by `itertools.chain`, but a `chain` shared by
/// threads can drop a page: two threads that both find its current page used up each fetch
/// one, and the second replaces the first's. Measured on a release build, 200,000 text
/// keys, 9 interleaved passes, 2026-12-06: this iterator's own `__next__` took 128–227 ns
/// per key (fastest pass) against 138–261 ns through `chain`: no slower.)
pub(crate) fn key_iter<'py>(
    store: &Bound<'py, Reader>,
    reverse: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = store.py();
    Ok(Bound::new(
        py,
        StoreIter::new(store.clone().unbind(), Kind::Keys, reverse),
    )?
    .into_any())
}

impl StoreIter {
    pub(crate) fn new(store: Py<Reader>, kind: Kind, reverse: bool) -> StoreIter {
        StoreIter {
            state: Mutex::new(IterState {
                store,
                kind,
                pager: RowidPager::new(if reverse {
                    Direction::Reverse
                } else {
                    Direction::Forward
                }),
                page: VecDeque::new(),
                keys: KeyPage::default(),
            }),
        }
    }

    /// The state, waiting (with the GIL released) while another thread is inside.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, IterState> {
        lock_detached(py, &self.state)
    }
}

/// Locks `m`, waiting with the GIL released while another thread holds it (the holder may
/// need the GIL to finish), so that threads can share an iterator.
pub(crate) fn lock_detached<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                py.detach(|| drop(m.lock()));
            }
        }
    }
}

impl IterState {
    fn fill(&mut self, py: Python<'_>) -> PyResult<()> {
        let store = self.store.bind(py);
        let Some(o) = Reader::opened(store)? else {
            self.pager.finish();
            return Ok(());
        };
        let pager = &mut self.pager;
        let Some((from, to, dir)) = py
            .detach(|| pager.next_range(|| o.table.max_rowid()))
            .py()?
        else {
            return Ok(());
        };
        let keys_only = self.kind == Kind::Keys;
        if keys_only {
            let page = &mut self.keys;
            page.bytes.clear();
            let mut last = None;
            let n = py
                .detach(|| {
                    o.table.scan(from, to, dir, PAGE, true, |rowid, row| {
                        page.push(row.key()?);
                        last = Some(rowid);
                        Ok(())
                    })
                })
                .py()?;
            self.pager.advance(n, PAGE, last);
            return Ok(());
        }
        let with_key = self.kind != Kind::Values || o.model.needs_key();
        let rows = py
            .detach(|| {
                let mut rows = Vec::with_capacity(PAGE);
                o.table.scan(from, to, dir, PAGE, false, |rowid, row| {
                    rows.push((rowid, owned_row_with(row, with_key)?));
                    Ok(())
                })?;
                Ok(rows)
            })
            .py()?;
        let last = rows.last().map(|(rowid, _)| *rowid);
        self.pager.advance(rows.len(), PAGE, last);
        self.page.extend(rows.into_iter().map(|(_, r)| r));
        Ok(())
    }
}

#[pymethods]
impl StoreIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next page of keys as a list, empty at the end (key iterators only).
    fn _page<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut slf = self.lock(py);
        if slf.kind != Kind::Keys {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "_page() is only for key iterators",
            ));
        }
        if slf.keys.is_empty() && !slf.pager.is_done() {
            slf.fill(py)?;
        }
        let mut keys = Vec::with_capacity(slf.keys.keys.len());
        while let Some(k) = slf.keys.pop(py) {
            keys.push(k);
        }
        PyList::new(py, keys)
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut slf = self.lock(py);
        if slf.kind == Kind::Keys {
            if slf.keys.is_empty() && !slf.pager.is_done() {
                slf.fill(py)?;
            }
            return Ok(slf.keys.pop(py));
        }
        if slf.page.is_empty() && !slf.pager.is_done() {
            slf.fill(py)?;
        }
        let Some(row) = slf.page.pop_front() else {
            return Ok(None);
        };
        let kind = slf.kind;
        let store = slf.store.clone_ref(py);
        drop(slf);
        let store = store.bind(py);
        let o = Reader::opened(store)?.expect("rows come from an attached store");
        let value = o.model.load(py, &row)?;
        Ok(Some(match kind {
            Kind::Values => value,
            _ => PyTuple::new(py, [load_key(py, &row), value])?.into_any(),
        }))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(state) = self.state.try_lock() {
            visit.call(&state.store)?;
        }
        Ok(())
    }
}
