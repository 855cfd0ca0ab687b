"""`Deque` and `Index`: diskcache's persistent sequence and mapping, built on `Cache`."""

from __future__ import annotations

import operator
import shutil
from collections import OrderedDict
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    MutableMapping,
    Sequence,
    ValuesView,
)
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .core import _VANISHED, ENOVAL, Cache, Timeout

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Deque", "Index"]


def _sequence_compare(test: Callable[[Any, Any], bool], doc: str) -> Callable[[Any, Any], Any]:
    def compare(self: Deque, that: Any) -> Any:
        if not isinstance(that, Sequence):
            return NotImplemented
        mine, theirs = len(self), len(that)
        if mine != theirs and test in (operator.eq, operator.ne):
            return test is operator.ne
        for a, b in zip(self, that):
            if a != b:
                return test(a, b)
        return test(mine, theirs)

    compare.__name__ = f"__{test.__name__}__"
    compare.__doc__ = f"True if the deque is {doc} `that` (compared as sequences)."
    return compare


class Deque(Sequence):
    """A persistent `collections.deque`: values kept in a `Cache` under queue keys, so
    that every process opening the directory sees the same deque."""

    def __init__(
        self, iterable: Iterable[Any] = (), directory: Any = None, maxlen: int | None = None
    ):
        self._cache = Cache(directory, eviction_policy="none")
        self._maxlen: float = float("inf") if maxlen is None else maxlen
        self._extend(iterable)

    @classmethod
    def fromcache(
        cls, cache: Cache, iterable: Iterable[Any] = (), maxlen: int | None = None
    ) -> Deque:
        """A deque over an existing cache."""
        self = cls.__new__(cls)
        self._cache = cache
        self._maxlen = float("inf") if maxlen is None else maxlen
        self._extend(iterable)
        return self

    @property
    def cache(self) -> Cache:
        """The cache holding the values."""
        return self._cache

    @property
    def directory(self) -> str:
        """The cache directory."""
        return self._cache.directory

    @property
    def maxlen(self) -> float:
        """The most values kept (`inf`: unbounded); setting it drops values from the left."""
        return self._maxlen

    @maxlen.setter
    def maxlen(self, value: float) -> None:
        self._maxlen = value
        with self._cache.transact(retry=True):
            while len(self._cache) > self._maxlen:
                self._popleft()

    def _at(self, index: int, action: Callable[[Any], Any]) -> Any:
        if not isinstance(index, int):
            raise TypeError(f"deque indices must be integers, not {type(index).__name__}")
        size = len(self)
        if index >= size or index < -size:
            raise IndexError("deque index out of range")
        if index >= 0:
            keys, steps = self._cache.iterkeys(), index
        else:
            keys, steps = self._cache.iterkeys(reverse=True), -index - 1
        for key in keys:
            if steps == 0:
                try:
                    return action(key)
                except KeyError:
                    continue
            steps -= 1
        raise IndexError("deque index out of range")

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        return self._at(index, self._cache.__getitem__)

    def __setitem__(self, index: int, value: Any) -> None:
        self._at(index, lambda key: self._cache.__setitem__(key, value))

    def __delitem__(self, index: int) -> None:
        self._at(index, self._cache.__delitem__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(directory={self.directory!r})"

    __eq__ = _sequence_compare(operator.eq, "equal to")  # type: ignore[assignment]
    __ne__ = _sequence_compare(operator.ne, "not equal to")  # type: ignore[assignment]
    __lt__ = _sequence_compare(operator.lt, "less than")
    __gt__ = _sequence_compare(operator.gt, "greater than")
    __le__ = _sequence_compare(operator.le, "less than or equal to")
    __ge__ = _sequence_compare(operator.ge, "greater than or equal to")
    __hash__ = None  # type: ignore[assignment]

    def __iadd__(self, iterable: Iterable[Any]) -> Self:
        self._extend(iterable)
        return self

    def _values(self, keys: Iterable[Any]) -> Iterator[Any]:
        cache = self._cache
        for key in keys:
            value = cache.get(key, ENOVAL, retry=True)
            if value is not ENOVAL:
                yield value

    def __iter__(self) -> Iterator[Any]:
        return self._values(self._cache.iterkeys())

    def __reversed__(self) -> Iterator[Any]:
        return self._values(self._cache.iterkeys(reverse=True))

    def __len__(self) -> int:
        return len(self._cache)

    def __getstate__(self) -> tuple[str, float]:
        return (self.directory, self.maxlen)

    def __setstate__(self, state: tuple[str, float]) -> None:
        directory, maxlen = state
        self.__init__(directory=directory, maxlen=None if maxlen == float("inf") else maxlen)  # type: ignore[misc]

    def append(self, value: Any) -> None:
        """Adds `value` on the right (dropping from the left past `maxlen`)."""
        if self._maxlen == float("inf"):
            self._cache.push(value, retry=True)
            return
        with self._cache.transact(retry=True):
            self._cache.push(value, retry=True)
            if len(self._cache) > self._maxlen:
                self._popleft()

    def appendleft(self, value: Any) -> None:
        """Adds `value` on the left (dropping from the right past `maxlen`)."""
        if self._maxlen == float("inf"):
            self._cache.push(value, side="front", retry=True)
            return
        with self._cache.transact(retry=True):
            self._cache.push(value, side="front", retry=True)
            if len(self._cache) > self._maxlen:
                self._pop()

    def clear(self) -> None:
        """Removes every value."""
        self._cache.clear(retry=True)

    def copy(self) -> Deque:
        """Another deque object on the same directory."""
        maxlen = None if self.maxlen == float("inf") else int(self.maxlen)
        return type(self)(directory=self.directory, maxlen=maxlen)

    def count(self, value: Any) -> int:
        """How many values equal `value`."""
        return sum(1 for item in self if item == value)

    def extend(self, iterable: Iterable[Any]) -> None:
        """Appends each value of `iterable` on the right."""
        for value in iterable:
            self._append(value)

    def extendleft(self, iterable: Iterable[Any]) -> None:
        """Appends each value of `iterable` on the left (so they end up reversed)."""
        for value in iterable:
            self._appendleft(value)

    def _end(self, side: str, remove: bool, what: str) -> Any:
        value = self._cache._end_value(side == "front", remove)
        if value is ENOVAL:
            raise IndexError(f"{what} from an empty deque")
        return value

    def peek(self) -> Any:
        """The rightmost value; `IndexError` if empty."""
        return self._end("back", False, "peek")

    def peekleft(self) -> Any:
        """The leftmost value; `IndexError` if empty."""
        return self._end("front", False, "peek")

    def pop(self) -> Any:  # type: ignore[override]
        """Removes and returns the rightmost value; `IndexError` if empty."""
        # `Cache._end_value` inlined for its common case (one native call, no retry):
        # one Python call less per pop.
        cache = self._cache
        try:
            value = cache._core.end_value(False, True, cache._plain_disk, ENOVAL)
        except Timeout:
            value = cache._end_value(False, True)
        if type(value) is tuple:  # cells for `Disk.fetch` (ENOVAL is a tuple subclass)
            value = cache._end_cells(value, True)
            if value is _VANISHED:
                value = cache._end_value(False, True)
        if value is ENOVAL:
            raise IndexError("pop from an empty deque")
        return value

    def popleft(self) -> Any:
        """Removes and returns the leftmost value; `IndexError` if empty."""
        # As `pop`, from the other end.
        cache = self._cache
        try:
            value = cache._core.end_value(True, True, cache._plain_disk, ENOVAL)
        except Timeout:
            value = cache._end_value(True, True)
        if type(value) is tuple:
            value = cache._end_cells(value, True)
            if value is _VANISHED:
                value = cache._end_value(True, True)
        if value is ENOVAL:
            raise IndexError("pop from an empty deque")
        return value

    _append = append
    _appendleft = appendleft
    _clear = clear
    _extend = extend
    _pop = pop
    _popleft = popleft

    def remove(self, value: Any) -> None:
        """Removes the first value equal to `value`; `ValueError` if there is none."""
        cache = self._cache
        for key in cache.iterkeys():
            item = cache.get(key, ENOVAL, retry=True)
            if item is not ENOVAL and item == value and cache.delete(key, retry=True):
                return
        raise ValueError("deque.remove(value): value not in deque")

    def reverse(self) -> None:
        """Reverses the deque in place (through a temporary deque)."""
        temp = Deque(iterable=reversed(self))
        try:
            self._clear()
            self._extend(temp)
        finally:
            temp._cache.close()
            shutil.rmtree(temp.directory, ignore_errors=True)

    def rotate(self, steps: int = 1) -> None:
        """Moves `steps` values from the right end to the left (negative: the other way)."""
        if not isinstance(steps, int):
            raise TypeError(f"integer argument expected, got {type(steps).__name__}")
        size = len(self)
        if not size:
            return
        if steps >= 0:
            move, put = self._pop, self._appendleft
            steps %= size
        else:
            move, put = self._popleft, self._append
            steps = (-steps) % size
        for _ in range(steps):
            try:
                value = move()
            except IndexError:
                return
            put(value)

    @contextmanager
    def transact(self) -> Iterator[None]:
        """A block run in one transaction (other processes wait)."""
        with self._cache.transact(retry=True):
            yield


class Index(MutableMapping):
    """A persistent ordered mapping (insertion order) in a `Cache` directory.

    `Index([directory], [mapping or pairs], **kwargs)`, like `dict(...)` with an optional
    directory first."""

    def __init__(self, *args: Any, **kwargs: Any):
        if args and isinstance(args[0], (bytes, str)):
            directory: Any = args[0]
            args = args[1:]
        else:
            if args and args[0] is None:
                args = args[1:]
            directory = None
        self._cache = Cache(directory, eviction_policy="none")
        self._update(*args, **kwargs)

    _update = MutableMapping.update

    @classmethod
    def fromcache(cls, cache: Cache, *args: Any, **kwargs: Any) -> Index:
        """An index over an existing cache."""
        self = cls.__new__(cls)
        self._cache = cache
        self._update(*args, **kwargs)
        return self

    @property
    def cache(self) -> Cache:
        """The cache holding the items."""
        return self._cache

    @property
    def directory(self) -> str:
        """The cache directory."""
        return self._cache.directory

    def __getitem__(self, key: Any) -> Any:
        return self._cache[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._cache.set(key, value, retry=True)

    def __delitem__(self, key: Any) -> None:
        del self._cache[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._cache

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The value of `key`, first storing `default` if it is missing (atomic)."""
        cache = self._cache
        while True:
            value = cache.get(key, ENOVAL, retry=True)
            if value is not ENOVAL:
                return value
            cache.add(key, default, retry=True)

    def peekitem(self, last: bool = True) -> tuple[Any, Any]:
        """The last (or first) `(key, value)` in insertion order; `KeyError` if empty."""
        return self._cache.peekitem(last, retry=True)

    def pop(self, key: Any, default: Any = ENOVAL) -> Any:
        """Removes `key` and returns its value (or `default`; `KeyError` without one)."""
        value = self._cache.pop(key, default=default, retry=True)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        """Removes and returns the last (or first) `(key, value)`; `KeyError` if empty."""
        cache = self._cache
        with cache.transact(retry=True):
            key, value = cache.peekitem(last=last)
            del cache[key]
        return key, value

    def push(self, value: Any, prefix: str | None = None, side: str = "back") -> Any:
        """`Cache.push`: appends to a queue of generated keys; returns the key."""
        return self._cache.push(value, prefix, side, retry=True)

    def pull(
        self, prefix: str | None = None, default: Any = (None, None), side: str = "front"
    ) -> Any:
        """`Cache.pull`: removes and returns `(key, value)` from a queue."""
        return self._cache.pull(prefix, default, side, retry=True)

    def clear(self) -> None:
        """Removes every item."""
        self._cache.clear(retry=True)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cache)

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def keys(self) -> KeysView[Any]:
        """A live view of the keys."""
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        """A live view of the values."""
        return ValuesView(self)

    def items(self) -> ItemsView[Any, Any]:
        """A live view of the items."""
        return ItemsView(self)

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> str:
        return self.directory

    def __setstate__(self, state: str) -> None:
        self.__init__(state)  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MutableMapping) and not hasattr(other, "keys"):
            return NotImplemented
        if len(self) != len(other):  # type: ignore[arg-type]
            return False
        if isinstance(other, (Index, OrderedDict)):
            ours = ((k, self[k]) for k in self)
            theirs = ((k, other[k]) for k in other)
            return all(a == x and b == y for (a, b), (x, y) in zip(ours, theirs))
        return all(self[k] == other.get(k, ENOVAL) for k in self)  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def memoize(
        self, name: str | None = None, typed: bool = False, ignore: Any = ()
    ) -> Callable[..., Any]:
        """`Cache.memoize` without expiry or tag."""
        return self._cache.memoize(name, typed, ignore=ignore)

    @contextmanager
    def transact(self) -> Iterator[None]:
        """A block run in one transaction (other processes wait)."""
        with self._cache.transact(retry=True):
            yield

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.directory!r})"
