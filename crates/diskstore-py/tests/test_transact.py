"""transact(): atomic blocks, nesting, rollback and the cursor."""

from __future__ import annotations

import threading
import time

import pytest
from diskstore import DiskStore
from diskstore.config import BaseConfig


@pytest.fixture
def store(db: str) -> DiskStore:
    return DiskStore(db, config=BaseConfig())


def test_commit_at_the_end(store: DiskStore, db: str) -> None:
    def elsewhere() -> object:  # another thread: another connection
        out: list[object] = []
        t = threading.Thread(target=lambda: out.append(DiskStore(db).get("a")))
        t.start()
        t.join()
        return out[0]

    with store.transact():
        store["a"] = 1
        store["b"] = 2
        assert elsewhere() is None  # not visible to another connection yet
        # Another handle of the file in this thread shares the transaction.
        assert DiskStore(db).get("a") == 1
    assert elsewhere() == 1
    assert dict(DiskStore(db)) == {"a": 1, "b": 2}


def test_exception_rolls_back(store: DiskStore) -> None:
    store["keep"] = 0
    with pytest.raises(RuntimeError), store.transact():
        store["a"] = 1
        del store["keep"]
        raise RuntimeError("boom")
    assert dict(store) == {"keep": 0}


def test_nested_blocks_join_the_outer_one(store: DiskStore) -> None:
    with pytest.raises(KeyError), store.transact():
        with store.transact():
            store["inner"] = 1
        assert store["inner"] == 1
        raise KeyError("outer fails")
    assert "inner" not in store


def test_read_modify_write_in_a_block(store: DiskStore) -> None:
    store["n"] = 0
    for _ in range(10):
        with store.transact():
            store["n"] = store["n"] + 1
    assert store["n"] == 10


def test_cursor_runs_sql_inside_the_transaction(store: DiskStore) -> None:
    with store.transact() as cur:
        store["a"] = 1
        assert cur.execute('SELECT count(*) FROM "DiskStore"').fetchone() == (1,)
        cur.execute('INSERT INTO "DiskStore" (_key, value) VALUES (?, ?)', ("b", 2))
        assert cur.rowcount == 1
        cur.executemany(
            'INSERT INTO "DiskStore" (_key, value) VALUES (:k, :v)',
            [{"k": "c", "v": 3}, {"k": "d", "v": 4}],
        )
        assert cur.rowcount == 2
        rows = list(cur.execute('SELECT _key, value FROM "DiskStore" ORDER BY rowid'))
        assert rows == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
        assert cur.fetchone() is None
        assert cur.execute('SELECT _key FROM "DiskStore" WHERE value > ?', [2]).fetchall() == [
            ("c",),
            ("d",),
        ]
    assert dict(store) == {"a": 1, "b": 2, "c": 3, "d": 4}


def test_cursor_sql_errors_are_sqlerror(store: DiskStore) -> None:
    from diskstore import SQLError

    with pytest.raises(SQLError), store.transact() as cur:
        cur.execute("SELECT * FROM no_such_table")


def test_retry_argument_of_01_is_accepted(store: DiskStore) -> None:
    with store.transact(retry=True):
        store["a"] = 1
    assert store["a"] == 1


def test_clear_inside_a_transaction_skips_vacuum(store: DiskStore) -> None:
    store["a"] = 1
    with store.transact():
        store.clear()
        assert len(store) == 0
    assert len(store) == 0


def test_two_handles_of_one_file_share_the_threads_transaction(db: str) -> None:
    """A second handle (another table, or the same one opened again) used inside the first
    one's transact() joins it at once: one commit or rollback for both, never a wait for
    the thread's own lock."""
    first = DiskStore(db, timeout=5.0)
    log = DiskStore(db, config=BaseConfig(tablename="log", timeout=5.0))
    twin = DiskStore(db, timeout=5.0)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError), first.transact():
        first["a"] = 1
        log["entry"] = "a set"
        twin["b"] = 2
        raise RuntimeError("roll back all three writes")
    assert time.monotonic() - t0 < 2.0
    assert "a" not in first and "b" not in first and "entry" not in log
    with first.transact():
        first["a"] = 1
        log["entry"] = "a set"
    assert first["a"] == 1 and log["entry"] == "a set"
