"""Errors: the diskstore.Error hierarchy and the Python exceptions users expect."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import diskstore
import pytest
from diskstore import DiskRead, DiskStore
from diskstore.config import BaseConfig


def test_hierarchy() -> None:
    for name in (
        "BusyError",
        "ReadOnlyError",
        "NotFoundError",
        "NotADatabaseError",
        "CorruptError",
        "DiskFullError",
        "SchemaError",
        "DecodeError",
        "SQLError",
    ):
        cls = getattr(diskstore, name)
        assert issubclass(cls, diskstore.Error), name
        assert cls.__module__ == "diskstore"
    assert issubclass(diskstore.Error, Exception)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(diskstore.NotADatabaseError):
        DiskStore(str(path), config=BaseConfig())
    with pytest.raises(diskstore.NotADatabaseError):
        DiskStore(str(path))["a"] = 1


def test_missing_file_read_only(tmp_path: Path) -> None:
    with pytest.raises(diskstore.NotFoundError):
        DiskRead(str(tmp_path / "none.db"), config=BaseConfig())["a"]


def test_writing_through_diskread_is_impossible(db: str) -> None:
    DiskStore(db, config=BaseConfig())["a"] = 1
    reader = DiskRead(db, config=BaseConfig())
    with pytest.raises(TypeError):
        reader["a"] = 2  # type: ignore[index]


def _make_read_only(path: str) -> None:
    """Makes `path` unwritable even for root (which ignores permission bits)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", path], check=True)
    else:
        os.chmod(path, stat.S_IRUSR)


def _make_writable(path: str) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", path], check=True)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_read_only_file(db: str) -> None:
    writer = DiskStore(db, config=BaseConfig())
    writer["a"] = 1
    writer.close_all()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            _make_read_only(db + suffix)
    try:
        reader = DiskStore(db, config=BaseConfig())
        with pytest.raises(diskstore.ReadOnlyError):
            reader["b"] = 2
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                _make_writable(db + suffix)


def test_schema_mismatch(db: str) -> None:
    DiskStore(db, config=BaseConfig(key_type=str))["a"] = 1
    with pytest.raises(diskstore.SchemaError, match="_key"):
        DiskStore(db, config=BaseConfig(key_type=int))


def test_busy_error_after_the_timeout(db: str) -> None:
    holder = DiskStore(db, config=BaseConfig())
    other = DiskStore(db, config=BaseConfig(timeout=0.2))
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transact():
            holder["h"] = 1
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert entered.wait(10)
        with pytest.raises(diskstore.BusyError):
            other["x"] = 1
    finally:
        release.set()
        t.join()
    other["x"] = 1
    assert dict(other) == {"h": 1, "x": 1}


def test_errors_in_user_code_pass_through(db: str) -> None:
    class Broken(BaseConfig):
        def dump_value(self, key: object, value: object) -> tuple:
            raise ZeroDivisionError("from dump_value")

    store = DiskStore(db, config=Broken())
    with pytest.raises(ZeroDivisionError):
        store["a"] = 1


def test_bad_dump_value_result_is_a_valueerror(db: str) -> None:
    class Short(BaseConfig):
        def dump_value(self, key: object, value: object) -> tuple:
            return (key,)

    with pytest.raises(ValueError, match="dump_value"):
        DiskStore(db, config=Short())["a"] = 1


def test_config_and_01_arguments_do_not_mix(db: str) -> None:
    with pytest.raises(TypeError):
        DiskStore(db, config=BaseConfig(), tablename="x")


def test_bad_pragma_is_refused(db: str) -> None:
    with pytest.raises(diskstore.Error, match="pragma"):
        DiskStore(db, synchronous="1; DROP TABLE x")


# --- issue 12 item 13: catchable as sqlite3's classes, picklable ---------------------------

ALL_ERRORS = (
    "Error",
    "BusyError",
    "ReadOnlyError",
    "NotFoundError",
    "NotADatabaseError",
    "CorruptError",
    "DiskFullError",
    "SchemaError",
    "DecodeError",
    "SQLError",
    "IntegrityError",
)


def test_every_error_is_a_sqlite3_error_of_the_matching_kind() -> None:
    import sqlite3

    for name in ALL_ERRORS:
        assert issubclass(getattr(diskstore, name), sqlite3.Error), name
    for name in ("BusyError", "ReadOnlyError", "NotFoundError", "SQLError", "SchemaError"):
        assert issubclass(getattr(diskstore, name), sqlite3.OperationalError), name
    for name in ("NotADatabaseError", "CorruptError"):
        assert issubclass(getattr(diskstore, name), sqlite3.DatabaseError), name
    assert issubclass(diskstore.IntegrityError, sqlite3.IntegrityError)
    assert issubclass(diskstore.IntegrityError, ValueError)
    from diskstore.diskstore import BusyError, SQLError

    assert BusyError is diskstore.BusyError and SQLError is diskstore.SQLError


@pytest.mark.parametrize("name", ALL_ERRORS)
def test_every_error_pickles(name: str) -> None:
    import pickle

    cls = getattr(diskstore, name)
    back = pickle.loads(pickle.dumps(cls("the message")))
    assert type(back) is cls and str(back) == "the message"


def _raise_busy(_: int) -> None:
    raise diskstore.BusyError("from a worker")


def test_an_error_raised_in_a_pool_worker_reaches_the_parent() -> None:
    import multiprocessing

    with (
        multiprocessing.get_context("spawn").Pool(1) as pool,
        pytest.raises(diskstore.BusyError, match="from a worker"),
    ):
        pool.map(_raise_busy, [1])


def test_engine_errors_are_caught_as_sqlite3_errors(tmp_path: Path) -> None:
    import sqlite3

    with pytest.raises(sqlite3.OperationalError):
        DiskStore(tmp_path / "missing" / "x.db", config=BaseConfig())
    store = DiskStore(tmp_path / "ints.db", config=BaseConfig(key_type=int))
    with pytest.raises(sqlite3.IntegrityError, match="datatype mismatch"):
        store["not a number"] = 1
    with pytest.raises(sqlite3.OperationalError):
        list(store.query(where="no_such_column = 1"))
    with store.transact() as cur, pytest.raises(sqlite3.IntegrityError):
        cur.execute(f'INSERT INTO "{store.tablename}" (_key, value) VALUES (1, NULL)')


def test_errors_carry_sqlite_result_codes_like_sqlite3_errors() -> None:
    from diskstore._sqlite import is_busy

    busy = diskstore.BusyError("locked")
    assert (busy.sqlite_errorcode, busy.sqlite_errorname) == (5, "SQLITE_BUSY")
    assert is_busy(busy) and not is_busy(diskstore.SQLError("syntax"))
    assert diskstore.IntegrityError("x").sqlite_errorname == "SQLITE_CONSTRAINT"
    assert diskstore.NotFoundError("x").sqlite_errorname == "SQLITE_CANTOPEN"
