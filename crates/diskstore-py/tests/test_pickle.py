"""Pickling: a store pickles as its arguments and reopens the same file."""

from __future__ import annotations

import pickle
from typing import NamedTuple

from diskstore import DiskRead, DiskStore, Value
from diskstore.config import JsonConfig


class Pair(NamedTuple):
    a: int
    b: str


def test_01_store_round_trips(db: str) -> None:
    store = DiskStore(db, value_class=Pair, tablename="pairs", synchronous=2)
    store["k"] = Pair(1, "x")
    clone = pickle.loads(pickle.dumps(store))
    assert isinstance(clone, DiskStore)
    assert clone.tablename == "pairs"
    assert clone["k"] == Pair(1, "x")
    assert clone.__getstate__() == store.__getstate__()


def test_07_store_round_trips(db: str) -> None:
    store = DiskStore(db, config=JsonConfig())
    store["k"] = {"x": 1}
    clone = pickle.loads(pickle.dumps(store))
    assert clone["k"] == {"x": 1}
    assert isinstance(clone.config, JsonConfig)


def test_default_model_and_diskread_round_trip(db: str) -> None:
    store = DiskStore(db)
    store["v"] = Value(1)
    reader = pickle.loads(pickle.dumps(DiskRead(db)))
    assert isinstance(reader, DiskRead) and not isinstance(reader, DiskStore)
    assert reader["v"] == Value(1)
    assert pickle.loads(pickle.dumps(store))["v"] == Value(1)
