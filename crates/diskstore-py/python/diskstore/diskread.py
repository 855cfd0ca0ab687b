"""The module layout of the original: `from diskstore.diskread import DiskRead, Value`.

Every public name the original's `diskstore.diskread` module had (0.1.0 and 0.7.0) is
importable from here; the classes themselves live in `diskstore.store`.
"""

from __future__ import annotations

from typing import Union

from ._sqlite import Connection, Cursor, connect, set_pragma
from .config import BaseConfig, ConfigProtocol, escape_name
from .const import DEFAULT_RO_PRAGMAS, MISSING, TIMEOUT, KeyType
from .store import DiskItemsView, DiskKeysView, DiskRead, DiskValuesView
from .value import Value

BasicType = Union[bytes, str, int, float]  # noqa: UP007 - the original's runtime alias
"""The Python types of one SQLite value."""

__all__ = [
    "DEFAULT_RO_PRAGMAS",
    "MISSING",
    "TIMEOUT",
    "BaseConfig",
    "BasicType",
    "ConfigProtocol",
    "Connection",
    "Cursor",
    "DiskItemsView",
    "DiskKeysView",
    "DiskRead",
    "DiskValuesView",
    "KeyType",
    "Value",
    "connect",
    "escape_name",
    "set_pragma",
]
