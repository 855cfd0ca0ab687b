"""diskstore.diskcache against python-diskcache 5.6.3: the same workloads, each run in its own
process, rounds interleaved (ours, theirs, ours, theirs, ...), medians and ratios reported.

    python bench/diskcache_bench.py [--n 5000] [--rounds 3] [--only cache-set,cache-get]
        [--json out.json] [--md out.md]

The interpreter running it must import both `diskcache` (python-diskcache) and `diskstore`
(ours); measure a release build (`maturin build --release`, then install the wheel). A
ratio is diskcache's time divided by ours: above 1 means ours is faster. Keys are `str`,
values 1 KiB `bytes` (stored inline by both: diskcache's files start at 32 KiB).

Each timed phase starts and ends with every WAL checkpointed (`PRAGMA wal_checkpoint(FULL)`
on both): ours checkpoints on a background thread, diskcache inside the committing call, so
without it a set-up's checkpoint would run inside ours' timed reads, and checkpoint work
that ours' timed writes leave to the thread would go untimed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

SYSTEMS = ("ours", "diskcache")
VALUE = b"v" * 1024
FANOUT_PROCS = 4


def _module(system: str) -> Any:
    if system == "ours":
        from diskstore import diskcache as mod
    else:
        import diskcache as mod
    return mod


_CPU: dict[str, float] = {}
"""CPU seconds (this process, user + system) when the timed loop began and µs per op."""


def _caches(obj: Any) -> list[Any]:
    """The `Cache` objects under a Cache, Deque, Index, FanoutCache or DjangoCache."""
    if hasattr(obj, "_shards"):
        return [c for shard in obj._shards for c in _caches(shard)]
    inner = getattr(obj, "_cache", None)
    if inner is not None and inner is not obj:
        return _caches(inner)
    return [obj]


def _settle(obj: Any) -> None:
    """Checkpoints the WAL of every database under `obj` completely (`PRAGMA
    wal_checkpoint(FULL)`, waiting for a checkpoint already running): before a timed phase,
    so that no checkpoint of the set-up's writes runs in it (ours checkpoints on a
    background thread, diskcache inside the committing call), and at its end, so that
    checkpoint work a timed phase left behind is timed too."""
    for c in _caches(obj):
        give_up = time.monotonic() + 60
        while True:
            try:
                if hasattr(c, "_core"):
                    busy = c._core.execute("PRAGMA wal_checkpoint(FULL)")[0][0]
                else:
                    busy = c._sql("PRAGMA wal_checkpoint(FULL)").fetchall()[0][0]
            except Exception:  # noqa: BLE001 (a short timeout: locked, try again)
                busy = 1
            if not busy or time.monotonic() > give_up:
                break
            time.sleep(0.001)


_SETTLE: list[Any] = []
"""The object `_per_op` settles before it stops the clock."""


def _start(obj: Any) -> float:
    _settle(obj)
    _SETTLE[:] = [obj]
    _CPU["start"] = time.process_time()
    return time.perf_counter()


def _per_op(start: float, n: int) -> float:
    for obj in _SETTLE:
        _settle(obj)
    wall = (time.perf_counter() - start) / n * 1e6
    _CPU["per_op"] = (time.process_time() - _CPU["start"]) / n * 1e6
    return wall


def _cache_set(mod: Any, n: int, d: str) -> float:
    c = mod.Cache(d)
    keys = [f"key-{i}" for i in range(n)]
    t = _start(c)
    for k in keys:
        c.set(k, VALUE)
    return _per_op(t, n)


def _cache_get(mod: Any, n: int, d: str) -> float:
    c = mod.Cache(d)
    keys = [f"key-{i}" for i in range(n)]
    with c.transact():
        for k in keys:
            c.set(k, VALUE)
    t = _start(c)
    for k in keys:
        c.get(k)
    return _per_op(t, n)


def _cache_incr(mod: Any, n: int, d: str) -> float:
    c = mod.Cache(d)
    t = _start(c)
    for i in range(n):
        c.incr(f"counter-{i % 10}")
    return _per_op(t, n)


def _deque_append(mod: Any, n: int, d: str) -> float:
    q = mod.Deque(directory=d)
    t = _start(q)
    for _ in range(n):
        q.append(VALUE)
    return _per_op(t, n)


def _deque_popleft(mod: Any, n: int, d: str) -> float:
    q = mod.Deque(directory=d)
    with q.transact():
        for _ in range(n):
            q.append(VALUE)
    t = _start(q)
    for _ in range(n):
        q.popleft()
    return _per_op(t, n)


def _index_set(mod: Any, n: int, d: str) -> float:
    ix = mod.Index(d)
    keys = [f"key-{i}" for i in range(n)]
    t = _start(ix)
    for k in keys:
        ix[k] = VALUE
    return _per_op(t, n)


def _index_get(mod: Any, n: int, d: str) -> float:
    ix = mod.Index(d)
    keys = [f"key-{i}" for i in range(n)]
    with ix.transact():
        for k in keys:
            ix[k] = VALUE
    t = _start(ix)
    for k in keys:
        ix[k]
    return _per_op(t, n)


def _fanout_writer(system: str, d: str, n: int, worker: int, ready: Any, out: Any) -> None:
    mod = _module(system)
    c = mod.FanoutCache(d, shards=8)
    ready.wait()
    cpu = time.process_time()
    retries = 0
    for i in range(n):
        # A write that timed out (False, as diskcache's) is tried again: every write lands.
        while not c.set(f"w{worker}-key-{i}", VALUE):
            retries += 1
    _settle(c)
    # All of this process's threads (ours: its checkpoint threads too).
    out.put((time.monotonic(), retries, time.process_time() - cpu))


def _fanout_set_mp(system: str, n: int, d: str) -> float:
    """Wall time from the moment all 4 writers have opened the cache (a barrier) to the
    last one's end, per write; process start-up and opening are not timed."""
    mod = _module(system)
    mod.FanoutCache(d, shards=8).close()
    per = max(1, n // FANOUT_PROCS)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(FANOUT_PROCS + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_fanout_writer, args=(system, d, per, w, ready, out))
        for w in range(FANOUT_PROCS)
    ]
    for p in procs:
        p.start()
    ready.wait()
    start = time.monotonic()
    ends = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"fanout writers failed: exit codes {failed}")
    _CPU["retries"] = sum(r for _, r, _ in ends)
    # CPU: the 4 writers' CPU (user + system, all their threads) in all, per write.
    _CPU["per_op"] = sum(c for _, _, c in ends) / (per * FANOUT_PROCS) * 1e6
    return (max(e for e, _, _ in ends) - start) / (per * FANOUT_PROCS) * 1e6


def _django_setup() -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(CACHES={}, USE_TZ=True)
        django.setup()
    return settings


def _django(system: str, n: int, d: str, op: str) -> float:
    _django_setup()
    from django.core.cache import caches  # noqa: F401
    from django.core.cache.backends.base import BaseCache  # noqa: F401

    backend = "diskstore.diskcache.DjangoCache" if system == "ours" else "diskcache.DjangoCache"
    from django.utils.module_loading import import_string

    cls = import_string(backend)
    cache = cls(d, {"OPTIONS": {}})
    keys = [f"key-{i}" for i in range(n)]
    if op == "set":
        t = _start(cache)
        for k in keys:
            cache.set(k, VALUE)
        return _per_op(t, n)
    for k in keys:
        cache.set(k, VALUE)
    t = _start(cache)
    for k in keys:
        cache.get(k)
    return _per_op(t, n)


WORKLOADS = {
    "cache-set": lambda s, n, d: _cache_set(_module(s), n, d),
    "cache-get": lambda s, n, d: _cache_get(_module(s), n, d),
    "cache-incr": lambda s, n, d: _cache_incr(_module(s), n, d),
    "deque-append": lambda s, n, d: _deque_append(_module(s), n, d),
    "deque-popleft": lambda s, n, d: _deque_popleft(_module(s), n, d),
    "index-set": lambda s, n, d: _index_set(_module(s), n, d),
    "index-get": lambda s, n, d: _index_get(_module(s), n, d),
    "fanout-set-4proc": _fanout_set_mp,
    "django-set": lambda s, n, d: _django(s, n, d, "set"),
    "django-get": lambda s, n, d: _django(s, n, d, "get"),
}
"""Workload name -> function(system, n, directory) -> µs per operation."""

TARGETS = {
    "cache-set": 3.0,
    "cache-get": 2.0,
    "fanout-set-4proc": 3.0,
    "deque-append": 2.0,
    "deque-popleft": 2.0,
    "index-set": 2.0,
    "index-get": 2.0,
    "django-set": 2.0,
    "django-get": 2.0,
}
"""Issue 14's speed targets (ratio diskcache / ours)."""


def _child(system: str, workload: str, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dcbench-") as d:
        us = WORKLOADS[workload](system, n, os.path.join(d, "c"))
    print(json.dumps({"us": us, "cpu_us": _CPU.get("per_op"), "retries": _CPU.get("retries")}))


def _run(system: str, workload: str, n: int) -> tuple[float, float | None, int | None] | None:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", system, workload, str(n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        print(
            f"  {system} {workload} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr
        )
        return None
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return float(got["us"]), got.get("cpu_us"), got.get("retries")


def _ratio_cells(ours: list[float], theirs: list[float]) -> tuple[str, str, str, float]:
    ratio = statistics.median(theirs) / statistics.median(ours)
    rounds = ", ".join(f"{t / o:.2f}" for o, t in zip(ours, theirs))
    return f"{statistics.median(ours):.1f}", f"{statistics.median(theirs):.1f}", rounds, ratio


def main() -> None:
    """Runs the interleaved rounds and prints (and optionally saves) the table."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--child", nargs=3, metavar=("SYSTEM", "WORKLOAD", "N"))
    args = ap.parse_args()
    if args.child:
        system, workload, n = args.child
        _child(system, workload, int(n))
        return
    names = [w for w in WORKLOADS if not args.only or w in args.only.split(",")]
    wall: dict[str, dict[str, list[float]]] = {w: {s: [] for s in SYSTEMS} for w in names}
    cpu: dict[str, dict[str, list[float]]] = {w: {s: [] for s in SYSTEMS} for w in names}
    retries: dict[str, dict[str, list[int]]] = {w: {s: [] for s in SYSTEMS} for w in names}
    loads = []
    for r in range(args.rounds):
        for w in names:
            order = SYSTEMS if r % 2 == 0 else tuple(reversed(SYSTEMS))
            for s in order:
                got = _run(s, w, args.n)
                if got is not None:
                    wall[w][s].append(got[0])
                    if got[1] is not None:
                        cpu[w][s].append(got[1])
                    if got[2] is not None:
                        retries[w][s].append(got[2])
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    lines = [
        (
            f"n = {args.n}, rounds = {args.rounds}, python {sys.version.split()[0]},"
            f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
            f" load average after each round {', '.join(f'{x:.1f}' for x in loads)}"
        ),
        "",
        (
            "Wall clock (µs per op; fanout: wall time from all 4 processes ready to the last"
            " one done / total ops). CPU: user +"
            " system time of the measuring process per op (fanout: the 4 writers' CPU, all"
            " their threads, in all per op). Ratio = diskcache / ours, medians; above 1 = ours"
            " faster."
        ),
        "",
        (
            "| workload | ours wall | diskcache wall | ratio wall | per round | ours CPU"
            " | diskcache CPU | ratio CPU | target |"
        ),
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    report: dict[str, Any] = {}
    for w in names:
        ours, theirs = wall[w]["ours"], wall[w]["diskcache"]
        if not ours or not theirs:
            lines.append(f"| {w} | failed | | | | | | | |")
            continue
        o, t, rounds, ratio = _ratio_cells(ours, theirs)
        co, ct, cratio = "-", "-", "-"
        entry: dict[str, Any] = {"ours": ours, "diskcache": theirs, "ratio": ratio}
        if cpu[w]["ours"] and cpu[w]["diskcache"]:
            co, ct, _, cr = _ratio_cells(cpu[w]["ours"], cpu[w]["diskcache"])
            cratio = f"{cr:.2f}×"
            entry.update(cpu_ours=cpu[w]["ours"], cpu_diskcache=cpu[w]["diskcache"], cpu_ratio=cr)
        if retries[w]["ours"] or retries[w]["diskcache"]:
            entry.update(retries_ours=retries[w]["ours"], retries_diskcache=retries[w]["diskcache"])
        target = TARGETS.get(w)
        mark = (
            "" if target is None else f"{target:.0f}× " + ("met" if ratio >= target else "not met")
        )
        lines.append(
            f"| {w} | {o} | {t} | {ratio:.2f}× | {rounds} | {co} | {ct} | {cratio} | {mark} |"
        )
        report[w] = entry
    for w in names:
        if retries[w]["ours"] or retries[w]["diskcache"]:
            lines.append("")
            lines.append(
                f"{w}: writes that timed out (`False`) and were tried again, per round:"
                f" ours {retries[w]['ours']}, diskcache {retries[w]['diskcache']}."
            )
    text = "\n".join(lines)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"n": args.n, "rounds": args.rounds, "loads": loads, "results": report}, f, indent=1
            )
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
