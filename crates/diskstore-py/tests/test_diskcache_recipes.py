"""diskstore.diskcache's recipes: the same calls as python-diskcache 5.6.3's where results
are deterministic, and mutual exclusion checked across threads and processes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import diskcache as theirs_mod
import pytest
from diskstore import diskcache as dc


@pytest.fixture(params=["Cache", "FanoutCache"])
def caches(request: Any, tmp_path: Path) -> Any:
    kind = request.param
    return (
        getattr(dc, kind)(str(tmp_path / "ours")),
        getattr(theirs_mod, kind)(str(tmp_path / "theirs")),
    )


def test_averager_matches(caches: Any) -> None:
    results = []
    for mod, c in zip((dc, theirs_mod), caches):
        avg = mod.Averager(c, "avg", expire=100, tag="a")
        seen = [avg.get()]
        for v in (1, 2, 6):
            avg.add(v)
            seen.append(avg.get())
        seen.append(avg.pop())
        seen.append(avg.get())
        results.append(seen)
    assert results[0] == results[1] == [None, 1.0, 1.5, 3.0, 3.0, None]


def test_throttle_sleeps_as_diskcache_does(caches: Any) -> None:
    runs = []
    for mod, c in zip((dc, theirs_mod), caches):
        clock = [1000.0]
        sleeps: list[float] = []

        def sleep(seconds: float, clock: list[float] = clock, sleeps: list[float] = sleeps) -> None:
            sleeps.append(round(seconds, 6))
            clock[0] += seconds

        @mod.throttle(c, 2, 1.0, name="t", time_func=lambda clock=clock: clock[0], sleep_func=sleep)
        def work(i: int) -> int:
            return i

        assert [work(i) for i in range(6)] == list(range(6))
        runs.append(sleeps)
    assert runs[0] == runs[1]
    assert len(runs[0]) >= 3


def test_lock_rlock_semaphore_semantics(caches: Any) -> None:
    ours = caches[0]
    lock = dc.Lock(ours, "lock")
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    rlock = dc.RLock(ours, "rlock")
    with rlock, rlock:
        pass
    with pytest.raises(AssertionError):
        rlock.release()
    sem = dc.BoundedSemaphore(ours, "sem", value=2)
    sem.acquire()
    sem.acquire()
    sem.release()
    sem.release()
    with pytest.raises(AssertionError):
        sem.release()


def test_barrier_serializes_threads(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "b"))
    inside = []
    overlap = []

    @dc.barrier(c, dc.Lock)
    def critical() -> None:
        inside.append(1)
        if len(inside) > 1:
            overlap.append(1)
        time.sleep(0.002)
        inside.pop()

    threads = [threading.Thread(target=lambda: [critical() for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap


def _locked_increment(directory: str, kind: str, n: int) -> None:
    c = dc.Cache(directory)
    lock = dc.Lock(c, "L") if kind == "lock" else dc.BoundedSemaphore(c, "S", value=1)
    for _ in range(n):
        with lock:
            # A read-modify-write that loses updates unless the lock excludes the others.
            value = c.get("counter", 0)
            c.set("counter", value + 1)


@pytest.mark.parametrize("kind", ["lock", "semaphore"])
def test_lock_excludes_processes(tmp_path: Path, kind: str) -> None:
    d = str(tmp_path / "mp")
    dc.Cache(d).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_locked_increment, args=(d, kind, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert dc.Cache(d).get("counter") == 120


def _rlock_worker(directory: str, n: int) -> None:
    c = dc.Cache(directory)
    rlock = dc.RLock(c, "R")
    for _ in range(n):
        with rlock:
            with rlock:
                value = c.get("counter", 0)
            c.set("counter", value + 1)


def test_rlock_excludes_processes(tmp_path: Path) -> None:
    d = str(tmp_path / "rl")
    dc.Cache(d).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_rlock_worker, args=(d, 30)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert dc.Cache(d).get("counter") == 60


def test_memoize_stampede_caches_and_recomputes_early(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "s"))
    calls = []

    @dc.memoize_stampede(c, expire=60, name="f")
    def f(x: int) -> int:
        calls.append(x)
        return x * 2

    assert f(2) == 4 and f(2) == 4
    assert calls == [2]
    key = f.__cache_key__(2)
    assert key == ("f", 2, None)
    # Near expiry (a tiny ttl against a long recorded run time) a background recompute runs.
    (value, _took), _ = c.get(key, expire_time=True)
    c.set(key, (value, 1000.0), expire=0.5)
    assert f(2) == 4
    deadline = time.time() + 5
    while len(calls) < 2 and time.time() < deadline:
        time.sleep(0.01)
    assert calls == [2, 2]


def test_recipes_work_across_threads_with_rlock(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "t"))
    rlock = dc.RLock(c, "r")
    total = []

    def work() -> None:
        for _ in range(10):
            with rlock:
                total.append(threading.get_ident())

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(total) == 30
    assert c.get("r")[1] == 0
    assert os.path.isdir(c.directory)
