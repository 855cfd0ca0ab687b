"""diskstore.diskcache's Deque, Index and FanoutCache against python-diskcache 5.6.3: the
same operation sequences on both (hypothesis state machines), results compared; then
sub-collections, pickling and processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import diskcache as theirs_mod
import hypothesis.strategies as st
import pytest
from diskcache_support import same
from diskstore import diskcache as dc
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

EXAMPLES = int(os.environ.get("DISKSTORE_HYPOTHESIS_EXAMPLES", "25"))
STEPS = int(os.environ.get("DISKSTORE_HYPOTHESIS_STEPS", "40"))
PHASES = [
    p for p in Phase if not (os.environ.get("DISKSTORE_HYPOTHESIS_NO_SHRINK") and p == Phase.shrink)
]
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, phases=PHASES)

values = st.one_of(st.integers(-3, 3), st.sampled_from(["a", b"b", None, (1, 2), 2.5]))
keys = st.one_of(st.integers(-2, 5), st.sampled_from(["a", "b", b"c", (1,), 1.5]))


class _Pair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dirs = [tempfile.mkdtemp(), tempfile.mkdtemp()]

    def teardown(self) -> None:
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def both(self, fn: Any) -> Any:
        return same(self.ours, self.theirs, fn)


class DequeMachine(_Pair):
    """Deque operations, with and without maxlen."""

    def __init__(self) -> None:
        super().__init__()
        self.ours = dc.Deque(directory=self.dirs[0])
        self.theirs = theirs_mod.Deque(directory=self.dirs[1])

    @rule(value=values)
    def append(self, value: Any) -> None:
        self.both(lambda d: d.append(value))

    @rule(value=values)
    def appendleft(self, value: Any) -> None:
        self.both(lambda d: d.appendleft(value))

    @rule()
    def pop(self) -> None:
        self.both(lambda d: d.pop())

    @rule()
    def popleft(self) -> None:
        self.both(lambda d: d.popleft())

    @rule()
    def peeks(self) -> None:
        self.both(lambda d: d.peek())
        self.both(lambda d: d.peekleft())

    @rule(steps=st.integers(-4, 4))
    def rotate(self, steps: int) -> None:
        self.both(lambda d: d.rotate(steps))

    @rule(index=st.integers(-4, 4), value=values)
    def index_ops(self, index: int, value: Any) -> None:
        self.both(lambda d: d[index])
        self.both(lambda d: d.__setitem__(index, value))

    @rule(index=st.integers(-4, 4))
    def delete(self, index: int) -> None:
        self.both(lambda d: d.__delitem__(index))

    @rule(value=values)
    def remove_count(self, value: Any) -> None:
        self.both(lambda d: d.count(value))
        self.both(lambda d: d.remove(value))

    @rule(items=st.lists(values, max_size=3))
    def extend(self, items: list[Any]) -> None:
        self.both(lambda d: d.extend(items))
        self.both(lambda d: d.extendleft(items))

    @rule(maxlen=st.sampled_from([None, 0, 2, 5]))
    def set_maxlen(self, maxlen: Any) -> None:
        limit = float("inf") if maxlen is None else maxlen
        self.both(lambda d: setattr(d, "maxlen", limit))

    @rule()
    def reverse(self) -> None:
        self.both(lambda d: d.reverse())

    @rule(other=st.lists(values, max_size=3))
    def compare(self, other: list[Any]) -> None:
        for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
            self.both(lambda d, op=op: getattr(d, op)(other))

    @rule()
    def clear(self) -> None:
        self.both(lambda d: d.clear())

    @invariant()
    def same_contents(self) -> None:
        self.both(list)
        self.both(lambda d: list(reversed(d)))
        self.both(len)


DequeMachine.TestCase.settings = SETTINGS
TestDequeMachine = DequeMachine.TestCase


class IndexMachine(_Pair):
    """Index operations, compared with diskcache's and with a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.ours = dc.Index(self.dirs[0])
        self.theirs = theirs_mod.Index(self.dirs[1])

    @rule(key=keys, value=values)
    def setitem(self, key: Any, value: Any) -> None:
        self.both(lambda ix: ix.__setitem__(key, value))

    @rule(key=keys)
    def getitem(self, key: Any) -> None:
        self.both(lambda ix: ix[key])
        self.both(lambda ix: key in ix)
        self.both(lambda ix: ix.get(key, "D"))

    @rule(key=keys)
    def delitem(self, key: Any) -> None:
        self.both(lambda ix: ix.__delitem__(key))

    @rule(key=keys, value=values)
    def setdefault(self, key: Any, value: Any) -> None:
        self.both(lambda ix: ix.setdefault(key, value))

    @rule(key=keys)
    def pop(self, key: Any) -> None:
        self.both(lambda ix: ix.pop(key))
        self.both(lambda ix: ix.pop(key, "D"))

    @rule(last=st.booleans())
    def popitem_peekitem(self, last: bool) -> None:
        self.both(lambda ix: ix.peekitem(last))
        self.both(lambda ix: ix.popitem(last))

    @rule(
        value=values, prefix=st.sampled_from([None, "p"]), side=st.sampled_from(["back", "front"])
    )
    def push_pull(self, value: Any, prefix: Any, side: str) -> None:
        self.both(lambda ix: ix.push(value, prefix, side))
        self.both(lambda ix: ix.pull(prefix, side=side))

    @rule(items=st.dictionaries(keys, values, max_size=3))
    def update(self, items: dict[Any, Any]) -> None:
        self.both(lambda ix: ix.update(items))
        self.both(lambda ix: ix == items)
        self.both(lambda ix: ix != OrderedDict(items))

    @rule()
    def clear(self) -> None:
        self.both(lambda ix: ix.clear())

    @invariant()
    def same_contents(self) -> None:
        self.both(lambda ix: list(ix.items()))
        self.both(lambda ix: list(reversed(ix)))
        self.both(len)
        self.both(lambda ix: ix == dict(ix.items()))


IndexMachine.TestCase.settings = SETTINGS
TestIndexMachine = IndexMachine.TestCase


class FanoutMachine(_Pair):
    """FanoutCache over 3 shards: the same key lands in the same shard on both."""

    def __init__(self) -> None:
        super().__init__()
        self.ours = dc.FanoutCache(self.dirs[0], shards=3)
        self.theirs = theirs_mod.FanoutCache(self.dirs[1], shards=3)

    @rule(
        key=keys,
        value=values,
        expire=st.sampled_from([None, -1, 100]),
        tag=st.sampled_from([None, "t"]),
    )
    def set_add(self, key: Any, value: Any, expire: Any, tag: Any) -> None:
        self.both(lambda c: c.set(key, value, expire=expire, tag=tag))
        self.both(lambda c: c.add(key, value))

    @rule(key=keys)
    def reads(self, key: Any) -> None:
        self.both(lambda c: c.get(key))
        self.both(lambda c: c.get(key, "D"))
        self.both(lambda c: c.get(key, "D", tag=True))
        self.both(lambda c: key in c)
        self.both(lambda c: c[key])

    @rule(key=keys)
    def writes(self, key: Any) -> None:
        self.both(lambda c: c.incr(key))
        self.both(lambda c: c.touch(key, 100))
        self.both(lambda c: c.pop(key))
        self.both(lambda c: c.delete(key))

    @rule(tag=st.sampled_from([None, "t"]))
    def bulk(self, tag: Any) -> None:
        self.both(lambda c: c.evict(tag))
        self.both(lambda c: c.expire())
        self.both(lambda c: c.cull())

    @rule()
    def clear(self) -> None:
        self.both(lambda c: c.clear())

    @invariant()
    def same_contents(self) -> None:
        self.both(len)
        self.both(lambda c: list(c))
        self.both(lambda c: list(reversed(c)))
        self.both(lambda c: c.stats())


FanoutMachine.TestCase.settings = SETTINGS
TestFanoutMachine = FanoutMachine.TestCase


# -- scenarios ---------------------------------------------------------------------------


def test_sub_collections_live_in_sub_directories(tmp_path: Path) -> None:
    pair = (dc.FanoutCache(str(tmp_path / "o")), theirs_mod.FanoutCache(str(tmp_path / "t")))
    for fc in pair:
        fc.cache("a/b").set("k", 1)
        fc.deque("q").extend([1, 2, 3])
        fc.index("i")["x"] = "y"
    for name in ("cache/a/b", "deque/q", "index/i"):
        assert os.path.isdir(tmp_path / "o" / name)
    same(*pair, lambda fc: fc.cache("a/b").get("k"))
    same(*pair, lambda fc: list(fc.deque("q")))
    same(*pair, lambda fc: dict(fc.index("i")))
    same(*pair, lambda fc: fc.deque("q") is fc.deque("q"))
    assert dc.FanoutCache(str(tmp_path / "o")).deque("q").popleft() == 1


def test_pickling_reopens(tmp_path: Path) -> None:
    q = dc.Deque([1, 2], directory=str(tmp_path / "q"), maxlen=5)
    q2 = pickle.loads(pickle.dumps(q))
    assert list(q2) == [1, 2] and q2.maxlen == 5
    ix = dc.Index(str(tmp_path / "i"), {"a": 1})
    assert dict(pickle.loads(pickle.dumps(ix))) == {"a": 1}
    fc = dc.FanoutCache(str(tmp_path / "f"), shards=4)
    fc["k"] = "v"
    fc2 = pickle.loads(pickle.dumps(fc))
    assert fc2["k"] == "v" and len(fc2._shards) == 4


def test_fromcache_and_memoize(tmp_path: Path) -> None:
    c = dc.Cache(str(tmp_path / "c"))
    q = dc.Deque.fromcache(c, [1, 2, 3], maxlen=2)
    assert list(q) == [2, 3] and q.cache is c
    ix = dc.Index.fromcache(dc.Cache(str(tmp_path / "i")), a=1)
    calls = []

    @ix.memoize()
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert square(3) == 9 and square(3) == 9 and calls == [3]
    assert dc.Index(str(tmp_path / "i"))["a"] == 1
    with ix.transact(), q.transact():
        ix["b"] = 2


def _append_many(directory: str, start: int) -> None:
    q = dc.Deque(directory=directory)
    for i in range(start, start + 50):
        q.append(i)


def test_deque_appends_from_processes_are_all_kept(tmp_path: Path) -> None:
    d = str(tmp_path / "mp")
    dc.Deque(directory=d)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(d, n * 1000)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    got = list(dc.Deque(directory=d))
    assert sorted(got) == sorted(n * 1000 + i for n in range(3) for i in range(50))


class _LengthHashDisk(theirs_mod.Disk):
    """A Disk with its own hash (the fanout's one-call get is only for the plain Disk)."""

    def hash(self, key: Any) -> int:
        return len(str(key))


class _OurLengthHashDisk(dc.Disk):
    def hash(self, key: Any) -> int:
        return len(str(key))


@pytest.mark.parametrize("disk", ["plain", "custom", "json"])
def test_fanout_get_on_every_value_kind(tmp_path: Path, disk: str) -> None:
    """`FanoutCache.get` (one native call for the plain `Disk` and `str` keys) against
    diskcache: values stored as they are, pickled, as files, a file that vanished, keys
    that are not `str`, statistics counted once per get, and `Disk`s that take the
    general path."""
    kinds = {
        "plain": (dc.Disk, theirs_mod.Disk),
        "custom": (_OurLengthHashDisk, _LengthHashDisk),
        "json": (dc.JSONDisk, theirs_mod.JSONDisk),
    }
    ours_disk, theirs_disk = kinds[disk]
    ours = dc.FanoutCache(str(tmp_path / "o"), shards=3, disk=ours_disk, statistics=1)
    theirs = theirs_mod.FanoutCache(str(tmp_path / "t"), shards=3, disk=theirs_disk, statistics=1)
    big = b"x" * 70000
    items = {
        "raw": b"bytes",
        "text": "text",
        "int": 7,
        "float": 2.5,
        "list": [1, 2],
        "big": big,
        "bigtext": "y" * 70000,
        7: "int key",
        b"k": "bytes key",
        ("t", 1): "tuple key",
        "expired": "gone",
    }
    for key, value in items.items():
        expire = -1 if key == "expired" else None
        same(ours, theirs, lambda c, k=key, v=value, e=expire: c.set(k, v, expire=e))
    for key in [*items, "missing", 8, b"nope"]:
        same(ours, theirs, lambda c, k=key: c.get(k))
        same(ours, theirs, lambda c, k=key: c.get(k, "D"))
        same(ours, theirs, lambda c, k=key: c.get(k, "D", expire_time=True, tag=True))
    same(ours, theirs, lambda c: c.stats())
    # Value files removed behind the cache's back: a get returns the default.
    if disk == "plain":
        files = [
            os.path.join(root, name)
            for root, _, names in os.walk(str(tmp_path / "o"))
            for name in names
            if name.endswith(".val")
        ]
        assert len(files) == 2
        for name in files:
            os.remove(name)
        assert ours.get("big", "D") == "D"
        assert ours.get("bigtext") is None
    ours.close()
    theirs.close()


def _value_files(directory: Path) -> list[str]:
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory)
        for name in names
        if name.endswith(".val")
    )


@pytest.mark.parametrize("disk", ["plain", "json"])
def test_deque_ends_on_every_value_kind(tmp_path: Path, disk: str) -> None:
    """`Deque`'s pops and peeks (one native call; the value itself for the plain `Disk`)
    against diskcache: values stored as they are, pickled, as files, expired entries met
    on the way (removed with their files), a value file that vanished (skipped), and a
    `Disk` that decodes what it stored."""
    ours_disk, theirs_disk = (
        (dc.Disk, theirs_mod.Disk) if disk == "plain" else (dc.JSONDisk, theirs_mod.JSONDisk)
    )
    ours_cache = dc.Cache(str(tmp_path / "o"), disk=ours_disk)
    theirs_cache = theirs_mod.Cache(str(tmp_path / "t"), disk=theirs_disk)
    pair = (dc.Deque.fromcache(ours_cache), theirs_mod.Deque.fromcache(theirs_cache))
    big = "x" * 70000
    plan = [
        ("live", "text"),
        ("expired", "old"),
        ("live", 5),
        ("expired", big),
        ("live", [1, 2]),
        ("live", big),
        ("live", 2.5),
        ("expired", big + "y"),
    ]
    if disk == "plain":
        plan += [("live", b"raw"), ("live", b"b" * 70000)]
    for kind, value in plan:
        if kind == "live":
            same(*pair, lambda q, v=value: q.append(v))
        else:
            same(*pair, lambda q, v=value: q.cache.push(v, expire=-1))
    same(*pair, lambda q: q.peekleft())
    same(*pair, lambda q: q.peek())
    same(*pair, len)
    steps = [lambda q: q.popleft(), lambda q: q.pop(), lambda q: q.peekleft(), lambda q: q.peek()]
    for i in range(2 * len(plan)):
        same(*pair, steps[i % len(steps)])
    same(*pair, len)
    assert _value_files(tmp_path / "o") == []
    assert len(_value_files(tmp_path / "t")) == 0
    # A value file that vanished: the pop moves on to the next value, as diskcache's.
    for q in pair:
        q.append(big)
        q.append("after")
    for name in _value_files(tmp_path / "o") + _value_files(tmp_path / "t"):
        os.remove(name)
    same(*pair, lambda q: q.popleft())
    same(*pair, len)
    ours_cache.close()
    theirs_cache.close()
