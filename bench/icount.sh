#!/usr/bin/env bash
# Instructions per call (callgrind) of `ds[k]` and `ds[k] = v` for our diskstore, the original
# 0.7.0 on apsw, and raw apsw with 0.7.0's SQL: a deterministic figure for "did it get slower?"
# decisions, unaffected by the machine's load.
#
# Each (system, op) runs bench/icount.py twice under callgrind, with --calls 0 and --calls $CALLS;
# instructions per call = (Ir(CALLS) - Ir(0)) / CALLS. Only user-space instructions are counted
# (system calls such as file locks cost wall time that this figure does not show).
#
# Usage: bench/icount.sh [CALLS]        (default 2000; needs valgrind and bench/.venv, see
#                                         scripts/bench.sh, which builds and installs ours)
# Env:   BENCH_VENV (default bench/.venv), ICOUNT_SYSTEMS (default "diskstore diskstore07-apsw
#        apsw-floor"), ICOUNT_OPS (default "get set"), ICOUNT_ROWS (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-2000}
VENV=${BENCH_VENV:-bench/.venv}
PY=$VENV/bin/python
SYSTEMS=${ICOUNT_SYSTEMS:-"diskstore diskstore07-apsw apsw-floor"}
OPS=${ICOUNT_OPS:-"get set"}
ROWS=${ICOUNT_ROWS:-1000}
command -v valgrind >/dev/null || { echo "icount.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$PY" ] || { echo "icount.sh: no $PY; run scripts/bench.sh --setup-only first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Total instructions (Ir) of one run of icount.py under callgrind.
irs() {
    local system=$1 op=$2 calls=$3 out="$work/cg.$1.$2.$3" env=(PYTHONHASHSEED=0)
    case $system in
        diskstore07-apsw) env+=(PYTHONPATH="$VENV/orig07" DISKSTORE_BACKEND=apsw); sys=diskstore ;;
        diskstore07-sqlite3) env+=(PYTHONPATH="$VENV/orig07" DISKSTORE_BACKEND=sqlite3); sys=diskstore ;;
        *) env+=(PYTHONPATH=); sys=$system ;;
    esac
    env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$PY" bench/icount.py --system "$sys" --op "$op" --calls "$calls" --rows "$ROWS" \
        >"$work/log" 2>&1 || { cat "$work/log" >&2; return 1; }
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

echo "callgrind instructions per call ($CALLS calls, $ROWS rows of 1 KiB, str keys, WAL), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| system | op | instructions/call |"
echo "|---|---|---:|"
for op in $OPS; do
    for system in $SYSTEMS; do
        base=$(irs "$system" "$op" 0) || { echo "| $system | $op | failed |"; continue; }
        full=$(irs "$system" "$op" "$CALLS") || { echo "| $system | $op | failed |"; continue; }
        echo "| $system | $op | $(( (full - base) / CALLS )) |"
    done
done
