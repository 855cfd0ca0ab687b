"""diskstore 0.1.0's cache files (issue 12, items 9 and 10): a file written by the original
0.1.0 `DiskCache` opens with ours and stays readable by the original; `DiskCache.upgrade`
converts it to our cache's layout. The original runs in its own throw-away venv."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import compat_support as cs
import diskstore
import pytest
from diskstore import DiskCache
from diskstore._legacy_cache import LegacyDiskCache

WRITE = """
import sys, time
from diskstore import DiskCache
c = DiskCache(sys.argv[1], default_expiration=60.0)
c.set("a", {"x": 1})
c.set(("t", 1), [1, 2], expire=0)
c.set("short", "s", expire=0.3)
time.sleep(0.5)
c.close()
"""

READ = """
import json, sys
from diskstore import DiskCache
c = DiskCache(sys.argv[1])
out = {repr(k): c.get(k, "<none>") for k in c}
print(json.dumps({"len": len(c), "entries": out}, sort_keys=True))
"""


def original(script: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cs.orig_python("0.1.0"), "-c", textwrap.dedent(script), str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture
def legacy_file(tmp_path: Path) -> Path:
    path = tmp_path / "cache01.db"
    done = original(WRITE, path)
    assert done.returncode == 0, done.stderr
    return path


def test_a_0_1_0_cache_file_opens_with_the_0_1_0_api_and_stays_the_originals(
    legacy_file: Path,
) -> None:
    c = DiskCache(legacy_file)
    assert isinstance(c, LegacyDiskCache)
    assert c.get("a") == {"x": 1}
    assert c.get(("t", 1)) == [1, 2]
    assert c.get("short") is None  # expired, still stored
    assert len(c) == 3 and sorted(map(repr, c)) == sorted(["'a'", "('t', 1)", "'short'"])
    assert c.add("short", "other") is False  # an expired, unremoved entry blocks add
    c.touch("short", 60)  # 0.1.0's touch makes it readable again
    assert c.get("short") == "s"
    c.set("new", 5)
    assert c.delete("a") is True and c.delete("a") is False
    c.close()
    seen = original(READ, legacy_file)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout) == {
        "len": 3,
        "entries": {"('t', 1)": [1, 2], "'new'": 5, "'short'": "s"},
    }


def test_options_of_the_richer_cache_ask_for_an_upgrade(legacy_file: Path) -> None:
    with pytest.raises(ValueError, match=r"0\.1\.0 cache.*DiskCache\.upgrade"):
        DiskCache(legacy_file, size_limit=1000)


def test_upgrade_converts_in_one_transaction_keeping_live_entries(legacy_file: Path) -> None:
    cache = DiskCache.upgrade(legacy_file, size_limit=10_000)
    assert isinstance(cache, DiskCache)
    assert cache.get("a") == {"x": 1} and cache.get(("t", 1)) == [1, 2]
    assert "short" not in cache and len(cache) == 2  # the expired entry was left behind
    assert isinstance(DiskCache(legacy_file), DiskCache)  # no longer a 0.1.0 file
    with pytest.raises(ValueError, match="no diskstore 0.1.0 cache"):
        DiskCache.upgrade(legacy_file)
    cache.close()
    # The original cannot read the new layout (and says so), but nothing was lost for us.
    assert original(READ, legacy_file).returncode != 0
    assert DiskCache(legacy_file).get("a") == {"x": 1}


def test_a_failed_upgrade_changes_nothing(legacy_file: Path) -> None:
    with pytest.raises(diskstore.Error, match="eviction policy"):
        DiskCache.upgrade(legacy_file, eviction_policy="no-such-policy")
    c = DiskCache(legacy_file)
    assert isinstance(c, LegacyDiskCache)
    assert c.get("a") == {"x": 1} and len(c) == 3
    c.close()
    seen = original(READ, legacy_file)
    assert seen.returncode == 0, seen.stderr
