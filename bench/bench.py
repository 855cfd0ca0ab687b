"""Side-by-side benchmark of diskstore against the original 0.7.0, its peers and the SQLite floor.

Runs the workload of ``shared/reference/baseline.md`` (key-value, issue 3) and the cache workload
(issue 4) for every system, each in its own subprocess (``worker.py``), interleaving the systems
and rotating their order every round. The Rust figures (``sqlite-floor-rust``, the same SQL and
pragmas as diskstore 0.7.0 driven by rusqlite, and ``diskstore-rust``, our Rust API) come from
``diskstore bench --json``, run as one more job of each round.

Prints Markdown tables (medians, ratios to the floor, CPU, p99, target checks) and saves them with
the raw per-round JSON to ``bench/results/<date>.{md,json}``.

Quick run: ``python bench/bench.py --n 2000 --rounds 1``; full run: the defaults
(n = 20,000, 3 rounds). ``scripts/bench.sh`` builds everything and calls this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report
import systems
from runinfo import cpu_model, git_commit


def machine() -> dict:
    """nproc, CPU model and load average, for the report header."""
    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "load_start": load()}


def load() -> str:
    """The 1/5/15-minute load averages as text."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_worker(args, system: str, workload: str, rnd: int) -> dict:
    """Measure one system in a fresh subprocess; return its document (or an error document)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    cmd = [
        args.python,
        str(HERE / "worker.py"),
        "--system",
        system,
        "--workload",
        workload,
        "--n",
        str(args.n),
        "--value-size",
        str(args.value_size),
        "--len-calls",
        str(args.len_calls),
        "--mp-seconds",
        str(args.mp_seconds),
        "--order",
        args.order,
        "--out",
        out,
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    doc: dict = {"system": system, "workload": workload, "round": rnd}
    try:
        env = systems.subprocess_env(system, args.orig_path)
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=args.timeout, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            doc["error"] = f"exit {proc.returncode}: {tail}"
        else:
            doc.update(json.loads(Path(out).read_text()))
            doc["round"] = rnd
    except (subprocess.TimeoutExpired, RuntimeError, OSError, ValueError) as exc:
        doc["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        Path(out).unlink(missing_ok=True)
    return doc


#: Ops measured as one loop (total ÷ items) by the workers.
WHOLE_LOOP_OPS = ("bulk", "iterate")


def run_rust(args, rnd: int) -> list[dict]:
    """Run ``diskstore bench --json`` once; split its results into one document per system."""
    cmd = [
        args.rust_cli,
        "bench",
        "--json",
        "--ops",
        str(args.n),
        "--value-size",
        str(args.value_size),
        "--mp-seconds",
        str(args.mp_seconds),
    ]
    base = {"workload": "store", "round": rnd}
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=args.timeout
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"exit {proc.returncode}: {tail}")
        data = json.loads(proc.stdout)
    except (subprocess.TimeoutExpired, RuntimeError, OSError, ValueError) as exc:
        return [{**base, "system": report.FLOOR, "error": f"{type(exc).__name__}: {exc}"}]
    by_system: dict[str, list[dict]] = {}
    for r in data.get("results", []):
        r = dict(r)
        if r.get("op") in WHOLE_LOOP_OPS and "mean_us" in r:
            # The CLI times each item of bulk/iterate on its own (bulk's commit lands on the last
            # item); the workers time the whole loop. The per-item mean is the comparable figure.
            r["item_median_us"] = r["median_us"]
            r["median_us"] = r["mean_us"]
        if r.get("op") == "mp" and "ops_per_s" not in r:
            # Accept the few names a throughput figure may carry.
            for name in ("ops_s", "ops_per_sec", "throughput"):
                if name in r:
                    r["ops_per_s"] = r[name]
        by_system.setdefault(r.pop("system"), []).append(r)
    if "timer_us" in data:
        base["timer_us"] = data["timer_us"]
    return [
        {**base, "system": s, "describe": f"{Path(args.rust_cli).name} bench", "results": rs}
        for s, rs in by_system.items()
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=20_000, help="keys per workload (default 20000)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--value-size", type=int, default=1024, help="value bytes (default 1024)")
    p.add_argument(
        "--systems",
        default=",".join(systems.STORE_SYSTEMS),
        help="key-value systems, comma-separated ('' for none)",
    )
    p.add_argument(
        "--cache-systems",
        default=",".join(systems.CACHE_SYSTEMS),
        help="cache-workload systems, comma-separated ('' for none)",
    )
    p.add_argument("--rust-cli", default=None, help="path of the `diskstore` binary (Rust figures)")
    p.add_argument("--orig-path", default=None, help="directory where diskstore 0.7.0 is installed")
    p.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    p.add_argument(
        "--order",
        choices=["sequential", "shuffled"],
        default="sequential",
        help="key order of each phase (sequential = the Rust CLI's order; default)",
    )
    p.add_argument("--mp-seconds", type=float, default=None, help="per mp process (default 2 s)")
    p.add_argument("--len-calls", type=int, default=200)
    p.add_argument("--data-dir", default=None, help="where the stores are created")
    p.add_argument("--timeout", type=float, default=1800, help="per subprocess, seconds")
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--note", action="append", default=[], help="a line for the report header")
    args = p.parse_args(argv)
    if args.mp_seconds is None:
        args.mp_seconds = 2.0 if args.n >= 20_000 else 0.5
    return args


def main(argv: list[str] | None = None) -> int:
    """Run all rounds, print the report, save it."""
    args = parse_args(argv)
    store_systems = [s for s in args.systems.split(",") if s]
    cache_systems = [s for s in args.cache_systems.split(",") if s]
    started = dt.datetime.now(dt.timezone.utc)
    meta = machine()
    meta.update(
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        python=sys.version.split()[0],
        commit=git_commit(),
        n=args.n,
        value_size=args.value_size,
        rounds=args.rounds,
        mp_seconds=args.mp_seconds,
        order=args.order,
        command="python bench/bench.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        notes=list(args.note),
    )

    jobs: list[tuple[str, str]] = [(s, "store") for s in store_systems]
    if args.rust_cli:
        jobs.append(("rust", "store"))
    else:
        meta["notes"].append("no --rust-cli given: no Rust floor, so no ratios to it.")
    jobs += [(s, "cache") for s in cache_systems]

    docs: list[dict] = []
    for rnd in range(args.rounds):
        shift = (rnd * max(1, len(jobs) // max(1, args.rounds))) % max(1, len(jobs))
        order = jobs[shift:] + jobs[:shift]
        if rnd % 2:
            order.reverse()
        for system, workload in order:
            t0 = time.monotonic()
            if system == "rust":
                new = run_rust(args, rnd)
            else:
                new = [run_worker(args, system, workload, rnd)]
            docs += new
            status = "; ".join(d.get("error", "ok") for d in new)
            print(
                f"round {rnd + 1}/{args.rounds} {workload:5} {system:22} "
                f"{time.monotonic() - t0:6.1f} s  {status}  (load {load()})",
                file=sys.stderr,
                flush=True,
            )

    meta["load_end"] = load()
    out_dir = Path(args.out_dir)
    stem = started.strftime("%Y-%m-%d-%H%M")
    if not args.no_save:  # the raw figures first, so that a report bug cannot lose a run
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "runs": docs}, indent=1))
    text = report.render(docs, meta, store_systems, cache_systems)
    print(text)
    if not args.no_save:
        (out_dir / f"{stem}.md").write_text(text)
        print(f"saved {out_dir / stem}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
