"""Turn the rounds of a benchmark run into Markdown tables and target checks.

Input: a list of worker documents (``{"round", "system", "workload", "results": [...]}``).
Per system and op, each round gives one median (mp: ops/s). The tables show the median of those
per-round medians with the max/min spread across rounds. Ratios are taken per round against the
reference system of the same round (measured minutes apart, in the same machine state) and
combined as a geometric mean.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

STORE_OPS = [
    "set",
    "set-overwrite",
    "get",
    "get-miss",
    "contains",
    "delete",
    "bulk",
    "iterate",
    "len",
    "mp",
]
CACHE_OPS = ["set", "get", "get-miss", "delete", "incr"]
#: Ops timed call by call (the rest are timed as a whole loop, or are a throughput), whose
#: figures carry the harness's timer overhead: about 30 ns in Rust, 150-250 ns in Python.
PER_CALL_OPS = ["set", "set-overwrite", "get", "get-miss", "contains", "delete", "len"]
FLOOR = "sqlite-floor-rust"
#: The systems the Rust CLI measures (the rest are Python workers).
RUST = (FLOOR, "diskstore-rust")


def fmt(x: float | None) -> str:
    """Three significant digits, thousands separators for big numbers, '–' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def value_of(result: dict) -> float:
    """The figure a result is ranked by: ops/s for mp, the median µs otherwise."""
    if result["op"] == "mp":
        return result.get("ops_per_s") or float("nan")
    return result["median_us"]


def per_round(docs: list[dict], workload: str, field: str | None = None, net: bool = False) -> dict:
    """{system: {op: {round: figure}}} for one workload (``field`` overrides the figure).

    With ``net``, only the per-call ops, each minus the timer overhead its own process
    measured (documents that did not measure it are left out).
    """
    table: dict = defaultdict(lambda: defaultdict(dict))
    for doc in docs:
        if doc.get("workload") != workload or "results" not in doc:
            continue
        if net and "timer_us" not in doc:
            continue
        for r in doc["results"]:
            if "error" in r or (net and r["op"] not in PER_CALL_OPS):
                continue
            fig = r.get(field) if field else value_of(r)
            if fig is not None and net:
                fig -= doc["timer_us"]
            if fig is not None:
                table[doc["system"]][r["op"]][doc["round"]] = fig
    return table


def cell(rounds: dict) -> str:
    """Median across rounds, and the max/min spread when there is more than one round."""
    if not rounds:
        return "–"
    vals = list(rounds.values())
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    lo, hi = min(vals), max(vals)
    spread = hi / lo if lo > 0 else float("inf")
    return f"{fmt(med)} ({spread:.2f}×)"


def ratio(table: dict, system: str, ref: str, op: str) -> float | None:
    """Geometric mean over rounds of system/ref (mp: ref/system, so > 1 means slower)."""
    a, b = table.get(system, {}).get(op, {}), table.get(ref, {}).get(op, {})
    logs = []
    for rnd, x in a.items():
        y = b.get(rnd)
        if y is None or x <= 0 or y <= 0:
            continue
        logs.append(math.log(y / x) if op == "mp" else math.log(x / y))
    if not logs:
        return None
    return math.exp(statistics.fmean(logs))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with the first column left-aligned and the rest right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|---|" + "---:|" * (len(header) - 1))
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def medians_table(table: dict, systems: list[str], ops: list[str]) -> str:
    """Rows = ops, columns = systems, cells = median µs (mp: ops/s) with spread."""
    rows = [[op] + [cell(table.get(s, {}).get(op, {})) for s in systems] for op in ops]
    return markdown_table(["op"] + systems, rows)


def ratios_table(table: dict, systems: list[str], ops: list[str], ref: str) -> str:
    """Rows = ops, columns = systems, cells = ratio to ``ref`` (> 1 = slower)."""
    rows = []
    for op in ops:
        row = [op]
        for s in systems:
            r = ratio(table, s, ref, op)
            row.append("–" if r is None else f"{r:.2f}")
        rows.append(row)
    return markdown_table(["op"] + systems, rows)


def check_line(ok: bool | None, text: str) -> str:
    """One line of the target checklist."""
    mark = {True: "PASS", False: "FAIL", None: "n/a "}[ok]
    return f"- {mark} {text}"


def store_checks(table: dict, net: dict) -> list[str]:
    """Issue 3's targets: ours <= 1.15x the floor, and faster than 0.7.0/apsw, on every op.

    Against the Rust floor, per-call ops are judged net of each harness's own timer overhead
    (``net``), when the run measured it; the raw ratio is printed beside it.
    """
    out = []
    for op in STORE_OPS:
        raw = ratio(table, "diskstore", FLOOR, op)
        r = ratio(net, "diskstore", FLOOR, op)
        if r is None:
            r, how = raw, ""
        else:
            how = f" net of timer overhead (raw {raw:.2f}×)"
        out.append(
            check_line(
                None if r is None else r <= 1.15,
                f"diskstore {op}: {('–' if r is None else f'{r:.2f}')}× the Rust floor{how} "
                "(target <= 1.15)",
            )
        )
    for op in STORE_OPS:
        r = ratio(table, "diskstore", "diskstore07-apsw", op)
        out.append(
            check_line(
                None if r is None else r < 1.0,
                f"diskstore {op}: {('–' if r is None else f'{r:.2f}')}× diskstore 0.7.0/apsw "
                "(target < 1)",
            )
        )
    return out


def cache_checks(table: dict) -> list[str]:
    """Issue 4's targets for our DiskCache."""
    out = []
    for op in CACHE_OPS:
        r = ratio(table, "diskstore-cache", "diskstore", op)
        out.append(
            check_line(
                None if r is None else r <= 1.3,
                f"DiskCache {op}: {('–' if r is None else f'{r:.2f}')}× our DiskStore "
                "(target <= 1.3)",
            )
        )
    for op, need in (("set", 3.0), ("get", 2.0)):
        r = ratio(table, "diskcache-cache", "diskstore-cache", op)
        out.append(
            check_line(
                None if r is None else r >= need,
                f"DiskCache {op}: {('–' if r is None else f'{r:.2f}')}× faster than "
                f"python-diskcache Cache (target >= {need:g})",
            )
        )
    return out


def present(table: dict, systems: list[str]) -> list[str]:
    """The systems of ``systems`` that have at least one result, in order."""
    return [s for s in systems if s in table]


def render(docs: list[dict], meta: dict, store_systems: list[str], cache_systems: list[str]) -> str:
    """The whole Markdown report of one run."""
    parts = [f"# diskstore side-by-side benchmark, {meta['date']}", ""]
    parts.append(
        f"Machine: {meta['nproc']} cores, {meta['cpu']}; load average at start "
        f"{meta['load_start']}, at end {meta.get('load_end', '?')}. Python {meta['python']}. "
        f"Work tree {meta['commit']}."
    )
    parts.append(
        f"Workload: n={meta['n']} `str` keys, {meta['value_size']}-byte `bytes` values, "
        f"keys in {meta.get('order', '?')} order, {meta['rounds']} round(s), systems interleaved (order rotated each round), each system "
        f"in its own subprocess; mp = 2 processes × {meta['mp_seconds']} s, 90 % get / 10 % set."
    )
    parts.append(
        "Rust figures: `diskstore bench --json` (ours and the floor interleaved in one process); "
        "for bulk and iterate the tables use its per-item mean (= total ÷ items, as the Python "
        "workers measure them), elsewhere its median."
    )
    parts.append(f"Command: `{meta['command']}`")
    if meta.get("notes"):
        parts += [""] + [f"Note: {n}" for n in meta["notes"]]
    failures = [d for d in docs if "error" in d]
    failures += [
        {"system": d["system"], "workload": d.get("workload"), "error": f"{r['op']}: {r['error']}"}
        for d in docs
        for r in d.get("results", [])
        if "error" in r
    ]
    if failures:
        parts += ["", "Failed or missing runs:"]
        seen = set()
        for d in failures:
            key = (d["system"], d.get("workload"), d["error"])
            if key not in seen:
                seen.add(key)
                parts.append(f"- {d['system']} ({d.get('workload')}): {d['error']}")
    described = {}
    for d in docs:
        if d.get("describe"):
            described.setdefault(d["system"], d["describe"])
    if described:
        parts += ["", "Versions:"] + [f"- {s}: {v}" for s, v in described.items()]
    timers = {
        lang: [d["timer_us"] for d in docs if "timer_us" in d and (d["system"] in RUST) == rust]
        for lang, rust in (("Python workers", False), ("Rust CLI", True))
    }
    if any(timers.values()):
        said = ", ".join(
            f"{lang} {statistics.median(t) * 1000:.0f} ns" for lang, t in timers.items() if t
        )
        parts += [
            "",
            (
                "Timer overhead in every per-call figure (median of an empty timed region, "
                f"measured by each process; median over processes): {said}. Ratios to the floor "
                "are shown raw and, for per-call ops, net of each process's own overhead."
            ),
        ]

    store = per_round(docs, "store")
    store_net = per_round(docs, "store", net=True)
    systems = present(store, [FLOOR, "diskstore-rust"] + store_systems)
    net_systems = present(store_net, systems)
    net_part = []
    if FLOOR in net_systems:
        net_part = [
            (
                f"Ratio to `{FLOOR}` net of timer overhead: per-call ops only, each round's "
                "median minus the timer overhead its own process measured (Python's timer costs "
                "several times Rust's, so raw ratios overstate the gap)"
            ),
            "",
            ratios_table(store_net, net_systems, PER_CALL_OPS, FLOOR),
            "",
        ]
    if systems:
        parts += [
            "",
            "## Key-value workload (issue 3)",
            "",
            (
                "Median µs per op (mp: aggregate ops/s); median of the rounds' medians "
                "(max/min spread across rounds)"
            ),
            "",
            medians_table(store, systems, STORE_OPS),
            "",
            (
                f"Ratio to `{FLOOR}` of the same round, geometric mean over rounds (mp: floor ops/s "
                "÷ system ops/s; > 1 = slower)"
            ),
            "",
            ratios_table(store, systems, STORE_OPS, FLOOR),
            "",
            *net_part,
            (
                "Ratio to the original `diskstore07-apsw` of the same round (geometric mean over "
                "rounds; > 1 = slower than the original)"
            ),
            "",
            ratios_table(store, systems, STORE_OPS, "diskstore07-apsw"),
            "",
            "Process CPU µs per op/item (all threads; mp: both processes), median over rounds",
            "",
            medians_table(per_round(docs, "store", "cpu_us"), systems, STORE_OPS),
            "",
            (
                "p99 µs of the per-call samples (writes: checkpoint stalls show here), median over "
                "rounds"
            ),
            "",
            medians_table(
                per_round(docs, "store", "p99_us"),
                systems,
                ["set", "set-overwrite", "get", "get-miss", "delete"],
            ),
            "",
            "Targets (issue 3):",
            "",
            *store_checks(store, store_net),
        ]

    cache = per_round(docs, "cache")
    csystems = present(cache, cache_systems)
    if csystems:
        parts += [
            "",
            "## Cache workload (issue 4)",
            "",
            (
                "`diskstore-cache` = our `diskstore.DiskCache`, `diskcache-cache` = python-diskcache "
                "`Cache`, both with the same size_limit and eviction policy; `diskstore` = our "
                "`DiskStore` doing the same operations (incr = `transact()` + get + set)."
            ),
            "",
            "Median µs per op; median of the rounds' medians (max/min spread)",
            "",
            medians_table(cache, csystems, CACHE_OPS),
            "",
            "Ratio to our `DiskStore` of the same round (geometric mean over rounds)",
            "",
            ratios_table(cache, csystems, CACHE_OPS, "diskstore"),
            "",
            "Targets (issue 4):",
            "",
            *cache_checks(cache),
        ]
    return "\n".join(parts) + "\n"
