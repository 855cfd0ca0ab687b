#!/usr/bin/env bash
# Before/after runs of bench/backends_bench.py, alternating: OLD_SITE is a directory with an
# older build of the package (`pip install --no-deps --target OLD_SITE <wheel>`), put first
# on PYTHONPATH; the other runs use what bench/.venv has. Each build gets its own database
# and Redis db, so neither opens the other's tables.
#
#   OLD_SITE=/tmp/old/site PG=postgresql://postgres@127.0.0.1:55442 \
#   REDIS=redis://127.0.0.1:56389 STEM=backends-2026-12-07-pg4 bash bench/backends_ab.sh
# (the databases bench_old and bench_new must exist: CREATE DATABASE …)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OLD_SITE:?}" "${PG:?}" "${REDIS:?}" "${STEM:?}"
for r in $(seq 1 "${RUNS:-3}"); do
    for v in old new; do
        if [ $v = old ]; then pp=$OLD_SITE; db=1; else pp=; db=2; fi
        PYTHONPATH=$pp bench/.venv/bin/python bench/backends_bench.py \
            --pg "$PG/bench_$v?sslmode=disable" --redis "$REDIS/$db" \
            --n "${N:-1000}" --rounds "${ROUNDS:-5}" --out "$STEM-$v$r" >/dev/null
        echo "$v$r done $(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
    done
done
