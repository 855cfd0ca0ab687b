"""len() is served from a cached count (crates/diskstore/src/count.rs): it must stay exact when
the ORIGINAL library (0.7.0, apsw), other processes and other threads write the same file, and
across rollbacks, savepoints, clear() and failed writes. Each check compares len() with the
keys actually listed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from compat_support import orig_python
from diskstore import DiskStore


def listed(ds: DiskStore) -> int:
    return sum(1 for _ in ds)


def exact(ds: DiskStore) -> int:
    n = len(ds)
    assert n == listed(ds)
    return n


ORIGINAL_WRITES = """
import sys
from diskstore import DiskStore
ds = DiskStore(sys.argv[1])
for i in range(30):
    ds[f"orig{i}"] = i
for i in range(10):
    del ds[f"ours{i}"]
ds["ours50"] = "replaced by the original"
with ds.transact():
    ds["in_tx"] = 1
print(len(ds))
"""


def test_len_is_exact_after_the_original_writes_the_file(tmp_path):
    path = str(tmp_path / "shared.db")
    ds = DiskStore(path)
    ds.update((f"ours{i}", i) for i in range(100))
    assert exact(ds) == 100
    assert len(ds) == 100  # from the cache now
    out = subprocess.run(
        [orig_python("0.7.0"), "-c", ORIGINAL_WRITES, path],
        capture_output=True, text=True, cwd="/tmp", timeout=120, check=True,
    ).stdout
    assert int(out.split()[-1]) == 121  # what the original counts
    assert len(ds) == 121
    assert exact(ds) == 121
    ds["after"] = 1
    assert len(ds) == 122


def test_len_is_exact_after_another_process_and_threads_write(tmp_path):
    path = str(tmp_path / "p.db")
    ds = DiskStore(path)
    ds.update((f"k{i}", i) for i in range(50))
    assert len(ds) == 50
    pid = os.fork()
    if pid == 0:  # the child writes through the inherited handle
        code = 0
        try:
            ds.update((f"child{i}", i) for i in range(7))
            del ds["k0"]
            code = 0 if len(ds) == 56 else 1
        except BaseException:  # noqa: BLE001
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(ds) == 56

    def writer(t: int) -> None:
        for i in range(20):
            ds[f"t{t}-{i}"] = i
        del ds[f"k{t + 1}"]

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ds) == 56 + 60 - 3
    assert exact(ds) == 113


def test_len_follows_rollbacks_savepoints_clear_and_failures(tmp_path):
    ds = DiskStore(str(tmp_path / "r.db"))
    ds.update({"a": 1, "b": 2})
    assert len(ds) == 2

    with pytest.raises(ZeroDivisionError), ds.transact():
        ds["c"] = 3
        assert len(ds) == 3
        1 / 0  # noqa: B018
    assert len(ds) == 2

    with ds.transact() as cur:
        ds["c"] = 3
        cur.execute("SAVEPOINT s")
        ds["d"] = 4
        del ds["a"]
        assert len(ds) == 3
        cur.execute("ROLLBACK TO s")
        cur.execute("RELEASE s")
        assert len(ds) == 3  # a, b, c
    assert exact(ds) == 3

    with ds.transact():
        ds.clear()
        assert len(ds) == 0
        ds["x"] = 1
        assert len(ds) == 1
    assert exact(ds) == 1

    # A batch that fails half-way keeps nothing, and the count knows it.
    class Boom:
        def __iter__(self):
            yield ("y", 1)
            yield ("z",)  # not a pair

    with pytest.raises((TypeError, ValueError)):
        ds.update(Boom())
    assert len(ds) == 1
    ds.update([("y", 1), ("z", 2), ("x", 9)])
    assert exact(ds) == 3
    ds.clear()
    assert len(ds) == 0
    assert exact(ds) == 0
