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


def _export_cache() -> None:
    """Exports `DiskCache` from `diskstore.cache` once that module exists. (When it does,
    a plain `from .cache import DiskCache` at the top can replace this.)"""
    try:
        from .cache import DiskCache  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    globals()["DiskCache"] = DiskCache
    __all__.append("DiskCache")


_export_cache()
