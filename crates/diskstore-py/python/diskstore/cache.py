"""`DiskCache`: a persistent, process-safe cache with expiry, a hard size bound, eviction
policies, tags, statistics and `memoize`, on the Rust engine.

It runs the diskstore 0.1.0 `DiskCache` API as written, quirks included (`expire=0` means
never; `add` never expires unless told to), plus python-diskcache's `Cache` surface where
it makes sense (`cache[key]`, `pop`, `incr`/`decr`, `expire()`, `evict(tag)`, `stats()`,
`volume()`, `size_limit=`, `eviction_policy=`, `transact()`, `memoize()`).

Keys and values of type `int`, `float`, `str` and `bytes` (and `None` values) are stored
as they are; anything else is pickled. **Loading a pickle runs code chosen by whoever wrote
it**: a cache file that someone else can write can make this process run their code. Pass
`secret=b"..."` to sign every pickle with HMAC-SHA256; entries whose signature does not
verify (or that are not signed) are then refused with `diskstore.DecodeError` instead of
being unpickled.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import remote, sqlite_guard
from ._diskstore import _Cache
from .const import TIMEOUT

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_EXPIRATION", "EVICTION_POLICIES", "DiskCache"]

DEFAULT_EXPIRATION = 60.0
"""Seconds an entry lives unless told otherwise (diskstore 0.1.0's default)."""

EVICTION_POLICIES = (
    "least-recently-stored",
    "least-recently-used",
    "least-frequently-used",
    "none",
)
"""python-diskcache's policy names, accepted by `eviction_policy=`."""

_MISS = object()
_KWARGS_MARK = (None,)

F = TypeVar("F", bound=Callable[..., Any])

sqlite_guard.install()


#: The size from which `DiskCache` keeps a value in a file of its own (python-diskcache's
#: `disk_min_file_size`).
DISK_MIN_FILE_SIZE = 32 * 1024


class DiskCache(_Cache):
    """A cache in one SQLite file, shared by threads and processes.

    `DiskCache(filename, default_expiration=60.0)` as in diskstore 0.1.0, with keyword
    options:

    - `size_limit`: the most bytes of keys and values kept (exact accounting; every write
      returns with the total at or below it). Default: no limit.
    - `count_limit`: the most entries kept. Default: no limit.
    - `eviction_policy`: which entries make room, by python-diskcache's names:
      `"least-recently-stored"` (default), `"least-recently-used"`,
      `"least-frequently-used"` (these two record every hit: a write per read), or
      `"none"` (a write that does not fit raises `diskstore.Error`).
    - `tablename`: default `"Cache"`. `timeout`: busy timeout in seconds.
    - `statistics`: count hits and misses (in memory, written out with later writes).
    - `secret`: bytes; sign pickles with HMAC-SHA256 and refuse unsigned or forged ones.
    - `clock`: a callable returning seconds since the epoch, instead of the system clock
      (for tests).
    - `disk_min_file_size`: `str`, `bytes` and pickled values of at least this many bytes
      are kept in a file of their own beside the database (`<filename>-values/`), as
      python-diskcache does; `None` keeps every value in the table. Default: 32 KiB.

    - `unlogged`: PostgreSQL only: create the table `UNLOGGED` (faster writes; emptied
      after a server crash).

    `default_expiration=None` or `0` means entries never expire unless told to.

    A `postgresql://` or `redis://` URL instead of a file opens the same class on that
    server (docs/backends.md); `backend` says which (`"sqlite"`, `"postgres"`, `"redis"`).
    """

    def __new__(
        cls,
        filename: str | os.PathLike[str],
        default_expiration: float | None = DEFAULT_EXPIRATION,
        **options: Any,
    ) -> Any:
        """A cache on `filename`; on a file of diskstore 0.1.0's `DiskCache`, a
        `LegacyDiskCache` that keeps that layout (see `upgrade`)."""
        from . import _legacy_cache  # (imports this module)

        if remote.is_url(filename):  # PostgreSQL or Redis: `__init__` opens it
            return super().__new__(cls)
        path = os.path.expanduser(os.path.expandvars(os.fspath(filename)))
        tablename = options.get("tablename", "Cache")
        if _legacy_cache.is_legacy_cache(path, tablename):
            extra = sorted(set(options) - {"tablename", "timeout"})
            if extra:
                raise ValueError(
                    f"{path} holds a diskstore 0.1.0 cache, which has no room for {extra}: "
                    f"convert it first with DiskCache.upgrade({path!r})"
                )
            timeout = options.get("timeout")
            return _legacy_cache.LegacyDiskCache(
                path, default_expiration, tablename, TIMEOUT if timeout is None else timeout
            )
        return super().__new__(cls)

    @classmethod
    def upgrade(
        cls, filename: str | os.PathLike[str], tablename: str = "Cache", **options: Any
    ) -> DiskCache:
        """Converts a diskstore 0.1.0 cache file into this cache's layout, in one
        transaction, keeping the entries that have not expired; returns the cache, opened
        with `options`. Afterwards diskstore 0.1.0 can no longer read the file."""
        from . import _legacy_cache  # (imports this module)

        path = os.path.expanduser(os.path.expandvars(os.fspath(filename)))
        if not _legacy_cache.is_legacy_cache(path, tablename):
            raise ValueError(f"{path} holds no diskstore 0.1.0 cache table {tablename!r}")
        legacy = _legacy_cache.LegacyDiskCache(path, None, tablename)

        def make() -> DiskCache:
            cache = _Cache.__new__(cls)
            cls.__init__(cache, path, tablename=tablename, **options)
            return cache

        return legacy.upgrade(make)

    def __init__(
        self,
        filename: str | os.PathLike[str],
        default_expiration: float | None = DEFAULT_EXPIRATION,
        *,
        size_limit: int | None = None,
        count_limit: int | None = None,
        eviction_policy: str = "least-recently-stored",
        tablename: str = "Cache",
        timeout: float | None = None,
        statistics: bool = True,
        secret: bytes | None = None,
        clock: Callable[[], float] | None = None,
        disk_min_file_size: int | None = DISK_MIN_FILE_SIZE,
        unlogged: bool = False,
    ) -> None:
        if remote.is_url(filename):
            # On PostgreSQL or Redis (docs/backends.md): the URL carries the timeouts
            # (`timeout=` is ignored), hits and misses are always counted, and no value is
            # kept in a file of its own.
            if secret is not None:
                from ._errors import NotSupportedError

                raise NotSupportedError("secret= (signed pickles) on a server cache")
            self._options: dict[str, Any] = {
                "filename": str(filename),
                "default_expiration": default_expiration,
                "size_limit": size_limit,
                "count_limit": count_limit,
                "eviction_policy": eviction_policy,
                "tablename": tablename,
                "clock": clock,
                "unlogged": unlogged,
            }
            self._open_remote(
                str(filename),
                tablename,
                default_expiration,
                size_limit,
                count_limit,
                eviction_policy,
                bool(unlogged),
                clock,
            )
            return
        if unlogged:
            from ._errors import NotSupportedError

            raise NotSupportedError("unlogged=True (a PostgreSQL table option) on SQLite")
        path = os.path.expanduser(os.path.expandvars(os.fspath(filename)))
        sqlite_guard.check_file(path)
        # What pickling passes to a new instance (the same options, the secret included).
        self._options = {
            "filename": path,
            "default_expiration": default_expiration,
            "size_limit": size_limit,
            "count_limit": count_limit,
            "eviction_policy": eviction_policy,
            "tablename": tablename,
            "timeout": timeout,
            "statistics": statistics,
            "secret": secret,
            "clock": clock,
            "disk_min_file_size": disk_min_file_size,
        }
        self._open(
            path,
            tablename,
            default_expiration,
            size_limit,
            count_limit,
            eviction_policy,
            TIMEOUT if timeout is None else timeout,
            statistics,
            None if secret is None else bytes(secret),
            clock,
            disk_min_file_size,
        )
        sqlite_guard.register(path, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.filename!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the options it was opened with (file name, limits, policy, secret,
        clock...), so that a cache can be passed to another process, which opens the same
        file. The secret travels in the pickle: keep such pickles as private as the
        secret."""
        return (_reopen, (type(self), self._options))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_many(self, keys: Collection[Any], default: Any = None) -> list[Any]:
        """The values of `keys` (`default` where missing or expired), in one transaction
        (on PostgreSQL and Redis: one round trip)."""
        if self.backend != "sqlite":
            return self._get_many(keys, default)
        with self.transact():
            values = [self.get(k, default) for k in list(keys)]
        return values

    def set_many(self, items: Any) -> None:
        """Stores a mapping or `(key, value)` pairs (default expiration) in one
        transaction (on PostgreSQL and Redis: one round trip)."""
        if self.backend != "sqlite":
            return self._set_many(items)
        pairs = list(items.items()) if hasattr(items, "items") else list(items)
        with self.transact():
            for k, v in pairs:
                self.set(k, v)

    def delete_many(self, keys: Collection[Any]) -> int:
        """Deletes `keys` in one transaction (on PostgreSQL and Redis: one round trip);
        returns how many were live."""
        if self.backend != "sqlite":
            return self._delete_many(keys)
        with self.transact():
            n = sum(bool(self.delete(k)) for k in list(keys))
        return n

    def delete_expired(self) -> int:
        """Deletes every expired entry now (0.1.0's name for `expire()`); returns how many."""
        return self.expire()

    def __iter__(self) -> Iterator[Any]:
        """Live keys, oldest stored first. A pass ends at the last entry present when it
        starts (a loop that stores a key per key read ends); a key stored meanwhile is not
        visited unless the newest entries were deleted first (SQLite reuses their rowids).
        Threads may share one iterator."""
        return self._key_iter(False)

    def __reversed__(self) -> Iterator[Any]:
        """Live keys, newest stored first."""
        return self._key_iter(True)

    def memoize(
        self,
        expire: float | None = None,
        tag: Any = None,
        *,
        name: str | None = None,
        typed: bool = False,
        ignore: Collection[int | str] = (),
    ) -> Callable[[F], F]:
        """Decorator caching a function's results (plain functions, methods and async
        functions) under a key made of its name and arguments.

        `expire` and `tag` are passed to `set` (so `expire=None` is the default
        expiration, `0` never). `typed=True` keeps `f(1)` and `f(1.0)` apart. `ignore`
        names positions or keyword names left out of the key (e.g. `ignore={0}` for
        `self`). Arguments in the key must be picklable. The wrapper's
        `__cache_key__(*args, **kwargs)` returns the key a call would use.
        """
        if callable(expire):
            raise TypeError("use @cache.memoize() with parentheses")
        ignored = frozenset(ignore)

        def decorator(func: F) -> F:
            base = (name or f"{func.__module__}.{func.__qualname__}",)

            def make_key(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
                kept = tuple(a for i, a in enumerate(args) if i not in ignored)
                items = tuple(sorted((k, v) for k, v in kwargs.items() if k not in ignored))
                key = base + kept
                if items:
                    key += _KWARGS_MARK + items
                if typed:
                    key += tuple(type(a) for a in kept)
                    key += tuple(type(v) for _, v in items)
                return key

            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    key = make_key(*args, **kwargs)
                    result = self.get(key, _MISS)
                    if result is _MISS:
                        result = await func(*args, **kwargs)
                        self.set(key, result, expire, tag)
                    return result

                async_wrapper.__cache_key__ = make_key  # type: ignore[attr-defined]
                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                key = make_key(*args, **kwargs)
                result = self.get(key, _MISS)
                if result is _MISS:
                    result = func(*args, **kwargs)
                    self.set(key, result, expire, tag)
                return result

            wrapper.__cache_key__ = make_key  # type: ignore[attr-defined]
            return wrapper  # type: ignore[return-value]

        return decorator


def _reopen(cls: type[DiskCache], options: dict[str, Any]) -> DiskCache:
    """Unpickles a `DiskCache`: opens the file again with the same options."""
    options = dict(options)
    filename = options.pop("filename")
    return cls(filename, **options)

