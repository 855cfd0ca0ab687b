"""The store's background checkpointer (crates/diskstore/src/checkpoint.rs) seen from Python:
`PRAGMA wal_autocheckpoint` reads and sets as SQLite's own does, the configured limit bounds the
`-wal` file of a writing process (0 lets it grow), processes writing at once lose nothing, and a
process killed while checkpoints run loses nothing it had acknowledged."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import diskstore
import diskstore.config

PAGE = 4096


def _open(path: Path | str, limit: int | None = None) -> diskstore.DiskStore:
    pragmas = None if limit is None else {"wal_autocheckpoint": limit}
    return diskstore.DiskStore(path, config=diskstore.config.BaseConfig(pragmas=pragmas))


def _pragma(store: diskstore.DiskStore, sql: str = "PRAGMA wal_autocheckpoint") -> int:
    return store._con.execute(sql).fetchone()[0]


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_pragma_reads_and_sets_as_sqlite_does(tmp_path: Path) -> None:
    store = _open(tmp_path / "p.db")
    plain = sqlite3.connect(tmp_path / "plain.db")
    plain.execute("PRAGMA journal_mode=wal")
    plain.execute("PRAGMA wal_autocheckpoint=5000")
    plain.execute("CREATE TABLE t(k TEXT, v BLOB)")
    try:
        for setting in (None, 123, 1, 0, 5000, -7):
            if setting is not None:
                sql = f"PRAGMA wal_autocheckpoint={setting}"
                # Setting returns the new value, as SQLite's does.
                assert _pragma(store, sql) == plain.execute(sql).fetchone()[0]
            for i in range(20):
                store[f"{setting}-{i}"] = b"x" * 100
                plain.execute("INSERT INTO t VALUES (?, ?)", (f"{setting}-{i}", b"x" * 100))
                plain.commit()
            with store.transact():
                pass
            expected = plain.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            assert _pragma(store) == expected, setting
    finally:
        plain.close()
        store.close()


def test_the_configured_limit_bounds_the_wal_and_zero_lets_it_grow(tmp_path: Path) -> None:
    small = _open(tmp_path / "s.db", 100)
    assert _pragma(small) == 100
    biggest = 0
    for i in range(1500):
        small[f"k{i}"] = b"v" * 3000
        biggest = max(biggest, _wal_bytes(tmp_path / "s.db"))
    assert biggest <= 400 * PAGE, biggest // PAGE
    small.close()

    off = _open(tmp_path / "o.db", 0)
    assert _pragma(off) == 0
    for i in range(1500):
        off[f"k{i}"] = b"v" * 3000
    # Every write is still in the WAL (about one page each): nothing checkpointed.
    assert _wal_bytes(tmp_path / "o.db") >= 1500 * PAGE
    assert len(off) == 1500
    off.close()


WRITER = textwrap.dedent(
    """
    import sys, diskstore, diskstore.config
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = diskstore.DiskStore(
        path, config=diskstore.config.BaseConfig(pragmas={"wal_autocheckpoint": 200})
    )
    out = sys.stdout
    for i in range(n):
        store[f"{name}-{i}"] = b"v" * 3000
        if n > 100000:  # the kill test: acknowledge each write once it has returned
            out.write(f"{i}\\n")
            out.flush()
    """
)


def test_several_processes_writing_without_pause_lose_nothing(tmp_path: Path) -> None:
    # Each process's checkpointer runs against the others' writes (a finishing RESTART
    # checkpoint holds SQLite's write lock while they wait). The WAL's size is not asserted:
    # with several processes writing without a pause it can grow (checkpoint.rs).
    path = tmp_path / "m.db"
    _open(path)["seed"] = b""
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{p}", "1500"])
        for p in range(3)
    ]
    for p in procs:
        p.wait(timeout=300)
    assert all(p.returncode == 0 for p in procs)
    store = _open(path)
    assert len(store) == 4501
    assert all(store.get(f"p{p}-{i}") == b"v" * 3000 for p in range(3) for i in range(1500))
    assert store.check() == []
    store.close()


def test_a_process_killed_while_checkpoints_run_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k.db"
    _open(path)["seed"] = b""
    for run, delay in enumerate((0.3, 0.55, 0.8, 1.1)):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"r{run}", "1000000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        # Let it write until checkpoints are running (the main file grows only by them).
        start = path.stat().st_size
        deadline = time.monotonic() + 30
        while path.stat().st_size == start and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size > start, "no checkpoint ran"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        acknowledged = [int(line) for line in proc.stdout.read().split("\n") if line]
        proc.wait()
        assert len(acknowledged) > 100, len(acknowledged)
        store = _open(path)
        missing = [i for i in acknowledged if store.get(f"r{run}-{i}") is None]
        assert missing == [], missing[:10]
        assert store.check() == []
        store.close()
