"""`DiskRead` and `DiskStore`: both generations of the original API on one engine.

The mapping operations are implemented in Rust (`_diskstore._Reader`/`_Writer`); this
module only resolves constructor arguments, provides views, `transact()` and pickling.
"""

from __future__ import annotations

import os
import threading
from collections.abc import (
    Generator,
    ItemsView,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sequence,
    ValuesView,
)
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from . import _diskstore, sqlite_guard
from . import remote as _remote
from ._model import (
    GENERATION_01,
    TABLE_01,
    TABLE_07,
    Layout,
    create_file,
    default_layout,
    from_config,
    from_value_class,
    is_config,
    settle_default,
    timeout_of,
)
from ._sqlite import Connection
from .config import BaseConfig, NamedTupleConfig
from .value import Value

if TYPE_CHECKING:
    from typing_extensions import Self


_ABSENT = object()


class DiskKeysView(KeysView):
    """The keys of a store, in insertion order; `reversed()` gives newest first."""

    _mapping: DiskRead

    def __iter__(self) -> Iterator[Any]:
        return self._mapping._iter("keys")

    def __reversed__(self) -> Iterator[Any]:
        return self._mapping._iter("keys", True)


class DiskValuesView(ValuesView):
    """The values of a store, in insertion order; `reversed()` gives newest first."""

    _mapping: DiskRead

    def __iter__(self) -> Iterator[Any]:
        return self._mapping._iter("values")

    def __reversed__(self) -> Iterator[Any]:
        return self._mapping._iter("values", True)


class DiskItemsView(ItemsView):
    """The `(key, value)` pairs of a store, in insertion order; `reversed()` gives newest
    first."""

    _mapping: DiskRead

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._iter("items")

    def __reversed__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._iter("items", True)


class DiskRead(_diskstore._Reader, Mapping):
    """A read-only persistent mapping stored in an SQLite file.

    `DiskRead(filename, value_class=None, tablename=None, timeout=None)` (0.1.0 style) or
    `DiskRead(filename, config=...)` (0.7.0 style). With neither `value_class` nor
    `config`, the file decides the value model (see docs/compat.md). Nothing is opened
    until first use; every thread gets its own read-only connection.
    """

    def __new__(cls, filename: Any = None, *args: Any, **kwargs: Any) -> Any:
        """A `postgresql://` URL opens the store on PostgreSQL (`diskstore.remote`)."""
        if _remote.is_url(filename):
            return _remote.open_store(cls, filename, *args, **kwargs)
        return super().__new__(cls, filename, *args, **kwargs)

    def __init__(
        self,
        filename: os.PathLike | str,
        value_class: Any = None,
        tablename: str | None = None,
        timeout: float | None = None,
        *,
        config: Any = None,
    ) -> None:
        if config is None and is_config(value_class):
            config, value_class = value_class, None
        self._setup(
            filename,
            config,
            {"value_class": value_class, "tablename": tablename, "timeout": timeout},
            read_only=True,
        )

    def _setup(
        self, filename: os.PathLike | str, config: Any, old: dict[str, Any], read_only: bool
    ) -> None:
        self._filename = os.path.expanduser(os.fspath(filename))
        sqlite_guard.check_file(self._filename)  # warns if Python's sqlite3 has it open
        self._deferred = threading.local()  # transact() before the model is decided
        self._read_only = read_only
        self._config = config
        self._old_args = {k: v for k, v in old.items() if v is not None}
        self._timeout = timeout_of(old.get("timeout"))
        layout: Layout | None
        if config is not None:
            extra = [k for k, v in old.items() if v is not None and k != "timeout"]
            if extra or old.get("timeout") is not None:
                raise TypeError("config= cannot be combined with the 0.1.0 arguments")
            layout = from_config(config)
            self._timeout = layout.timeout
        elif any(k != "timeout" for k in self._old_args):
            layout = from_value_class(
                old.get("value_class"),
                old.get("tablename"),
                old.get("key_type"),
                old.get("timeout"),
                old.get("alter_table") is not False,
                old.get("pragmas"),
            )
        else:
            layout = None  # the default model: the file or the first value decides
        self._layout = layout

    def _settle(self, value: Any) -> None:
        """Attaches the engine (called by the Rust side on first use)."""
        layout = self._layout
        if layout is None:
            layout = settle_default(self._filename, self._timeout, value, self._read_only)
            if layout is None:
                return
            self._layout = layout
        layout.attach(self, self._filename, self._read_only)
        sqlite_guard.register(self._filename, self)
        self._on_attached()

    def _switch(self, generation: int) -> None:
        """Makes a default-model store use the other generation's table (called by the
        binding when a write names it: a `Value` is 0.1.0 code, anything else 0.7.0)."""
        table = TABLE_01 if generation == GENERATION_01 else TABLE_07
        layout = default_layout(table, self._timeout)
        layout.attach(self, self._filename, self._read_only)
        self._layout = layout

    def _on_attached(self) -> None:
        """Called once the engine is attached (DiskStore begins a deferred transaction)."""

    @property
    def filename(self) -> str:
        """The store file (with `~` expanded)."""
        return self._filename

    @property
    def timeout(self) -> float:
        """The busy timeout in seconds."""
        return self._timeout

    @property
    def tablename(self) -> str | None:
        """The table name (None while a new default-model file has no table yet)."""
        if self._layout is None:
            self._settle(None)
        return None if self._layout is None else self._layout.table

    @property
    def _con(self) -> Connection:
        """This thread's connection, opened if needed, for direct SQL (the original's
        private `_con`, used with `diskstore._sqlite.get_pragma`/`table_columns`)."""
        self._connect()
        return Connection(self)

    @property
    def config(self) -> Any:
        """The config object given to the constructor, or None."""
        return self._config

    @staticmethod
    def get_fields(value_class: type) -> tuple[str, ...]:
        """The field names of a NamedTuple value class (`ValueError` for a field `_key`)."""
        return tuple(name for name, _, _ in NamedTupleConfig.get_fields(value_class))

    def keys(self) -> DiskKeysView:  # type: ignore[override]
        """The keys, in insertion order."""
        return DiskKeysView(self)

    def values(self) -> DiskValuesView:  # type: ignore[override]
        """The values, in insertion order."""
        return DiskValuesView(self)

    def items(self) -> DiskItemsView:  # type: ignore[override]
        """The `(key, value)` pairs, in insertion order."""
        return DiskItemsView(self)

    def query(
        self,
        where: str | None = None,
        parameters: Sequence | Mapping[str, Any] | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Generator[tuple[Any, Any], None, None]:
        """`(key, value)` pairs of `SELECT … [WHERE where] [ORDER BY order]`.

        `where` and `order` are trusted SQL fragments (column names are `_key` and the
        field names); pass values as `parameters`: a sequence for `?` placeholders or a
        dict for `:name` ones. As in SQLite, a negative `limit` means no limit and a
        negative `offset` counts as 0.
        """
        if limit is not None:
            limit = int(limit)
            if limit < 0:
                limit = None
        if offset is not None:
            offset = max(int(offset), 0)
        yield from self._query(where, parameters, order, limit, offset)

    def open(self) -> Self:
        """Opens this thread's connection now; returns self."""
        self._connect()
        return self

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {"filename": self._filename}
        if self._config is not None:
            state["config"] = self._config
        else:
            state.update(self._old_args)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        pragmas = state.pop("pragmas", None) or {}
        self.__init__(**state, **pragmas)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._filename!r})"


class DiskStore(_diskstore._Writer, DiskRead, MutableMapping):
    """A persistent mutable mapping stored in an SQLite file, safe across threads and
    processes.

    `DiskStore(filename, value_class=None, tablename=None, key_type=None, timeout=None,
    alter_table=True, **pragmas)` (0.1.0 style) or `DiskStore(filename, config=...)`
    (0.7.0 style). With neither `value_class` nor `config`, an existing file decides the
    value model, and on a new file the first value written does (a `Value` → 0.1.0
    model, anything else → raw values); see docs/compat.md.
    """

    def __new__(cls, filename: Any = None, *args: Any, **kwargs: Any) -> Any:
        """A `postgresql://` URL opens the store on PostgreSQL (`diskstore.remote`)."""
        if _remote.is_url(filename):
            return _remote.open_store(cls, filename, *args, **kwargs)
        return super().__new__(cls, filename, *args, **kwargs)

    def __init__(
        self,
        filename: os.PathLike | str,
        value_class: Any = None,
        tablename: str | None = None,
        key_type: Any = None,
        timeout: float | None = None,
        alter_table: bool = True,
        *,
        config: Any = None,
        **pragmas: Any,
    ) -> None:
        if config is None and is_config(value_class):
            config, value_class = value_class, None
        old = {
            "value_class": value_class,
            "tablename": tablename,
            "key_type": key_type,
            "timeout": timeout,
            "alter_table": None if alter_table is True else alter_table,
            "pragmas": pragmas or None,
        }
        self._setup(filename, config, old, read_only=False)
        # Create or migrate the table now; a default-model store follows an existing file.
        self._settle(None)
        if not self._is_attached():
            # A new default-model file: the first value decides its table, but the file
            # itself exists from now on, and a bad path fails here.
            create_file(self._filename)

    @staticmethod
    def get_field_types(value_class: type) -> list[str]:
        """The column types of a NamedTuple value class's fields."""
        return [sql_type for _, sql_type, _ in NamedTupleConfig.get_fields(value_class)]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        """Stores every pair of `other` (a mapping, an object with `.keys()`, or pairs)
        and of `kwargs`, in one transaction."""
        if isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118
        else:
            pairs = list(other)  # each is unpacked (and checked) in Rust
        pairs.extend(kwargs.items())
        self._set_many(pairs)

    def get_many(self, keys: Any, default: Any = None) -> list[Any]:
        """The values of `keys` (`default` where missing), read in one transaction (on
        PostgreSQL: one round trip)."""
        keys = list(keys)
        with self.transact():
            return [self.get(k, default) for k in keys]

    def set_many(self, items: Any) -> None:
        """`update(items)`: every pair in one transaction (one round trip on PostgreSQL)."""
        self.update(items)

    def delete_many(self, keys: Any) -> int:
        """Deletes `keys` in one transaction; returns how many were there."""
        n = 0
        with self.transact():
            for k in list(keys):
                found = self.pop(k, _ABSENT)
                n += found is not _ABSENT
        return n

    def clear(self) -> None:
        """Deletes every entry and gives the space back to the file system (VACUUM, when
        no transaction is open)."""
        self._clear(True)

    def check(self, vacuum: bool = False) -> list[str]:
        """SQLite's integrity check: `[]` when healthy, else the problems; then `VACUUM`
        if `vacuum`."""
        messages = self._integrity()
        if vacuum:
            self._vacuum()
        return messages

    def transact(self, retry: bool = False) -> AbstractContextManager[_diskstore.Cursor]:
        """A write transaction on this thread (`BEGIN IMMEDIATE`): every operation of this
        store on this thread inside the block runs in it; it commits at the end and rolls
        back on an exception. Nested blocks join the outer one. Yields a cursor for direct
        SQL on the same connection. `BEGIN` waits for the lock up to the store's timeout,
        then raises `BusyError`; with `retry=True` (0.1.0) it keeps retrying for 60 s
        more."""
        if not self._is_attached() and self.tablename is None:
            return self._deferred_transact()
        return _diskstore._Transaction(self, bool(retry))

    def _on_attached(self) -> None:
        deferred = self._deferred
        if getattr(deferred, "depth", 0) and getattr(deferred, "opened", None) is None:
            deferred.opened = self._begin()  # the transact() block waiting for a table

    @contextmanager
    def _deferred_transact(self) -> Generator[_diskstore.Cursor, None, None]:
        """transact() on a new default-model file: the transaction begins when the first
        write inside the block settles the model (see `_settle`)."""
        deferred = self._deferred
        depth = getattr(deferred, "depth", 0)
        deferred.depth = depth + 1
        if depth == 0:
            deferred.opened = None
        commit = False
        try:
            yield _diskstore._cursor(self)
            commit = True
        finally:
            deferred.depth = depth
            if depth == 0:
                opened, deferred.opened = deferred.opened, None
                if opened is not None:
                    self._end(opened, commit)

    def get_readonly_instance(self) -> DiskRead:
        """A `DiskRead` of the same file and value model."""
        if self._config is not None:
            return DiskRead(self._filename, config=self._config)
        if self._layout is not None and not self._old_args:
            # A settled default model: read the table this store uses now (after a write
            # of the other generation that is no longer the one the file alone decides).
            if self._layout.generation == GENERATION_01:
                return DiskRead(self._filename, Value, TABLE_01, self._timeout)
            return DiskRead(
                self._filename, config=BaseConfig(tablename=TABLE_07, timeout=self._timeout)
            )
        return DiskRead(
            self._filename,
            self._old_args.get("value_class"),
            self._old_args.get("tablename"),
            self._old_args.get("timeout"),
        )


# The PostgreSQL classes that `DiskRead(url)`/`DiskStore(url)` return are virtual subclasses,
# so that `isinstance(DiskStore("postgresql://…"), DiskStore)` holds (ABCMeta's registry: the
# SQLite classes and their method lookups are unchanged).
DiskRead.register(_remote.PgDiskRead)
DiskStore.register(_remote.PgDiskStore)
