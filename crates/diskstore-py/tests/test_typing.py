"""The package's type stubs match the runtime (mypy.stubtest)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_stubtest_accepts_the_stubs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "diskstore", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_marker_is_shipped() -> None:
    import diskstore

    spec = importlib.util.find_spec("diskstore")
    assert spec is not None and spec.submodule_search_locations
    from pathlib import Path

    assert (Path(next(iter(spec.submodule_search_locations))) / "py.typed").exists()
    assert diskstore.__name__ == "diskstore"
