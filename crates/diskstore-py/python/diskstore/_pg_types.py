"""PostgreSQL column types of a Python value model's fields.

SQLite keeps the original's layout: a field gets its type from its annotation as
written, so a string annotation (`from __future__ import annotations`) or `Optional[X]`
gives a BLOB column. PostgreSQL has no such file format to keep, so here annotations are
resolved (`typing.get_type_hints`, else each string evaluated in its module) and
`Optional[X]` / `X | None` is `X`, nullable: `bool` gets a `boolean` column, `int`
`bigint`, `float` `double precision`, `str` `text`; JSON models (`JsonConfig`,
`PydanticConfig`) get `jsonb`.
"""

from __future__ import annotations

import builtins
import sys
import types
import typing
from typing import Any

# Field kinds the Rust side takes: a `boolean` column for an INTEGER field, `jsonb` for TEXT.
BOOL, JSON = "bool", "json"
# What evaluating an annotation that names something undefined (or is not Python) raises.
_UNRESOLVED = (NameError, AttributeError, TypeError, SyntaxError, ValueError)


def _resolved(cls: type) -> dict[str, Any]:
    """The field annotations of `cls`, strings evaluated where that works."""
    raw: dict[str, Any] = {}
    for klass in reversed(getattr(cls, "__mro__", (cls,))):
        raw.update(getattr(klass, "__annotations__", {}) or {})
    try:
        hints = typing.get_type_hints(cls)
    except _UNRESOLVED:  # one annotation does not evaluate: resolve the others one by one
        hints = {}
    module = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
    out = {}
    for name, ann in raw.items():
        if name in hints:
            out[name] = hints[name]
        elif isinstance(ann, str):
            try:
                out[name] = eval(ann, dict(module), vars(builtins))
            except _UNRESOLVED:
                out[name] = ann
        else:
            out[name] = ann
    return out


def _unoptional(t: Any) -> Any:
    """`X` of `Optional[X]` / `X | None`; anything else as it is."""
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return t


_SQL = {bool: "INTEGER", int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


def model_columns(
    value_class: Any, fields: list[tuple[str, str, Any]]
) -> tuple[list[tuple[str, str, Any]], list[str | None]]:
    """`(fields, kinds)` for PostgreSQL: each `(name, sql_type, default)` of `fields`
    (the SQLite types) with the type its resolved annotation gives, and per field
    `"bool"` or None."""
    annotations = _resolved(value_class)
    out, kinds = [], []
    for name, sql_type, default in fields:
        t = _unoptional(annotations.get(name))
        known = next((k for k in _SQL if t is k), None)
        if sql_type == "BLOB" and known is not None:
            sql_type = _SQL[known]
        out.append((name, sql_type, default))
        kinds.append(BOOL if t is bool and sql_type == "INTEGER" else None)
    return out, kinds


def json_kinds(fields: list[tuple[str, str, Any]]) -> list[str | None]:
    """`"json"` for the TEXT column of a JSON model."""
    return [JSON if sql_type == "TEXT" else None for _, sql_type, _ in fields]
