"""Resolving constructor arguments (0.1.0 or 0.7.0 style) into one table layout."""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass
from typing import Any

from . import _diskstore
from .config import BaseConfig, NamedTupleConfig, get_sqlite_type
from .const import NO_DEFAULT, TIMEOUT
from .value import Value

#: Table names of the default models: 0.1.0 stores `Value` rows, 0.7.0 raw values.
TABLE_01 = "Value"
TABLE_07 = "DiskStore"
#: Their generation numbers, as the binding knows them.
GENERATION_01 = 0
GENERATION_07 = 1


@dataclass(frozen=True)
class Layout:
    """Everything `_attach` needs besides the path."""

    table: str
    key_type: str
    timeout: float
    pragmas: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, str, Any], ...]
    auto_migrate: bool
    kind: str
    model: Any
    generation: int | None = None
    """For the default model: 0 for the 0.1.0 `"Value"` table, 1 for the 0.7.0
    `"DiskStore"` table (a store switches between them by the values written)."""

    def attach(self, store: Any, path: str, read_only: bool) -> None:
        """Opens the engine of `store` with this layout."""
        store._attach(
            path,
            read_only,
            self.table,
            self.key_type,
            self.timeout,
            list(self.pragmas),
            list(self.fields),
            self.auto_migrate,
            self.kind,
            self.model,
            NO_DEFAULT,
            self.generation,
        )


def is_config(obj: Any) -> bool:
    """True for a config object (not a class) with `dump_value` and `load_data`."""
    return (
        not isinstance(obj, type)
        and callable(getattr(obj, "dump_value", None))
        and callable(getattr(obj, "load_data", None))
    )


def pragma_pairs(pragmas: dict | None) -> tuple[tuple[str, str], ...]:
    """Pragmas as `(name, value)` text pairs (bools as 0/1)."""
    out = []
    for name, value in (pragmas or {}).items():
        if isinstance(value, bool):
            value = int(value)
        out.append((str(name), str(value)))
    return tuple(out)


def timeout_of(timeout: float | None) -> float:
    """The busy timeout: `TIMEOUT` for None or a negative value."""
    return TIMEOUT if timeout is None or timeout < 0 else float(timeout)


def _own_method(obj: Any, name: str, owner: type) -> bool:
    return getattr(type(obj), name, None) is getattr(owner, name)


def from_config(config: Any) -> Layout:
    """The layout of a 0.7.0 config object."""
    fields = tuple(
        (str(name), get_sqlite_type(sql_type), default) for name, sql_type, default in config.fields
    )
    if (
        _own_method(config, "dump_value", BaseConfig)
        and _own_method(config, "load_data", BaseConfig)
        and len(fields) == 1
    ):
        kind, model = "raw", None
    elif (
        isinstance(config, NamedTupleConfig)
        and _own_method(config, "dump_value", NamedTupleConfig)
        and _own_method(config, "load_data", NamedTupleConfig)
    ):
        kind, model = "tuple", config.value_class
    else:
        kind, model = "config", config
    auto = getattr(config, "auto_migrate", True)
    return Layout(
        table=str(config.tablename),
        key_type=get_sqlite_type(getattr(config, "key_type", None) or "BLOB"),
        timeout=timeout_of(getattr(config, "timeout", None)),
        pragmas=pragma_pairs(getattr(config, "pragmas", None)),
        fields=fields,
        auto_migrate=True if auto is None else bool(auto),
        kind=kind,
        model=model,
    )


def key_type_01(key_type: Any) -> str:
    """The 0.1.0 `key_type` rule: str→TEXT, int→INTEGER, float→REAL, anything else→BLOB."""
    if isinstance(key_type, str) and key_type.upper() in ("TEXT", "INTEGER", "REAL", "BLOB"):
        return key_type.upper()
    return {str: "TEXT", int: "INTEGER", float: "REAL"}.get(key_type, "BLOB")


def from_value_class(
    value_class: type | None,
    tablename: str | None,
    key_type: Any,
    timeout: float | None,
    alter_table: bool,
    pragmas: dict | None,
) -> Layout:
    """The layout of a 0.1.0-style store (`value_class`, default `Value`)."""
    value_class = Value if value_class is None else value_class
    if not isinstance(value_class, type) or not hasattr(value_class, "_fields"):
        raise TypeError(f"value_class must be a NamedTuple class, not {value_class!r}")
    if not tablename or tablename == "_Settings":
        tablename = value_class.__name__
    return Layout(
        table=tablename,
        key_type=key_type_01(key_type),
        timeout=timeout_of(timeout),
        pragmas=pragma_pairs(pragmas),
        fields=NamedTupleConfig.get_fields(value_class),
        auto_migrate=bool(alter_table),
        kind="strict-tuple",
        model=value_class,
    )


def default_layout(table: str, timeout: float) -> Layout:
    """The layout of a default-model store once its table is known."""
    if table == TABLE_01:
        layout = from_value_class(Value, TABLE_01, None, timeout, True, None)
        return dataclasses.replace(layout, generation=GENERATION_01)
    layout = from_config(BaseConfig(tablename=TABLE_07, timeout=timeout))
    return dataclasses.replace(layout, generation=GENERATION_07)


def create_file(path: str) -> None:
    """Creates `path` as an empty file (an empty SQLite database) if it does not exist.

    Raises `NotFoundError` when its folder is missing and `ReadOnlyError` when it cannot be
    written, as opening the store would.
    """
    if os.path.exists(path):
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError as e:
        raise _diskstore.NotFoundError(
            f"cannot create the store file {path}: its folder does not exist"
        ) from e
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _diskstore.ReadOnlyError(
                f"cannot create the store file {path}: {e.strerror}"
            ) from e
        raise
    os.close(fd)


def settle_default(path: str, timeout: float, value: Any, read_only: bool) -> Layout | None:
    """Decides the default model: the file's table, or (for a write of `value`) the
    first value's generation, under the write lock. None while undecided."""
    table = _diskstore._file_table(path)
    if table is None:
        if read_only:
            if not os.path.exists(path):
                raise _diskstore.NotFoundError(f"no such store file: {path}")
            return None
        if value is None:
            return None
        table = _diskstore._settle_default(path, timeout, isinstance(value, Value))
    return default_layout(table, timeout)
