"""Support code for the black-box compatibility tests (stdlib only).

This file has two roles:

* imported by the test modules: helpers that build throw-away virtualenvs holding the
  ORIGINAL diskstore (0.1.0 or 0.7.0, from PyPI) and run scenarios in a subprocess;
* executed as a script by any python (ours or an original's venv):
  ``python compat_support.py run <scenario> <workdir> [arg]`` runs one scenario against whatever
  ``diskstore`` that python imports and prints its observations as tagged JSON, so that both
  sides can be compared exactly (types included).  Also ``counter-worker`` for the
  concurrency test.

It deliberately imports neither pytest nor diskstore at module level: the original's venv has
no pytest, and the test process must be able to import this file without touching diskstore.

Running (the originals are installed from PyPI into /tmp/diskstore-orig-<ver> on first use,
then reused; no network -> the tests fail, they never skip):

    .venv/bin/python -m pytest -q crates/diskstore-py/tests/test_compat_*.py \
        crates/diskstore-py/tests/test_hypothesis_*.py crates/diskstore-py/tests/test_concurrency_*.py

Environment: DISKSTORE_HYPOTHESIS_EXAMPLES / DISKSTORE_HYPOTHESIS_STEPS (state machines),
DISKSTORE_REPLAY_SEEDS (three-way random sequences), DISKSTORE_COMPAT_SELFTEST=1 (let the
original play 'ours': run pytest from a venv holding diskstore==0.7.0 + pytest + hypothesis
with ``-k "not test_spec and not rust_binding and not StoreVersusDictV01"`` to validate the
scripts and models on the original itself).
"""

import contextlib
import dataclasses
import fcntl
import json
import operator
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import NamedTuple

SUPPORT = Path(__file__).resolve()
ORIGINAL_VERSIONS = ("0.1.0", "0.7.0")
SELFTEST_ENV = "DISKSTORE_COMPAT_SELFTEST"
MARK = "@@COMPAT-JSON@@"


# --------------------------------------------------------------------------------------------
# Interpreters
# --------------------------------------------------------------------------------------------


def selftest() -> bool:
    """In self-test mode the 'ours' side is the original of the scenario's generation.

    That validates every scenario and expectation on the original before ours exists.
    """
    return os.environ.get(SELFTEST_ENV, "") not in ("", "0")


_ready: dict[str, str] = {}


def orig_python(version: str) -> str:
    """Return the python of a venv holding the original diskstore==version (+ apsw).

    Built once under /tmp and reused; a failed install raises (the test fails, never skips).
    """
    if version in _ready:
        return _ready[version]
    if version not in ORIGINAL_VERSIONS:
        raise ValueError(version)
    venv = Path(f"/tmp/diskstore-orig-{version}")
    python = venv / "bin" / "python"
    marker = venv / ".compat-ready"
    lock_path = Path(f"/tmp/diskstore-orig-{version}.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            if venv.exists():
                shutil.rmtree(venv)
            base = getattr(sys, "_base_executable", None) or sys.executable
            _check([base, "-m", "venv", str(venv)])
            _check(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 f"diskstore=={version}", "apsw"],
                timeout=900,
            )
            got = _check(
                [str(python), "-c",
                 "import importlib.metadata as m; print(m.version('diskstore'))"]
            ).strip()
            if got != version:
                raise RuntimeError(f"expected diskstore {version} in {venv}, found {got}")
            marker.write_text(version)
    _ready[version] = str(python)
    return str(python)


def orig_source(version: str) -> Path:
    """The original's source distribution (README, docs, scripts), unpacked once under /tmp.

    Downloaded from PyPI with the original's own pip; a failure raises (never skips).
    """
    python = orig_python(version)
    root = Path(f"/tmp/diskstore-orig-src-{version}")
    marker = root / ".compat-ready"
    with open(f"/tmp/diskstore-orig-src-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            if root.exists():
                shutil.rmtree(root)
            root.mkdir()
            _check(
                [python, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                 "--no-deps", "--no-binary", ":all:", f"diskstore=={version}", "-d", str(root)],
                timeout=600,
            )
            import tarfile

            (archive,) = root.glob("diskstore-*.tar.gz")
            with tarfile.open(archive) as tar:
                try:
                    tar.extractall(root, filter="data")
                except TypeError:  # a Python without extraction filters (< 3.10.12)
                    tar.extractall(root)  # PyPI's sdist of a pinned version
            marker.write_text(version)
    return root / f"diskstore-{version}"


EXAMPLE_DEPS = ("pydantic>=2", "structtype", "msgspec")


def example_deps(version: str) -> Path:
    """A folder (for PYTHONPATH) holding the third-party packages the original's examples
    and tests import (pydantic, structtype, msgspec), installed once with the original's
    pip."""
    python = orig_python(version)
    target = Path(f"/tmp/diskstore-example-deps-{version}")
    marker = target / ".compat-ready"
    wanted = " ".join(EXAMPLE_DEPS)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists() or marker.read_text() != wanted:
            if target.exists():
                shutil.rmtree(target)
            _check(
                [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 "--target", str(target), *EXAMPLE_DEPS],
                timeout=900,
            )
            marker.write_text(wanted)
    return target


def ours_python(generation: str) -> str:
    """The interpreter whose ``import diskstore`` is OUR package (the one running the tests).

    ``generation`` names the API generation the scenario is written in; it only matters in
    self-test mode, where the original of that generation plays 'ours'.
    """
    if selftest():
        return orig_python(generation)
    return sys.executable


def _check(cmd: list[str], timeout: float = 300) -> str:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {cmd}\n--- stdout\n{proc.stdout}\n"
            f"--- stderr\n{proc.stderr}"
        )
    return proc.stdout


def run(python: str, *args: str, timeout: float = 120) -> object:
    """Run this file as a script under ``python`` and return the JSON it reports."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(
        [python, str(SUPPORT), *args], check=False, capture_output=True, text=True, timeout=timeout,
        env=env, cwd="/tmp",
    )
    payload = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not payload:
        raise AssertionError(
            f"{python} {' '.join(args)} failed (rc={proc.returncode})\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return json.loads(payload[-1][len(MARK):])


def run_scenario(python: str, name: str, workdir: str | os.PathLike, arg: str = "") -> list:
    return run(python, "run", name, str(workdir), arg)  # type: ignore[return-value]


def run_scenarios(*calls: tuple) -> list:
    """Several ``run_scenario(*call)`` at once (separate processes and files), in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run_scenario, *call) for call in calls]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------------------------
# Tagged encoding: keeps Python types distinguishable in JSON (1 vs 1.0 vs True vs "1")
# --------------------------------------------------------------------------------------------


def enc(v: object) -> object:
    if v is None:
        return ["None"]
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, int):
        return ["int", str(v)]
    if isinstance(v, float):
        return ["float", repr(v)]
    if isinstance(v, str):
        return ["str", v]
    if type(v) is bytes:
        return ["bytes", v.hex()]
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return ["nt", type(v).__name__, list(v._fields), [enc(x) for x in v]]
    if isinstance(v, tuple):
        return ["tuple", [enc(x) for x in v]]
    if isinstance(v, list):
        return ["list", [enc(x) for x in v]]
    if isinstance(v, (set, frozenset)):
        return ["set", sorted((enc(x) for x in v), key=json.dumps)]
    if isinstance(v, dict):
        return ["dict", [[enc(k), enc(x)] for k, x in v.items()]]
    return ["other", type(v).__name__, repr(v)]


def builtin_base(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return "?"


class Log:
    """Collects [label, tagged result] pairs; an exception is recorded as
    ["exc", <first builtin class in its MRO>, <message or None>]."""

    def __init__(self) -> None:
        self.out: list = []

    def __call__(self, label: str, fn, msg: bool | None = None) -> None:
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 - recording is the point
            base = builtin_base(e)
            keep = (base == "KeyError") if msg is None else msg
            self.out.append([label, ["exc", base, str(e) if keep else None]])
        else:
            self.out.append([label, enc(value)])

    def val(self, label: str, value: object) -> None:
        self.out.append([label, enc(value)])


# --------------------------------------------------------------------------------------------
# Value classes shared by every interpreter
# --------------------------------------------------------------------------------------------


class Item(NamedTuple):
    name: str
    count: int
    score: float
    blob: bytes


@dataclasses.dataclass
class Rec:
    name: str
    count: int = 0
    flag: bool = False
    data: bytes = b""


class PairConfig:
    """A config that only follows ConfigProtocol (no diskstore base class): values are
    (int, str) pairs stored in two columns."""

    def __init__(self) -> None:
        from diskstore.const import NO_DEFAULT

        self.tablename = "Pairs"
        self.key_type = "TEXT"
        self.timeout = 5.0
        self.pragmas: dict = {}
        self.auto_migrate = True
        self.fields = [("a", "INTEGER", NO_DEFAULT), ("b", "TEXT", "dflt")]

    def dump_value(self, key, value):
        return (key, value[0], value[1])

    def load_data(self, data):
        return (data[1], data[2])


class ItemV2(NamedTuple):
    """Item plus a field with a default: opening an Item table with it migrates the table."""

    name: str
    count: int
    score: float
    blob: bytes
    tag: str = "none"
    rank: int = -1


# The same fields as a module with `from __future__ import annotations` declares them: the
# annotations are strings.  The original maps every such field to BLOB (it compares the
# annotation with the types str/int/float), so values keep their own SQLite types.
class Lazy(NamedTuple):
    name: str
    count: int
    score: float
    blob: bytes


Lazy.__annotations__ = {"name": "str", "count": "int", "score": "float", "blob": "bytes"}


SCENARIOS: dict[str, dict] = {}


def scenario(name: str, generation: str, kind: str = "behaviour"):
    def deco(fn):
        SCENARIOS[name] = {"fn": fn, "generation": generation, "kind": kind}
        return fn

    return deco


def _ds():
    import diskstore

    return diskstore


# --------------------------------------------------------------------------------------------
# File interop: writers (fixed operation sequences) and readers (full observation dumps)
# --------------------------------------------------------------------------------------------

MIXED_PAIRS = [
    ("alpha", "text value"),
    (7, 42),
    (b"\x00\x01bin", b"\xff\x00raw"),
    (2.5, 3.25),
    (-3, -(2**63)),
    ("ünï©ødé", 2**63 - 1),
    ("", ""),
    (b"", b""),
    (10**15 + 0.5, "float key"),
    ("nul\x00inside", "nul\x00value"),
]


def _v01_value_pairs():
    Value = _ds().Value
    return [(k, Value(v)) for k, v in MIXED_PAIRS]


def _item_pairs():
    return [
        ("k1", Item("one", 1, 1.5, b"\x01")),
        ("k2", Item("two", 20, -2.25, b"")),
        ("k3", Item("", 3, 0.0, b"\x00\xff")),
        ("k4", Item("four", -4, 1e300, b"4444")),
        ("k5", Item("fünf", 50, 5.5, b"five")),
    ]


def _write_sequence(ds, pairs, new_value_of_first, extra):
    """The same sequence for every layout: insert all, overwrite the first (keeps its
    position), delete the second, append one more."""
    for k, v in pairs:
        ds[k] = v
    ds[pairs[0][0]] = new_value_of_first
    del ds[pairs[1][0]]
    ds[extra[0]] = extra[1]


def _open(case: str, readonly: bool = False):
    """Open ``path`` in the configuration of ``case`` (the API of its generation)."""
    ds = _ds()
    path = _open.path  # type: ignore[attr-defined]
    cls = ds.DiskRead if readonly else ds.DiskStore
    if case == "v01_value":
        return cls(path, value_class=ds.Value)
    if case == "v01_default":
        return cls(path)
    if case == "v01_item":
        if readonly:
            return cls(path, value_class=Item)
        return cls(path, value_class=Item, key_type=str)
    if case == "v01_intkey":
        if readonly:
            return cls(path, value_class=ds.Value)
        return cls(path, value_class=ds.Value, key_type=int)
    from diskstore.config import BaseConfig, NamedTupleConfig

    if case == "v07_base":
        return cls(path, config=BaseConfig())
    if case == "v07_default":
        return cls(path)
    if case == "v07_named_table":
        return cls(path, config=BaseConfig(tablename='my "odd" table', key_type=str))
    if case == "v07_item":
        return cls(path, config=NamedTupleConfig(Item))
    if case == "v07_intkey":
        return cls(path, config=BaseConfig(key_type=int))
    if case == "v07_lazy":
        return cls(path, config=NamedTupleConfig(Lazy))
    if case == "v07_json":
        from diskstore.config import JsonConfig

        return cls(path, config=JsonConfig(key_type=str))
    if case == "v07_dataclass":
        from diskstore.config import DataclassConfig

        return cls(path, config=DataclassConfig(Rec))
    if case == "v07_custom":
        return cls(path, config=PairConfig())
    raise ValueError(case)


FILE_CASES = {
    # case: generation of the API the case is written in
    "v01_value": "0.1.0",
    "v01_default": "0.1.0",
    "v01_item": "0.1.0",
    "v01_intkey": "0.1.0",
    "v07_base": "0.7.0",
    "v07_default": "0.7.0",
    "v07_named_table": "0.7.0",
    "v07_item": "0.7.0",
    "v07_intkey": "0.7.0",
    "v07_lazy": "0.7.0",
    "v07_json": "0.7.0",
    "v07_dataclass": "0.7.0",
    "v07_custom": "0.7.0",
}


def write_case(case: str) -> None:
    ds = _ds()
    store = _open(case)
    if case in ("v01_value", "v01_default"):
        Value = ds.Value
        _write_sequence(store, _v01_value_pairs(), Value("first, rewritten"), (99, Value(0.125)))
    elif case in ("v01_item", "v07_item"):
        _write_sequence(store, _item_pairs(), Item("uno", 111, 1.0, b"U"),
                        ("k6", Item("six", 6, 6.0, b"\x06")))
    elif case == "v07_lazy":
        pairs = [(k, Lazy(*v)) for k, v in _item_pairs()]
        # values whose type differs from the (string) annotation keep their type in BLOB
        _write_sequence(store, pairs, Lazy(5, "7", b"x", 1.5), ("k6", Lazy("six", 6, 6.0, b"")))
    elif case == "v07_json":
        pairs = [("doc", {"a": [1, 2.5, None, True], "b": {"c": "ü"}}), ("list", [1, "two"]),
                 ("num", 3), ("str", "s"), ("null", None), ("float", 0.5)]
        _write_sequence(store, pairs, {"rewritten": True}, ("last", []))
    elif case == "v07_dataclass":
        pairs = [("r1", Rec("one", 1, True, b"\x01")), ("r2", Rec("two")),
                 ("r3", Rec("three", 3, False, b"")), ("r4", Rec("", -4, True, b"4"))]
        _write_sequence(store, pairs, Rec("uno", 11), ("r5", Rec("five", 5, True)))
    elif case == "v07_custom":
        pairs = [("p1", (1, "one")), ("p2", (2, "two")), ("p3", (3, "three"))]
        _write_sequence(store, pairs, (10, "ten"), ("p4", (4, "")))
    elif case in ("v07_base", "v07_default"):
        _write_sequence(store, MIXED_PAIRS, "first, rewritten", (99, 0.125))
    elif case == "v07_named_table":
        pairs = [(f"key{i}", v) for i, (_, v) in enumerate(MIXED_PAIRS)]
        _write_sequence(store, pairs, 1.0, ("zz", b"z"))
    elif case in ("v01_intkey", "v07_intkey"):
        wrap = ds.Value if case == "v01_intkey" else (lambda x: x)
        got = [store.add(None, wrap(f"auto{i}")) for i in range(3)]
        got.append(store.add(10, wrap("ten")))
        got.append(store.add(None, wrap("after ten")))
        got.append(store.add(2, wrap("dup")))
        del store[1]
        store[5] = wrap("five")
        got.append(store.add(None, wrap("last")))
        if got != [1, 2, 3, 10, 11, None, 12]:
            raise AssertionError(f"add() returned {got}")
    else:
        raise ValueError(case)
    store.close()


def _probe_query(case: str, store) -> list:
    if case in ("v01_item", "v07_item", "v07_lazy"):
        return list(store.query(where="count > ?", parameters=(5,), order="score DESC"))
    if case == "v07_dataclass":
        return list(store.query(where="flag = ?", parameters=(1,), order="count DESC"))
    if case == "v07_custom":
        return list(store.query(where="a >= ?", parameters=(3,), order="b"))
    if case == "v07_json":
        return list(store.query(where="json_type(value) = ?", parameters=("object",)))
    if case in ("v01_intkey", "v07_intkey"):
        return list(store.query(where="_key >= ?", parameters=(3,), order="_key DESC"))
    return list(store.query(where="typeof(_key) = ?", parameters=("text",), order="_key"))


def read_case(log: Log, case: str) -> None:
    for label, ro in (("rw", False), ("ro", True)):
        store = _open(case, readonly=ro)
        keys = list(store)
        log(f"{label}.len", lambda store=store: len(store))
        log(f"{label}.keys", lambda keys=keys: keys)
        log(f"{label}.reversed", lambda store=store: list(reversed(store)))
        log(f"{label}.items", lambda store=store: list(store.items()))
        log(f"{label}.values_reversed", lambda store=store: list(reversed(store.values())))
        log(f"{label}.each", lambda store=store, keys=keys: [store[k] for k in keys])
        log(f"{label}.contains",
            lambda store=store, keys=keys: [k in store for k in keys] + ["no such" in store])
        log(f"{label}.query_all", lambda store=store: list(store.query()))
        log(f"{label}.query", lambda store=store: _probe_query(case, store))
        store.close()


# --------------------------------------------------------------------------------------------
# Scenarios: one piece of code, run by the original and by ours, outputs compared
# --------------------------------------------------------------------------------------------


@scenario("file_write", "any", kind="file")
def _sc_file_write(log: Log, path: str, case: str) -> None:
    _open.path = path  # type: ignore[attr-defined]
    write_case(case)
    log.val("written", case)


@scenario("file_read", "any", kind="file")
def _sc_file_read(log: Log, path: str, case: str) -> None:
    _open.path = path  # type: ignore[attr-defined]
    read_case(log, case)


@scenario("default_write_value", "0.1.0", kind="file")
def _sc_default_write_value(log: Log, path: str, _arg: str) -> None:
    """New file, no value_class/config, first value a ``Value``."""
    ds = _ds()
    store = ds.DiskStore(path)
    store["a"] = ds.Value("x")
    store[2] = ds.Value(2)
    store[b"c"] = ds.Value(b"c")
    log("get", lambda: [store["a"], store[2], store[b"c"]])
    store.close()


@scenario("default_write_raw", "0.7.0", kind="file")
def _sc_default_write_raw(log: Log, path: str, _arg: str) -> None:
    """New file, no config, first value a raw scalar."""
    store = _ds().DiskStore(path)
    store["a"] = "x"
    store[2] = 2
    store[b"c"] = b"c"
    log("get", lambda: [store["a"], store[2], store[b"c"]])
    store.close()


@scenario("default_read", "any", kind="file")
def _sc_default_read(log: Log, path: str, _arg: str) -> None:
    """Open an existing file with neither value_class nor config."""
    ds = _ds()
    for label, cls in (("rw", ds.DiskStore), ("ro", ds.DiskRead)):
        store = cls(path)
        log(f"{label}.items", lambda store=store: list(store.items()))
        log(f"{label}.tablename", lambda store=store: store.tablename)
        store.close()


def _migrate_script(log: Log, store) -> None:
    log("items", lambda: list(store.items()))
    store["k7"] = ItemV2("seven", 7, 7.0, b"7", "tagged", 70)
    store["k1"] = ItemV2("uno again", 1, 1.0, b"", "t1")
    log("after writes", lambda: list(store.items()))
    log("query new column", lambda: list(store.query(where="tag != ?", parameters=("none",))))
    store.close()


@scenario("migrate_v07", "0.7.0", kind="file")
def _sc_migrate_v07(log: Log, path: str, _arg: str) -> None:
    """An existing Item table opened with a NamedTuple that has two more (defaulted) fields."""
    from diskstore.config import NamedTupleConfig

    _migrate_script(log, _ds().DiskStore(path, config=NamedTupleConfig(ItemV2, tablename="Item")))


@scenario("migrate_v01", "0.1.0", kind="file")
def _sc_migrate_v01(log: Log, path: str, _arg: str) -> None:
    _migrate_script(log, _ds().DiskStore(path, value_class=ItemV2, tablename="Item"))


@scenario("v01_default_existing_semantics", "0.1.0", kind="file")
def _sc_v01_existing(log: Log, path: str, _arg: str) -> None:
    """An existing 0.1.0 'Value' file opened without arguments behaves as 0.1.0."""
    ds = _ds()
    store = ds.DiskStore(path)
    log("set raw", lambda: operator.setitem(store, "raw", "plain"), msg=False)
    log("add raw", lambda: store.add("raw", 5), msg=False)
    log("set Value", lambda: operator.setitem(store, "new", ds.Value("n")))
    log("get new", lambda: store["new"])
    log("int()", lambda: int(store[7]))
    log("items", lambda: list(store.items()))
    store.close()


@scenario("v07_default_existing_semantics", "0.7.0", kind="file")
def _sc_v07_existing(log: Log, path: str, _arg: str) -> None:
    """An existing 0.7.0 'DiskStore' file opened without arguments behaves as 0.7.0."""
    store = _ds().DiskStore(path)
    log("set raw", lambda: operator.setitem(store, "raw", "plain"))
    log("set int", lambda: operator.setitem(store, "n", 5))
    log("get", lambda: [store["raw"], store["n"]])
    log("items", lambda: list(store.items()))
    store.close()


class KeysOnly:
    """Not a Mapping: only ``keys()`` and ``__getitem__``."""

    def __init__(self, data):
        self._data = dict(data)

    def keys(self):
        return list(self._data)

    def __getitem__(self, key):
        return self._data[key]


def _mapping_script(log: Log, store, wrap, table: str) -> None:
    """Mapping behaviour shared by the 0.7.0 (raw values) and 0.1.0 (``Value``) scripts."""
    ds = _ds()
    for k, v in [("a", 1), ("b", "two"), (3, 3.5), (b"d", b"\x04"), (5.5, "five and a half")]:
        store[k] = wrap(v)
    log("isinstance MutableMapping", lambda: isinstance(store, MutableMapping))
    log("isinstance DiskRead", lambda: isinstance(store, ds.DiskRead))
    log("len", lambda: len(store))
    log("list", lambda: list(store))
    log("reversed", lambda: list(reversed(store)))
    log("keys", lambda: list(store.keys()))
    log("keys reversed", lambda: list(reversed(store.keys())))
    log("values", lambda: list(store.values()))
    log("values reversed", lambda: list(reversed(store.values())))
    log("items", lambda: list(store.items()))
    log("items reversed", lambda: list(reversed(store.items())))
    log("len views", lambda: [len(store.keys()), len(store.values()), len(store.items())])
    kv = store.keys()
    log("in keys", lambda: ["a" in kv, "zz" in kv, 3.0 in kv])
    log("in items", lambda: [("a", wrap(1)) in store.items(), ("a", wrap(2)) in store.items()])
    log("in values", lambda: [wrap("two") in store.values(), wrap("nope") in store.values()])
    log("keys & set", lambda: store.keys() & {"a", "zz", 3})
    log("keys | set", lambda: store.keys() | {"zz"})
    log("getitem", lambda: [store["a"], store[3], store[b"d"], store[5.5]])
    log("getitem missing", lambda: store["missing"])
    log("getitem missing bytes", lambda: store[b"a"])
    log("getitem str vs int", lambda: store["3"])
    log("get", lambda: [store.get("a"), store.get("zz"), store.get("zz", wrap(0))])
    log("contains", lambda: ["a" in store, "zz" in store, 3 in store, 3.0 in store, "3" in store])
    log("eq dict", lambda: store == dict(store.items()))
    log("eq other dict", lambda: store == {"a": wrap(1)})
    log("ne dict", lambda: store != {"a": wrap(1)})
    # an overwrite keeps the position
    store["a"] = wrap("A")
    log("overwrite keeps position", lambda: list(store.items()))
    # 1, 1.0 and True are one key
    store[1] = wrap("int one")
    store[1.0] = wrap("float one")
    store[True] = wrap("bool one")
    log("one key", lambda: [store[1], store[1.0], store[True], len(store)])
    log("one key list", lambda: [k for k in store if k == 1])
    store[2.0] = wrap("float two")
    log("float first", lambda: [store[2], [k for k in store if k == 2]])
    # deletion
    del store["b"]
    log("del", lambda: list(store))
    log("del missing", lambda: operator.delitem(store, "b"))
    log("del missing int", lambda: operator.delitem(store, 12345))
    store["b"] = wrap("again")
    log("reinserted goes last", lambda: list(store)[-1])
    # pop / popitem
    log("pop", lambda: store.pop(3))
    log("pop missing default", lambda: store.pop(3, "dflt"))
    log("pop missing None default", lambda: store.pop(3, None))
    log("pop missing", lambda: store.pop(3))
    log("popitem", lambda: store.popitem())
    log("popitem 2", lambda: store.popitem())
    log("after popitem", lambda: list(store.items()))
    # setdefault
    log("setdefault existing", lambda: store.setdefault("a", wrap("other")))
    log("setdefault new", lambda: store.setdefault("sd", wrap("sdv")))
    log("setdefault None", lambda: store.setdefault("sdnone"))
    log("after setdefault", lambda: [list(store), "sdnone" in store])
    # update, all argument forms
    store.update({"u1": wrap(1), "a": wrap("A2")})
    store.update(KeysOnly({"u2": wrap(2)}))
    store.update([("u3", wrap(3)), ("u4", wrap(4))])
    store.update(u5=wrap(5), u6=wrap(6))
    store.update({"u7": wrap(7)}, u8=wrap(8))
    store.update((f"g{i}", wrap(i)) for i in range(2))
    store.update()
    store.update([])
    log("after update", lambda: list(store.items()))
    log("update bad key is one transaction",
        lambda: store.update([("bad1", wrap(1)), ((1, 2), wrap(2))]), msg=False)
    log("after failed update", lambda: ["bad1" in store, len(store)])
    # add
    log("add new", lambda: store.add("added", wrap("x")))
    log("add existing", lambda: store.add("added", wrap("y")))
    log("add kept", lambda: store["added"])
    # query
    log("query all", lambda: list(store.query()))
    log("query where", lambda: list(store.query(where="typeof(_key) = ?", parameters=("blob",))))
    log("query order", lambda: list(store.query(where="_key LIKE 'u%'", order="_key DESC")))
    log("query named", lambda: list(store.query(where="_key = :k", parameters={"k": "u3"})))
    # transactions
    with store.transact() as cur:
        store["t1"] = wrap(1)
        with store.transact():
            store["t2"] = wrap(2)
        log("cursor fetchone",
            lambda: cur.execute(f'SELECT COUNT(*) FROM "{table}" WHERE _key LIKE ?',
                                ("t%",)).fetchone())
        log("cursor fetchall",
            lambda: cur.execute(f'SELECT _key FROM "{table}" WHERE _key LIKE ? ORDER BY _key',
                                ("t%",)).fetchall())
        log("cursor iterate",
            lambda: [tuple(r) for r in cur.execute(f'SELECT _key FROM "{table}" WHERE '
                                                   "_key LIKE 't%' ORDER BY _key")])
    log("committed", lambda: [store["t1"], store["t2"]])
    try:
        with store.transact():
            store["r1"] = wrap(1)
            with store.transact():
                store["r2"] = wrap(2)
                raise RuntimeError("boom")
    except RuntimeError as e:
        log.val("rollback raised", str(e))
    log("rolled back", lambda: ["r1" in store, "r2" in store])
    with store.transact():
        store["c1"] = wrap(1)
        try:
            with store.transact():
                store["c2"] = wrap(2)
                raise RuntimeError("inner")
        except RuntimeError:
            pass
    log("inner error caught by outer: outer commits", lambda: ["c1" in store, "c2" in store])
    log("usable after rollback", lambda: operator.setitem(store, "after", wrap(0)))
    log("check", lambda: store.check())
    log("check vacuum", lambda: store.check(vacuum=True))
    # keys that are not a basic type
    log("tuple key set", lambda: operator.setitem(store, (1, 2), wrap(1)), msg=False)
    log("tuple key get", lambda: store[(1, 2)], msg=False)
    log("list key get", lambda: store[[1]], msg=False)
    # read-only instance
    ro = store.get_readonly_instance()
    log("ro type", lambda: [isinstance(ro, ds.DiskRead), isinstance(ro, ds.DiskStore),
                            isinstance(ro, Mapping), isinstance(ro, MutableMapping)])
    log("ro items", lambda: list(ro.items()) == list(store.items()))
    log("ro setitem", lambda: operator.setitem(ro, "x", wrap(1)), msg=False)
    log("ro has pop", lambda: hasattr(ro, "pop"))
    log("ro tablename", lambda: ro.tablename)
    ro_clone = pickle.loads(pickle.dumps(ro))
    log("ro pickled", lambda: [type(ro_clone) is type(ro), list(ro_clone) == list(store)])
    ro_clone.close()
    ro.close()
    # pickling a handle
    clone = pickle.loads(pickle.dumps(store))
    log("pickled type", lambda: type(clone) is type(store))
    log("pickled filename", lambda: clone.filename == store.filename)
    log("pickled items", lambda: list(clone.items()) == list(store.items()))
    clone["from clone"] = wrap("c")
    log("pickled writes", lambda: store["from clone"])
    clone.close()
    log("tablename", lambda: store.tablename)
    log("timeout", lambda: store.timeout)
    # clear
    store.clear()
    log("cleared", lambda: [len(store), list(store)])
    log("popitem empty", lambda: store.popitem())
    log("context manager", lambda: _ctx(store))
    store.close()


def _ctx(store):
    with store as s:
        return s is store


@scenario("mapping_v07", "0.7.0")
def _sc_mapping_v07(log: Log, path: str, _arg: str) -> None:
    store = _ds().DiskStore(path)
    _mapping_script(log, store, lambda v: v, "DiskStore")


@scenario("mapping_v07_baseconfig", "0.7.0")
def _sc_mapping_v07_base(log: Log, path: str, _arg: str) -> None:
    from diskstore.config import BaseConfig

    store = _ds().DiskStore(path, config=BaseConfig(tablename="T", timeout=2.5))
    _mapping_script(log, store, lambda v: v, "T")


@scenario("mapping_v01", "0.1.0")
def _sc_mapping_v01(log: Log, path: str, _arg: str) -> None:
    ds = _ds()
    store = ds.DiskStore(path, value_class=ds.Value, timeout=2.5)
    _mapping_script(log, store, ds.Value, "Value")


@scenario("mapping_v01_default", "0.1.0")
def _sc_mapping_v01_default(log: Log, path: str, _arg: str) -> None:
    """0.1.0 code without value_class on a new file: Value written first."""
    ds = _ds()
    store = ds.DiskStore(path)
    _mapping_script(log, store, ds.Value, "Value")


@scenario("transact_first_v07", "0.7.0")
def _sc_transact_first_v07(log: Log, path: str, _arg: str) -> None:
    """A new file, no config, and the very first operations run inside transact()."""
    store = _ds().DiskStore(path)
    log("len", lambda: len(store))
    with store.transact() as cur:
        log("cursor", lambda: cur.execute("SELECT 1").fetchall())
        store["a"] = 1
        store["b"] = b"2"
    log("items", lambda: list(store.items()))
    store.close()


@scenario("transact_first_v01", "0.1.0")
def _sc_transact_first_v01(log: Log, path: str, _arg: str) -> None:
    """A new file, no value_class, and the first write (a Value) inside transact()."""
    ds = _ds()
    store = ds.DiskStore(path)
    with store.transact():
        store["a"] = ds.Value(1)
    log("items", lambda: list(store.items()))
    log("tablename", lambda: store.tablename)
    store.close()


@scenario("readme_v01", "0.1.0")
def _sc_readme_v01(log: Log, path: str, _arg: str) -> None:
    """The 0.1.0 README example (printing replaced by recording str())."""
    from diskstore import DiskStore, Value

    ds = DiskStore(path, value_class=Value)
    ds["key"] = Value("my value")
    log("printed", lambda: str(ds["key"]))
    log("value", lambda: ds["key"])
    ds.close()


@scenario("api_v07", "0.7.0")
def _sc_api_v07(log: Log, path: str, _arg: str) -> None:
    """0.7.0-only API: open(), close_all(), DiskRead with a config, positional config,
    JsonConfig, NamedTupleConfig values."""
    ds = _ds()
    from diskstore.config import BaseConfig, JsonConfig, NamedTupleConfig

    store = ds.DiskStore(path, config=BaseConfig(tablename="api"))
    log("open returns self", lambda: store.open() is store)
    store["a"] = 1
    log("close_all is int", lambda: isinstance(store.close_all(), int))
    log("usable after close_all", lambda: store["a"])
    reader = ds.DiskRead(path, config=BaseConfig(tablename="api"))
    log("reader", lambda: [reader.tablename, list(reader.items()), reader.open() is reader])
    log("reader state", lambda: sorted(reader.__getstate__()))
    reader.close()
    js = ds.DiskStore(path, JsonConfig(tablename="json"))
    js["doc"] = {"list": [1, 2.5, "x", None, True], "nested": {"k": "v"}}
    log("json", lambda: js["doc"])
    log("json raw", lambda: list(js.query(where="json_extract(value, '$.nested.k') = ?",
                                          parameters=("v",))))
    nt = ds.DiskStore(path, config=NamedTupleConfig(Item))
    nt["i"] = Item("n", 2, 0.5, b"b")
    log("nt query", lambda: list(nt.query(where="count = ?", parameters=(2,))))
    log("nt setdefault", lambda: nt.setdefault("j", Item("d", 0, 0.0, b"")))
    log("state", lambda: sorted(store.__getstate__()))
    for s in (store, js, nt):
        s.close()


@scenario("edges_v07", "0.7.0")
def _sc_edges_v07(log: Log, path: str, _arg: str) -> None:
    """Edge keys and values where the original and the issue agree."""
    store = _ds().DiskStore(path)
    store["first"] = 0
    for label, key in [("surrogate key", "\ud800"), ("2**64 key", 2**64), ("-0.0 key", -0.0),
                       ("inf key", float("inf")), ("-2**63 key", -(2**63)),
                       ("nul key", "a\x00b"), ("nul bytes key", b"\x00")]:
        log(f"set {label}", lambda key=key, label=label: operator.setitem(store, key, label),
            msg=False)
        log(f"get {label}", lambda key=key: store[key], msg=False)
    for label, value in [("surrogate", "\udfff"), ("2**64", 2**64), ("bytearray", bytearray(b"ab")),
                         ("True", True), ("list", [1]), ("dict", {"a": 1}), ("big float", 1e308),
                         ("tiny float", 5e-324), ("-inf", float("-inf"))]:
        log(f"value {label}", lambda value=value: operator.setitem(store, "v", value), msg=False)
        log(f"read {label}", lambda: store["v"])
    log("items", lambda: list(store.items()))
    store.close()


def _pragma_probe(log: Log, store, wrap) -> None:
    store["k"] = wrap(1)
    with store.transact() as cur:
        for name in ("synchronous", "cache_size", "journal_mode", "busy_timeout"):
            log(f"pragma {name}",
                lambda name=name: cur.execute(f"PRAGMA {name}").fetchall())
    store.close()


@scenario("pragmas_v07", "0.7.0")
def _sc_pragmas_v07(log: Log, path: str, _arg: str) -> None:
    """config pragmas (merged over DEFAULT_PRAGMAS) and timeout apply to the connection."""
    from diskstore.config import BaseConfig

    config = BaseConfig(pragmas={"synchronous": 2, "cache_size": -1000}, timeout=3)
    _pragma_probe(log, _ds().DiskStore(path, config=config), lambda v: v)


@scenario("pragmas_v01", "0.1.0")
def _sc_pragmas_v01(log: Log, path: str, _arg: str) -> None:
    """0.1.0 bare pragma keyword arguments, merged over DEFAULT_PRAGMAS."""
    ds = _ds()
    store = ds.DiskStore(path, value_class=ds.Value, timeout=3, synchronous=2, cache_size=-1000)
    _pragma_probe(log, store, ds.Value)


@scenario("add_auto_v07", "0.7.0")
def _sc_add_auto_v07(log: Log, path: str, _arg: str) -> None:
    from diskstore.config import BaseConfig

    store = _ds().DiskStore(path, config=BaseConfig(key_type=int))
    log("adds", lambda: [store.add(None, "a"), store.add(None, "b"), store.add(10, "c"),
                         store.add(None, "d"), store.add(2, "dup"), store.add(None, 5.5)])
    log("items", lambda: list(store.items()))
    del store[12]
    log("reuse after deleting the max", lambda: store.add(None, "e"))
    log("setitem int", lambda: operator.setitem(store, 100, "h"))
    log("add after setitem", lambda: store.add(None, "i"))
    log("query limit", lambda: list(store.query(order="_key", limit=2)))
    log("query limit offset", lambda: list(store.query(order="_key", limit=2, offset=1)))
    log("query offset param", lambda: list(store.query(where="_key > ?", parameters=[1],
                                                       order="_key DESC", limit=3, offset=2)))
    log("query limit 0", lambda: list(store.query(limit=0)))
    log("items at end", lambda: list(store.items()))
    store.close()


@scenario("add_auto_v01", "0.1.0")
def _sc_add_auto_v01(log: Log, path: str, _arg: str) -> None:
    ds = _ds()
    V = ds.Value
    store = ds.DiskStore(path, value_class=V, key_type=int)
    log("adds", lambda: [store.add(None, V("a")), store.add(None, V("b")),
                         store.add(10, V("c")), store.add(None, V("d")),
                         store.add(2, V("dup"))])
    log("items", lambda: list(store.items()))
    log("query", lambda: list(store.query(where="_key > ?", parameters=(1,), order="_key DESC")))
    with store.transact(retry=True):
        store[50] = V("in retry txn")
    log("retry txn", lambda: store[50])
    store.close()


@scenario("value_class_v01", "0.1.0")
def _sc_value_class_v01(log: Log, path: str, _arg: str) -> None:
    ds = _ds()
    V = ds.Value
    log("Value fields", lambda: V._fields)
    log("int", lambda: int(V(3)))
    log("int bool", lambda: int(V(True)))
    log("float", lambda: float(V(2.5)))
    log("bytes", lambda: bytes(V(b"\x00x")))
    log("str", lambda: [str(V("s")), str(V(1)), str(V(2.5)), str(V(b"b"))])
    log("repr", lambda: repr(V(1)))
    log("int of str", lambda: int(V("3")), msg=False)
    log("int of float", lambda: int(V(3.0)), msg=False)
    log("float of int", lambda: float(V(1)), msg=False)
    log("float of str", lambda: float(V("1.5")), msg=False)
    log("bytes of str", lambda: bytes(V("s")), msg=False)
    log("bytes of int", lambda: bytes(V(3)), msg=False)
    log("namedtuple api", lambda: [V._make(["m"]), V("a")._asdict(), V("a")._replace(value=2),
                                   V("a") == ("a",), isinstance(V("a"), tuple)])
    store = ds.DiskStore(path, value_class=V)
    log("set raw", lambda: operator.setitem(store, "k", "raw"), msg=False)
    log("set plain tuple", lambda: operator.setitem(store, "k", ("raw",)), msg=False)
    log("add raw", lambda: store.add("k", 5), msg=False)
    log("setdefault raw", lambda: store.setdefault("k", 5), msg=False)
    log("nothing stored", lambda: list(store))
    log("setdefault None", lambda: store.setdefault("k"))
    log("setdefault Value", lambda: store.setdefault("k", V(1)))
    items = ds.DiskStore(path, value_class=Item, key_type=str)
    log("Item table", lambda: items.tablename)
    log("set Value in Item store", lambda: operator.setitem(items, "k", V("x")), msg=False)
    log("set Item", lambda: operator.setitem(items, "k", Item("n", 1, 1.0, b"")))
    log("get Item", lambda: items["k"])
    log("both tables independent", lambda: [list(store.items()), list(items.items())])
    store.close()
    items.close()


@scenario("v01_update_unchecked", "0.1.0")
def _sc_v01_update_unchecked(log: Log, path: str, _arg: str) -> None:
    """0.1.0 quirk: update() unpacks values with *value and does not type-check them."""
    ds = _ds()
    store = ds.DiskStore(path, value_class=ds.Value)
    log("update plain tuples", lambda: store.update({"u": ("plain",)}), msg=False)
    log("read back", lambda: list(store.items()))
    store.close()


@scenario("constants_v07", "0.7.0")
def _sc_constants_v07(log: Log, path: str, _arg: str) -> None:
    from diskstore import const

    log("TIMEOUT", lambda: const.TIMEOUT)
    log("DEFAULT_PRAGMAS", lambda: const.DEFAULT_PRAGMAS)
    log("DEFAULT_RO_PRAGMAS", lambda: const.DEFAULT_RO_PRAGMAS)
    log("BusyError exported", lambda: issubclass(_ds().BusyError, Exception))
    from diskstore.config import BaseConfig, JsonConfig, NamedTupleConfig

    b = BaseConfig()
    log("BaseConfig", lambda: [b.tablename, b.key_type, b.timeout, b.pragmas, b.auto_migrate,
                               [tuple(f[:2]) for f in b.fields]])
    log("BaseConfig key types", lambda: [BaseConfig(key_type=t).key_type
                                         for t in (int, str, float, bytes, "TEXT")])
    n = NamedTupleConfig(Item)
    log("NamedTupleConfig", lambda: [n.tablename, [tuple(f[:2]) for f in n.fields],
                                     list(n.dump_value("k", Item("a", 1, 2.0, b""))),
                                     n.load_data(("k", "a", 1, 2.0, b""))])
    j = JsonConfig()
    log("JsonConfig", lambda: [j.tablename, list(j.dump_value("k", {"a": [1]})),
                               j.load_data(("k", '{"a": [1]}'))])
    store = _ds().DiskStore(path, config=JsonConfig())
    store["j"] = {"x": [1, 2, None], "y": "z"}
    log("json roundtrip", lambda: store["j"])
    store.close()


# --------------------------------------------------------------------------------------------
# Random operation sequences replayed on any diskstore (three-way: ours, original, dict)
# --------------------------------------------------------------------------------------------

_KEY_POOL = [0, 1, 2, 3, -1, 2**62, 2.0, 0.5, -3.25, "", "a", "b", "ab", "a\x00", "é",
             b"", b"a", b"\x00", b"ab"]
_VALUE_POOL = [0, 1, -(2**63), 2**63 - 1, 1.5, -0.25, 1e300, "", "x", "ü\x00", b"", b"\xff",
               "long " * 20]
_OPS = ["set"] * 6 + ["get", "del", "pop", "popd", "popitem", "setdefault", "getd", "contains",
                      "update_dict", "update_pairs", "update_kw", "add", "txn_ok", "txn_fail",
                      "page"]


def random_ops(seed: int, count: int) -> list:
    import random

    rnd = random.Random(seed)
    ops = []
    for _ in range(count):
        op = rnd.choice(_OPS + (["clear"] if rnd.random() < 0.02 else []))
        k, v = rnd.randrange(len(_KEY_POOL)), rnd.randrange(len(_VALUE_POOL))
        pairs = [(rnd.randrange(len(_KEY_POOL)), rnd.randrange(len(_VALUE_POOL)))
                 for _ in range(rnd.randrange(4))]
        ops.append([op, k, v, pairs, rnd.randrange(5), rnd.randrange(4)])
    return ops


def apply_ops(target, ops: list) -> list:
    """Apply ``ops`` to a store or a dict; returns tagged results, one per op, each followed
    by the full item list (so order is compared after every step)."""
    results = []
    K, V = _KEY_POOL, _VALUE_POOL

    def outcome(fn):
        try:
            return enc(fn())
        except KeyError as e:
            return ["KeyError", [enc(a) for a in e.args]]

    for op, k, v, pairs, limit, offset in ops:
        key, value = K[k], V[v]
        kv = [(K[a], V[b]) for a, b in pairs]
        if op == "set":
            r = outcome(lambda key=key, value=value: operator.setitem(target, key, value))
        elif op == "get":
            r = outcome(lambda key=key: target[key])
        elif op == "del":
            r = outcome(lambda key=key: operator.delitem(target, key))
        elif op == "pop":
            r = outcome(lambda key=key: target.pop(key))
        elif op == "popd":
            r = outcome(lambda key=key, value=value: target.pop(key, value))
        elif op == "popitem":
            r = outcome(target.popitem)
            if r[0] == "KeyError":
                r = ["KeyError", "(message not compared)"]
        elif op == "setdefault":
            r = outcome(lambda key=key, value=value: target.setdefault(key, value))
        elif op == "getd":
            r = outcome(lambda key=key, value=value: target.get(key, value))
        elif op == "contains":
            r = enc(key in target)
        elif op == "update_dict":
            r = outcome(lambda kv=kv: target.update(dict(kv)))
        elif op == "update_pairs":
            r = outcome(lambda kv=kv: target.update(iter(kv)))
        elif op == "update_kw":
            r = outcome(lambda kv=kv: target.update(**{f"kw{a!r}": b for a, b in kv}))
        elif op == "add":
            if not isinstance(target, dict):
                r = outcome(lambda key=key, value=value: target.add(key, value))
            elif key in target:
                r = enc(None)
            else:
                target[key] = value
                r = enc(key)
        elif op in ("txn_ok", "txn_fail"):
            if isinstance(target, dict):
                if op == "txn_ok":
                    target.update(kv)
                r = enc(None)
            else:
                try:
                    with target.transact():
                        for a, b in kv:
                            target[a] = b
                        if op == "txn_fail":
                            raise RuntimeError("rollback")
                except RuntimeError:
                    pass
                r = enc(None)
        elif op == "page":
            if isinstance(target, dict):
                r = enc(list(target.items())[offset:offset + limit])
            else:
                r = enc(list(target.query(order="rowid", limit=limit, offset=offset)))
        elif op == "clear":
            r = enc(target.clear())
        else:
            raise ValueError(op)
        results.append([op, r, enc(list(target.items()))])
    return results


def replay(workdir: str, seeds: list[int], count: int) -> list:
    out = []
    for seed in seeds:
        path = os.path.join(workdir, f"replay-{seed}.db")
        store = _ds().DiskStore(path)
        out.append(apply_ops(store, random_ops(seed, count)))
        store.close()
    return out


# --------------------------------------------------------------------------------------------
# Concurrency worker
# --------------------------------------------------------------------------------------------


def counter_worker(path: str, worker: int, threads: int, rounds: int) -> dict:
    """Each thread increments shared counters and a private one inside transact()."""
    errors: list[str] = []
    try:
        store = _ds().DiskStore(path)
    except Exception as e:  # noqa: BLE001
        return {"errors": [f"open: {type(e).__name__}: {e}"]}

    def body(t: int) -> None:
        try:
            for i in range(rounds):
                with store.transact():
                    store["total"] = store.get("total", 0) + 1
                    key = f"slot{i % 3}"
                    store[key] = store[key] + 1 if key in store else 1
                    own = f"w{worker}t{t}"
                    store[own] = store.get(own, 0) + 1
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")

    ts = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    store.close()
    return {"errors": errors}


def mp_increment(store, key: str, rounds: int) -> None:
    """multiprocessing target: increment ``key`` ``rounds`` times, one transaction each."""
    for _ in range(rounds):
        with store.transact():
            store[key] = store.get(key, 0) + 1


def hold_write_lock(path: str, seconds: float) -> dict:
    """Take the write lock (transact) and keep it for ``seconds``."""
    import time

    store = _ds().DiskStore(path)
    with store.transact():
        store["holder"] = 1
        print(MARK + json.dumps("locked"), flush=True, file=sys.__stdout__)
        time.sleep(seconds)
    store.close()
    return {"released": True}


# --------------------------------------------------------------------------------------------
# Script entry point
# --------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "run":
        name, workdir = argv[1], argv[2]
        arg = argv[3] if len(argv) > 3 else ""
        log = Log()
        path = os.path.join(workdir, "store.db")
        with contextlib.redirect_stdout(sys.stderr):
            SCENARIOS[name]["fn"](log, path, arg)
        result: object = log.out
    elif cmd == "counter-worker":
        with contextlib.redirect_stdout(sys.stderr):
            result = counter_worker(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif cmd == "replay":
        with contextlib.redirect_stdout(sys.stderr):
            result = replay(argv[1], [int(x) for x in argv[2].split(",")], int(argv[3]))
    elif cmd == "hold-write-lock":
        with contextlib.redirect_stdout(sys.stderr):
            result = hold_write_lock(argv[1], float(argv[2]))
    elif cmd == "version":
        import importlib.metadata

        result = importlib.metadata.version("diskstore")
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(MARK + json.dumps(result))
    return 0


def raw_layout(path: str | os.PathLike) -> dict:
    """What a file holds, read with the stdlib sqlite3: tables, columns, rows with types."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out: dict = {"tables": tables}
        for t in tables:
            q = '"' + t.replace('"', '""') + '"'
            cols = [tuple(r[1:]) for r in con.execute(f"PRAGMA table_info({q})")]
            names = [c[0] for c in cols]
            sel = ", ".join(f'typeof("{n}"), quote("{n}")' for n in names)
            rows = [list(r) for r in con.execute(f"SELECT rowid, {sel} FROM {q} ORDER BY rowid")]
            out[t] = {"columns": cols, "rows": rows}
        return out
    finally:
        con.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
