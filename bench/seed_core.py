"""The seed's core benchmark, reproduced: many processes on one store, 90 % get / 9 % set / 1 % delete.

The workload of the original diskstore's ``scripts/benchmark_core.py`` (0.1.0 tag), written anew
for this repository: every process draws keys from 100 (``str(i).encode()``), and for each of
``--ops`` operations does a get (90 %), a set of a 974-byte JSON text (9 %) or a delete (1 %),
timing each call; the first 1,000 operations of each process are not counted. The store is
filled with the 100 keys first. Reported per op kind: count, misses, median, P90, P99, max, and
the total time of all timed calls (what the seed README's table compares).

Systems, each run by its own interpreter in its own subprocess (rounds interleaved, order rotated):

* ``ours``: this repository's package (``--ours-python``, default ``bench/.venv``);
* ``ours-base``: the same package built from a baseline commit (``--ours-base-python``);
* ``orig-0.1.0``: the original 0.1.0 with apsw (``--orig-python``, default
  ``/tmp/diskstore-orig-0.1.0``, the venv ``crates/diskstore-py/tests/compat_support.py`` makes);
* ``diskcache-index``: python-diskcache's ``Index`` (from the ``--ours-python`` venv).

    python bench/seed_core.py -p 1 -p 8 --rounds 2
    python bench/seed_core.py -p 8 --systems ours,orig-0.1.0 --ops 20000   # quick

Results go to ``bench/results/seed-core-<date>-<HHMM>.{md,json}``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from runinfo import original_python, round_order, run_meta

KEYS = 100
WARMUP = 1000
KINDS = ("get", "set", "delete")

# The seed's value: a product record as compact JSON text (974 bytes).
VALUE = json.dumps(
    {
        "productId": 1001,
        "productName": "Wireless Headphones",
        "description": "Noise-cancelling wireless headphones with Bluetooth 5.0 and 20-hour "
        "battery life.",
        "brand": "SoundPro",
        "category": "Electronics",
        "price": 199.99,
        "currency": "USD",
        "stock": {"available": True, "quantity": 50},
        "images": [
            "https://example.com/products/1001/main.jpg",
            "https://example.com/products/1001/side.jpg",
        ],
        "variants": [
            {"variantId": "1001_01", "color": "Black", "price": 199.99, "stockQuantity": 20},
            {"variantId": "1001_02", "color": "White", "price": 199.99, "stockQuantity": 30},
        ],
        "dimensions": {"weight": "0.5kg", "width": "18cm", "height": "20cm", "depth": "8cm"},
        "ratings": {"averageRating": 4.7, "numberOfReviews": 120},
        "reviews": [
            {
                "reviewId": 501,
                "userId": 101,
                "username": "techguy123",
                "rating": 5,
                "comment": "Amazing sound quality and battery life!",
            },
            {
                "reviewId": 502,
                "userId": 102,
                "username": "jane_doe",
                "rating": 4,
                "comment": "Great headphones but a bit pricey.",
            },
        ],
    }
)

SYSTEMS = ("ours", "ours-base", "orig-0.1.0", "diskcache-index")


def open_store(system: str, folder: str):
    """The store under test, opened the way the seed's script opens it."""
    if system == "diskcache-index":
        import diskcache

        return diskcache.Index(folder)
    import diskstore

    return diskstore.DiskStore(os.path.join(folder, "cache"))


def wrap(system: str):
    """How a value is handed to the store: 0.1.0 stores only its `Value` (a one-field tuple),
    so its values are wrapped once, outside the timed calls; the others take the text."""
    if system == "orig-0.1.0":
        from diskstore import Value

        return Value
    return lambda v: v


def close_store(store) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


def one_process(num: int, system: str, folder: str, ops: int, out: str) -> None:
    """One worker: `ops` operations, timings of those after the warm-up saved to `out`."""
    rng = random.Random(num)
    time.sleep(0.01)
    store = open_store(system, folder)
    times: dict[str, list[float]] = collections.defaultdict(list)
    misses: collections.Counter[str] = collections.Counter()
    clock = time.perf_counter
    value = wrap(system)(VALUE)
    for count in range(ops):
        key = str(rng.randrange(KEYS)).encode()
        choice = rng.random()
        miss = False
        if choice < 0.9:
            kind = "get"
            start = clock()
            try:
                store[key]
            except KeyError:
                miss = True
            end = clock()
        elif choice < 0.99:
            kind = "set"
            start = clock()
            store[key] = value
            end = clock()
        else:
            kind = "delete"
            start = clock()
            try:
                del store[key]
            except KeyError:
                miss = True
            end = clock()
        if count >= WARMUP:
            times[kind].append(end - start)
            misses[kind] += miss
    close_store(store)
    Path(out).write_text(json.dumps({"times": times, "misses": misses}))


def percentile(values: list[float], q: float) -> float:
    """The value below which a fraction `q` of the sorted values lie (nearest rank)."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(len(s) * q) - 1))]


def run_config(system: str, procs: int, ops: int, out: str) -> None:
    """Fills a fresh store, runs `procs` worker processes on it, writes the summary to `out`."""
    with tempfile.TemporaryDirectory(prefix="seed-core-") as folder:
        store = open_store(system, folder)
        as_value = wrap(system)
        for i in range(KEYS):
            key = str(i).encode()
            store[key] = as_value(key)
        close_store(store)
        del store
        ctx = mp.get_context("fork")
        outs = [os.path.join(folder, f"out-{n}.json") for n in range(procs)]
        started = time.perf_counter()
        workers = [
            ctx.Process(target=one_process, args=(n, system, folder, ops, outs[n]))
            for n in range(procs)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - started
        if any(w.exitcode != 0 for w in workers):
            raise SystemExit(f"{system}: a worker failed")
        times: dict[str, list[float]] = collections.defaultdict(list)
        misses: collections.Counter[str] = collections.Counter()
        for o in outs:
            doc = json.loads(Path(o).read_text())
            for k, v in doc["times"].items():
                times[k].extend(v)
            misses.update(doc["misses"])
    summary = {"wall_s": wall, "kinds": {}}
    total = 0.0
    for kind in KINDS:
        v = times.get(kind, [])
        total += sum(v)
        summary["kinds"][kind] = {
            "count": len(v),
            "miss": misses.get(kind, 0),
            "median_us": percentile(v, 0.5) * 1e6,
            "p90_us": percentile(v, 0.9) * 1e6,
            "p99_us": percentile(v, 0.99) * 1e6,
            "max_us": max(v, default=0.0) * 1e6,
            "total_s": sum(v),
        }
    summary["total_s"] = total
    Path(out).write_text(json.dumps(summary))


def interpreter(args, system: str) -> tuple[str, dict]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if system == "orig-0.1.0":
        env["DISKSTORE_BACKEND"] = "apsw"
        return args.orig_python, env
    if system == "ours-base":
        return args.ours_base_python, env
    return args.ours_python, env


def measure(args, system: str, procs: int) -> dict:
    python, env = interpreter(args, system)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    cmd = [python, __file__, "--run", system, "--procs", str(procs), "--ops", str(args.ops)]
    cmd += ["--out", out]
    try:
        subprocess.run(cmd, check=True, env=env, timeout=1800)
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)


def cell(values: list[float], digits: int = 1) -> str:
    """The median of the rounds with their range: `med (lo–hi)`."""
    if not values:
        return "–"
    fmt = f"{{:,.{digits}f}}"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def report(docs: list[dict], systems: list[str], procs_list: list[int], meta: dict) -> str:
    lines = [
        "# Seed core benchmark (90 % get / 9 % set / 1 % delete, 100 keys, 974-byte JSON value)",
        "",
        (
            f"{meta['when']}, commit {meta['commit']}, {meta['nproc']} CPUs, load at start "
            f"{meta['load']}; {meta['ops']:,} ops per process ({WARMUP:,} warm-up not timed), "
            f"{meta['rounds']} rounds interleaved. Cells: median of the rounds (range). Times "
            "in µs per call; total = the sum of every timed call, in seconds."
        ),
        "",
    ]
    for procs in procs_list:
        lines += [f"## -p {procs}", ""]
        lines.append("| | " + " | ".join(systems) + " |")
        lines.append("|---|" + "---:|" * len(systems))
        rows = []
        for kind in KINDS:
            for stat, label in (
                ("median_us", "median"),
                ("p90_us", "P90"),
                ("p99_us", "P99"),
                ("max_us", "max"),
            ):
                rows.append((f"{kind} {label} (µs)", lambda d, k=kind, s=stat: d["kinds"][k][s]))
        rows.append(("total time of all ops (s)", lambda d: d["total_s"]))
        rows.append(("wall time (s)", lambda d: d["wall_s"]))
        for label, get in rows:
            cells = []
            for s in systems:
                vals = [get(d["result"]) for d in docs if d["system"] == s and d["procs"] == procs]
                cells.append(cell(vals, 2 if "(s)" in label else 1))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if "ours" in systems and "orig-0.1.0" in systems:

            def med(s, f, procs=procs):
                v = [f(d["result"]) for d in docs if d["system"] == s and d["procs"] == procs]
                return statistics.median(v) if v else float("nan")

            total = med("ours", lambda d: d["total_s"]) / med("orig-0.1.0", lambda d: d["total_s"])
            p90o = med("ours", lambda d: d["kinds"]["set"]["p90_us"])
            p90r = med("orig-0.1.0", lambda d: d["kinds"]["set"]["p90_us"])
            lines += [
                "",
                (
                    f"ours / original 0.1.0: total time {total:.2f}×; set P90 {p90o:,.1f} vs "
                    f"{p90r:,.1f} µs."
                ),
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-p", "--processes", type=int, action="append", help="repeatable; default 1, 8")
    p.add_argument("--ops", type=int, default=100_000, help="operations per process")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--systems", default="ours,orig-0.1.0,diskcache-index")
    p.add_argument("--ours-python", default=str(HERE / ".venv" / "bin" / "python"))
    p.add_argument("--ours-base-python", default="", help="ours built from a baseline commit")
    p.add_argument(
        "--orig-python", default="", help="default: the venv compat_support.py makes under /tmp"
    )
    p.add_argument("--label", default="", help="added to the result file names")
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument("--run", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--procs", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        run_config(args.run, args.procs, args.ops, args.out)
        return
    procs_list = args.processes or [1, 8]
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s!r}; known: {', '.join(SYSTEMS)}")
    if "orig-0.1.0" in systems and not args.orig_python:
        args.orig_python = original_python("0.1.0")
    meta = run_meta(ops=args.ops, rounds=args.rounds)
    docs = []
    for rnd in range(args.rounds):
        order = round_order(systems, rnd)
        for procs in procs_list:
            for s in order:
                t0 = time.perf_counter()
                result = measure(args, s, procs)
                print(
                    f"round {rnd + 1} -p {procs} {s}: total {result['total_s']:.2f} s, set P90 "
                    f"{result['kinds']['set']['p90_us']:.1f} µs ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
                docs.append({"round": rnd, "system": s, "procs": procs, "result": result})
    text = report(docs, systems, procs_list, meta)
    print(text)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H%M")
    stem = f"seed-core-{stamp}" + (f"-{args.label}" if args.label else "")
    (out_dir / f"{stem}.md").write_text(text)
    (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "runs": docs}, indent=1))
    print(f"saved {out_dir / stem}.md/.json", file=sys.stderr)


if __name__ == "__main__":
    main()
