#!/usr/bin/env bash
# Side-by-side benchmark (`make bench`): sets up what it needs, then runs bench/bench.py.
#
#   1. bench/.venv: a venv with the peers of bench/requirements.txt (apsw, diskcache, sqlitedict,
#      lmdb, maturin); the original diskstore 0.7.0 goes into bench/.venv/orig07 (it has the same
#      import name as ours; bench.py puts it on PYTHONPATH only for the processes measuring it).
#   2. Our Python package, release build (maturin build --release, then pip install of the wheel
#      into bench/.venv), and the `diskstore` CLI (cargo build --release), both in
#      $CARGO_TARGET_DIR (default target/h-bench) so that they never clash with other builds.
#   3. bench/bench.py with the arguments given here, e.g.
#        scripts/bench.sh --n 2000 --rounds 1     quick run (about a minute)
#        scripts/bench.sh                         full run (n = 20,000, 3 rounds)
#        scripts/bench.sh --scale [ARGS]          bench/scale.py instead (store sizes 1e4..1e7)
#
# Env: BENCH_SKIP_BUILD=1 skips step 2 (measure what is installed); BENCH_VENV; PYTHON (the
# interpreter for the venv, default python3). `scripts/bench.sh --setup-only` stops after step 2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${BENCH_VENV:-$ROOT/bench/.venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/h-bench}
PYTHON=${PYTHON:-python3}
PIP=(--disable-pip-version-check -q)

setup_only=0
if [ "${1:-}" = "--setup-only" ]; then setup_only=1; shift; fi
script=bench/bench.py
if [ "${1:-}" = "--scale" ]; then script=bench/scale.py; shift; fi

# 1. The peers.
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.installed-$(sha256sum bench/requirements.txt | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    echo "== installing the peers into $VENV" >&2
    grep -v '^diskstore==' bench/requirements.txt >"$VENV/peers.txt"
    "$VENV/bin/pip" install "${PIP[@]}" -r "$VENV/peers.txt"
    rm -rf "$VENV/orig07"
    "$VENV/bin/pip" install "${PIP[@]}" --no-deps --target "$VENV/orig07" \
        "$(grep '^diskstore==' bench/requirements.txt)"
    touch "$stamp"
fi

# 2. Ours, release builds.
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "== building our Python package (release) and the CLI in $CARGO_TARGET_DIR" >&2
    wheels="$CARGO_TARGET_DIR/bench-wheels"
    rm -rf "$wheels"
    "$VENV/bin/maturin" build --release -q -m crates/diskstore-py/Cargo.toml -o "$wheels" \
        --interpreter "$VENV/bin/python"
    "$VENV/bin/pip" install "${PIP[@]}" --force-reinstall --no-deps "$wheels"/diskstore-*.whl
    cargo build --release -q -p diskstore-cli
fi
[ "$setup_only" = 1 ] && exit 0

cli_args=()
cli="$CARGO_TARGET_DIR/release/diskstore"
if [ -x "$cli" ]; then cli_args=(--rust-cli "$cli"); fi
if [ "$script" = bench/scale.py ]; then
    exec "$VENV/bin/python" bench/scale.py --orig-path "$VENV/orig07" "${cli_args[@]}" "$@"
fi
exec "$VENV/bin/python" bench/bench.py --orig-path "$VENV/orig07" "${cli_args[@]}" "$@"
