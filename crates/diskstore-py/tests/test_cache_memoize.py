"""memoize: hit/miss counts on functions, methods and async functions, typed keys,
ignored arguments, expiry and tags."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from diskstore import DiskCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path, clock: FakeClock) -> DiskCache:
    return DiskCache(str(tmp_path / "m.db"), None, clock=clock)


def test_a_function_runs_once_per_distinct_arguments(cache: DiskCache) -> None:
    calls: list[tuple[int, int]] = []

    @cache.memoize()
    def add(a: int, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    assert add(1, 2) == 3
    assert add(1, 2) == 3
    assert add(1, b=2) == 3  # keyword form is a different key
    assert add(2) == 2
    assert add(2) == 2
    assert calls == [(1, 2), (1, 2), (2, 0)]
    assert cache.stats() == (2, 3)
    assert add.__name__ == "add"
    assert add.__cache_key__(2) in cache  # type: ignore[attr-defined]


def test_typed_keeps_int_and_float_apart(cache: DiskCache) -> None:
    calls = []

    @cache.memoize(typed=True)
    def f(x: float) -> str:
        calls.append(x)
        return repr(x)

    assert f(1) == "1"
    assert f(1.0) == "1.0"
    assert len(calls) == 2


def test_expire_and_tag_apply_to_memoized_results(cache: DiskCache, clock: FakeClock) -> None:
    calls = []

    @cache.memoize(expire=10, tag="t")
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    clock.now += 9
    f(1)
    clock.now += 1
    f(1)
    assert calls == [1, 1]
    assert cache.evict("t") == 1
    f(1)
    assert calls == [1, 1, 1]


@dataclass(frozen=True)
class Account:
    name: str

    def balance(self, cache: DiskCache, calls: list[str]) -> int:
        @cache.memoize(name="Account.balance", ignore={1})
        def compute(self: Account, calls: list[str]) -> int:
            calls.append(self.name)
            return len(self.name)

        return compute(self, calls)


def test_methods_are_keyed_by_instance(cache: DiskCache) -> None:
    calls: list[str] = []
    a, b = Account("alice"), Account("bob")
    assert a.balance(cache, calls) == 5
    assert a.balance(cache, calls) == 5
    assert b.balance(cache, calls) == 3
    assert calls == ["alice", "bob"]


def test_async_functions_are_awaited_once(cache: DiskCache) -> None:
    calls = []

    @cache.memoize()
    async def fetch(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return x * 10

    async def main() -> list[int]:
        return [await fetch(1), await fetch(1), await fetch(2)]

    assert asyncio.run(main()) == [10, 10, 20]
    assert calls == [1, 2]


def test_memoize_without_parentheses_is_a_clear_error(cache: DiskCache) -> None:
    with pytest.raises(TypeError):

        @cache.memoize  # type: ignore[arg-type]
        def f() -> None: ...
