"""The server backends, side by side with the clients users would otherwise call directly.

1. One client, ours vs the peer, rounds interleaved (every round measures every operation
   on every system, in alternating order): get / set / delete / incr / get_many(100) /
   set_many(100), per operation in microseconds.
   - PostgreSQL: `DiskCache("postgresql://…")` against psycopg 3 running the same SQL
     (autocommit, prepared statements) on a plain `key bytea, value bytea` table; and
     `DiskStore("postgresql://…")` get/set for reference.
   - Redis: `DiskCache("redis://…")` against redis-py with hiredis (GET/SET/DEL/INCRBY/
     MGET/pipelined SET).
2. Several app servers: P processes x T threads on one server doing a 90/10 read/write
   mix for S seconds (aggregate ops/s, p99 latency), then transactional counters (each
   thread adds 1 a fixed number of times: PostgreSQL in `transact()` read-modify-write,
   Redis with `incr`) with the exact final count checked.

`--pin-cpu N` runs part 1 with this process and the servers' processes on CPU N alone. On a
small VM the cost of a round trip depends on where the kernel places the client and the
server process that serves its connection: on one CPU a round trip is two context
switches; across CPUs it wakes an idle vCPU, which costs tens of µs more, and each
connection (ours, the peer's, the store's) lands one way or the other by chance, so unpinned
ratios swing run to run (measured 0.36× to 2.7× for the same build's PostgreSQL `set`).
Pinned, every system pays the same kind of round trip. Setting another process's affinity
needs the rights to (root, or the servers' owner).

Needs `pip install -r bench/requirements.txt` (psycopg[binary], redis, hiredis) and the
servers of scripts/servers.sh. Writes bench/results/backends-<date>.{json,md}.

    python bench/backends_bench.py --n 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskstore
from diskstore import DiskCache, DiskStore
from diskstore.config import BaseConfig

RESULTS = Path(__file__).resolve().parent / "results"
VALUE = b"v" * 100
BATCH = 100
LIMITED = 10_000


def _time(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    """Microseconds per call of `fn(i)` over `n` calls: wall time, and this process's
    CPU time (the client's own cost, which a loaded machine distorts less)."""
    cpu = time.process_time_ns()
    start = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    wall = (time.perf_counter_ns() - start) / n / 1000
    return wall, (time.process_time_ns() - cpu) / n / 1000


# ---- PostgreSQL -----------------------------------------------------------------------


class PsycopgCache:
    """The peer: psycopg 3 with the SQL a user would write for a bytea key-value table."""

    def __init__(self, url: str, table: str) -> None:
        import psycopg

        self.con = psycopg.connect(url, autocommit=True, prepare_threshold=0)
        self.t = table
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (key bytea PRIMARY KEY, value bytea, num bigint)"
        )
        self.con.execute(f"TRUNCATE {table}")

    def get(self, k: bytes) -> Any:
        row = self.con.execute(f"SELECT value FROM {self.t} WHERE key = %s", (k,)).fetchone()
        return None if row is None else row[0]

    def set(self, k: bytes, v: bytes) -> None:
        self.con.execute(
            f"INSERT INTO {self.t} (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (k, v),
        )

    def delete(self, k: bytes) -> None:
        self.con.execute(f"DELETE FROM {self.t} WHERE key = %s", (k,))

    def incr(self, k: bytes) -> int:
        row = self.con.execute(
            f"INSERT INTO {self.t} (key, num) VALUES (%s, 1) "
            f"ON CONFLICT (key) DO UPDATE SET num = {self.t}.num + 1 RETURNING num",
            (k,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def get_many(self, ks: list[bytes]) -> list[Any]:
        rows = self.con.execute(
            f"SELECT key, value FROM {self.t} WHERE key = ANY(%s)", (ks,)
        ).fetchall()
        found = dict(rows)
        return [found.get(k) for k in ks]

    def set_many(self, items: dict[bytes, bytes]) -> None:
        self.con.execute(
            f"INSERT INTO {self.t} (key, value) SELECT * FROM unnest(%s::bytea[], %s::bytea[]) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (list(items), list(items.values())),
        )


def pg_systems(url: str) -> dict[str, dict[str, Callable[[int], Any]]]:
    ours = DiskCache(url, None, tablename="bench_ours")
    ours.clear()
    peer = PsycopgCache(url, "bench_peer")
    store = DiskStore(url, config=BaseConfig(tablename="bench_store"))
    store.clear()
    # A cache with a count limit, full: a new key evicts one; each write checks the limit.
    limited = DiskCache(url, None, tablename="bench_limited", count_limit=LIMITED)
    limited.clear()
    fresh = itertools.count()
    for start in range(0, LIMITED, 1000):
        limited.set_many({b"f%d" % i: VALUE for i in range(start, start + 1000)})
    keys = [f"k{i}".encode() for i in range(BATCH)]
    batch = dict.fromkeys(keys, VALUE)
    for k in keys:  # what get/get_many read
        ours[k] = VALUE
        peer.set(k, VALUE)
        store[k] = VALUE

    def ops(c: Any) -> dict[str, Callable[[int], Any]]:
        return {
            "get": lambda i: c.get(keys[i % BATCH]),
            "set": lambda i: c.set(keys[i % BATCH], VALUE),
            "delete": lambda i: c.delete(b"absent%d" % i),
            "incr": lambda i: c.incr(b"counter"),
            "get_many(100)": lambda i: c.get_many(keys),
            "set_many(100)": lambda i: c.set_many(batch),
        }

    return {
        "ours: DiskCache(postgresql)": ops(ours),
        "psycopg 3": ops(peer),
        "ours: DiskStore(postgresql)": {
            "get": lambda i: store.get(keys[i % BATCH]),
            "set": lambda i: store.__setitem__(keys[i % BATCH], VALUE),
        },
        f"ours: DiskCache(postgresql, count_limit={LIMITED}, full)": {
            "set": lambda i: limited.set(keys[i % BATCH], VALUE),
            "set new key (evicts one)": lambda i: limited.set(b"n%d" % next(fresh), VALUE),
        },
    }


def pg_updates(url: str) -> dict[str, tuple[int, int]]:
    """PostgreSQL's own `(updates, HOT updates)` per table of the one-client run."""
    import psycopg

    time.sleep(1.5)  # sessions report their counts about once a second
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute(
            "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
            "WHERE relname IN ('bench_ours', 'bench_peer', 'bench_limited')"
        ).fetchall()
    return {name: (upd, hot) for name, upd, hot in rows}


# ---- Redis ----------------------------------------------------------------------------


def redis_systems(url: str) -> dict[str, dict[str, Callable[[int], Any]]]:
    import redis

    ours = DiskCache(url, None, tablename="bench_ours")
    ours.clear()
    peer = redis.Redis.from_url(url)
    keys = [f"k{i}".encode() for i in range(BATCH)]
    pkeys = [b"bench_peer:" + k for k in keys]
    batch = dict.fromkeys(keys, VALUE)
    for k, pk in zip(keys, pkeys, strict=True):
        ours[k] = VALUE
        peer.set(pk, VALUE)

    def peer_set_many(_: int) -> None:
        p = peer.pipeline(transaction=True)
        for pk in pkeys:
            p.set(pk, VALUE)
        p.execute()

    return {
        "ours: DiskCache(redis)": {
            "get": lambda i: ours.get(keys[i % BATCH]),
            "set": lambda i: ours.set(keys[i % BATCH], VALUE),
            "delete": lambda i: ours.delete(b"absent%d" % i),
            "incr": lambda i: ours.incr(b"counter"),
            "get_many(100)": lambda i: ours.get_many(keys),
            "set_many(100)": lambda i: ours.set_many(batch),
        },
        "redis-py + hiredis": {
            "get": lambda i: peer.get(pkeys[i % BATCH]),
            "set": lambda i: peer.set(pkeys[i % BATCH], VALUE),
            "delete": lambda i: peer.delete(b"bench_peer:absent%d" % i),
            "incr": lambda i: peer.incrby(b"bench_peer:counter", 1),
            "get_many(100)": lambda i: peer.mget(pkeys),
            "set_many(100)": peer_set_many,
        },
    }


def single_client(
    systems: dict[str, dict[str, Callable[[int], Any]]], n: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """`[wall, cpu]` median µs per op over `rounds` interleaved rounds; batch ops run
    n/10 times."""
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {s: {} for s in systems}
    names = list(systems)
    ops = list(dict.fromkeys(op for d in systems.values() for op in d))
    for r in range(rounds):
        for op in ops:
            order = names if r % 2 == 0 else names[::-1]
            for s in order:
                fn = systems[s].get(op)
                if fn is None:
                    continue
                count = max(n // 10, 10) if "many" in op else n
                fn(0)  # warm (prepared statements, pool)
                samples[s].setdefault(op, []).append(_time(fn, count))
    return {
        s: {
            op: [statistics.median(w for w, _ in v), statistics.median(c for _, c in v)]
            for op, v in d.items()
        }
        for s, d in samples.items()
    }


# ---- Several app servers --------------------------------------------------------------


def _mix_worker(kind: str, url: str, seconds: float, threads: int, out: Any) -> None:
    if kind == "postgres-store":
        s: Any = DiskStore(url, config=BaseConfig(tablename="bench_mix"))
    else:
        s = DiskCache(url, None, tablename="bench_mix")
    lat: list[float] = []
    lock = threading.Lock()
    count = [0]

    def run(seed: int) -> None:
        mine: list[float] = []
        i = seed * 7919
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            i += 1
            k = b"k%d" % (i % 1000)
            t0 = time.perf_counter_ns()
            if i % 10 == 0:
                s[k] = VALUE
            else:
                s.get(k)
            mine.append((time.perf_counter_ns() - t0) / 1000)
        with lock:
            lat.extend(mine)
            count[0] += len(mine)

    ts = [threading.Thread(target=run, args=(t + os.getpid(),)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((count[0], sorted(lat)[int(len(lat) * 0.99)] if lat else 0.0))


def _counter_worker(kind: str, url: str, per_thread: int, threads: int, out: Any) -> None:
    if kind == "postgres-store":
        s: Any = DiskStore(url, config=BaseConfig(tablename="bench_counter"))

        def add_one() -> None:
            with s.transact():
                s["c"] = s["c"] + 1
    else:
        c = DiskCache(url, None, tablename="bench_counter")

        def add_one() -> None:
            c.incr("c")

    def run() -> None:
        for _ in range(per_thread):
            add_one()

    start = time.perf_counter()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(time.perf_counter() - start)


def app_servers(
    kind: str, url: str, procs: int, threads: int, seconds: float, per_thread: int
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    # Seed the data.
    if kind == "postgres-store":
        s: Any = DiskStore(url, config=BaseConfig(tablename="bench_mix"))
        s.clear()
        s.update({b"k%d" % i: VALUE for i in range(1000)})
        counter: Any = DiskStore(url, config=BaseConfig(tablename="bench_counter"))
        counter.clear()
        counter["c"] = 0
    else:
        c = DiskCache(url, None, tablename="bench_mix")
        c.clear()
        c.set_many({b"k%d" % i: VALUE for i in range(1000)})
        counter = DiskCache(url, None, tablename="bench_counter")
        counter.clear()
    q = ctx.Queue()
    ps = [
        ctx.Process(target=_mix_worker, args=(kind, url, seconds, threads, q)) for _ in range(procs)
    ]
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    for p in ps:
        p.join()
    ops = sum(r[0] for r in results)
    p99 = max(r[1] for r in results)
    ps = [
        ctx.Process(target=_counter_worker, args=(kind, url, per_thread, threads, q))
        for _ in range(procs)
    ]
    for p in ps:
        p.start()
    elapsed = max(q.get() for _ in ps)
    for p in ps:
        p.join()
    final = counter["c"]
    expected = procs * threads * per_thread
    return {
        "mix_ops_per_s": ops / seconds,
        "mix_p99_us": p99,
        "counter_expected": expected,
        "counter_final": final,
        "counter_exact": final == expected,
        "counter_ops_per_s": expected / elapsed,
    }


# ---- Report ---------------------------------------------------------------------------


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# Backends benchmark {res['date']}", "", f"Machine: {res['machine']}", ""]
    for server, (ours, peer) in (
        ("postgres", ("ours: DiskCache(postgresql)", "psycopg 3")),
        ("redis", ("ours: DiskCache(redis)", "redis-py + hiredis")),
    ):
        table = res["single"].get(server)
        if not table:
            continue
        lines += [
            (
                f"## {server}: one client, µs per operation (median of {res['rounds']} "
                "interleaved rounds; wall time, then the client process's CPU time"
                + (
                    f"; client and server pinned to CPU {res['pinned_cpu']})"
                    if res.get("pinned_cpu") is not None
                    else ")"
                )
            ),
            "",
            (
                f"| operation | {ours} | {peer} | ours / theirs | CPU: ours | CPU: theirs "
                "| CPU ours / theirs |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for op, (t, tc) in table[ours].items():
            p, pc = table[peer][op]
            lines.append(
                f"| {op} | {t:.1f} | {p:.1f} | {t / p:.2f} | {tc:.1f} | {pc:.1f} | {tc / pc:.2f} |"
            )
        extra = [s for s in table if s not in (ours, peer)]
        for s in extra:
            for op, (t, tc) in table[s].items():
                lines.append(f"| {op} ({s}) | {t:.1f} | | | {tc:.1f} | | |")
        lines.append("")
        if server == "postgres" and res.get("pg_updates"):
            counts = ", ".join(
                f"`{t}` {u} updates, {h} HOT" for t, (u, h) in sorted(res["pg_updates"].items())
            )
            lines += [f"PostgreSQL's own counts during this run: {counts}.", ""]
    if res.get("app_servers"):
        lines += [
            f"## {res['procs']} processes x {res['threads']} threads",
            "",
            "| backend | 90/10 mix ops/s | p99 µs | counter ops/s | final count | exact |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for kind, r in res["app_servers"].items():
            lines.append(
                f"| {kind} | {r['mix_ops_per_s']:.0f} | {r['mix_p99_us']:.0f} | "
                f"{r['counter_ops_per_s']:.0f} | {r['counter_final']} / {r['counter_expected']} "
                f"| {'yes' if r['counter_exact'] else 'NO'} |"
            )
        lines.append("")
    return "\n".join(lines)


def server_pids(pg: str | None, redis_url: str | None) -> list[int]:
    """The processes of the servers behind the URLs: PostgreSQL's postmaster (new backends
    inherit its CPU affinity) and its running backends, and Redis's threads."""
    pids: list[int] = []
    if pg:
        import psycopg

        with psycopg.connect(pg, autocommit=True) as con:
            data = con.execute("SHOW data_directory").fetchone()[0]
            pids += [r[0] for r in con.execute("SELECT pid FROM pg_stat_activity").fetchall()]
        with open(os.path.join(data, "postmaster.pid")) as f:
            pids.append(int(f.readline()))
    if redis_url:
        import redis

        main_pid = int(redis.Redis.from_url(redis_url).info("server")["process_id"])
        pids += [int(t) for t in os.listdir(f"/proc/{main_pid}/task")]
    return pids


def pin(cpus: set[int], pids: list[int]) -> None:
    """Sets the CPU affinity of this process and of `pids` (every thread of each)."""
    for pid in ["self", *pids]:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(task), cpus)
        except (FileNotFoundError, ProcessLookupError):
            continue  # a backend that ended meanwhile (e.g. the one that listed them)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", default=os.environ.get("DISKSTORE_TEST_POSTGRES"))
    ap.add_argument("--redis", default=os.environ.get("DISKSTORE_TEST_REDIS"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--per-thread", type=int, default=200)
    ap.add_argument("--out", default=None)
    ap.add_argument("--pin-cpu", type=int, default=None, help="part 1 on this CPU only")
    a = ap.parse_args()
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, diskstore {diskstore.__version__}",
        "n": a.n,
        "rounds": a.rounds,
        "procs": a.procs,
        "threads": a.threads,
        "single": {},
        "app_servers": {},
        "pinned_cpu": a.pin_cpu,
    }
    everywhere = os.sched_getaffinity(0)
    servers = server_pids(a.pg, a.redis) if a.pin_cpu is not None else []
    if a.pin_cpu is not None:
        pin({a.pin_cpu}, servers)
    if a.pg:
        before = pg_updates(a.pg)
        res["single"]["postgres"] = single_client(pg_systems(a.pg), a.n, a.rounds)
        after = pg_updates(a.pg)
        res["pg_updates"] = {
            t: [u - before.get(t, (0, 0))[0], h - before.get(t, (0, 0))[1]]
            for t, (u, h) in after.items()
        }
    if a.redis:
        res["single"]["redis"] = single_client(redis_systems(a.redis), a.n, a.rounds)
    if a.pin_cpu is not None:
        pin(everywhere, server_pids(a.pg, a.redis))
    for kind, url in (("postgres-store", a.pg), ("redis-cache", a.redis)):
        if url:
            res["app_servers"][kind] = app_servers(
                kind, url, a.procs, a.threads, a.seconds, a.per_thread
            )
    md = markdown(res)
    print(md)
    stem = a.out or f"backends-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2))
    (RESULTS / f"{stem}.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
