"""The exception classes of diskstore.

Code written for the original diskstore 0.7.0 on its standard-library backend catches
`sqlite3.Error`, `sqlite3.OperationalError` or `sqlite3.IntegrityError`; every class here
derives from the matching `sqlite3` class as well as from `diskstore.Error`, so such code
keeps working. The classes are plain Python classes (the extension module raises them),
so they pickle like any exception: a worker process can send one back to its parent.
"""

from __future__ import annotations

import sqlite3


class Error(sqlite3.Error):
    """Base class of every diskstore error (a `sqlite3.Error`)."""


class BusyError(Error, sqlite3.OperationalError):
    """The file stayed locked by another connection for longer than the timeout."""


class ReadOnlyError(Error, sqlite3.OperationalError):
    """The store, the file or its folder cannot be written."""


class NotFoundError(Error, sqlite3.OperationalError):
    """The store file (or its folder) does not exist; read-only stores never create one."""


class NotADatabaseError(Error, sqlite3.DatabaseError):
    """The file exists but is not an SQLite database."""


class CorruptError(Error, sqlite3.DatabaseError):
    """SQLite found damage in the file."""


class DiskFullError(Error, sqlite3.OperationalError):
    """The disk or a quota is full; the failed write was not kept."""


class SchemaError(Error, sqlite3.OperationalError):
    """The table in the file does not fit the value model and cannot be migrated safely."""


class DecodeError(Error, sqlite3.OperationalError):
    """A stored value cannot be read back (for example text that is not UTF-8)."""


class SQLError(Error, sqlite3.OperationalError):
    """Any other SQLite error (for example bad SQL passed to query() or a cursor)."""


class IntegrityError(Error, sqlite3.IntegrityError, ValueError):
    """A constraint of the table refused a write (NOT NULL, UNIQUE, a key of the wrong
    type for an INTEGER key column). Also a `ValueError`, which is what earlier
    releases of this package raised there."""


class NotSupportedError(Error, sqlite3.NotSupportedError):
    """The backend (PostgreSQL or Redis) cannot provide this operation with its meaning;
    the message names the operation. Nothing was done."""


class ServerError(Error, sqlite3.OperationalError):
    """A database server (PostgreSQL or Redis) could not be used: the base of
    `ConnectionLostError`."""


class ConnectionLostError(ServerError):
    """The server could not be reached, refused the credentials, or dropped the
    connection. Inside a transaction nothing of it was committed; a later call connects
    again."""


# SQLite's primary result code and its name, as `sqlite3` errors carry them (0.7.0 code
# checks `sqlite_errorname` to recognise a busy file). Class attributes: every instance of
# a class has the same code.
for _cls, _code, _name in (
    (Error, 1, "SQLITE_ERROR"),
    (BusyError, 5, "SQLITE_BUSY"),
    (ReadOnlyError, 8, "SQLITE_READONLY"),
    (NotFoundError, 14, "SQLITE_CANTOPEN"),
    (NotADatabaseError, 26, "SQLITE_NOTADB"),
    (CorruptError, 11, "SQLITE_CORRUPT"),
    (DiskFullError, 13, "SQLITE_FULL"),
    (IntegrityError, 19, "SQLITE_CONSTRAINT"),
):
    _cls.sqlite_errorcode = _code  # type: ignore[attr-defined]
    _cls.sqlite_errorname = _name  # type: ignore[attr-defined]
del _cls, _code, _name

# Shown (and pickled) as `diskstore.<Name>`, where the package exports them.
for _cls in (
    Error, BusyError, ReadOnlyError, NotFoundError, NotADatabaseError, CorruptError,
    DiskFullError, SchemaError, DecodeError, SQLError, IntegrityError, NotSupportedError,
    ServerError, ConnectionLostError,
):
    _cls.__module__ = "diskstore"
del _cls

__all__ = [
    "BusyError",
    "ConnectionLostError",
    "CorruptError",
    "DecodeError",
    "DiskFullError",
    "Error",
    "IntegrityError",
    "NotADatabaseError",
    "NotFoundError",
    "NotSupportedError",
    "ReadOnlyError",
    "SQLError",
    "SchemaError",
    "ServerError",
]
