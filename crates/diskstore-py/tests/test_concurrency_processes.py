"""Concurrency: processes and threads updating shared counters inside transact() must never
lose an update; one handle may be shared by threads, inherited through fork(), or pickled to
spawned processes; a writer blocked past the busy timeout gets diskstore.BusyError.

Everything here runs on the diskstore this interpreter imports (ours; the original 0.7.0 when
the suite is run in a venv holding it, which is how these expectations were validated).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import diskstore
from compat_support import MARK, SUPPORT, mp_increment, orig_python, run

PROCESSES, THREADS, ROUNDS = 4, 2, 60


def _seed(path: str, key: str, value) -> None:
    """Create the store with a first write (transact() on a brand-new file is checked by the
    transact_first_* compat scenarios, not here)."""
    store = diskstore.DiskStore(path)
    store[key] = value
    store.close()


def _run_counter_workers(path: str, pythons: list[str]) -> None:
    procs = [
        subprocess.Popen(
            [python, str(SUPPORT), "counter-worker", path, str(w), str(THREADS), str(ROUNDS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp",
        )
        for w, python in enumerate(pythons)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        result = [ln for ln in out.splitlines() if ln.startswith(MARK)]
        assert result == [MARK + '{"errors": []}'], (out, err)


def _check_counters(path: str) -> None:
    store = diskstore.DiskStore(path)
    total = PROCESSES * THREADS * ROUNDS
    assert store["total"] == total
    assert sum(store[f"slot{i}"] for i in range(3)) == total
    for i in range(3):
        assert store[f"slot{i}"] == PROCESSES * THREADS * len(range(i, ROUNDS, 3))
    for w in range(PROCESSES):
        for t in range(THREADS):
            assert store[f"w{w}t{t}"] == ROUNDS
    assert len(store) == 4 + PROCESSES * THREADS
    assert store.check() == []
    store.close()


def test_processes_times_threads_counters_are_exact(tmp_path):
    path = str(tmp_path / "counters.db")
    _seed(path, "total", 0)
    _run_counter_workers(path, [sys.executable] * PROCESSES)
    _check_counters(path)


def test_ours_and_original_processes_share_one_file(tmp_path):
    """A mixed deployment: two processes run the original 0.7.0, two run ours, all on one
    file; the locking protocols must agree, so no update is lost."""
    path = str(tmp_path / "mixed.db")
    _seed(path, "total", 0)
    original = orig_python("0.7.0")
    _run_counter_workers(path, [original, sys.executable, original, sys.executable])
    _check_counters(path)


def test_threads_sharing_one_handle(tmp_path):
    store = diskstore.DiskStore(str(tmp_path / "threads.db"))
    store["n"] = 0
    errors: list[BaseException] = []
    stop = threading.Event()
    n_threads, rounds = 8, 40

    def writer(t: int) -> None:
        try:
            for i in range(rounds):
                with store.transact():
                    store["n"] = store["n"] + 1
                    store[f"t{t}"] = i
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def reader() -> None:
        try:
            while not stop.is_set():
                items = list(store.items())
                assert len(items) >= 1
                assert items[0][0] == "n"
                assert isinstance(store["n"], int)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in readers + writers:
        th.start()
    for th in writers:
        th.join(timeout=120)
    stop.set()
    for th in readers:
        th.join(timeout=30)
    assert not errors, errors
    assert store["n"] == n_threads * rounds
    assert [store[f"t{t}"] for t in range(n_threads)] == [rounds - 1] * n_threads
    store.close()


def test_transaction_of_one_thread_is_not_joined_by_another(tmp_path):
    """A transaction belongs to its thread: another thread's write neither joins it nor is
    rolled back with it."""
    store = diskstore.DiskStore(str(tmp_path / "own.db"))
    store["seed"] = 0
    inside, writing, other_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            inside.wait(10)
            writing.set()
            store["other"] = 1  # must wait for the first thread's transaction to end
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            other_done.set()

    th = threading.Thread(target=other)
    th.start()
    with pytest.raises(RuntimeError), store.transact():
        store["mine"] = 1
        inside.set()
        # The other thread has reached its write while this transaction is open: had the
        # write joined the transaction, the rollback below would take it away too.
        assert writing.wait(10)
        raise RuntimeError("roll back mine only")
    th.join(30)
    assert not errors, errors
    assert "mine" not in store
    assert store["other"] == 1
    store.close()


def test_fork_children_use_the_inherited_handle(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.fail("no fork start method on this platform")
    store = diskstore.DiskStore(str(tmp_path / "fork.db"))
    store["parent"] = 1  # the parent's connection is open before the fork
    assert list(store.items()) == [("parent", 1)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=mp_increment, args=(store, "forked", 30)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert store["forked"] == 90
    store["parent"] = 2  # the parent's own connection still works
    assert list(store.items()) == [("parent", 2), ("forked", 90)]
    store.close()


def test_spawned_processes_get_a_pickled_handle(tmp_path):
    store = diskstore.DiskStore(str(tmp_path / "spawn.db"))
    store["x"] = 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=mp_increment, args=(store, "spawned", 20)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert store["spawned"] == 40
    store.close()


def test_blocked_writer_gets_busy_error_after_timeout(tmp_path):
    from diskstore.config import BaseConfig

    path = str(tmp_path / "busy.db")
    _seed(path, "seed", 0)
    holder = subprocess.Popen(
        [sys.executable, str(SUPPORT), "hold-write-lock", path, "2.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp",
    )
    try:
        first = holder.stdout.readline()
        assert first.startswith(MARK), (first, holder.stderr.read() if holder.poll() else "")
        store = diskstore.DiskStore(path, config=BaseConfig(timeout=0.3))
        t0 = time.monotonic()
        with pytest.raises(diskstore.BusyError):
            store["blocked"] = 1
        assert time.monotonic() - t0 < 2.0
        store.close()
    finally:
        holder.wait(30)
    assert holder.returncode == 0
    store = diskstore.DiskStore(path)
    assert store["holder"] == 1
    assert "blocked" not in store
    store.close()


def test_worker_script_reports_errors(tmp_path):
    """The worker really reports failures (so the exact-totals test cannot pass vacuously)."""
    bad = tmp_path / "not-a-dir" / "x.db"
    result = run(sys.executable, "counter-worker", str(bad), "0", "1", "1", timeout=60)
    assert result["errors"], result
