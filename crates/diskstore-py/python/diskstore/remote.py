"""The same API on a database server: `DiskStore("postgresql://…")` and `DiskRead(...)`
open these classes; `DiskCache("postgresql://…")` and `DiskCache("redis://…")` are
`DiskCache`s whose Rust base talks to the server (see docs/backends.md for what each
backend offers).

A plain path stays SQLite. Several machines can share one PostgreSQL store or cache, or
one Redis cache; the engine (pooled connections, the SQL, Redis commands) is in Rust.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Generator, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import _diskstore
from ._errors import SchemaError
from .const import NO_DEFAULT

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PgDiskRead", "PgDiskStore", "is_url"]

_SCHEMES = ("postgresql://", "postgres://", "postgresql:", "redis://", "rediss://")
_PAGE = 512
_MISSING = object()


def is_url(location: Any) -> bool:
    """True when `location` is a server URL (PostgreSQL or Redis), not a file path."""
    return isinstance(location, str) and location.lower().startswith(_SCHEMES)


def _is_redis(url: str) -> bool:
    return url.lower().startswith(("redis://", "rediss://"))


class PgDiskRead(_diskstore._PgStore, Mapping):
    """A read-only store on PostgreSQL, with the methods of `DiskRead`."""

    _read_only = True
    _url_arg: str
    _options: dict[str, Any]
    _local: threading.local

    def _iter(self, kind: str, reverse: bool = False) -> Iterator[Any]:
        after = None
        while True:
            page = self._page(after, reverse, _PAGE)
            for pos, key, value in page:
                after = pos
                if kind == "keys":
                    yield key
                elif kind == "values":
                    yield value
                else:
                    yield key, value
            if len(page) < _PAGE:
                return

    def __iter__(self) -> Iterator[Any]:
        return self._iter("keys")

    def __reversed__(self) -> Iterator[Any]:
        return self._iter("keys", True)

    def keys(self) -> Any:  # type: ignore[override]
        """The keys, in insertion order."""
        from .store import DiskKeysView

        return DiskKeysView(self)

    def values(self) -> Any:  # type: ignore[override]
        """The values, in insertion order."""
        from .store import DiskValuesView

        return DiskValuesView(self)

    def items(self) -> Any:  # type: ignore[override]
        """The `(key, value)` pairs, in insertion order."""
        from .store import DiskItemsView

        return DiskItemsView(self)

    def query(
        self,
        where: str | None = None,
        parameters: Sequence | Mapping[str, Any] | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Generator[tuple[Any, Any], None, None]:
        """`(key, value)` pairs of `SELECT … [WHERE where] [ORDER BY order]`; `?` and
        `:name` placeholders as on SQLite (translated to PostgreSQL's `$n`). Column
        names are `_key` and the field names."""
        if limit is not None:
            limit = int(limit)
            if limit < 0:
                limit = None
        if offset is not None:
            offset = max(int(offset), 0)
        yield from self._query(where, parameters, order, limit, offset)

    @property
    def filename(self) -> str:
        """The server URL (without its password)."""
        return self.url

    @property
    def config(self) -> Any:
        """The config object given to the constructor, or None."""
        return self._options.get("config")

    def open(self) -> Self:
        """Returns self (connections are made on first use)."""
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen_store, (type(self), self._url_arg, self._options))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class PgDiskStore(PgDiskRead, MutableMapping):
    """A store on PostgreSQL with the methods of `DiskStore`: several processes on
    several machines can share it."""

    _read_only = False

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        """Stores every pair of `other` and `kwargs` in one statement (one round trip)."""
        if isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]  # noqa: SIM118
        else:
            pairs = list(other)
        pairs.extend(kwargs.items())
        self._set_many(pairs)

    def set_many(self, items: Any) -> None:
        """`update()` under the name of the batch API."""
        self.update(items)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Deletes `key` and returns its value (atomic: `DELETE … RETURNING`)."""
        found, value = self._remove(key)
        if found:
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def add(self, key: Any, value: Any) -> Any:
        """Inserts `value` under `key` only if the key is absent (atomic: `INSERT … ON
        CONFLICT DO NOTHING`); returns the key, or None when it already existed."""
        if key is None:
            from ._errors import NotSupportedError

            raise NotSupportedError("add(None, value) (automatic integer keys) on PostgreSQL")
        return key if self._add(key, value) else None

    def transact(self, retry: bool = False) -> Any:
        """A write transaction on this thread, as on SQLite: every operation of this
        store on this thread inside the block runs in it; it commits at the end and
        rolls back on an exception. Write transactions on one table run one at a time
        (an advisory lock, like SQLite's writer lock). Nested blocks join the outer
        one."""
        del retry  # the lock is waited for (up to the URL's lock/statement timeout)
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Generator[Self, None, None]:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            self._begin()
        local.depth = depth + 1
        try:
            yield self
        except BaseException:
            local.depth = depth
            if depth == 0:
                self._end(False)
            raise
        local.depth = depth
        if depth == 0:
            self._end(True)

    def get_readonly_instance(self) -> PgDiskRead:
        """A `DiskRead` of the same table and value model."""
        return _open(PgDiskRead, self._url_arg, self._options)


def _reopen_store(cls: type[PgDiskRead], url: str, options: dict[str, Any]) -> Any:
    return _open(cls, url, options)


def _pg_columns(config: Any, value_class: Any, fields: list) -> tuple[list, list | None]:
    """`(fields, kinds)` for PostgreSQL (see `_pg_types`): resolved annotations of a
    NamedTuple or dataclass model, `jsonb` for JSON models; other configs as given."""
    from ._pg_types import json_kinds, model_columns
    from .config import DataclassConfig, JsonConfig, NamedTupleConfig, PydanticConfig

    if config is not None:
        if type(config) in (JsonConfig, PydanticConfig):
            return fields, json_kinds(fields)
        if type(config) is DataclassConfig:
            value_class = config.dataclass
        elif type(config) is NamedTupleConfig:
            value_class = config.value_class
        else:
            return fields, None
    return model_columns(value_class, fields)


def _model(options: dict[str, Any]) -> tuple[str, Any, Any, Any, Any]:
    """`(table, fields, load, dump, (pg_fields, kinds))` of the constructor arguments:
    `fields` with the SQLite types, `pg_fields` with the PostgreSQL ones."""
    config = options.get("config")
    value_class = options.get("value_class")
    tablename = options.get("tablename")
    if config is not None:
        table = getattr(config, "tablename", None) or tablename or "DiskStore"
        fields = getattr(config, "fields", None)
        from .config import BaseConfig

        if not fields or type(config) is BaseConfig:  # raw values
            return table, None, None, None, None
        fields = [
            (name, sql_type, None if default is NO_DEFAULT else default)
            for name, sql_type, default in fields
        ]

        def load(*values: Any) -> Any:
            return config.load_data((None, *values))

        def dump(value: Any) -> tuple[Any, ...]:
            return tuple(config.dump_value(None, value))[1:]

        return table, fields, load, dump, _pg_columns(config, None, fields)
    if value_class is not None:
        from .config import NamedTupleConfig

        fields = [
            (name, sql_type, None if default is NO_DEFAULT else default)
            for name, sql_type, default in NamedTupleConfig.get_fields(value_class)
        ]
        columns = _pg_columns(None, value_class, fields)
        return tablename or value_class.__name__, fields, value_class, None, columns
    return tablename or "DiskStore", None, None, None, None


def _open(cls: type[PgDiskRead], url: str, options: dict[str, Any]) -> Any:
    table, fields, load, dump, columns = _model(options)
    if columns is None:
        store = cls(url, table, fields, load, dump, cls._read_only, None)
    else:
        pg_fields, kinds = columns
        try:
            store = cls(url, table, pg_fields, load, dump, cls._read_only, kinds)
        except SchemaError:
            if pg_fields == fields:
                raise
            # A table made before annotations were resolved for PostgreSQL: its columns
            # for string-annotated or Optional fields are bytea, holding tagged values.
            kept = [k if f == g else None for f, g, k in zip(fields, pg_fields, kinds or [])]
            store = cls(url, table, fields, load, dump, cls._read_only, kept or None)
    store._url_arg = url
    store._options = options
    store._local = threading.local()
    return store


def open_store(cls: type, url: str, *args: Any, **kwargs: Any) -> Any:
    """The PostgreSQL store for `DiskStore(url, …)` / `DiskRead(url, …)` (`cls`)."""
    from .store import DiskRead, DiskStore

    if _is_redis(url):
        from ._errors import NotSupportedError

        raise NotSupportedError(
            "DiskStore on Redis is not supported (Redis backs DiskCache only); "
            "use a postgresql:// URL"
        )
    writable = issubclass(cls, DiskStore)
    init = DiskStore.__init__ if writable else DiskRead.__init__
    bound = inspect.signature(init).bind(None, url, *args, **kwargs)
    options = {k: v for k, v in bound.arguments.items() if k not in ("self", "filename")}
    extra = options.pop("pragmas", None) or {}
    options = {k: v for k, v in options.items() if v is not None}
    options.pop("alter_table", None)
    options.pop("timeout", None)  # the URL carries connect_timeout / statement_timeout
    options.pop("key_type", None)  # keys keep their type in a tagged bytea column
    if extra:
        from ._errors import NotSupportedError

        raise NotSupportedError(f"SQLite pragmas {sorted(extra)} on PostgreSQL")
    return _open(PgDiskStore if writable else PgDiskRead, url, options)
