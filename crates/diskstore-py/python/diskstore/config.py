"""Value models of the 0.7.0 API: how a value becomes table columns and back.

A config is any object with the `ConfigProtocol` attributes and the two methods
`dump_value(key, value) -> Sequence` (the key first, then one item per field) and
`load_data(row) -> value` (the row has the key at index 0). The classes here cover the
common cases; `BaseConfig` and `NamedTupleConfig` are recognised by the binding and run
without calling back into Python.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .const import NO_DEFAULT, TIMEOUT, AnyLite, KeyType

_SQL_TYPES = ("BLOB", "TEXT", "INTEGER", "REAL")


def get_sqlite_type(type_: Any) -> str:
    """The column type for a Python type: str→TEXT, int and bool→INTEGER, float→REAL,
    anything else→BLOB. The SQL names BLOB/TEXT/INTEGER/REAL pass through unchanged."""
    if isinstance(type_, str) and type_.upper() in _SQL_TYPES:
        return type_.upper()
    if type_ is str:
        return "TEXT"
    if type_ is int or type_ is bool:
        return "INTEGER"
    if type_ is float:
        return "REAL"
    return "BLOB"


def escape_name(name: str) -> str:
    """`name` as a quoted SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def is_bindable_default(value: Any) -> bool:
    """True if `value` can be a column default (None, str, bytes, int or float)."""
    return value is None or isinstance(value, (str, bytes, int, float))


@runtime_checkable
class ConfigProtocol(Protocol):
    """What `DiskStore(filename, config=...)` needs from a config object.

    Attributes: `tablename`, `key_type` (an SQL type name), `timeout` (seconds),
    `pragmas` (dict), `fields` (iterable of `(name, sqlite_type, default)`, default
    `NO_DEFAULT` for none), `auto_migrate` (add missing columns on open).
    """

    tablename: str
    key_type: str
    timeout: float
    pragmas: dict
    fields: Iterable
    auto_migrate: bool

    def dump_value(self, key: Any, value: Any) -> Sequence:
        """The key followed by one item per field."""
        ...

    def load_data(self, data: tuple) -> Any:
        """The value rebuilt from a row whose first item is the key."""
        ...


class BaseConfig:
    """One BLOB column named `value` holding the value as it is (None, int, float, str
    or bytes). Table `"DiskStore"` unless `tablename` is given.

    `key_type`: `int`, `float`, `str`, `bytes` or an SQL type name; default BLOB, which
    accepts keys of every type. `timeout`: seconds to wait for a lock, kept as given (a
    store given a negative value uses the default, `TIMEOUT`). `pragmas`: merged over `DEFAULT_PRAGMAS`.
    `auto_migrate`: add missing columns when the store opens (default True).
    """

    def __init__(
        self,
        *,
        tablename: str | None = None,
        key_type: Any = None,
        timeout: float | None = None,
        pragmas: dict | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        self.tablename: str = "DiskStore" if tablename is None else tablename
        self.key_type: str = "BLOB" if key_type is None else get_sqlite_type(key_type)
        self.timeout: float = TIMEOUT if timeout is None else float(timeout)
        self.pragmas: dict = {} if pragmas is None else dict(pragmas)
        self.auto_migrate: bool = True if auto_migrate is None else bool(auto_migrate)
        self.fields: Sequence[tuple[str, str, Any]] = [("value", "BLOB", NO_DEFAULT)]

    def dump_value(self, key: Any, value: Any) -> Sequence:
        """`(key, value)`."""
        return (key, value)

    def load_data(self, data: tuple) -> Any:
        """The value column of the row."""
        return data[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tablename={self.tablename!r})"


def _annotations(cls: type) -> dict:
    """The field annotations of `cls` as written. String annotations (`from __future__ import
    annotations`) are not resolved, so such fields get BLOB columns, as in the original:
    the same class gives the same file with either library."""
    return dict(getattr(cls, "__annotations__", {}) or {})


def _typed_fields(
    names: Iterable[str], annotations: dict, defaults: dict, owner: object
) -> tuple:
    fields = []
    for name in names:
        if name == "_key":
            raise ValueError(
                f"Name _key is not allowed as a field of {owner}: it is the key column"
            )
        default = defaults.get(name, NO_DEFAULT)
        if default is not NO_DEFAULT and not is_bindable_default(default):
            default = NO_DEFAULT
        fields.append((name, get_sqlite_type(annotations.get(name, bytes)), default))
    return tuple(fields)


def _class_table(cls: type, tablename: str | None) -> str:
    return tablename if tablename else cls.__name__


class NamedTupleConfig(BaseConfig):
    """One column per field of a `typing.NamedTuple` class (types from the annotations,
    BLOB when missing; bindable `_field_defaults` become column defaults). The table is
    named after the class unless `tablename` is given."""

    def __init__(
        self,
        value_class: type,
        tablename: str | None = None,
        key_type: Any = None,
        timeout: float | None = None,
        pragmas: dict | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        super().__init__(
            tablename=_class_table(value_class, tablename),
            key_type=key_type,
            timeout=timeout,
            pragmas=pragmas,
            auto_migrate=auto_migrate,
        )
        self.value_class = value_class
        self.fields = self.get_fields(value_class)

    @staticmethod
    def get_fields(value_class: type) -> tuple:
        """The `(name, sqlite_type, default)` of each field of `value_class`."""
        if not hasattr(value_class, "_fields"):
            raise TypeError(f"{value_class!r} is not a NamedTuple class")
        return _typed_fields(
            value_class._fields,  # type: ignore[attr-defined]
            _annotations(value_class),
            getattr(value_class, "_field_defaults", {}) or {},
            value_class,
        )

    def dump_value(self, key: Any, value: Any) -> Sequence:
        """`(key, *value)`."""
        return (key, *value)

    def load_data(self, data: tuple) -> Any:
        """The NamedTuple rebuilt from the row."""
        return self.value_class._make(data[1:])  # type: ignore[attr-defined]


class JsonConfig(BaseConfig):
    """One TEXT column holding the value as JSON (`json.dumps`/`json.loads`). The table
    is `"DiskStore"` unless `tablename` is given."""

    def __init__(
        self,
        tablename: str | None = None,
        key_type: Any = None,
        timeout: float | None = None,
        pragmas: dict | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        super().__init__(
            tablename=tablename,
            key_type=key_type,
            timeout=timeout,
            pragmas=pragmas,
            auto_migrate=auto_migrate,
        )
        self.fields = (("value", "TEXT", NO_DEFAULT),)

    def dump_value(self, key: Any, value: Any) -> Sequence:
        """`(key, json.dumps(value))`."""
        return (key, json.dumps(value))

    def load_data(self, data: tuple) -> Any:
        """The value parsed from JSON."""
        return json.loads(data[1])


class DataclassConfig(BaseConfig):
    """One column per field of a dataclass (types from the annotations, BLOB when
    missing; bool is INTEGER; bindable field defaults become column defaults). The table
    is named after the class unless `tablename` is given."""

    def __init__(
        self,
        dataclass: type,
        tablename: str | None = None,
        key_type: Any = None,
        timeout: float | None = None,
        pragmas: dict | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        super().__init__(
            tablename=_class_table(dataclass, tablename),
            key_type=key_type,
            timeout=timeout,
            pragmas=pragmas,
            auto_migrate=auto_migrate,
        )
        self.dataclass = dataclass
        self.fields = self.get_fields(dataclass)

    @staticmethod
    def get_fields(dataclass: type) -> tuple:
        """The `(name, sqlite_type, default)` of each field of `dataclass`."""
        if not dataclasses.is_dataclass(dataclass):
            raise ValueError(f"{dataclass!r} is not a dataclass")
        dc_fields = dataclasses.fields(dataclass)
        defaults = {f.name: f.default for f in dc_fields if f.default is not dataclasses.MISSING}
        return _typed_fields(
            [f.name for f in dc_fields], _annotations(dataclass), defaults, dataclass
        )

    def dump_value(self, key: Any, value: Any) -> Sequence:
        """`(key, *fields)`."""
        return (key, *dataclasses.astuple(value))

    def load_data(self, data: tuple) -> Any:
        """The dataclass rebuilt from the row."""
        return self.dataclass(*data[1:])


def _require(model: type, methods: tuple[str, ...], package: str) -> None:
    missing = [m for m in methods if not hasattr(model, m)]
    if missing:
        raise TypeError(
            f"{model!r} lacks {', '.join(missing)}: this config needs a {package} model "
            f"(install {package})"
        )


class _JsonModelConfig(BaseConfig):
    """One column holding a model object as JSON through the model's own dump/validate
    methods (named by the subclass). The table is named after the model."""

    _dump: str
    _validate: str
    _column_type: str
    _package: str

    def __init__(
        self,
        model: type,
        tablename: str | None = None,
        key_type: Any = None,
        timeout: float | None = None,
        pragmas: dict | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        _require(model, (self._dump, self._validate), self._package)
        super().__init__(
            tablename=_class_table(model, tablename),
            key_type=key_type,
            timeout=timeout,
            pragmas=pragmas,
            auto_migrate=auto_migrate,
        )
        self._model = model
        self.fields = (("value", self._column_type, NO_DEFAULT),)

    def dump_value(self, key: Any, value: Any) -> Sequence:
        """`(key, <the model's JSON>)`."""
        return (key, getattr(value, self._dump)())

    def load_data(self, data: tuple) -> Any:
        """The model validated from its JSON."""
        return getattr(self._model, self._validate)(data[1])


class PydanticConfig(_JsonModelConfig):
    """One TEXT column holding a pydantic model as JSON (`model_dump_json` /
    `model_validate_json`). Needs pydantic. The table is named after the model."""

    _dump, _validate, _column_type, _package = (
        "model_dump_json", "model_validate_json", "TEXT", "pydantic")

    @property
    def model(self) -> type:
        """The pydantic model class."""
        return self._model


class StructtypeConfig(_JsonModelConfig):
    """One BLOB column holding a structtype struct as JSON (`struct_dump_json` /
    `struct_validate_json`). Needs structtype. The table is named after the struct."""

    _dump, _validate, _column_type, _package = (
        "struct_dump_json", "struct_validate_json", "BLOB", "structtype")

    @property
    def struct(self) -> type:
        """The struct class."""
        return self._model


__all__ = [
    "NO_DEFAULT",
    "TIMEOUT",
    "AnyLite",
    "BaseConfig",
    "ConfigProtocol",
    "DataclassConfig",
    "JsonConfig",
    "KeyType",
    "NamedTupleConfig",
    "PydanticConfig",
    "StructtypeConfig",
    "escape_name",
    "get_sqlite_type",
    "is_bindable_default",
]
