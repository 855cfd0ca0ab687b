"""Instructions per operation (callgrind) of one diskstore implementation.

Wall clock on a shared 2-core machine is noise; instruction counts are not. For each
operation this runs a child under `valgrind --tool=callgrind` twice, with N and 3N
operations on identical setups, and reports (I(3N) - I(N)) / 2N: the cost of one operation
with setup, interpreter start and warm-up cancelled out.

    python icount_ops.py [--n 1000] [--ops get,set,...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

OPS = ("get", "contains", "set", "set_delete", "len", "keys", "items", "get_missing")


def child(op: str, n: int) -> None:
    import random

    import diskstore
    from diskstore.config import BaseConfig

    rng = random.Random(7)
    rows = 2000
    keys = [f"key-{i:08d}" for i in range(rows)]
    value = rng.randbytes(1024)
    with tempfile.TemporaryDirectory() as tmp:
        ds = diskstore.DiskStore(os.path.join(tmp, "t.db"), config=BaseConfig())
        with ds.transact():
            for k in keys:
                ds[k] = value
        walk = [keys[rng.randrange(rows)] for _ in range(n)]
        ds[walk[0]]  # open this thread's connection and warm the statement cache
        if op == "get":
            for k in walk:
                ds[k]
        elif op == "get_missing":
            for k in walk:
                ds.get(k + "x")
        elif op == "contains":
            for k in walk:
                k in ds  # noqa: B015
        elif op == "set":
            for k in walk:
                ds[k] = value
        elif op == "set_delete":
            for i in range(n):
                ds[f"t{i}"] = value
                del ds[f"t{i}"]
        elif op == "len":
            for _ in range(n):
                len(ds)
        elif op == "keys":
            it = iter(ds)
            for _ in range(min(n, rows)):
                next(it)
        elif op == "items":
            it = iter(ds.items())
            for _ in range(min(n, rows)):
                next(it)


def instructions(python: str, op: str, n: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            python,
            __file__,
            "--child",
            op,
            str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"Collected : (\d+)", out.stderr)
    if not m:
        raise RuntimeError(out.stderr[-2000:])
    return int(m.group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--ops", default=",".join(OPS))
    args = ap.parse_args()
    for op in args.ops.split(","):
        n = args.n if op not in ("keys", "items") else min(args.n, 600)
        a = instructions(sys.executable, op, n)
        b = instructions(sys.executable, op, 3 * n)
        print(f"{op:12s} {(b - a) / (2 * n):10.0f} instructions/op", flush=True)


if __name__ == "__main__":
    main()
