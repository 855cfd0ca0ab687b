"""diskstore.diskcache's WAL checkpoints (src/dccore/ckpt.rs, the engine's checkpointer at
diskcache's pace): past 1000 WAL pages a commit hands the checkpoint to a background thread
of the cache; past 4000 the committing call checkpoints itself; `sqlite_wal_autocheckpoint`
sets that limit, and 0 turns automatic checkpoints off (SQLite's meaning). These check what can be seen from outside: the WAL's size, the database file filling
up while nobody writes, the thread ending when idle, data surviving, and `fork()` while
checkpoints run."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from diskstore import diskcache as dc

VALUE = b"v" * 1024
PAGE = 4096
FRAME = PAGE + 24


def _wal_frames(directory: Path) -> int:
    wal = directory / "diskstore-cache.db-wal"
    return max(0, (wal.stat().st_size - 32) // FRAME) if wal.exists() else 0


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _wait_for(test: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.02)
    return test()


def test_the_wal_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "c"))
    # 1 KiB values: 2 to 4 WAL pages per write, so 15,000 writes make 30,000 or more.
    # SQLite's WAL starts over only once all of it is copied, which writes that never
    # pause prevent; so from 4000 pages on the committing call checkpoints itself (it
    # cannot while the background checkpoint holds the checkpoint lock: the WAL may
    # overshoot by what is written meanwhile).
    for i in range(15000):
        c.set(f"key-{i}", VALUE)
    assert _wal_frames(tmp_path / "c") <= 12000
    assert len(c) == 15000
    assert c.get("key-0") == VALUE and c.get("key-14999") == VALUE
    c.close()


def test_a_zero_setting_turns_automatic_checkpoints_off(tmp_path: Path) -> None:
    # wal_autocheckpoint = 0: no automatic checkpoint at all (SQLite's meaning), so the
    # WAL grows past the bound the background checkpoints keep.
    c = dc.Cache(str(tmp_path / "c"), sqlite_wal_autocheckpoint=0)
    for i in range(3000):
        c.set(f"key-{i}", VALUE)
    assert _wal_frames(tmp_path / "c") > 4100
    assert c.sqlite_wal_autocheckpoint == 0
    c.close()


def test_a_checkpoint_runs_in_the_background_and_its_thread_ends(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    c = dc.Cache(str(directory))
    db = directory / "diskstore-cache.db"
    baseline = _threads()
    before = db.stat().st_size
    # Past the background threshold (1000 WAL pages), below the inline one (4000).
    n = 0
    while _wal_frames(directory) < 1300:
        c.set(f"key-{n}", VALUE)
        n += 1
    assert _wal_frames(directory) < 4000
    # Nobody writes now; the pages still reach the database file (a checkpoint copied
    # them) and the thread that did it ends after a second without work.
    assert _wait_for(lambda: db.stat().st_size > before + (n // 2) * 1024)
    assert _wait_for(lambda: _threads() <= baseline)
    # Everything checkpointed: another connection sees every entry.
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("SELECT count(*) FROM Cache").fetchone()[0] == n
        busy, log, done = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and log == done
    finally:
        con.close()
    assert c.get(f"key-{n - 1}") == VALUE
    c.close()


def test_fork_while_checkpoints_run_leaves_a_working_child(tmp_path: Path) -> None:
    """A child forked while the background thread may be inside SQLite opens and uses the
    same cache (the fork waits for the thread to come out, and the child never touches
    the thread's connection)."""
    directory = str(tmp_path / "c")
    c = dc.Cache(directory)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            c.set(f"w-{i}", VALUE)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    children = []
    try:
        for n in range(6):
            time.sleep(0.15)
            pid = os.fork()
            if pid == 0:  # the child: use the cache, then leave without cleanup
                code = 1
                try:
                    mine = dc.Cache(directory)
                    for i in range(300):
                        mine.set(f"child-{n}-{i}", VALUE)
                    ok = mine.get(f"child-{n}-299") == VALUE and c.get(f"child-{n}-0") == VALUE
                    code = 0 if ok else 2
                finally:
                    os._exit(code)
            children.append(pid)
    finally:
        stop.set()
        t.join()
    deadline = time.monotonic() + 60
    codes = {}
    while children and time.monotonic() < deadline:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[pid] = os.waitstatus_to_exitcode(status)
                children.remove(pid)
        time.sleep(0.02)
    for pid in children:  # hung: fail, but do not leave it behind
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert not children, "a forked child hung"
    assert all(code == 0 for code in codes.values()), codes
    assert all(c.get(f"child-{n}-299") == VALUE for n in range(6))
    assert c.check() == []
    c.close()
