#!/usr/bin/env bash
# `make demo`: shows the main job of diskstore in about a minute after the build.
#   1. a DiskStore written and read back from Rust, and from Python;
#   2. a file written by one language read by the other;
#   3. a DiskCache entry expiring;
#   4. `diskstore info` on the results and a short benchmark against the raw-SQLite floor.
# Builds what it needs (release binaries; the Python package into .venv through
# `make develop`). The files stay in $CARGO_TARGET_DIR/demo (default target/demo) to look at.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/demo
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
T0=$(now)

step "Build: the diskstore tool and the Rust demo (cargo build --release)"
t=$(now)
cargo build --release --quiet -p diskstore-cli --bin diskstore --example demo
DS=$TARGET/release/diskstore
DEMO=$TARGET/release/examples/demo
echo "  built in $(since "$t")"

step "Build: the Python package into .venv (make develop)"
t=$(now)
PY=""
if make -s develop >"$OUT/develop.log" 2>&1 \
    && .venv/bin/python -c 'import diskstore' >>"$OUT/develop.log" 2>&1; then
    PY=$ROOT/.venv/bin/python
    echo "  built in $(since "$t")"
else
    echo "  NOT AVAILABLE: the Python package did not build or import; the Python steps are"
    echo "  skipped. Last lines of $OUT/develop.log:"
    tail -n 5 "$OUT/develop.log" | sed 's/^/    /'
fi

step "Rust: write 10,000 entries and a record table to rust.db, read them back"
"$DEMO" write "$OUT/rust.db" 10000

if [ -n "$PY" ]; then
    step "Python: read rust.db (written by Rust), then write python.db"
    (cd "$OUT" && "$PY" - <<'PYEOF'
import time

import diskstore

t = time.perf_counter()
store = diskstore.DiskRead("rust.db")
n = len(store)
greeting = store["greeting"]
first = next(iter(store.items()))
print(f"  rust.db: {n} entries, store['greeting'] = {greeting!r}, first item {first!r}"
      f" ({(time.perf_counter() - t) * 1000:.1f} ms)")

t = time.perf_counter()
out = diskstore.DiskStore("python.db")
out.update((f"py:{i:05}", f"written by Python #{i}") for i in range(5000))
out["greeting"] = "hello from Python"
print(f"  wrote {len(out)} entries to python.db ({(time.perf_counter() - t) * 1000:.1f} ms,"
      " one update() transaction)")
PYEOF
    )

    step "Rust: read python.db (written by Python)"
    "$DEMO" read "$OUT/python.db"
    echo "  and with the tool: diskstore ls python.db --limit 3"
    "$DS" ls "$OUT/python.db" --limit 3 | sed 's/^/    /'
else
    step "Python steps skipped (see above); Rust reads a file written by the tool instead"
    "$DS" set --create "$OUT/python.db" greeting "hello from the CLI"
    "$DEMO" read "$OUT/python.db"
fi

step "Rust: a DiskCache entry expiring (real time, 1 s TTL)"
"$DEMO" cache "$OUT/cache.db"

if [ -n "$PY" ]; then
    step "Python: a DiskCache entry expiring (the original's API: set(key, value, expire=s))"
    (cd "$OUT" && "$PY" - <<'PYEOF'
import time

import diskstore

if not hasattr(diskstore, "DiskCache"):
    print("  not shown: this build of the Python package has no DiskCache yet")
else:
    try:
        cache = diskstore.DiskCache("pycache.db")
        cache.set("session", "short-lived", expire=1)
        print(f"  set session (expire=1 s); get = {cache.get('session')!r}")
        t = time.perf_counter()
        time.sleep(1.1)
        print(f"  after {time.perf_counter() - t:.1f} s: get = {cache.get('session')!r}")
    except Exception as e:  # show what failed instead of stopping the demo
        print(f"  FAILED: {type(e).__name__}: {e}")
PYEOF
    )
fi

step "diskstore info rust.db"
"$DS" info "$OUT/rust.db" | sed 's/^/  /'
step "diskstore info cache.db"
"$DS" info "$OUT/cache.db" | sed 's/^/  /'

step "Export rust.db and import it into a new file; check both"
t=$(now)
"$DS" export "$OUT/rust.db" >"$OUT/rust.jsonl"
"$DS" import "$OUT/copy.db" <"$OUT/rust.jsonl" 2>&1 | sed 's/^/  /'
"$DS" check "$OUT/copy.db" | sed 's/^/  /'
echo "  $(wc -l <"$OUT/rust.jsonl") dump lines; round trip in $(since "$t")"

step "diskstore bench --ops 2000 --mp-seconds 0.5 (ours vs the raw-SQLite floor, medians in µs; mp in ops/s)"
"$DS" bench --ops 2000 --mp-seconds 0.5 --dir "$OUT" | sed 's/^/  /'

printf '\nDone in %s. Files: %s\n' "$(since "$T0")" "$OUT"
