"""The default value model: neither value_class nor config given."""

from __future__ import annotations

import ast
import sqlite3
import subprocess
import sys

import pytest
from diskstore import DiskRead, DiskStore, Value
from diskstore.config import BaseConfig


def tables(path: str) -> list[str]:
    """The tables of the file, read by Python's sqlite3 module in another process: in this
    one, closing a second SQLite library's handle on the file would drop the process's
    POSIX locks under diskstore's connections."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(sorted(r[0] for r in c.execute(\"SELECT name FROM sqlite_master WHERE type='table'\")))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return ast.literal_eval(out.stdout.strip())


def test_first_value_decides_on_a_new_file_value(db: str) -> None:
    store = DiskStore(db)
    assert store.tablename is None
    assert len(store) == 0 and list(store) == [] and "k" not in store
    store["k"] = Value("v")
    assert tables(db) == ["Value"]
    assert store["k"] == Value("v")
    assert DiskStore(db)["k"] == Value("v")


def test_first_value_decides_on_a_new_file_raw(db: str) -> None:
    store = DiskStore(db)
    store["k"] = 5
    assert tables(db) == ["DiskStore"]
    assert store["k"] == 5
    assert DiskStore(db).tablename == "DiskStore"


def test_an_existing_value_table_decides(db: str) -> None:
    DiskStore(db, value_class=Value)["a"] = Value(1)
    store = DiskStore(db)
    assert store["a"] == Value(1)
    assert store.tablename == "Value"


def test_a_write_of_the_other_generation_uses_its_table(db: str) -> None:
    # 0.1.0 code, then 0.7.0 code on one path: each generation keeps its own table, as
    # with the originals (issue 12 item 11).
    old = DiskStore(db)
    old["a"] = Value(1)
    new = DiskStore(db)  # the file has a "Value" table: read as 0.1.0 until ...
    assert new["a"] == Value(1)
    new["b"] = 2  # ... a raw value names 0.7.0: table "DiskStore" from now on
    assert new.tablename == "DiskStore" and dict(new.items()) == {"b": 2}
    assert dict(new.get_readonly_instance().items()) == {"b": 2}
    assert tables(db) == ["DiskStore", "Value"]
    assert dict(old.items()) == {"a": Value(1)}
    old["c"] = Value(3)  # a Value names 0.1.0: its table
    assert dict(old.items()) == {"a": Value(1), "c": Value(3)}
    new["d"] = Value(4)  # and the newer store switches back for a Value
    assert new.tablename == "Value" and new["d"] == Value(4)
    assert new.get_readonly_instance()["d"] == Value(4)
    # A transaction stays on one table: the other generation is refused inside it.
    with new.transact():
        with pytest.raises(ValueError, match="other generation"):
            new["e"] = 5
        new["f"] = Value(6)
    assert new["f"] == Value(6) and "e" not in new
    assert DiskStore(db, config=BaseConfig())["b"] == 2


def test_both_tables_present_means_the_07_model(db: str) -> None:
    DiskStore(db, value_class=Value)["a"] = Value(1)
    DiskStore(db, config=BaseConfig())["b"] = 2
    store = DiskStore(db)
    assert dict(store) == {"b": 2}


def test_two_stores_on_one_new_file_agree(db: str) -> None:
    first, second = DiskStore(db), DiskStore(db)
    first["x"] = 1
    # The file has decided (raw values), so the second store follows it.
    second["y"] = "fine"
    assert second.tablename == "DiskStore"
    assert tables(db) == ["DiskStore"]
    assert dict(first) == {"x": 1, "y": "fine"}


def test_diskread_default_follows_the_file(db: str) -> None:
    DiskStore(db)["a"] = Value("x")
    assert DiskRead(db)["a"] == Value("x")


def test_diskread_of_a_missing_file_raises_not_found(db: str) -> None:
    from diskstore import NotFoundError

    with pytest.raises(NotFoundError):
        len(DiskRead(db))


def test_transact_on_a_new_file_lets_the_first_write_decide(db: str) -> None:
    store = DiskStore(db)
    with store.transact():
        assert len(store) == 0
        store["a"] = Value(1)
        with store.transact():
            store["b"] = Value(2)
    assert tables(db) == ["Value"]
    assert dict(store) == {"a": Value(1), "b": Value(2)}


def test_transact_on_a_new_file_rolls_back_the_first_write(db: str) -> None:
    store = DiskStore(db)
    with pytest.raises(RuntimeError), store.transact():
        store["a"] = 1
        raise RuntimeError
    assert tables(db) == ["DiskStore"]  # the model is decided, the write is not kept
    assert len(store) == 0


def test_cursor_on_a_new_file_settles_the_07_model(db: str) -> None:
    store = DiskStore(db)
    with store.transact() as cur:
        cur.execute('INSERT INTO "DiskStore" (_key, value) VALUES (?, ?)', ("k", 1))
    assert store["k"] == 1


# --- issue 12 item 8 / issue 11: the file exists once the constructor returns --------------


def test_the_file_exists_after_the_constructor(tmp_path) -> None:
    path = tmp_path / "new.db"
    store = DiskStore(path)  # a pathlib.Path, the default model
    assert store.tablename is None
    import os

    assert os.path.exists(store.filename)
    # An empty file is an empty store, for us and for SQLite.
    assert len(DiskRead(path)) == 0
    store["k"] = 1
    assert tables(str(path)) == ["DiskStore"]


@pytest.mark.parametrize("kwargs", [{}, {"config": BaseConfig()}, {"value_class": Value}])
def test_a_bad_path_fails_at_construction(tmp_path, kwargs: dict) -> None:
    import diskstore

    with pytest.raises(diskstore.NotFoundError):
        DiskStore(tmp_path / "no-such-folder" / "x.db", **kwargs)
    with pytest.raises(diskstore.NotFoundError):
        DiskStore("$NO_SUCH_VARIABLE_HERE/x.db", **kwargs)  # never expanded


def test_an_unwritable_place_fails_at_construction_with_readonly() -> None:
    import diskstore

    # /sys is a read-only file system in containers and on hosts alike (even for root).
    with pytest.raises(diskstore.ReadOnlyError):
        DiskStore("/sys/diskstore-test.db")


def test_a_first_write_of_none_is_the_documented_valueerror(db: str) -> None:
    import diskstore

    store = DiskStore(db)
    with pytest.raises(ValueError, match="None") as info:
        store["k"] = None
    assert isinstance(info.value, sqlite3.IntegrityError)
    assert isinstance(info.value, diskstore.IntegrityError)
    assert store.tablename is None  # nothing decided by a refused write


def test_close_all_counts_every_threads_connection_once_decided(db: str) -> None:
    import threading

    store = DiskStore(db)
    assert store.close_all() == 0  # undecided: no table, no connection yet
    store["x"] = 1
    ready, release = threading.Barrier(4), threading.Event()

    def reader() -> None:
        store.get("x")
        ready.wait(5)
        release.wait(5)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    ready.wait(5)
    try:
        assert store.close_all() == 4
    finally:
        release.set()
        for t in threads:
            t.join(5)
    assert store["x"] == 1  # reopened on use
