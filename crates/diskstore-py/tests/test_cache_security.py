"""Signed pickles: with a secret, a row changed by someone without the secret is refused,
never unpickled."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import diskstore
import pytest
from diskstore import DiskCache

SECRET = b"correct horse battery staple"


class Boom:
    """Unpickling this would run code (here: raise); a refused row never gets that far."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('unpickled attacker code')",))


# The raw reads and writes go through Python's sqlite3 module in another process: in this
# process it would not see our connections' locks (docs/design.md, "Python's sqlite3
# module"), and closing its connection could delete the log under ours.
_RAW = """
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
if sys.argv[2] == "read":
    rows = con.execute('SELECT _key, value, kind FROM "Cache"').fetchall()
    print(json.dumps([[k if not isinstance(k, bytes) else {"b": k.hex()}, v.hex(), n]
                      for k, v, n in rows]))
else:
    key = json.loads(sys.argv[3])
    key = bytes.fromhex(key["b"]) if isinstance(key, dict) else key
    sql = sys.argv[2]
    con.execute(sql, [bytes.fromhex(sys.argv[4]), int(sys.argv[5]), key][: sql.count("?")])
    con.commit()
con.close()
"""


def _raw(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _RAW, *args], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(path: str) -> list[tuple[object, bytes, int]]:
    out = []
    for k, v, n in json.loads(_raw(path, "read")):
        out.append((bytes.fromhex(k["b"]) if isinstance(k, dict) else k, bytes.fromhex(v), n))
    return out


def write_row(path: str, key: object, value: bytes, kind: int) -> None:
    k = {"b": key.hex()} if isinstance(key, bytes) else key
    sql = 'UPDATE "Cache" SET value = ?, kind = ? WHERE _key = ?'
    _raw(path, sql, json.dumps(k), value.hex(), str(kind))


def set_all_keys(path: str, key: bytes) -> None:
    _raw(path, 'UPDATE "Cache" SET _key = ?', json.dumps(None), key.hex(), "0")


def entry_binding(table: str, key: str) -> bytes:
    """What a value's tag covers before the pickle (docs/cache.md), for a text key."""

    def sized(b: bytes) -> bytes:
        return struct.pack("<Q", len(b)) + b

    return b"diskstore cache entry v1\0" + sized(table.encode()) + b"t" + sized(key.encode())


def test_signed_values_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c["k"] = {"a": [1, 2]}
    assert c["k"] == {"a": [1, 2]}
    ((_, value, kind),) = rows(path)
    assert kind == 3
    tag, payload = value[:32], value[32:]
    expected = hmac.digest(SECRET, entry_binding("Cache", "k") + payload, hashlib.sha256)
    assert hmac.compare_digest(tag, expected)
    assert pickle.loads(payload) == {"a": [1, 2]}


def test_a_signed_value_moved_to_another_key_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, default_expiration=0, secret=SECRET)
    c["alice"] = {"role": "user"}
    c["root"] = {"role": "admin"}
    stolen = {k: (v, kind) for k, v, kind in rows(path)}["root"]
    write_row(path, "alice", *stolen)
    with pytest.raises(diskstore.DecodeError, match="HMAC"):
        c.get("alice")
    assert c["root"] == {"role": "admin"}


def test_a_value_signed_without_its_key_is_still_read(tmp_path: Path) -> None:
    """Rows written before the tag covered the key (kind 2: a tag of the pickle alone)."""
    path = str(tmp_path / "c.db")
    c = DiskCache(path, default_expiration=0, secret=SECRET)
    c["k"] = ["placeholder"]
    payload = pickle.dumps(["old", "format"])
    write_row(path, "k", hmac.digest(SECRET, payload, hashlib.sha256) + payload, 2)
    assert c["k"] == ["old", "format"]
    write_row(path, "k", b"\x00" * 32 + payload, 2)
    with pytest.raises(diskstore.DecodeError, match="HMAC"):
        c["k"]


def test_equal_keys_of_other_types_find_a_signed_value(tmp_path: Path) -> None:
    """1, 1.0 and True are one key (as in a dict and in SQLite), and so are 0.0 and -0.0:
    the tag binds the key as SQLite compares it."""
    c = DiskCache(str(tmp_path / "c.db"), default_expiration=0, secret=SECRET)
    c[1.0] = ["one"]
    assert c[1] == ["one"]
    assert c[True] == ["one"]
    c[-0.0] = ["zero"]
    assert c[0.0] == ["zero"]
    assert c[0] == ["zero"]
    c[2.5] = ["x"]
    assert c[2.5] == ["x"]


def test_a_tampered_signed_row_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c["k"] = ["harmless"]
    ((_, value, kind),) = rows(path)
    evil = pickle.dumps(Boom())
    # Keep the old tag, swap the payload: the tag no longer matches.
    write_row(path, "k", value[:32] + evil, kind)
    with pytest.raises(diskstore.DecodeError, match="HMAC"):
        c["k"]
    with pytest.raises(diskstore.DecodeError):
        c.get("k")


def test_an_unsigned_pickle_is_refused_when_a_secret_is_set(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c["k"] = ["harmless"]
    write_row(path, "k", pickle.dumps(Boom()), 1)
    with pytest.raises(diskstore.DecodeError, match="unsigned"):
        c["k"]


def test_a_row_signed_with_another_secret_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    DiskCache(path, secret=b"other secret")["k"] = ["x"]
    with pytest.raises(diskstore.DecodeError):
        DiskCache(path, secret=SECRET)["k"]
    with pytest.raises(diskstore.DecodeError, match="without the secret"):
        DiskCache(path)["k"]


def test_pickled_keys_are_signed_and_checked_too(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c[("tuple", 1)] = 1
    assert list(c) == [("tuple", 1)]
    set_all_keys(path, b"\x00" * 32 + pickle.dumps(Boom()))
    with pytest.raises(diskstore.DecodeError):
        list(c)


def test_native_values_need_no_signature(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c["n"] = 5
    c["s"] = "text"
    assert DiskCache(path, secret=SECRET)["n"] == 5
    assert DiskCache(path)["s"] == "text"
