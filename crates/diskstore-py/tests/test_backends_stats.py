"""Hit and miss counts of a server cache are the server's: several processes (app
servers) sharing a PostgreSQL or Redis cache count into the same totals, and
`stats(reset=True)` resets them for all."""

from __future__ import annotations

import multiprocessing

import pytest
from backend_servers import server_url, unique
from diskstore import DiskCache

VARS = {"postgres": "DISKSTORE_TEST_POSTGRES", "redis": "DISKSTORE_TEST_REDIS"}


def _lookups(url: str, table: str, hits: int, misses: int, close: bool) -> None:
    """A separate process: `hits` lookups of the stored key, `misses` of absent ones."""
    c = DiskCache(url, tablename=table)
    for _ in range(hits):
        assert c.get("present") == 1
    for i in range(misses):
        assert c.get(f"absent{i}") is None
    if close:
        c.close()
    # Otherwise the counts are added when the cache object goes away at exit.


def _run(*args: object) -> None:
    p = multiprocessing.get_context("spawn").Process(target=_lookups, args=args)
    p.start()
    p.join(60)
    assert p.exitcode == 0


@pytest.mark.parametrize("backend", sorted(VARS))
def test_stats_count_every_process(backend: str) -> None:
    url = server_url(VARS[backend])
    table = unique("stats")
    c = DiskCache(url, tablename=table)
    c["present"] = 1
    assert c.stats(reset=True) == (0, 0)
    assert c.get("present") == 1
    _run(url, table, 3, 2, True)
    _run(url, table, 1, 4, False)
    assert c.stats() == (1 + 3 + 1, 2 + 4)
    # Two processes at once.
    ctx = multiprocessing.get_context("spawn")
    ps = [ctx.Process(target=_lookups, args=(url, table, 50, 25, i == 0)) for i in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert c.stats() == (105, 56)
    # A reset is for everyone: another process sees zero, then its own counts.
    assert c.stats(reset=True) == (105, 56)
    other = DiskCache(url, tablename=table)
    assert other.stats() == (0, 0)
    _run(url, table, 2, 0, True)
    assert other.stats() == (2, 0)
    c.clear()  # clear() keeps the counts, as on SQLite
    assert c.stats() == (2, 0)
