"""Probe of the scale targets of issue #13 for choosing settings (not the final harness).

One run builds a store of --size keys (`k%010d`, 100-byte values, `update()` in batches of
100,000 pairs built in the loop) and measures, in this order:

- bulk load rows/s (building the tuples included);
- `len()` (median and max of --len-calls calls);
- get p50/p99 of --gets random hits;
- set p50/p99.9/max of --sets autocommitted sets of new keys, the largest `-wal` seen, and
  how many checkpoints the background thread ran;
- `len()` again after the sets.

Variants are given as pragmas (`--pragma page_size=4096`, `--pragma mmap_size=0`, ...) or
`--count-trigger` (the store keeps a row count in a side table with triggers, to price the
"count maintained in the same transaction" alternative). Prints one JSON line per run.
Interleave variants in a shell loop to compare them; each run uses a fresh file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

from diskstore import DiskStore, Value

VALUE = b"v" * 100


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--gets", type=int, default=20_000)
    ap.add_argument("--sets", type=int, default=2_000)
    ap.add_argument("--len-calls", type=int, default=9)
    ap.add_argument("--pragma", action="append", default=[], help="name=value")
    ap.add_argument("--count-trigger", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    pragmas = {}
    for p in args.pragma:
        k, v = p.split("=", 1)
        pragmas[k] = int(v) if v.lstrip("-").isdigit() else v

    out: dict[str, object] = {"label": args.label, "size": args.size, "pragmas": pragmas}
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = os.path.join(d, "scale.db")
        ds = DiskStore(path, value_class=Value, **pragmas)
        if args.count_trigger:
            ds["k0000000000"] = Value(VALUE)  # creates the table (the load rewrites it)
            with ds.transact() as cur:
                cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                (table,) = cur.fetchone()
                cur.execute("CREATE TABLE cnt (n INTEGER NOT NULL)")
                cur.execute(f'INSERT INTO cnt SELECT count(*) FROM "{table}"')
                cur.execute(
                    f'CREATE TRIGGER cnt_i AFTER INSERT ON "{table}" '
                    "BEGIN UPDATE cnt SET n = n + 1; END"
                )
                cur.execute(
                    f'CREATE TRIGGER cnt_d AFTER DELETE ON "{table}" '
                    "BEGIN UPDATE cnt SET n = n - 1; END"
                )

        batch = 100_000
        t0 = time.perf_counter()
        for start in range(0, args.size, batch):
            end = min(args.size, start + batch)
            ds.update([(f"k{i:010d}", Value(VALUE)) for i in range(start, end)])
        load = time.perf_counter() - t0
        out["bulk_rows_per_s"] = round(args.size / load)

        def lens() -> dict[str, float]:
            ts = []
            for _ in range(args.len_calls):
                t = time.perf_counter()
                n = len(ds)
                ts.append((time.perf_counter() - t) * 1e6)
            return {"n": n, "first_us": round(ts[0], 1), "median_us": round(statistics.median(ts), 2)}

        out["len"] = lens()

        rng = random.Random(1)
        keys = [f"k{rng.randrange(args.size):010d}" for _ in range(args.gets)]
        ts = []
        pc = time.perf_counter
        for k in keys:
            t = pc()
            ds[k]
            ts.append(pc() - t)
        ts = [x * 1e6 for x in ts]
        out["get_us"] = {"p50": round(pct(ts, 50), 2), "p99": round(pct(ts, 99), 2)}

        wal = path + "-wal"
        ts = []
        biggest = 0
        for i in range(args.sets):
            k = f"n{i:010d}"
            t = pc()
            ds[k] = Value(VALUE)
            ts.append(pc() - t)
            if i % 50 == 0 and os.path.exists(wal):
                biggest = max(biggest, os.path.getsize(wal))
        ts = [x * 1e6 for x in ts]
        out["set_us"] = {
            "p50": round(pct(ts, 50), 1),
            "p99": round(pct(ts, 99), 1),
            "p99.9": round(pct(ts, 99.9), 1),
            "max": round(max(ts), 1),
        }
        out["wal_max_mb"] = round(biggest / 2**20, 1)
        out["len_after_sets"] = lens()
        out["file_mb"] = round(os.path.getsize(path) / 2**20, 1)
        ds.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
