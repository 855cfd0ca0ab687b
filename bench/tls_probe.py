"""What TLS costs on the server backends (issue 15): the same cache calls in plain text and
over TLS, rounds interleaved (each round runs every case, in alternating order), median
microseconds per call; and the cost of a new connection (open a cache: connect, handshake,
first command).

Needs the servers of scripts/servers.sh (`DISKSTORE_TEST_POSTGRES[_TLS]`,
`DISKSTORE_TEST_REDIS[_TLS]`) and the release wheel in bench/.venv.

    bench/.venv/bin/python bench/tls_probe.py --n 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from diskstore import DiskCache

VALUE = b"v" * 100
BATCH = 100


def per_call_us(fn: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    return (time.perf_counter_ns() - start) / n / 1000


def cases(url: str, n: int, table: str) -> dict[str, Callable[[], float]]:
    c = DiskCache(url, tablename=table)
    keys = [f"k{i}" for i in range(n)]
    for k in keys:
        c[k] = VALUE
    batch = keys[:BATCH]
    return {
        "get": lambda: per_call_us(lambda i: c.get(keys[i]), n),
        "set": lambda: per_call_us(lambda i: c.set(keys[i], VALUE), n),
        "get_many(100)": lambda: per_call_us(lambda i: c.get_many(batch), n // 20),
        "connect": lambda: per_call_us(
            lambda i: DiskCache(url, tablename=table).get("k0"), 20
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    systems = {
        "postgres": os.environ["DISKSTORE_TEST_POSTGRES"],
        "postgres+tls": os.environ["DISKSTORE_TEST_POSTGRES_TLS"],
        "redis": os.environ["DISKSTORE_TEST_REDIS"],
        "redis+tls": os.environ["DISKSTORE_TEST_REDIS_TLS"],
    }
    runs = {
        name: cases(url, args.n, f"tlsprobe_{i}_{os.getpid()}")
        for i, (name, url) in enumerate(systems.items())
    }
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            for op, run in runs[name].items():
                times.setdefault((name, op), []).append(run())
    ops = list(next(iter(runs.values())))
    print(f"n={args.n}, {args.rounds} interleaved rounds, median µs per call")
    print("| op | postgres | postgres+tls | ratio | redis | redis+tls | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for op in ops:
        m = {name: statistics.median(times[(name, op)]) for name in runs}
        print(
            f"| {op} | {m['postgres']:.1f} | {m['postgres+tls']:.1f} | "
            f"{m['postgres+tls'] / m['postgres']:.2f} | {m['redis']:.1f} | "
            f"{m['redis+tls']:.1f} | {m['redis+tls'] / m['redis']:.2f} |"
        )


if __name__ == "__main__":
    main()
