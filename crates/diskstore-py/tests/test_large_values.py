"""Large values: DiskCache keeps them in files of their own beside the database; every
store round-trips them whole."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from diskstore import DiskCache, DiskStore, Value

BIG = 100_000


def value_files(db: Path) -> list[Path]:
    root = Path(f"{db}-values")
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def big(seed: int) -> bytes:
    return bytes((i * 31 + seed) % 256 for i in range(BIG))


def test_cache_keeps_large_values_in_files_that_go_with_their_entries(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=0)
    cache["small"] = b"x" * 100
    assert value_files(db) == []
    cache["b"] = big(1)
    cache["t"] = "é" * BIG
    cache["obj"] = {"list": list(range(20_000))}  # pickled, and large
    assert len(value_files(db)) == 3
    assert cache["b"] == big(1)
    assert cache["t"] == "é" * BIG
    assert cache["obj"] == {"list": list(range(20_000))}
    assert cache.volume() >= BIG + 2 * BIG + 3
    before = set(value_files(db))
    cache["b"] = big(2)
    after = set(value_files(db))
    assert len(after) == 3 and after != before
    del cache["b"]
    assert cache.pop("t") == "é" * BIG
    assert len(value_files(db)) == 1
    assert cache.check() == []
    cache.clear()
    assert value_files(db) == []
    assert cache.volume() == 0


def test_a_rolled_back_transaction_keeps_the_files_of_what_it_deleted(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=0)
    cache["k"] = big(1)
    with pytest.raises(RuntimeError), cache.transact():
        del cache["k"]
        cache.clear()
        raise RuntimeError("roll back")
    assert cache["k"] == big(1)
    assert len(value_files(db)) == 1
    with cache.transact():
        del cache["k"]
        assert len(value_files(db)) == 1, "not before the commit"
    assert value_files(db) == []


def test_expiry_removes_the_files(tmp_path: Path) -> None:
    now = [1000.0]
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=10, clock=lambda: now[0])
    cache["k"] = big(1)
    now[0] += 11
    assert cache.get("k") is None
    assert cache.expire() == 1
    assert value_files(db) == []


def test_a_vanished_file_is_a_miss_that_check_reports_and_fixes(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=0)
    cache["k"] = big(1)
    value_files(db)[0].unlink()
    assert "k" in cache  # the row is there until read or fixed
    problems = cache.check()
    assert len(problems) == 1 and "missing" in problems[0]
    cache.check(fix=True)
    assert "k" not in cache
    assert cache.check() == []
    # A read that finds the file gone is a miss and takes the entry with it.
    cache["r"] = big(2)
    value_files(db)[0].unlink()
    assert cache.get("r", "default") == "default"
    assert "r" not in cache
    assert cache.check() == []


@pytest.mark.parametrize("damage", ["truncated", "altered", "zeroed"])
@pytest.mark.parametrize("kind", ["bytes", "str", "pickle"])
def test_a_damaged_file_is_a_miss_never_other_bytes(
    tmp_path: Path, damage: str, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=0)
    value = {"bytes": big(1), "str": "é" * BIG, "pickle": {"n": list(range(20_000))}}[kind]
    cache["k"] = value
    cache["other"] = big(2)
    path = next(p for p in value_files(db) if p.read_bytes() != big(2))
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "altered":
        data[len(data) // 3] ^= 0x20
    else:
        data = bytearray(len(data))
    path.write_bytes(bytes(data))
    assert cache.get("k", "miss") == "miss"
    assert "k" not in cache
    assert len(cache) == 1
    assert cache["other"] == big(2)
    assert cache.check() == []
    assert not path.exists()
    assert "was missing, truncated or altered" in capfd.readouterr().err


ACKER = textwrap.dedent(
    """
    import sys
    from diskstore import DiskCache
    cache = DiskCache(sys.argv[1], default_expiration=0)
    i = 0
    while True:
        cache[i] = bytes([i % 251]) * (300_000 + i)
        print(i, flush=True)  # acknowledged: set() returned
        i += 1
    """
)


@pytest.mark.parametrize("acks", [1, 5, 20])
def test_kill_9_during_large_sets_loses_no_acknowledged_value(tmp_path: Path, acks: int) -> None:
    db = tmp_path / "c.db"
    DiskCache(db, default_expiration=0).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", ACKER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(acks)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cache = DiskCache(db, default_expiration=0)
    for i in acked:
        assert cache[i] == bytes([i % 251]) * (300_000 + i)
    assert not [p for p in cache.check() if "orphan" not in p]


def test_threshold_is_settable_and_pickled(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=0, disk_min_file_size=None)
    cache["k"] = big(1)
    assert value_files(db) == []
    small = DiskCache(db, default_expiration=0, disk_min_file_size=10)
    small["s"] = b"0123456789"
    assert len(value_files(db)) == 1
    again = pickle.loads(pickle.dumps(small))
    again["t"] = b"9876543210"
    assert len(value_files(db)) == 2
    assert cache["s"] == b"0123456789" and cache["k"] == big(1)


def test_a_deletion_by_another_process_removes_the_file(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cache = DiskCache(db, default_expiration=0)
    cache["a"] = big(1)
    cache["b"] = big(2)
    code = f"from diskstore import DiskCache; del DiskCache({str(db)!r}, default_expiration=0)['a']"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert len(value_files(db)) == 1
    assert cache["b"] == big(2)


WRITER = textwrap.dedent(
    """
    import os, sys
    from diskstore import DiskCache
    cache = DiskCache(sys.argv[1], default_expiration=0)
    value = os.urandom(2_000_000)
    print("ready", flush=True)
    i = 0
    while True:
        cache[i % 7] = value
        i += 1
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_a_writer_killed_mid_write_leaves_no_entry_without_its_file(
    tmp_path: Path, delay: float
) -> None:
    db = tmp_path / "c.db"
    DiskCache(db, default_expiration=0).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cache = DiskCache(db, default_expiration=0)
    problems = cache.check()
    assert not [p for p in problems if "missing" in p], problems
    # At most the write in progress and the files whose removal had committed.
    orphans = [p for p in problems if "orphan" in p]
    assert len(orphans) <= 2, problems
    for key in list(cache):
        assert len(cache[key]) == 2_000_000
    referenced = len(cache)
    assert len(value_files(db)) - len(orphans) <= referenced + 1


@pytest.mark.parametrize("kind", ["bytes", "str"])
@pytest.mark.parametrize("record", [False, True])
def test_store_round_trips_large_values(tmp_path: Path, kind: str, record: bool) -> None:
    value: bytes | str = big(3) * 30 if kind == "bytes" else "ü" * (30 * BIG)
    store = DiskStore(tmp_path / "s.db", value_class=Value) if record else DiskStore(tmp_path / "s.db")
    store["k"] = Value(value) if record else value
    got = store["k"]
    assert (got.value if record else got) == value
    store["k"] = Value(value[:10]) if record else value[:10]
    got = store["k"]
    assert (got.value if record else got) == value[:10]
    ba = bytearray(b"ab" * BIG)
    store["ba"] = Value(ba) if record else ba
    got = store["ba"]
    assert (got.value if record else got) == bytes(ba)
