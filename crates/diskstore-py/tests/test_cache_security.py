"""Signed pickles: with a secret, a row changed by someone without the secret is refused,
never unpickled."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import sqlite3
from pathlib import Path

import diskstore
import pytest
from diskstore import DiskCache

SECRET = b"correct horse battery staple"


class Boom:
    """Unpickling this would run code (here: raise); a refused row never gets that far."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('unpickled attacker code')",))


def rows(path: str) -> list[tuple[object, bytes, int]]:
    con = sqlite3.connect(path)
    try:
        return con.execute('SELECT _key, value, kind FROM "Cache"').fetchall()
    finally:
        con.close()


def write_row(path: str, key: object, value: bytes, kind: int) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute('UPDATE "Cache" SET value = ?, kind = ? WHERE _key = ?', (value, kind, key))
        con.commit()
    finally:
        con.close()


def test_signed_values_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c["k"] = {"a": [1, 2]}
    assert c["k"] == {"a": [1, 2]}
    ((_, value, kind),) = rows(path)
    assert kind == 2
    tag, payload = value[:32], value[32:]
    assert hmac.compare_digest(tag, hmac.digest(SECRET, payload, hashlib.sha256))


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
    con = sqlite3.connect(path)
    con.execute('UPDATE "Cache" SET _key = ?', (b"\x00" * 32 + pickle.dumps(Boom()),))
    con.commit()
    con.close()
    with pytest.raises(diskstore.DecodeError):
        list(c)


def test_native_values_need_no_signature(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    c = DiskCache(path, secret=SECRET)
    c["n"] = 5
    c["s"] = "text"
    assert DiskCache(path, secret=SECRET)["n"] == 5
    assert DiskCache(path)["s"] == "text"
