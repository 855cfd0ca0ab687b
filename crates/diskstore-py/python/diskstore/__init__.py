"""diskstore: a fast persistent mapping on SQLite, a drop-in replacement for the
`diskstore` library (both its 0.1.0 and its 0.7.0 API), with its engine in Rust.

    >>> from diskstore import DiskStore, Value
    >>> ds = DiskStore("/tmp/diskstore.db", value_class=Value)   # doctest: +SKIP
    >>> ds["key"] = Value("my value")                           # doctest: +SKIP
"""

from __future__ import annotations

# Submodules, including the original's `diskstore.diskstore` and `diskstore.diskread`.
from . import config, const, diskread, diskstore
from ._errors import (
    BusyError,
    ConnectionLostError,
    CorruptError,
    DecodeError,
    DiskFullError,
    Error,
    IntegrityError,
    NotADatabaseError,
    NotFoundError,
    NotSupportedError,
    ReadOnlyError,
    SchemaError,
    ServerError,
    SQLError,
)
from .cache import DiskCache
from .const import DEFAULT_PRAGMAS, DEFAULT_RO_PRAGMAS, MISSING, TIMEOUT, AnyLite, KeyType
from .store import DiskItemsView, DiskKeysView, DiskRead, DiskStore, DiskValuesView
from .value import Value

__version__ = "1.0.0"
"""The version of this package (above every release of the original it replaces)."""


def __getattr__(name: str) -> object:
    """`diskstore.diskcache` (0.1.0 imported it with the package), loaded on first use: it
    also holds the python-diskcache compatible API, which plain store users do not need."""
    if name == "diskcache":
        import importlib

        return importlib.import_module(".diskcache", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DEFAULT_PRAGMAS",
    "DEFAULT_RO_PRAGMAS",
    "MISSING",
    "TIMEOUT",
    "AnyLite",
    "BusyError",
    "ConnectionLostError",
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
    "IntegrityError",
    "KeyType",
    "NotADatabaseError",
    "NotFoundError",
    "NotSupportedError",
    "ReadOnlyError",
    "SQLError",
    "SchemaError",
    "ServerError",
    "Value",
    "__version__",
    "config",
    "const",
    "diskread",
    "diskstore",
]

