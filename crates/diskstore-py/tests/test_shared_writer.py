"""One writer connection per file, from Python threads: every thread's writes run on the
file's shared writer connection while it holds the writer lock, reads outside a transaction
on the thread's own. Transactions of several threads still serialize, see their own writes
and hide them from everyone else until they commit."""

from __future__ import annotations

import threading

import pytest
from diskstore import DiskFullError, DiskStore


def run_all(targets: list) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(f):
        def run() -> None:
            try:
                f()
            except BaseException as e:  # noqa: BLE001 (reported by the caller)
                errors.append(e)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    return errors


def test_transactions_of_many_threads_serialize_and_see_their_own_writes(db: str) -> None:
    store = DiskStore(db)
    store["n"] = 0

    def worker(t: int):
        def run() -> None:
            for i in range(40):
                with store.transact():
                    n = store["n"]
                    store["n"] = n + 1
                    store[f"t{t}-{i}"] = i
                    # Its own writes, read back inside the transaction.
                    assert store["n"] == n + 1
                    assert store[f"t{t}-{i}"] == i

        return run

    assert run_all([worker(t) for t in range(4)]) == []
    assert store["n"] == 160, "an increment was lost: transactions interleaved"
    assert len(store) == 161


def test_other_threads_never_see_a_transaction_before_it_commits(db: str) -> None:
    store = DiskStore(db)
    store["seed"] = 1
    written = threading.Event()
    checked = threading.Event()
    seen: list[object] = []

    def writer() -> None:
        with store.transact():
            for i in range(50):
                store[f"u{i}"] = i
            assert len(store) == 51
            written.set()
            assert checked.wait(30)

    def reader() -> None:
        assert written.wait(30)
        for _ in range(20):
            seen.append((len(store), "u0" in store, store.get("u49")))
        checked.set()

    assert run_all([writer, reader]) == []
    assert set(seen) == {(1, False, None)}
    assert len(store) == 51
    assert store["u49"] == 49


def test_a_failed_transaction_on_one_thread_leaves_the_others_writes(db: str) -> None:
    store = DiskStore(db)

    class Boom(Exception):
        pass

    def failing() -> None:
        for i in range(30):
            try:
                with store.transact():
                    store[f"gone-{i}"] = i
                    raise Boom
            except Boom:
                pass

    def setter(t: int):
        def run() -> None:
            for i in range(100):
                store[f"s{t}-{i}"] = b"v" * 500

        return run

    assert run_all([failing, setter(0), setter(1), setter(2)]) == []
    assert len(store) == 300
    assert not any(k.startswith("gone-") for k in store)
    assert sum(1 for k in store if k.startswith("s")) == 300


def _pragma(store: DiskStore, name: str) -> int:
    return store._con.execute(f"PRAGMA {name}").fetchone()[0]


def _on_writer(store: DiskStore, name: str) -> int:
    """The pragma on the writer connection (inside transact() the cursor runs there)."""
    with store.transact() as cur:
        return cur.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_pragma_set_through_the_connection_reaches_every_threads_writes(db: str) -> None:
    store = DiskStore(db)
    store["a"] = b"1"
    assert _on_writer(store, "synchronous") == 1
    store._con.execute("PRAGMA synchronous = FULL")
    assert _pragma(store, "synchronous") == 2
    assert _on_writer(store, "synchronous") == 2
    seen: list[int] = []

    def other() -> None:
        store["b"] = b"2"
        seen.append(_on_writer(store, "synchronous"))

    assert run_all([other]) == []
    assert seen == [2]
    # A query is only a query: nothing changes.
    assert store._con.execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()


def test_an_autocommitted_write_obeys_a_max_page_count_set_through_a_cursor(db: str) -> None:
    store = DiskStore(db)
    store["seed"] = b"x"
    pages = _pragma(store, "page_count")
    store._con.cursor().execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DiskFullError):
        store["big"] = b"y" * 100_000
    assert "big" not in store
    store["small"] = b"z"
    assert store["small"] == b"z"
    store.close()
