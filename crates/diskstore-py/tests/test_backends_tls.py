"""TLS failures of the server backends, each a clear `ConnectionLostError`: a host name the
certificate does not carry under `sslmode=verify-full`, a CA the client does not trust, and
plain text where the server requires TLS. (The conformance suite runs every operation over
TLS; these are the refusals.)"""

from __future__ import annotations

import pytest
from backend_servers import server_url, unique
from diskstore import ConnectionLostError, DiskCache, DiskStore
from diskstore.config import BaseConfig


def pg_store(url: str) -> DiskStore:
    return DiskStore(url, config=BaseConfig(tablename=unique("tls")))


def test_postgres_verify_full_checks_the_host_name() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES_TLS")
    wrong = url.replace("@127.0.0.1:", "@wrong-name.invalid:") + "&hostaddr=127.0.0.1"
    with pytest.raises(ConnectionLostError, match="(?i)certificate"):
        pg_store(wrong)
    # verify-ca checks the chain only: the same URL connects, and works.
    s = pg_store(wrong.replace("verify-full", "verify-ca"))
    s["k"] = 1
    assert s["k"] == 1


def test_postgres_untrusted_ca_and_plain_text_fail() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES_TLS")
    no_root = url.split("&sslrootcert=")[0]
    with pytest.raises(ConnectionLostError, match="(?i)certificate"):
        pg_store(no_root + "&sslrootcert=system")
    # The server admits this user over TLS only.
    with pytest.raises(ConnectionLostError, match="no encryption"):
        pg_store(no_root.replace("verify-full", "disable"))
    # `require` encrypts without verifying the certificate.
    pg_store(no_root.replace("verify-full", "require"))["k"] = 2


def test_redis_tls_needs_the_ca_and_the_tls_port() -> None:
    url = server_url("DISKSTORE_TEST_REDIS_TLS")
    no_ca = url.split("?ssl_ca_certs=")[0]
    with pytest.raises(ConnectionLostError, match="(?i)certificate"):
        DiskCache(no_ca)
    with pytest.raises(ConnectionLostError):
        DiskCache(no_ca.replace("rediss://", "redis://"))
    c = DiskCache(url, tablename=unique("tls"))
    c["k"] = b"v"
    assert c["k"] == b"v"
