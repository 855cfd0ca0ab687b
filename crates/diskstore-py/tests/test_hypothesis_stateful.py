"""Differential state-machine test: random operation sequences on our DiskStore and on a dict
must give identical results, including iteration order.

A dict is the right model for the default (0.7.0, raw scalar) store with untyped keys:
insertion order = rowid order, an overwrite keeps the position, a deleted key re-inserted goes
last, popitem() removes the newest entry, and 1 / 1.0 are one key that keeps its first form.

DISKSTORE_HYPOTHESIS_EXAMPLES raises the number of examples per machine (default 25);
DISKSTORE_HYPOTHESIS_STEPS the steps per example (default 40).  It runs twice: on
DiskStore(path) (the default model, settled by the first write), on
DiskStore(path, config=BaseConfig()) and on DiskStore(path, value_class=Value) (0.1.0 model:
the dict holds the same Value objects).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import diskstore
import hypothesis.strategies as st
from compat_support import apply_ops, orig_python, random_ops, run
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

EXAMPLES = int(os.environ.get("DISKSTORE_HYPOTHESIS_EXAMPLES", "25"))
STEPS = int(os.environ.get("DISKSTORE_HYPOTHESIS_STEPS", "40"))
I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# Small pools so that keys collide often; floats that are whole numbers collide with ints,
# exactly as in a dict.  No NaN and no -0.0 (SQLite does not keep the sign of a REAL zero).
keys = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([0.5, 2.0, -3.25, 1e300, 7.0]),
    st.text(alphabet="ab\x00é😀", max_size=3),
    st.binary(max_size=3),
    I64,
)
values = st.one_of(
    I64,
    st.floats(allow_nan=False).filter(lambda f: f != 0.0 or str(f) == "0.0"),
    st.text(max_size=20),
    st.binary(max_size=20),
)


def same(a, b) -> bool:
    """Equal and of the same type (so 1 vs 1.0 vs True, '' vs b'' are told apart)."""
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b, strict=True)))
    return type(a) is type(b) and a == b


def check(ours, model) -> None:
    assert same(ours, model), f"\nours:  {ours!r}\nmodel: {model!r}"


class StoreVersusDict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="ds-hyp-")
        self.store = self.open(os.path.join(self.dir, "s.db"))
        self.model: dict = {}

    paged_query = True  # query(limit=, offset=) is 0.7.0 API

    @staticmethod
    def open(path: str):
        """No value_class, no config: the default model, settled by the first value."""
        return diskstore.DiskStore(path)

    @staticmethod
    def w(value):
        """How a drawn scalar is given to the store (the 0.1.0 model wraps it in Value)."""
        return value

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _outcome(fn, args: bool):
        try:
            return ("ok", fn())
        except KeyError as e:
            return ("KeyError", e.args if args else ())

    def _both(self, op, args: bool = True):
        """Same result, or both a KeyError (with the same args unless ``args`` is false)."""
        check(self._outcome(lambda: op(self.store), args),
              self._outcome(lambda: op(self.model), args))

    @rule(k=keys, v=values)
    def setitem(self, k, v):
        v = self.w(v)
        self.store[k] = v
        self.model[k] = v

    @rule(k=keys)
    def getitem(self, k):
        self._both(lambda m: m[k])

    @rule(k=keys)
    def delitem(self, k):
        def op(m):
            del m[k]

        self._both(op)

    @rule(k=keys, d=st.none() | values, with_default=st.booleans())
    def pop(self, k, d, with_default):
        d = None if d is None else self.w(d)
        self._both(lambda m: m.pop(k, d) if with_default else m.pop(k))

    @rule()
    def popitem(self):
        # dict says 'popitem(): dictionary is empty', the original a bare KeyError()
        self._both(lambda m: m.popitem(), args=False)

    @rule(k=keys, d=values)
    def setdefault(self, k, d):
        d = self.w(d)
        self._both(lambda m: m.setdefault(k, d))

    @rule(k=keys, d=st.none() | values)
    def get(self, k, d):
        d = None if d is None else self.w(d)
        self._both(lambda m: m.get(k, d))

    @rule(pairs=st.lists(st.tuples(keys, values), max_size=5), form=st.sampled_from(
        ["dict", "pairs", "kwargs"]))
    def update(self, pairs, form):
        pairs = [(k, self.w(v)) for k, v in pairs]
        if form == "dict":
            arg = dict(pairs)
            self.store.update(arg)
            self.model.update(arg)
        elif form == "pairs":
            self.store.update(iter(pairs))
            self.model.update(pairs)
        else:
            kw = {f"kw{k}" if not isinstance(k, str) else f"kw_{k}": v for k, v in pairs}
            self.store.update(**kw)
            self.model.update(**kw)

    @rule(k=keys, v=values)
    def add(self, k, v):
        v = self.w(v)
        got = self.store.add(k, v)
        if k in self.model:
            check(got, None)
        else:
            check(got, k)
            self.model[k] = v

    @rule(k=keys)
    def contains(self, k):
        check(k in self.store, k in self.model)

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def overwrite_existing(self, data):
        k = data.draw(st.sampled_from(list(self.model)))
        v = self.w(data.draw(values))
        self.store[k] = v
        self.model[k] = v

    @rule(pairs=st.lists(st.tuples(keys, values), max_size=4), fail=st.booleans())
    def transaction(self, pairs, fail):
        """Writes in transact() are kept on success and all undone when it raises."""
        pairs = [(k, self.w(v)) for k, v in pairs]
        try:
            with self.store.transact():
                for k, v in pairs:
                    self.store[k] = v
                if fail:
                    raise RuntimeError("rollback")
        except RuntimeError:
            pass
        if not fail:
            self.model.update(pairs)

    @rule(limit=st.integers(0, 6), offset=st.integers(0, 6))
    def query_page(self, limit, offset):
        if self.paged_query:
            got = list(self.store.query(order="rowid", limit=limit, offset=offset))
            check(got, list(self.model.items())[offset:offset + limit])
        else:
            got = list(self.store.query(where="rowid > ?", parameters=(0,), order="rowid DESC"))
            check(got, list(reversed(self.model.items())))

    @rule()
    def clear(self):
        self.store.clear()
        self.model.clear()

    @invariant()
    def same_contents_and_order(self):
        check(len(self.store), len(self.model))
        check(list(self.store), list(self.model))
        check(list(self.store.items()), list(self.model.items()))

    @invariant()
    def same_reversed(self):
        check(list(reversed(self.store)), list(reversed(self.model)))
        check(list(reversed(self.store.values())), list(reversed(self.model.values())))


class StoreVersusDictBaseConfig(StoreVersusDict):
    @staticmethod
    def open(path: str):
        """The same model chosen explicitly with config=BaseConfig()."""
        from diskstore.config import BaseConfig

        return diskstore.DiskStore(path, config=BaseConfig())


class StoreVersusDictV01(StoreVersusDict):
    """The 0.1.0 model: value_class=Value, values are Value NamedTuples."""

    paged_query = False

    @staticmethod
    def open(path: str):
        return diskstore.DiskStore(path, value_class=diskstore.Value)

    @staticmethod
    def w(value):
        return diskstore.Value(value)


SETTINGS = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
    print_blob=True,
)
TestStoreVersusDict = StoreVersusDict.TestCase
TestStoreVersusDict.settings = SETTINGS
TestStoreVersusDictBaseConfig = StoreVersusDictBaseConfig.TestCase
TestStoreVersusDictBaseConfig.settings = SETTINGS
TestStoreVersusDictV01 = StoreVersusDictV01.TestCase
TestStoreVersusDictV01.settings = SETTINGS


REPLAY_SEEDS = int(os.environ.get("DISKSTORE_REPLAY_SEEDS", "12"))
REPLAY_OPS = 60


def test_random_sequences_same_on_ours_original_and_dict(tmp_path):
    """Three-way differential: seeded random operation sequences on a default DiskStore, run by
    ours (in this process), by the original 0.7.0 (subprocess) and on a dict; every result and
    the full item list after every step must agree.  DISKSTORE_REPLAY_SEEDS raises the count."""
    seeds = list(range(REPLAY_SEEDS))
    original = run(orig_python("0.7.0"), "replay", str(tmp_path), ",".join(map(str, seeds)),
                   str(REPLAY_OPS))
    for seed in seeds:
        ops = random_ops(seed, REPLAY_OPS)
        model = apply_ops({}, ops)
        store = diskstore.DiskStore(str(tmp_path / f"ours-{seed}.db"))
        ours = apply_ops(store, ops)
        store.close()
        for step, (o, m, g) in enumerate(zip(original[seed], model, ours, strict=True)):
            assert o == m, f"seed {seed} step {step}: the dict model disagrees with the original"
            assert g == o, f"seed {seed} step {step} {ops[step]}:\nours: {g}\noriginal: {o}"
