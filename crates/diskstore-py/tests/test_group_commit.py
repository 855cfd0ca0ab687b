"""Group commit from Python threads: autocommitted sets of several threads that meet the
writer lock taken share their holder's commit (the engine releases the GIL while a write
waits, so they can). Whether or not a write was grouped, each thread gets its own outcome,
and what it is told matches the file."""

from __future__ import annotations

import math
import threading
import time

import pytest
from diskstore import DiskStore


def start(targets: list) -> list[threading.Thread]:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(60)
        assert not t.is_alive()


def test_sets_from_many_threads_all_land(db: str) -> None:
    store = DiskStore(db)
    errors: list[BaseException] = []

    def writer(t: int):
        def run() -> None:
            try:
                for i in range(300):
                    store[f"k{t}-{i}"] = f"v{t}-{i}".encode() * 30
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        return run

    join(start([writer(t) for t in range(4)]))
    assert errors == []
    assert len(store) == 1200
    for t in range(4):
        for i in range(0, 300, 7):
            assert store[f"k{t}-{i}"] == f"v{t}-{i}".encode() * 30


def test_writes_queued_behind_a_transaction_each_get_their_own_outcome(db: str) -> None:
    store = DiskStore(db)
    outcomes: dict[str, object] = {}

    def put(key: object, value: object, name: str):
        def run() -> None:
            try:
                store[key] = value
                outcomes[name] = "ok"
            except Exception as e:  # noqa: BLE001
                outcomes[name] = e

        return run

    with store.transact():
        store["mine"] = b"tx"
        threads = start(
            [
                put("a", b"1", "a"),
                put(math.nan, b"2", "nan-key"),  # refused before it reaches the engine
                put("c", object(), "bad-value"),  # likewise
                put("d", b"4", "d"),
            ]
        )
        # Give them time to queue behind this transaction (the outcome below does not
        # depend on whether they did).
        time.sleep(0.2)
        # Nothing that reached the engine is acknowledged while the transaction holds
        # the lock.
        assert "a" not in outcomes and "d" not in outcomes
    join(threads)
    assert outcomes["a"] == "ok" and outcomes["d"] == "ok"
    assert isinstance(outcomes["nan-key"], Exception)
    assert isinstance(outcomes["bad-value"], Exception)
    assert store["a"] == b"1" and store["d"] == b"4" and store["mine"] == b"tx"
    assert "c" not in store
    assert len(store) == 3


def test_a_write_refused_in_a_busy_group_leaves_the_others(db: str) -> None:
    store = DiskStore(db)
    refused: list[int] = []
    errors: list[BaseException] = []

    def writer(t: int):
        def run() -> None:
            try:
                for i in range(200):
                    if i % 10 == 0:
                        with pytest.raises(Exception):  # noqa: B017
                            store[math.nan] = b"x"
                        refused.append(1)
                    else:
                        store[f"{t}-{i}"] = b"v" * 1024
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        return run

    join(start([writer(t) for t in range(4)]))
    assert errors == []
    assert len(refused) == 80
    assert len(store) == 4 * 180
