"""PostgreSQL column types of bool and JSON fields: a field annotated `bool` gets a
`boolean` column and `JsonConfig`'s value a `jsonb` column; tables made earlier with
`bigint`/`text` columns for them keep working."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import pytest
from backend_servers import server_url, unique
from diskstore import DiskStore, _diskstore
from diskstore.config import DataclassConfig, JsonConfig

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
