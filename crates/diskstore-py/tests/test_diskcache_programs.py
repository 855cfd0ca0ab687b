"""Programs written for python-diskcache run unchanged on diskstore.diskcache: each program
below imports `diskcache`; it runs once with python-diskcache 5.6.3 and once with
`sys.modules["diskcache"]` pointing at ours, and the two outputs must be the same. Then
cross-process atomicity of `incr` and of `FanoutCache` writes."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from diskstore import diskcache as dc

_SWAP = "import sys\nfrom diskstore import diskcache\nsys.modules['diskcache'] = diskcache\n"

PROGRAMS = {
    "web_page_cache": """
        import diskcache, tempfile, time
        cache = diskcache.Cache(tempfile.mkdtemp(), size_limit=2**20)
        renders = []

        @cache.memoize(expire=60, tag="pages")
        def render(path, lang="en"):
            renders.append(path)
            return f"<h1>{path} ({lang})</h1>" * 3

        for path in ["/", "/about", "/", "/about", "/news"]:
            print(render(path), render(path, lang="fr"))
        print(len(renders), sorted(set(renders)))
        print(cache.evict("pages"), len(cache))
        print(render.__cache_key__("/x", lang="de"))
    """,
    "counters_and_tags": """
        import diskcache, tempfile
        with diskcache.Cache(tempfile.mkdtemp(), statistics=True) as cache:
            for word in "the quick brown fox jumps over the lazy dog the end".split():
                cache.incr(("count", word))
                cache.set(("last", word), word.upper(), tag=word[0])
            print(sorted((k[1], cache[k]) for k in cache if k[0] == "count"))
            print(cache.get(("last", "fox"), tag=True), cache.get("missing", "dflt", tag=True))
            print(cache.evict("t"), cache.stats(), len(cache))
            print(cache.pop(("count", "the")), cache.pop(("count", "the"), "gone"))
            print(cache.touch(("last", "dog"), expire=0), cache.get(("last", "dog")))
            print(cache.add("x", 1), cache.add("x", 2), cache["x"], cache.decr("x", 5))
            print(list(cache.iterkeys())[:5], cache.check())
    """,
    "work_queue": """
        import diskcache, tempfile
        cache = diskcache.Cache(tempfile.mkdtemp())
        for job in ["a", "b", "c"]:
            print(cache.push(job, prefix="jobs"))
        print(cache.push("urgent", prefix="jobs", side="front"))
        print(cache.peek(prefix="jobs"), cache.peek(prefix="jobs", side="back"))
        while True:
            key, job = cache.pull(prefix="jobs")
            if key is None:
                break
            print("did", key, job)
        print(cache.push(1), cache.push(2), cache.pull(side="back"), cache.peekitem())
    """,
    "deque_and_index": """
        import diskcache, tempfile
        history = diskcache.Deque(range(5), directory=tempfile.mkdtemp(), maxlen=4)
        history.append(5); history.appendleft(-1); history.rotate(2)
        print(list(history), history.maxlen, history[0], history[-1], len(history))
        print(history.pop(), history.popleft(), history.peek(), history == [5, 1, 2][:2])
        settings = diskcache.Index(tempfile.mkdtemp(), {"theme": "dark"}, lang="en")
        settings["size"] = 12
        print(list(settings.items()), settings.popitem(), settings.setdefault("x", []))
        print(settings.peekitem(last=False), settings == {"theme": "dark", "lang": "en", "x": []})
        print(settings.push("q1"), settings.pull())
    """,
    "fanout_and_recipes": """
        import diskcache, tempfile
        cache = diskcache.FanoutCache(tempfile.mkdtemp(), shards=4, timeout=1)
        for i in range(20):
            cache.set(f"user:{i}", {"id": i}, expire=None if i % 2 else 300, tag=i % 3)
        print(len(cache), cache.get("user:7"), cache.evict(0), len(cache))
        print(sorted(cache)[:3], cache.incr("hits", 2), cache.stats())
        avg = diskcache.Averager(cache, "latency")
        for v in (10, 20, 60):
            avg.add(v)
        print(avg.get(), avg.pop(), avg.get())
        lock = diskcache.Lock(cache, "L")
        with lock:
            print("locked", lock.locked())
        print("unlocked", lock.locked())
        sub = cache.cache("sessions")
        sub["s1"] = "alice"
        print(sub.get("s1"), cache.deque("log").append("x"), list(cache.deque("log")))
        print(cache.clear(), len(cache))
    """,
    "files_and_json": """
        import diskcache, io, tempfile
        cache = diskcache.Cache(tempfile.mkdtemp(), disk=diskcache.JSONDisk, disk_min_file_size=64)
        cache.set("doc", {"title": "t" * 100, "tags": ["a", "b"]})
        print(cache.get("doc")["tags"], len(cache.get("doc")["title"]))
        raw = diskcache.Cache(tempfile.mkdtemp())
        raw.set("blob", io.BytesIO(b"0123456789" * 5000), read=True)
        with raw.read("blob") as f:
            print(len(f.read()))
        print(len(raw.get("blob")), raw.delete("blob"), raw.check())
    """,
}


def _run(body: str, ours: bool, tmp_path: Path) -> str:
    script = tmp_path / ("ours.py" if ours else "theirs.py")
    script.write_text((_SWAP if ours else "") + textwrap.dedent(body))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_runs_unchanged(name: str, tmp_path: Path) -> None:
    theirs = _run(PROGRAMS[name], False, tmp_path)
    ours = _run(PROGRAMS[name], True, tmp_path)
    assert ours == theirs
    assert ours.strip()


def _incr_worker(directory: str, n: int) -> None:
    c = dc.Cache(directory)
    for _ in range(n):
        c.incr("n", retry=True)


def _fanout_worker(directory: str, worker: int, n: int) -> None:
    c = dc.FanoutCache(directory, shards=4, timeout=0.010)
    for i in range(n):
        while not c.set(f"{worker}-{i}", i):  # False on a timeout, as diskcache: try again
            pass


def test_incr_and_fanout_writes_are_exact_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    d = str(tmp_path / "incr")
    f = str(tmp_path / "fan")
    dc.Cache(d).close()
    dc.FanoutCache(f, shards=4).close()
    procs = [ctx.Process(target=_incr_worker, args=(d, 150)) for _ in range(3)]
    procs += [ctx.Process(target=_fanout_worker, args=(f, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert dc.Cache(d)["n"] == 450
    fan = dc.FanoutCache(f, shards=4)
    assert len(fan) == 600
    assert fan.get("3-149") == 149
