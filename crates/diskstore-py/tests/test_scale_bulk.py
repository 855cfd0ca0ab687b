"""update() writes its batch many rows per SQLite statement (crates/diskstore/src/table/bulk.rs).
The store must end up exactly as a dict updated pair by pair would: values (the last of a repeated
key wins), order (a replaced key keeps its place), len(), and all or nothing on a bad pair."""

from __future__ import annotations

import random
import sqlite3
import warnings
from pathlib import Path

import pytest
from diskstore import DiskStore, IntegrityError
from diskstore.sqlite_guard import SharedFileWarning


def counted(path: Path) -> int:
    """The row count as a separate reader sees it (not our cached count). A read-only
    connection cannot lose our writes, so the guard's warning does not apply."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SharedFileWarning)
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute('SELECT count(*) FROM "DiskStore"').fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("key_kind", ["str", "bytes", "float", "mixed"])
def test_batches_across_chunk_boundaries_match_a_dict(tmp_path: Path, key_kind: str) -> None:
    path = tmp_path / "bulk.db"
    store = DiskStore(str(path))
    model: dict = {}
    rng = random.Random(key_kind)

    def make_key(i: int) -> object:
        kind = key_kind if key_kind != "mixed" else rng.choice(["str", "bytes", "float", "int"])
        return {
            "str": f"k{i}",
            "bytes": f"k{i}".encode(),
            "float": i + 0.5,
            "int": i,
        }[kind]

    assert len(store) == 0
    for rnd, size in enumerate([1, 63, 64, 65, 129, 700, 2500]):
        batch = [(make_key(rng.randrange(1200)), f"r{rnd}i{j}".encode()) for j in range(size)]
        store.update(batch)
        model.update(batch)
        assert list(store.items()) == list(model.items()), f"round {rnd}"
        assert len(store) == len(model)
        assert counted(path) == len(model)
    store.close()


def test_a_bad_pair_late_in_a_large_batch_keeps_nothing(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path / "b.db"))
    store.update((f"old{i}", i) for i in range(100))
    bad = [(f"new{i}", i) for i in range(500)]
    # SQLite refuses the NULL value when row 400's chunk runs, after earlier chunks ran.
    bad[400] = ("null", None)
    with pytest.raises(IntegrityError):
        store.update(bad)
    assert len(store) == 100
    assert "new0" not in store
    # The count and the store are still right afterwards.
    store.update((f"new{i}", i) for i in range(500))
    assert len(store) == 600
    assert list(store)[:2] == ["old0", "old1"]
    store.close()


def test_a_failed_batch_inside_transact_leaves_the_earlier_writes(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path / "t.db"))
    with store.transact():
        store.update((f"a{i}", i) for i in range(200))
        with pytest.raises(IntegrityError):
            store.update([(f"b{i}", i) for i in range(150)] + [("null", None)])
        assert len(store) == 200
    assert len(store) == 200
    assert "b0" not in store
    store.close()
