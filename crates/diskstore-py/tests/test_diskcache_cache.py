"""diskstore.diskcache.Cache against python-diskcache 5.6.3: the same calls on both, the
results compared (a hypothesis state machine, then scenarios a random walk rarely reaches).

DISKSTORE_HYPOTHESIS_EXAMPLES / DISKSTORE_HYPOTHESIS_STEPS set the machine's size."""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache as theirs_mod
import hypothesis.strategies as st
import pytest
from diskcache_support import normalize, outcome, same
from diskstore import diskcache as dc
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

EXAMPLES = int(os.environ.get("DISKSTORE_HYPOTHESIS_EXAMPLES", "25"))
STEPS = int(os.environ.get("DISKSTORE_HYPOTHESIS_STEPS", "40"))
PHASES = [
    p for p in Phase if not (os.environ.get("DISKSTORE_HYPOTHESIS_NO_SHRINK") and p == Phase.shrink)
]

keys = st.one_of(
    st.integers(min_value=-2, max_value=6),
    st.sampled_from([0.5, 2.0, "a", "b", "", b"a", b"", (1, 2), ("a",), True, None, 2**70]),
    st.integers(min_value=500000000000000 - 2, max_value=500000000000002),
)
values = st.one_of(
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([None, "x", b"y", 1.5, [1, 2], {"k": 1}, "z" * 300, b"w" * 300]),
)
expires = st.sampled_from([None, None, -1, 1000])
tags = st.sampled_from([None, "t1", "t2"])
prefixes = st.sampled_from([None, "q"])
sides = st.sampled_from(["back", "front"])
flags = st.booleans()


class CacheMachine(RuleBasedStateMachine):
    """Random operations on both caches; every result must match."""

    def __init__(self) -> None:
        super().__init__()
        self.dirs = [tempfile.mkdtemp(), tempfile.mkdtemp()]
        # size_limit=0 makes every write evict cull_limit rows by policy: deterministic.
        self.ours = dc.Cache(self.dirs[0])
        self.theirs = theirs_mod.Cache(self.dirs[1])

    def teardown(self) -> None:
        self.ours.close()
        self.theirs.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def both(self, fn: Any) -> Any:
        return same(self.ours, self.theirs, fn)

    @rule(
        policy=st.sampled_from(
            ["least-recently-stored", "least-recently-used", "least-frequently-used", "none"]
        ),
        size_limit=st.sampled_from([0, 2**30]),
        cull_limit=st.sampled_from([0, 1, 10]),
        statistics=flags,
    )
    def configure(self, policy: str, size_limit: int, cull_limit: int, statistics: bool) -> None:
        self.both(lambda c: c.reset("eviction_policy", policy))
        self.both(lambda c: c.reset("size_limit", size_limit))
        self.both(lambda c: c.reset("cull_limit", cull_limit))
        self.both(lambda c: c.reset("statistics", statistics))

    @rule(key=keys, value=values, expire=expires, tag=tags)
    def set(self, key: Any, value: Any, expire: Any, tag: Any) -> None:
        self.both(lambda c: c.set(key, value, expire=expire, tag=tag))

    @rule(key=keys, value=values)
    def setitem(self, key: Any, value: Any) -> None:
        self.both(lambda c: c.__setitem__(key, value))

    @rule(key=keys, value=values, expire=expires, tag=tags)
    def add(self, key: Any, value: Any, expire: Any, tag: Any) -> None:
        self.both(lambda c: c.add(key, value, expire=expire, tag=tag))

    @rule(key=keys, expire_time=flags, tag=flags, default=st.sampled_from([None, "D"]))
    def get(self, key: Any, expire_time: bool, tag: bool, default: Any) -> None:
        self.both(lambda c: c.get(key, default, expire_time=expire_time, tag=tag))

    @rule(key=keys)
    def getitem_contains(self, key: Any) -> None:
        self.both(lambda c: c[key])
        self.both(lambda c: key in c)

    @rule(key=keys, expire=expires)
    def touch(self, key: Any, expire: Any) -> None:
        self.both(lambda c: c.touch(key, expire))

    @rule(key=keys)
    def delete(self, key: Any) -> None:
        self.both(lambda c: c.delete(key))

    @rule(key=keys)
    def delitem(self, key: Any) -> None:
        self.both(lambda c: c.__delitem__(key))

    @rule(key=keys, expire_time=flags, tag=flags)
    def pop(self, key: Any, expire_time: bool, tag: bool) -> None:
        self.both(lambda c: c.pop(key, "D", expire_time=expire_time, tag=tag))

    @rule(key=keys, delta=st.integers(-3, 3), default=st.sampled_from([0, 10, None]))
    def incr(self, key: Any, delta: int, default: Any) -> None:
        self.both(lambda c: c.incr(key, delta, default))

    @rule(key=keys, delta=st.integers(-3, 3))
    def decr(self, key: Any, delta: int) -> None:
        self.both(lambda c: c.decr(key, delta))

    @rule(value=values, prefix=prefixes, side=sides, expire=expires, tag=tags)
    def push(self, value: Any, prefix: Any, side: str, expire: Any, tag: Any) -> None:
        self.both(lambda c: c.push(value, prefix=prefix, side=side, expire=expire, tag=tag))

    @rule(prefix=prefixes, side=sides, expire_time=flags, tag=flags)
    def pull(self, prefix: Any, side: str, expire_time: bool, tag: bool) -> None:
        self.both(lambda c: c.pull(prefix, side=side, expire_time=expire_time, tag=tag))

    @rule(prefix=prefixes, side=sides, expire_time=flags, tag=flags)
    def peek(self, prefix: Any, side: str, expire_time: bool, tag: bool) -> None:
        self.both(lambda c: c.peek(prefix, side=side, expire_time=expire_time, tag=tag))

    @rule(last=flags, expire_time=flags, tag=flags)
    def peekitem(self, last: bool, expire_time: bool, tag: bool) -> None:
        self.both(lambda c: c.peekitem(last, expire_time=expire_time, tag=tag))

    @rule(tag=tags)
    def evict(self, tag: Any) -> None:
        self.both(lambda c: c.evict(tag))

    @rule()
    def expire(self) -> None:
        self.both(lambda c: c.expire())

    @rule()
    def cull(self) -> None:
        self.both(lambda c: c.cull())

    @rule()
    def clear(self) -> None:
        self.both(lambda c: c.clear())

    @rule(enable=flags, reset=flags)
    def stats(self, enable: bool, reset: bool) -> None:
        self.both(lambda c: c.stats(enable=enable, reset=reset))

    @rule(key=keys, value=values, fail=flags)
    def transact(self, key: Any, value: Any, fail: bool) -> None:
        def run(c: Any) -> Any:
            with c.transact():
                c.set(key, value)
                got = c.get(key)
                if fail:
                    raise ZeroDivisionError
            return got

        self.both(run)

    @invariant()
    def same_contents(self) -> None:
        self.both(len)
        self.both(lambda c: list(c))
        self.both(lambda c: list(reversed(c)))
        self.both(lambda c: list(c.iterkeys()))
        self.both(lambda c: list(c.iterkeys(reverse=True)))


CacheMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, phases=PHASES
)
TestCacheMachine = CacheMachine.TestCase


# -- scenarios ---------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    caches = (dc.Cache(str(tmp_path / "ours")), theirs_mod.Cache(str(tmp_path / "theirs")))
    yield caches
    for c in caches:
        c.close()


def test_constants_and_names_match() -> None:
    assert dc.DEFAULT_SETTINGS == theirs_mod.DEFAULT_SETTINGS
    assert set(dc.EVICTION_POLICY) == set(theirs_mod.EVICTION_POLICY)
    assert repr(dc.ENOVAL) == repr(theirs_mod.ENOVAL) == "ENOVAL"
    assert repr(dc.UNKNOWN) == "UNKNOWN"
    for name in theirs_mod.__all__:
        if name != "DjangoCache":
            assert hasattr(dc, name), name
    assert issubclass(dc.EmptyDirWarning, UserWarning)
    assert issubclass(dc.UnknownFileWarning, UserWarning)
    assert issubclass(dc.Timeout, Exception)


def test_legacy_names_keep_their_0_1_0_meaning() -> None:
    from diskstore.cache import DiskCache

    assert dc.DiskCache is DiskCache
    v = dc.CacheValue.create({"a": 1})
    assert v.expires_at == 0.0
    assert v.load(None) == {"a": 1}
    assert dc.CacheValue.create(1, expires=-5).load(None, default="gone") == "gone"
    assert dc.CacheValue.create(1, expires=-5).load(0) is dc.MISSING
    for name in ("DiskStore", "KeyType", "MISSING", "TIMEOUT"):
        assert hasattr(dc, name), name


def test_large_values_live_in_files_and_read_returns_handles(pair: Any) -> None:
    big = b"b" * (2**15 + 10)
    text = "t" * (2**15 + 10)
    for c in pair:
        assert c.set("big", big) is True
        assert c.set("text", text) is True
        assert c.set("obj", [b"o" * 2**15]) is True
        assert c.set("file", io.BytesIO(b"streamed" * 10), read=True) is True
    ours, theirs = pair
    for key in ("big", "text", "obj", "file"):
        same(ours, theirs, lambda c, key=key: c.get(key))
    for c in pair:
        with c.read("file") as f:
            assert f.read() == b"streamed" * 10
        with c.get("big", read=True) as f:
            assert f.read() == big
        with pytest.raises(KeyError):
            c.read("missing")
    files = [f for _, _, fs in os.walk(ours.directory) for f in fs if f.endswith(".val")]
    assert len(files) == 4
    assert ours.volume() > len(big) + len(text)
    same(ours, theirs, lambda c: c.delete("big"))
    same(ours, theirs, lambda c: c.set("text", "small"))
    same(ours, theirs, lambda c: c.pop("obj"))
    files = [f for _, _, fs in os.walk(ours.directory) for f in fs if f.endswith(".val")]
    assert len(files) == 1
    same(ours, theirs, lambda c: len(c.check()))
    same(ours, theirs, lambda c: c.clear())
    same(ours, theirs, lambda c: len(c.check()))


def test_check_reports_and_fixes_like_diskcache(pair: Any) -> None:
    for c in pair:
        c.set("big", b"x" * 2**16)
        path = next(
            os.path.join(d, f)
            for d, _, fs in os.walk(c.directory)
            for f in fs
            if f.endswith(".val")
        )
        os.remove(path)
        with open(os.path.join(c.directory, "stray.val"), "wb") as f:
            f.write(b"?")
        os.makedirs(os.path.join(c.directory, "empty", "dir"))
    ours, theirs = pair

    def kinds(c: Any) -> Any:
        return sorted(w.category.__name__ for w in c.check())

    same(ours, theirs, kinds)
    same(ours, theirs, lambda c: len(c.check(fix=True)))
    same(ours, theirs, kinds)
    same(ours, theirs, len)


def test_expired_entries_count_until_removed(pair: Any) -> None:
    ours, theirs = pair
    for c in pair:
        c.reset("cull_limit", 0)
        c.set("a", 1, expire=-1)
        c.set("b", 2)
    same(ours, theirs, len)
    same(ours, theirs, lambda c: list(c))
    same(ours, theirs, lambda c: c.get("a", "gone"))
    same(ours, theirs, lambda c: "a" in c)
    same(ours, theirs, lambda c: c.add("a", 3))
    same(ours, theirs, lambda c: c.get("a"))
    same(ours, theirs, lambda c: c.touch("a", 0))
    same(ours, theirs, lambda c: c.expire())
    same(ours, theirs, len)


def test_cull_in_batches_when_over_the_size_limit(pair: Any) -> None:
    ours, theirs = pair
    for c in pair:
        c.reset("cull_limit", 3)
        for i in range(20):
            c.set(i, i)
        c.reset("size_limit", 0)
        c.set("trigger", 1)
    same(ours, theirs, lambda c: list(c))
    same(ours, theirs, lambda c: c.cull())
    same(ours, theirs, len)


def test_memoize_and_cache_key(pair: Any) -> None:
    calls: list[Any] = []

    for c in pair:

        @c.memoize(typed=True, tag="m")
        def f(x: Any, y: int = 1) -> Any:
            calls.append(x)
            return (x, y)

        assert f(1) == (1, 1)
        assert f(1) == (1, 1)
        assert f(1.0) == (1.0, 1)
        assert f(1, y=2) == (1, 2)
        assert f.__cache_key__(1, y=2)[-4:] == ("y", 2, int, int)
        assert f.__wrapped__(5) == (5, 1)
        with pytest.raises(TypeError):
            c.memoize(f)
    assert len(calls) == 2 * 4
    same(*pair, lambda c: c.evict("m"))


def test_pickled_cache_reopens_the_same_directory(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "p"), size_limit=2**20 + 1)
    c.set("k", "v")
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.directory == c.directory
    assert c2.get("k") == "v"
    assert c2.size_limit == 2**20 + 1
    assert c2.reset("size_limit") == 2**20 + 1


def test_settings_persist_and_reset(tmp_path: Path) -> None:
    d = str(tmp_path / "s")
    c = dc.Cache(d, eviction_policy="least-recently-used", cull_limit=3, statistics=True)
    c.get("missing")
    c.set("x", 1)
    c.get("x")
    assert c.stats() == (1, 1)
    c.close()
    c = dc.Cache(d)
    assert c.eviction_policy == "least-recently-used"
    assert c.cull_limit == 3
    assert c.reset("cull_limit", 5) == 5
    assert dc.Cache(d).cull_limit == 5
    assert c.reset("disk_min_file_size", 10) == 10
    assert c.disk.min_file_size == 10
    with pytest.raises(ValueError):
        dc.Cache(d, eviction_policy="random")
    with pytest.raises(ValueError):
        dc.Cache(d, disk=object)


def test_json_disk_round_trips(tmp_path: Path) -> None:
    a = dc.Cache(str(tmp_path / "a"), disk=dc.JSONDisk, disk_compress_level=6)
    b = theirs_mod.Cache(str(tmp_path / "b"), disk=theirs_mod.JSONDisk, disk_compress_level=6)
    for key, value in [("k", {"a": [1, 2]}), (3, "x"), ("big", "y" * 70000)]:
        same(a, b, lambda c, key=key, value=value: c.set(key, value))
        same(a, b, lambda c, key=key: c.get(key))
    same(a, b, lambda c: sorted(map(str, c)))
    assert a.disk.compress_level == 6


def test_timeout_when_another_thread_holds_the_write_lock(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "t"), timeout=0.05)
    entered, done = threading.Event(), threading.Event()

    def hold() -> None:
        with c.transact():
            c.set("held", 1)
            entered.set()
            done.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(5)
    try:
        with pytest.raises(dc.Timeout):
            c.set("other", 2)
        with pytest.raises(dc.Timeout):
            c.add("other", 2)
        assert c.get("held") is None  # readers are not blocked (WAL)
        fan = dc.FanoutCache(str(tmp_path / "f"), shards=1, timeout=0.05)
        shard = fan._shards[0]
        shard.set("x", 0)
        lock_done = threading.Event()

        def hold_shard() -> None:
            with shard.transact():
                entered.set()
                lock_done.wait(5)

        entered.clear()
        t2 = threading.Thread(target=hold_shard)
        t2.start()
        entered.wait(5)
        assert fan.set("x", 1) is False
        assert fan.add("y", 1) is False
        assert fan.incr("x") is None
        lock_done.set()
        t2.join()
        assert fan.set("x", 1) is True
    finally:
        done.set()
        t.join()
    assert c.get("held") == 1
    assert c.set("other", 2) is True


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "e"))
    with pytest.raises(TypeError):
        c.set("k", 1, tag=object())
    with pytest.raises(KeyError):
        c.incr("missing", default=None)
    c.set("s", "text")
    with pytest.raises(TypeError):
        c.incr("s")
    with pytest.raises(KeyError):
        del c["missing"]
    assert c.clear() == 1
    with pytest.raises(KeyError):
        c.peekitem()
    assert c.pull() == (None, None)
    assert c.pull(expire_time=True, tag=True) == ((None, None), None, None)


def test_transaction_rolls_back_and_nests(pair: Any) -> None:
    def run(c: Any) -> Any:
        c.set("a", 1)
        with pytest.raises(RuntimeError), c.transact():
            c.set("a", 2)
            with c.transact():
                c.set("b", 3)
            raise RuntimeError
        return (c.get("a"), c.get("b"), len(c))

    same(*pair, run)


def test_warnings_are_returned_not_raised(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "w"))
    os.makedirs(os.path.join(c.directory, "aa", "bb"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = c.check()
    assert [w.category for w in found] == [dc.EmptyDirWarning]
    assert outcome(lambda x: x.check(fix=True), c)[0] == "ok"
    assert not os.path.exists(os.path.join(c.directory, "aa", "bb"))
    assert normalize(1.0) == 1.0


def test_size_limit_holds_while_writes_skip_measuring_the_volume(tmp_path: Path) -> None:
    # A write far below the limit does not measure the volume; culling must still start
    # once the cache grows past it (inline values and value files alike).
    c = dc.Cache(str(tmp_path / "v"), size_limit=400_000, cull_limit=10)
    for i in range(1500):
        c.set(i, b"x" * 1000)
    assert c.volume() < 400_000 + 200_000
    assert 0 < len(c) < 1500
    for i in range(40):
        c.set(("file", i), b"y" * 40_000)
    assert c.volume() < 400_000 + 400_000
    assert c.check() == []


def test_len_counts_every_row_like_diskcache(pair: Any) -> None:
    for c in pair:
        c.reset("cull_limit", 0)
        for i in range(250):
            c.set(i, i, expire=-1 if i % 3 == 0 else None)
        c.delete(1)
        c.pop(2)
    same(*pair, len)
    same(*pair, lambda c: c.reset("count"))
    same(*pair, lambda c: c.expire())
    same(*pair, len)


def test_threads_that_end_leave_no_open_connection(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "threads"))
    c.set("k", 0)

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    def work(i: int) -> None:
        c.set(("t", i), i)
        assert c.get(("t", i)) == i

    before = open_files()
    for batch in range(10):
        threads = [threading.Thread(target=work, args=(batch * 20 + i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # 200 threads each opened a connection (3 files: database, WAL, shared memory): 600
    # descriptors if they stayed open. They are closed as each thread ends (its
    # thread-local storage is torn down just after join() returns, so give the last ones a
    # moment). SQLite itself holds a closed connection's descriptors back while another
    # connection of the process (this thread's, or the checkpoint thread's) has the file
    # locked, and lets them go at that connection's next unlock: so read in the loop, and
    # allow for that backlog (CI once saw 16 held back), far below the 600 of a leak.
    deadline = time.monotonic() + 5
    while open_files() > before + 15 and time.monotonic() < deadline:
        assert c.get("k") == 0
        time.sleep(0.01)
    assert open_files() <= before + 60
    assert len(c) == 201


def _child_uses_inherited_cache(c: Any, q: Any) -> None:
    c.set("child", os.getpid())
    q.put((c.get("parent"), c.incr("n")))


def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "fork"))
    c.set("parent", 1)
    c.incr("n")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_uses_inherited_cache, args=(c, q))
    p.start()
    got = q.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert got == (1, 2)
    assert c.get("child") == p.pid
    assert c.incr("n") == 3
    assert c.check() == []


def test_a_plain_set_over_a_file_value_removes_the_file(tmp_path: Path) -> None:
    """The one-call `set` for the plain `Disk` returns the files it replaced or culled (an
    empty tuple when none): a value file replaced by an inline value is deleted, as in
    diskcache, whether the replacement is `set`, `[]=` or a culling write."""
    ours = dc.Cache(str(tmp_path / "o"))
    theirs = theirs_mod.Cache(str(tmp_path / "t"))

    def files(root: Path) -> int:
        return sum(name.endswith(".val") for _, _, names in os.walk(root) for name in names)

    for c in (ours, theirs):
        c.set("a", b"x" * 70000)
        c["b"] = b"y" * 70000
        c.set("c", b"z" * 70000, expire=0.2)
    assert files(tmp_path / "o") == files(tmp_path / "t") == 3
    time.sleep(0.3)
    for c in (ours, theirs):
        assert c.set("a", b"small") is True
        c["b"] = "small"
        c.set("d", 1)  # culls the expired "c" and its file
    assert files(tmp_path / "o") == files(tmp_path / "t") == 0
    assert ours.get("a") == b"small" and ours["b"] == "small"


def test_writes_alternating_new_and_stored_keys(pair: Any, tmp_path: Path) -> None:
    """A write after a new-key write tries the insert first, one after an overwrite reads
    the old row first (dccore `store_row`): each kind of write after each kind, `set` and
    `add` on live, expired and file-backed entries, gives diskcache's results, rows and
    files, inside and outside transactions."""
    ours, theirs = pair

    def files(c: Any) -> int:
        return sum(n.endswith(".val") for _, _, names in os.walk(c.directory) for n in names)

    steps: list[Callable[[Any], Any]] = [
        lambda c: c.set("n1", 1),  # new after new
        lambda c: c.set("n1", 2),  # stored after new: the insert finds it, then updates
        lambda c: c.set("n2", 3),  # new after stored
        lambda c: c.add("n2", 4),  # live, after new: refused
        lambda c: c.add("n3", 5),  # new after a refused add
        lambda c: c.set("e", 6, expire=-1),
        lambda c: c.add("e", 7),  # expired, after new: replaced
        lambda c: c.set("f", b"x" * 70000),  # a value file
        lambda c: c.set("f", b"small"),  # stored after new: its file goes
        lambda c: c.set(("t", 1), [1, 2]),  # pickled key, new
        lambda c: c.set(("t", 1), {"k": 1}),  # pickled key, stored
        lambda c: c.set(1.5, "a", read=False, tag="t1"),
        lambda c: c.set(1.5, "b", tag="t2"),
    ]
    for step in steps:
        same(ours, theirs, step)
        assert files(ours) == files(theirs)
    for c in pair:
        with pytest.raises(KeyError), c.transact():
            c.set("n9", 9)
            c.set("n1", 10)
            raise KeyError("roll back")
        with c.transact():
            c.set("n8", 8)
            c.add("n8", 0)
            c.set("n2", 11)
    for key in ["n1", "n2", "n3", "n8", "n9", "e", "f", ("t", 1), 1.5]:
        same(ours, theirs, lambda c, k=key: c.get(k, "missing", tag=True))
    same(ours, theirs, lambda c: sorted(map(repr, c)))
    same(ours, theirs, len)


def test_a_policy_added_to_eviction_policy_evicts_as_in_diskcache(tmp_path: Path) -> None:
    # diskcache lets a program add its own policy (SQL) to EVICTION_POLICY. Values are
    # 256 KiB files and the size limit 5.5 of them, so a write that makes six evicts one
    # (cull limit 1): the policy's first victim, here the least read then the smallest key.
    # The entries left after each step say which rows its `cull` picked and what its `get`
    # counted (the database's own pages, a few KiB, never tip the balance).
    policy = {
        "init": "CREATE INDEX IF NOT EXISTS Cache_access_count ON Cache (access_count)",
        "get": "access_count = access_count + 1",
        "cull": "SELECT {fields} FROM Cache WHERE store_time <= {now}"
        " ORDER BY access_count, key LIMIT ?",
    }
    name = "least-read-then-key"
    unit = 256 * 1024
    pair = []
    for module, side in ((dc, "ours"), (theirs_mod, "theirs")):
        module.EVICTION_POLICY[name] = policy  # type: ignore[index]
        cache = module.Cache(str(tmp_path / side), size_limit=unit * 11 // 2, cull_limit=1)
        cache.reset("eviction_policy", name)
        pair.append(cache)
    ours, theirs = pair
    try:
        rng = __import__("random").Random(7)
        evicted = 0
        for step in range(200):
            key = rng.randrange(12)
            if rng.random() < 0.6:
                assert ours.get(key) == theirs.get(key), step
                continue
            before = set(theirs)
            value = bytes([step % 256]) * unit
            if rng.random() < 0.8:
                assert ours.set(key, value) == theirs.set(key, value)
            else:
                assert ours.add(key, value) == theirs.add(key, value)
            assert sorted(ours) == sorted(theirs), step
            evicted += bool(before - set(theirs)) or key not in theirs
        assert evicted > 20 and len(ours) == 5
    finally:
        for module in (dc, theirs_mod):
            del module.EVICTION_POLICY[name]  # type: ignore[attr-defined]


def test_fanout_cache_applies_a_policy_added_to_eviction_policy(tmp_path: Path) -> None:
    # FanoutCache's one-call get and set must not bypass a program's own policy: its `get`
    # SQL counts reads in the shard.
    name = "counted-reads"
    dc.EVICTION_POLICY[name] = {
        "init": None,
        "get": "access_count = access_count + 1",
        "cull": "SELECT {fields} FROM Cache ORDER BY access_count LIMIT ?",
    }
    try:
        cache = dc.FanoutCache(str(tmp_path), shards=2)
        cache.reset("eviction_policy", name)
        assert cache.set("k", "v")
        assert [cache.get("k") for _ in range(3)] == ["v"] * 3
        shard = cache._shard("k")
        assert shard._core.execute("SELECT access_count FROM Cache")[0][0] == 3
    finally:
        del dc.EVICTION_POLICY[name]
