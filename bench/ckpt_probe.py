"""Where the slowest autocommitted sets spend their time (issue 13, checkpoints).

    python bench/ckpt_probe.py N SETS TAG > out.json

Loads N keys (``k%010d``, 100-byte values, ``update()`` in batches of 100,000) into a new
store, then times SETS autocommitted sets of new keys one by one, as ``bench/scale.py`` does.
For every set over 2 ms it records the wall time, the thread's CPU time
(``time.thread_time_ns``) and the time it spent runnable but waiting for a CPU (run-queue
wait, ``/proc/thread-self/schedstat``); what is left is time blocked (I/O, locks). Prints one
JSON object: p50 / p99.9 / max, the ``-wal`` size at the end, and the slow sets. Run it with
different builds on ``PYTHONPATH``, rounds interleaved (``bench/results/ckpt-probe-*.md``).
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import diskstore


def _sched() -> tuple[int, int]:
    """(ns on a CPU, ns waiting on a run queue) of the calling thread."""
    with open("/proc/thread-self/schedstat") as f:
        on_cpu, waiting, _ = f.read().split()
    return int(on_cpu), int(waiting)


def main() -> None:
    n, sets, tag = int(float(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
    directory = Path(tempfile.mkdtemp())
    store = diskstore.DiskStore(str(directory / "s.db"))
    value = bytes(range(100))
    gc.disable()
    for start in range(0, n, 100_000):
        store.update([(f"k{i:010d}", value) for i in range(start, min(n, start + 100_000))])
    slow = []
    samples = []
    put = store.__setitem__
    pc, tt = time.perf_counter_ns, time.thread_time_ns
    for i in range(sets):
        k = f"k{n + i:010d}"
        _, w0 = _sched()
        c0 = tt()
        t = pc()
        put(k, value)
        dt = pc() - t
        c1 = tt()
        _, w1 = _sched()
        samples.append(dt)
        if dt > 2_000_000:
            slow.append(
                {"i": i, "wall_ms": dt / 1e6, "cpu_ms": (c1 - c0) / 1e6, "runq_ms": (w1 - w0) / 1e6}
            )
    samples.sort()
    wal = sum(p.stat().st_size for p in directory.glob("*-wal"))
    out = {
        "tag": tag,
        "n": n,
        "sets": sets,
        "p50_us": samples[len(samples) // 2] / 1e3,
        "p999_us": samples[int(len(samples) * 0.999)] / 1e3,
        "max_ms": samples[-1] / 1e6,
        "wal_mb": wal / 1e6,
        "slow": slow,
    }
    print(json.dumps(out))
    store.close()
    shutil.rmtree(directory)


if __name__ == "__main__":
    main()
