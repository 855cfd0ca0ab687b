"""Constants shared by both generations of the diskstore API."""

from __future__ import annotations

from ._diskstore import SQLITE_VERSION

TIMEOUT = 10.0
"""Default busy timeout in seconds (0.7.0's value; 0.1.0 used 60)."""


class _Missing:
    """The type of `MISSING`: "no argument given"."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()
"""Sentinel for "no default given" (for example in `pop`)."""


class NO_DEFAULT:
    """Sentinel: a field without a default value (its column is NOT NULL, no DEFAULT)."""


DEFAULT_PRAGMAS: dict[str, int | str] = {
    "auto_vacuum": 0,
    "cache_size": -32768,
    "page_size": 4096,
    "journal_mode": "wal",
    "mmap_size": 2**31 - 2**16,
    "synchronous": 1,
    "temp_store": 2,
    "wal_autocheckpoint": 5000,
}
"""Pragmas applied to every read-write connection (the engine applies the same table)."""

DEFAULT_RO_PRAGMAS: dict[str, int | str] = {
    "cache_size": -32768,
    "mmap_size": 2**31 - 2**16,
    "temp_store": 2,
    "synchronous": 1,
}
"""Pragmas applied to every read-only connection."""

AnyLite = bytes | str | int | float
"""The Python types a key (or a single-column value) may have."""

KeyType = AnyLite
"""Alias of `AnyLite`."""

__all__ = [
    "DEFAULT_PRAGMAS",
    "DEFAULT_RO_PRAGMAS",
    "MISSING",
    "NO_DEFAULT",
    "SQLITE_VERSION",
    "TIMEOUT",
    "AnyLite",
    "KeyType",
]
