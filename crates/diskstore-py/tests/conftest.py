"""Shared fixtures for the binding's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A path for a new store file."""
    return str(tmp_path / "store.db")
