"""TLS failures of the server backends, each a clear `ConnectionLostError`: a host name the
certificate does not carry under `sslmode=verify-full`, a CA the client does not trust, and
plain text where the server requires TLS; client certificates (a server user admitted only
with one); `sslmode=prefer`/`allow` falling back the other way. (The conformance suite runs
every operation over TLS; these are the refusals.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import diskstore
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


def _tls_file(name: str) -> str:
    """A file of the test CA's directory (scripts/servers.sh makes them)."""
    return os.path.join(os.path.dirname(os.environ["DISKSTORE_TEST_TLS_CA"]), name)


def test_postgres_client_certificate() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES_CERT")
    # diskstore_cert is admitted only with a client certificate of the test CA.
    s = pg_store(url)
    s["k"] = 1
    assert s["k"] == 1
    c = DiskCache(url, tablename=unique("cert"))
    c["k"] = b"v"
    assert c["k"] == b"v"
    without = url.split("&sslcert=")[0]
    with pytest.raises(ConnectionLostError, match="certificate"):
        pg_store(without)
    other = (
        f"{without}&sslcert={_tls_file('other-client.pem')}&sslkey={_tls_file('other-client.key')}"
    )
    with pytest.raises(ConnectionLostError):
        pg_store(other)
    with pytest.raises(diskstore.Error, match="sslkey"):
        pg_store(url.replace("client.key", "no-such.key"))
    with pytest.raises(diskstore.Error, match="does not fit"):
        pg_store(url.replace("client.key", "other-client.key"))


def test_postgres_default_client_certificate_is_libpqs(tmp_path: Path) -> None:
    # With no sslcert= in the URL, ~/.postgresql/postgresql.crt and .key are used if both
    # exist, as libpq does: the same URL that fails above connects with them in HOME.
    without = server_url("DISKSTORE_TEST_POSTGRES_CERT").split("&sslcert=")[0]
    folder = tmp_path / ".postgresql"
    folder.mkdir()
    shutil.copy(_tls_file("client.pem"), folder / "postgresql.crt")
    shutil.copy(_tls_file("client.key"), folder / "postgresql.key")
    script = (
        "import sys\nfrom diskstore import DiskCache\n"
        "c = DiskCache(sys.argv[1], tablename=sys.argv[2])\nc['k'] = b'v'\nprint(c['k'])"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, without, unique("home")],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.stdout.strip() == "b'v'", run.stderr


def test_redis_client_certificate() -> None:
    url = server_url("DISKSTORE_TEST_REDIS_TLS")
    good = f"{url}&ssl_certfile={_tls_file('client.pem')}&ssl_keyfile={_tls_file('client.key')}"
    c = DiskCache(good, tablename=unique("cert"))
    c["k"] = 1
    assert c["k"] == 1
    # The server checks a certificate it is given: another CA's is refused.
    bad = f"{url}&ssl_certfile={_tls_file('other-client.pem')}&ssl_keyfile={_tls_file('other-client.key')}"
    with pytest.raises(ConnectionLostError):
        DiskCache(bad)
    with pytest.raises(diskstore.Error, match="ssl_keyfile"):
        DiskCache(f"{url}&ssl_certfile={_tls_file('client.pem')}")


def test_postgres_prefer_falls_back_and_allow_goes_to_tls() -> None:
    url = server_url("DISKSTORE_TEST_POSTGRES").split("?")[0]
    # Refused over TLS, admitted in plain text: `prefer` tries TLS, then plain text.
    plain = url.replace("postgres@", "diskstore_plain@", 1)
    pg_store(f"{plain}?sslmode=prefer")["k"] = 1
    with pytest.raises(ConnectionLostError):
        pg_store(f"{plain}?sslmode=require")
    # Refused in plain text, admitted over TLS: `allow` tries plain text, then TLS.
    tls = url.replace("postgres@", "diskstore_tls@", 1)
    pg_store(f"{tls}?sslmode=allow")["k"] = 2
