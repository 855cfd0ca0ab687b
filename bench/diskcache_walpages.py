"""Which database pages each `Deque.popleft` (or `append`) of diskstore.diskcache writes:
read from the WAL itself.

    python bench/diskcache_walpages.py [--n 3000] [--ops 300] [--op popleft|append]
        [--setting NAME=VALUE ...] [--show 8]

Fills a deque with `n` values of 1 KiB in one transaction, checkpoints the WAL away with
automatic checkpoints off, then runs `ops` operations, each its own commit. Every WAL
frame's page number is then mapped to the b-tree owning the page (SQLite's `dbstat`,
through the standard library's `sqlite3`, which reads the WAL too): page 1 is the
database header (and `sqlite_schema`'s root), pages no b-tree owns are the pointer map
(`auto_vacuum`) or free pages. Prints frames per commit by owner and the first commits'
pages.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import struct
import subprocess
import sys
import tempfile

from diskcache_icount import _setting

VALUE = b"v" * 1024

_OWNERS = """
import json, sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = con.execute("SELECT name, pageno, pagetype FROM dbstat").fetchall()
av = con.execute("PRAGMA auto_vacuum").fetchone()[0]
pages = con.execute("PRAGMA page_count").fetchone()[0]
print(json.dumps([av, pages, *rows]))
"""


def _frames(wal: bytes) -> tuple[int, list[tuple[int, bool]]]:
    """The page size and `(page number, ends a commit)` of each frame of a WAL file."""
    page_size = struct.unpack(">I", wal[8:12])[0]
    frames = []
    off = 32
    while off + 24 + page_size <= len(wal):
        page, commit_size = struct.unpack(">II", wal[off : off + 8])
        frames.append((page, commit_size != 0))
        off += 24 + page_size
    return page_size, frames


def main() -> None:
    """Prints the pages written per operation."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--ops", type=int, default=300)
    ap.add_argument("--op", default="popleft", choices=["popleft", "append"])
    ap.add_argument("--setting", action="append", default=[])
    ap.add_argument("--show", type=int, default=8)
    args = ap.parse_args()

    from diskstore import diskcache as dc

    directory = tempfile.mkdtemp(prefix="dcwalpages-")
    settings = dict(map(_setting, args.setting))
    cache = dc.Cache(directory, eviction_policy="none", **settings)
    q = dc.Deque.fromcache(cache)
    cache.reset("sqlite_wal_autocheckpoint", 0)
    with q.transact():
        for _ in range(args.n):
            q.append(VALUE)
    cache._core.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = os.path.join(directory, dc.core.DBNAME)
    # Owners as the operations find them (a page `auto_vacuum` moves later keeps the
    # owner it had here), read by another process: a second SQLite library in this one
    # would share its POSIX locks, take itself for the last connection and remove the WAL.
    out = subprocess.run(
        [sys.executable, "-c", _OWNERS, db], check=True, capture_output=True, text=True
    ).stdout
    auto_vacuum, pages, *rows = json.loads(out)
    owner = {page: f"{name} {kind}" for name, page, kind in rows}
    owner[1] = "page 1 (header, sqlite_schema)"
    op = q.popleft if args.op == "popleft" else lambda: q.append(VALUE)
    for _ in range(args.ops):
        op()
    with open(db + "-wal", "rb") as f:
        page_size, frames = _frames(f.read())
    cache.close()

    commits = sum(1 for _, end in frames if end)
    print(
        f"{args.op} x {args.ops} on {args.n} values: page size {page_size}, auto_vacuum "
        f"{auto_vacuum}, {len(frames)} frames in {commits} commits "
        f"({len(frames) / max(commits, 1):.2f} per commit); {pages} pages before"
    )
    by_owner = collections.Counter(owner.get(p, "pointer map or free") for p, _ in frames)
    for name, count in by_owner.most_common():
        print(f"  {name}: {count} ({count / max(commits, 1):.2f} per commit)")
    shown, line = 0, []
    for page, end in frames:
        line.append(f"{page} ({owner.get(page, 'pointer map or free')})")
        if end:
            if shown < args.show:
                print("  commit:", ", ".join(line))
            shown += 1
            line = []


if __name__ == "__main__":
    main()
