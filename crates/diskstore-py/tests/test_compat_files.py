"""File interoperability with the ORIGINAL diskstore (0.1.0 and 0.7.0, installed from PyPI into
throw-away venvs at test time), in both directions.

For every layout of ``compat_support.FILE_CASES`` the same writer and reader code (written in
the API of the case's generation) is run by the original and by ours, in subprocesses:

* original writes -> original reads: the reference observation (and sanity-checked here);
* original writes -> ours reads: must observe exactly the same (values, types, order, len,
  query, DiskRead);
* ours writes -> original reads: must observe exactly the same;
* ours writes: the file itself (tables, columns, rows with their SQLite types, rowids) must
  equal the file the original wrote.

Plus the "default model" rule for DiskStore(path) with neither value_class nor config.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from compat_support import (
    FILE_CASES,
    orig_python,
    ours_python,
    raw_layout,
    run_scenario,
    run_scenarios,
)


def _dump(python: str, workdir, case: str) -> list:
    return run_scenario(python, "file_read", workdir, case)


def _write(python: str, workdir, case: str) -> None:
    log = run_scenario(python, "file_write", workdir, case)
    assert log == [["written", ["str", case]]]


def _mk(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Per case: (directory of the original-written file, the original's own reading)."""
    cache: dict = {}

    def get(case: str):
        if case not in cache:
            gen = FILE_CASES[case]
            d = tmp_path_factory.mktemp(f"orig-{case}")
            _write(orig_python(gen), d, case)
            cache[case] = (d, _dump(orig_python(gen), d, case))
        return cache[case]

    return get


def _sanity(case: str, dump: list) -> None:
    """A few absolute facts, so that the reference itself is known to be right."""
    rw = {k[3:]: v for k, v in dump if k.startswith("rw.")}
    ro = {k[3:]: v for k, v in dump if k.startswith("ro.")}
    assert rw == ro, "DiskStore and DiskRead disagree"
    assert all(v[0] != "exc" for v in rw.values()), rw
    if case in ("v01_intkey", "v07_intkey"):
        assert rw["keys"] == ["list", [["int", str(k)] for k in (2, 3, 5, 10, 11, 12)]]
    elif case in ("v01_item", "v07_item", "v07_lazy"):
        assert rw["keys"] == ["list", [["str", k] for k in ("k1", "k3", "k4", "k5", "k6")]]
        assert rw["len"] == ["int", "5"]
    elif case == "v07_json":
        assert rw["keys"] == ["list", [["str", k] for k in
                                       ("doc", "num", "str", "null", "float", "last")]]
    elif case == "v07_dataclass":
        assert rw["keys"] == ["list", [["str", k] for k in ("r1", "r3", "r4", "r5")]]
    elif case == "v07_custom":
        assert rw["each"] == ["list", [["tuple", [["int", a], ["str", b]]] for a, b in
                                       (("10", "ten"), ("3", "three"), ("4", ""))]]
    else:
        assert rw["len"] == ["int", "10"]


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_ours_reads_original_file(case, reference, tmp_path):
    orig_dir, expected = reference(case)
    _sanity(case, expected)
    work = _mk(tmp_path, "copy")
    shutil.copytree(orig_dir, work, dirs_exist_ok=True)
    got = _dump(ours_python(FILE_CASES[case]), work, case)
    assert got == expected


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_original_reads_our_file(case, reference, tmp_path):
    gen = FILE_CASES[case]
    orig_dir, expected = reference(case)
    ours_dir = _mk(tmp_path, "ours")
    _write(ours_python(gen), ours_dir, case)
    # the file itself: same tables, columns (name, type, notnull, default, pk), rows with
    # their SQLite storage classes and rowids
    assert raw_layout(ours_dir / "store.db") == raw_layout(orig_dir / "store.db")
    by_original, by_ours = run_scenarios(
        (orig_python(gen), "file_read", ours_dir, case),
        (ours_python(gen), "file_read", ours_dir, case),
    )
    assert by_original == expected
    assert by_ours == expected


@pytest.mark.parametrize(("scenario", "case"),
                         [("migrate_v07", "v07_item"), ("migrate_v01", "v01_item")])
def test_migration_of_an_original_file(scenario, case, reference, tmp_path):
    """An Item table written by the original, opened with a NamedTuple with two more
    defaulted fields: columns are added with their defaults, exactly as the original does."""
    orig_dir, _ = reference(case)
    gen = FILE_CASES[case]
    a, b = _mk(tmp_path, "a"), _mk(tmp_path, "b")
    shutil.copytree(orig_dir, a, dirs_exist_ok=True)
    shutil.copytree(orig_dir, b, dirs_exist_ok=True)
    expected, got = run_scenarios((orig_python(gen), scenario, a), (ours_python(gen), scenario, b))
    assert got == expected
    assert raw_layout(b / "store.db") == raw_layout(a / "store.db")
    # and the original reads the file ours migrated
    c = _mk(tmp_path, "c")
    shutil.copytree(b, c, dirs_exist_ok=True)
    again = run_scenario(orig_python(gen), scenario, c)
    assert dict(again)["items"] == dict(expected)["after writes"]


# ---- the default model: DiskStore(path) with neither value_class nor config -----------------


def _default_read(python, workdir):
    return run_scenario(python, "default_read", workdir)


def _copies(tmp_path, src, *names):
    out = []
    for name in names:
        d = _mk(tmp_path, name)
        shutil.copytree(src, d, dirs_exist_ok=True)
        out.append(d)
    return out


def test_default_model_existing_v01_file(tmp_path):
    """A file with a "Value" table (written by 0.1.0) opened without arguments is 0.1.0."""
    src = _mk(tmp_path, "src")
    _write(orig_python("0.1.0"), src, "v01_default")
    ra, rb = _copies(tmp_path, src, "ra", "rb")
    expected, got = run_scenarios((orig_python("0.1.0"), "default_read", ra),
                                  (ours_python("0.1.0"), "default_read", rb))
    first_value = expected[0][1][1][0][1][1]  # rw.items -> list -> first pair -> value
    assert first_value[:2] == ["nt", "Value"], "0.1.0 returns Value objects"
    assert got == expected
    # ... and keeps behaving as 0.1.0 for Value writes and reads. Deliberate difference
    # (docs/compat.md, "Files that hold both generations"): a raw value names the 0.7.0
    # generation, so ours writes it to the "DiskStore" table, as 0.7.0 code on this file
    # does with the original; 0.1.0 refused it with ValueError.
    a, b = _mk(tmp_path, "a"), _mk(tmp_path, "b")
    shutil.copytree(src, a, dirs_exist_ok=True)
    shutil.copytree(src, b, dirs_exist_ok=True)
    expected, got = run_scenarios(
        (orig_python("0.1.0"), "v01_default_existing_semantics", a),
        (ours_python("0.1.0"), "v01_default_existing_semantics", b),
    )
    raw_writes = ("set raw", "add raw")
    assert [e for e in got if e[0] not in raw_writes] == [
        e for e in expected if e[0] not in raw_writes
    ]
    assert [e[1][:2] for e in expected if e[0] in raw_writes] == [["exc", "ValueError"]] * 2
    assert [e[1] for e in got if e[0] in raw_writes] == [["None"], ["None"]]  # add: key exists
    ours, theirs = raw_layout(b / "store.db"), raw_layout(a / "store.db")
    assert ours["Value"] == theirs["Value"]
    assert ours["tables"] == ["DiskStore", "Value"] and theirs["tables"] == ["Value"]
    assert [r[2] for r in ours["DiskStore"]["rows"]] == ["'raw'"]


def test_default_model_existing_v07_file(tmp_path):
    """A file with a "DiskStore" table (written by 0.7.0) opened without arguments is 0.7.0."""
    src = _mk(tmp_path, "src")
    _write(orig_python("0.7.0"), src, "v07_default")
    ra, rb = _copies(tmp_path, src, "ra", "rb")
    expected, got = run_scenarios((orig_python("0.7.0"), "default_read", ra),
                                  (ours_python("0.7.0"), "default_read", rb))
    assert got == expected
    a, b = _mk(tmp_path, "a"), _mk(tmp_path, "b")
    shutil.copytree(src, a, dirs_exist_ok=True)
    shutil.copytree(src, b, dirs_exist_ok=True)
    expected, got = run_scenarios(
        (orig_python("0.7.0"), "v07_default_existing_semantics", a),
        (ours_python("0.7.0"), "v07_default_existing_semantics", b),
    )
    assert got == expected
    assert raw_layout(b / "store.db") == raw_layout(a / "store.db")


def test_default_model_both_tables_means_v07(tmp_path):
    """A file holding both a "Value" and a "DiskStore" table: the 0.7.0 one is used."""
    src = _mk(tmp_path, "src")
    _write(orig_python("0.1.0"), src, "v01_default")
    _write(orig_python("0.7.0"), src, "v07_default")
    assert raw_layout(src / "store.db")["tables"] == ["DiskStore", "Value"]
    expected = _default_read(orig_python("0.7.0"), src)
    got = _default_read(ours_python("0.7.0"), src)
    assert got == expected


@pytest.mark.parametrize(
    ("scenario", "generation", "table"),
    [("default_write_value", "0.1.0", "Value"), ("default_write_raw", "0.7.0", "DiskStore")],
)
def test_default_model_new_file_first_value_decides(scenario, generation, table, tmp_path):
    """New file, no arguments: a Value first gives the 0.1.0 layout, a scalar the 0.7.0 one;
    each is then read by the original of that generation exactly as its own file."""
    orig_dir, ours_dir = _mk(tmp_path, "orig"), _mk(tmp_path, "ours")
    expected_log, got_log = run_scenarios((orig_python(generation), scenario, orig_dir),
                                          (ours_python(generation), scenario, ours_dir))
    assert got_log == expected_log
    layout = raw_layout(ours_dir / "store.db")
    assert layout["tables"] == [table]
    assert layout == raw_layout(orig_dir / "store.db")
    assert _default_read(orig_python(generation), ours_dir) == _default_read(
        orig_python(generation), orig_dir
    )
