"""Scale benchmark (`make bench-scale`): what each operation costs as the store grows.

For every store size (default 10^4, 10^5, 10^6, 10^7) and system, a fresh worker process:

1. **bulk**: loads n keys (``k%010d``, 100-byte values) with the system's batch idiom, in batches
   of 100,000; the time includes building each batch's list of (key, value) tuples. Rows/s.
2. **get**: 20,000 reads of random present keys, timed one by one: p50 / p99 / p99.9.
3. **len**: 9 calls of ``len()``, timed one by one: median.
4. **set**: autocommitted writes of new keys (``--sets``, default 20,000), timed one by one:
   p50 / p99 / p99.9 / max, and the size of the SQLite ``-wal`` file at the end (bounded WAL).

Systems: ours (``diskstore``), the original 0.7.0 (``diskstore07-apsw``), ``lmdb-nosync`` (py-lmdb,
``sync=False``: the durability of WAL + synchronous=NORMAL) and python-diskcache's ``Index``
(only up to ``--diskcache-max``, default 10^6: it loads about 5,000 rows/s, so 10^7 would take
half an hour). 10^8 is behind ``--huge``: it needs about 15 GB of disk per system at a time (the
stores are deleted after each measurement) and about 10 minutes per system to load.

Sizes are measured in turn; within a size the systems' order rotates from size to size (and
round to round, ``--rounds``), so that the machine's drift does not favour one system. Results
go to ``bench/results/scale-<date>-<HHMM>.{json,md,png,svg}``; the chart draws get p50/p99,
``len()``, set percentiles and bulk rows/s against the store size.

Run through ``scripts/bench.sh --scale`` (which builds our release wheel and installs the peers);
``--sizes 10000,100000`` for a short run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import systems
from runinfo import cpu_model, git_commit

DEFAULT_SYSTEMS = [
    "diskstore",
    "diskstore-rust",
    "diskstore07-apsw",
    "lmdb-nosync",
    "diskcache-index",
]
#: Ours on new files of another page size (``--systems diskstore-p8k,diskstore-p16k``): the
#: page-size comparison of docs/design.md. Not run by default.
PAGE_VARIANTS = {"diskstore-p8k": 8192, "diskstore-p16k": 16384}
SYSTEMS = DEFAULT_SYSTEMS + list(PAGE_VARIANTS)
LABELS = {
    "diskstore": "ours",
    "diskstore-rust": "ours (Rust)",
    "diskstore07-apsw": "original 0.7.0",
    "lmdb-nosync": "lmdb (sync=False)",
    "diskcache-index": "diskcache Index",
    "diskstore-p8k": "ours, 8 KiB pages",
    "diskstore-p16k": "ours, 16 KiB pages",
}
BATCH = 100_000
VALUE = bytes(range(100))


def key(i: int) -> str:
    """The i-th key of the workload."""
    return f"k{i:010d}"


# ---------------------------------------------------------------------------------------------
# Worker: one system at one size, in its own process.


class Store:
    """One system, driven through four calls: bulk batch, get, len, autocommitted set."""

    def __init__(self, system: str, directory: Path, n: int) -> None:
        self.system = system
        self.directory = directory
        if system == "lmdb-nosync":
            import lmdb

            # Room for the data (~200 B a row with lmdb's overhead) plus the sets, never less
            # than 1 GiB.
            size = max(1 << 30, (n + 100_000) * 400)
            self.env = lmdb.open(str(directory / "lmdb"), map_size=size, sync=False, metasync=False)
            self.describe = f"lmdb {lmdb.__version__} sync=False"
        elif system in PAGE_VARIANTS:
            import diskstore

            page = PAGE_VARIANTS[system]
            adapter = systems.make("diskstore")
            adapter.module = diskstore
            config = diskstore.config.BaseConfig(pragmas={"page_size": page})
            adapter.store = diskstore.DiskStore(str(directory / "store.db"), config=config)
            self.adapter = adapter
            self.describe = f"{adapter.describe()}, page_size={page}"
        else:
            adapter = systems.make(system)
            adapter.open(directory)
            self.adapter = adapter
            self.describe = adapter.describe()

    def load(self, start: int, stop: int) -> None:
        """Writes keys [start, stop) in one batch, building the batch's tuples here."""
        if self.system == "lmdb-nosync":
            with self.env.begin(write=True) as txn:
                put = txn.put
                for i in range(start, stop):
                    put(key(i).encode(), VALUE)
        elif self.system == "diskcache-index":
            s = self.adapter.store
            with s.transact():
                for i in range(start, stop):
                    s[key(i)] = VALUE
        else:
            self.adapter.store.update([(key(i), VALUE) for i in range(start, stop)])

    def getter(self) -> Callable[[str], Any]:
        """A one-argument read of a present key, the system's idiomatic call."""
        if self.system == "lmdb-nosync":
            begin = self.env.begin

            def get(k: str) -> Any:
                with begin() as txn:
                    return txn.get(k.encode())

            return get
        return self.adapter.store.__getitem__

    def setter(self) -> Callable[[str, bytes], Any]:
        """A two-argument autocommitted write."""
        if self.system == "lmdb-nosync":
            begin = self.env.begin

            def put(k: str, v: bytes) -> Any:
                with begin(write=True) as txn:
                    return txn.put(k.encode(), v)

            return put
        return self.adapter.store.__setitem__

    def length(self) -> int:
        """The number of keys, the system's way."""
        if self.system == "lmdb-nosync":
            return self.env.stat()["entries"]
        return len(self.adapter.store)

    def close(self) -> None:
        """Closes the store."""
        if self.system == "lmdb-nosync":
            self.env.close()
        else:
            self.adapter.close()


def percentile(ordered: list[int], q: float) -> float:
    """The q-quantile (0..1) of sorted nanosecond samples, in µs (nearest rank)."""
    i = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[i] / 1000


def wal_bytes(directory: Path) -> int:
    """The total size of the SQLite ``-wal`` files under ``directory`` (0 when none)."""
    return sum(p.stat().st_size for p in directory.rglob("*-wal"))


def run_worker(system: str, n: int, sets: int, gets: int, directory: Path) -> dict:
    """Measures one system at size n in a fresh directory; returns the figures."""
    store = Store(system, directory, n)
    rng = random.Random(n)
    out: dict[str, Any] = {"system": system, "n": n, "describe": store.describe}
    gc.disable()

    t0 = perf_counter_ns()
    last = t0
    for start in range(0, n, BATCH):
        store.load(start, min(n, start + BATCH))
        now = perf_counter_ns()
        if now - last > 5e9:
            print(f"  {system}: {min(n, start + BATCH):,}/{n:,} loaded", file=sys.stderr)
            last = now
    load_ns = perf_counter_ns() - t0
    out["bulk_rows_per_s"] = n / (load_ns / 1e9)
    out["bulk_s"] = load_ns / 1e9
    if store.length() != n:
        raise RuntimeError(f"{system}: {store.length()} keys after loading {n}")

    get = store.getter()
    probe = [key(rng.randrange(n)) for _ in range(gets)]
    pc = perf_counter_ns
    samples = [0] * gets
    for i, k in enumerate(probe):
        t = pc()
        v = get(k)
        samples[i] = pc() - t
        if v is None:
            raise RuntimeError(f"{system}: {k} missing")
    samples.sort()
    out["get_p50_us"] = percentile(samples, 0.50)
    out["get_p99_us"] = percentile(samples, 0.99)
    out["get_p999_us"] = percentile(samples, 0.999)

    lens = []
    for _ in range(9):
        t = pc()
        count = store.length()
        lens.append(pc() - t)
    if count != n:
        raise RuntimeError(f"{system}: len() = {count}, expected {n}")
    lens.sort()
    out["len_us"] = lens[len(lens) // 2] / 1000

    put = store.setter()
    samples = [0] * sets
    for i in range(sets):
        k = key(n + i)
        t = pc()
        put(k, VALUE)
        samples[i] = pc() - t
    samples.sort()
    out["set_p50_us"] = percentile(samples, 0.50)
    out["set_p99_us"] = percentile(samples, 0.99)
    out["set_p999_us"] = percentile(samples, 0.999)
    out["set_max_us"] = samples[-1] / 1000
    out["sets"] = sets
    out["wal_bytes_after_sets"] = wal_bytes(directory)
    if store.length() != n + sets:
        raise RuntimeError(f"{system}: len() = {store.length()} after the sets")
    gc.enable()
    store.close()
    out["wal_bytes_after_close"] = wal_bytes(directory)
    return out


# ---------------------------------------------------------------------------------------------
# Orchestrator.


def parse_sizes(text: str) -> list[int]:
    """``"10000,1e6"`` → ``[10000, 1000000]``."""
    return [int(float(s)) for s in text.split(",") if s.strip()]


def measure(args: argparse.Namespace, system: str, n: int) -> dict:
    """Runs one worker process for (system, n) and returns its figures."""
    data = Path(tempfile.mkdtemp(prefix=f"scale-{system}-", dir=args.data_dir))
    if system == "diskstore-rust":
        cmd = [args.rust_cli, "bench-scale", "--n", str(n), "--sets", str(args.sets)]
        cmd += ["--gets", str(args.gets), "--dir", str(data)]
        try:
            done = subprocess.run(cmd, check=True, timeout=args.timeout, capture_output=True)
            return json.loads(done.stdout)
        finally:
            shutil.rmtree(data, ignore_errors=True)
    out = data / "result.json"
    cmd = [args.python, str(Path(__file__).resolve()), "--worker", system, "--n", str(n)]
    cmd += ["--sets", str(args.sets), "--gets", str(args.gets), "--dir", str(data / "store")]
    cmd += ["--out", str(out), "--value-size", str(args.value_size)]
    env = systems.subprocess_env(system, args.orig_path)
    try:
        subprocess.run(cmd, env=env, check=True, timeout=args.timeout)
        return json.loads(out.read_text())
    finally:
        shutil.rmtree(data, ignore_errors=True)


def fmt(x: float) -> str:
    """A figure with sensible digits."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def median(xs: list[float]) -> float:
    """The median of a non-empty list."""
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


#: Report columns: (title, result field, unit text).
COLUMNS = [
    ("bulk load", "bulk_rows_per_s", "rows/s"),
    ("get p50", "get_p50_us", "µs"),
    ("get p99", "get_p99_us", "µs"),
    ("get p99.9", "get_p999_us", "µs"),
    ("len()", "len_us", "µs"),
    ("set p50", "set_p50_us", "µs"),
    ("set p99", "set_p99_us", "µs"),
    ("set p99.9", "set_p999_us", "µs"),
    ("set max", "set_max_us", "µs"),
    ("-wal after sets", "wal_bytes_after_sets", "MB"),
]


def aggregate(results: list[dict]) -> dict[tuple[str, int], dict]:
    """Median of every field over the rounds of each (system, n)."""
    grouped: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        grouped.setdefault((r["system"], r["n"]), []).append(r)
    out = {}
    for k, rs in grouped.items():
        agg = {f: median([r[f] for r in rs]) for _, f, _ in COLUMNS}
        agg["rounds"] = len(rs)
        out[k] = agg
    return out


def targets(agg: dict[tuple[str, int], dict], sizes: list[int]) -> list[str]:
    """The issue's targets for ours, each with PASS/MISS and the measured figure."""
    lines = []
    ours = {n: agg[("diskstore", n)] for n in sizes if ("diskstore", n) in agg}
    if not ours:
        return lines
    worst_len = max(r["len_us"] for r in ours.values())
    lines.append(
        check("len() ≤ 10 µs at every size", worst_len <= 10, f"worst {fmt(worst_len)} µs")
    )
    worst_max = max(r["set_max_us"] for r in ours.values())
    lines.append(
        check("no set over 20 ms", worst_max <= 20_000, f"worst {fmt(worst_max / 1000)} ms")
    )
    worst_p999 = max(r["set_p999_us"] for r in ours.values())
    lines.append(check("set p99.9 ≤ 2 ms", worst_p999 <= 2000, f"worst {fmt(worst_p999)} µs"))
    lo, hi = min(ours), max(ours)
    ratio = ours[hi]["get_p50_us"] / ours[lo]["get_p50_us"]
    lines.append(
        check(
            f"get p50 at {hi:,} ≤ 2× at {lo:,}",
            ratio <= 2,
            f"{ratio:.2f}× (p99 {fmt(ours[hi]['get_p99_us'])} µs)",
        )
    )
    worst_bulk = min(r["bulk_rows_per_s"] for r in ours.values())
    rust = [agg[("diskstore-rust", n)] for n in sizes if ("diskstore-rust", n) in agg]
    if rust:
        worst = min(r["bulk_rows_per_s"] for r in rust)
        lines.append(check("Rust bulk ≥ 2 M rows/s", worst >= 2e6, f"worst {worst / 1e6:.2f} M"))
    lines.append(
        check(
            "bulk ≥ 1 M rows/s at every size",
            worst_bulk >= 1e6,
            f"worst {worst_bulk / 1e6:.2f} M rows/s",
        )
    )
    return lines


def check(text: str, ok: bool, figure: str) -> str:
    """One target line."""
    return f"- {'PASS' if ok else 'MISS'}: {text} — {figure}"


def report(
    meta: dict, agg: dict[tuple[str, int], dict], sizes: list[int], chart: str | None
) -> str:
    """The Markdown report: one table per size, then the targets."""
    lines = [f"# Scale benchmark — {meta['date']}", ""]
    lines += [f"- machine: {meta['machine']}", f"- commit: {meta['commit']}"]
    lines += [f"- command: `{meta['command']}`"]
    lines += [f"- {s}: {d}" for s, d in meta["describe"].items()]
    lines += [
        (
            f"- keys `k%010d`, {meta['value_size']}-byte values; bulk in batches of {BATCH:,}; {meta['gets']:,} gets; "
            f"{meta['sets']:,} autocommitted sets; medians over {meta['rounds']} round(s), systems' "
            "order rotated"
        ),
        "",
    ]
    for n in sizes:
        present = [s for s in SYSTEMS if (s, n) in agg]
        if not present:
            continue
        lines.append(f"## {n:,} keys")
        lines.append("")
        lines.append("| | " + " | ".join(LABELS[s] for s in present) + " |")
        lines.append("|---|" + "---:|" * len(present))
        for title, field, unit in COLUMNS:
            cells = []
            for s in present:
                v = agg[(s, n)][field]
                if unit == "rows/s":
                    cells.append(f"{v / 1e6:.2f} M")
                elif unit == "MB":
                    cells.append(f"{v / 1e6:.1f}")
                else:
                    cells.append(fmt(v))
            lines.append(f"| {title} ({unit}) | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Targets (issue 13, ours)", ""] + targets(agg, sizes) + [""]
    if chart:
        lines += [f"![scale chart]({chart})", ""]
    return "\n".join(lines)


def draw(agg: dict[tuple[str, int], dict], sizes: list[int], stem: Path) -> str | None:
    """Draws the four panels to ``stem``.png and .svg; returns the PNG's file name."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no chart", file=sys.stderr)
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    panels = [
        (
            axes[0][0],
            "get latency (µs)",
            [("get_p50_us", "p50", "-"), ("get_p99_us", "p99", "--")],
            True,
        ),
        (axes[0][1], "len() (µs)", [("len_us", "", "-")], True),
        (
            axes[1][0],
            "autocommitted set latency (µs)",
            [
                ("set_p50_us", "p50", "-"),
                ("set_p999_us", "p99.9", "--"),
                ("set_max_us", "max", ":"),
            ],
            True,
        ),
        (axes[1][1], "bulk load (M rows/s)", [("bulk_rows_per_s", "", "-")], False),
    ]
    colors = {s: c for s, c in zip(SYSTEMS, ["C0", "C4", "C1", "C2", "C3", "C5", "C6"])}
    for ax, title, series, logy in panels:
        for s in SYSTEMS:
            ns = [n for n in sizes if (s, n) in agg]
            if not ns:
                continue
            for field, label, style in series:
                ys = [agg[(s, n)][field] for n in ns]
                if field == "bulk_rows_per_s":
                    ys = [y / 1e6 for y in ys]
                name = LABELS[s] + (f" {label}" if label else "")
                ax.plot(ns, ys, style, marker="o", color=colors[s], label=name)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("keys in the store")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("diskstore scale benchmark (lower is better, except bulk)")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    fig.savefig(stem.with_suffix(".svg"))
    plt.close(fig)
    return stem.with_suffix(".png").name


def machine() -> str:
    """A one-line description of this machine."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"
    )


def orchestrate(args: argparse.Namespace) -> int:
    """Runs every (size, system, round), saves and prints the report."""
    sizes = parse_sizes(args.sizes)
    if args.huge:
        sizes.append(100_000_000)
    chosen = [s for s in SYSTEMS if s in args.systems.split(",")]
    if not args.rust_cli and "diskstore-rust" in chosen:
        print("no --rust-cli: the Rust figures are left out", file=sys.stderr)
        chosen.remove("diskstore-rust")
    if args.value_size != 100 and "diskstore-rust" in chosen:
        print("the Rust figures use 100-byte values: left out", file=sys.stderr)
        chosen.remove("diskstore-rust")
    results = []
    plan = []
    turn = 0
    for r in range(args.rounds):
        for n in sizes:
            order = [s for s in chosen if not (s == "diskcache-index" and n > args.diskcache_max)]
            k = turn % len(order)
            order = order[k:] + order[:k]
            turn += 1
            plan += [(r, n, s) for s in order]
    describe: dict[str, str] = {}
    for i, (r, n, s) in enumerate(plan, 1):
        print(f"[{i}/{len(plan)}] round {r + 1}: {s} at {n:,} keys", file=sys.stderr)
        res = measure(args, s, n)
        describe[s] = res.pop("describe")
        res["round"] = r
        results.append(res)
        print(
            f"    bulk {res['bulk_rows_per_s'] / 1e6:.2f} M rows/s, get p50 {fmt(res['get_p50_us'])} µs, "
            f"len {fmt(res['len_us'])} µs, set p99.9 {fmt(res['set_p999_us'])} µs max {fmt(res['set_max_us'])} µs",
            file=sys.stderr,
        )
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "commit": git_commit(),
        "command": " ".join(["bench/scale.py"] + sys.argv[1:]),
        "describe": describe,
        "sets": args.sets,
        "gets": args.gets,
        "rounds": args.rounds,
        "value_size": args.value_size,
    }
    agg = aggregate(results)
    out_dir = Path(args.out_dir)
    chart = None
    if not args.no_save:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = out_dir / f"scale-{stamp}"
        chart = draw(agg, sizes, stem)
        stem.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "results": results}, indent=1)
        )
    text = report(meta, agg, sizes, chart)
    if not args.no_save:
        (out_dir / f"scale-{stamp}.md").write_text(text)
        print(f"saved {out_dir}/scale-{stamp}.md", file=sys.stderr)
    print(text)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes", default="1e4,1e5,1e6,1e7", help="store sizes (default 1e4,1e5,1e6,1e7)"
    )
    p.add_argument("--huge", action="store_true", help="also 1e8 (about 15 GB of disk per system)")
    p.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated, of {','.join(SYSTEMS)} (default: all but the page variants)",
    )
    p.add_argument("--value-size", type=int, default=100, help="value bytes (default 100)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--sets", type=int, default=20_000, help="autocommitted sets per size")
    p.add_argument("--gets", type=int, default=20_000, help="random-hit gets per size")
    p.add_argument(
        "--diskcache-max", type=int, default=1_000_000, help="largest size for diskcache"
    )
    p.add_argument("--orig-path", default=None, help="where diskstore 0.7.0 is installed")
    p.add_argument("--rust-cli", default=None, help="the `diskstore` binary (Rust figures)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    p.add_argument("--data-dir", default=None, help="where the stores are created")
    p.add_argument("--timeout", type=float, default=3600, help="per worker, seconds")
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: the orchestrator, or one worker when ``--worker`` is given."""
    args = parse_args(argv)
    if args.worker:
        global VALUE
        VALUE = bytes(i % 256 for i in range(args.value_size))
        directory = Path(args.dir)
        directory.mkdir(parents=True)
        res = run_worker(args.worker, args.n, args.sets, args.gets, directory)
        Path(args.out).write_text(json.dumps(res))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
