"""Value models: raw values, the 0.1.0 value_class, and every 0.7.0 config."""

import ast
import dataclasses
import subprocess
import sys
from typing import Any, ClassVar, NamedTuple

import pytest
from diskstore import DiskRead, DiskStore, Value
from diskstore.config import (
    BaseConfig,
    DataclassConfig,
    JsonConfig,
    NamedTupleConfig,
    PydanticConfig,
    StructtypeConfig,
)


class Point(NamedTuple):
    x: int
    y: float
    label: str = "origin"


@dataclasses.dataclass
class Item:
    name: str
    qty: int = 0
    ok: bool = True


def look(path: str, sql: str) -> list[tuple]:
    """Rows of `sql`, read by Python's sqlite3 module in another process (in this one,
    closing a second SQLite library's handle on the file would drop the process's POSIX
    locks under diskstore's connections)."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(repr(c.execute(sys.argv[2]).fetchall()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), sql], capture_output=True, text=True, check=True
    )
    return ast.literal_eval(out.stdout.strip())


def columns(path: str, table: str) -> list[tuple[str, str, int]]:
    return [(r[1], r[2], r[3]) for r in look(path, f'PRAGMA table_info("{table}")')]


@pytest.mark.parametrize(
    "value", [0, -(2**63), 2**63 - 1, 1.5, float("inf"), "", "héllo", b"", b"\x00\xff"]
)
def test_raw_values_round_trip_with_their_type(db: str, value: Any) -> None:
    store = DiskStore(db, config=BaseConfig())
    store["k"] = value
    got = store["k"]
    assert got == value and type(got) is type(value)


def test_raw_bool_reads_back_as_int_and_bytearray_as_bytes(db: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    store["t"] = True
    store["b"] = bytearray(b"ab")
    store["m"] = memoryview(b"cd")
    assert store["t"] == 1 and type(store["t"]) is int
    assert store["b"] == b"ab" and store["m"] == b"cd"


def test_raw_refuses_unstorable_values(db: str) -> None:
    store = DiskStore(db, config=BaseConfig())
    with pytest.raises(TypeError, match="None, int, float, str or bytes"):
        store["k"] = [1, 2]
    with pytest.raises(ValueError):
        store["k"] = float("nan")
    with pytest.raises(ValueError):
        store["k"] = None  # the value column is NOT NULL, as in the original
    assert "k" not in store


def test_value_class_01_style(db: str) -> None:
    store = DiskStore(db, value_class=Point)
    store["p"] = Point(1, 2.5, "a")
    assert store["p"] == Point(1, 2.5, "a")
    assert type(store["p"]) is Point
    assert columns(db, "Point") == [
        ("_key", "BLOB", 1),
        ("x", "INTEGER", 1),
        ("y", "REAL", 1),
        ("label", "TEXT", 1),
    ]
    with pytest.raises(ValueError, match="Point"):
        store["q"] = (1, 2.0, "x")


def test_value_class_key_type_and_tablename(db: str) -> None:
    store = DiskStore(db, value_class=Point, tablename="pts", key_type=int)
    assert store.tablename == "pts"
    assert store.add(None, Point(0, 0.0)) == 1
    assert columns(db, "pts")[0] == ("_key", "INTEGER", 1)


def test_readme_example_verbatim(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ds = DiskStore("diskstore.db", value_class=Value)
    ds["key"] = Value("my value")
    assert str(ds["key"]) == "my value"
    assert ds["key"] == Value("my value")


def test_value_conversions() -> None:
    assert int(Value(3)) == 3
    assert float(Value(2.5)) == 2.5
    assert bytes(Value(b"x")) == b"x"
    assert str(Value(b"x")) == "b'x'"
    for fn, v in [(int, "3"), (float, 3), (bytes, "x")]:
        with pytest.raises(ValueError):
            fn(Value(v))
    assert Value._fields == ("value",)
    assert Value._make([1]) == Value(1)


def test_namedtuple_config(db: str) -> None:
    store = DiskStore(db, config=NamedTupleConfig(Point))
    store["p"] = Point(1, 2.0)
    assert store["p"] == Point(1, 2.0, "origin")
    assert store.tablename == "Point"


def test_json_config(db: str) -> None:
    store = DiskStore(db, config=JsonConfig())
    store["j"] = {"a": [1, 2, None], "b": "x"}
    assert store["j"] == {"a": [1, 2, None], "b": "x"}
    assert columns(db, "DiskStore")[1] == ("value", "TEXT", 1)


def test_dataclass_config(db: str) -> None:
    store = DiskStore(db, config=DataclassConfig(Item))
    store["i"] = Item("bolt", 3, False)
    assert store["i"] == Item("bolt", 3, False)
    assert list(store.values()) == [Item("bolt", 3, False)]
    assert columns(db, "Item") == [
        ("_key", "BLOB", 1),
        ("name", "TEXT", 1),
        ("qty", "INTEGER", 1),
        ("ok", "INTEGER", 1),
    ]


def test_pydantic_and_structtype_need_their_models() -> None:
    with pytest.raises(TypeError, match="pydantic"):
        PydanticConfig(Point)
    with pytest.raises(TypeError, match="structtype"):
        StructtypeConfig(Point)


def test_pydantic_config_with_a_duck_typed_model(db: str) -> None:
    class Model:
        def __init__(self, n: int) -> None:
            self.n = n

        def model_dump_json(self) -> str:
            return f'{{"n": {self.n}}}'

        @classmethod
        def model_validate_json(cls, data: str) -> "Model":
            import json

            return cls(json.loads(data)["n"])

    store = DiskStore(db, config=PydanticConfig(Model))
    store["m"] = Model(4)
    assert store["m"].n == 4
    assert store.tablename == "Model"


def test_any_object_with_the_config_protocol(db: str) -> None:
    class Upper:
        tablename = "up"
        key_type = "TEXT"
        timeout = 5.0
        pragmas: ClassVar[dict] = {}
        fields: ClassVar[list] = [("value", "TEXT", None)]
        auto_migrate = True

        def dump_value(self, key: Any, value: Any) -> tuple:
            return (key, value.upper())

        def load_data(self, row: tuple) -> Any:
            return (row[0], row[1])

    store = DiskStore(db, config=Upper())
    store["k"] = "abc"
    assert store["k"] == ("k", "ABC")
    assert store.timeout == 5.0
    assert columns(db, "up") == [("_key", "TEXT", 1), ("value", "TEXT", 0)]


def test_config_as_second_positional_argument(db: str) -> None:
    store = DiskStore(db, JsonConfig())
    store["a"] = [1]
    assert store["a"] == [1]


def test_migration_adds_a_field_with_a_default(db: str) -> None:
    class V1(NamedTuple):
        a: int

    class V2(NamedTuple):
        a: int
        b: str = "new"

    DiskStore(db, value_class=V1, tablename="T")["k"] = V1(1)
    store = DiskStore(db, value_class=V2, tablename="T")
    assert store["k"] == V2(1, "new")


def test_field_named_key_is_refused(db: str) -> None:
    Bad = dataclasses.make_dataclass("Bad", [("_key", int)])
    with pytest.raises(ValueError, match="_key"):
        DiskStore(db, config=DataclassConfig(Bad))


def test_diskread_reads_what_diskstore_wrote(db: str) -> None:
    DiskStore(db, config=DataclassConfig(Item))["x"] = Item("nut")
    reader = DiskRead(db, config=DataclassConfig(Item))
    assert reader["x"] == Item("nut", 0, True)
    assert DiskStore(db, config=DataclassConfig(Item)).get_readonly_instance()["x"] == Item(
        "nut", 0, True
    )


# --- issue 12 item 3: value classes are duck-typed, as in the original ---------------------


@dataclasses.dataclass
class DuckPoint:
    """A dataclass that looks like a NamedTuple: `_fields` and iteration."""

    _fields: ClassVar[tuple[str, ...]] = ("x", "y")
    x: int
    y: int

    def __iter__(self):
        return iter((self.x, self.y))


class Packed:
    """Several attributes in one JSON column, through `_make` and `__iter__`."""

    _fields = ("blob",)
    blob: str  # the column's type

    def __init__(self, a: int, b: list) -> None:
        self.a, self.b = a, b

    def __iter__(self):
        import json

        return iter((json.dumps([self.a, self.b]),))

    @classmethod
    def _make(cls, row):
        import json

        return cls(*json.loads(row[0]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Packed) and (self.a, self.b) == (other.a, other.b)


@pytest.mark.parametrize("style", ["value_class", "config"])
def test_duck_typed_value_classes(db: str, style: str) -> None:
    def open_(cls: type) -> DiskStore:
        if style == "value_class":
            return DiskStore(db, value_class=cls)
        return DiskStore(db, config=NamedTupleConfig(cls))

    points = open_(DuckPoint)
    points["p"] = DuckPoint(1, 2)
    assert points["p"] == DuckPoint(1, 2)  # built back with cls(*row): no _make
    packed = open_(Packed)
    packed["k"] = Packed(3, [1, "two"])
    assert packed["k"] == Packed(3, [1, "two"])
    assert look(db, 'SELECT blob FROM "Packed"') == [('[3, [1, "two"]]',)]
    if style == "value_class":
        # 0.1.0 still type-checks __setitem__ against the class.
        with pytest.raises(ValueError, match="instance of"):
            points["q"] = (1, 2)
    else:
        points["q"] = (5, 6)  # 0.7.0 NamedTupleConfig dumps (key, *value)
        assert points["q"] == DuckPoint(5, 6)
    with pytest.raises(ValueError if style == "value_class" else TypeError):
        points["r"] = 7


def test_config_dump_value_may_derive_the_key(db: str) -> None:
    class KeyFromValue(BaseConfig):
        def dump_value(self, key: Any, value: Any):
            return (value["id"] if key is None else key, value["name"])

        def load_data(self, data: tuple):
            return {"id": data[0], "name": data[1]}

    store = DiskStore(db, config=KeyFromValue(key_type=int))
    assert store.add(None, {"id": 42, "name": "x"}) == 42
    assert store[42] == {"id": 42, "name": "x"}
    assert store.add(None, {"id": 42, "name": "y"}) is None  # exists: nothing added
