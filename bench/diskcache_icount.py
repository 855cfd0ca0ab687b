"""Instructions per operation of diskstore.diskcache (or python-diskcache), counted by
callgrind: a steady figure on a loaded machine, where wall clock is not.

    python bench/diskcache_icount.py [--ops set,set-over,set-mix,popleft,fanout-set] [--system ours]
        [--n1 500] [--n2 1500] [--setting NAME=VALUE ...]

Each op runs under `valgrind --tool=callgrind` twice, with n1 and n2 operations; the
figure is (count at n2 - count at n1) / (n2 - n1), so start-up drops out (a set-up that
grows with n, such as the rows `set-over` overwrites, is counted in the figure). All
threads are counted, so the cache's background checkpoints are included; the kernel's
work (writes, locks, syncs) is not. `--setting` passes a cache setting (e.g.
`sqlite_wal_autocheckpoint=1000`).

Ops (1 KiB `bytes` values, `str` keys):
- `set`: new keys;
- `set-over`: overwrites of the keys just stored (their set-up, one transaction, counts);
- `set-mix`: each key new or stored at random (half each; set-up as `set-over`);
- `popleft`: `Deque.popleft` (the appends it pops, one transaction, count);
- `fanout-set`: new keys into a `FanoutCache` of 8 shards (one process; the contention of
  several writer processes is not in it).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from typing import Any

VALUE = b"v" * 1024


def _child(system: str, op: str, n: int, settings: dict[str, Any]) -> None:
    if system == "ours":
        from diskstore import diskcache as mod
    else:
        import diskcache as mod
    d = tempfile.mkdtemp(prefix="dcicount-")
    keys = [f"key-{i}" for i in range(n)]
    if op == "popleft":
        q = mod.Deque(directory=d)
        for name, value in settings.items():
            q._cache.reset(name, value)
        with q.transact():
            for _ in range(n + 1):
                q.append(VALUE)
        q.popleft()
        for _ in range(n):
            q.popleft()
        return
    if op == "fanout-set":
        f = mod.FanoutCache(d, shards=8, **settings)
        for i in range(8):
            f.set(f"first-{i}", VALUE)
        for k in keys:
            f.set(k, VALUE)
        return
    c = mod.Cache(d, **settings)
    c.set("first", VALUE)
    if op in ("set-over", "set-mix"):
        with c.transact():
            for k in keys:
                c.set(k, VALUE)
        if op == "set-mix":
            rnd = random.Random(1)
            keys = [k if rnd.random() < 0.5 else "new-" + k for k in keys]
    elif op != "set":
        raise SystemExit(f"unknown op {op!r}")
    for k in keys:
        c.set(k, VALUE)


def _count(system: str, op: str, n: int, settings: list[str]) -> int:
    with tempfile.TemporaryDirectory() as out:
        path = os.path.join(out, "cg")
        args = [sys.executable, os.path.abspath(__file__), "--child", system, op, str(n)]
        for s in settings:
            args += ["--setting", s]
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={path}", *args],
            check=True,
            capture_output=True,
        )
        with open(path) as f:
            for line in f:
                if line.startswith("summary:"):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary")


def _setting(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    try:
        return name, int(value)
    except ValueError:
        return name, value


def main() -> None:
    """Prints instructions per operation for each op."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ops", default="set,set-over,set-mix,popleft")
    ap.add_argument("--system", default="ours", choices=["ours", "diskcache"])
    ap.add_argument("--n1", type=int, default=500)
    ap.add_argument("--n2", type=int, default=1500)
    ap.add_argument("--setting", action="append", default=[])
    ap.add_argument("--child", nargs=3, metavar=("SYSTEM", "OP", "N"))
    args = ap.parse_args()
    if args.child:
        system, op, n = args.child
        _child(system, op, int(n), dict(_setting(s) for s in args.setting))
        return
    for op in args.ops.split(","):
        a = _count(args.system, op, args.n1, args.setting)
        b = _count(args.system, op, args.n2, args.setting)
        extra = f" {' '.join(args.setting)}" if args.setting else ""
        print(f"{args.system} {op}{extra}: {(b - a) // (args.n2 - args.n1)} instructions/op")


if __name__ == "__main__":
    main()
