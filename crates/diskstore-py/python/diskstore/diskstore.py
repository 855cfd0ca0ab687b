"""The module layout of the original: `from diskstore.diskstore import DiskStore, BusyError`.

Every public name the original's `diskstore.diskstore` module had (0.1.0 and 0.7.0) is
importable from here; the classes themselves live in `diskstore.store`.
"""

from __future__ import annotations

from ._errors import BusyError, SQLError
from ._sqlite import (
    Connection,
    Cursor,
    connect,
    execute,
    executemany,
    format_sql_value,
    set_pragma,
    table_columns,
)
from .config import ConfigProtocol, escape_name, get_sqlite_type
from .const import DEFAULT_PRAGMAS, MISSING, NO_DEFAULT, TIMEOUT, KeyType
from .store import DiskRead, DiskStore

__all__ = [
    "DEFAULT_PRAGMAS",
    "MISSING",
    "NO_DEFAULT",
    "TIMEOUT",
    "BusyError",
    "ConfigProtocol",
    "Connection",
    "Cursor",
    "DiskRead",
    "DiskStore",
    "KeyType",
    "SQLError",
    "connect",
    "escape_name",
    "execute",
    "executemany",
    "format_sql_value",
    "get_sqlite_type",
    "set_pragma",
    "table_columns",
]
