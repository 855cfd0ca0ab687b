"""Drop-in, measured (issue 12): code written for the original runs unchanged on ours.

Three kinds of differential checks, each run under the original (0.1.0 with apsw, 0.7.0 on
its documented default backend, the standard library's `sqlite3`) and under ours, in
separate processes, with the outputs compared:

* the original's own examples and scripts, taken from its source distribution on PyPI
  (README, docs/index.md, scripts/): each must succeed under both and print the same;
* the module layout: every public name of every public module of both versions;
* scenarios written here for each item of the issue, and files written by one side and read
  by the other.

Where ours differs on purpose the test says so next to the check, and docs/compat.md gives
the reason. Nothing here skips: without PyPI the originals cannot be installed and the tests
fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compat_support as cs

# --------------------------------------------------------------------------------------------
# Running code under both
# --------------------------------------------------------------------------------------------


def _python(side: str, version: str) -> str:
    return sys.executable if side == "ours" else cs.orig_python(version)


def run_code(
    side: str,
    version: str,
    code: str,
    workdir: Path,
    args: tuple[str, ...] = (),
    timeout: float = 300,
    extra_files: Path | None = None,
) -> subprocess.CompletedProcess:
    """Runs `code` as a script under one side, in `workdir`, with `/tmp/` in the code
    pointing into `workdir` (so the two sides never share a file by accident)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if extra_files is not None:
        for f in extra_files.iterdir():
            if f.is_file():
                shutil.copy(f, workdir / f.name)
    script = workdir / "example_under_test.py"
    script.write_text(code.replace("/tmp/", f"{workdir}/"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(cs.example_deps("0.7.0"))
    env["PYTHONHASHSEED"] = "0"
    if side == "orig" and version == "0.7.0":
        env["DISKSTORE_BACKEND"] = "sqlite3"  # the documented default backend
    return subprocess.run(
        [_python(side, version), str(script), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def both(version: str, code: str, tmp_path: Path, **kw) -> tuple[str, str]:
    """Runs `code` under the original `version` and under ours; both must succeed.
    Returns the two outputs with the work folders replaced by `<dir>`."""
    out = []
    for side in ("orig", "ours"):
        workdir = tmp_path / side
        proc = run_code(side, version, code, workdir, **kw)
        assert proc.returncode == 0, (
            f"{side} failed (rc={proc.returncode})\n--- stdout\n{proc.stdout[-3000:]}"
            f"\n--- stderr\n{proc.stderr[-5000:]}"
        )
        out.append(proc.stdout.replace(str(workdir), "<dir>"))
    return out[0], out[1]


# --------------------------------------------------------------------------------------------
# 1. The original's examples and scripts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One example or script of the original's source distribution."""

    version: str
    source: str  # path inside the sdist
    block: int | None = None  # index of the ```python block in a Markdown file
    args: tuple[str, ...] = ()
    same_output: bool = True  # False for scripts that print timings
    note: str = field(default="", compare=False)

    def __str__(self) -> str:
        where = self.source if self.block is None else f"{self.source}#{self.block}"
        return f"{self.version}:{where}"


_INDEX_BLOCKS = 17  # ```python blocks in 0.7.0's docs/index.md (checked below)

EXAMPLES = [
    Example("0.1.0", "README.md", 0),
    Example("0.7.0", "README.md", 0),
    *(Example("0.7.0", "docs/index.md", i) for i in range(_INDEX_BLOCKS)),
    Example("0.7.0", "scripts/example.py"),
    # The stress tests compare the store with a dict or check invariants, unchanged; the
    # load and benchmark scripts with smaller sizes through their own options.
    Example("0.7.0", "scripts/stress_test.py", same_output=False),  # prints timings
    Example("0.7.0", "scripts/stress_test_index.py"),
    Example("0.7.0", "scripts/busy_load.py", args=("--processes", "2", "--ops", "60"),
            same_output=False),
    Example("0.7.0", "scripts/benchmark.py",
            args=("--ops", "300", "--dbsize", "300", "--rounds", "1"), same_output=False),
    Example("0.7.0", "scripts/benchmark_configs.py", args=("--ops", "300", "--dbsize", "300"),
            same_output=False),
]
"""Not run (reported, not hidden): scripts/bigfile.py and stress_test_diskstore_mp.py have
hard-coded sizes (10^6 rows; 8 processes x 10^5 operations) with no option to shrink them;
benchmark_core.py and benchmark_kv_store.py need python-diskcache; bench_ab.py compares the
original's two backends (apsw against sqlite3), which ours does not have."""

_FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def example_code(ex: Example) -> str:
    text = (cs.orig_source(ex.version) / ex.source).read_text()
    if ex.block is None:
        return text
    return textwrap.dedent(_FENCE.findall(text)[ex.block])


def test_the_catalogue_covers_every_documented_example() -> None:
    for version, source, count in (
        ("0.1.0", "README.md", 1),
        ("0.7.0", "README.md", 1),
        ("0.7.0", "docs/index.md", _INDEX_BLOCKS),
    ):
        text = (cs.orig_source(version) / source).read_text()
        assert len(_FENCE.findall(text)) == count, (version, source)


@pytest.mark.parametrize("ex", EXAMPLES, ids=str)
def test_the_originals_example_runs_unchanged(ex: Example, tmp_path: Path) -> None:
    code = example_code(ex)
    extra = None
    if ex.block is None:
        extra = (cs.orig_source(ex.version) / ex.source).parent  # helpers next to it
    orig, ours = both(ex.version, code, tmp_path, args=ex.args, extra_files=extra)
    if ex.same_output:
        assert ours == orig


# --------------------------------------------------------------------------------------------
# 2. Module layout: every public name of every public module
# --------------------------------------------------------------------------------------------

PUBLIC_MODULES = {
    "0.1.0": [
        "diskstore",
        "diskstore.const",
        "diskstore.diskread",
        "diskstore.diskstore",
        "diskstore.diskcache",
    ],
    "0.7.0": [
        "diskstore",
        "diskstore.config",
        "diskstore.const",
        "diskstore.diskread",
        "diskstore.diskstore",
    ],
}
"""0.1.0's `diskstore.diskcache` module is provided by the python-diskcache compatible
package of the same name, which keeps 0.1.0's names."""

# Helpers the originals import for their own use under their stdlib names (typing and
# contextlib helpers, modules): not API, and not provided.
INCIDENTAL = {
    "Any", "Generator", "ItemsView", "Iterable", "KeysView", "Mapping", "MutableMapping",
    "NamedTuple", "Optional", "Protocol", "Sequence", "TypeAlias", "Union", "ValuesView",
    "abstractmethod", "cast", "closing", "contextmanager", "sleep", "suppress", "time",
}

_DIR_SCRIPT = """
import importlib, json, types, sys
out = {}
for name in sys.argv[1:]:
    mod = importlib.import_module(name)
    out[name] = sorted(
        n for n in dir(mod)
        if not n.startswith("_") and not isinstance(getattr(mod, n), types.ModuleType)
    )
print(json.dumps(out))
"""


def public_names(python: str, modules: list[str], extra_env: dict | None = None) -> dict:
    import json

    env = dict(os.environ, **(extra_env or {}))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [python, "-c", _DIR_SCRIPT, *modules], capture_output=True, text=True, check=True,
        env=env, cwd="/tmp",
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize("version", ["0.1.0", "0.7.0"])
def test_every_public_name_of_the_original_imports_from_the_same_place(version: str) -> None:
    modules = PUBLIC_MODULES[version]
    orig = public_names(cs.orig_python(version), modules, {"DISKSTORE_BACKEND": "sqlite3"})
    ours = public_names(sys.executable, modules)
    missing = {
        m: sorted(set(orig[m]) - set(ours[m]) - INCIDENTAL)
        for m in modules
        if set(orig[m]) - set(ours[m]) - INCIDENTAL
    }
    assert missing == {}
    # Submodules are attributes of the package, as `from diskstore import diskread` needs.
    import diskstore

    for m in modules[1:]:
        assert getattr(diskstore, m.split(".")[1]).__name__ == m


def test_the_0_1_0_diskcache_module_path() -> None:
    # The import line 0.1.0 code uses (every name is checked by the layout test above).
    from diskstore.diskcache import CacheValue, DiskCache

    assert CacheValue._fields == ("value", "expires_at")
    assert callable(DiskCache)


def test_the_0_7_0_private_sqlite_helpers() -> None:
    # `_sqlite` is private, but code that inspects a store uses these; `connect` is left
    # out on purpose (a second SQLite library on the same file: docs/compat.md).
    from diskstore import _sqlite

    for name in ("get_pragma", "set_pragma", "table_columns", "is_busy", "quote_literal", "connect",
                 "format_sql_value", "execute", "executemany", "BusyError", "SQLError",
                 "Error", "Connection", "Cursor", "BACKEND_NAME", "TIMEOUT"):
        assert hasattr(_sqlite, name), name


# --------------------------------------------------------------------------------------------
# 3. Scenarios per item, compared line by line
# --------------------------------------------------------------------------------------------

_PRELUDE = '''
import sqlite3, pickle, os, json, dataclasses, pathlib
from typing import NamedTuple, ClassVar
def kind(e):
    """An exception as the categories code written for the original catches."""
    for cls in (sqlite3.IntegrityError, sqlite3.OperationalError, sqlite3.DatabaseError,
                sqlite3.Error, KeyError, OverflowError, TypeError, ValueError):
        if isinstance(e, cls):
            return cls.__name__
    return "other:" + type(e).__name__
def show(label, f):
    try:
        r = repr(f())
    except Exception as e:
        r = "raises " + kind(e)
    print(label, "->", r)
'''

KEY_PROBES = '[1, 1.0, "1", "1.0", " 1", 2, "2.5", 2.5, "abc", b"1", b"abc", -0.0, None, 2**53]'

SCENARIO_V07_KEYS = _PRELUDE + f'''
from diskstore import DiskStore
from diskstore.config import BaseConfig
for key_type in (int, float, str, bytes):
    ds = DiskStore(f"/tmp/keys-{{key_type.__name__}}.db", config=BaseConfig(key_type=key_type))
    for k in {KEY_PROBES}:
        show(f"{{key_type.__name__}} set {{k!r}}", lambda: ds.__setitem__(k, "v"))
    print(key_type.__name__, "stored", [(k, type(k).__name__) for k in ds])
    for k in {KEY_PROBES}:
        show(f"{{key_type.__name__}} get {{k!r}}", lambda: ds.get(k, "-"))
        show(f"{{key_type.__name__}} in {{k!r}}", lambda: k in ds)
    show(f"{{key_type.__name__}} add None", lambda: ds.add(None, "w"))
    for k in ("77", 78.0, 79, b"80", "81.5"):
        show(f"{{key_type.__name__}} add {{k!r}}", lambda: ds.add(k, "w"))
'''

SCENARIO_V07_ITEMS = _PRELUDE + '''
from diskstore import DiskStore, DiskRead, BusyError
from diskstore.config import BaseConfig, NamedTupleConfig

# item 5: query with limit -1 and an offset
ds = DiskStore("/tmp/q.db")
ds.update((k, k) for k in "abcde")
show("query -1/2", lambda: list(ds.query(limit=-1, offset=2)))
show("query -1/99", lambda: list(ds.query(limit=-1, offset=99)))
show("query 2/None", lambda: list(ds.query(limit=2)))

# item 12: config details
show("fields", lambda: BaseConfig().fields)
show("timeout", lambda: BaseConfig(timeout=-1).timeout)
show("store timeout", lambda: DiskStore("/tmp/t.db", config=BaseConfig(timeout=-1)).timeout)
class Bad:
    _fields = ("_key", "v")
try:
    NamedTupleConfig(Bad)
except ValueError as e:
    print("_key field:", "_key is not allowed" in str(e))
class Derive(BaseConfig):
    def dump_value(self, key, value):
        return (value["id"] if key is None else key, value["name"])
    def load_data(self, data):
        return {"id": data[0], "name": data[1]}
dd = DiskStore("/tmp/derive.db", config=Derive(key_type=int))
show("derived add", lambda: dd.add(None, {"id": 42, "name": "x"}))
show("derived get", lambda: dd[42])
nn = DiskStore("/tmp/none-first.db")
show("first write None", lambda: nn.__setitem__("k", None))

# item 3: a duck-typed value class with NamedTupleConfig
@dataclasses.dataclass
class Duck:
    _fields: ClassVar[tuple] = ("x", "y")
    x: int
    y: int
    def __iter__(self):
        return iter((self.x, self.y))
    @classmethod
    def _make(cls, row):  # 0.7.0's NamedTupleConfig builds values with _make
        return cls(*row)
du = DiskStore("/tmp/duck.db", config=NamedTupleConfig(Duck))
show("duck set", lambda: du.__setitem__("p", Duck(1, 2)))
show("duck get", lambda: du["p"])

# item 13: exceptions and the transact() cursor
show("missing DiskRead", lambda: DiskRead("/tmp/nope/none.db")["k"])
print("BusyError is sqlite3.Error:", issubclass(BusyError, sqlite3.Error))
e = pickle.loads(pickle.dumps(BusyError("m")))
print("pickled:", type(e).__name__, str(e))
ik = DiskStore("/tmp/ik.db", config=BaseConfig(key_type=int))
with ik.transact() as cur:
    cur.execute('INSERT INTO "DiskStore" (_key, value) VALUES (5, ?)', ("x",))
    print("rowcount", cur.rowcount, "lastrowid", cur.lastrowid)
    cur.execute('SELECT _key AS k, value FROM "DiskStore"')
    print("description", [d[0] for d in cur.description], "rows", cur.fetchall())
show("mismatch", lambda: ik.__setitem__("abc", 1))
show("bad sql", lambda: list(ik.query(where="nosuchcolumn = 1")))

# item 8 (0.7.0 half): DiskStore with a pathlib.Path
pp = DiskStore(pathlib.Path("/tmp/path.db"))
pp["a"] = 1
print("path filename", pp.filename.endswith("path.db"), pp["a"])
'''

SCENARIO_V01_ITEMS = _PRELUDE + '''
import dataclasses, os, pathlib
from diskstore import DiskStore, Value

# item 8: the file exists once the constructor returns
ds = DiskStore(pathlib.Path("/tmp/v01.db"))
print("exists", os.path.exists(ds.filename))
show("bad folder", lambda: DiskStore("/tmp/no/such/folder/x.db"))

# item 4: None and text keys on an INTEGER key column (0.1.0 documents None)
ints = DiskStore("/tmp/ints.db", key_type=int)
ints[None] = Value("first")
ints["5"] = Value("five")
ints[7.0] = Value("seven")
ints[None] = Value("eight")
print("int keys", [(k, type(k).__name__) for k in ints], ints[5], ints["7"])
show("int add None", lambda: ints.add(None, Value("nine")))

# item 3: a dataclass value class that looks like a NamedTuple
@dataclasses.dataclass
class Duck:
    _fields: ClassVar[tuple] = ("x", "y")
    x: int
    y: int
    def __iter__(self):
        return iter((self.x, self.y))
du = DiskStore("/tmp/duck.db", value_class=Duck)
du["p"] = Duck(3, 4)
print("duck", du["p"])
show("duck refuses a tuple", lambda: du.__setitem__("q", (1, 2)))

# item 7: transact(retry=True) when nobody else holds the lock
with ds.transact(retry=True):
    ds["r"] = Value(1)
print("retry", ds["r"])
'''


def _lines(out: str) -> list[str]:
    return out.splitlines()


def test_v07_keys_follow_sqlite_affinity_like_the_original(tmp_path: Path) -> None:
    orig, ours = both("0.7.0", SCENARIO_V07_KEYS, tmp_path)
    # Deliberate difference (docs/compat.md): a REAL key column refuses integers it would
    # round (2**53 is exact, so it is the same here); nothing else differs.
    assert _lines(ours) == _lines(orig)


def test_v07_items(tmp_path: Path) -> None:
    orig, ours = both("0.7.0", SCENARIO_V07_ITEMS, tmp_path)
    assert _lines(ours) == _lines(orig)


def test_v01_items(tmp_path: Path) -> None:
    orig, ours = both("0.1.0", SCENARIO_V01_ITEMS, tmp_path)
    # Deliberate difference: 0.1.0's bad folder is apsw's CantOpenError (no sqlite3 class);
    # ours is NotFoundError, a sqlite3.OperationalError.
    o, u = _lines(orig), _lines(ours)
    assert [ln for ln in o if not ln.startswith("bad folder")] == [
        ln for ln in u if not ln.startswith("bad folder")
    ]
    assert "bad folder -> raises OperationalError" in u


# --------------------------------------------------------------------------------------------
# 4. Files both ways (items 3 and 4)
# --------------------------------------------------------------------------------------------

WRITE_V07 = '''
import dataclasses
from typing import ClassVar
from diskstore import DiskStore
from diskstore.config import BaseConfig, NamedTupleConfig
@dataclasses.dataclass
class Duck:
    _fields: ClassVar[tuple] = ("x", "y")
    x: int
    y: int
    def __iter__(self):
        return iter((self.x, self.y))
    @classmethod
    def _make(cls, row):
        return cls(*row)
ints = DiskStore("/tmp/files.db", config=BaseConfig(key_type=int, tablename="ints"))
ints["1"] = "one"; ints[2.0] = "two"; ints[None] = "three"
reals = DiskStore("/tmp/files.db", config=BaseConfig(key_type=float, tablename="reals"))
reals[1] = "one"; reals["2.5"] = "two and a half"; reals["x"] = "text key"
texts = DiskStore("/tmp/files.db", config=BaseConfig(key_type=str, tablename="texts"))
texts[1] = "one"; texts[2.5] = "two and a half"; texts[b"b"] = "blob key"
du = DiskStore("/tmp/files.db", config=NamedTupleConfig(Duck))
du["p"] = Duck(1, 2)
'''

READ_V07 = '''
import dataclasses
from typing import ClassVar
from diskstore import DiskRead
from diskstore.config import BaseConfig, NamedTupleConfig
@dataclasses.dataclass
class Duck:
    _fields: ClassVar[tuple] = ("x", "y")
    x: int
    y: int
    def __iter__(self):
        return iter((self.x, self.y))
    @classmethod
    def _make(cls, row):
        return cls(*row)
for name, kt in (("ints", int), ("reals", float), ("texts", str)):
    r = DiskRead("/tmp/files.db", config=BaseConfig(key_type=kt, tablename=name))
    print(name, [(k, type(k).__name__, v) for k, v in r.items()], r.get("1"), r.get(1))
print("duck", DiskRead("/tmp/files.db", config=NamedTupleConfig(Duck))["p"])
'''


@pytest.mark.parametrize("writer", ["orig", "ours"])
def test_files_with_affinity_keys_and_duck_values_both_ways(writer: str, tmp_path: Path) -> None:
    workdir = tmp_path / "shared"
    proc = run_code(writer, "0.7.0", WRITE_V07, workdir)
    assert proc.returncode == 0, proc.stderr
    outs = []
    for reader in ("orig", "ours"):
        proc = run_code(reader, "0.7.0", READ_V07, workdir)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[1] == outs[0]
    assert "('x', 'str', 'text key')" in outs[0]  # a REAL column keeps text that is no number


# --------------------------------------------------------------------------------------------
# 5. Files that hold both generations (item 11)
# --------------------------------------------------------------------------------------------

# Each program writes before it reads. A read before any write is the one ambiguous call
# (both programs open the file the same way): it follows the file (docs/compat.md), so a
# 0.7.0 program reading a file that has only a "Value" table sees the 0.1.0 entries.
GEN01_PROGRAM = """
import sys
from diskstore import DiskStore, Value
ds = DiskStore("/tmp/both.db")
ds["a" + sys.argv[1]] = Value("from 0.1.0 code")
print(sorted(ds.items()), len(ds))
"""

GEN07_PROGRAM = """
import sys
from diskstore import DiskStore
ds = DiskStore("/tmp/both.db")
ds["b" + sys.argv[1]] = "from 0.7.0 code"
print(sorted(ds.items()), len(ds))
"""


def test_01_then_07_code_on_one_path_like_the_originals(tmp_path: Path) -> None:
    steps = [("0.1.0", GEN01_PROGRAM), ("0.7.0", GEN07_PROGRAM), ("0.1.0", GEN01_PROGRAM),
             ("0.7.0", GEN07_PROGRAM)]
    outputs = {}
    for side in ("orig", "ours"):
        workdir = tmp_path / side
        outs = []
        for step, (version, code) in enumerate(steps):
            proc = run_code(side, version, code, workdir, args=(str(step),))
            assert proc.returncode == 0, (side, version, proc.stderr[-3000:])
            outs.append(proc.stdout)
        outputs[side] = (outs, cs.raw_layout(workdir / "both.db"))
    assert outputs["ours"][0] == outputs["orig"][0]
    ours, orig = outputs["ours"][1], outputs["orig"][1]
    assert ours["tables"] == orig["tables"] == ["DiskStore", "Value"]
    for table in ("DiskStore", "Value"):
        assert ours[table]["rows"] == orig[table]["rows"], table


# --------------------------------------------------------------------------------------------
# 6. The original's own test suite, run unchanged against ours
# --------------------------------------------------------------------------------------------

ORIGINAL_TEST_FILES = [
    "test_diskstore.py",
    "test_diskread.py",
    "test_config.py",
    "test_diskstore_classes.py",
]
"""0.7.0's tests of the public API. Not run: test_docs.py (the same examples run above,
through pytest-examples), test_backends.py, test_sqlite_adapter.py and
test_sqlite_selector.py (they test the original's apsw/sqlite3 backend modules, which ours
replaces)."""

EXPECTED_FAILURES = {
    # They call the original's private internals (_migrate_table, per-thread state,
    # fork-generation helpers), which ours does not have.
    "test_diskstore.py::test_migrate_table_static_create",
    "test_diskstore.py::test_busy_table_migration_raises_busy_error",
    "test_diskstore.py::test_busy_migration_begin_raises_busy_error",
    "test_diskstore.py::test_migration_rolls_back_on_failure",
    "test_diskstore.py::test_thread_state_defaults_and_isolation",
    "test_diskread.py::test_con_reconnects_after_fork_bump",
    "test_diskread.py::test_fork_generation_bump",
    "test_diskread.py::test_fork_token_falls_back_to_pid",
    # A new column without auto_migrate: ours refuses to open (SchemaError, docs/compat.md)
    # where the original opens and fails at the first write.
    "test_diskstore.py::test_auto_migrate_disabled",
    # A default-model store on a new file opens no connection before its first write
    # decides the table (reads see an empty store), so close_all() has none to count; on a
    # decided store it counts every thread's (test_default_model.py).
    "test_diskstore.py::test_close_all_closes_other_threads_diskstore",
    # Deliberate: a child forked inside the parent's transact() cannot write the file
    # (SQLite's copied lock records; the original closes the inherited connection, which
    # SQLite forbids). See docs/compat.md.
    "test_diskstore.py::test_transact_state_is_not_inherited_by_fork",
}


def test_the_originals_own_tests_pass_except_the_listed(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    shutil.copytree(cs.orig_source("0.7.0") / "tests", tests)
    env = dict(os.environ, PYTHONPATH=str(cs.example_deps("0.7.0")))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
         *(f"tests/{f}" for f in ORIGINAL_TEST_FILES)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    failed = {
        line.split()[1].removeprefix("tests/").split(" ")[0]
        for line in proc.stdout.splitlines()
        if line.startswith("FAILED ")
    }
    summary = proc.stdout.strip().splitlines()[-1]
    assert failed == EXPECTED_FAILURES, summary
    # The two skips are the original's own: jsonb needs the *standard library's* SQLite to
    # be 3.45 or newer.
    assert "262 passed" in summary and "2 skipped" in summary, summary  # of 275
