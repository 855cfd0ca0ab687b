"""The systems under test: one adapter per system, each driving it the way its users would.

An adapter opens its store in a fresh directory and owns the timed loops. The loops are written
out in each adapter (not routed through a generic helper method) so that the time measured around
one call is the system's own call, with no extra Python frame of ours in between. Every mapping-
like system shares the loops of :class:`MappingAdapter`, which use plain mapping syntax
(``s[k] = v``, ``s[k]``, ``k in s``, ``del s[k]``, ``s.get(k)``, ``len(s)``, ``for k in s``).

Timed loops return a list of per-call durations in nanoseconds (``time.perf_counter_ns``), or one
total for the loops that are measured as a whole (``bulk``, ``iterate``).
"""

from __future__ import annotations

import os
from pathlib import Path
from time import perf_counter_ns
from typing import Any

#: Systems of the key-value workload, in the order the tables list them.
STORE_SYSTEMS = [
    "diskstore",
    "apsw-floor",
    "diskstore07-apsw",
    "diskstore07-sqlite3",
    "diskcache-index",
    "diskcache-cache",
    "sqlitedict",
    "lmdb",
    "lmdb-nosync",
]

#: Systems of the cache workload (issue 4), in table order.
CACHE_SYSTEMS = ["diskstore-cache", "diskstore", "diskcache-cache"]

#: Size limit and eviction policy given to both caches of the cache workload: python-diskcache's
#: own defaults, far above the workload's volume, so that neither cache evicts during the run.
CACHE_SIZE_LIMIT = 2**30
CACHE_POLICY = "least-recently-stored"

#: Systems that are the original diskstore 0.7.0 (run with its own PYTHONPATH and backend).
ORIGINAL_BACKENDS = {"diskstore07-apsw": "apsw", "diskstore07-sqlite3": "sqlite3"}


class MappingAdapter:
    """Timed loops for a store that behaves like a ``MutableMapping``.

    Subclasses set ``self.store`` in :meth:`open` and override :meth:`bulk` with the system's
    idiomatic one-transaction bulk write.
    """

    store: Any

    def open(self, directory: Path) -> None:
        """Open (creating) the store inside ``directory``."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the store, if the system has a way to."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def describe(self) -> str:
        """Return the module version(s) measured, for the report."""
        return ""

    def set(self, keys: list[str], value: bytes) -> list[int]:
        """Write each key once (one autocommitted write per call)."""
        s = self.store
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            s[k] = value
            out[i] = pc() - t0
        return out

    def get(self, keys: list[str]) -> list[int]:
        """Read each (present) key with ``s[k]``."""
        s = self.store
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            s[k]
            out[i] = pc() - t0
        return out

    def get_miss(self, keys: list[str]) -> list[int]:
        """Look up each (absent) key with ``s.get(k)``."""
        get = self.store.get
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            get(k)
            out[i] = pc() - t0
        return out

    def contains(self, keys: list[str]) -> list[int]:
        """Test each (present) key with ``k in s``."""
        s = self.store
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            k in s  # noqa: B015 - the expression is what is timed
            out[i] = pc() - t0
        return out

    def delete(self, keys: list[str]) -> list[int]:
        """Delete each (present) key with ``del s[k]``."""
        s = self.store
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            del s[k]
            out[i] = pc() - t0
        return out

    def length(self, calls: int) -> list[int]:
        """Call ``len(s)`` ``calls`` times."""
        s = self.store
        out = [0] * calls
        pc = perf_counter_ns
        for i in range(calls):
            t0 = pc()
            len(s)
            out[i] = pc() - t0
        return out

    def iterate(self) -> tuple[int, int]:
        """Iterate over all keys once; return (total ns, number of keys seen)."""
        s = self.store
        seen = 0
        t0 = perf_counter_ns()
        for _ in s:
            seen += 1
        return perf_counter_ns() - t0, seen

    def bulk(self, pairs: list[tuple[str, bytes]]) -> int:
        """Upsert all pairs in one transaction; return the total ns."""
        raise NotImplementedError

    def fetch(self, key: str) -> Any:
        """Read one value (untimed; for the sanity checks)."""
        return self.store[key]

    def put(self, key: str, value: Any) -> None:
        """Write one value (untimed; for the mp workers)."""
        self.store[key] = value


class OursStore(MappingAdapter):
    """Our Python package: ``diskstore.DiskStore(path)`` with the default (0.7.0 raw) model."""

    def open(self, directory: Path) -> None:
        import diskstore

        self.module = diskstore
        self.store = diskstore.DiskStore(str(directory / "store.db"))

    def describe(self) -> str:
        from importlib.metadata import version

        return f"diskstore {version('diskstore')} ({self.module.__file__})"

    def bulk(self, pairs: list[tuple[str, bytes]]) -> int:
        t0 = perf_counter_ns()
        self.store.update(pairs)
        return perf_counter_ns() - t0


class OriginalStore(OursStore):
    """The original diskstore 0.7.0 (pure Python), default ``BaseConfig``; same calls as ours.

    The backend (apsw or stdlib sqlite3) is chosen by ``DISKSTORE_BACKEND``, which the
    orchestrator sets for this subprocess; :meth:`describe` reports the backend actually loaded.
    """

    def describe(self) -> str:
        from importlib.metadata import version

        from diskstore import _sqlite

        return f"diskstore {version('diskstore')} backend={_sqlite.BACKEND_NAME} ({self.module.__file__})"


class DiskcacheIndex(MappingAdapter):
    """python-diskcache ``Index`` (a persistent ordered dict); bulk inside ``transact()``."""

    def open(self, directory: Path) -> None:
        import diskcache

        self.module = diskcache
        self.store = diskcache.Index(str(directory / "index"))

    def describe(self) -> str:
        return f"diskcache {self.module.__version__}"

    def close(self) -> None:
        self.store.cache.close()

    def bulk(self, pairs: list[tuple[str, bytes]]) -> int:
        s = self.store
        t0 = perf_counter_ns()
        with s.transact():
            for k, v in pairs:
                s[k] = v
        return perf_counter_ns() - t0


class DiskcacheCache(DiskcacheIndex):
    """python-diskcache ``Cache`` with its default settings; bulk inside ``transact()``."""

    def open(self, directory: Path) -> None:
        import diskcache

        self.module = diskcache
        self.store = diskcache.Cache(str(directory / "cache"))

    def close(self) -> None:
        self.store.close()


class Sqlitedict(MappingAdapter):
    """sqlitedict ``SqliteDict(autocommit=True)`` (values pickled, its default encoding).

    Bulk is ``update()``, which runs one ``executemany`` and one commit.
    """

    def open(self, directory: Path) -> None:
        import sqlitedict

        self.module = sqlitedict
        self.store = sqlitedict.SqliteDict(str(directory / "sqlitedict.db"), autocommit=True)

    def describe(self) -> str:
        return f"sqlitedict {self.module.__version__}"

    def bulk(self, pairs: list[tuple[str, bytes]]) -> int:
        t0 = perf_counter_ns()
        self.store.update(pairs)
        return perf_counter_ns() - t0


class Lmdb(MappingAdapter):
    """py-lmdb: one environment, str keys encoded to UTF-8, one transaction per operation.

    ``sync=True`` (lmdb's default) fsyncs every commit; the ``lmdb-nosync`` variant opens with
    ``sync=False`` (durability closer to the SQLite systems' WAL + synchronous=NORMAL).
    """

    def __init__(self, sync: bool = True) -> None:
        self.sync = sync

    def open(self, directory: Path) -> None:
        import lmdb

        self.module = lmdb
        self.env = lmdb.open(
            str(directory / "lmdb"), map_size=4 << 30, sync=self.sync, metasync=self.sync
        )
        self.store = self.env

    def describe(self) -> str:
        return f"lmdb {self.module.__version__} sync={self.sync}"

    def close(self) -> None:
        self.env.close()

    def set(self, keys: list[str], value: bytes) -> list[int]:
        begin = self.env.begin
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            with begin(write=True) as txn:
                txn.put(k.encode(), value)
            out[i] = pc() - t0
        return out

    def get(self, keys: list[str]) -> list[int]:
        begin = self.env.begin
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            with begin() as txn:
                txn.get(k.encode())
            out[i] = pc() - t0
        return out

    get_miss = get

    def contains(self, keys: list[str]) -> list[int]:
        begin = self.env.begin
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            with begin() as txn:
                txn.get(k.encode()) is not None  # noqa: B015 - timed expression
            out[i] = pc() - t0
        return out

    def delete(self, keys: list[str]) -> list[int]:
        begin = self.env.begin
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            with begin(write=True) as txn:
                txn.delete(k.encode())
            out[i] = pc() - t0
        return out

    def length(self, calls: int) -> list[int]:
        stat = self.env.stat
        out = [0] * calls
        pc = perf_counter_ns
        for i in range(calls):
            t0 = pc()
            stat()["entries"]
            out[i] = pc() - t0
        return out

    def iterate(self) -> tuple[int, int]:
        seen = 0
        t0 = perf_counter_ns()
        with self.env.begin() as txn:
            for _ in txn.cursor().iternext(values=False):
                seen += 1
        return perf_counter_ns() - t0, seen

    def bulk(self, pairs: list[tuple[str, bytes]]) -> int:
        t0 = perf_counter_ns()
        with self.env.begin(write=True) as txn:
            put = txn.put
            for k, v in pairs:
                put(k.encode(), v)
        return perf_counter_ns() - t0

    def fetch(self, key: str) -> Any:
        with self.env.begin() as txn:
            return txn.get(key.encode())

    def put(self, key: str, value: Any) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(key.encode(), value)


class ApswFloor(MappingAdapter):
    """Raw apsw with diskstore 0.7.0's SQL and pragmas: the floor for a Python caller.

    No wrapper class, no conversion: one ``cursor.execute`` per op in autocommit, statements from
    apsw's statement cache. It shows what is left of a binding's cost once the SQLite work is
    done, and gives the mp workload a floor (the Rust CLI has no mp op).
    """

    TABLE = '"DiskStore"'
    PRAGMAS = (
        "PRAGMA page_size = 16384",
        "PRAGMA auto_vacuum = 0",
        "PRAGMA journal_mode = wal",
        "PRAGMA synchronous = 1",
        "PRAGMA cache_size = -32768",
        "PRAGMA mmap_size = 268435456",
        "PRAGMA temp_store = 2",
        "PRAGMA wal_autocheckpoint = 5000",
    )

    def open(self, directory: Path) -> None:
        import apsw

        self.module = apsw
        self.con = apsw.Connection(str(directory / "floor.db"))
        self.con.set_busy_timeout(10_000)
        for pragma in self.PRAGMAS:
            self.con.execute(pragma).fetchall()
        t = self.TABLE
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (_key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL)"
        )
        self.sql_set = (
            f"INSERT INTO {t}(_key, value) VALUES (?, ?) "
            "ON CONFLICT(_key) DO UPDATE SET value = excluded.value"
        )
        self.sql_get = f"SELECT _key, value FROM {t} WHERE _key = ? LIMIT 1"
        self.sql_contains = f"SELECT 1 FROM {t} WHERE _key = ? LIMIT 1"
        self.sql_delete = f"DELETE FROM {t} WHERE _key = ? RETURNING _key"
        self.sql_iter = f"SELECT _key FROM {t} ORDER BY rowid ASC"
        self.sql_count = f"SELECT COUNT(*) FROM {t}"
        self.cur = self.con.cursor()

    def describe(self) -> str:
        return f"apsw {self.module.apsw_version()} (SQLite {self.module.sqlite_lib_version()})"

    def close(self) -> None:
        self.con.close()

    def set(self, keys: list[str], value: bytes) -> list[int]:
        execute, sql = self.cur.execute, self.sql_set
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            execute(sql, (k, value))
            out[i] = pc() - t0
        return out

    def get(self, keys: list[str]) -> list[int]:
        execute, sql = self.cur.execute, self.sql_get
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            execute(sql, (k,)).fetchone()
            out[i] = pc() - t0
        return out

    get_miss = get

    def contains(self, keys: list[str]) -> list[int]:
        execute, sql = self.cur.execute, self.sql_contains
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            execute(sql, (k,)).fetchone() is not None  # noqa: B015 - timed expression
            out[i] = pc() - t0
        return out

    def delete(self, keys: list[str]) -> list[int]:
        execute, sql = self.cur.execute, self.sql_delete
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            execute(sql, (k,)).fetchall()
            out[i] = pc() - t0
        return out

    def length(self, calls: int) -> list[int]:
        execute, sql = self.cur.execute, self.sql_count
        out = [0] * calls
        pc = perf_counter_ns
        for i in range(calls):
            t0 = pc()
            execute(sql).fetchone()[0]
            out[i] = pc() - t0
        return out

    def iterate(self) -> tuple[int, int]:
        seen = 0
        t0 = perf_counter_ns()
        for _ in self.con.execute(self.sql_iter):
            seen += 1
        return perf_counter_ns() - t0, seen

    def bulk(self, pairs: list[tuple[str, bytes]]) -> int:
        t0 = perf_counter_ns()
        with self.con:
            self.cur.executemany(self.sql_set, pairs)
        return perf_counter_ns() - t0

    def fetch(self, key: str) -> Any:
        row = self.cur.execute(self.sql_get, (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[1]

    def put(self, key: str, value: Any) -> None:
        self.cur.execute(self.sql_set, (key, value))


# --- the cache workload (issue 4) -------------------------------------------------------------


class CacheAdapter:
    """Timed loops of the cache workload: ``set``/``get``/``get-miss``/``delete``/``incr``.

    The default implementation is the cache API shared by our ``DiskCache`` and python-
    diskcache's ``Cache``: ``c.set(k, v)``, ``c.get(k)``, ``c.delete(k)``, ``c.incr(k)``.
    """

    store: Any

    def open(self, directory: Path) -> None:
        """Open (creating) the cache inside ``directory``."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the cache."""
        self.store.close()

    def describe(self) -> str:
        """Return the module version measured, for the report."""
        return ""

    def set(self, keys: list[str], value: bytes) -> list[int]:
        """``c.set(k, v)`` for each key (one autocommitted write each)."""
        put = self.store.set
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            put(k, value)
            out[i] = pc() - t0
        return out

    def get(self, keys: list[str]) -> list[int]:
        """``c.get(k)`` for each key (hits or misses, as the caller chooses the keys)."""
        get = self.store.get
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            get(k)
            out[i] = pc() - t0
        return out

    def delete(self, keys: list[str]) -> list[int]:
        """``c.delete(k)`` for each (present) key."""
        delete = self.store.delete
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            delete(k)
            out[i] = pc() - t0
        return out

    def incr(self, keys: list[str]) -> list[int]:
        """``c.incr(k)`` (delta 1, default 0) for each key; keys repeat."""
        incr = self.store.incr
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            incr(k)
            out[i] = pc() - t0
        return out

    def fetch(self, key: str) -> Any:
        """Read one value (untimed; for the sanity checks)."""
        return self.store.get(key)


class OursCache(CacheAdapter):
    """Our ``diskstore.DiskCache`` with python-diskcache's size limit and policy, no expiry.

    Other options stay at their defaults (statistics on: counted in memory, written out with
    later writes; python-diskcache's statistics are off by default).
    """

    def open(self, directory: Path) -> None:
        import diskstore

        self.module = diskstore
        # No default expiry, as python-diskcache's `set(k, v)`: both keep entries until evicted.
        self.store = diskstore.DiskCache(
            str(directory / "cache.db"),
            default_expiration=None,
            size_limit=CACHE_SIZE_LIMIT,
            eviction_policy=CACHE_POLICY,
        )

    def describe(self) -> str:
        return (
            f"diskstore.DiskCache size_limit={CACHE_SIZE_LIMIT} policy={CACHE_POLICY} "
            "default_expiration=None "
            f"({self.module.__file__})"
        )


class PeerCache(CacheAdapter):
    """python-diskcache ``Cache`` with the same size limit and policy as ours."""

    def open(self, directory: Path) -> None:
        import diskcache

        self.module = diskcache
        self.store = diskcache.Cache(
            str(directory / "cache"), size_limit=CACHE_SIZE_LIMIT, eviction_policy=CACHE_POLICY
        )

    def describe(self) -> str:
        return f"diskcache {self.module.__version__} size_limit={CACHE_SIZE_LIMIT} policy={CACHE_POLICY}"


class OursStoreAsCache(CacheAdapter):
    """Our ``diskstore.DiskStore`` doing the cache workload's operations, as the yardstick.

    ``set`` is ``s[k] = v``, ``get`` is ``s.get(k)``, ``delete`` is ``del s[k]`` and ``incr`` is
    the read-modify-write a DiskStore user writes: ``with s.transact(): s[k] = s.get(k, 0) + 1``.
    """

    def open(self, directory: Path) -> None:
        import diskstore

        self.module = diskstore
        self.store = diskstore.DiskStore(str(directory / "store.db"))

    def describe(self) -> str:
        return f"diskstore.DiskStore ({self.module.__file__})"

    def set(self, keys: list[str], value: bytes) -> list[int]:
        s = self.store
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            s[k] = value
            out[i] = pc() - t0
        return out

    def delete(self, keys: list[str]) -> list[int]:
        s = self.store
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            del s[k]
            out[i] = pc() - t0
        return out

    def incr(self, keys: list[str]) -> list[int]:
        s = self.store
        transact = s.transact
        get = s.get
        out = [0] * len(keys)
        pc = perf_counter_ns
        for i, k in enumerate(keys):
            t0 = pc()
            with transact():
                s[k] = get(k, 0) + 1
            out[i] = pc() - t0
        return out


def make(system: str) -> Any:
    """Return a fresh (unopened) adapter for the named system."""
    factories = {
        "diskstore": OursStore,
        "apsw-floor": ApswFloor,
        "diskstore07-apsw": OriginalStore,
        "diskstore07-sqlite3": OriginalStore,
        "diskcache-index": DiskcacheIndex,
        "diskcache-cache": DiskcacheCache,
        "sqlitedict": Sqlitedict,
        "lmdb": lambda: Lmdb(sync=True),
        "lmdb-nosync": lambda: Lmdb(sync=False),
    }
    if system not in factories:
        raise KeyError(f"unknown system {system!r}; known: {', '.join(factories)}")
    return factories[system]()


def make_cache(system: str) -> CacheAdapter:
    """Return a fresh (unopened) adapter for the named system of the cache workload."""
    factories = {
        "diskstore-cache": OursCache,
        "diskstore": OursStoreAsCache,
        "diskcache-cache": PeerCache,
    }
    if system not in factories:
        raise KeyError(f"unknown cache system {system!r}; known: {', '.join(factories)}")
    return factories[system]()


def subprocess_env(system: str, orig_path: str | None) -> dict[str, str]:
    """Return the environment for a worker measuring ``system``.

    The original 0.7.0 gets its install directory first on ``PYTHONPATH`` (it shares the import
    name ``diskstore`` with ours) and its backend through ``DISKSTORE_BACKEND``.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("DISKSTORE_BACKEND", None)
    if system in ORIGINAL_BACKENDS:
        if not orig_path:
            raise RuntimeError(f"{system} needs --orig-path (where diskstore 0.7.0 is installed)")
        env["PYTHONPATH"] = orig_path
        env["DISKSTORE_BACKEND"] = ORIGINAL_BACKENDS[system]
    return env
