"""incr from 4 processes x 2 threads is exact; stats written by another process arrive."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from diskstore import DiskCache

PROCESSES = 4
THREADS = 2
INCREMENTS = 200


def _worker(path: str) -> None:
    cache = DiskCache(path, None)

    def run() -> None:
        for _ in range(INCREMENTS):
            cache.incr("counter")
            cache.decr(("tuple", "key"))

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _reader(path: str) -> None:
    cache = DiskCache(path, None)
    for _ in range(5):
        assert cache.get("present") == 1
    assert cache.get("absent") is None


def test_incr_from_four_processes_of_two_threads_is_exact(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    cache = DiskCache(path, None)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(path,)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    total = PROCESSES * THREADS * INCREMENTS
    assert cache["counter"] == total
    assert cache[("tuple", "key")] == -total


def test_stats_from_another_process_arrive(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    cache = DiskCache(path, None)
    cache["present"] = 1
    p = multiprocessing.get_context("spawn").Process(target=_reader, args=(path,))
    p.start()
    p.join()
    assert p.exitcode == 0
    assert cache.stats() == (5, 1)
