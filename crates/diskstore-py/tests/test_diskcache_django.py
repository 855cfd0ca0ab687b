"""diskstore.diskcache.DjangoCache as a Django cache backend, against python-diskcache's
DjangoCache: the same calls through Django's cache API on both, results compared."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(CACHES={}, USE_TZ=True)
    django.setup()

import hypothesis.strategies as st
from diskcache_support import same
from diskstore import diskcache as dc
from django.core.cache import CacheHandler
from django.core.cache.backends.base import CacheKeyWarning
from hypothesis import given
from hypothesis import settings as hsettings


def _caches(tmp_path: Path, **extra: Any) -> Any:
    conf = {
        name: {"BACKEND": backend, "LOCATION": str(tmp_path / name), "SHARDS": 4, **extra}
        for name, backend in (
            ("ours", "diskstore.diskcache.DjangoCache"),
            ("theirs", "diskcache.DjangoCache"),
        )
    }
    handler = CacheHandler(conf)
    return handler["ours"], handler["theirs"]


def test_backend_is_exported_and_loaded_by_django(tmp_path: Path) -> None:
    ours, _ = _caches(tmp_path)
    assert isinstance(ours, dc.DjangoCache)
    assert ours.directory == str(tmp_path / "ours")
    assert "DjangoCache" in dc.__all__


def test_django_cache_api_matches(tmp_path: Path) -> None:
    ours, theirs = _caches(tmp_path, KEY_PREFIX="p", VERSION=2, TIMEOUT=100)
    calls = [
        lambda c: c.set("a", 1),
        lambda c: c.get("a"),
        lambda c: c.get("a", version=3),
        lambda c: c.add("a", 2),
        lambda c: c.add("b", [1, 2]),
        lambda c: c.get_many(["a", "b", "missing"]),
        lambda c: c.set_many({"c": 3, "d": 4}),
        lambda c: c.incr("c", 10),
        lambda c: c.decr("c"),
        lambda c: c.incr("missing"),
        lambda c: c.has_key("d"),
        lambda c: c.touch("d", 0),
        lambda c: c.has_key("d"),
        lambda c: c.touch("missing"),
        lambda c: c.delete("a"),
        lambda c: c.delete("a"),
        lambda c: c.delete_many(["b", "c"]),
        lambda c: c.get_or_set("e", 5),
        lambda c: c.get_or_set("e", 6),
        lambda c: c.set("f", "v", timeout=None),
        lambda c: c.get("f", expire_time=True),
        lambda c: c.set("g", "v", timeout=0),
        lambda c: c.get("g", "gone"),
        lambda c: c.incr_version("e"),
        lambda c: c.get("e", version=3),
        lambda c: c.pop("e", version=3),
        lambda c: c.set("t", 1, tag="x"),
        lambda c: c.evict("x"),
        lambda c: c.stats(),
        lambda c: c.expire(),
        lambda c: c.cull(),
        lambda c: c.clear(),
        lambda c: c.get("f"),
    ]
    for call in calls:
        same(ours, theirs, call)


def test_keys_are_prefixed_versioned_and_validated(tmp_path: Path) -> None:
    ours, _ = _caches(tmp_path, KEY_PREFIX="pre", VERSION=7)
    ours.set("k", "v")
    assert ours._cache.get("pre:7:k") == "v"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ours.set("has space", 1)
    assert any(issubclass(w.category, CacheKeyWarning) for w in seen)


@pytest.mark.parametrize(
    "key",
    [
        "plain",
        "has space",
        "tab\tkey",
        "nul\x00",
        "del\x7f",
        "ключ",
        "nbsp\xa0",
        "ls\u2028",
        "x" * 300,
    ],
)
def test_keys_warn_exactly_as_django_validates_them(tmp_path: Path, key: str) -> None:
    """Our key check skips Django's `validate_key` for keys that cannot break memcached's
    rules; the warnings must still be Django's own, key for key (its local-memory backend
    is the reference)."""
    ours, _ = _caches(tmp_path)
    reference = CacheHandler({"m": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})[
        "m"
    ]

    def warned(cache: Any) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            cache.set(key, 1)
            cache.get(key)
        return [str(w.message) for w in seen if issubclass(w.category, CacheKeyWarning)]

    assert warned(ours) == warned(reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        assert ours.get(key) == 1


def test_memoize_and_sub_collections(tmp_path: Path) -> None:
    ours, theirs = _caches(tmp_path)
    for c in (ours, theirs):
        calls: list[int] = []

        @c.memoize(timeout=100, tag="m")
        def f(x: int, calls: list[int] = calls) -> int:
            calls.append(x)
            return x + 1

        assert f(1) == 2 and f(1) == 2 and calls == [1]
        c.deque("q").append(1)
        c.index("i")["k"] = "v"
        c.cache("c").set("x", 1)
    same(ours, theirs, lambda c: (list(c.deque("q")), dict(c.index("i")), c.cache("c").get("x")))
    same(ours, theirs, lambda c: c.evict("m"))


@hsettings(max_examples=30, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["set", "get", "add", "delete", "incr", "has_key", "touch"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(-2, 2),
        ),
        max_size=20,
    )
)
def test_random_sequences_match(tmp_path_factory: Any, ops: list[Any]) -> None:
    ours, theirs = _caches(tmp_path_factory.mktemp("dj"))
    for name, key, n in ops:
        if name in ("set", "add"):
            same(ours, theirs, lambda c, name=name, key=key, n=n: getattr(c, name)(key, n))
        elif name in ("incr",):
            same(ours, theirs, lambda c, key=key, n=n: c.incr(key, n))
        else:
            same(ours, theirs, lambda c, name=name, key=key: getattr(c, name)(key))
    same(ours, theirs, lambda c: c.get_many(["a", "b", "c"]))


def test_close_and_reuse(tmp_path: Path) -> None:
    ours, _ = _caches(tmp_path)
    ours.set("x", 1)
    ours.close()
    assert ours.get("x") == 1
    with pytest.raises(ValueError):
        ours.incr("nope")
