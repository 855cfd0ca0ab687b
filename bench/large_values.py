"""One large value, set then read back: time and extra memory, ours against the peers.

Every measurement runs in a fresh subprocess, so that each peak is its own. The child makes
the value first (``size`` bytes of ``bytes``, or ``str``), notes its peak resident size
(``VmHWM`` in ``/proc/self/status``), then runs the call once and reports the wall time and
how far the peak grew over that baseline. "set" writes into an empty store; "get" opens a
store that a previous child wrote and reads the value back (the peak then includes the
result object itself, which the set baseline does not: there the value exists before).

Systems: ``ours-raw`` (``DiskStore(path)``, the 0.7.0 default model), ``ours-value``
(``DiskStore(path, value_class=Value)``, the 0.1.0 record), ``ours-cache`` (``DiskCache``),
``orig07`` (the original diskstore 0.7.0 on Python's sqlite3; needs ``--orig07 DIR``, the
folder it was pip-installed into with ``--target``), ``diskcache`` (python-diskcache
``Cache``).

    .venv/bin/python bench/large_values.py --size-mb 100 --rounds 3

writes ``bench/results/large-values-<UTC time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEMS = ["ours-raw", "ours-value", "ours-cache", "orig07", "diskcache"]

CHILD = r"""
import json, os, sys, time
system, op, path, size, kind = sys.argv[1:6]
size = int(size)

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

def open_store():
    if system == "ours-raw" or system == "orig07":
        from diskstore import DiskStore
        return DiskStore(path)
    if system == "ours-value":
        from diskstore import DiskStore, Value
        return DiskStore(path, value_class=Value)
    if system == "ours-cache":
        from diskstore import DiskCache
        return DiskCache(path, default_expiration=0)
    if system == "diskcache":
        import diskcache
        return diskcache.Cache(path)
    raise SystemExit(f"unknown system {system}")

store = open_store()
if op == "set":
    value = os.urandom(size) if kind == "bytes" else "x" * size
    if system == "ours-value":
        from diskstore import Value
        value = Value(value)
    base = hwm()
    t = time.perf_counter()
    store["big"] = value
    elapsed = time.perf_counter() - t
    extra = hwm() - base
else:
    base = hwm()
    t = time.perf_counter()
    got = store["big"]
    elapsed = time.perf_counter() - t
    extra = hwm() - base
    if system == "ours-value":
        got = got.value
    assert len(got) == size, (len(got), size)
# Closing and dropping the store: for ours at synchronous=NORMAL the last handle waits here
# for the background sync of the value file, so "with close" is the whole cost of a set.
t = time.perf_counter()
close = getattr(store, "close", None)
if close:
    close()
del store
import gc
gc.collect()
closing = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "extra": extra, "closing": closing}))
"""


def run_child(system: str, op: str, path: Path, size: int, kind: str, orig07: str | None) -> dict:
    env = dict(os.environ)
    if system == "orig07":
        if not orig07:
            raise SystemExit("orig07 needs --orig07 DIR")
        env["PYTHONPATH"] = orig07
        env["DISKSTORE_BACKEND"] = "sqlite3"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, system, op, str(path), str(size), kind],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", choices=["bytes", "str"], default="bytes")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--orig07", default=os.environ.get("ORIG07"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    size = int(args.size_mb * 1e6)
    systems = [s for s in args.systems.split(",") if s]
    if "orig07" in systems and not args.orig07:
        print("no --orig07 DIR: leaving the original out", file=sys.stderr)
        systems.remove("orig07")
    results: dict[str, dict[str, list]] = {
        s: {"set_s": [], "set_close_s": [], "set_extra": [], "get_s": [], "get_extra": []}
        for s in systems
    }
    for r in range(args.rounds):
        # Interleaved rounds, the order rotating, so that drift hits every system alike.
        order = systems[r % len(systems) :] + systems[: r % len(systems)]
        for system in order:
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
                path = Path(d) / ("cache" if system == "diskcache" else "store.db")
                w = run_child(system, "set", path, size, args.kind, args.orig07)
                g = run_child(system, "get", path, size, args.kind, args.orig07)
            res = results[system]
            res["set_s"].append(w["seconds"])
            res["set_close_s"].append(w["seconds"] + w["closing"])
            res["set_extra"].append(w["extra"])
            res["get_s"].append(g["seconds"])
            res["get_extra"].append(g["extra"])
            print(
                f"round {r + 1} {system:11} set {w['seconds']:.3f} s "
                f"(with close {w['seconds'] + w['closing']:.3f} s) +{w['extra'] / 1e6:.0f} MB"
                f"   get {g['seconds']:.3f} s peak +{g['extra'] / 1e6:.0f} MB",
                file=sys.stderr,
            )
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "when": stamp,
        "size_bytes": size,
        "kind": args.kind,
        "rounds": args.rounds,
        "load": os.getloadavg(),
        "systems": {
            s: {k: statistics.median(v) for k, v in res.items()} | {"raw": res}
            for s, res in results.items()
        },
    }
    (out / f"large-values-{stamp}.json").write_text(json.dumps(summary, indent=1) + "\n")
    mb = size / 1e6
    lines = [
        f"# One {mb:.0f} MB `{args.kind}` value, set then get ({stamp} UTC)",
        "",
        (
            f"Median of {args.rounds} interleaved rounds, a fresh process per measurement; "
            "extra memory = growth of the peak resident size over the process with the value "
            "made, as a multiple of the value's size (get: including the result); "
            "set + close adds closing and dropping the store (ours at synchronous=NORMAL "
            "waits there for the value file's background sync)."
        ),
        "",
        "| system | set (s) | set + close (s) | set extra | get (s) | get peak extra |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        m = summary["systems"][s]
        lines.append(
            f"| {s} | {m['set_s']:.3f} | {m['set_close_s']:.3f} | {m['set_extra'] / 1e6:.0f} MB "
            f"({m['set_extra'] / size:.2f}×) | {m['get_s']:.3f} | "
            f"{m['get_extra'] / 1e6:.0f} MB ({m['get_extra'] / size:.2f}×) |"
        )
    (out / f"large-values-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
