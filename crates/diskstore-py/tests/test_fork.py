"""After os.fork() and with multiprocessing, children use their own connections."""

from __future__ import annotations

import multiprocessing
import os
import sys

import pytest
from diskstore import DiskStore
from diskstore.config import BaseConfig

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs fork")


def test_child_after_fork_reads_and_writes(db: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    store["parent"] = 1  # the parent's connection is open now
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's connection
        code = 0
        try:
            assert store["parent"] == 1
            store["child"] = 2
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store["child"] == 2  # the parent's connection still works
    store["after"] = 3
    assert dict(store) == {"parent": 1, "child": 2, "after": 3}


def _add(path: str, worker: int) -> None:
    store = DiskStore(path, config=BaseConfig())
    for i in range(50):
        with store.transact():
            store["n"] = store.get("n", 0) + 1
        store[f"w{worker}-{i}"] = i


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_counters_are_exact(db: str, method: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    store["n"] = 0
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=_add, args=(db, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert store["n"] == 150
    assert len(store) == 1 + 150


def _read_len(store: DiskStore) -> int:
    return len(store)


def test_store_is_sent_to_a_pool_by_pickling(db: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    store.update({i: i for i in range(5)})
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_read_len, [store, store]) == [5, 5]
