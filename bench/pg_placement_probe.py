"""Why unpinned PostgreSQL round trips swing: the same overwriting `set`, 500 times, on each
of six connections of ours and six of psycopg 3, twice; prints µs per set per connection.

On a 2-vCPU VM each connection's server process lands on the client's CPU or the other one,
and a round trip across CPUs wakes an idle vCPU (tens of µs more); which one a connection
gets changes over time. So single-connection figures of either client spread 2-5x
(2026-12-07: ours 26-146 µs, psycopg 51-154 µs), which is what `backends_bench.py
--pin-cpu` removes.

    python bench/pg_placement_probe.py   # needs DISKSTORE_TEST_POSTGRES (scripts/servers.sh)
"""

from __future__ import annotations

import os
import time

import psycopg
from diskstore import DiskCache

VALUE = b"v" * 1024
UPSERT = (
    "INSERT INTO probe_peer (key, value) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def per_set(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(500):
        fn(b"k%d" % (i % 100))
    return (time.perf_counter() - start) / 500 * 1e6


def main() -> None:
    url = os.environ["DISKSTORE_TEST_POSTGRES"]
    ours = [DiskCache(url, None, tablename=f"placement_{j}") for j in range(6)]
    peers = [psycopg.connect(url.split("?")[0], autocommit=True) for _ in range(6)]
    peers[0].execute("CREATE TABLE IF NOT EXISTS probe_peer (key bytea PRIMARY KEY, value bytea)")
    for _ in range(2):
        print("ours   ", [round(per_set(lambda k, c=c: c.set(k, VALUE))) for c in ours])
        print("psycopg", [round(per_set(lambda k, p=p: p.execute(UPSERT, (k, VALUE)))) for p in peers])


if __name__ == "__main__":
    main()
