"""`Value`: the default value class of the 0.1.0 API."""

from __future__ import annotations

from typing import NamedTuple


class Value(NamedTuple):
    """One stored value of any SQLite storage class.

    `int()`, `float()` and `bytes()` return the inner value when it has that type and raise
    `ValueError` otherwise; `str()` returns `str(value)`.
    """

    value: bytes | str | int | float

    def __int__(self) -> int:
        if isinstance(self.value, int):
            return self.value
        raise ValueError(f"the stored value is of type {type(self.value).__name__}, not int")

    def __float__(self) -> float:
        if isinstance(self.value, float):
            return self.value
        raise ValueError(f"the stored value is of type {type(self.value).__name__}, not float")

    def __bytes__(self) -> bytes:
        if isinstance(self.value, bytes):
            return self.value
        raise ValueError(f"the stored value is of type {type(self.value).__name__}, not bytes")

    def __str__(self) -> str:
        return str(self.value)
