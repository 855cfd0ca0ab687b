"""The MutableMapping contract, checked against a dict doing the same operations."""

from __future__ import annotations

import re
from collections import abc

import pytest
from diskstore import DiskRead, DiskStore, Value
from diskstore.config import BaseConfig


@pytest.fixture
def store(db: str) -> DiskStore:
    return DiskStore(db, config=BaseConfig())


def test_isinstance_of_the_abcs(store: DiskStore, db: str) -> None:
    assert isinstance(store, abc.MutableMapping)
    assert isinstance(store, abc.Mapping)
    assert isinstance(store, DiskRead)
    reader = DiskRead(db, config=BaseConfig())
    assert isinstance(reader, abc.Mapping)
    assert not isinstance(reader, abc.MutableMapping)


@pytest.mark.parametrize("name", sorted(set(dir(abc.MutableMapping)) - set(dir(object))))
def test_every_mutable_mapping_name_resolves(name: str) -> None:
    attr = getattr(DiskStore, name)
    assert not getattr(attr, "__isabstractmethod__", False), name


@pytest.mark.parametrize("name", sorted(set(dir(abc.Mapping)) - set(dir(object))))
def test_every_mapping_name_resolves_on_diskread(name: str) -> None:
    attr = getattr(DiskRead, name)
    assert not getattr(attr, "__isabstractmethod__", False), name


def test_diskread_has_no_write_methods() -> None:
    for name in ("__setitem__", "__delitem__", "pop", "popitem", "update", "clear", "add"):
        assert not hasattr(DiskRead, name), name


def test_basic_operations_match_a_dict(store: DiskStore) -> None:
    ref: dict = {}
    for i, k in enumerate(["a", b"b", 3, 4.5, "é", -7]):
        store[k] = i
        ref[k] = i
    store["a"] = "changed"
    ref["a"] = "changed"
    del store[3]
    del ref[3]
    assert len(store) == len(ref)
    assert list(store) == list(ref)
    assert list(store.keys()) == list(ref.keys())
    assert list(store.values()) == list(ref.values())
    assert list(store.items()) == list(ref.items())
    assert list(reversed(store)) == list(reversed(ref))
    assert list(reversed(store.keys())) == list(reversed(ref.keys()))
    assert list(reversed(store.values())) == list(reversed(ref.values()))
    assert list(reversed(store.items())) == list(reversed(ref.items()))
    assert store == ref
    assert store != {**ref, "extra": 1}
    assert dict(store) == ref


def test_overwrite_keeps_position(store: DiskStore) -> None:
    store["x"] = 1
    store["y"] = 2
    store["x"] = 3
    assert list(store.items()) == [("x", 3), ("y", 2)]


def test_missing_key_raises_keyerror_with_the_key(store: DiskStore) -> None:
    with pytest.raises(KeyError) as e:
        store["nope"]
    assert e.value.args == ("nope",)
    with pytest.raises(KeyError):
        del store["nope"]


def test_get_and_contains(store: DiskStore) -> None:
    store["k"] = b"v"
    assert store.get("k") == b"v"
    assert store.get("missing") is None
    assert store.get("missing", 5) == 5
    assert "k" in store
    assert "missing" not in store
    assert [1, 2] not in store  # an unstorable key is simply not contained


def test_one_two_and_true_are_one_key(store: DiskStore) -> None:
    store[1] = "int"
    store[1.0] = "float"
    store[True] = "bool"
    assert len(store) == 1
    assert store[1] == "bool"
    assert 1.0 in store and True in store
    ref = {1: "int"}
    ref[1.0] = "float"
    ref[True] = "bool"
    assert list(store) == list(ref)  # the first key object stays, as in a dict


@pytest.mark.parametrize("bad", [[1], (1,), {"a": 1}, object()])
def test_other_key_types_are_a_typeerror_naming_the_accepted_ones(
    store: DiskStore, bad: object
) -> None:
    with pytest.raises(TypeError, match="int, float, str or bytes"):
        store[bad] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="int, float, str or bytes"):
        store[bad]  # type: ignore[index]


def test_none_key_is_never_found_and_only_integer_keys_assign_one(
    store: DiskStore, tmp_path
) -> None:
    import sqlite3

    store["a"] = 1
    assert store.get(None, "absent") == "absent"
    assert None not in store
    with pytest.raises(KeyError):
        store[None]
    with pytest.raises(KeyError):
        del store[None]
    assert store.pop(None, "d") == "d"
    # A BLOB key column is NOT NULL and assigns nothing, as SQLite says.
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        store[None] = 2
    with pytest.raises(ValueError, match="NOT NULL"):
        store.update([(None, 2)])
    assert dict(store.items()) == {"a": 1}
    # An INTEGER key column gives None the next rowid (0.1.0 documents it).
    ints = DiskStore(tmp_path / "ints.db", config=BaseConfig(key_type=int))
    ints[5] = "five"
    ints[None] = "six"
    ints.update([(None, "seven"), (None, "eight")])
    assert ints.add(None, "nine") == 9
    assert dict(ints.items()) == {5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def test_nan_key_is_a_valueerror(store: DiskStore) -> None:
    with pytest.raises(ValueError):
        store[float("nan")] = 1


def test_big_int_key_overflows(store: DiskStore) -> None:
    with pytest.raises(OverflowError):
        store[2**70] = 1


def test_pop(store: DiskStore) -> None:
    store["a"] = 1
    assert store.pop("a") == 1
    assert "a" not in store
    with pytest.raises(KeyError):
        store.pop("a")
    assert store.pop("a", None) is None
    assert store.pop("a", 7) == 7


def test_popitem_takes_the_newest(store: DiskStore) -> None:
    store.update([("a", 1), ("b", 2)])
    assert store.popitem() == ("b", 2)
    assert store.popitem() == ("a", 1)
    with pytest.raises(KeyError):
        store.popitem()


def test_setdefault(store: DiskStore) -> None:
    assert store.setdefault("a", 1) == 1
    assert store.setdefault("a", 2) == 1
    assert store["a"] == 1
    assert store.setdefault("b") is None
    assert "b" not in store  # None is not stored (as in the original)


def test_update_accepts_every_form(store: DiskStore) -> None:
    class KeysOnly:
        def keys(self) -> list[str]:
            return ["k1", "k2"]

        def __getitem__(self, k: str) -> str:
            return k.upper()

    store.update({"a": 1})
    store.update(KeysOnly())
    store.update([("p", 1), ("q", 2)])
    store.update(kw=3)
    store.update({"a": 9}, z=0)
    assert dict(store) == {"a": 9, "k1": "K1", "k2": "K2", "p": 1, "q": 2, "kw": 3, "z": 0}


def test_update_unpacks_pairs_as_a_dict_does(store: DiskStore) -> None:
    pairs = [("a", 1), ["b", 2], "cd", iter(("e", 5))]
    store.update(pairs, f=6)
    assert dict(store) == {"a": 1, "b": 2, "c": "d", "e": 5, "f": 6}
    assert len(pairs) == 4  # the caller's list is not extended with the keywords
    for bad, error, text in [
        ([1], TypeError, "cannot unpack non-iterable int object"),
        ([("x", 1, 2)], ValueError, "too many values to unpack"),
        ([("x",)], ValueError, "not enough values to unpack (expected 2, got 1)"),
    ]:
        with pytest.raises(error, match=re.escape(text)):
            store.update([("ok", 0), *bad])
    assert "ok" not in store and "x" not in store


def test_update_is_one_transaction(store: DiskStore) -> None:
    store["keep"] = 1
    with pytest.raises(TypeError):
        store.update([("a", 1), ("b", object())])
    assert dict(store) == {"keep": 1}


def test_clear(store: DiskStore) -> None:
    store.update({i: i for i in range(100)})
    store.clear()
    assert len(store) == 0
    assert list(store) == []


def test_iteration_spans_many_pages(store: DiskStore) -> None:
    n = 1000
    store.update((i, str(i)) for i in range(n))
    assert list(store) == list(range(n))
    assert list(reversed(store)) == list(reversed(range(n)))
    assert sum(1 for _ in store.items()) == n


def test_deleting_while_iterating_sees_each_key_once(store: DiskStore) -> None:
    n = 700  # several pages of keys
    store.update((i, i) for i in range(n))
    seen = []
    for k in store:
        seen.append(k)
        del store[k]
    assert seen == list(range(n))
    assert len(store) == 0


@pytest.mark.parametrize("view", ["keys", "values", "items"])
def test_adding_while_iterating_ends_and_skips_the_new_keys(store: DiskStore, view: str) -> None:
    # Each key read adds a new one; a dict raises here, a store must at least stop.
    n = 600  # several pages
    store.update((i, i) for i in range(n))
    seen = []
    for item in getattr(store, view)():
        seen.append(item)
        store[n + len(seen)] = 0
    expected = {"keys": list(range(n)), "values": list(range(n))}
    assert seen == expected.get(view, [(i, i) for i in range(n)])
    assert len(store) == 2 * n


def test_reversed_iteration_skips_keys_added_meanwhile(store: DiskStore) -> None:
    store.update((i, i) for i in range(300))
    seen = []
    for k in reversed(store):
        seen.append(k)
        store[1000 + k] = 0
    assert seen == list(reversed(range(300)))


def test_views_behave_like_dict_views(store: DiskStore) -> None:
    store.update({"a": 1, "b": 2})
    keys = store.keys()
    assert "a" in keys and "z" not in keys
    assert len(keys) == 2
    assert keys & {"a", "x"} == {"a"}
    assert ("a", 1) in store.items()
    assert ("a", 2) not in store.items()
    assert 2 in store.values()
    store["c"] = 3
    assert len(keys) == 3  # views are live


def test_add_inserts_only_new_keys(db: str) -> None:
    store = DiskStore(db, config=BaseConfig(key_type=int))
    assert store.add(None, "first") == 1
    assert store.add(None, "second") == 2
    assert store.add(2, "again") is None
    assert store.add(10, "ten") == 10
    assert store[2] == "second"


def test_add_none_needs_integer_keys(store: DiskStore) -> None:
    with pytest.raises(Exception, match="INTEGER"):
        store.add(None, "x")


def test_context_manager_returns_the_store(db: str) -> None:
    with DiskStore(db) as s:
        s["a"] = 1
        assert s["a"] == 1
    assert s["a"] == 1  # reopens after close


def test_query(store: DiskStore) -> None:
    store.update({f"k{i}": i for i in range(10)})
    got = list(store.query("value >= ?", [5], "value DESC", limit=3, offset=1))
    assert got == [("k8", 8), ("k7", 7), ("k6", 6)]
    assert list(store.query()) == list(store.items())
    named = store.query("value BETWEEN :lo AND :hi", {"lo": 2, "hi": 4}, limit=2)
    assert list(named) == [("k2", 2), ("k3", 3)]


def test_popitem_on_empty_store_is_a_bare_keyerror(store: DiskStore) -> None:
    with pytest.raises(KeyError) as e:
        store.popitem()
    assert e.value.args == ()


def test_check_is_empty_when_healthy(store: DiskStore) -> None:
    store["a"] = 1
    assert store.check() == []
    assert store.check(vacuum=True) == []


def test_close_all_counts_connections(store: DiskStore) -> None:
    store["a"] = 1
    assert store.close_all() >= 1
    assert store["a"] == 1
    assert store.close_all() == 1


# --- issue 11 item 9 / issue 12 items 4 and 5 -----------------------------------------------


@pytest.mark.parametrize("key", [2**64, -(2**70), float("nan"), "\ud800", None, [1], {}])
def test_in_is_false_for_keys_that_cannot_be_stored(store: DiskStore, key: object) -> None:
    store["a"] = 1
    assert (key in store) is False


def test_a_real_keyed_store_refuses_ints_it_would_round(tmp_path) -> None:
    for store in (
        DiskStore(tmp_path / "a.db", config=BaseConfig(key_type=float)),
        DiskStore(tmp_path / "b.db", key_type=float),
    ):
        value: object = 1 if store.config is not None else Value(1)
        store[2**53] = value  # exact
        store[3] = value
        for bad in (2**53 + 1, 2**63 - 1, -(2**53) - 1):
            with pytest.raises(ValueError, match="not exactly representable"):
                store[bad] = value
            with pytest.raises(ValueError, match="not exactly representable"):
                store.add(bad, value)
            assert bad not in store and store.get(bad) is None
            with pytest.raises(KeyError):
                del store[bad]
        assert sorted(store) == [3.0, float(2**53)]
        assert all(type(k) is float for k in store)


def test_integer_keys_follow_sqlite_affinity(tmp_path) -> None:
    store = DiskStore(tmp_path / "i.db", config=BaseConfig(key_type=int))
    store[1] = "one"
    for same in ("1", 1.0, "1.0", True):
        assert store[same] == "one" and same in store
    store["2"] = "two"
    store[3.0] = "three"
    assert list(store.items()) == [(1, "one"), (2, "two"), (3, "three")]
    assert 1.5 not in store and "abc" not in store
    assert store.add("4", "four") == 4  # the key as stored, as RETURNING _key gives it
    assert store.add("4", "again") is None
    with pytest.raises(ValueError, match="datatype mismatch"):
        store[1.5] = "x"


def test_query_limit_minus_one_is_no_limit(store: DiskStore) -> None:
    store.update((k, k) for k in "abcde")
    assert [k for k, _ in store.query(limit=-1, offset=2)] == ["c", "d", "e"]
    assert [k for k, _ in store.query(offset=3)] == ["d", "e"]
    assert list(store.query(limit=-1, offset=100)) == []
    assert [k for k, _ in store.query(limit=2, offset=-5)] == ["a", "b"]
    assert [k for k, _ in store.query(limit=2.9)] == ["a", "b"]  # int(), as the original


def test_query_parameters_as_a_string_are_refused(store: DiskStore) -> None:
    store["a"] = 1
    with pytest.raises(TypeError, match="not a string"):
        list(store.query(where="_key IN (?, ?)", parameters="ab"))
    assert list(store.query(where="_key IN (?, ?)", parameters=["a", "b"])) == [("a", 1)]


class _Unreadable(BaseConfig):
    """A config whose values cannot be loaded (a model that changed under the file)."""

    def load_data(self, data: tuple) -> object:
        raise ValueError("cannot read this row")


@pytest.mark.parametrize("inside_transact", [False, True])
def test_a_pop_whose_value_fails_to_load_changes_nothing(tmp_path, inside_transact) -> None:
    import contextlib

    path = tmp_path / "s.db"
    plain = DiskStore(path, config=BaseConfig())
    plain.update([("k", "precious"), ("j", "x")])
    strict = DiskStore(path, config=_Unreadable())
    with strict.transact() if inside_transact else contextlib.nullcontext():
        strict["n"] = "new"  # part of the transaction when there is one
        with pytest.raises(ValueError, match="cannot read"):
            strict.pop("k")
        with pytest.raises(ValueError, match="cannot read"):
            strict.popitem()
        assert strict.pop("absent", "d") == "d"
    assert dict(plain.items()) == {"k": "precious", "j": "x", "n": "new"}
