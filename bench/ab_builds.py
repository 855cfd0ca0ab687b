"""Two (or more) builds of ours side by side: the store workload of ``worker.py`` for
``--system diskstore`` under each build's interpreter, rounds interleaved and their order
rotated, medians per op and each build's ratio to the first.

    python bench/ab_builds.py --build base=/tmp/venv-base/bin/python \\
        --build now=bench/.venv/bin/python --n 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(python: str, n: int) -> dict[str, float]:
    """One worker run: op -> median µs."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [python, str(HERE / "worker.py"), "--system", "diskstore", "--workload", "store"]
        cmd += ["--n", str(n), "--value-size", "1024", "--len-calls", "200"]
        cmd += ["--mp-seconds", "0.5", "--order", "sequential", "--out", out.name]
        subprocess.run(cmd, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin"})
        doc = json.loads(Path(out.name).read_text())
    return {r["op"]: r["median_us"] for r in doc["results"] if r.get("median_us") is not None}


def main() -> int:
    """Run the rounds, print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", action="append", required=True, help="NAME=PYTHON")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    builds = [tuple(b.split("=", 1)) for b in args.build]
    seen: dict[str, dict[str, list[float]]] = {name: {} for name, _ in builds}
    for rnd in range(args.rounds):
        order = builds[rnd % len(builds) :] + builds[: rnd % len(builds)]
        for name, python in order:
            for op, us in run(python, args.n).items():
                seen[name].setdefault(op, []).append(us)
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    first = builds[0][0]
    names = [name for name, _ in builds]
    print(f"median µs per op over {args.rounds} interleaved rounds, n = {args.n}, 1 KiB values\n")
    print(
        "| op | " + " | ".join(names) + " | " + " | ".join(f"{m}/{first}" for m in names[1:]) + " |"
    )
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for op in seen[first]:
        med = [statistics.median(seen[m].get(op, [float("nan")])) for m in names]
        ratios = [f"{v / med[0]:.3f}" for v in med[1:]]
        print(
            f"| {op} | " + " | ".join(f"{v:.3f}" for v in med) + " | " + " | ".join(ratios) + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
