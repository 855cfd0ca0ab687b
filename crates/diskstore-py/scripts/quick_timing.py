"""Quick per-operation timing of one diskstore implementation (ours or the original).

Run it once per implementation, in the venv that has that implementation installed, and
compare the numbers of runs made back to back (only ratios mean anything on a shared
machine). The full side-by-side benchmark lives in bench/.

    python quick_timing.py [--rows 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable

import diskstore
from diskstore.config import BaseConfig


def per_op(fn: Callable[[], int], repeat: int) -> float:
    """Median seconds per operation over `repeat` runs of `fn` (which returns its op count)."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(42)
    keys = [f"key-{i:08d}" for i in range(args.rows)]
    value = rng.randbytes(1024)
    walk = keys[:]
    rng.shuffle(walk)
    probe = walk[:2000]

    with tempfile.TemporaryDirectory() as tmp:
        ds = diskstore.DiskStore(os.path.join(tmp, "t.db"), config=BaseConfig())
        for k in keys:
            ds[k] = value

        def get() -> int:
            for k in probe:
                ds[k]
            return len(probe)

        def contains() -> int:
            for k in probe:
                k in ds  # noqa: B015
            return len(probe)

        def set_() -> int:
            for k in probe:
                ds[k] = value
            return len(probe)

        def set_delete() -> int:
            for i in range(500):
                ds[f"tmp{i}"] = value
                del ds[f"tmp{i}"]
            return 500

        def length() -> int:
            for _ in range(200):
                len(ds)
            return 200

        def iterate_items() -> int:
            n = 0
            for _ in ds.items():
                n += 1
            return n

        def get_in_txn() -> int:
            with ds.transact():
                for k in probe:
                    ds[k]
            return len(probe)

        ops = {
            "get": get,
            "contains": contains,
            "set (upsert)": set_,
            "set+delete": set_delete,
            "len (10k rows)": length,
            "items() per row": iterate_items,
            "get in transact": get_in_txn,
        }
        name = getattr(diskstore, "__file__", "?")
        print(f"# {name}  rows={args.rows} value=1KiB repeat={args.repeat}")
        for label, fn in ops.items():
            print(f"{label:18s} {per_op(fn, args.repeat) * 1e6:9.2f} us/op")


if __name__ == "__main__":
    main()
