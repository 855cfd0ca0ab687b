"""The cache's writes without a statement journal (issue 14): the `Meta.size` triggers
use `UPDATE OR IGNORE`, a file made by an earlier version has its triggers replaced when
opened, the size accounting stays exact, and `push` onto a key that is already stored
fails as before and stores nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from diskstore import IntegrityError
from diskstore import diskcache as dc
from diskstore.diskcache.core import _TRIGGERS

# The triggers as versions before 2026-12-07 made them (a plain `UPDATE`).
OLD_TRIGGERS = {
    "Meta_insert": (
        "CREATE TRIGGER Meta_insert AFTER INSERT ON Cache FOR EACH ROW"
        " WHEN NEW.size != 0 BEGIN UPDATE Meta SET size = size + NEW.size WHERE id = 0; END"
    ),
    "Meta_delete": (
        "CREATE TRIGGER Meta_delete AFTER DELETE ON Cache FOR EACH ROW"
        " WHEN OLD.size != 0 BEGIN UPDATE Meta SET size = size - OLD.size WHERE id = 0; END"
    ),
    "Meta_size": (
        "CREATE TRIGGER Meta_size AFTER UPDATE OF size ON Cache FOR EACH ROW"
        " WHEN NEW.size != OLD.size BEGIN"
        " UPDATE Meta SET size = size + NEW.size - OLD.size WHERE id = 0; END"
    ),
}

BIG = b"x" * 100_000  # above disk_min_file_size: a value file, counted in Meta.size


def _triggers(directory: Path) -> dict[str, str]:
    con = sqlite3.connect(directory / dc.core.DBNAME)
    try:
        return dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    finally:
        con.close()


def _file_bytes(directory: Path) -> int:
    return sum(
        p.stat().st_size
        for p in directory.rglob("*")
        if p.is_file() and not p.name.startswith(dc.core.DBNAME)
    )


def test_new_cache_has_the_ignore_triggers(tmp_path: Path) -> None:
    with dc.Cache(str(tmp_path)):
        pass
    assert _triggers(tmp_path) == _TRIGGERS
    assert all("UPDATE OR IGNORE Meta" in sql for sql in _TRIGGERS.values())


def test_old_triggers_are_replaced_and_size_stays_exact(tmp_path: Path) -> None:
    with dc.Cache(str(tmp_path)) as c:
        c.set("a", BIG)
    # Make the file look like an earlier version's.
    con = sqlite3.connect(tmp_path / dc.core.DBNAME)
    with con:
        for name, sql in OLD_TRIGGERS.items():
            con.execute(f"DROP TRIGGER {name}")
            con.execute(sql)
    con.close()
    assert _triggers(tmp_path) == OLD_TRIGGERS

    with dc.Cache(str(tmp_path)) as c:
        assert _triggers(tmp_path) == _TRIGGERS
        assert c.reset("size") == len(BIG) == _file_bytes(tmp_path)
        c.set("b", BIG + BIG)  # insert
        c.set("a", b"y" * 50_000)  # update of size
        assert c.reset("size") == 2 * len(BIG) + 50_000 == _file_bytes(tmp_path)
        c.push(BIG)  # a queue insert
        assert c.reset("size") == 3 * len(BIG) + 50_000
        c.pull()  # a queue delete
        del c["b"]  # delete
        assert c.reset("size") == 50_000 == _file_bytes(tmp_path)
        # A transaction that fails part way leaves the size as it was.
        with pytest.raises(RuntimeError), c.transact():
            c.set("c", BIG)
            c.push(BIG)
            raise RuntimeError("undo")
        assert c.reset("size") == 50_000
        assert "c" not in c
    # Opening again leaves the triggers alone.
    with dc.Cache(str(tmp_path)):
        pass
    assert _triggers(tmp_path) == _TRIGGERS


def test_push_onto_a_stored_key_fails_and_stores_nothing(tmp_path: Path) -> None:
    with dc.Cache(str(tmp_path)) as c:
        # The unnamed queue's keys are 0 < key < 999999999999999: its next key after
        # ...998 is ...999, outside the range the push looks at, and already stored.
        c[999_999_999_999_998] = "last"
        c[999_999_999_999_999] = "outside"
        with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
            c.push("new")
        assert c[999_999_999_999_999] == "outside"
        assert len(c) == 2
        assert not c._core.in_transaction()
        # The same inside a transaction: the error reaches the caller, who may go on.
        with c.transact():
            with pytest.raises(IntegrityError):
                c.push("new")
            c.push("front", side="front")
        assert c[999_999_999_999_997] == "front"
        assert len(c) == 3


def test_deque_pops_and_appends_keep_the_size_of_value_files(tmp_path: Path) -> None:
    q = dc.Deque(directory=str(tmp_path))
    for i in range(6):
        q.append(bytes([i]) * 50_000)
        q.appendleft(i)
    assert q.cache.reset("size") == 6 * 50_000 == _file_bytes(tmp_path)
    assert q.popleft() == 5
    assert q.pop() == bytes([5]) * 50_000
    assert q.cache.reset("size") == 5 * 50_000 == _file_bytes(tmp_path)
    assert list(q) == [4, 3, 2, 1, 0] + [bytes([i]) * 50_000 for i in range(5)]
    q.clear()
    assert q.cache.reset("size") == 0 == _file_bytes(tmp_path)
