"""One system, one op, ``--calls`` times: the program ``icount.sh`` runs under callgrind.

Setup (open, fill ``--rows`` rows, warm statements) is the same whatever ``--calls`` is, so the
difference between a run with ``--calls K`` and one with ``--calls 0``, divided by K, is the
instruction count of one call, free of start-up and setup. Loops are plain Python statements:
``s[k]`` for get, ``s.get(k)`` of absent keys for get-miss, ``k in s`` for contains, ``len(s)``
for len (ours only) and ``s[k] = v`` (an overwrite, autocommitted) for set.

Systems: ``diskstore`` (whatever ``import diskstore`` finds: ours, or the original 0.7.0 when
``icount.sh`` puts it first on PYTHONPATH) and ``apsw-floor`` (raw apsw, 0.7.0's SQL).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def open_store(system: str, directory: Path):
    """Open the system's store in ``directory``."""
    if system == "diskstore":
        import diskstore

        return diskstore.DiskStore(str(directory / "store.db"))
    if system == "apsw-floor":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from systems import ApswFloor

        floor = ApswFloor()
        floor.open(directory)
        return floor
    raise SystemExit(f"unknown system {system!r}")


def main() -> int:
    """Set up, warm, then run the op ``--calls`` times."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", required=True)
    p.add_argument("--op", choices=["get", "get-miss", "contains", "len", "set"], required=True)
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--value-size", type=int, default=1024)
    args = p.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="icount-"))
    try:
        store = open_store(args.system, directory)
        value = bytes(range(256)) * (args.value_size // 256) + b"x" * (args.value_size % 256)
        keys = [f"key-{i:09d}" for i in range(args.rows)]
        # Absent keys for get-miss, made whatever --calls is (their making is setup, not the call).
        pool = [f"miss-{i:09d}" for i in range(args.rows)] if args.op == "get-miss" else keys
        seq = [pool[i % args.rows] for i in range(args.calls)]
        if args.system == "apsw-floor":
            store.bulk([(k, value) for k in keys])
            cur, sql_get, sql_set = store.cur, store.sql_get, store.sql_set
            for k in keys[:50]:  # warm: statement cache, pages
                cur.execute(sql_get, (k,)).fetchone()
                cur.execute(sql_set, (k, value))
            if args.op in ("get", "get-miss", "contains"):
                for k in seq:
                    cur.execute(sql_get, (k,)).fetchone()
            else:
                for k in seq:
                    cur.execute(sql_set, (k, value))
            store.close()
        else:
            store.update([(k, value) for k in keys])
            for k in keys[:50]:  # warm: connection, statements, pages
                store[k]
                store[k] = value
            if args.op == "get":
                for k in seq:
                    store[k]
            elif args.op == "get-miss":
                get = store.get
                for k in seq:
                    get(k)
            elif args.op == "contains":
                for k in seq:
                    k in store  # noqa: B015 - the expression is what is measured
            elif args.op == "len":
                for _ in seq:
                    len(store)
            else:
                for k in seq:
                    store[k] = value
            store.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
