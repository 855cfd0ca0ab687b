"""Failures of the server backends, each a clear error of the diskstore hierarchy:
connection refused, authentication failure, statement timeout, a server restart (the
next call connects again) and a connection dropped inside a transaction (nothing of it
is committed)."""

from __future__ import annotations

import subprocess
import threading
import urllib.parse

import diskstore
import pytest
from backend_servers import server_url, servers, unique
from diskstore import BusyError, ConnectionLostError, DiskCache, DiskStore
from diskstore.config import BaseConfig


def pg_store(url: str, table: str | None = None) -> DiskStore:
    return DiskStore(url, config=BaseConfig(tablename=table or unique("f")))


def with_option(url: str, option: str) -> str:
    """The URL with a server setting (`-c name=value`) for its sessions."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={urllib.parse.quote('-c ' + option)}"


def test_connection_refused() -> None:
    server_url("DISKSTORE_TEST_POSTGRES")  # the same machine runs the servers
    with pytest.raises(ConnectionLostError) as e:
        pg_store("postgresql://postgres@127.0.0.1:1/nothing")
    assert "127.0.0.1:1" in str(e.value)
    assert isinstance(e.value, diskstore.ServerError) and isinstance(e.value, diskstore.Error)
    with pytest.raises(ConnectionLostError):
        DiskCache("redis://127.0.0.1:1/0")


def test_authentication_failure_hides_the_password() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES")
    bad = url.replace("postgres@", "diskstore_pw:not-the-password@")
    with pytest.raises(ConnectionLostError, match="authentication failed") as e:
        pg_store(bad)
    assert "not-the-password" not in str(e.value)
    good = url.replace("postgres@", "diskstore_pw:secret@")
    s = pg_store(good)  # the right password works (scripts/servers.sh made the role)
    s["k"] = 1
    assert s["k"] == 1


def test_statement_timeout_is_busy_and_applies_nothing() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES")
    table = unique("timeout")
    holder = pg_store(url, table)
    holder["k"] = 1
    waiter = pg_store(with_option(url, "statement_timeout=200"), table)
    result: list[BaseException | None] = []
    with holder.transact():
        holder["k"] = 2  # holds the row lock until the block ends

        def write() -> None:
            try:
                waiter["k"] = 3
                result.append(None)
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                result.append(e)

        t = threading.Thread(target=write)
        t.start()
        t.join(30)
    assert isinstance(result[0], BusyError), result
    assert "timed out" in str(result[0])
    assert waiter["k"] == 2  # the timed-out write left nothing behind


def test_postgres_restart_reconnects_and_keeps_acknowledged_writes() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES")
    s = pg_store(url)
    c = DiskCache(url, None, tablename=unique("rc"))
    for i in range(20):
        s[i] = i
    assert c.incr("n", 5) == 5
    servers("restart-postgres")
    # Every pooled connection died with the old server: the next calls connect again.
    assert s[7] == 7
    s[20] = 20
    assert len(s) == 21
    assert c.incr("n", 1) == 6
    assert c["n"] == 6


def test_redis_restart_reconnects() -> None:
    url = server_url("DISKSTORE_TEST_REDIS")
    c = DiskCache(url, None, tablename=unique("rr"))
    c["a"] = 1
    servers("restart-redis")
    # The test server keeps no data across a restart (no persistence configured); the
    # cache connects again and works.
    c["b"] = 2
    assert c["b"] == 2


def _terminate_idle_in_transaction(url: str) -> int:
    """Kills the server sessions of diskstore that sit inside a transaction."""
    out = subprocess.run(
        [
            "psql",
            url,
            "-At",
            "-c",
            (
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'diskstore' AND state LIKE 'idle in transaction%'"
            ),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return int(out.stdout.strip())


def test_connection_dropped_inside_a_transaction_commits_nothing() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES")
    s = pg_store(url)
    s["before"] = 1
    lost = "nothing of the transaction was committed"
    with pytest.raises(ConnectionLostError, match=lost), s.transact():
        s["x"] = 1
        assert _terminate_idle_in_transaction(url) >= 1
        s["y"] = 2  # the connection is gone
    assert "x" not in s and "y" not in s
    assert s["before"] == 1
    s["after"] = 3  # a new connection for the next call
    assert s["after"] == 3


@pytest.mark.parametrize("var", ["DISKSTORE_TEST_POSTGRES", "DISKSTORE_TEST_REDIS"])
def test_a_forked_child_never_uses_its_parents_connections(var: str) -> None:
    import os

    url = server_url(var)
    c = DiskCache(url, None, tablename=unique("fork"))
    c["parent"] = 1  # the pool now holds a connection of the parent
    pid = os.fork()
    if pid == 0:  # the child: its own connection; the parent's is left alone
        try:
            c["child"] = 2
            code = 0 if c["parent"] == 1 else 1
        except BaseException:  # noqa: BLE001 - reported through the exit code
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c["child"] == 2 and c["parent"] == 1  # the parent's connection still works
