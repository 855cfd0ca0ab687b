"""`FanoutCache.set` in one native call (src/dccore/fanout.rs: the shard by the key's hash,
then the shard's plain set) against python-diskcache 5.6.3: the same shard for every key,
the same values, expiry and tags, value files made and removed as diskcache does, keys and
values the native call leaves to the general path, and a busy shard's `False`."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import diskcache as theirs_mod
import pytest
from diskcache_support import same
from diskstore import diskcache as dc


def _value_files(directory: Path) -> int:
    return sum(1 for _, _, names in os.walk(directory) for name in names if name.endswith(".val"))


def _per_shard(fc: object) -> list[int]:
    return [len(shard) for shard in fc._shards]  # type: ignore[attr-defined]


@pytest.mark.parametrize("disk", ["plain", "json"])
def test_fanout_set_on_every_key_and_value_kind(tmp_path: Path, disk: str) -> None:
    ours_disk, theirs_disk = (
        (dc.Disk, theirs_mod.Disk) if disk == "plain" else (dc.JSONDisk, theirs_mod.JSONDisk)
    )
    ours = dc.FanoutCache(str(tmp_path / "o"), shards=5, disk=ours_disk)
    theirs = theirs_mod.FanoutCache(str(tmp_path / "t"), shards=5, disk=theirs_disk)
    items: dict[object, object] = {
        "raw": b"bytes",
        "text": "text",
        "int": 7,
        "big-int": 2**80,
        "float": 2.5,
        "list": [1, 2],
        "none": None,
        "big": b"x" * 70000,
        "bigtext": "y" * 70000,
        "unicode-ключ": "значение",
        "": "empty key",
        7: "int key",
        2.5: "float key",
    }
    if disk == "plain":
        items[b"k"] = "bytes key"
        items[("t", 1)] = "tuple key"
    for n in range(40):
        items[f"key-{n}"] = n
    for key, value in items.items():
        same(ours, theirs, lambda c, k=key, v=value: c.set(k, v, tag="t"))
    same(ours, theirs, lambda c: c.set("expired", "gone", expire=-1))
    same(ours, theirs, lambda c: c.set("later", "here", expire=60))
    # Every key in the same shard as diskcache's.
    assert _per_shard(ours) == _per_shard(theirs)
    for key in [*items, "expired", "later", "missing"]:
        same(ours, theirs, lambda c, k=key: c.get(k, "D", tag=True))
    same(ours, theirs, lambda c: c.get("later", expire_time=True)[1] is not None)
    same(ours, theirs, lambda c: c.evict("t"))
    assert _per_shard(ours) == _per_shard(theirs)
    ours.close()
    theirs.close()


def test_fanout_set_replacing_a_value_file_removes_it(tmp_path: Path) -> None:
    ours = dc.FanoutCache(str(tmp_path / "o"), shards=4)
    theirs = theirs_mod.FanoutCache(str(tmp_path / "t"), shards=4)
    for fc, top in ((ours, tmp_path / "o"), (theirs, tmp_path / "t")):
        fc.set("k", b"x" * 70000)
        assert _value_files(top) == 1
        # A small value over it: stored in the row, the old file removed.
        assert fc.set("k", b"small") is True
        assert _value_files(top) == 0
        assert fc.get("k") == b"small"
        # A lower `disk_min_file_size` (every shard's): small values go to files too.
        fc.reset("disk_min_file_size", 4)
        assert fc.set("k2", b"12345") is True
        assert _value_files(top) == 1
        assert fc.get("k2") == b"12345"
    ours.close()
    theirs.close()


def test_fanout_set_on_a_locked_shard_returns_false(tmp_path: Path) -> None:
    fc = dc.FanoutCache(str(tmp_path / "f"), shards=2, timeout=0.01)
    fc.set("a", 1)
    fc.set("b", 2)
    # Another thread holds a write transaction on the shard the key goes to.
    shard = fc._shards[fc._hash("key") % 2]
    # A key the general path stores (not a `str`), on the same shard.
    other_key = next(
        k for k in (b"b%d" % i for i in range(100)) if fc._hash(k) % 2 == fc._hash("key") % 2
    )
    inside, done = threading.Event(), threading.Event()

    def hold() -> None:
        with shard.transact():
            shard.set("held", 1)
            inside.set()
            done.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert inside.wait(30)
        assert fc.set("key", "value") is False
        assert fc.set(other_key, "value") is False
        assert "key" not in fc
    finally:
        done.set()
        t.join()
    assert fc.set("key", "value", retry=True) is True
    assert fc.get("key") == "value"
    fc.close()


# -- checkpoints of the shards -------------------------------------------------------------

VALUE = b"v" * 1024
FRAME = 4096 + 24


def _wal_frames(directory: str) -> int:
    wal = os.path.join(directory, "diskstore-cache.db-wal")
    return max(0, (os.path.getsize(wal) - 32) // FRAME) if os.path.exists(wal) else 0


def _fanout_writer(directory: str, worker: int, n: int, out: Any) -> None:
    fc = dc.FanoutCache(directory, shards=2)
    most = 0
    for i in range(n):
        while not fc.set(f"w{worker}-{i}", VALUE):
            pass
        if i % 100 == 0:
            most = max(most, *(_wal_frames(s.directory) for s in fc._shards))
    out.put(most)


def test_shard_wals_stay_bounded_under_writers_in_several_processes(tmp_path: Path) -> None:
    """4 processes write 1 KiB values without a pause into 2 shards (about 7,000 WAL pages
    each per shard): the shards' checkpoints (each process's threads, and a writer's own
    past 4000 pages) keep every WAL far below what was written, and every write is there
    afterwards."""
    directory = str(tmp_path / "f")
    dc.FanoutCache(directory, shards=2).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    n = 2000
    procs = [ctx.Process(target=_fanout_writer, args=(directory, w, n, out)) for w in range(4)]
    for p in procs:
        p.start()
    most = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    # SQLite's default limit is 1000 pages; a writer checkpoints itself from 4000 on.
    assert max(most) < 6000, most
    fc = dc.FanoutCache(directory, shards=2)
    assert len(fc) == 4 * n
    assert all(fc.get(f"w{w}-{i}") == VALUE for w in range(4) for i in (0, n // 2, n - 1))
    fc.close()


def _switches(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def _checkpoint_threads() -> set[int]:
    found = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            if f.read().startswith("diskstore-check"):
                found.add(int(tid))
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")
def test_an_idle_checkpoint_thread_waits_for_a_commit_instead_of_polling(
    tmp_path: Path,
) -> None:
    """Between checkpoints the cache file's thread sleeps until a commit makes a checkpoint
    due (a FanoutCache's writer has one per shard: polling every 2 ms, 8 of them woke
    4,000 times a second)."""
    c = dc.Cache(str(tmp_path / "c"))
    before = _checkpoint_threads()
    i = 0
    # Past 1000 WAL pages: the thread starts and checkpoints.
    while not _checkpoint_threads() - before and i < 20000:
        c.set(f"k{i}", VALUE)
        i += 1
    threads = _checkpoint_threads() - before
    assert threads, "no checkpoint thread started"
    tid = threads.pop()
    time.sleep(0.03)  # its checkpoint ends
    first = _switches(tid)
    # Nobody writes: nothing is due (and the thread stays for 0.25 s after its last work).
    time.sleep(0.1)
    woke = _switches(tid) - first
    # Polling every 2 ms: 36-48 wake-ups measured; waiting: none, or a few for the end of
    # a checkpoint's fsyncs.
    assert woke <= 10, woke
    assert c.get("k0") == VALUE
    c.close()
