"""`Disk` and `JSONDisk`: how keys and values become database cells and files (diskcache's
`Disk` protocol), and the marker constants."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import os.path as op
import pickle
import pickletools
import secrets
import struct
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ENOVAL", "UNKNOWN", "Constant", "Disk", "JSONDisk"]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


class Constant(tuple):
    """A named marker value that prints as its name."""

    __slots__ = ()

    def __new__(cls, name: str) -> Self:
        return tuple.__new__(cls, (name,))

    def __repr__(self) -> str:
        return str(self[0])


ENOVAL = Constant("ENOVAL")
"""Marks "no value" where `None` is a valid value."""
UNKNOWN = Constant("UNKNOWN")
"""Marks a key or value the `Disk` is not told."""

MODE_NONE = 0
MODE_RAW = 1
MODE_BINARY = 2
MODE_TEXT = 3
MODE_PICKLE = 4


class Disk:
    """Turns keys and values into database cells and files (diskcache's `Disk` protocol).

    Keys and values of type `bytes`, `str`, `int` (64-bit) and `float` are stored as they
    are; anything else is pickled. Values of at least `min_file_size` bytes go to a file
    in the cache directory.
    """

    def __init__(self, directory: str, min_file_size: int = 0, pickle_protocol: int = 0):
        self._directory = directory
        self.min_file_size = min_file_size
        self.pickle_protocol = pickle_protocol

    def hash(self, key: Any) -> int:
        """A stable 32-bit hash of `key` (the same in every process), for sharding."""
        db_key, _ = self.put(key)
        if isinstance(db_key, bytes):
            return zlib.adler32(db_key) & 0xFFFFFFFF
        if isinstance(db_key, str):
            return zlib.adler32(db_key.encode("utf-8")) & 0xFFFFFFFF
        if isinstance(db_key, int):
            return db_key % 0xFFFFFFFF
        return zlib.adler32(struct.pack("!d", db_key)) & 0xFFFFFFFF

    def put(self, key: Any) -> tuple[Any, bool]:
        """`(db_key, raw)`: the key's database cell and whether it is stored as is."""
        kind = type(key)
        if kind is str or kind is bytes or kind is float:
            return key, True
        if kind is int and _I64_MIN <= key <= _I64_MAX:
            return key, True
        data = pickle.dumps(key, protocol=self.pickle_protocol)
        return pickletools.optimize(data), False

    def get(self, key: Any, raw: bool) -> Any:
        """The key a database cell stands for."""
        if raw:
            return bytes(key) if isinstance(key, memoryview) else key
        return pickle.load(io.BytesIO(key))

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        """`(size, mode, filename, db_value)` for a value (`read=True`: a binary file
        object whose bytes are stored)."""
        kind = type(value)
        small = self.min_file_size
        if (kind is int and _I64_MIN <= value <= _I64_MAX) or kind is float:
            return 0, MODE_RAW, None, value
        if kind is str:
            if len(value) < small:
                return 0, MODE_RAW, None, value
            filename, full_path = self.filename(key, value)
            self._write(full_path, io.StringIO(value), "x", "UTF-8")
            return op.getsize(full_path), MODE_TEXT, filename, None
        if kind is bytes:
            if len(value) < small:
                return 0, MODE_RAW, None, value
            filename, full_path = self.filename(key, value)
            self._write(full_path, io.BytesIO(value), "xb")
            return len(value), MODE_BINARY, filename, None
        if read:
            filename, full_path = self.filename(key, value)
            size = self._write(full_path, iter(functools.partial(value.read, 2**22), b""), "xb")
            return size, MODE_BINARY, filename, None
        data = pickle.dumps(value, protocol=self.pickle_protocol)
        if len(data) < small:
            return 0, MODE_PICKLE, None, data
        filename, full_path = self.filename(key, value)
        self._write(full_path, io.BytesIO(data), "xb")
        return len(data), MODE_PICKLE, filename, None

    def _write(self, full_path: str, chunks: Any, mode: str, encoding: str | None = None) -> int:
        os.makedirs(op.dirname(full_path), exist_ok=True)
        size = 0
        with open(full_path, mode, encoding=encoding) as f:
            if isinstance(chunks, (io.StringIO, io.BytesIO)):
                chunks = iter(functools.partial(chunks.read, 2**22), chunks.read(0))
            for chunk in chunks:
                size += len(chunk)
                f.write(chunk)
        return size

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        """The value of a row (`read=True` and a file: an open binary file object).

        Raises `OSError` (`IOError`) when the file has gone."""
        if mode == MODE_RAW:
            return bytes(value) if isinstance(value, memoryview) else value
        if mode == MODE_BINARY:
            assert filename is not None
            path = op.join(self._directory, filename)
            if read:
                return open(path, "rb")
            with open(path, "rb") as f:
                return f.read()
        if mode == MODE_TEXT:
            assert filename is not None
            with open(op.join(self._directory, filename), encoding="UTF-8") as f:
                return f.read()
        if mode == MODE_PICKLE:
            if value is None:
                assert filename is not None
                with open(op.join(self._directory, filename), "rb") as f:
                    return pickle.load(f)
            return pickle.load(io.BytesIO(value))
        return None

    def filename(self, key: Any = UNKNOWN, value: Any = UNKNOWN) -> tuple[str, str]:
        """`(filename, full_path)` for a new value file: a random name two directories
        deep."""
        name = secrets.token_hex(16)
        filename = op.join(name[:2], name[2:4], name[4:] + ".val")
        return filename, op.join(self._directory, filename)

    def remove(self, file_path: str) -> None:
        """Removes a value file (relative to the directory) and the sub-directories it
        leaves empty; a file or directory already gone is fine."""
        full_path = op.join(self._directory, file_path)
        with contextlib.suppress(OSError):
            os.remove(full_path)
        parent = op.dirname(full_path)
        top = op.normpath(self._directory)
        while op.normpath(parent) != top and op.normpath(parent).startswith(top):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = op.dirname(parent)


class JSONDisk(Disk):
    """A `Disk` storing keys and values as zlib-compressed JSON instead of pickles."""

    def __init__(self, directory: str, compress_level: int = 1, **kwargs: Any):
        self.compress_level = compress_level
        super().__init__(directory, **kwargs)

    def _pack(self, obj: Any) -> bytes:
        return zlib.compress(json.dumps(obj).encode("utf-8"), self.compress_level)

    @staticmethod
    def _unpack(data: bytes) -> Any:
        return json.loads(zlib.decompress(data).decode("utf-8"))

    def put(self, key: Any) -> tuple[Any, bool]:
        """Stores the key as compressed JSON bytes."""
        return super().put(self._pack(key))

    def get(self, key: Any, raw: bool) -> Any:
        """Decodes a stored key."""
        return self._unpack(super().get(key, raw))

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        """Stores the value as compressed JSON bytes (`read=True`: the file's bytes)."""
        if not read:
            value = self._pack(value)
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        """Decodes a stored value (`read=True`: the open file)."""
        data = super().fetch(mode, filename, value, read)
        return data if read else self._unpack(data)
