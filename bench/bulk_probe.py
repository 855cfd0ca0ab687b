"""Where a bulk load's time goes from Python (issue #13): one pass of one part, meant to run
under ``perf stat -e instructions:u,task-clock`` so that a shared machine's load does not
blur the comparison. Run the parts interleaved and subtract (``none`` from each, ``tuples``
from ``update``); each part's figures are per row after that.

    python bench/bulk_probe.py PART ROWS [PAGE_SIZE] [VALUE_SIZE]

PART is one of
  ``none``    start-up and imports only (what every other part also pays);
  ``tuples``  builds the batches of ``(f"k{i:010d}", value)`` tuples as bench/scale.py does,
              and drops them;
  ``update``  builds the same batches and stores each with ``DiskStore.update()`` (batches of
              100,000, a new file with PAGE_SIZE pages, default 4096).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

BATCH = 100_000


def key(i: int) -> str:
    """The i-th key of the scale workload."""
    return f"k{i:010d}"


def main() -> int:
    part, rows = sys.argv[1], int(float(sys.argv[2]))
    page = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    value = bytes(i % 256 for i in range(int(sys.argv[4]) if len(sys.argv) > 4 else 100))
    import diskstore

    with tempfile.TemporaryDirectory() as d:
        config = diskstore.config.BaseConfig(pragmas={"page_size": page})
        store = diskstore.DiskStore(str(Path(d) / "p.db"), config=config)
        t = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        if part == "tuples":
            for start in range(0, rows, BATCH):
                batch = [(key(i), value) for i in range(start, min(rows, start + BATCH))]
                del batch
        elif part == "update":
            for start in range(0, rows, BATCH):
                store.update([(key(i), value) for i in range(start, min(rows, start + BATCH))])
            assert len(store) == rows
        elif part != "none":
            raise SystemExit(f"unknown part {part!r}")
        wall = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        store.close()
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    print(
        f"{part} rows={rows} page={page}: {wall:.3f} s wall, CPU {user:.3f} s user "
        f"+ {system:.3f} s sys (all threads)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
