"""diskstore 0.1.0's cache files: opened as they are, and upgraded on request.

diskstore 0.1.0's `DiskCache` kept its entries in a table `Cache` with three columns:
`_key` (the pickled key), `value` (the pickled value) and `expires_at` (seconds since the
epoch, `0.0` for never). `DiskCache(path)` on such a file returns a `LegacyDiskCache`,
which runs 0.1.0's API on that table without changing its layout, so the original can
still read and write the file. `DiskCache.upgrade(path)` converts it, in one transaction,
into our cache's layout (size limits, eviction, tags, statistics); the original cannot read
it afterwards.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._sqlite import table_columns
from .config import NamedTupleConfig
from .const import TIMEOUT
from .diskcache._legacy import CacheValue
from .store import DiskRead, DiskStore

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["LegacyDiskCache", "is_legacy_cache"]

_COLUMNS = ["_key", "value", "expires_at"]

# The cache's own connection settings (see CacheOptions in the engine), so that this store
# shares the thread's connection with a cache opened on the file, and `upgrade` can
# replace the table in one transaction.
_CACHE_PRAGMAS = {"page_size": 4096, "mmap_size": 0, "wal_autocheckpoint": 250}


def is_legacy_cache(path: str, tablename: str) -> bool:
    """True when `path` holds a diskstore 0.1.0 cache table `tablename`."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    try:
        probe = DiskRead(path, value_class=CacheValue, tablename=tablename)
    except Exception:  # noqa: BLE001 -- not this layout (or no table): not a 0.1.0 cache
        return False
    try:
        con = probe._con
        cols = [row[1] for row in table_columns(con, tablename)]
        ours = con.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (f"{tablename}_expire_at",)
        ).fetchone()
    except Exception:  # noqa: BLE001
        return False
    finally:
        probe.close()
    return cols == _COLUMNS and ours is None


class LegacyDiskCache:
    """diskstore 0.1.0's `DiskCache` on a file of that version (see the module's docs):
    pickled keys and values, manual expiry (`delete_expired()`), `len()` and iteration
    counting expired entries, as 0.1.0 had them."""

    def __init__(
        self,
        filename: str | os.PathLike[str],
        default_expiration: float | None = 60.0,
        tablename: str = "Cache",
        timeout: float = TIMEOUT,
    ) -> None:
        config = NamedTupleConfig(
            CacheValue, tablename=tablename, timeout=timeout, pragmas=_CACHE_PRAGMAS
        )
        self._store = DiskStore(os.fspath(filename), config=config)
        self.default_expiration = default_expiration

    @property
    def filename(self) -> str:
        """The cache file."""
        return self._store.filename

    def _expires(self, expire: float | None, default: float | None) -> float:
        if expire is None:
            expire = default
        return time.time() + expire if expire else 0.0

    def set(self, key: Any, value: Any, expire: float | None = None) -> None:
        """Stores `value`; `expire` seconds (`None`: the default, `0`: never)."""
        self._store[pickle.dumps(key)] = CacheValue(
            pickle.dumps(value), self._expires(expire, self.default_expiration)
        )

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of `key`, or `default` when it is missing or expired."""
        found = self._store.get(pickle.dumps(key))
        return default if found is None else found.load(None, default)

    def add(self, key: Any, value: Any, expire: float | None = None) -> bool:
        """Stores `value` only if `key` is not stored (an expired, unremoved entry counts as
        stored); `expire=None` means never, as in 0.1.0."""
        record = CacheValue(pickle.dumps(value), self._expires(expire, None))
        k = pickle.dumps(key)
        with self._store.transact():
            if k in self._store:
                return False
            self._store[k] = record
            return True

    def delete(self, key: Any) -> bool:
        """Removes `key`; returns whether it was stored."""
        return self._store.pop(pickle.dumps(key), None) is not None

    def touch(self, key: Any, expire: float | None = None) -> None:
        """Gives a stored entry (expired or not) a new expiry; nothing if it is missing."""
        k = pickle.dumps(key)
        with self._store.transact():
            found = self._store.get(k)
            if found is not None:
                self._store[k] = found._replace(
                    expires_at=self._expires(expire, self.default_expiration)
                )

    def delete_expired(self) -> int:
        """Removes every expired entry; returns how many."""
        with self._store.transact() as cur:
            table = self._store.tablename
            cur.execute(
                f'DELETE FROM "{table}" WHERE expires_at != 0.0 AND expires_at <= ?',
                (time.time(),),
            )
            return cur.rowcount

    def check(self, *args: Any, **kwargs: Any) -> Any:
        """The store's integrity check."""
        return self._store.check(*args, **kwargs)

    def clear(self) -> None:
        """Removes every entry."""
        self._store.clear()

    def close(self) -> None:
        """Closes this thread's connection."""
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[Any]:
        return (pickle.loads(k) for k in self._store)

    def __reversed__(self) -> Iterator[Any]:
        return (pickle.loads(k) for k in reversed(self._store))

    def __repr__(self) -> str:
        return f"LegacyDiskCache({self.filename!r})"

    def upgrade(self, make_cache: Any) -> Any:
        """Replaces the 0.1.0 table by a cache made with `make_cache()`, holding the
        entries that have not expired with the time they have left, in one transaction
        (nothing changes if any step fails); returns that cache."""
        table = self._store.tablename
        with self._store.transact() as cur:
            now = time.time()
            entries = [
                (pickle.loads(k), pickle.loads(v.value), v.expires_at)
                for k, v in self._store.items()
                if v.expires_at == 0.0 or v.expires_at > now
            ]
            cur.execute(f'DROP TABLE "{table}"')
            cache = make_cache()
            for key, value, expires_at in entries:
                cache.set(key, value, expire=expires_at - now if expires_at else 0)
        return cache
