"""`CacheValue`: the record diskstore 0.1.0's `diskstore.diskcache` stored cache entries in."""

from __future__ import annotations

import pickle
import time
from typing import Any, NamedTuple

from ..const import MISSING


class CacheValue(NamedTuple):
    """A pickled value and the time it expires (`0.0`: never), as diskstore 0.1.0 had it."""

    value: bytes
    expires_at: float

    def load(self, default: Any = MISSING) -> Any:
        """The unpickled value, or `default` once expired (`KeyError` without a default)."""
        if self.expires_at and self.expires_at < time.time():
            if default is MISSING:
                raise KeyError("expired")
            return default
        return pickle.loads(self.value)

    @classmethod
    def create(cls, value: Any, expires: float | None = None) -> CacheValue:
        """A record for `value` living `expires` seconds (`None` or `0`: never)."""
        return cls(pickle.dumps(value), time.time() + expires if expires else 0.0)
