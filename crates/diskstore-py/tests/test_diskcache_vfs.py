"""diskstore.diskcache's VFS (src/dccore/vfs.rs): each WAL frame reaches the file in one
write instead of two, with the same bytes. Checked from outside: the write system calls
the writing thread makes per WAL frame (Linux's /proc/thread-self/io), and a WAL left by a process
killed with SIGKILL, recovered by another SQLite (the standard library's), which checks
every frame's checksum over its header and page."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from diskstore import diskcache as dc

PAGE = 4096
FRAME = PAGE + 24


def _wal_frames(directory: Path) -> int:
    wal = directory / "diskstore-cache.db-wal"
    return max(0, (wal.stat().st_size - 32) // FRAME) if wal.exists() else 0


def _write_calls() -> int:
    # This thread's own calls: a checkpoint thread of an earlier test's cache may still
    # be writing elsewhere.
    with open("/proc/thread-self/io") as f:
        for line in f:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    raise AssertionError("no syscw in /proc/thread-self/io")


@pytest.mark.skipif(
    not os.path.exists("/proc/thread-self/io"), reason="needs Linux's /proc/thread-self/io"
)
def test_a_wal_frame_is_one_write(tmp_path: Path) -> None:
    # No automatic checkpoint: the WAL only grows, so its size counts the frames written,
    # and no background thread writes meanwhile.
    c = dc.Cache(str(tmp_path / "c"), sqlite_wal_autocheckpoint=0)
    c.set("warm", b"w")
    frames_before, calls_before = _wal_frames(tmp_path / "c"), _write_calls()
    for i in range(500):
        c.set(f"key-{i}", b"v" * 1024)
    frames = _wal_frames(tmp_path / "c") - frames_before
    calls = _write_calls() - calls_before
    c.close()
    assert frames >= 1000
    # SQLite's own writes: two per frame (header, then page). Ours: one per frame, plus a
    # few others (this thread's other writes, if any).
    assert calls < 1.2 * frames, (calls, frames)


CHILD = textwrap.dedent(
    """
    import sys, time
    from diskstore import diskcache as dc
    c = dc.Cache(sys.argv[1], sqlite_wal_autocheckpoint=0, sqlite_cache_size=20)
    for i in range(2000):
        c.set(f"key-{i}", bytes([i % 251]) * 1500)
    with c.transact():  # a transaction larger than the page cache: frames overwritten in it
        for i in range(2000, 3000):
            c.set(f"key-{i}", bytes([i % 251]) * 1500)
        for i in range(2000, 2500):
            c.set(f"key-{i}", bytes([(i + 1) % 251]) * 1500)
    for i in range(0, 2000, 7):
        c.delete(f"key-{i}")
    print("done", flush=True)
    time.sleep(600)
    """
)


def test_a_wal_left_by_a_killed_process_recovers_in_another_sqlite(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "done"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert _wal_frames(directory) > 1000
    con = sqlite3.connect(str(directory / "diskstore-cache.db"))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(con.execute("SELECT key, value FROM Cache WHERE raw = 1").fetchall())
    finally:
        con.close()
    expected = {}
    for i in range(3000):
        if i < 2000 and i % 7 == 0:
            continue
        byte = (i + 1) % 251 if 2000 <= i < 2500 else i % 251
        expected[f"key-{i}"] = bytes([byte]) * 1500
    assert rows == expected
    # And ours reads it the same way.
    c = dc.Cache(str(directory))
    assert len(c) == len(expected)
    assert all(c.get(k) == v for k, v in expected.items())
    c.close()
