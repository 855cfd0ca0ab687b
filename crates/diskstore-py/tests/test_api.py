"""Public names of both generations of the original API."""

from typing import NamedTuple

import diskstore
import pytest
from diskstore import DiskRead, DiskStore, Value, const
from diskstore.config import (
    BaseConfig,
    ConfigProtocol,
    JsonConfig,
    escape_name,
    get_sqlite_type,
    is_bindable_default,
)


class Row(NamedTuple):
    name: str
    n: int = 0
    data: bytes = b""


def test_top_level_names() -> None:
    for name in ("DiskStore", "DiskRead", "Value", "BusyError", "Error", "DEFAULT_PRAGMAS"):
        assert hasattr(diskstore, name), name
    assert diskstore.TIMEOUT == const.TIMEOUT == 10.0
    assert diskstore.DEFAULT_PRAGMAS is const.DEFAULT_PRAGMAS


def test_const_values() -> None:
    assert const.DEFAULT_PRAGMAS["journal_mode"] == "wal"
    assert const.DEFAULT_PRAGMAS["page_size"] == 16384
    assert const.DEFAULT_RO_PRAGMAS == {
        "cache_size": -32768,
        "mmap_size": 2**28,
        "temp_store": 2,
        "synchronous": 1,
    }
    assert const.MISSING is not None and const.NO_DEFAULT is not None


def test_config_helpers() -> None:
    assert [get_sqlite_type(t) for t in (str, int, bool, float, bytes, list, "TEXT")] == [
        "TEXT",
        "INTEGER",
        "INTEGER",
        "REAL",
        "BLOB",
        "BLOB",
        "TEXT",
    ]
    assert escape_name('a"b') == '"a""b"'
    assert is_bindable_default(None) and is_bindable_default(b"") and not is_bindable_default([])
    assert isinstance(JsonConfig(), ConfigProtocol)
    cfg = BaseConfig(timeout=-1, key_type=str)
    # Kept as given (as the original does); a store reads a negative timeout as the default.
    assert cfg.timeout == -1.0 and cfg.key_type == "TEXT"
    assert cfg.tablename == "DiskStore" and cfg.auto_migrate is True


def test_field_helpers() -> None:
    assert DiskRead.get_fields(Row) == ("name", "n", "data")
    assert DiskStore.get_field_types(Row) == ["TEXT", "INTEGER", "BLOB"]
    assert DiskRead.get_fields(Value) == ("value",)


def test_properties(db: str) -> None:
    store = DiskStore(db, value_class=Row, timeout=3)
    assert store.filename == db
    assert store.timeout == 3.0
    assert store.tablename == "Row"
    assert store.get_readonly_instance().tablename == "Row"


def test_settings_tablename_means_the_class_name(db: str) -> None:
    assert DiskStore(db, value_class=Row, tablename="_Settings").tablename == "Row"


def test_diskread_01_style(db: str) -> None:
    DiskStore(db, value_class=Row)["a"] = Row("x", 1)
    reader = DiskRead(db, Row)
    assert reader["a"] == Row("x", 1)
    assert list(reader.query("n = ?", [1])) == [("a", Row("x", 1))]
    with reader as r:
        assert r is reader and len(r) == 1


def test_open_returns_self(db: str) -> None:
    store = DiskStore(db)
    assert store.open() is store


def test_expanduser(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = DiskStore("~/home.db", config=BaseConfig())
    assert store.filename == f"{tmp_path}/home.db"
