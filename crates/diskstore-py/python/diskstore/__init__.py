"""diskstore: a fast persistent mapping on SQLite, a drop-in replacement for the
`diskstore` library (both its 0.1.0 and its 0.7.0 API), with its engine in Rust.

    >>> from diskstore import DiskStore, Value
    >>> ds = DiskStore("/tmp/diskstore.db", value_class=Value)   # doctest: +SKIP
    >>> ds["key"] = Value("my value")                           # doctest: +SKIP
"""

from __future__ import annotations

from . import config, const
from ._diskstore import (
    BusyError,
    CorruptError,
    DecodeError,
    DiskFullError,
    Error,
    NotADatabaseError,
    NotFoundError,
    ReadOnlyError,
    SchemaError,
    SQLError,
)
from .cache import DiskCache
from .const import DEFAULT_PRAGMAS, DEFAULT_RO_PRAGMAS, MISSING, TIMEOUT, AnyLite, KeyType
from .store import DiskItemsView, DiskKeysView, DiskRead, DiskStore, DiskValuesView
from .value import Value

__all__ = [
    "DEFAULT_PRAGMAS",
    "DEFAULT_RO_PRAGMAS",
    "MISSING",
    "TIMEOUT",
    "AnyLite",
    "BusyError",
    "CorruptError",
    "DecodeError",
    "DiskCache",
    "DiskFullError",
    "DiskItemsView",
    "DiskKeysView",
    "DiskRead",
    "DiskStore",
    "DiskValuesView",
    "Error",
    "KeyType",
    "NotADatabaseError",
    "NotFoundError",
    "ReadOnlyError",
    "SQLError",
    "SchemaError",
    "Value",
    "config",
    "const",
]

