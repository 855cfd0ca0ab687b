"""`diskstore.diskcache`: python-diskcache 5.6's API on diskstore's SQLite engine.

Switching is one line: `import diskcache` becomes `from diskstore import diskcache`.
`Cache`, `FanoutCache`, `Deque`, `Index`, the recipes and `DjangoCache` take diskcache's
arguments and return what diskcache returns; docs/diskcache.md lists where they differ.

`DiskCache` and `CacheValue` are diskstore 0.1.0's names at this import path and keep
0.1.0's semantics.
"""

from __future__ import annotations

from ..cache import DiskCache
from ..const import MISSING, TIMEOUT, KeyType  # noqa: F401 (0.1.0's module had these names)
from ..store import DiskStore  # noqa: F401 (0.1.0's module had this name)
from ._legacy import CacheValue
from .core import (
    DEFAULT_SETTINGS,
    ENOVAL,
    EVICTION_POLICY,
    UNKNOWN,
    Cache,
    Disk,
    EmptyDirWarning,
    JSONDisk,
    Timeout,
    UnknownFileWarning,
)
from .fanout import FanoutCache
from .persistent import Deque, Index
from .recipes import Averager, BoundedSemaphore, Lock, RLock, barrier, memoize_stampede, throttle

__all__ = [
    "DEFAULT_SETTINGS",
    "ENOVAL",
    "EVICTION_POLICY",
    "UNKNOWN",
    "Averager",
    "BoundedSemaphore",
    "Cache",
    "CacheValue",
    "Deque",
    "Disk",
    "DiskCache",
    "EmptyDirWarning",
    "FanoutCache",
    "Index",
    "JSONDisk",
    "Lock",
    "RLock",
    "Timeout",
    "UnknownFileWarning",
    "barrier",
    "memoize_stampede",
    "throttle",
]

try:  # Django is optional: DjangoCache exists when it imports.
    from .djangocache import DjangoCache  # noqa: F401

    __all__.append("DjangoCache")
except Exception:  # noqa: BLE001, S110 (no Django, or Django not configured)
    pass

__version__ = "5.6.3"
"""The python-diskcache version whose API this module follows."""
