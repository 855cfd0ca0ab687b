"""A PostgreSQL cache with limits inside `transact()`: its writes belong to the block
(rolled back with it, committed by it), as on SQLite."""

from __future__ import annotations

import pytest
from backend_servers import server_url, unique
from diskstore import DiskCache, Error


def _cache(**limits: object) -> DiskCache:
    return DiskCache(server_url("DISKSTORE_TEST_POSTGRES"), tablename=unique("limtx"), **limits)


def test_a_rolled_back_block_leaves_no_limited_write() -> None:
    c = _cache(count_limit=100)
    c["kept"] = 1
    with pytest.raises(RuntimeError), c.transact():
        c["undone"] = 2
        c.set_many({"many1": 1, "many2": 2})
        assert c["undone"] == 2
        raise RuntimeError
    assert list(c) == ["kept"]
    with c.transact():
        c["done"] = 3
    assert list(c) == ["kept", "done"]


def test_a_refused_write_keeps_the_blocks_earlier_writes() -> None:
    c = _cache(count_limit=2, eviction_policy="none")
    c["a"] = 1
    with c.transact():
        c["b"] = 2
        with pytest.raises(Error, match="full"):
            c["c"] = 3
    assert list(c) == ["a", "b"]
