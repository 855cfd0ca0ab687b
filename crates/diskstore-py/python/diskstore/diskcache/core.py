"""`Cache` and its settings: python-diskcache 5.6's core API on our bundled SQLite (`Disk`,
`JSONDisk` and the constants come from `disk.py` and are importable from here too, as from
`diskcache.core`).

The SQL work of each hot operation (`get`, `set`, `add`) is one call into the native
`_DcCore`, which keeps one connection per thread; the rest runs statements through
`_DcCore.execute`. Keys and values go through a `Disk` exactly as in diskcache, so custom
`Disk` subclasses keep working.
"""

from __future__ import annotations

import contextlib
import functools
import os
import os.path as op
import pickle
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

# The native half (src/dccore/) is private and has no stub entry.
from .._diskstore import DcTimeout, _DcCore  # type: ignore[attr-defined]
from .disk import (  # noqa: F401 (diskcache.core has these names too)
    _I64_MAX,
    _I64_MIN,
    ENOVAL,
    MODE_BINARY,
    MODE_NONE,
    MODE_PICKLE,
    MODE_RAW,
    MODE_TEXT,
    UNKNOWN,
    Constant,
    Disk,
    JSONDisk,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_SETTINGS",
    "ENOVAL",
    "EVICTION_POLICY",
    "UNKNOWN",
    "Cache",
    "Disk",
    "EmptyDirWarning",
    "JSONDisk",
    "Timeout",
    "UnknownFileWarning",
]

DBNAME = "diskstore-cache.db"
"""The database file inside a cache directory (not diskcache's `cache.db`: the schema is ours)."""

Timeout = DcTimeout
"""Raised when the database stays locked longer than the cache's `timeout`."""


DEFAULT_SETTINGS: dict[str, Any] = {
    "statistics": 0,
    "tag_index": 0,
    "eviction_policy": "least-recently-stored",
    "size_limit": 2**30,
    "cull_limit": 10,
    "sqlite_auto_vacuum": 1,
    "sqlite_cache_size": 2**13,
    "sqlite_journal_mode": "wal",
    "sqlite_mmap_size": 2**26,
    "sqlite_synchronous": 1,
    "disk_min_file_size": 2**15,
    "disk_pickle_protocol": pickle.HIGHEST_PROTOCOL,
}
"""Settings a new cache starts with (diskcache's defaults)."""

METADATA = {"count": 0, "size": 0, "hits": 0, "misses": 0}
"""Counters kept by the database itself (readable with `reset(name)`)."""

EVICTION_POLICY: dict[str, dict[str, str | None]] = {
    "none": {"init": None, "get": None, "cull": None},
    "least-recently-stored": {
        "init": "CREATE INDEX IF NOT EXISTS Cache_store_time ON Cache (store_time)",
        "get": None,
        "cull": "SELECT {fields} FROM Cache ORDER BY store_time LIMIT ?",
    },
    "least-recently-used": {
        "init": "CREATE INDEX IF NOT EXISTS Cache_access_time ON Cache (access_time)",
        "get": "access_time = {now}",
        "cull": "SELECT {fields} FROM Cache ORDER BY access_time LIMIT ?",
    },
    "least-frequently-used": {
        "init": "CREATE INDEX IF NOT EXISTS Cache_access_count ON Cache (access_count)",
        "get": "access_count = access_count + 1",
        "cull": "SELECT {fields} FROM Cache ORDER BY access_count LIMIT ?",
    },
}
"""The eviction policies by name: the index each needs, what a read updates, what culls."""

_POLICY_NUMBER = {
    "none": 0,
    "least-recently-stored": 1,
    "least-recently-used": 2,
    "least-frequently-used": 3,
}

_RECORDED_ONLY = frozenset({"sqlite_mmap_size"})
"""Settings kept and reported but not applied: memory-mapped reads make every read walk the
WAL's hash chain of the page the cache rewrites on each write (docs/diskcache.md)."""

_COUNT = "SELECT count(*) FROM Cache"
"""`len()`: SQLite counts the entries of the smallest index, O(n) (diskcache keeps a counter
that every insert and delete rewrites; see docs/diskcache.md)."""

_MISS = object()
_SLOW = object()
_VANISHED = object()

_LIVE = "(expire_time IS NULL OR expire_time > ?)"


class EmptyDirWarning(UserWarning):
    """`check()` found an empty directory in the cache directory."""


class UnknownFileWarning(UserWarning):
    """`check()` found a file no entry refers to."""


def full_name(func: Callable[..., Any]) -> str:
    """`module.qualname` of a callable: the default memoize name."""
    return func.__module__ + "." + func.__qualname__


def args_to_key(
    base: tuple[Any, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    typed: bool,
    ignore: Any,
) -> tuple[Any, ...]:
    """The memoize key of a call: `base`, the positional arguments not ignored, a `None`
    marker, then the sorted keyword items, then (if `typed`) the argument types."""
    kept = tuple(a for i, a in enumerate(args) if i not in ignore)
    key = base + kept + (None,)
    items: list[tuple[str, Any]] = []
    if kwargs:
        items = sorted((k, v) for k, v in kwargs.items() if k not in ignore)
        for item in items:
            key += item
    if typed:
        key += tuple(type(a) for a in kept)
        if kwargs:
            key += tuple(type(v) for _, v in items)
    return key


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS Settings (key TEXT NOT NULL PRIMARY KEY, value)",
    (
        "CREATE TABLE IF NOT EXISTS Meta (id INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
        " hits INTEGER NOT NULL, misses INTEGER NOT NULL)"
    ),
    "INSERT OR IGNORE INTO Meta VALUES (0, 0, 0, 0)",
    (
        "CREATE TABLE IF NOT EXISTS Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER,"
        " store_time REAL, expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0,"
        " tag BLOB, size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT, value BLOB)"
    ),
    "CREATE UNIQUE INDEX IF NOT EXISTS Cache_key_raw ON Cache(key, raw)",
    (
        "CREATE INDEX IF NOT EXISTS Cache_expire_time ON Cache (expire_time)"
        " WHERE expire_time IS NOT NULL"
    ),
    # Only the bytes of value files are counted (rows kept in the database count through
    # its pages), so a write of an inline value leaves Meta alone. The triggers are
    # `_TRIGGERS`, made (or replaced) after these statements.
)

_TRIGGERS = {
    # `UPDATE OR IGNORE`: Meta's columns are NOT NULL, and a NOT NULL check that may abort
    # makes SQLite open a statement journal (a copy of every page the statement changes)
    # for each write to Cache that fires a trigger inside a transaction, a `Deque.popleft`
    # included. The check never fails here (the `WHEN` skips NULL sizes), so ignoring it
    # changes nothing but that copy.
    "Meta_insert": (
        "CREATE TRIGGER Meta_insert AFTER INSERT ON Cache FOR EACH ROW WHEN NEW.size != 0"
        " BEGIN UPDATE OR IGNORE Meta SET size = size + NEW.size WHERE id = 0; END"
    ),
    "Meta_delete": (
        "CREATE TRIGGER Meta_delete AFTER DELETE ON Cache FOR EACH ROW WHEN OLD.size != 0"
        " BEGIN UPDATE OR IGNORE Meta SET size = size - OLD.size WHERE id = 0; END"
    ),
    "Meta_size": (
        "CREATE TRIGGER Meta_size AFTER UPDATE OF size ON Cache FOR EACH ROW"
        " WHEN NEW.size != OLD.size BEGIN"
        " UPDATE OR IGNORE Meta SET size = size + NEW.size - OLD.size WHERE id = 0; END"
    ),
}
"""Triggers keeping `Meta.size`, by name; a file made by an earlier version (plain
`UPDATE`) has its triggers replaced when opened."""


def _make_triggers(sql: Callable[..., Any]) -> None:
    """Creates the `_TRIGGERS` missing and replaces those whose text differs (inside the
    caller's transaction)."""
    found = dict(sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    for name, text in _TRIGGERS.items():
        if found.get(name) == text:
            continue
        if name in found:
            sql(f"DROP TRIGGER {name}")
        sql(text)


class Cache:
    """A disk and file backed cache: python-diskcache's `Cache`, on our SQLite.

    `Cache(directory=None, timeout=60, disk=Disk, **settings)`; `directory=None` makes a
    temporary directory. Settings are those of `DEFAULT_SETTINGS`, kept in the database and
    changed with `reset(name, value)`.
    """

    def __init__(
        self, directory: Any = None, timeout: float = 60, disk: type = Disk, **settings: Any
    ):
        try:
            ok = issubclass(disk, Disk)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError("disk must subclass diskstore.diskcache.Disk")
        if directory is None:
            directory = tempfile.mkdtemp(prefix="diskcache-")
        directory = op.expandvars(op.expanduser(os.fspath(directory)))
        self._directory = str(directory)
        self._timeout = timeout
        self._txn_id: int | None = None
        if not op.isdir(directory):
            try:
                os.makedirs(directory, 0o755, exist_ok=True)
            except OSError as error:
                raise OSError(
                    error.errno,
                    f'Cache directory "{directory}" does not exist and could not be created',
                ) from None
        self._core = _DcCore(op.join(self._directory, DBNAME), float(timeout), [])
        sql = self._core.execute
        retry = self._retry  # opening waits out other processes, as diskcache's does
        existing = retry(sql, "SELECT count(*) FROM sqlite_master WHERE name = 'Settings'")[0][0]
        current = dict(retry(sql, "SELECT key, value FROM Settings")) if existing else {}
        sets = dict(DEFAULT_SETTINGS)
        sets.update(current)
        sets.update(settings)
        for key in METADATA:
            sets.pop(key, None)
        if sets["eviction_policy"] not in EVICTION_POLICY:
            raise ValueError(f"unknown eviction policy: {sets['eviction_policy']!r}")
        for key, value in sorted(sets.items()):
            if key.startswith("sqlite_") and key not in _RECORDED_ONLY:
                retry(self._core.pragma, key[7:], _pragma_text(value))
        with self._transact(retry=True):
            for stmt in _SCHEMA:
                sql(stmt)
            _make_triggers(sql)
            for key, value in sets.items():
                sql("INSERT OR REPLACE INTO Settings VALUES (?, ?)", [key, _setting_cell(value)])
        kwargs = {key[5:]: value for key, value in sets.items() if key.startswith("disk_")}
        self._disk = disk(self._directory, **kwargs)
        self._plain_disk = type(self._disk) is Disk
        self._fast = self._plain_disk
        self._custom_policy: dict[str, str | None] | None = None
        for key, value in sets.items():
            object.__setattr__(self, key, value)
        self._page_size = retry(sql, "PRAGMA page_size")[0][0]
        if sets["tag_index"]:
            self.create_tag_index()
        else:
            self.drop_tag_index()
        self._configure()

    # -- properties and settings ---------------------------------------------------------

    @property
    def directory(self) -> str:
        """The cache directory."""
        return self._directory

    @property
    def timeout(self) -> float:
        """Seconds a statement waits for a locked database before `Timeout`."""
        return self._timeout

    @property
    def disk(self) -> Disk:
        """The `Disk` that serializes keys and values."""
        return self._disk

    def _configure(self) -> None:
        policy = self.eviction_policy  # type: ignore[attr-defined]
        # A policy added to EVICTION_POLICY by the program runs its own SQL from here (reads
        # and writes take the slower path that applies it); the native core evicts nothing.
        custom = EVICTION_POLICY[policy] if policy not in _POLICY_NUMBER else None
        self._custom_policy = custom
        self._fast = self._plain_disk and custom is None
        if custom is not None and custom["init"] is not None:
            self._retry(self._core.execute, custom["init"])
        self._core.configure(
            int(self.cull_limit),  # type: ignore[attr-defined]
            int(min(max(self.size_limit, _I64_MIN), _I64_MAX)),  # type: ignore[attr-defined]
            _POLICY_NUMBER.get(policy, 0),
            bool(self.statistics),  # type: ignore[attr-defined]
        )

    def _evict_custom(self, now: float, limit: int) -> list[Any]:
        """With a program's own policy: up to `limit` of its victims while the volume is over
        the size limit (in the caller's transaction); their files."""
        select = self._custom_policy["cull"] if self._custom_policy else None
        if select is None or limit <= 0 or self.volume() < self.size_limit:  # type: ignore[attr-defined]
            return []
        victims = select.format(fields="rowid", now=now)
        rows = self._core.execute(
            f"DELETE FROM Cache WHERE rowid IN ({victims}) RETURNING filename", [limit]
        )
        return [r[0] for r in rows]

    def reset(self, key: str, value: Any = ENOVAL, update: bool = True) -> Any:
        """Reads a setting or counter from the database (`value` not given), or sets it:
        `sqlite_*` runs the pragma, `disk_*` sets the `Disk` attribute."""
        if value is ENOVAL:
            if key == "count":
                value = self._retry(self._core.execute, _COUNT)[0][0]
            elif key in METADATA:
                value = self._retry(self._core.execute, f"SELECT {key} FROM Meta WHERE id = 0")[0][
                    0
                ]
            else:
                rows = self._retry(
                    self._core.execute, "SELECT value FROM Settings WHERE key = ?", [key]
                )
                if not rows:
                    raise ValueError(f"no such setting: {key!r}")
                value = rows[0][0]
            object.__setattr__(self, key, value)
            if key in ("cull_limit", "size_limit", "eviction_policy", "statistics"):
                self._configure()
            return value
        if key == "eviction_policy" and value not in EVICTION_POLICY:
            raise ValueError(f"unknown eviction policy: {value!r}")
        if update and key != "count":
            if key in METADATA:
                self._retry(self._core.execute, f"UPDATE Meta SET {key} = ? WHERE id = 0", [value])
            else:
                self._retry(
                    self._core.execute,
                    "UPDATE Settings SET value = ? WHERE key = ?",
                    [_setting_cell(value), key],
                )
        if key.startswith("sqlite_"):
            if key not in _RECORDED_ONLY:
                self._retry(self._core.pragma, key[7:], _pragma_text(value))
        elif key.startswith("disk_"):
            setattr(self._disk, key[5:], value)
        object.__setattr__(self, key, value)
        if key in ("cull_limit", "size_limit", "eviction_policy", "statistics"):
            self._configure()
        return value

    @staticmethod
    def _retry(fn: Callable[..., Any], *args: Any) -> Any:
        # Settings, pragmas and opening wait out another process's lock for up to a minute
        # whatever the cache's timeout, as diskcache's do.
        give_up = time.monotonic() + 60
        while True:
            try:
                return fn(*args)
            except Timeout:
                if time.monotonic() > give_up:
                    raise
                time.sleep(0.001)

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def transact(self, retry: bool = False) -> Iterator[None]:
        """A context manager running its block in one write transaction (nestable);
        rolls back on an exception."""
        with self._transact(retry=retry):
            yield

    @contextlib.contextmanager
    def _transact(self, retry: bool = False, filename: str | None = None) -> Iterator[None]:
        tid = threading.get_ident()
        begin = self._txn_id != tid
        if begin:
            while True:
                try:
                    self._core.execute("BEGIN IMMEDIATE")
                    break
                except Timeout:
                    if retry:
                        continue
                    if filename is not None:
                        self._disk.remove(filename)
                    raise
            self._txn_id = tid
        try:
            yield
        except BaseException:
            if begin:
                self._txn_id = None
                self._core.execute("ROLLBACK")
            raise
        else:
            if begin:
                self._txn_id = None
                self._core.execute("COMMIT")

    def _remove(self, names: Any) -> None:
        remove = self._disk.remove
        for name in names:
            if name is not None:
                remove(name)

    # -- writes --------------------------------------------------------------------------

    def set(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """Stores `value` under `key` (`expire` seconds to live, `read=True`: a binary file
        object's bytes) and returns `True`."""
        if self._fast and not read:
            # One native call when the plain Disk would store key and value as they are.
            while True:
                try:
                    plain = self._core.set_plain(key, value, expire, tag, self._disk.min_file_size)
                    break
                except Timeout:
                    if not retry:
                        raise
            if plain is not None:
                if plain:
                    self._remove(plain)
                return True
        now = time.time()
        expire_time = None if expire is None else now + expire
        db_key, raw = self._disk.put(key)
        size, mode, filename, db_value = self._disk.store(value, read, key=key)
        while True:
            try:
                files = self._store(
                    (db_key, raw, now, expire_time, tag, size, mode, filename, db_value)
                )[1]
                break
            except Timeout:
                if not retry:
                    if filename is not None:
                        self._disk.remove(filename)
                    raise
        if files:
            self._remove(files)
        return True

    def _store(self, cells: tuple[Any, ...], add: bool = False) -> tuple[bool, list[Any]]:
        """The native `set` of a row's cells (`add`: only if absent), then a program's own
        eviction policy if there is one, in one transaction: (stored, files to remove)."""
        if self._custom_policy is None:
            return self._core.set(*cells, add)  # type: ignore[no-any-return]
        with self._transact(False):
            stored, files = self._core.set(*cells, add)
            files = [*files, *self._evict_custom(cells[2], self.cull_limit)]  # type: ignore[attr-defined]
        return stored, files

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value, retry=True)

    def add(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """Stores `value` only if `key` is absent (or expired); `True` if it was stored."""
        now = time.time()
        db_key, raw = self._disk.put(key)
        expire_time = None if expire is None else now + expire
        size, mode, filename, db_value = self._disk.store(value, read, key=key)
        while True:
            try:
                stored, files = self._store(
                    (db_key, raw, now, expire_time, tag, size, mode, filename, db_value), True
                )
                break
            except Timeout:
                if not retry:
                    if filename is not None:
                        self._disk.remove(filename)
                    raise
        if not stored and filename is not None:
            self._disk.remove(filename)
        self._remove(files)
        return stored

    def touch(self, key: Any, expire: float | None = None, retry: bool = False) -> bool:
        """Sets a live key's expiry to `expire` seconds from now (`None`: never); `True`
        if the key was there."""
        now = time.time()
        db_key, raw = self._disk.put(key)
        expire_time = None if expire is None else now + expire
        rows = self._run(
            retry,
            f"UPDATE Cache SET expire_time = ? WHERE key = ? AND raw = ? AND {_LIVE} RETURNING rowid",
            [expire_time, db_key, raw, now],
        )
        return bool(rows)

    def _run(self, retry: bool, stmt: str, args: list[Any] | None = None) -> list[Any]:
        while True:
            try:
                return self._core.execute(stmt, args)
            except Timeout:
                if not retry:
                    raise

    def incr(self, key: Any, delta: int = 1, default: int | None = 0, retry: bool = False) -> Any:
        """Adds `delta` to the value of `key` atomically and returns the new value; a
        missing key starts at `default` (`None`: `KeyError`)."""
        now = time.time()
        db_key, raw = self._disk.put(key)
        with self._transact(retry):
            rows = self._core.execute(
                "SELECT rowid, expire_time, filename, value FROM Cache WHERE key = ? AND raw = ?",
                [db_key, raw],
            )
            if rows and (rows[0][1] is None or rows[0][1] >= now):
                rowid, _, _, value = rows[0]
                value += delta
                update = "store_time = ?, value = ?"
                column = EVICTION_POLICY[self.eviction_policy]["get"]  # type: ignore[attr-defined]
                if column is not None:
                    update += ", " + column.format(now=now)
                self._core.execute(
                    f"UPDATE Cache SET {update} WHERE rowid = ?", [now, value, rowid]
                )
                return value
            if default is None:
                raise KeyError(key)
            value = default + delta
            size, mode, filename, db_value = self._disk.store(value, False, key=key)
            files = self._store((db_key, raw, now, None, None, size, mode, filename, db_value))[1]
        self._remove(files)
        return value

    def decr(self, key: Any, delta: int = 1, default: int | None = 0, retry: bool = False) -> Any:
        """`incr(key, -delta, default, retry)`."""
        return self.incr(key, -delta, default, retry)

    # -- reads ---------------------------------------------------------------------------

    def get(
        self,
        key: Any,
        default: Any = None,
        read: bool = False,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """The value of `key`, or `default`; with `expire_time`/`tag`, a tuple adding them;
        `read=True`: an open file for a value stored as a file."""
        plain = self._plain_disk
        if self._fast and not (read or expire_time or tag):
            # One native call: the lookup, and the value itself when stored as it is.
            while True:
                try:
                    got = self._core.get_plain(key, _MISS, _SLOW)
                    break
                except Timeout:
                    if not retry:
                        raise
            if got is _MISS:
                return default
            if type(got) is tuple:
                return self._fetch_plain(got, default)
            if got is not _SLOW:
                return got
        if plain and _is_plain_key(key):
            db_key, raw = key, True
        else:
            db_key, raw = self._disk.put(key)
        while True:
            try:
                now = time.time()
                row = self._core.get(db_key, raw, now)
                break
            except Timeout:
                if not retry:
                    raise
        if row is not None and self._custom_policy is not None:
            update = self._custom_policy["get"]
            if update is not None:
                self._run(
                    retry, f"UPDATE Cache SET {update.format(now=now)} WHERE rowid = ?", [row[0]]
                )
        if row is None:
            if expire_time and tag:
                return default, None, None
            if expire_time or tag:
                return default, None
            return default
        if plain and row[3] == MODE_RAW:
            value = row[5]
        else:
            try:
                value = self._disk.fetch(row[3], row[4], row[5], read)
            except OSError:
                if expire_time and tag:
                    return default, None, None
                if expire_time or tag:
                    return default, None
                return default
        if expire_time and tag:
            return value, row[1], row[2]
        if expire_time:
            return value, row[1]
        if tag:
            return value, row[2]
        return value

    def _fetch_plain(self, got: tuple[int, str | None, Any], default: Any) -> Any:
        """The value of `get_plain`'s `(mode, filename, value)`, or `default` when its file
        has gone."""
        try:
            return self._disk.fetch(got[0], got[1], got[2], False)
        except OSError:
            return default

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, default=ENOVAL, retry=True)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def read(self, key: Any, retry: bool = False) -> Any:
        """An open binary file for a value stored with `read=True`; `KeyError` if missing."""
        handle = self.get(key, default=ENOVAL, read=True, retry=retry)
        if handle is ENOVAL:
            raise KeyError(key)
        return handle

    def __contains__(self, key: Any) -> bool:
        db_key, raw = self._disk.put(key)
        rows = self._run(
            True,
            f"SELECT rowid FROM Cache WHERE key = ? AND raw = ? AND {_LIVE}",
            [db_key, raw, time.time()],
        )
        return bool(rows)

    def pop(
        self,
        key: Any,
        default: Any = None,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Removes `key` and returns its value (or `default`), as `get` shapes it."""
        db_key, raw = self._disk.put(key)
        if expire_time and tag:
            default = (default, None, None)
        elif expire_time or tag:
            default = (default, None)
        rows = self._run(
            retry,
            f"DELETE FROM Cache WHERE key = ? AND raw = ? AND {_LIVE}"
            " RETURNING expire_time, tag, mode, filename, value",
            [db_key, raw, time.time()],
        )
        if not rows:
            return default
        db_expire, db_tag, mode, filename, db_value = rows[0]
        try:
            value = self._disk.fetch(mode, filename, db_value, False)
        except OSError:
            return default
        finally:
            if filename is not None:
                self._disk.remove(filename)
        if expire_time and tag:
            return value, db_expire, db_tag
        if expire_time:
            return value, db_expire
        if tag:
            return value, db_tag
        return value

    def __delitem__(self, key: Any, retry: bool = True) -> bool:
        db_key, raw = self._disk.put(key)
        rows = self._run(
            retry,
            f"DELETE FROM Cache WHERE key = ? AND raw = ? AND {_LIVE} RETURNING filename",
            [db_key, raw, time.time()],
        )
        if not rows:
            raise KeyError(key)
        self._remove(r[0] for r in rows)
        return True

    def delete(self, key: Any, retry: bool = False) -> bool:
        """Removes `key`; `True` if it was there (and live)."""
        try:
            return self.__delitem__(key, retry=retry)
        except KeyError:
            return False

    # -- queues --------------------------------------------------------------------------

    def push(
        self,
        value: Any,
        prefix: str | None = None,
        side: str = "back",
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> Any:
        """Appends `value` to the queue named `prefix` (`side` "back" or "front") and
        returns its generated key (500000000000000 for the first; "prefix-<15 digits>")."""
        back = {"back": True, "front": False}[side]
        now = time.time()
        expire_time = None if expire is None else now + expire
        size, mode, filename, db_value = self._disk.store(value, read)
        while True:
            try:
                db_key, files = self._core.push(
                    prefix, back, now, expire_time, tag, size, mode, filename, db_value
                )
                break
            except Timeout:
                if not retry:
                    if filename is not None:
                        self._disk.remove(filename)
                    raise
        if files:
            self._remove(files)
        return db_key

    def _queue_take(
        self,
        prefix: str | None,
        default: Any,
        side: str,
        expire_time: bool,
        tag: bool,
        retry: bool,
        remove: bool,
    ) -> Any:
        front = {"front": True, "back": False}[side]
        if expire_time and tag:
            default = default, None, None
        elif expire_time or tag:
            default = default, None
        while True:
            while True:
                try:
                    row, expired = self._core.pull(prefix, front, remove, time.time())
                    break
                except Timeout:
                    if not retry:
                        raise
            if expired:
                self._remove(expired)
            if row is None:
                return default
            key, db_expire, db_tag, mode, name, db_value = row
            try:
                value = self._disk.fetch(mode, name, db_value, False)
            except OSError:
                continue
            finally:
                if remove and name is not None:
                    self._disk.remove(name)
            break
        item = (key, value)
        if expire_time and tag:
            return item, db_expire, db_tag
        if expire_time:
            return item, db_expire
        if tag:
            return item, db_tag
        return item

    def _end_value(self, front: bool, remove: bool) -> Any:
        """The value at one end of the unnamed queue, removed if `remove` (`ENOVAL` when
        empty): `Deque`'s pops and peeks, one native call without `pull`'s tuples."""
        while True:
            while True:
                try:
                    got = self._core.end_value(front, remove, self._plain_disk, ENOVAL)
                    break
                except Timeout:
                    continue
            if type(got) is not tuple:
                return got  # ENOVAL (a tuple subclass), or a value stored as it is
            value = self._end_cells(got, remove)
            if value is not _VANISHED:
                return value

    def _end_cells(self, got: tuple[Any, Any, Any, Any], remove: bool) -> Any:
        """The value of `end_value`'s `(mode, filename, value, files_to_remove)`: `ENOVAL`
        when the queue is empty, `_VANISHED` when the value's file is gone (the caller
        takes the next one)."""
        mode, name, db_value, expired = got
        if expired:
            self._remove(expired)
        if mode is None:
            return ENOVAL
        try:
            return self._disk.fetch(mode, name, db_value, False)
        except OSError:
            return _VANISHED
        finally:
            if remove and name is not None:
                self._disk.remove(name)

    def pull(
        self,
        prefix: str | None = None,
        default: Any = (None, None),
        side: str = "front",
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Removes and returns `(key, value)` from the `side` of the queue `prefix`, or
        `default` when it is empty."""
        return self._queue_take(prefix, default, side, expire_time, tag, retry, True)

    def peek(
        self,
        prefix: str | None = None,
        default: Any = (None, None),
        side: str = "front",
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Returns `(key, value)` at the `side` of the queue `prefix` without removing it."""
        return self._queue_take(prefix, default, side, expire_time, tag, retry, False)

    def peekitem(
        self, last: bool = True, expire_time: bool = False, tag: bool = False, retry: bool = False
    ) -> Any:
        """The newest (`last=True`) or oldest stored `(key, value)`; `KeyError` if empty.
        Expired entries met on the way are removed."""
        order = "DESC" if last else "ASC"
        select = (
            "SELECT rowid, key, raw, expire_time, tag, mode, filename, value"
            f" FROM Cache ORDER BY rowid {order} LIMIT 1"
        )
        while True:
            expired: list[str] = []
            with self._transact(retry):
                while True:
                    rows = self._core.execute(select)
                    if not rows:
                        break
                    rowid, db_key, raw, db_expire, db_tag, mode, name, db_value = rows[0]
                    if db_expire is not None and db_expire < time.time():
                        self._core.execute("DELETE FROM Cache WHERE rowid = ?", [rowid])
                        expired.append(name)
                        continue
                    break
            # Expired entries removed on the way stay removed, even when none is left.
            self._remove(expired)
            if not rows:
                raise KeyError("dictionary is empty")
            key = self._disk.get(db_key, raw)
            try:
                value = self._disk.fetch(mode, name, db_value, False)
            except OSError:
                continue
            break
        item = (key, value)
        if expire_time and tag:
            return item, db_expire, db_tag
        if expire_time:
            return item, db_expire
        if tag:
            return item, db_tag
        return item

    # -- memoize -------------------------------------------------------------------------

    def memoize(
        self,
        name: str | None = None,
        typed: bool = False,
        expire: float | None = None,
        tag: Any = None,
        ignore: Any = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A decorator caching a function's results by its arguments; the wrapper has
        `__cache_key__(*args, **kwargs)` and `__wrapped__`. `expire=0` only reads."""
        if callable(name):
            raise TypeError("name cannot be callable")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            base = (full_name(func),) if name is None else (name,)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                key = wrapper.__cache_key__(*args, **kwargs)  # type: ignore[attr-defined]
                result = self.get(key, default=ENOVAL, retry=True)
                if result is ENOVAL:
                    result = func(*args, **kwargs)
                    if expire is None or expire > 0:
                        self.set(key, result, expire, tag=tag, retry=True)
                return result

            def __cache_key__(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
                return args_to_key(base, args, kwargs, typed, ignore)

            wrapper.__cache_key__ = __cache_key__  # type: ignore[attr-defined]
            return wrapper

        return decorator

    # -- bulk removal --------------------------------------------------------------------

    def _select_delete(
        self,
        select: str,
        args: list[Any],
        row_index: int = 0,
        arg_index: int = 0,
        retry: bool = False,
    ) -> int:
        count = 0
        try:
            while True:
                with self._transact(retry):
                    rows = self._core.execute(select, args)
                    if not rows:
                        break
                    count += len(rows)
                    self._core.execute(
                        f"DELETE FROM Cache WHERE rowid IN ({','.join(str(int(r[0])) for r in rows)})"
                    )
                    args[arg_index] = rows[-1][row_index]
                self._remove(r[-1] for r in rows)
        except Timeout:
            raise Timeout(count) from None
        return count

    def clear(self, retry: bool = False) -> int:
        """Removes every entry; returns how many. `Timeout(count)` part way."""
        return self._select_delete(
            "SELECT rowid, filename FROM Cache WHERE rowid > ? ORDER BY rowid LIMIT ?",
            [0, 100],
            retry=retry,
        )

    def evict(self, tag: Any, retry: bool = False) -> int:
        """Removes the entries tagged `tag`; returns how many."""
        return self._select_delete(
            "SELECT rowid, filename FROM Cache WHERE tag = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            [tag, 0, 100],
            arg_index=1,
            retry=retry,
        )

    def expire(self, now: float | None = None, retry: bool = False) -> int:
        """Removes the entries expired at `now` (default: the current time); returns how
        many."""
        return self._select_delete(
            "SELECT rowid, expire_time, filename FROM Cache"
            " WHERE ? < expire_time AND expire_time < ? ORDER BY expire_time LIMIT ?",
            [0, now or time.time(), 100],
            row_index=1,
            retry=retry,
        )

    def cull(self, retry: bool = False) -> int:
        """Removes expired entries, then evicts by policy until the volume is under the size
        limit; returns how many were removed."""
        now = time.time()
        count = self.expire(now)
        policy = EVICTION_POLICY[self.eviction_policy]  # type: ignore[attr-defined]
        select = policy["cull"]
        if select is None:
            return 0
        victims = select.format(fields="rowid", now=now)
        try:
            while self.volume() > self.size_limit:  # type: ignore[attr-defined]
                with self._transact(retry):
                    if policy["init"] is not None:
                        self._core.execute(policy["init"])
                    rows = self._core.execute(
                        f"DELETE FROM Cache WHERE rowid IN ({victims}) RETURNING filename", [10]
                    )
                if not rows:
                    break
                count += len(rows)
                self._remove(r[0] for r in rows)
        except Timeout:
            raise Timeout(count) from None
        return count

    # -- tags, statistics, volume, check -------------------------------------------------

    def create_tag_index(self) -> None:
        """Indexes tags (makes `evict` fast)."""
        self._retry(
            self._core.execute, "CREATE INDEX IF NOT EXISTS Cache_tag_rowid ON Cache(tag, rowid)"
        )
        self.reset("tag_index", 1)

    def drop_tag_index(self) -> None:
        """Drops the tag index."""
        self._retry(self._core.execute, "DROP INDEX IF EXISTS Cache_tag_rowid")
        self.reset("tag_index", 0)

    def stats(self, enable: bool = True, reset: bool = False) -> tuple[int, int]:
        """`(hits, misses)` so far; turns counting on or off, and zeroes them with
        `reset=True`."""
        result = (self.reset("hits"), self.reset("misses"))
        if reset:
            self.reset("hits", 0)
            self.reset("misses", 0)
        self.reset("statistics", enable)
        return result

    def volume(self) -> int:
        """Bytes on disk: the database's pages plus the value files."""
        pages = self._retry(self._core.execute, "PRAGMA page_count")[0][0]
        return self._page_size * pages + self.reset("size")

    def check(self, fix: bool = False, retry: bool = False) -> list[warnings.WarningMessage]:
        """Checks the database and the value files; returns the warnings found (and with
        `fix=True` repairs what it can)."""
        with warnings.catch_warnings(record=True) as warns:
            warnings.simplefilter("always")
            rows = self._core.execute("PRAGMA integrity_check")
            if len(rows) != 1 or rows[0][0] != "ok":
                for (message,) in rows:
                    warnings.warn(message, stacklevel=2)
            if fix:
                self._core.execute("VACUUM")
            with self._transact(retry):
                known = set()
                for rowid, size, filename in self._core.execute(
                    "SELECT rowid, size, filename FROM Cache WHERE filename IS NOT NULL"
                ):
                    full_path = op.join(self._directory, filename)
                    known.add(full_path)
                    if op.exists(full_path):
                        real = op.getsize(full_path)
                        if size != real:
                            warnings.warn(
                                f"wrong file size: {full_path}, {real} != {size}", stacklevel=2
                            )
                            if fix:
                                self._core.execute(
                                    "UPDATE Cache SET size = ? WHERE rowid = ?", [real, rowid]
                                )
                        continue
                    warnings.warn(f"file not found: {full_path}", stacklevel=2)
                    if fix:
                        self._core.execute("DELETE FROM Cache WHERE rowid = ?", [rowid])
                for dirpath, _, files in os.walk(self._directory):
                    for name in files:
                        full_path = op.join(dirpath, name)
                        if full_path in known or name.startswith(DBNAME):
                            continue
                        warnings.warn(
                            f"unknown file: {full_path}", UnknownFileWarning, stacklevel=2
                        )
                        if fix:
                            os.remove(full_path)
                for dirpath, dirs, files in os.walk(self._directory, topdown=False):
                    if not (dirs or files) and dirpath != self._directory:
                        warnings.warn(f"empty directory: {dirpath}", EmptyDirWarning, stacklevel=2)
                        if fix:
                            os.rmdir(dirpath)
                size = self.reset("size")
                real_size = self._core.execute("SELECT COALESCE(SUM(size), 0) FROM Cache")[0][0]
                if size != real_size:
                    warnings.warn(
                        f"Meta.size != SUM(Cache.size); {size} != {real_size}", stacklevel=2
                    )
                    if fix:
                        self._core.execute("UPDATE Meta SET size = ? WHERE id = 0", [real_size])
        return warns

    # -- iteration and size --------------------------------------------------------------

    def iterkeys(self, reverse: bool = False) -> Iterator[Any]:
        """Iterates over the keys in database order of their stored cells (ints, then
        floats and text, then bytes and pickles), ascending or descending."""
        if reverse:
            first = "SELECT key, raw FROM Cache ORDER BY key DESC, raw DESC LIMIT 1"
            after = (
                "SELECT key, raw FROM Cache WHERE key = ? AND raw < ? OR key < ?"
                " ORDER BY key DESC, raw DESC LIMIT 100"
            )
        else:
            first = "SELECT key, raw FROM Cache ORDER BY key ASC, raw ASC LIMIT 1"
            after = (
                "SELECT key, raw FROM Cache WHERE key = ? AND raw > ? OR key > ?"
                " ORDER BY key ASC, raw ASC LIMIT 100"
            )
        load = self._disk.get
        rows = self._core.execute(first)
        if not rows:
            return
        key, raw = rows[0]
        yield load(key, raw)
        while True:
            rows = self._core.execute(after, [key, raw, key])
            if not rows:
                return
            for key, raw in rows:
                yield load(key, raw)

    def _iter(self, ascending: bool = True) -> Iterator[Any]:
        top = self._core.execute("SELECT MAX(rowid) FROM Cache")[0][0]
        yield None
        if top is None:
            return
        bound = top + 1
        load = self._disk.get
        rowid = 0 if ascending else bound
        order = "ASC" if ascending else "DESC"
        select = f"SELECT rowid, key, raw FROM Cache WHERE ? < rowid AND rowid < ? ORDER BY rowid {order} LIMIT 100"
        while True:
            args = [rowid, bound] if ascending else [0, rowid]
            rows = self._core.execute(select, args)
            if not rows:
                return
            for rowid, key, raw in rows:
                yield load(key, raw)

    def __iter__(self) -> Iterator[Any]:
        it = self._iter()
        next(it)
        return it

    def __reversed__(self) -> Iterator[Any]:
        it = self._iter(ascending=False)
        next(it)
        return it

    def __len__(self) -> int:
        return self.reset("count")  # COUNT(*): no counter is written on each insert

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Closes this thread's connection (the cache reopens it when used again)."""
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def __getstate__(self) -> tuple[str, float, type]:
        return (self.directory, self.timeout, type(self.disk))

    def __setstate__(self, state: tuple[str, float, type]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._directory!r})"


def _is_plain_key(key: Any) -> bool:
    """Whether `Disk.put` stores `key` as it is (`str`, `bytes`, `float`, 64-bit `int`)."""
    kind = type(key)
    return (
        kind is str
        or kind is bytes
        or kind is float
        or (kind is int and _I64_MIN <= key <= _I64_MAX)
    )


def _pragma_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _setting_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return value
