"""SQL helpers of the original 0.7.0 layout (`diskstore._sqlite`), on our engine.

The original chose a backend (apsw or the standard library's `sqlite3`) here and code that
inspects a store used its helpers: `get_pragma(store._con, "journal_mode")`,
`table_columns(store._con, store.tablename)`. Ours has one backend, so `Connection` is a
handle on the calling thread's connection of a store (what `store._con` returns) and
`Cursor` is the cursor `transact()` yields. The helpers also accept a standard-library
`sqlite3` connection or cursor: they only call `execute`.

`connect()` opens a store on the file and returns its `Connection`, so the statements run
on our engine's connection (with its locks); it never opens the file with a second SQLite
library, which would not see our locks (see docs/compat.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import _diskstore
from ._errors import BusyError, Error, SQLError
from .const import TIMEOUT

if TYPE_CHECKING:
    from .store import DiskRead

BACKEND_NAME = "diskstore"
"""The name of the SQLite backend in use (the original said "apsw" or "sqlite3")."""

Cursor = _diskstore.Cursor


class Connection:
    """The calling thread's connection of a store, for direct SQL (`store._con`).

    Statements run on the same connection as the store's own operations, so inside
    `transact()` they are part of the open transaction.
    """

    __slots__ = ("_store",)

    def __init__(self, store: DiskRead) -> None:
        self._store = store

    def cursor(self) -> Cursor:
        """A new cursor on this connection."""
        return _diskstore._cursor(self._store)

    def execute(self, sql: str, parameters: Any = None) -> Cursor:
        """Runs one statement; returns the cursor holding its rows."""
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any) -> Cursor:
        """Runs one statement once per parameter set."""
        return self.cursor().executemany(sql, seq_of_parameters)

    def close(self) -> None:
        """Closes the store's connection of this thread (it reopens on next use)."""
        self._store.close()

    def __repr__(self) -> str:
        return f"<diskstore Connection of {self._store!r}>"


def connect(
    filename: os.PathLike | str, *, readonly: bool = False, timeout: float = TIMEOUT
) -> Connection:
    """A `Connection` on `filename` through a store of the default model (`DiskRead` when
    `readonly`). Direct SQL on a new file settles that file as a 0.7.0 store."""
    from .store import DiskRead, DiskStore

    store = DiskRead(filename, timeout=timeout) if readonly else DiskStore(filename, timeout=timeout)
    return Connection(store)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: Any) -> str:
    """`value` as an SQL literal (for pragma values and column defaults, which cannot be
    bound): NULL, integers (bools as 0/1), floats, X'hex' blobs, quoted text."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot format SQL literal: {value!r}")


format_sql_value = quote_literal
"""Alias of `quote_literal` (apsw's name)."""


def _check_pragma_name(name: str) -> None:
    if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
        raise ValueError(f"invalid pragma name: {name!r}")


def set_pragma(con: Any, key: str, value: Any) -> None:
    """Runs `PRAGMA key=value` on `con` (the name is checked, the value quoted)."""
    _check_pragma_name(key)
    con.execute(f"PRAGMA {key}={quote_literal(value)}")


def get_pragma(con: Any, key: str) -> Any:
    """The first column of `PRAGMA key` on `con` (None if it returns no row)."""
    _check_pragma_name(key)
    row = con.execute(f"PRAGMA {key}").fetchone()
    return None if row is None else row[0]


def table_columns(con: Any, table: str) -> list[tuple]:
    """The `PRAGMA table_info` rows of `table`: `(cid, name, type, notnull, default,
    pk)` per column, `[]` if there is no such table."""
    return list(con.execute(f"PRAGMA table_info({_quote_identifier(table)})").fetchall())


def is_busy(exc: BaseException) -> bool:
    """True if `exc` reports a locked file (our `BusyError`, or a `sqlite3` error whose
    name or message says so)."""
    if isinstance(exc, BusyError):
        return True
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return str(name).startswith("SQLITE_BUSY")
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def execute(cursor: Any, sql: str, parameters: Any = ()) -> Any:
    """`cursor.execute(sql, parameters)` (busy conditions already raise `BusyError`)."""
    return cursor.execute(sql, parameters)


def executemany(cursor: Any, sql: str, seq: Any) -> Any:
    """`cursor.executemany(sql, seq)`."""
    return cursor.executemany(sql, seq)


__all__ = [
    "BACKEND_NAME",
    "TIMEOUT",
    "BusyError",
    "Connection",
    "Cursor",
    "Error",
    "SQLError",
    "connect",
    "execute",
    "executemany",
    "format_sql_value",
    "get_pragma",
    "is_busy",
    "quote_literal",
    "set_pragma",
    "table_columns",
]
