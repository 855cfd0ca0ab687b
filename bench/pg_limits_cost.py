"""What a write to a PostgreSQL cache with a count limit costs as the cache grows: an
overwrite (no eviction) and a new key (evicts one) in full caches of 1,000 / 10,000 /
100,000 entries, sizes interleaved in every round. Before 2026-12-07 each such write
summed the table (O(entries)); now it reads running totals (O(1)).

    python bench/pg_limits_cost.py --label now --rounds 5
    PYTHONPATH=<an older build> python bench/pg_limits_cost.py --label before --db …

Appends one section to bench/results/pg-limits-cost-<date>.md (run it for each build,
alternating, into the same file with --out).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

import diskstore
from diskstore import DiskCache

RESULTS = Path(__file__).resolve().parent / "results"
VALUE = b"v" * 100
SIZES = (1_000, 10_000, 100_000)


def full_cache(url: str, n: int) -> DiskCache:
    """A cache with `count_limit=n` holding n entries (filled without the limit)."""
    table = f"limits_cost_{n}"
    plain = DiskCache(url, None, tablename=table)
    plain.clear()
    for start in range(0, n, 1000):
        plain.set_many({b"f%d" % i: VALUE for i in range(start, start + 1000)})
    plain.close()
    return DiskCache(url, None, tablename=table, count_limit=n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", default=os.environ.get("DISKSTORE_TEST_POSTGRES"))
    ap.add_argument("--label", required=True)
    ap.add_argument("--n", type=int, default=200, help="writes per size per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    caches = {n: full_cache(a.pg, n) for n in SIZES}
    fresh = itertools.count()
    ops = {
        "overwrite": lambda c, i: c.set(b"f%d" % (i % 100), VALUE),
        "new key (evicts one)": lambda c, i: c.set(b"n%d" % next(fresh), VALUE),
    }
    times: dict[tuple[str, int], list[float]] = {}
    for r in range(a.rounds):
        for op, f in ops.items():
            for n in SIZES if r % 2 == 0 else SIZES[::-1]:
                c = caches[n]
                f(c, 0)
                t = time.perf_counter_ns()
                for i in range(a.n):
                    f(c, i)
                times.setdefault((op, n), []).append((time.perf_counter_ns() - t) / a.n / 1000)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"## {a.label} (diskstore from {Path(diskstore.__file__).parent.parent}), {when}",
        "",
        (
            f"{a.n} writes per size per round, median (min–max) of {a.rounds} interleaved "
            f"rounds, µs per write; load average at the end {os.getloadavg()[0]:.1f}."
        ),
        "",
        "| write | " + " | ".join(f"{n:,} entries" for n in SIZES) + " |",
        "|---|" + "---:|" * len(SIZES),
    ]
    for op in ops:
        cells = []
        for n in SIZES:
            v = times[(op, n)]
            cells.append(f"{statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f})")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n\n"
    print(md)
    RESULTS.mkdir(exist_ok=True)
    stem = a.out or f"pg-limits-cost-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}"
    path = RESULTS / f"{stem}.md"
    if not path.exists():
        path.write_text(
            "# PostgreSQL cache with a count limit: µs per write against cache size\n\n"
            "`bench/pg_limits_cost.py`, loopback server of `scripts/servers.sh`, 2 shared "
            "CPUs. Sections in the order run (builds alternating).\n\n"
        )
    with path.open("a") as fh:
        fh.write(md)


if __name__ == "__main__":
    main()
