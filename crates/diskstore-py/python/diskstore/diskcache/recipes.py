"""diskcache's recipes: cross-process averages, locks, semaphores, rate limits, barriers and
stampede-proof memoization, on any `Cache` or `FanoutCache`."""

from __future__ import annotations

import functools
import math
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from .core import ENOVAL, args_to_key, full_name

__all__ = [
    "Averager",
    "BoundedSemaphore",
    "Lock",
    "RLock",
    "barrier",
    "memoize_stampede",
    "throttle",
]

_POLL = 0.001
"""Seconds between two attempts to take a busy lock or semaphore."""


class Averager:
    """A running average kept under `key` as `(total, count)`, shared by processes."""

    def __init__(self, cache: Any, key: Any, expire: float | None = None, tag: Any = None):
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag

    def add(self, value: float) -> None:
        """Adds a value to the average."""
        with self._cache.transact(retry=True):
            total, count = self._cache.get(self._key, default=(0.0, 0))
            self._cache.set(
                self._key, (total + value, count + 1), expire=self._expire, tag=self._tag
            )

    def get(self) -> float | None:
        """The average so far (`None` before any value)."""
        total, count = self._cache.get(self._key, default=(0.0, 0), retry=True)
        return None if count == 0 else total / count

    def pop(self) -> float | None:
        """The average so far, removing it."""
        total, count = self._cache.pop(self._key, default=(0.0, 0), retry=True)
        return None if count == 0 else total / count


class _Context:
    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Lock(_Context):
    """A lock across threads and processes: held while `key` exists in the cache."""

    def __init__(self, cache: Any, key: Any, expire: float | None = None, tag: Any = None):
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag

    def acquire(self) -> None:
        """Waits until the lock is free, then takes it."""
        while not self._cache.add(self._key, None, expire=self._expire, tag=self._tag, retry=True):
            time.sleep(_POLL)

    def release(self) -> None:
        """Frees the lock (whoever holds it)."""
        self._cache.delete(self._key, retry=True)

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self._key in self._cache


def _owner() -> str:
    return f"{os.getpid()}-{threading.get_ident()}"


class RLock(_Context):
    """A re-entrant lock: the owning thread (of a process) may take it again."""

    def __init__(self, cache: Any, key: Any, expire: float | None = None, tag: Any = None):
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag

    def acquire(self) -> None:
        """Waits until the lock is free or ours, then takes it once more."""
        me = _owner()
        while True:
            with self._cache.transact(retry=True):
                owner, depth = self._cache.get(self._key, default=(None, 0))
                if depth == 0 or owner == me:
                    self._cache.set(self._key, (me, depth + 1), expire=self._expire, tag=self._tag)
                    return
            time.sleep(_POLL)

    def release(self) -> None:
        """Gives back one level; `AssertionError` if this thread does not hold it."""
        me = _owner()
        with self._cache.transact(retry=True):
            owner, depth = self._cache.get(self._key, default=(None, 0))
            assert owner == me and depth > 0, "cannot release un-acquired lock"
            self._cache.set(self._key, (owner, depth - 1), expire=self._expire, tag=self._tag)


class BoundedSemaphore(_Context):
    """A semaphore with `value` slots across processes."""

    def __init__(
        self, cache: Any, key: Any, value: int = 1, expire: float | None = None, tag: Any = None
    ):
        self._cache = cache
        self._key = key
        self._value = value
        self._expire = expire
        self._tag = tag

    def acquire(self) -> None:
        """Waits for a free slot and takes it."""
        while True:
            with self._cache.transact(retry=True):
                free = self._cache.get(self._key, default=self._value)
                if free > 0:
                    self._cache.set(self._key, free - 1, expire=self._expire, tag=self._tag)
                    return
            time.sleep(_POLL)

    def release(self) -> None:
        """Gives a slot back; `AssertionError` if none is taken."""
        with self._cache.transact(retry=True):
            free = self._cache.get(self._key, default=self._value)
            assert self._value > free, "cannot release un-acquired semaphore"
            self._cache.set(self._key, free + 1, expire=self._expire, tag=self._tag)


def throttle(
    cache: Any,
    count: int,
    seconds: float,
    name: str | None = None,
    expire: float | None = None,
    tag: Any = None,
    time_func: Callable[[], float] = time.time,
    sleep_func: Callable[[float], None] = time.sleep,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator letting at most `count` calls per `seconds` through, across processes
    (a token bucket kept in the cache); callers over the rate sleep."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        rate = count / float(seconds)
        key = full_name(func) if name is None else name
        cache.set(key, (time_func(), count), expire=expire, tag=tag, retry=True)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            while True:
                with cache.transact(retry=True):
                    last, tokens = cache.get(key)
                    now = time_func()
                    tokens += (now - last) * rate
                    delay = 0.0
                    if tokens > count:
                        cache.set(key, (now, count - 1), expire)
                    elif tokens >= 1:
                        cache.set(key, (now, tokens - 1), expire)
                    else:
                        delay = (1 - tokens) / rate
                if not delay:
                    return func(*args, **kwargs)
                sleep_func(delay)

        return wrapper

    return decorator


def barrier(
    cache: Any,
    lock_factory: Callable[..., Any],
    name: str | None = None,
    expire: float | None = None,
    tag: Any = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator running the function under a lock made by `lock_factory(cache, key,
    expire=, tag=)` (e.g. `Lock`), so one caller at a time runs it."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        key = full_name(func) if name is None else name
        lock = lock_factory(cache, key, expire=expire, tag=tag)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return func(*args, **kwargs)

        return wrapper

    return decorator


def memoize_stampede(
    cache: Any,
    expire: float,
    name: str | None = None,
    typed: bool = False,
    tag: Any = None,
    beta: float = 1,
    ignore: Any = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`memoize` with early probabilistic recomputation: as an entry nears its expiry, a
    caller may (with rising probability, scaled by how long the function took and `beta`)
    recompute it in a background thread while everyone still gets the cached result."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        base = (full_name(func),) if name is None else (name,)

        def timed(*args: Any, **kwargs: Any) -> tuple[Any, float]:
            start = time.time()
            result = func(*args, **kwargs)
            return result, time.time() - start

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = wrapper.__cache_key__(*args, **kwargs)  # type: ignore[attr-defined]
            pair, expire_time = cache.get(key, default=ENOVAL, expire_time=True, retry=True)
            if pair is not ENOVAL:
                result, took = pair
                ttl = expire_time - time.time()
                if -took * beta * math.log(random.random()) < ttl:
                    return result
                if cache.add(key + (ENOVAL,), None, expire=took, retry=True):

                    def recompute() -> None:
                        with cache:
                            cache.set(
                                key, timed(*args, **kwargs), expire=expire, tag=tag, retry=True
                            )

                    threading.Thread(target=recompute, daemon=True).start()
                return result
            pair = timed(*args, **kwargs)
            cache.set(key, pair, expire=expire, tag=tag, retry=True)
            return pair[0]

        def __cache_key__(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            return args_to_key(base, args, kwargs, typed, ignore)

        wrapper.__cache_key__ = __cache_key__  # type: ignore[attr-defined]
        return wrapper

    return decorator
