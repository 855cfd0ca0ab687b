"""Reliability of the Python package: fork with an open transaction, Ctrl-C (SIGINT) in the
middle of `transact()` and `update()`, and wrong Python types.

The SIGINT tests run a writer in a child interpreter, interrupt it at random moments and
then check, inside the child, that nothing is left locked (another thread writes within
a short time) and, from the parent, that nothing is half-written. `DISKSTORE_SOAK=1`
runs more rounds; `DISKSTORE_SEED` replays a run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import diskstore
import pytest
from diskstore.config import BaseConfig
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

SOAK = os.environ.get("DISKSTORE_SOAK", "") not in ("", "0")
SEED = int(os.environ.get("DISKSTORE_SEED", str(time.time_ns())))


def run_in_fork(body: Callable[[], object]) -> tuple[int, str]:
    """Runs `body` in a forked child; returns its exit code and the repr of its result
    (or of its exception)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            try:
                out = repr(body())
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                out = f"{type(e).__name__}: {e}"
            os.write(write_end, out.encode())
            os.close(write_end)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_fork_without_a_transaction_child_reads_and_writes(db: str) -> None:
    s = diskstore.DiskStore(db)
    s["a"] = 1

    def child() -> object:
        s["c"] = 3  # its own connection; the inherited one is never touched
        return (s["a"], s["c"])

    assert run_in_fork(child) == (0, repr((1, 3)))
    assert dict(s.items()) == {"a": 1, "c": 3}
    s["d"] = 4  # the parent goes on with its own connection
    assert s.check() == []


def test_fork_with_an_open_transaction(db: str) -> None:
    """A child forked while the parent holds the write lock reads committed data on its
    own connection, and cannot take the write lock: SQLite's in-process lock records,
    copied by fork(), still show the parent's lock, so the child's write ends in a clear
    BusyError after the timeout (never a wrong write). The parent commits normally and
    other processes write afterwards as usual."""
    s = diskstore.DiskStore(db, timeout=0.5)
    s["a"] = 1
    with s.transact():
        s["b"] = 2

        def child() -> object:
            seen = (s.get("a"), "b" in s)
            try:
                s["c"] = 3
            except diskstore.BusyError:
                return (seen, "BusyError")
            return (seen, "wrote")

        code, out = run_in_fork(child)
        assert s["b"] == 2
    assert (code, out) == (0, repr(((1, False), "BusyError")))
    assert dict(s.items()) == {"a": 1, "b": 2}, "the parent committed; the child wrote nothing"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import diskstore, sys; diskstore.DiskStore(sys.argv[1])['c'] = 3",
            db,
        ],
        check=True,
        timeout=60,
    )
    assert s["c"] == 3
    assert s.check() == []


CHILD = textwrap.dedent(
    """
    import sys, threading
    import diskstore

    path, mode = sys.argv[1], sys.argv[2]
    s = diskstore.DiskStore(path)
    gen = int(s.get("gen", 0))
    print("READY", flush=True)
    try:
        while True:
            n = 25
            if mode == "transact":
                with s.transact():
                    for i in range(n):
                        s[f"t{gen}:{i}"] = i
                    s[f"m{gen}"] = n
                    s["gen"] = gen + 1
            else:
                batch = {f"t{gen}:{i}": i for i in range(n)}
                batch[f"m{gen}"] = n
                batch["gen"] = gen + 1
                s.update(batch)
            gen += 1
    except KeyboardInterrupt:
        pass
    # Nothing may be left open: a write here commits at once, and another thread (its
    # own connection) sees it and writes too within a short time.
    s["after"] = gen
    result = []
    def other():
        t = diskstore.DiskStore(path)
        result.append(t.get("after"))
        t["other"] = 1
        result.append("wrote")
    th = threading.Thread(target=other, daemon=True)
    th.start()
    th.join(5)
    print("LOCKED" if th.is_alive() else f"FREE {result}", flush=True)
    """
)


def check_all_or_nothing(path: str) -> int:
    s = diskstore.DiskStore(path)
    assert s.check() == []
    rows = dict(s.items())
    markers = {k[1:]: v for k, v in rows.items() if isinstance(k, str) and k.startswith("m")}
    parts: dict[str, set[int]] = {}
    for k in rows:
        if isinstance(k, str) and k.startswith("t"):
            g, i = k[1:].split(":")
            parts.setdefault(g, set()).add(int(i))
    for g, idx in parts.items():
        assert g in markers, f"half-written batch {g}: keys without marker"
        assert idx == set(range(markers[g])), f"half-written batch {g}"
    assert set(markers) == set(parts), "marker without its keys"
    # Every batch up to the recorded generation is there.
    assert set(markers) == {str(g) for g in range(rows.get("gen", 0))}
    return len(markers)


@pytest.mark.parametrize("mode", ["transact", "update"])
def test_sigint_in_the_middle_leaves_nothing_locked_or_half_written(
    tmp_path: Path, mode: str
) -> None:
    rng = random.Random(SEED)
    path = str(tmp_path / "sigint.db")
    rounds = 60 if SOAK else 6
    batches = 0
    diskstore.DiskStore(path)["gen"] = 0  # the file and its value model exist first
    for r in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, path, mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.02, 0.3))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, f"round {r} (seed {SEED}): child failed"
        assert out.strip().startswith("FREE"), f"round {r} (seed {SEED}): {out!r}"
        after = int(out.split("[")[1].split(",")[0])
        batches = check_all_or_nothing(path)
        assert diskstore.DiskStore(path)["after"] == after
    print(f"sigint/{mode}: {rounds} interrupts, {batches} whole batches, 0 half-written")


def test_wrong_python_types_are_clear_errors(db: str) -> None:
    s = diskstore.DiskStore(db)
    s["kept"] = b"data"
    for bad_key in (object(), [1, 2], {"a": 1}, {1, 2}, None):
        with pytest.raises((TypeError, ValueError)):
            s[bad_key] = b"v"
    with pytest.raises(ValueError):
        s[float("nan")] = b"v"
    with pytest.raises((TypeError, ValueError, KeyError)):
        _ = s[float("nan")]
    with pytest.raises((TypeError, ValueError)):
        s["k"] = object()
    with pytest.raises(OverflowError):  # SQLite integers have 64 bits
        s["k"] = 2**64
    with pytest.raises((TypeError, ValueError)):
        s.update([("x", b"1"), ("y", object())])
    assert "x" not in s, "a failed update keeps nothing"
    with pytest.raises(TypeError):
        diskstore.DiskStore(12345)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        list(s.query(where=42))  # type: ignore[arg-type]
    assert dict(s.items()) == {"kept": b"data"}
    assert s.check() == []


@pytest.mark.parametrize(
    "name",
    ['x"; DROP TABLE victim; --', "with space", "Robert'); DROP TABLE victim;--", "ü 表"],
)
def test_table_names_with_sql_stay_names(db: str, name: str) -> None:
    victim = diskstore.DiskStore(db, config=BaseConfig(tablename="victim"))
    victim["precious"] = b"data"
    s = diskstore.DiskStore(db, config=BaseConfig(tablename=name))
    s["k"] = b"v"
    assert s.tablename == name
    assert victim["precious"] == b"data"
    assert s["k"] == b"v"


def test_missing_file_and_foreign_file_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(diskstore.NotFoundError):
        len(diskstore.DiskRead(str(missing)))
    assert not missing.exists()
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database\n" * 50)
    with pytest.raises(diskstore.NotADatabaseError):
        diskstore.DiskStore(str(foreign))["k"] = b"v"
    assert foreign.read_text() == "not a database\n" * 50


EXAMPLES = int(os.environ.get("DISKSTORE_HYPOTHESIS_EXAMPLES", "400" if SOAK else "25"))
keys = st.one_of(st.integers(-3, 3), st.text("abc", max_size=2))
values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.binary(max_size=5))


class StoreAgainstDict(RuleBasedStateMachine):
    """A store and a dict (which keeps insertion order as the store does) get the same
    operations, transactions (committed and rolled back) and reopenings, and must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="rel-hyp-")
        self.path = os.path.join(self.dir, "s.db")
        self.store = diskstore.DiskStore(self.path, config=BaseConfig())
        self.model: dict[object, object] = {}

    @rule(k=keys, v=values)
    def set(self, k: object, v: object) -> None:
        self.store[k] = v
        self.model[k] = v

    @rule(k=keys)
    def delete(self, k: object) -> None:
        if k in self.model:
            del self.store[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.store[k]

    @rule(k=keys)
    def pop(self, k: object) -> None:
        assert self.store.pop(k, "none") == self.model.pop(k, "none")

    @rule()
    def popitem(self) -> None:
        if self.model:
            assert self.store.popitem() == self.model.popitem()
        else:
            with pytest.raises(KeyError):
                self.store.popitem()

    @rule(k=keys, v=values)
    def setdefault(self, k: object, v: object) -> None:
        assert self.store.setdefault(k, v) == self.model.setdefault(k, v)

    @rule(items=st.lists(st.tuples(keys, values), max_size=4))
    def update(self, items: list[tuple[object, object]]) -> None:
        self.store.update(items)
        self.model.update(items)

    @rule(items=st.lists(st.tuples(keys, values), max_size=4), commit=st.booleans())
    def transaction(self, items: list[tuple[object, object]], commit: bool) -> None:
        class Abort(Exception):
            pass

        try:
            with self.store.transact():
                for k, v in items:
                    self.store[k] = v
                if not commit:
                    raise Abort
        except Abort:
            return
        self.model.update(items)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = diskstore.DiskStore(self.path, config=BaseConfig())

    @invariant()
    def agrees(self) -> None:
        assert list(self.store.items()) == list(self.model.items())
        assert len(self.store) == len(self.model)

    def teardown(self) -> None:
        assert self.store.check() == []
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestStoreAgainstDict = StoreAgainstDict.TestCase
TestStoreAgainstDict.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None
)


def test_sigint_right_after_begin_leaves_nothing_open(db: str) -> None:
    """transact() is a native context manager: BEGIN happens in __enter__, and an
    interrupt at the very first bytecode of the block still reaches __exit__, which rolls
    back and releases the lock."""
    s = diskstore.DiskStore(db, timeout=0.5)
    s["a"] = 1
    with pytest.raises(KeyboardInterrupt), s.transact():
        raise KeyboardInterrupt  # Ctrl-C handled at the first bytecode of the block
    with pytest.raises(KeyboardInterrupt), s.transact():
        s["never"] = 1
        raise KeyboardInterrupt  # Ctrl-C after a write: rolled back
    assert "never" not in s
    s["x"] = 2
    seen: list[object] = []

    def other_thread() -> None:
        t = diskstore.DiskStore(db, timeout=0.5)
        seen.append(t.get("x"))
        try:
            t["y"] = 3
            seen.append("wrote")
        except diskstore.BusyError:
            seen.append("busy")

    th = threading.Thread(target=other_thread)
    th.start()
    th.join(10)
    assert seen == [2, "wrote"], "the interrupted transaction was left open"
