"""One conformance suite for every backend: the store on SQLite and PostgreSQL, the cache
on SQLite, PostgreSQL and Redis; the server backends run it twice, in plain text and over
TLS (`*-tls`: `DISKSTORE_TEST_POSTGRES_TLS`, `DISKSTORE_TEST_REDIS_TLS`). A backend that cannot offer an operation must raise
`NotSupportedError` naming it (checked at the end), never change its meaning."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import diskstore
import pytest
from backend_servers import server_url, unique
from diskstore import DiskCache, DiskRead, DiskStore, NotSupportedError
from diskstore.config import BaseConfig

# The functional form keeps real types under `from __future__ import annotations`, so
# the fields get typed columns (bigint, double precision, text on PostgreSQL).
Point = NamedTuple("Point", [("x", int), ("y", float), ("label", str)])  # noqa: UP014
Point.__new__.__defaults__ = ("origin",)


# The environment variable of each server backend's URL, plain and over TLS.
SERVER_VARS = {
    "postgres": "DISKSTORE_TEST_POSTGRES",
    "postgres-tls": "DISKSTORE_TEST_POSTGRES_TLS",
    "redis": "DISKSTORE_TEST_REDIS",
    "redis-tls": "DISKSTORE_TEST_REDIS_TLS",
}


@pytest.fixture(params=["sqlite", "postgres", "postgres-tls"])
def location(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], str]:
    """Where a new store lives: a file, or the test PostgreSQL database (a fresh table
    per store: pass the returned name as `tablename`)."""
    if request.param == "sqlite":
        return lambda: str(tmp_path / f"{unique('s')}.db")
    url = server_url(SERVER_VARS[request.param])
    return lambda: url


def open_store(location: Callable[[], str], value_class: Any = None) -> DiskStore:
    """A new store: raw values (0.7.0's BaseConfig) or a NamedTuple value class."""
    if value_class is None:
        return DiskStore(location(), config=BaseConfig(tablename=unique("t")))
    return DiskStore(location(), value_class, unique("t"))


def test_store_classes_on_every_backend(location: Callable[[], str]) -> None:
    """`DiskStore(url)` and `DiskRead(url)` are instances of the classes that opened them
    (user type checks and `isinstance` branches work on every backend)."""
    s = open_store(location)
    assert isinstance(s, DiskStore) and isinstance(s, DiskRead)
    assert isinstance(s, diskstore.diskstore.DiskStore)
    r = s.get_readonly_instance()
    assert isinstance(r, DiskRead) and not isinstance(r, DiskStore)
    assert issubclass(type(s), DiskStore) and issubclass(type(r), DiskRead)
    assert not isinstance(DiskCache, DiskStore) and not isinstance(object(), DiskRead)


def test_read_only_stores_create_nothing_and_read_what_is_there(
    location: Callable[[], str],
) -> None:
    """`DiskRead` of a table that does not exist is a SchemaError and creates nothing, on
    a file as on the server; of one that exists it reads, and refuses writes."""
    where = location()
    name = unique("t")
    DiskStore(where, config=BaseConfig(tablename=name))["k"] = 1
    missing = unique("missing")
    # (A file's DiskRead opens on first use, the server's at once: either raises.)
    with pytest.raises(diskstore.SchemaError):
        len(DiskRead(where, tablename=missing))
    with pytest.raises(diskstore.SchemaError):
        len(DiskRead(where, tablename=missing))  # still missing: the first made nothing
    r = DiskRead(where, config=BaseConfig(tablename=name))
    assert dict(r.items()) == {"k": 1}
    with pytest.raises((TypeError, diskstore.ReadOnlyError)):
        r["k"] = 2  # type: ignore[index]
    if where.startswith("postgresql://"):
        # The server refuses writes of its sessions too, whatever SQL reaches them.
        read_only = "current_setting('default_transaction_read_only') = 'on'"
        assert len(list(r.query(read_only))) == 1


def test_a_missing_table_is_reported_at_open_on_the_server_and_at_first_use_in_a_file(
    location: Callable[[], str],
) -> None:
    """A file's `DiskRead` opens nothing until first used, as the original 0.7.0 did
    (its first use raised "no such table"), so the SchemaError comes then; on
    PostgreSQL, where there is no original behaviour to keep, it comes at open."""
    where = location()
    DiskStore(where, config=BaseConfig(tablename=unique("t")))["k"] = 1
    missing = unique("missing")
    if where.startswith("postgresql://"):
        with pytest.raises(diskstore.SchemaError):
            DiskRead(where, tablename=missing)
    else:
        r = DiskRead(where, tablename=missing)
        with pytest.raises(diskstore.SchemaError):
            len(r)


def test_mapping_and_insertion_order(location: Callable[[], str]) -> None:
    s = open_store(location)
    assert len(s) == 0
    s["b"] = 1
    s[2] = "two"
    s[b"x"] = b"\x00bytes"
    s[3.5] = 1.25
    s["b"] = 10  # an overwrite keeps the position
    assert list(s) == ["b", 2, b"x", 3.5]
    assert list(reversed(s.keys())) == [3.5, b"x", 2, "b"]
    assert list(s.values()) == [10, "two", b"\x00bytes", 1.25]
    assert s["b"] == 10 and s.get("nope", 7) == 7
    assert "b" in s and "nope" not in s and [1] not in s
    del s[2]
    with pytest.raises(KeyError):
        del s[2]
    with pytest.raises(KeyError):
        s["missing"]
    assert len(s) == 3


def test_values_outside_the_model_are_refused_alike(location: Callable[[], str]) -> None:
    s = open_store(location)
    with pytest.raises(TypeError):
        s["k"] = [1, 2]
    with pytest.raises(diskstore.IntegrityError):
        s["k"] = None
    with pytest.raises(TypeError):
        s[[1]] = 1
    with pytest.raises(ValueError):
        s[float("nan")] = 1
    assert len(s) == 0


def test_atomic_operations(location: Callable[[], str]) -> None:
    s = open_store(location)
    assert s.add("a", 1) == "a"
    assert s.add("a", 2) is None
    assert s.setdefault("a", 5) == 1
    assert s.setdefault("b", 5) == 5
    s["c"] = 3
    assert s.pop("a") == 1
    assert s.pop("a", None) is None
    with pytest.raises(KeyError):
        s.pop("a")
    assert s.popitem() == ("c", 3)
    assert s.popitem() == ("b", 5)
    with pytest.raises(KeyError):
        s.popitem()


def test_batches(location: Callable[[], str]) -> None:
    s = open_store(location)
    s.update({"a": 1, "b": 2}, c=3)
    s.set_many([("d", 4), ("a", 10)])
    assert s.get_many(["a", "zz", "d"], default=-1) == [10, -1, 4]
    assert list(s) == ["a", "b", "c", "d"]
    assert s.delete_many(["a", "b", "zz"]) == 2
    assert list(s.items()) == [("c", 3), ("d", 4)]


def test_transactions_nest(location: Callable[[], str]) -> None:
    s = open_store(location)
    with s.transact():
        s["outer"] = 1
        with pytest.raises(RuntimeError), s.transact():
            s["inner"] = 2
            raise RuntimeError("caught inside the outer block")
    # Nested blocks join the outer one: what the inner block wrote commits with it.
    assert s["outer"] == 1 and s["inner"] == 2
    with pytest.raises(ZeroDivisionError), s.transact():
        s["gone"] = 1
        1 / 0  # noqa: B018
    assert "gone" not in s
    with s.transact():
        s["kept"] = 1
    assert s["kept"] == 1


def test_typed_records_and_query(location: Callable[[], str]) -> None:
    s = open_store(location, Point)
    s["a"] = Point(1, 1.5, "first")
    s["b"] = Point(5, 2.5)
    s["c"] = Point(9, 0.5, "third")
    assert s["b"] == Point(5, 2.5, "origin")
    assert [k for k, _ in s.query("x > ?", [2])] == ["b", "c"]
    assert [k for k, _ in s.query("x > :lo AND label <> :l", {"lo": 0, "l": "origin"})] == [
        "a",
        "c",
    ]
    assert [v.x for _, v in s.query(order="y DESC", limit=2)] == [5, 1]
    assert [k for k, _ in s.query(limit=-1, offset=1)] == ["b", "c"]
    with pytest.raises(diskstore.Error):
        list(s.query("no_such_column = 1"))
    r = s.get_readonly_instance()
    assert r["a"] == Point(1, 1.5, "first")
    with pytest.raises(Exception):  # noqa: B017 - ReadOnlyError (PG) or AttributeError
        r["z"] = Point(0, 0.0)  # type: ignore[index]


def test_readonly_and_pickle(location: Callable[[], str]) -> None:
    where = location()
    config = BaseConfig(tablename=unique("t"))
    s = DiskStore(where, config=config)
    s["k"] = 1
    r = DiskRead(where, config=config)
    assert r["k"] == 1 and list(r.items()) == [("k", 1)]
    with pytest.raises((diskstore.ReadOnlyError, TypeError)):
        r["k"] = 2  # type: ignore[index]
    again = pickle.loads(pickle.dumps(s))
    assert again["k"] == 1
    assert s.check() == []


def test_threads_share_a_store(location: Callable[[], str]) -> None:
    s = open_store(location)
    s["n"] = 0

    def work() -> None:
        for _ in range(25):
            with s.transact():
                s["n"] = s["n"] + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s["n"] == 100


@pytest.fixture(params=["sqlite", "postgres", "redis", "postgres-tls", "redis-tls"])
def cache_at(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[..., DiskCache]:
    """Opens a new cache on the backend (a fresh table or key prefix each time)."""
    if request.param == "sqlite":
        where = str(tmp_path / "cache.db")
    else:
        where = server_url(SERVER_VARS[request.param])
    table = unique("c")

    def make(default_expiration: float | None = None, **options: Any) -> DiskCache:
        return DiskCache(where, default_expiration, tablename=table, **options)

    make.backend = request.param.removesuffix("-tls")  # type: ignore[attr-defined]
    return make


def test_cache_class_on_every_backend(cache_at: Callable[..., DiskCache]) -> None:
    c = cache_at()
    assert type(c) is DiskCache  # one class on every backend
    assert isinstance(c, DiskCache) and issubclass(type(c), DiskCache)
    assert isinstance(pickle.loads(pickle.dumps(c)), DiskCache)
    assert not isinstance(c, DiskStore) and not isinstance(c, DiskRead)


def test_cache_backend_and_server_options(cache_at: Callable[..., DiskCache]) -> None:
    backend = cache_at.backend  # type: ignore[attr-defined]
    c = cache_at()
    assert c.backend == backend
    assert c.get_many(["a", "b"], 0) == [0, 0]
    c.set_many({"a": 1, "b": b"2"})
    assert c.get_many(["a", "x", "b"]) == [1, None, b"2"]
    assert c.delete_many(["a", "x"]) == 1
    if backend == "postgres":
        u = cache_at(unlogged=True)
        u["k"] = "v"
        assert u["k"] == "v" and u.backend == "postgres"
    else:  # a PostgreSQL table option: refused by name elsewhere
        with pytest.raises(NotSupportedError, match="unlogged"):
            cache_at(unlogged=True)


def test_cache_basics(cache_at: Callable[..., DiskCache]) -> None:
    c = cache_at()
    c.clear()
    assert c.get("k") is None and c.get("k", 5) == 5
    c["k"] = {"nested": [1, 2]}
    c.set(("tuple", 1), b"bytes")
    c.set(7, 1.5)
    c.set("flag", True)
    assert c["k"] == {"nested": [1, 2]}
    assert c[("tuple", 1)] == b"bytes" and c[7] == 1.5 and c["flag"] is True
    assert "k" in c and "zz" not in c
    assert len(c) == 4
    assert c.add("k", 0) is False
    assert c.add("new", 0) is True
    assert c.delete("new") is True and c.delete("new") is False
    assert c.pop("k") == {"nested": [1, 2]} and c.pop("k", "d") == "d"
    with pytest.raises(KeyError):
        c["k"]
    with pytest.raises(KeyError):
        del c["k"]
    c.clear()
    assert len(c) == 0


def test_cache_counters(cache_at: Callable[..., DiskCache]) -> None:
    c = cache_at()
    assert c.incr("n") == 1
    assert c.incr("n", 5) == 6
    assert c.decr("n", 2) == 4
    assert c.incr("m", 1, default=10) == 11
    with pytest.raises(KeyError):
        c.incr("absent", default=None)
    c["text"] = "abc"
    with pytest.raises(TypeError):
        c.incr("text")
    c["big"] = 2**63 - 1
    with pytest.raises(ValueError):
        c.incr("big")
    assert c["big"] == 2**63 - 1


def test_cache_expiry_and_touch(cache_at: Callable[..., DiskCache]) -> None:
    c = cache_at()
    c.set("short", 1, expire=0.3)
    c.set("long", 2, expire=0.3)
    c.set("never", 3, expire=0)
    assert c.touch("long", expire=60) is True
    assert c.touch("absent", expire=60) is False
    time.sleep(0.6)
    assert c.get("short") is None
    assert c["long"] == 2 and c["never"] == 3
    assert c.add("short", 4) is True  # an expired entry does not block add


def test_cache_tags_and_batches(cache_at: Callable[..., DiskCache]) -> None:
    c = cache_at()
    c.set("a", 1, tag="red")
    c.set("b", 2, tag="red")
    c.set("c", 3, tag="blue")
    c.set("b", 20, tag="green")  # re-tagged: no longer red
    assert c.evict("red") == 1
    assert c.get("a") is None and c["b"] == 20 and c["c"] == 3
    c.set_many({"x": 1, "y": "two"})
    assert c.get_many(["x", "zz", "y"], default=0) == [1, 0, "two"]
    assert c.delete_many(["x", "y", "zz"]) == 2


def test_cache_get_many_reads_every_kind_of_key_and_value(
    cache_at: Callable[..., DiskCache],
) -> None:
    c = cache_at()
    big = bytes(range(256)) * 1000  # larger than one read of the Redis connection
    entries: dict[Any, Any] = {
        1: "one",
        -7: 2**62,
        2.5: 2.5,
        3.0: "float key 3.0 is the int key 3",
        "text": b"",
        b"bytes": big,
        ("tuple", 1): None,
        "pickled": {"a": [1, 2]},
        "neg": -1,
        "t": True,
    }
    for k, v in entries.items():
        c.set(k, v, tag="tagged" if isinstance(k, str) else None)
    keys = [*entries, "absent", b"absent", 99]
    got = c.get_many(keys, default="dflt")
    assert got == [*entries.values(), "dflt", "dflt", "dflt"]
    assert got[keys.index(3.0)] == c.get(3)
    assert type(got[keys.index("t")]) is type(c.get("t"))
    assert c.get_many([]) == []
    assert c.get_many(iter(["neg", "absent"])) == [-1, None]


def test_cache_stats_memoize_pickle(cache_at: Callable[..., DiskCache]) -> None:
    c = cache_at()
    c.stats(reset=True)
    c["k"] = 1
    c.get("k")
    c.get("zz")
    hits, misses = c.stats()
    assert (hits, misses) == (1, 1)
    calls = []

    @c.memoize()
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert square(4) == 16 and square(4) == 16
    assert calls == [4]
    again = pickle.loads(pickle.dumps(c))
    assert again["k"] == 1
    assert c.check() == []


def test_cache_order_transactions_volume(cache_at: Callable[..., DiskCache]) -> None:
    """Insertion order, transactions and `volume` on SQLite and PostgreSQL; on Redis each
    is a NotSupportedError naming the operation."""
    c = cache_at()
    for k in ("a", "b", "c"):
        c[k] = k
    if cache_at.backend == "redis":  # type: ignore[attr-defined]
        with pytest.raises(NotSupportedError, match="insertion order"):
            list(c)
        with pytest.raises(NotSupportedError, match="transact"), c.transact():
            pass
        with pytest.raises(NotSupportedError, match="volume"):
            c.volume()
        with pytest.raises(NotSupportedError, match="size_limit"):
            cache_at(size_limit=1000)
        return
    assert list(c) == ["a", "b", "c"]
    assert list(reversed(c)) == ["c", "b", "a"]
    with pytest.raises(RuntimeError), c.transact():
        c["d"] = 1
        raise RuntimeError
    assert "d" not in c
    assert c.volume() > 0


def test_cache_count_limit_evicts_oldest(cache_at: Callable[..., DiskCache]) -> None:
    if cache_at.backend == "redis":  # type: ignore[attr-defined]
        # Redis evicts by its own maxmemory-policy; a count limit is refused by name.
        with pytest.raises(NotSupportedError, match="count_limit"):
            cache_at(count_limit=3)
        return
    c = cache_at(count_limit=3)
    for i in range(5):
        c[i] = i
    assert len(c) == 3
    assert c.get(0) is None and c.get(1) is None and c[4] == 4


def test_concurrent_popitem_hands_each_entry_out_once(location: Callable[[], str]) -> None:
    s = open_store(location)
    s.update({i: i for i in range(200)})
    got: list[list[int]] = [[] for _ in range(4)]

    def drain(mine: list[int]) -> None:
        while True:
            try:
                mine.append(s.popitem()[0])
            except KeyError:
                return

    threads = [threading.Thread(target=drain, args=(g,)) for g in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [k for g in got for k in g]
    assert sorted(taken) == list(range(200))  # every entry once, none twice
    assert len(s) == 0
