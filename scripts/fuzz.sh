#!/usr/bin/env bash
# Fuzzes diskstore for SECONDS (default 60): the cargo-fuzz target fuzz/fuzz_targets/ops.rs
# runs byte-decoded operation sequences on a real store and on an in-memory model
# (crates/diskstore/tests/reliability_model.rs) and fails on any disagreement or panic.
#
# cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# stable rustc accept them. The corpus is kept in fuzz/corpus/ops (git-ignored) so that
# later runs start from what earlier ones found; crashes land in fuzz/artifacts/ops.
# The first build is slow (the bundled SQLite is compiled with AddressSanitizer).
#
# If cargo-fuzz cannot be installed or cannot build here, the same model check runs
# instead as a seeded random soak for SECONDS (DISKSTORE_MODEL_SECONDS), and the script
# says so. FUZZ_NO_CARGO_FUZZ=1 asks for that soak directly.
#
#   scripts/fuzz.sh 600            # ten minutes
#   make fuzz SECONDS=3600         # an hour
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."

soak() {
    echo "== $1: running the seeded model soak for ${secs}s instead of cargo-fuzz"
    DISKSTORE_MODEL_SECONDS="$secs" cargo test -p diskstore --test reliability_model \
        -- --nocapture
}

if [ -n "${FUZZ_NO_CARGO_FUZZ:-}" ]; then
    soak "FUZZ_NO_CARGO_FUZZ is set"
    exit
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { soak "cargo-fuzz could not be installed"; exit; }
fi

export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
mkdir -p fuzz/corpus/ops
# ASan also watches the bundled SQLite C code, not only unsafe Rust.
opts=(ops --sanitizer address --target-dir "$target_dir")
echo "== building the fuzz target (target dir $target_dir)"
cargo fuzz build "${opts[@]}" || { soak "the cargo-fuzz target does not build here"; exit; }
echo "== fuzzing for ${secs}s"
cargo fuzz run "${opts[@]}" fuzz/corpus/ops -- -max_total_time="$secs" -max_len=4096 -len_control=0 \
    -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
