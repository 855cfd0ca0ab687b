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
    assert const.DEFAULT_PRAGMAS["page_size"] == 4096  # the original's is 16384
    assert const.DEFAULT_RO_PRAGMAS == {
        "cache_size": -32768,
        "mmap_size": 2**31 - 2**16,  # the original's is 2**28
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


# --- issue 12 items 1, 2, 7, 13: module paths, version, retry, cursor ---------------------


def test_the_originals_import_lines_work() -> None:
    # Taken from code written for 0.1.0 and 0.7.0 (the full dir() comparison against the
    # installed originals is in test_compat_dropin.py).
    from diskstore import diskread
    from diskstore.config import AnyLite, KeyType, NamedTupleConfig  # noqa: F401
    from diskstore.const import DEFAULT_PRAGMAS, TIMEOUT, AnyLite, KeyType  # noqa: F401, F811
    from diskstore.diskread import BasicType, DiskKeysView, DiskRead, Value  # noqa: F401
    from diskstore.diskstore import BusyError, DiskStore, SQLError  # noqa: F401

    assert diskread.DiskRead is diskstore.DiskRead
    assert diskstore.diskstore.DiskStore is diskstore.DiskStore


def test_version_is_above_every_original() -> None:
    import importlib.metadata

    assert diskstore.__version__ == importlib.metadata.version("diskstore")
    assert tuple(int(p) for p in diskstore.__version__.split(".")[:2]) > (0, 7)


def test_sqlite_helpers_inspect_a_store(tmp_path) -> None:
    from diskstore._sqlite import get_pragma, set_pragma, table_columns

    store = DiskStore(tmp_path / "s.db", config=BaseConfig(key_type=int))
    assert get_pragma(store._con, "journal_mode") == "wal"
    assert [c[1:3] for c in table_columns(store._con, store.tablename)] == [
        ("_key", "INTEGER"),
        ("value", "BLOB"),
    ]
    assert table_columns(store._con, "no such table") == []
    set_pragma(store._con, "cache_size", -1000)
    assert get_pragma(store._con, "cache_size") == -1000
    with pytest.raises(ValueError, match="invalid pragma"):
        get_pragma(store._con, "x; DROP TABLE t")


def test_transact_cursor_has_description_rowcount_lastrowid(tmp_path) -> None:
    store = DiskStore(tmp_path / "s.db", config=BaseConfig(key_type=int))
    with store.transact() as cur:
        assert cur.lastrowid is None and cur.description is None
        cur.execute(f'INSERT INTO "{store.tablename}" (_key, value) VALUES (7, ?)', ("x",))
        assert cur.rowcount == 1 and cur.lastrowid == 7 and cur.description is None
        cur.execute(f'SELECT _key, value AS v FROM "{store.tablename}"')
        assert [d[0] for d in cur.description] == ["_key", "v"]
        assert all(len(d) == 7 and d[1:] == (None,) * 6 for d in cur.description)
        assert cur.fetchall() == [(7, "x")]
        cur.close()
    assert store[7] == "x"


def _hold_lock_in_another_process(path: str, seconds: float):
    import subprocess
    import sys

    code = (
        "import sqlite3, sys, time\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "con.execute('COMMIT')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_transact_retry_waits_past_the_timeout(tmp_path) -> None:
    path = str(tmp_path / "s.db")
    store = DiskStore(path, timeout=0.05)
    store["a"] = Value(1)
    proc = _hold_lock_in_another_process(path, 0.6)
    try:
        with pytest.raises(diskstore.BusyError), store.transact():
            pass  # no retry: BusyError after the 0.05 s timeout
        with store.transact(retry=True):
            store["b"] = Value(2)  # got the lock once the other process let it go
    finally:
        proc.wait(10)
    assert proc.returncode == 0
    assert dict(store.items()) == {"a": Value(1), "b": Value(2)}


def test_sqlite_connect_goes_through_our_engine(tmp_path) -> None:
    from diskstore._sqlite import connect, get_pragma

    path = tmp_path / "c.db"
    store = DiskStore(path, config=BaseConfig())
    store["a"] = 1
    con = connect(path)
    assert get_pragma(con, "journal_mode") == "wal"
    assert con.execute('SELECT _key, value FROM "DiskStore"').fetchall() == [("a", 1)]
    ro = connect(path, readonly=True)
    assert ro.execute('SELECT count(*) FROM "DiskStore"').fetchone() == (1,)
    with pytest.raises(diskstore.ReadOnlyError):
        ro.execute('DELETE FROM "DiskStore"')
    with pytest.raises(diskstore.NotFoundError):
        connect(tmp_path / "missing.db", readonly=True).execute("SELECT 1")
