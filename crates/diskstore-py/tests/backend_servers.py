"""The test servers of scripts/servers.sh, for the backend tests.

`DISKSTORE_TEST_POSTGRES` and `DISKSTORE_TEST_REDIS` name them. Under `CI=true` (or
`DISKSTORE_REQUIRE_SERVERS=1`, which .ci/run sets after starting them) a missing or
unreachable server fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SERVERS = REPO / "scripts" / "servers.sh"
_COUNTER = itertools.count()


def server_url(var: str) -> str:
    """The URL in `var`, checked reachable; skips (fails under CI) otherwise."""
    url = os.environ.get(var, "")
    why = None
    if not url:
        why = f"{var} is not set (run: eval \"$(scripts/servers.sh start)\")"
    else:
        parts = urllib.parse.urlsplit(url)
        try:
            socket.create_connection((parts.hostname, parts.port), timeout=2).close()
        except OSError as e:
            why = f"{var}={url} is not reachable: {e}"
    if why is not None:
        if os.environ.get("CI") == "true" or os.environ.get("DISKSTORE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"CI must provide the test servers: {why}")
        pytest.skip(why)
    return url


def unique(prefix: str) -> str:
    """A table name (or key prefix) no other test or run uses."""
    return f"{prefix}_{os.getpid()}_{time.time_ns() % 10**9}_{next(_COUNTER)}"


def servers(*args: str) -> None:
    """Runs scripts/servers.sh with `args` (e.g. `restart-postgres`)."""
    subprocess.run(["bash", str(SERVERS), *args], check=True, timeout=120)
