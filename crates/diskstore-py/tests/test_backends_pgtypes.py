"""PostgreSQL column types of bool and JSON fields: a field annotated `bool` gets a
`boolean` column and `JsonConfig`'s value a `jsonb` column; tables made earlier with
`bigint`/`text` columns for them keep working. String and `Optional[...]` annotations
are resolved for PostgreSQL (typed columns), and pydantic models get `jsonb`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple, Optional

import pytest
from backend_servers import server_url, unique
from diskstore import DiskStore, _diskstore
from diskstore.config import DataclassConfig, JsonConfig, PydanticConfig

# The functional form keeps real types under `from __future__ import annotations`.
Task = NamedTuple("Task", [("title", str), ("done", bool), ("count", int)])  # noqa: UP014


# make_dataclass keeps real types too.
Switch = dataclasses.make_dataclass(
    "Switch", [("name", str), ("enabled", bool, dataclasses.field(default=True)), ("level", int, 0)]
)

DOCS = [{"name": "a", "n": [1, 2.5, None], "ok": True}, [], "text", 12345678901234567890]


@pytest.fixture
def url() -> str:
    return server_url("DISKSTORE_TEST_POSTGRES")


def column_type(store: Any, column: str) -> set[str]:
    """The server's type of `column`, seen through the store's own query()."""
    found = set()
    for name in ("boolean", "bigint", "jsonb", "text"):
        if list(store.query(f"pg_typeof({column}) = '{name}'::regtype", limit=1)):
            found.add(name)
    return found


def test_bool_fields_get_boolean_columns(url: str) -> None:
    t = DiskStore(url, Task, unique("task"))
    t["a"] = Task("write", True, 1)
    t["b"] = Task("test", False, 2)
    assert column_type(t, "done") == {"boolean"}
    assert column_type(t, "count") == {"bigint"}
    assert t["a"] == Task("write", True, 1) and t["b"].done == 0
    assert [k for k, _ in t.query("done")] == ["a"]
    assert [k for k, _ in t.query("done = ?", [False])] == ["b"]
    with pytest.raises(ValueError, match="column of type bool"):
        t["c"] = Task("x", 2, 0)  # type: ignore[arg-type]
    assert "c" not in t

    s = DiskStore(url, config=DataclassConfig(Switch, tablename=unique("switch")))
    s["x"] = Switch("lamp")
    s["y"] = Switch("fan", False, 3)
    assert column_type(s, "enabled") == {"boolean"}
    assert s["x"] == Switch("lamp", True, 0) and not s["y"].enabled


def test_json_config_gets_a_jsonb_column(url: str) -> None:
    s = DiskStore(url, config=JsonConfig(tablename=unique("json")))
    for i, doc in enumerate(DOCS):
        s[i] = doc
    assert column_type(s, "value") == {"jsonb"}
    assert [s[i] for i in range(len(DOCS))] == DOCS
    assert [k for k, _ in s.query("value->>'name' = ?", ["a"])] == [0]
    with pytest.raises(ValueError, match="json"):
        s[9] = float("nan")  # json.dumps writes NaN, which is not JSON
    assert 9 not in s


def test_old_bigint_and_text_tables_keep_working(url: str) -> None:
    task, json_table = unique("oldtask"), unique("oldjson")
    # The layouts earlier versions made (no kinds: bigint and text).
    _diskstore._PgStore(
        url, task, [("title", "TEXT", None), ("done", "INTEGER", None), ("count", "INTEGER", None)]
    )
    _diskstore._PgStore(url, json_table, [("value", "TEXT", None)])

    t = DiskStore(url, Task, task)
    t["a"] = Task("write", True, 1)
    t.update({"b": Task("test", False, 2)})
    assert column_type(t, "done") == {"bigint"}
    assert t["a"] == Task("write", True, 1) and t["b"] == Task("test", False, 2)
    assert [k for k, _ in t.query("done = ?", [True])] == ["a"]

    s = DiskStore(url, config=JsonConfig(tablename=json_table))
    s.update({i: doc for i, doc in enumerate(DOCS)})
    assert column_type(s, "value") == {"text"}
    assert [s[i] for i in range(len(DOCS))] == DOCS


def test_unknown_kind_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unknown field kind"):
        _diskstore._PgStore(url, unique("k"), [("v", "TEXT", None)], kinds=["xml"])


# Class bodies under `from __future__ import annotations` (this module): string
# annotations, which SQLite's layout leaves as BLOB columns; PostgreSQL resolves them.
class Item(NamedTuple):
    title: str
    done: bool
    maybe: Optional[bool]  # noqa: UP045 (the spelling under test)
    count: int
    ratio: float | None


@dataclasses.dataclass
class Flags:
    name: "str"  # noqa: UP037 (quoted on purpose)
    enabled: bool | None = None
    level: Optional[int] = 0  # noqa: UP045


def column_types(store: Any, *columns: str) -> list[str]:
    """The server's type of each column, by the store's own query()."""
    names = ("boolean", "bigint", "double precision", "text", "bytea", "jsonb")
    out = []
    for column in columns:
        found = [n for n in names if list(store.query(f"pg_typeof({column}) = '{n}'::regtype"))]
        out.append(found[0] if len(found) == 1 else str(found))
    return out


def test_string_and_optional_annotations_get_typed_columns(url: str) -> None:
    t = DiskStore(url, Item, unique("item"))
    t["a"] = Item("one", True, None, 1, 0.5)
    t["b"] = Item("two", False, True, 2, None)
    assert column_types(t, "title", "done", "maybe", "count", "ratio") == [
        "text",
        "boolean",
        "boolean",
        "bigint",
        "double precision",
    ]
    assert t["a"] == Item("one", 1, None, 1, 0.5)  # type: ignore[arg-type]
    assert t["b"] == Item("two", 0, 1, 2, None)  # type: ignore[arg-type]
    assert [k for k, _ in t.query("maybe")] == ["b"]
    assert [k for k, _ in t.query("maybe IS NULL AND done")] == ["a"]

    s = DiskStore(url, config=DataclassConfig(Flags, tablename=unique("flags")))
    s["x"] = Flags("lamp", True, 3)
    s["y"] = Flags("fan")
    assert column_types(s, "name", "enabled", "level") == ["text", "boolean", "bigint"]
    assert s["x"] == Flags("lamp", 1, 3) and s["y"] == Flags("fan", None, 0)  # type: ignore[arg-type]


def test_tables_with_bytea_for_those_fields_keep_working(url: str) -> None:
    table = unique("olditem")
    # The layout earlier versions made for string annotations: bytea, tagged values.
    old = [(name, "BLOB", None) for name in Item._fields]
    _diskstore._PgStore(url, table, old)
    t = DiskStore(url, Item, table)
    t["a"] = Item("one", True, None, 1, 0.5)
    assert t["a"] == Item("one", True, None, 1, 0.5)
    assert column_types(t, "done", "maybe") == ["bytea", "bytea"]


def test_pydantic_models_get_a_jsonb_column(url: str) -> None:
    class Model:  # the two methods PydanticConfig calls
        def __init__(self, n: int) -> None:
            self.n = n

        def model_dump_json(self) -> str:
            return json.dumps({"n": self.n})

        @classmethod
        def model_validate_json(cls, data: str) -> Model:
            return cls(json.loads(data)["n"])

    s = DiskStore(url, config=PydanticConfig(Model, tablename=unique("pyd")))
    s["m"] = Model(4)
    assert s["m"].n == 4
    assert column_types(s, "value") == ["jsonb"]
    assert [k for k, _ in s.query("(value->>'n')::int = 4")] == ["m"]
