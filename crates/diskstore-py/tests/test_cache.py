"""DiskCache: the diskstore 0.1.0 API (quirks included), python-diskcache's surface,
expiry with an injected clock, limits and eviction, tags, stats and transactions."""

from __future__ import annotations

import math
import pickle
import threading
from pathlib import Path

import diskstore
import pytest
from diskstore import DiskCache


class FakeClock:
    """A time source the test moves by hand (seconds since the epoch)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "cache.db")


@pytest.fixture
def cache(path: str, clock: FakeClock) -> DiskCache:
    return DiskCache(path, clock=clock)


def test_the_0_1_0_api_runs_as_written(path: str, clock: FakeClock) -> None:
    with DiskCache(path, default_expiration=60.0, clock=clock) as c:
        assert c.filename == path
        c.set("k", {"any": "object"})
        assert c.get("k") == {"any": "object"}
        assert c.get("missing") is None
        assert c.get("missing", "dflt") == "dflt"
        assert c.add("k", 1) is False
        assert c.add("new", 2) is True
        assert c.delete("new") is True
        assert c.delete("new") is False
        c.touch("k", 120)
        assert len(c) == 1
        assert list(c) == ["k"]
        assert c.check() == []
        c.delete_expired()
        c.clear()
        assert len(c) == 0


def test_expiry_boundaries_with_the_default_and_per_entry(
    cache: DiskCache, clock: FakeClock
) -> None:
    cache.set("default", 1)  # 60 s default
    cache.set("short", 2, expire=10)
    cache.set("never", 3, expire=0)  # 0.1.0: a falsy expire means never
    clock.advance(10 - 1e-6)
    assert cache.get("short") == 2
    clock.advance(1e-6)
    assert cache.get("short") is None
    assert "short" not in cache
    clock.advance(50)
    assert cache.get("default") is None
    clock.advance(10**9)
    assert cache.get("never") == 3
    assert len(cache) == 1
    assert list(cache) == ["never"]
    assert cache.expire() == 2
    assert cache.delete_expired() == 0


def test_add_never_expires_by_default_and_replaces_expired_entries(
    cache: DiskCache, clock: FakeClock
) -> None:
    assert cache.add("a", "v") is True
    clock.advance(10**6)
    assert cache.get("a") == "v"
    assert cache.add("b", "old", expire=5) is True
    clock.advance(5)
    assert cache.add("b", "new") is True
    assert cache.get("b") == "new"


def test_touch_uses_the_default_for_none_and_never_for_zero(
    cache: DiskCache, clock: FakeClock
) -> None:
    cache.set("k", 1, expire=5)
    assert cache.touch("k") is True  # default 60 s from now
    clock.advance(59)
    assert cache.get("k") == 1
    assert cache.touch("k", 0) is True
    clock.advance(10**6)
    assert cache.get("k") == 1
    assert cache.touch("absent") is False


def test_default_expiration_none_means_never(path: str, clock: FakeClock) -> None:
    c = DiskCache(path, None, clock=clock)
    c["k"] = "v"
    clock.advance(10**8)
    assert c["k"] == "v"
    assert c.default_expiration is None


def test_mapping_style_access(cache: DiskCache) -> None:
    cache["a"] = b"bytes"
    assert cache["a"] == b"bytes"
    assert "a" in cache
    del cache["a"]
    assert "a" not in cache
    with pytest.raises(KeyError):
        cache["a"]
    with pytest.raises(KeyError):
        del cache["a"]
    cache["x"] = 1
    assert cache.pop("x") == 1
    assert cache.pop("x") is None
    assert cache.pop("x", "gone") == "gone"


def test_native_types_round_trip_and_others_are_pickled(cache: DiskCache) -> None:
    values = [
        0,
        -(2**63),
        2**63 - 1,
        2**80,
        1.5,
        float("inf"),
        "text",
        b"\x00raw",
        None,
        True,
        (1, "a"),
        [1, 2],
        {"k": {1, 2}},
        float("nan"),
    ]
    for i, v in enumerate(values):
        cache.set(i, v)
    for i, v in enumerate(values):
        got = cache.get(i)
        if isinstance(v, float) and math.isnan(v):
            assert isinstance(got, float) and math.isnan(got)
        else:
            assert got == v and type(got) is type(v)
    # Keys: native, and pickled for anything else.
    cache[(1, 2)] = "tuple key"
    cache[frozenset({3})] = "set key"
    assert cache[(1, 2)] == "tuple key"
    assert cache[frozenset({3})] == "set key"
    assert (1, 2) in set(cache)
    # 1, 1.0 and True are one key, as in a dict.
    cache[1] = "one"
    assert cache[1.0] == "one" and cache[True] == "one"


def test_incr_and_decr(cache: DiskCache) -> None:
    assert cache.incr("n") == 1
    assert cache.incr("n", 5) == 6
    assert cache.decr("n", 2) == 4
    assert cache.incr("m", 1, default=10) == 11
    with pytest.raises(KeyError):
        cache.incr("absent", default=None)
    assert "absent" not in cache
    cache["s"] = "text"
    with pytest.raises(TypeError):
        cache.incr("s")
    cache[(1, 2)] = 0
    assert cache.incr((1, 2)) == 1
    assert (1, 2) in list(cache)


def test_size_limit_and_eviction_policies(path: str) -> None:
    c = DiskCache(path, None, size_limit=1000, eviction_policy="least-recently-used")
    assert c.size_limit == 1000 and c.eviction_policy == "least-recently-used"
    c["hot"] = b"x" * 90
    for i in range(20):
        c[f"k{i}"] = b"x" * 90  # about 100 bytes each with the key and kind cell
        assert c.volume() <= 1000
        assert c["hot"] == b"x" * 90  # used all the time: never the LRU victim
    assert "k0" not in c and "k19" in c
    assert 8 <= len(c) <= 10
    with pytest.raises(diskstore.Error):
        c["huge"] = b"x" * 2000
    assert "k19" in c


def test_least_recently_stored_ignores_reads(path: str) -> None:
    c = DiskCache(path, None, count_limit=3)
    assert c.eviction_policy == "least-recently-stored"
    for k in "abc":
        c[k] = 1
    assert c["a"] == 1
    c["d"] = 1
    assert sorted(c) == ["b", "c", "d"]


def test_policy_none_refuses_instead_of_dropping(path: str) -> None:
    c = DiskCache(path, None, count_limit=2, eviction_policy="none")
    c["a"], c["b"] = 1, 2
    with pytest.raises(diskstore.Error):
        c["c"] = 3
    assert sorted(c) == ["a", "b"]


def test_unknown_policy_is_refused(path: str) -> None:
    with pytest.raises(diskstore.Error):
        DiskCache(path, eviction_policy="lru")


def test_tags_and_evict(cache: DiskCache) -> None:
    for i in range(10):
        cache.set(i, i, tag="even" if i % 2 == 0 else "odd")
    cache.set("untagged", 1)
    assert cache.evict("even") == 5
    assert sorted(k for k in cache if isinstance(k, int)) == [1, 3, 5, 7, 9]
    assert cache.evict("even") == 0


def test_stats_across_two_handles(path: str) -> None:
    a = DiskCache(path)
    b = DiskCache(path)
    a["k"] = 1
    a.get("k")
    a.get("x")
    b.get("k")
    b.get("k")
    del b  # its counts are written out when it goes away
    assert a.stats() == (3, 1)
    assert a.stats(reset=True) == (3, 1)
    assert a.stats() == (0, 0)
    a.stats(enable=False)
    a.get("k")
    assert a.stats() == (0, 0)


def test_transact_is_all_or_nothing(cache: DiskCache) -> None:
    cache["a"] = 1
    with pytest.raises(RuntimeError), cache.transact():
        cache["b"] = 2
        del cache["a"]
        raise RuntimeError("abort")
    assert cache["a"] == 1 and "b" not in cache
    with cache.transact(), cache.transact():
        cache["b"] = 2
    assert cache["b"] == 2


def test_iteration_orders_and_reversed(cache: DiskCache, clock: FakeClock) -> None:
    for i in range(600):
        cache.set(i, i, expire=1 if i % 2 else 0)
    clock.advance(1)
    assert list(cache) == list(range(0, 600, 2))
    assert list(reversed(cache)) == list(range(598, -1, -2))


def test_iteration_ends_when_each_key_read_adds_one(cache: DiskCache) -> None:
    for i in range(300):
        cache[i] = i
    seen = []
    for k in cache:
        seen.append(k)
        cache[1000 + k] = 0
    assert seen == list(range(300))
    assert len(cache) == 600


def test_values_are_pickled_with_protocol_5_bytes_in_the_file(path: str) -> None:
    c = DiskCache(path)
    c["k"] = ("a", 1)
    c.close()
    del c  # Python's sqlite3 must not share the file with a live handle (sqlite_guard)
    import sqlite3

    con = sqlite3.connect(path)
    value, kind = con.execute('SELECT value, kind FROM "Cache"').fetchone()
    con.close()
    assert kind == 1
    assert pickle.loads(value) == ("a", 1)


def test_iteration_visits_a_key_stored_after_the_newest_was_deleted(path: str) -> None:
    """The documented exception to "keys stored meanwhile are not visited": SQLite gives a
    new row the rowid of a deleted newest row, which is inside the pass (on a page not read
    yet; keys are read 256 at a time)."""
    c = DiskCache(path, default_expiration=0)
    for k in range(300):
        c[k] = 1
    seen = []
    for k in c:
        seen.append(k)
        if k == 0:
            del c[299]
            c["new"] = 1  # takes the rowid 299 had
            c["later"] = 1  # past the end of the pass
    assert seen == [*range(299), "new"]


def test_threads_can_share_one_key_iterator(cache: DiskCache) -> None:
    n = 2000  # several pages
    for i in range(n):
        cache[i] = i
    it = iter(cache)
    got: list[list[int]] = [[], [], [], []]
    errors: list[BaseException] = []

    def drain(out: list[int]) -> None:
        try:
            out.extend(it)  # one next() at a time, racing the other threads
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=drain, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = sorted(k for out in got for k in out)
    assert every == list(range(n))  # each key once, none lost, whatever the interleaving
    for out in got:
        assert out == sorted(out)  # each thread sees its share in order


def test_touch_makes_an_expired_entry_still_stored_readable_again(
    cache: DiskCache, clock: FakeClock
) -> None:
    # diskstore 0.1.0's touch only set the new expiry, so an entry that had expired but
    # was not yet removed came back.
    cache.set("k", "v", expire=1)
    clock.now += 2
    assert cache.get("k") is None
    assert cache.touch("k", 10) is True
    assert cache.get("k") == "v"
    clock.now += 11
    assert cache.get("k") is None
    assert cache.delete_expired() == 1
    assert cache.touch("k", 10) is False  # gone for good
