"""What every benchmark script records about its run: the commit, the CPU, and where the
original diskstore's interpreter is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """HEAD of the work tree, with '+dirty' when tracked files have uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('?' when unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def original_python(version: str) -> str:
    """The python of a venv holding the original diskstore `version` with apsw, made once under
    /tmp by the compatibility tests' helper (which installs it from PyPI on first use)."""
    sys.path.insert(0, str(ROOT / "crates" / "diskstore-py" / "tests"))
    import compat_support

    return compat_support.orig_python(version)


def run_meta(**extra: object) -> dict:
    """The report header's facts: time (UTC), commit, CPUs and load average, plus `extra`."""
    import datetime as dt
    import os

    return {
        "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "nproc": os.cpu_count(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        **extra,
    }


def round_order(systems: list[str], rnd: int) -> list[str]:
    """The systems' order in round `rnd`: rotated by one each round, odd rounds reversed, so
    that no system always runs first or right after the same neighbour."""
    k = rnd % len(systems)
    order = systems[k:] + systems[:k]
    if rnd % 2:
        order.reverse()
    return order
