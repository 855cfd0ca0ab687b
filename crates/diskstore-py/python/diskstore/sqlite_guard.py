"""Detects Python's `sqlite3` module and diskstore using one file in one process.

diskstore bundles its own SQLite library; Python's `sqlite3` module links another copy.
SQLite coordinates connections through POSIX advisory locks, and those belong to the
*process*: a lock taken by one library copy does not stop the other copy in the same
process. Each copy also keeps its own table of open files, so when the last `sqlite3`
connection to a file closes, that copy believes nobody else uses the file and may delete
or truncate the write-ahead log under diskstore's connections. Writes acknowledged by one
side can then be lost, and the file can be damaged (sqlite.org/howtocorrupt.html 2.2).
Separate processes are not affected: there the locks work as designed.

Nothing can make the two copies see each other's locks, so this module warns instead, with
a `SharedFileWarning` (a `RuntimeWarning`; turn it into an error with
`warnings.simplefilter("error", SharedFileWarning)`):

* when a diskstore store or cache is created for a file that another SQLite library in
  this process has open (found through the process's open file descriptors: any
  descriptor on the file, its `-wal` or its `-shm` while diskstore has no live handle on
  it, or a second descriptor on its `-shm`, which one SQLite copy opens only once);
* when `sqlite3.connect()` opens a file that a live diskstore store or cache uses
  (`import diskstore` wraps `sqlite3.connect` for that; see `install`).

What it cannot see: a `sqlite3` connection made without `sqlite3.connect` (a
`sqlite3.Connection(...)` call, or a `connect` imported before diskstore was), opened
*after* diskstore's handle; descriptors on systems without `/proc/self/fd` or `/dev/fd`;
other processes (which need no warning).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import urllib.parse
import warnings
import weakref
from typing import Any

__all__ = ["SharedFileWarning", "check_file", "install", "register", "uninstall"]


class SharedFileWarning(RuntimeWarning):
    """Python's `sqlite3` module (or another SQLite library) and diskstore have the same
    file open in one process, where they do not see each other's locks."""


_Identity = tuple[int, int]

_lock = threading.Lock()
# Diskstore handles per file identity (device, inode), held weakly, by id() (stores are
# mappings, which cannot be hashed, so no WeakSet).
_handles: dict[_Identity, dict[int, weakref.ref[Any]]] = {}
_original_connect = sqlite3.connect


def _identity(path: str) -> _Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _fd_dir() -> str | None:
    for d in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(d):
            return d
    return None


def _descriptors_on(identities: set[_Identity]) -> dict[_Identity, int]:
    """How many of this process's file descriptors are open on each of `identities`."""
    counts: dict[_Identity, int] = {}
    fd_dir = _fd_dir()
    if fd_dir is None or not identities:
        return counts
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return counts
    for name in fds:
        try:
            st = os.fstat(int(name))
        except (OSError, ValueError):
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in identities:
            counts[ident] = counts.get(ident, 0) + 1
    return counts


def _live_handles(ident: _Identity) -> int:
    with _lock:
        handles = _handles.get(ident)
        if not handles:
            return 0
        for key in [k for k, ref in handles.items() if ref() is None]:
            del handles[key]
        return len(handles)


def _foreign_use(path: str) -> str | None:
    """Why `path` looks open by another SQLite library in this process, or None."""
    db = _identity(path)
    if db is None:
        return None
    files = {"": db}
    for suffix in ("-wal", "-shm"):
        ident = _identity(path + suffix)
        if ident is not None:
            files[suffix] = ident
    counts = _descriptors_on(set(files.values()))
    if not counts:
        return None
    if _live_handles(db) == 0:
        open_files = [path + s for s, ident in files.items() if counts.get(ident)]
        return f"this process already has {', '.join(open_files)} open"
    shm = files.get("-shm")
    if shm is not None and counts.get(shm, 0) > 1:
        return f"this process has {path}-shm open {counts[shm]} times"
    return None


def _warn(message: str, stacklevel: int) -> None:
    warnings.warn(
        f"{message} (Python's sqlite3 module and diskstore do not see each other's locks in "
        "one process: writes can be lost; use one of them per file and process, see "
        "docs/design.md)",
        SharedFileWarning,
        stacklevel=stacklevel + 1,
    )


def check_file(path: str | os.PathLike[str]) -> None:
    """Warns (`SharedFileWarning`) if another SQLite library in this process has `path`
    open. Called by the store and cache constructors before they open the file."""
    path = os.path.abspath(os.fspath(path))
    reason = _foreign_use(path)
    if reason is not None:
        _warn(f"{path}: {reason}, not through diskstore", 3)


def register(path: str | os.PathLike[str], handle: Any) -> None:
    """Records `handle` (a store or cache, held weakly) as diskstore's use of the file at
    `path`, once it exists, so that `sqlite3.connect` on it warns while `handle` lives."""
    ident = _identity(os.path.abspath(os.fspath(path)))
    if ident is None:
        return
    try:
        ref = weakref.ref(handle)
    except TypeError:  # not weakly referenceable: nothing to record
        return
    with _lock:
        _handles.setdefault(ident, {})[id(handle)] = ref


def _target_of(database: Any, uri: bool) -> str | None:
    """The file a `sqlite3.connect` call opens, or None (in-memory, temporary)."""
    try:
        name = os.fsdecode(database)
    except TypeError:
        return None
    if uri and name.startswith("file:"):
        parsed = urllib.parse.urlparse(name)
        query = urllib.parse.parse_qs(parsed.query)
        if query.get("mode") == ["memory"]:
            return None
        name = urllib.parse.unquote(parsed.path)
    if name in ("", ":memory:"):
        return None
    return os.path.abspath(name)


@functools.wraps(_original_connect)
def _connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
    con = _original_connect(database, *args, **kwargs)
    try:
        path = _target_of(database, bool(kwargs.get("uri", len(args) >= 7 and args[6])))
        ident = _identity(path) if path is not None else None
        shared = ident is not None and _live_handles(ident) > 0
    except Exception:  # noqa: BLE001 - detection must never break a connect
        shared = False
    if shared:
        try:
            _warn(f"sqlite3.connect({path!r}): diskstore has this file open", 2)
        except SharedFileWarning:  # warnings turned into errors: refuse the connection
            con.close()
            raise
    return con


def install() -> None:
    """Wraps `sqlite3.connect` so that opening a file diskstore uses warns. Done by
    `import diskstore`; the wrapper only looks at the file name and returns the same
    connection."""
    sqlite3.connect = _connect  # type: ignore[assignment]


def uninstall() -> None:
    """Restores the original `sqlite3.connect`."""
    if sqlite3.connect is _connect:
        sqlite3.connect = _original_connect
