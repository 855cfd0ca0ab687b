"""Autocommitted sets from 1, 2, 4 and 8 threads: does write throughput grow with threads?

Each thread of one process sets its share of ``--total`` new keys (``key-TT-NNNNNNNNN``,
values of ``--value-size`` bytes), every set its own autocommitted write, on one fresh store;
the figure is all sets ÷ the wall time of the whole run. Systems, each measured in a fresh
subprocess with rounds interleaved (order rotated, odd rounds reversed):

* ``ours``: this repository's package (``--ours-python``, default ``bench/.venv``);
* ``ours-base``: the same package built from a baseline commit (``--ours-base-python``);
* ``orig-0.1.0``: the original 0.1.0 with apsw (``--orig01-python``);
* ``orig-0.7.0``: the original 0.7.0 with apsw (``--orig07-path`` on ``PYTHONPATH`` of the
  ``--ours-python`` interpreter, as ``scripts/bench.sh`` installs it);
* ``rust``: our Rust API, ``crates/diskstore/examples/writer_threads.rs`` (``--rust-bin``;
  ``--rust-base-bin`` adds a second binary, e.g. one built from a baseline commit).

    python bench/threads_bench.py --rounds 3
    python bench/threads_bench.py --systems ours,rust --threads 1 --threads 4   # quick

Results go to ``bench/results/threads-<date>-<HHMM>.{md,json}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from runinfo import original_python, round_order, run_meta

SYSTEMS = ("ours", "ours-base", "orig-0.1.0", "orig-0.7.0", "rust", "rust-base")


def run_python(system: str, threads: int, total: int, size: int) -> dict:
    """Runs in the measured interpreter: the sets, timed; returns sets/s."""
    import diskstore

    value = b"x" * size
    if system == "orig-0.1.0":
        value = diskstore.Value(value)
    per = total // threads
    with tempfile.TemporaryDirectory(prefix="threads-bench-") as folder:
        store = diskstore.DiskStore(os.path.join(folder, "t.db"))
        store["warm"] = value
        del store["warm"]
        errors: list[BaseException] = []
        barrier = threading.Barrier(threads + 1)

        def writer(t: int) -> None:
            try:
                barrier.wait()
                for i in range(per):
                    store[f"key-{t:02}-{i:09}"] = value
            except BaseException as e:  # noqa: BLE001 (reported below, never hidden)
                errors.append(e)

        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        secs = time.perf_counter() - start
        if errors:
            raise SystemExit(f"{system}: {len(errors)} thread(s) failed: {errors[0]!r}")
        n = len(store)
        if n != per * threads:
            raise SystemExit(f"{system}: {n} keys stored, {per * threads} expected")
        close = getattr(store, "close", None)
        if close:
            close()
    return {
        "threads": threads,
        "sets": per * threads,
        "seconds": secs,
        "sets_per_s": per * threads / secs,
    }


def measure(args, system: str, threads: int) -> dict:
    """One run of ``system``, with the CPU time (user + system) its process used per set:
    on a machine shared with other work the wall-clock figure swings, the CPU per set much
    less."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run_once(args, system, threads)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system_time = after.ru_stime - before.ru_stime
    r["cpu_us_per_set"] = (user + system_time) / r["sets"] * 1e6
    r["sys_us_per_set"] = system_time / r["sets"] * 1e6
    r["ctx_switches_per_set"] = (after.ru_nvcsw - before.ru_nvcsw) / r["sets"]
    return r


def run_once(args, system: str, threads: int) -> dict:
    if system in ("rust", "rust-base"):
        binary = args.rust_bin if system == "rust" else args.rust_base_bin
        out = subprocess.run(
            [binary, str(threads), str(args.total), str(args.value_size)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    python = args.ours_python
    if system == "ours-base":
        python = args.ours_base_python
    elif system == "orig-0.1.0":
        python = args.orig01_python
        env["DISKSTORE_BACKEND"] = "apsw"
    elif system == "orig-0.7.0":
        env["PYTHONPATH"] = args.orig07_path
        env["DISKSTORE_BACKEND"] = "apsw"
    cmd = [python, __file__, "--run", system, "--threads", str(threads)]
    cmd += ["--total", str(args.total), "--value-size", str(args.value_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(docs: list[dict], systems: list[str], threads: list[int], meta: dict) -> str:
    def vals(s, t):
        return [d["result"]["sets_per_s"] for d in docs if d["system"] == s and d["threads"] == t]

    lines = [
        "# Autocommitted sets from several threads (sets/s, higher is better)",
        "",
        (
            f"{meta['when']}, commit {meta['commit']}, {meta['nproc']} CPUs, load at start "
            f"{meta['load']}; {meta['total']:,} new keys in all, {meta['value_size']}-byte "
            f"values, {meta['rounds']} rounds interleaved. Cells: median of the rounds (range); "
            "× = ratio to the same system's 1 thread."
        ),
        "",
        "| threads | " + " | ".join(systems) + " |",
        "|---:|" + "---:|" * len(systems),
    ]
    for t in threads:
        cells = []
        for s in systems:
            v = vals(s, t)
            one = vals(s, threads[0])
            if not v:
                cells.append("–")
                continue
            med = statistics.median(v)
            c = f"{med:,.0f} ({min(v):,.0f}–{max(v):,.0f})"
            if t != threads[0] and one:
                c += f" {med / statistics.median(one):.2f}×"
            cells.append(c)
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        (
            "CPU time (user + system) of the measured process per set, µs (median of the "
            "rounds; lower is better; includes the process's start-up and the final count), "
            "and its voluntary context switches per set:"
        ),
        "",
        "| threads | " + " | ".join(systems) + " |",
        "|---:|" + "---:|" * len(systems),
    ]
    for t in threads:
        cells = []
        for s in systems:
            rs = [
                d["result"]
                for d in docs
                if d["system"] == s and d["threads"] == t and "cpu_us_per_set" in d["result"]
            ]
            if not rs:
                cells.append("–")
                continue
            cpu = statistics.median(r["cpu_us_per_set"] for r in rs)
            sys_ = statistics.median(r["sys_us_per_set"] for r in rs)
            cs = statistics.median(r["ctx_switches_per_set"] for r in rs)
            cells.append(f"{cpu:.1f} (sys {sys_:.1f}; {cs:.2f} cs)")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, action="append", help="repeatable; default 1 2 4 8")
    p.add_argument("--total", type=int, default=20_000)
    p.add_argument("--value-size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--systems", default="ours,orig-0.1.0,orig-0.7.0,rust")
    p.add_argument("--ours-python", default=str(HERE / ".venv" / "bin" / "python"))
    p.add_argument("--ours-base-python", default="", help="ours built from a baseline commit")
    p.add_argument(
        "--orig01-python", default="", help="default: the venv compat_support.py makes under /tmp"
    )
    p.add_argument("--orig07-path", default=str(HERE / ".venv" / "orig07"))
    p.add_argument(
        "--rust-bin",
        default=str(ROOT / "target" / "h-bench" / "release" / "examples" / "writer_threads"),
    )
    p.add_argument("--rust-base-bin", default="")
    p.add_argument("--label", default="")
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument("--run", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = p.parse_args()
    threads = args.threads or [1, 2, 4, 8]
    if args.run:
        print(json.dumps(run_python(args.run, threads[0], args.total, args.value_size)))
        return
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s!r}")
    if "orig-0.1.0" in systems and not args.orig01_python:
        args.orig01_python = original_python("0.1.0")
    meta = run_meta(total=args.total, value_size=args.value_size, rounds=args.rounds)
    docs = []
    for rnd in range(args.rounds):
        order = round_order(systems, rnd)
        for t in threads:
            for s in order:
                r = measure(args, s, t)
                print(f"round {rnd + 1} {s} {t} threads: {r['sets_per_s']:,.0f} sets/s", flush=True)
                docs.append({"round": rnd, "system": s, "threads": t, "result": r})
    text = report(docs, systems, threads, meta)
    print(text)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H%M")
    stem = f"threads-{stamp}" + (f"-{args.label}" if args.label else "")
    (out_dir / f"{stem}.md").write_text(text)
    (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "runs": docs}, indent=1))
    print(f"saved {out_dir / stem}.md/.json", file=sys.stderr)


if __name__ == "__main__":
    main()
