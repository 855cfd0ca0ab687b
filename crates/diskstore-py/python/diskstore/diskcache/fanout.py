"""`FanoutCache`: a cache sharded over several `Cache` directories by key hash.

As in diskcache, a shard that stays locked past the (short) timeout makes a write return
`False` and a read return its default instead of raising `Timeout`.
"""

from __future__ import annotations

import contextlib
import itertools
import os.path as op
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

# The native half (src/dccore/) is private and has no stub entry.
from .._diskstore import (  # type: ignore[attr-defined]
    _dc_fanout_get_plain,
    _dc_fanout_set_plain,
)
from .core import _MISS, _SLOW, DEFAULT_SETTINGS, ENOVAL, Cache, Disk, Timeout
from .persistent import Deque, Index

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FanoutCache"]


class FanoutCache:
    """`FanoutCache(directory=None, shards=8, timeout=0.010, disk=Disk, **settings)`: keys
    spread over `shards` caches in sub-directories `000`, `001`, ...; `size_limit` is the
    total, split evenly."""

    def __init__(
        self,
        directory: Any = None,
        shards: int = 8,
        timeout: float = 0.010,
        disk: type = Disk,
        **settings: Any,
    ):
        if directory is None:
            directory = tempfile.mkdtemp(prefix="diskcache-")
        directory = op.expandvars(op.expanduser(str(directory)))
        size_limit = settings.pop("size_limit", DEFAULT_SETTINGS["size_limit"]) / shards
        self._count = shards
        self._directory = directory
        self._disk = disk
        self._shards = tuple(
            Cache(
                directory=op.join(directory, f"{num:03d}"),
                timeout=timeout,
                disk=disk,
                size_limit=size_limit,
                **settings,
            )
            for num in range(shards)
        )
        self._hash = self._shards[0].disk.hash
        self._plain_disk = type(self._shards[0].disk) is Disk
        # The one-call paths below, as the shards' own (not with a program's own policy).
        self._fast = self._shards[0]._fast
        self._cores = tuple(shard._core for shard in self._shards)
        # `reset` sets `disk_min_file_size` on every shard alike: the first one's serves.
        self._disk0 = self._shards[0].disk
        self._caches: dict[str, Cache] = {}
        self._deques: dict[str, Deque] = {}
        self._indexes: dict[str, Index] = {}

    @property
    def directory(self) -> str:
        """The top directory."""
        return self._directory

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not (name in DEFAULT_SETTINGS or name in ("timeout", "disk")):
            raise AttributeError(f"cannot access {name} in cache shard")
        return getattr(self._shards[0], name)

    def _shard(self, key: Any) -> Cache:
        if self._plain_disk and type(key) is str:
            # Disk.hash of a str key, inline.
            return self._shards[(zlib.adler32(key.encode("utf-8")) & 0xFFFFFFFF) % self._count]
        return self._shards[self._hash(key) % self._count]

    @contextlib.contextmanager
    def transact(self, retry: bool = True) -> Iterator[None]:
        """One transaction on every shard at once (`retry` must be `True`)."""
        if not retry:
            raise ValueError("retry must be True in FanoutCache")
        with contextlib.ExitStack() as stack:
            for shard in self._shards:
                stack.enter_context(shard.transact(retry=True))
            yield

    def set(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """`Cache.set`; `False` on a timeout."""
        try:
            if self._fast and not read:
                # One native call: the shard by the key's hash, then its `set_plain`.
                while True:
                    try:
                        plain = _dc_fanout_set_plain(
                            self._cores, key, value, expire, tag, self._disk0.min_file_size
                        )
                        break
                    except Timeout:
                        if not retry:
                            raise
                if plain is not None:
                    if plain:
                        self._shard(key)._remove(plain)
                    return True
            return self._shard(key).set(key, value, expire, read, tag, retry)
        except Timeout:
            return False

    def __setitem__(self, key: Any, value: Any) -> None:
        self._shard(key)[key] = value

    def touch(self, key: Any, expire: float | None = None, retry: bool = False) -> bool:
        """`Cache.touch`; `False` on a timeout."""
        try:
            return self._shard(key).touch(key, expire, retry)
        except Timeout:
            return False

    def add(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """`Cache.add`; `False` on a timeout."""
        try:
            return self._shard(key).add(key, value, expire, read, tag, retry)
        except Timeout:
            return False

    def incr(self, key: Any, delta: int = 1, default: int | None = 0, retry: bool = False) -> Any:
        """`Cache.incr`; `None` on a timeout."""
        try:
            return self._shard(key).incr(key, delta, default, retry)
        except Timeout:
            return None

    def decr(self, key: Any, delta: int = 1, default: int | None = 0, retry: bool = False) -> Any:
        """`Cache.decr`; `None` on a timeout."""
        try:
            return self._shard(key).decr(key, delta, default, retry)
        except Timeout:
            return None

    def get(
        self,
        key: Any,
        default: Any = None,
        read: bool = False,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """`Cache.get`; `default` on a timeout."""
        try:
            if self._fast and not (read or expire_time or tag):
                # One native call: the shard by the key's hash, then the lookup.
                while True:
                    try:
                        got = _dc_fanout_get_plain(self._cores, key, _MISS, _SLOW)
                        break
                    except Timeout:
                        if not retry:
                            raise
                if got is _MISS:
                    return default
                if type(got) is tuple:
                    return self._shard(key)._fetch_plain(got, default)
                if got is not _SLOW:
                    return got
            return self._shard(key).get(key, default, read, expire_time, tag, retry)
        except Timeout:
            return default

    def __getitem__(self, key: Any) -> Any:
        return self._shard(key)[key]

    def read(self, key: Any) -> Any:
        """`Cache.read`."""
        handle = self.get(key, default=ENOVAL, read=True, retry=True)
        if handle is ENOVAL:
            raise KeyError(key)
        return handle

    def __contains__(self, key: Any) -> bool:
        return key in self._shard(key)

    def pop(
        self,
        key: Any,
        default: Any = None,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """`Cache.pop`; `default` on a timeout."""
        try:
            return self._shard(key).pop(key, default, expire_time, tag, retry)
        except Timeout:
            return default

    def delete(self, key: Any, retry: bool = False) -> bool:
        """`Cache.delete`; `False` on a timeout."""
        try:
            return self._shard(key).delete(key, retry)
        except Timeout:
            return False

    def __delitem__(self, key: Any) -> None:
        del self._shard(key)[key]

    def check(self, fix: bool = False, retry: bool = False) -> list[warnings.WarningMessage]:
        """The warnings of every shard's `check`."""
        found: list[warnings.WarningMessage] = []
        for shard in self._shards:
            found += shard.check(fix, retry)
        return found

    def expire(self, retry: bool = False) -> int:
        """Removes expired entries of every shard; returns how many."""
        return self._remove("expire", (time.time(),), retry)

    def create_tag_index(self) -> None:
        """Indexes tags in every shard."""
        for shard in self._shards:
            shard.create_tag_index()

    def drop_tag_index(self) -> None:
        """Drops every shard's tag index."""
        for shard in self._shards:
            shard.drop_tag_index()

    def evict(self, tag: Any, retry: bool = False) -> int:
        """Removes the entries tagged `tag`; returns how many."""
        return self._remove("evict", (tag,), retry)

    def cull(self, retry: bool = False) -> int:
        """Culls every shard; returns how many entries were removed."""
        return self._remove("cull", (), retry)

    def clear(self, retry: bool = False) -> int:
        """Removes every entry; returns how many."""
        return self._remove("clear", (), retry)

    def _remove(self, name: str, args: tuple[Any, ...], retry: bool) -> int:
        total = 0
        for shard in self._shards:
            method = getattr(shard, name)
            while True:
                try:
                    total += method(*args, retry=retry)
                    break
                except Timeout as timeout:
                    total += timeout.args[0] if timeout.args else 0
        return total

    def stats(self, enable: bool = True, reset: bool = False) -> tuple[int, int]:
        """Summed `(hits, misses)` of the shards."""
        results = [shard.stats(enable, reset) for shard in self._shards]
        return sum(h for h, _ in results), sum(m for _, m in results)

    def volume(self) -> int:
        """Summed volume of the shards."""
        return sum(shard.volume() for shard in self._shards)

    def close(self) -> None:
        """Closes every shard's connection of this thread and forgets sub-collections."""
        for shard in self._shards:
            shard.close()
        self._caches.clear()
        self._deques.clear()
        self._indexes.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def __getstate__(self) -> tuple[str, int, float, type]:
        return (self._directory, self._count, self.timeout, type(self.disk))

    def __setstate__(self, state: tuple[str, int, float, type]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __iter__(self) -> Iterator[Any]:
        return itertools.chain.from_iterable(iter(s) for s in self._shards)

    def __reversed__(self) -> Iterator[Any]:
        return itertools.chain.from_iterable(reversed(s) for s in reversed(self._shards))

    def __len__(self) -> int:
        return sum(len(s) for s in self._shards)

    def reset(self, key: str, value: Any = ENOVAL) -> Any:
        """Reads or sets a setting on every shard; returns the last shard's value."""
        result = None
        for shard in self._shards:
            while True:
                try:
                    result = shard.reset(key, value)
                    break
                except Timeout:
                    continue
        self._fast = self._shards[0]._fast
        return result

    def cache(
        self, name: str, timeout: float = 60, disk: type | None = None, **settings: Any
    ) -> Cache:
        """The `Cache` in sub-directory `cache/<name>` (made on first use)."""
        if name not in self._caches:
            directory = op.join(self._directory, "cache", *name.split("/"))
            self._caches[name] = Cache(
                directory=directory,
                timeout=timeout,
                disk=self._disk if disk is None else disk,
                **settings,
            )
        return self._caches[name]

    def deque(self, name: str, maxlen: int | None = None) -> Deque:
        """The `Deque` in sub-directory `deque/<name>` (made on first use)."""
        if name not in self._deques:
            directory = op.join(self._directory, "deque", *name.split("/"))
            cache = Cache(directory=directory, disk=self._disk, eviction_policy="none")
            self._deques[name] = Deque.fromcache(cache, maxlen=maxlen)
        return self._deques[name]

    def index(self, name: str) -> Index:
        """The `Index` in sub-directory `index/<name>` (made on first use)."""
        if name not in self._indexes:
            directory = op.join(self._directory, "index", *name.split("/"))
            cache = Cache(directory=directory, disk=self._disk, eviction_policy="none")
            self._indexes[name] = Index.fromcache(cache)
        return self._indexes[name]

    memoize = Cache.memoize
