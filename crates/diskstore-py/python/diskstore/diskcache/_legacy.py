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

    def load(self, expire_timestamp: Any = None, default: Any = MISSING) -> Any:
        """The unpickled value, or `default` once expired. `expire_timestamp` is accepted
        and ignored, as in 0.1.0 (where it was a required, unused argument)."""
        if self.expires_at == 0.0 or self.expires_at > time.time():
            return pickle.loads(self.value)
        return default

    @classmethod
    def create(cls, value: Any, expires: float | None = None) -> CacheValue:
        """A record for `value` living `expires` seconds (`None` or `0`: never)."""
        return cls(pickle.dumps(value), time.time() + expires if expires else 0.0)
