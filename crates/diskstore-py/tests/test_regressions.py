"""Regression tests for the failures reproduced by /work/shared/repro (issue 11), one or
more per script, named after it (r01 ... r10).

Cases that can hang or poison a process (lost locks, signals, fork) run in a child
interpreter with a time limit, so that a regression fails the test instead of the suite.
"""

from __future__ import annotations

import gc
import json
import math
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import diskstore
import pytest
from diskstore import DiskCache, DiskStore
from diskstore.config import BaseConfig
from diskstore.sqlite_guard import SharedFileWarning

HAS_FORK = hasattr(os, "fork")


def run_child(code: str, *args: str, timeout: float = 90) -> Any:
    """Runs `code` in a new interpreter and returns the JSON it prints last; fails (does
    not hang) when the child does not finish within `timeout` seconds."""
    try:
        done = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child did not finish within {timeout} s (a hang): {e.stderr!r}")
    assert done.returncode == 0, f"child failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- r01: close_all() during a transaction --------------------------------------------

R01_PRELUDE = """
import json, os, sys, threading, time
import diskstore
from diskstore import DiskStore
path = os.path.join(sys.argv[1], "s.db")
"""


def test_r01_close_all_on_another_thread_keeps_a_rolled_back_transaction_whole(
    tmp_path: Path,
) -> None:
    out = run_child(
        R01_PRELUDE
        + textwrap.dedent(
            """
        s = DiskStore(path, timeout=2)
        s["pre"] = 0
        in_txn, closed, result = threading.Event(), threading.Event(), {}
        def a():
            try:
                with s.transact():
                    s["k1"] = 1
                    in_txn.set()
                    closed.wait()
                    s["k2"] = 2
                    raise RuntimeError("roll back please")
            except Exception as e:
                result["exit"] = repr(e)
        t = threading.Thread(target=a); t.start(); in_txn.wait()
        try:
            s.close_all()
        except diskstore.Error as e:
            result["close_all"] = repr(e)
        closed.set(); t.join()
        def b():
            try:
                s["after"] = 3; result["b"] = "ok"
            except Exception as e:
                result["b"] = repr(e)
        tb = threading.Thread(target=b); tb.start(); tb.join()
        result["file"] = dict(DiskStore(path).items())
        print(json.dumps(result))
        """
        ),
        str(tmp_path),
    )
    assert out["exit"] == "RuntimeError('roll back please')"
    assert out["b"] == "ok"
    assert out["file"] == {"pre": 0, "after": 3}


def test_r01b_close_all_on_another_thread_keeps_a_committed_transaction_whole(
    tmp_path: Path,
) -> None:
    out = run_child(
        R01_PRELUDE
        + textwrap.dedent(
            """
        s = DiskStore(path, timeout=2); s["pre"] = 0
        go1, go2, out = threading.Event(), threading.Event(), {}
        def a():
            try:
                with s.transact():
                    s["k1"] = 1
                    go1.set(); go2.wait()
                    s["k2"] = 2
                out["a"] = "committed"
            except Exception as e:
                out["a"] = repr(e)
            try:
                s["k3"] = 3; out["a2"] = "ok"
            except Exception as e:
                out["a2"] = repr(e)
        t = threading.Thread(target=a); t.start(); go1.wait()
        try:
            s.close_all()
        except diskstore.Error:
            pass
        go2.set(); t.join()
        out["file"] = dict(DiskStore(path).items())
        print(json.dumps(out))
        """
        ),
        str(tmp_path),
    )
    assert out["a"] == "committed"
    assert out["a2"] == "ok"
    assert out["file"] == {"pre": 0, "k1": 1, "k2": 2, "k3": 3}


def test_r01c_update_racing_close_all_never_poisons_the_store(tmp_path: Path) -> None:
    out = run_child(
        R01_PRELUDE
        + textwrap.dedent(
            """
        s = DiskStore(path, timeout=1)
        stop = time.time() + 1.5; errors = {}; done = [0]
        def writer():
            i = 0
            while time.time() < stop:
                try:
                    s.update({i: i, i + 1: i + 1}); i += 2; done[0] = i
                except Exception as e:
                    errors[repr(e)] = errors.get(repr(e), 0) + 1
        t = threading.Thread(target=writer); t.start()
        while time.time() < stop:
            s.close_all(); time.sleep(0.005)
        t.join()
        s["main"] = 1
        n = len(DiskStore(path))
        print(json.dumps({"errors": errors, "written": done[0], "len": n}))
        """
        ),
        str(tmp_path),
    )
    assert out["errors"] == {}
    assert out["len"] == out["written"] + 1


def test_r01d_close_all_inside_this_threads_transaction_loses_nothing(tmp_path: Path) -> None:
    out = run_child(
        R01_PRELUDE
        + textwrap.dedent(
            """
        s = DiskStore(path, timeout=1); out = {}
        try:
            with s.transact():
                s["k1"] = 1
                try:
                    s.close_all()
                except diskstore.Error as e:
                    out["close_all"] = "refused"
                s["k2"] = 2
            out["block"] = "ok"
        except diskstore.Error as e:
            out["block"] = repr(e)
        s["k3"] = 3
        out["file"] = dict(DiskStore(path).items())
        print(json.dumps(out))
        """
        ),
        str(tmp_path),
    )
    assert out["block"] == "ok"
    assert out["file"] == {"k1": 1, "k2": 2, "k3": 3}


# --- r02: Ctrl-C while DiskCache.transact() waits ---------------------------------------


def test_r02_sigint_while_cache_transact_waits_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    out = run_child(
        """
        import json, os, signal, sys, threading, time
        from diskstore import DiskCache
        path = os.path.join(sys.argv[1], "c.db")
        c = DiskCache(path, default_expiration=0, timeout=3)
        holding = threading.Event()
        def holder():
            with c.transact():
                c["held"] = 1
                holding.set()
                time.sleep(0.6)
        h = threading.Thread(target=holder); h.start(); holding.wait()
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        out = {"interrupted": False}
        try:
            with c.transact():
                c["inside"] = 1
        except KeyboardInterrupt:
            out["interrupted"] = True
        h.join()
        c["later"] = 1
        def other():
            try:
                c["other"] = 1; out["other"] = "wrote"
            except Exception as e:
                out["other"] = repr(e)
        t = threading.Thread(target=other); t.start(); t.join()
        out["keys"] = sorted(DiskCache(path, timeout=1))
        print(json.dumps(out))
        """,
        str(tmp_path),
    )
    assert out["interrupted"]
    assert out["other"] == "wrote"
    # The interrupt lands after BEGIN returns: the block either never ran or committed.
    assert out["keys"] in (["held", "later", "other"], ["held", "inside", "later", "other"])


@pytest.mark.parametrize("mode", ["transact", "incr"])
def test_r02c_random_sigints_into_cache_transactions_never_leak_the_lock(
    tmp_path: Path, mode: str
) -> None:
    out = run_child(
        """
        import json, os, random, signal, sys, threading
        from collections import Counter
        from diskstore import DiskCache
        c = DiskCache(os.path.join(sys.argv[1], "c.db"), default_expiration=0, timeout=2)
        leaks = []
        for r in range(25):
            delay = random.uniform(0.001, 0.03)
            try:  # (the interrupt may land while the timer's thread starts)
                threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
                i = 0
                while True:
                    i += 1
                    if sys.argv[2] == "transact":
                        with c.transact():
                            c.set(("a", r, i), i); c.set(("b", r, i), i)
                    else:
                        c.incr("n"); c.incr("n")  # each its own transaction
            except KeyboardInterrupt:
                pass
            ok = []
            def probe():
                try:
                    c.set("probe", r); ok.append(1)
                except Exception as e:
                    ok.append(repr(e))
            t = threading.Thread(target=probe); t.start(); t.join()
            if ok != [1]:
                leaks.append(ok[0])
                break
        # Every pair was written together or not at all.
        keys = list(c)
        pairs = Counter(k[1:] for k in keys if isinstance(k, tuple))
        print(json.dumps({"leaks": leaks, "halves": [k for k, n in pairs.items() if n != 2]}))
        """,
        str(tmp_path),
        mode,
        timeout=120,
    )
    assert out == {"leaks": [], "halves": []}


def test_r02_interrupt_at_the_first_bytecode_of_a_cache_block_rolls_back(tmp_path: Path) -> None:
    c = DiskCache(str(tmp_path / "c.db"), default_expiration=0, timeout=0.5)
    with pytest.raises(KeyboardInterrupt), c.transact():
        c["never"] = 1
        raise KeyboardInterrupt
    assert "never" not in c
    seen: list[str] = []

    def other() -> None:
        try:
            DiskCache(str(tmp_path / "c.db"), timeout=0.5)["x"] = 1
            seen.append("wrote")
        except diskstore.BusyError:
            seen.append("busy")

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert seen == ["wrote"]


# --- r03: Python's sqlite3 and diskstore on one file in one process ----------------------


def test_r03_a_store_opened_while_python_sqlite3_has_the_file_warns(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    try:
        with pytest.warns(SharedFileWarning, match="not through diskstore"):
            DiskStore(path)
        with pytest.warns(SharedFileWarning):
            DiskCache(path)
    finally:
        con.close()


def test_r03_a_second_descriptor_on_the_shm_file_warns(tmp_path: Path) -> None:
    """diskstore already has the file open (a live handle), then Python's sqlite3 reads
    it too: the next diskstore handle sees two descriptors on the -shm file."""
    path = str(tmp_path / "c.db")
    c = DiskCache(path)
    c["k"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SharedFileWarning)
        con = sqlite3.connect(path)
    try:
        assert con.execute('SELECT count(*) FROM "Cache"').fetchone() == (1,)
        with pytest.warns(SharedFileWarning, match="-shm open 2 times"):
            DiskCache(path)
    finally:
        con.close()


def test_r03_sqlite3_connect_on_a_file_diskstore_uses_warns(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    s = DiskStore(path)
    s["x"] = 1
    with pytest.warns(SharedFileWarning, match="diskstore has this file open"):
        sqlite3.connect(path).close()
    # As a URI, and through another spelling of the path.
    with pytest.warns(SharedFileWarning):
        sqlite3.connect(f"file:{path}?mode=ro", uri=True).close()
    with pytest.warns(SharedFileWarning):
        sqlite3.connect(os.path.join(str(tmp_path), ".", "s.db")).close()
    # Turned into an error, the warning refuses the connection.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedFileWarning)
        with pytest.raises(SharedFileWarning):
            sqlite3.connect(path)
    del s
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedFileWarning)
        sqlite3.connect(path).close()  # no live handle any more


def test_r03_no_warning_without_a_second_sqlite_library(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedFileWarning)
        s = DiskStore(path)
        s["x"] = 1
        r = diskstore.DiskRead(path)
        assert r["x"] == 1
        c = DiskCache(path)
        c["y"] = 2
        DiskCache(path)["z"] = 3
        sqlite3.connect(str(tmp_path / "other.db")).close()
        sqlite3.connect(":memory:").close()
        del s, r, c
        gc.collect()
        con = sqlite3.connect(path)  # nothing of ours is open on it now
        con.close()
        DiskStore(path)["w"] = 4  # and the stdlib connection is closed again


def test_r03_the_limit_is_real_in_one_process_and_absent_across_processes(
    tmp_path: Path,
) -> None:
    """What the warning is for: in one process diskstore writes while Python's sqlite3
    holds the write lock; from another process the same lock holds diskstore off."""
    code = """
        import json, os, sqlite3, subprocess, sys, warnings
        warnings.simplefilter("ignore")
        from diskstore import DiskStore, BusyError
        path = os.path.join(sys.argv[1], "s.db")
        s = DiskStore(path, timeout=0.3); s["x"] = 0
        out = {}
        holder = subprocess.Popen([sys.executable, "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
            "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(3)", path],
            stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        try:
            s["other_process"] = 1; out["other"] = "wrote"
        except BusyError:
            out["other"] = "busy"
        holder.kill(); holder.wait()
        con = sqlite3.connect(path, isolation_level=None, timeout=2)
        con.execute("BEGIN IMMEDIATE")
        try:
            s["same_process"] = 1; out["same"] = "wrote"
        except BusyError:
            out["same"] = "busy"
        con.execute("ROLLBACK"); con.close()
        print(json.dumps(out))
    """
    out = run_child(code, str(tmp_path))
    assert out == {"same": "wrote", "other": "busy"}


# --- r04: fork while another thread reads ----------------------------------------------


@pytest.mark.skipif(not HAS_FORK, reason="needs os.fork")
def test_r04_fork_while_another_thread_reads_never_hangs_the_child(tmp_path: Path) -> None:
    out = run_child(
        """
        import json, os, signal, sys, threading, time, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        from diskstore import DiskStore
        s = DiskStore(os.path.join(sys.argv[1], "f.db")); s["a"] = 1
        stop = False
        def reader():
            while not stop:
                s.get("a"); len(s)
        threading.Thread(target=reader, daemon=True).start()
        outcome = {"ok": 0, "hung": 0, "error": 0}
        for n in range(100):
            time.sleep(0.003)
            pid = os.fork()
            if pid == 0:
                try:
                    s.get("a"); s[f"child{n}"] = n
                    os._exit(0)
                except BaseException:
                    os._exit(3)
            deadline = time.time() + 5
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    outcome["ok" if os.waitstatus_to_exitcode(status) == 0 else "error"] += 1
                    break
                if time.time() > deadline:
                    os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
                    outcome["hung"] += 1
                    break
                time.sleep(0.005)
            if outcome["hung"]:
                break
        stop = True
        print(json.dumps(outcome))
        """,
        str(tmp_path),
        timeout=120,
    )
    assert out == {"ok": 100, "hung": 0, "error": 0}


# --- r05: dropping a DiskCache with pending counts; no lock wait with the GIL ------------


def test_r05_dropping_a_cache_does_not_wait_for_the_lock_with_the_gil(tmp_path: Path) -> None:
    """If the drop waited for the write lock with the GIL held, the writer (which needs
    the GIL to finish its block) could not release it: the drop would time out after 2 s
    and the pending hit would be lost."""
    path = str(tmp_path / "c.db")
    h1 = DiskCache(path, default_expiration=0)
    h1["x"] = 1
    h2 = DiskCache(path, default_expiration=0, timeout=2)
    assert h2.get("x") == 1  # one hit, counted in memory
    inside, dropped = threading.Event(), threading.Event()
    result: list[str] = []

    def writer() -> None:
        with h1.transact():
            h1["a"] = 1
            inside.set()
            dropped.wait(0.3)  # Python work inside the transaction, while h2 is dropped
            h1["b"] = 2
        result.append("committed")

    t = threading.Thread(target=writer)
    t.start()
    inside.wait()
    del h2
    gc.collect()
    dropped.set()
    t.join()
    assert result == ["committed"]
    assert h1.stats() == (1, 0)


def test_r05_a_python_clock_is_read_outside_engine_calls(tmp_path: Path) -> None:
    """The clock runs with the GIL before the engine call: its exception reaches the
    caller, and nothing is left locked."""
    now = [1_000_000.0]

    def clock() -> float:
        if now[0] < 0:
            raise RuntimeError("clock broke")
        return now[0]

    path = str(tmp_path / "c.db")
    c = DiskCache(path, default_expiration=10, clock=clock, timeout=0.5)
    c["k"] = 1
    now[0] = -1
    with pytest.raises(RuntimeError, match="clock broke"):
        c.get("k")
    with pytest.raises(RuntimeError, match="clock broke"):
        c["k2"] = 2
    now[0] = 1_000_005.0
    assert c.get("k") == 1
    now[0] = 1_000_010.0
    assert c.get("k") is None
    DiskCache(path, timeout=0.5)["other"] = 1  # the lock is free


# --- r06: `in` for keys that cannot be stored --------------------------------------------


@pytest.mark.parametrize("key", [2**64, -(2**70), math.nan, "\ud800"], ids=repr)
def test_r06_in_is_false_for_keys_that_cannot_be_stored(tmp_path: Path, key: Any) -> None:
    s = DiskStore(str(tmp_path / "s.db"))
    s["a"] = 1
    assert (key in s) is False
    c = DiskCache(str(tmp_path / "c.db"))
    c["a"] = 1
    assert (key in c) is False


# --- r07: REAL keys and integers a double cannot hold ------------------------------------


def test_r07_a_real_keyed_store_refuses_integers_it_would_round(tmp_path: Path) -> None:
    r = DiskStore(str(tmp_path / "r.db"), config=BaseConfig(key_type=float))
    with pytest.raises(ValueError, match="not exactly representable"):
        r[2**53 + 1] = "v"
    with pytest.raises(ValueError):
        r[2**63 - 1] = "a"
    r[2**53] = "exact"
    assert r[2**53] == "exact"
    assert 2**53 in r
    assert len(r) == 1


# --- r08: a new default-model file in a missing folder -----------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"config": BaseConfig()}], ids=["default", "config"])
def test_r08_a_missing_folder_fails_at_construction(tmp_path: Path, kwargs: Any) -> None:
    with pytest.raises(diskstore.NotFoundError):
        DiskStore(str(tmp_path / "missing" / "x.db"), **kwargs)


# --- r09: pop() whose value fails to load -------------------------------------------------


class _Strict(BaseConfig):
    def load_data(self, row: Any) -> Any:
        raise ValueError("model v2 cannot read this row yet")


@pytest.mark.parametrize("method", ["pop", "popitem"])
def test_r09_a_store_pop_that_fails_to_load_changes_nothing(tmp_path: Path, method: str) -> None:
    path = str(tmp_path / "s.db")
    DiskStore(path, config=BaseConfig())["k"] = "precious"
    s = DiskStore(path, config=_Strict())
    with pytest.raises(ValueError, match="cannot read"):
        s.pop("k") if method == "pop" else s.popitem()
    assert DiskStore(path, config=BaseConfig())["k"] == "precious"


class _Gone:
    pass


def test_r09_a_cache_pop_that_fails_to_load_changes_nothing(tmp_path: Path) -> None:
    c = DiskCache(str(tmp_path / "c.db"), default_expiration=0)
    c["obj"] = _Gone()
    c["plain"] = 1
    saved = _Gone
    del globals()["_Gone"]  # the class is gone when the value is read
    try:
        with pytest.raises(AttributeError):
            c.pop("obj")
        assert "obj" in c
        with c.transact():  # joined to a transaction that commits: still nothing lost
            with pytest.raises(AttributeError):
                c.pop("obj")
            assert c.pop("plain") == 1
        assert "obj" in c
        assert "plain" not in c
    finally:
        globals()["_Gone"] = saved
    assert isinstance(c.pop("obj"), _Gone)
    assert "obj" not in c


# --- r10: the smaller ones ---------------------------------------------------------------


@pytest.fixture
def numbers(tmp_path: Path) -> DiskStore:
    s = DiskStore(str(tmp_path / "q.db"))
    s.update({i: i for i in range(5)})
    return s


def test_r10a_query_with_a_missing_parameter_is_an_error(numbers: DiskStore) -> None:
    with pytest.raises((TypeError, diskstore.Error)):
        list(numbers.query(where="value > ?"))


def test_r10a_query_parameters_must_not_be_a_string(numbers: DiskStore) -> None:
    with pytest.raises((TypeError, diskstore.Error)):
        list(numbers.query(where="_key = ?", parameters="ab"))


def test_r10b_a_comment_in_where_gives_a_clear_result_not_a_panic(numbers: DiskStore) -> None:
    try:
        rows = list(numbers.query(where="1 -- c"))
    except diskstore.Error:
        return  # a clear error is fine
    assert len(rows) == 5


@pytest.mark.parametrize("kind", ["keys", "values", "items"])
def test_r10c_one_iterator_shared_by_threads_yields_each_entry_once(
    tmp_path: Path, kind: str
) -> None:
    s = DiskStore(str(tmp_path / "s.db"))
    n = 20_000
    s.update({i: i for i in range(n)})
    for _ in range(5):
        it = iter(getattr(s, kind)())
        seen: Counter[Any] = Counter()
        errors: list[str] = []

        def eat(it: Any = it, seen: Counter[Any] = seen, errors: list[str] = errors) -> None:
            try:
                for x in it:
                    seen[x[0] if kind == "items" else x] += 1
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(repr(e))

        threads = [threading.Thread(target=eat) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(seen) == n
        assert set(seen.values()) == {1}


def test_r10d_a_table_named_like_another_caches_index_gives_a_clear_error(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "c.db")
    DiskCache(path, tablename="Cache_expire_at").set(1, 1)
    with pytest.raises(diskstore.Error, match='"Cache_expire_at"'):
        DiskCache(path)
    assert DiskCache(path, tablename="Cache_expire_at").get(1) == 1
    with pytest.raises(diskstore.Error, match="reserved"):
        DiskCache(path, tablename="_cache_meta")
    other = str(tmp_path / "d.db")
    DiskCache(other).set(1, 1)
    with pytest.raises(diskstore.Error, match="index"):
        DiskCache(other, tablename="Cache_tag")
    assert DiskCache(other).get(1) == 1


def test_r10e_add_none_after_the_largest_key_is_an_error(tmp_path: Path) -> None:
    a = DiskStore(str(tmp_path / "a.db"), config=BaseConfig(key_type=int))
    a[2**63 - 1] = "max"
    with pytest.raises(diskstore.Error):
        a.add(None, "next")
    assert list(a.keys()) == [2**63 - 1]


def test_r10f_a_signed_value_moved_under_another_key_is_refused(tmp_path: Path) -> None:
    q = str(tmp_path / "h.db")
    c = DiskCache(q, default_expiration=0, secret=b"k")
    c.set("alice", {"role": "user"})
    c.set("root", {"role": "admin"})
    c.close()
    del c
    gc.collect()
    move = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        'c.execute(\'UPDATE "Cache" SET value = (SELECT value FROM "Cache" WHERE _key = ?), '
        'kind = (SELECT kind FROM "Cache" WHERE _key = ?) WHERE _key = ?\', '
        "('root', 'root', 'alice')); c.commit()"
    )
    subprocess.run(
        [sys.executable, "-c", move, q],
        check=True,
        timeout=60,
    )
    c = DiskCache(q, secret=b"k")
    with pytest.raises(diskstore.DecodeError, match="HMAC"):
        c.get("alice")
    assert c.get("root") == {"role": "admin"}


def test_r10g_a_cache_pickles_as_its_options(tmp_path: Path) -> None:
    c = DiskCache(
        str(tmp_path / "c.db"),
        default_expiration=30,
        size_limit=10_000,
        eviction_policy="least-recently-used",
        tablename="T",
        secret=b"s",
    )
    c["k"] = ["v"]
    d = pickle.loads(pickle.dumps(c))
    assert type(d) is DiskCache
    assert (d.filename, d.default_expiration, d.size_limit, d.eviction_policy) == (
        c.filename,
        30,
        10_000,
        "least-recently-used",
    )
    assert d["k"] == ["v"]


@pytest.mark.skipif(not HAS_FORK, reason="needs os.fork")
@pytest.mark.parametrize("cls", ["DiskCache", "DiskStore"])
def test_r10h_a_child_forked_inside_its_parents_transact_leaves_the_block_cleanly(
    tmp_path: Path, cls: str
) -> None:
    out = run_child(
        f"""
        import json, os, sys
        from diskstore import DiskCache, DiskStore
        h = {cls}(os.path.join(sys.argv[1], "c.db"))
        h["before"] = 0
        pid = None
        try:
            with h.transact():
                h["parent"] = 1
                pid = os.fork()
        except BaseException as e:
            if pid == 0:
                os.write(2, repr(e).encode())
                os._exit(5)  # leaving the block failed in the child
            raise
        if pid == 0:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({{"child": os.waitstatus_to_exitcode(status),
                          "parent": h["parent"], "len": len(h)}}))
        """,
        str(tmp_path),
    )
    assert out == {"child": 0, "parent": 1, "len": 2}


def test_r10i_incr_errors_have_the_right_types(tmp_path: Path) -> None:
    c = DiskCache(str(tmp_path / "c.db"), default_expiration=0)
    c["s"] = "text"
    with pytest.raises(TypeError, match="TEXT"):
        c.incr("s")
    assert c["s"] == "text"
    c["n"] = 2**63 - 1
    with pytest.raises(ValueError, match="overflow"):
        c.incr("n")
    assert c["n"] == 2**63 - 1
    with pytest.raises(KeyError):
        c.incr("missing", default=None)
    assert c.incr("n", -1) == 2**63 - 2


def test_r10j_a_cache_in_a_reference_cycle_is_collected(tmp_path: Path) -> None:
    class Clock:
        cache: Any = None

        def __call__(self) -> float:
            return 1_000_000.0

    clock = Clock()
    c = DiskCache(str(tmp_path / "c.db"), clock=clock)
    clock.cache = c  # cache -> clock (in Rust) -> cache
    c["k"] = 1
    ref = weakref.ref(c)
    del c, clock
    gc.collect()
    assert ref() is None


def test_r10j_a_store_in_a_reference_cycle_is_collected(tmp_path: Path) -> None:
    class Config(BaseConfig):
        store: Any = None

    config = Config()
    s = DiskStore(str(tmp_path / "s.db"), config=config)
    config.store = s  # store -> config (in Rust) -> store
    s["k"] = 1
    ref = weakref.ref(s)
    del s, config
    gc.collect()
    assert ref() is None


def test_r05_each_thread_sees_what_the_clock_told_it(tmp_path: Path) -> None:
    """The clock is read before each engine call and that reading is what the call uses,
    even while other threads read other times from the same clock."""
    local = threading.local()

    def clock() -> float:
        return local.now

    local.now = 1_000.0
    c = DiskCache(str(tmp_path / "c.db"), default_expiration=0, clock=clock)
    c.set("k", 1, expire=500)  # lives until 1,500
    wrong: list[tuple[float, object]] = []

    def reader(now: float, expected: object) -> None:
        local.now = now
        for _ in range(300):
            got = c.get("k")
            if got != expected:
                wrong.append((now, got))

    threads = [
        threading.Thread(target=reader, args=(1_200.0, 1)),
        threading.Thread(target=reader, args=(2_000.0, None)),
        threading.Thread(target=reader, args=(1_400.0, 1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
