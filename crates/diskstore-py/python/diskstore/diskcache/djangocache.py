"""`DjangoCache`: a Django cache backend on `FanoutCache`
(`"BACKEND": "diskstore.diskcache.DjangoCache"`), with diskcache's extras (`read`, `tag`,
`expire_time`, `pop`, `memoize`, `cache`/`deque`/`index`, `stats`, `evict`, ...)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import (  # type: ignore[import-untyped]
    DEFAULT_TIMEOUT,
    BaseCache,
    default_key_func,
)

from .core import ENOVAL, args_to_key, full_name
from .fanout import FanoutCache

__all__ = ["DjangoCache"]

_MEMCACHED_MAX_KEY = 250


class DjangoCache(BaseCache):
    """Django's cache API on a `FanoutCache` in `LOCATION`.

    `params` as Django passes them: `TIMEOUT`, `KEY_PREFIX`, `VERSION`, `KEY_FUNCTION`,
    plus `SHARDS` (default 8), `DATABASE_TIMEOUT` (default 0.010 s) and `OPTIONS` (cache
    settings such as `size_limit`)."""

    def __init__(self, directory: str, params: dict[str, Any]):
        super().__init__(params)
        shards = params.get("SHARDS", 8)
        timeout = params.get("DATABASE_TIMEOUT", 0.010)
        options = params.get("OPTIONS", {})
        self._cache = FanoutCache(directory, shards, timeout, **options)
        self._plain_keys = (
            self.key_func is default_key_func and type(self).make_key is BaseCache.make_key
        )
        self._own_validate = type(self).validate_key is not BaseCache.validate_key

    def _key(self, key: Any, version: int | None) -> str:
        if self._plain_keys:
            # Django's make_key with its default key function, without the two calls.
            key = f"{self.key_prefix}:{self.version if version is None else version}:{key}"
        else:
            key = self.make_key(key, version=version)
        # Django's validate_key checks memcached's rules character by character; run it
        # only when a key may break them (it then warns as usual), or when overridden. A
        # printable key without a space has none of the characters it warns about
        # (code points below 33 and 127).
        if (
            len(key) > _MEMCACHED_MAX_KEY
            or not key.isprintable()
            or " " in key
            or self._own_validate
        ):
            self.validate_key(key)
        return key

    @property
    def directory(self) -> str:
        """The cache directory."""
        return self._cache.directory

    def cache(self, name: str) -> Any:
        """`FanoutCache.cache(name)`."""
        return self._cache.cache(name)

    def deque(self, name: str, maxlen: int | None = None) -> Any:
        """`FanoutCache.deque(name)`."""
        return self._cache.deque(name, maxlen=maxlen)

    def index(self, name: str) -> Any:
        """`FanoutCache.index(name)`."""
        return self._cache.index(name)

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = True,
    ) -> bool:
        """Stores `value` if `key` is absent; `True` if stored."""
        key = self._key(key, version)
        return self._cache.add(key, value, self.get_backend_timeout(timeout), read, tag, retry)

    def get(
        self,
        key: Any,
        default: Any = None,
        version: int | None = None,
        read: bool = False,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """The value of `key` or `default` (with diskcache's `read`/`expire_time`/`tag`)."""
        return self._cache.get(self._key(key, version), default, read, expire_time, tag, retry)

    def read(self, key: Any, version: int | None = None) -> Any:
        """An open file for a value stored with `read=True`."""
        return self._cache.read(self._key(key, version))

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = True,
    ) -> bool:
        """Stores `value`; `True` unless the database stayed locked."""
        key = self._key(key, version)
        return self._cache.set(key, value, self.get_backend_timeout(timeout), read, tag, retry)

    def touch(
        self,
        key: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        retry: bool = True,
    ) -> bool:
        """Gives `key` a new timeout; `True` if it was there."""
        key = self._key(key, version)
        return self._cache.touch(key, self.get_backend_timeout(timeout), retry)

    def pop(
        self,
        key: Any,
        default: Any = None,
        version: int | None = None,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = True,
    ) -> Any:
        """Removes `key` and returns its value (or `default`)."""
        key = self._key(key, version)
        return self._cache.pop(key, default, expire_time, tag, retry)

    def delete(self, key: Any, version: int | None = None, retry: bool = True) -> bool:
        """Removes `key`; `True` if it was there."""
        return self._cache.delete(self._key(key, version), retry)

    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        default: Any = None,
        retry: bool = True,
    ) -> Any:
        """Adds `delta`; `ValueError` for a missing key (unless `default` is given)."""
        key = self._key(key, version)
        try:
            return self._cache.incr(key, delta, default, retry)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    def decr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        default: Any = None,
        retry: bool = True,
    ) -> Any:
        """Subtracts `delta`; `ValueError` for a missing key (unless `default` is given)."""
        return self.incr(key, -delta, version, default, retry)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        """Whether `key` is live in the cache."""
        return self._key(key, version) in self._cache

    def expire(self) -> int:
        """Removes expired entries; returns how many."""
        return self._cache.expire()

    def stats(self, enable: bool = True, reset: bool = False) -> tuple[int, int]:
        """`(hits, misses)`, as `Cache.stats`."""
        return self._cache.stats(enable=enable, reset=reset)

    def create_tag_index(self) -> None:
        """Indexes tags."""
        self._cache.create_tag_index()

    def drop_tag_index(self) -> None:
        """Drops the tag index."""
        self._cache.drop_tag_index()

    def evict(self, tag: Any) -> int:
        """Removes the entries tagged `tag`; returns how many."""
        return self._cache.evict(tag)

    def cull(self) -> int:
        """Culls every shard; returns how many entries were removed."""
        return self._cache.cull()

    def clear(self) -> int:  # type: ignore[override]
        """Removes every entry; returns how many."""
        return self._cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Closes this thread's connections."""
        self._cache.close()

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """Seconds to live for a Django `timeout` (`DEFAULT_TIMEOUT`: the configured
        default; `0`: expire at once; `None`: never)."""
        if timeout == DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        elif timeout == 0:
            timeout = -1
        return timeout

    def memoize(
        self,
        name: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        typed: bool = False,
        tag: Any = None,
        ignore: Any = (),
    ) -> Callable[..., Any]:
        """`Cache.memoize` through the Django key scheme (prefix, version)."""
        if callable(name):
            raise TypeError("name cannot be callable")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            base = (full_name(func),) if name is None else (name,)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                # Argument tuples make keys with spaces: prefixed and versioned, but not put
                # through validate_key (which would warn on every call), as diskcache does.
                key = self.make_key(wrapper.__cache_key__(*args, **kwargs), version=version)  # type: ignore[attr-defined]
                result = self._cache.get(key, ENOVAL, retry=True)
                if result is ENOVAL:
                    result = func(*args, **kwargs)
                    if timeout is None or timeout == DEFAULT_TIMEOUT or timeout > 0:
                        self._cache.set(
                            key, result, self.get_backend_timeout(timeout), tag=tag, retry=True
                        )
                return result

            def __cache_key__(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
                return args_to_key(base, args, kwargs, typed, ignore)

            wrapper.__cache_key__ = __cache_key__  # type: ignore[attr-defined]
            return wrapper

        return decorator
