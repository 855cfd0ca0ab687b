#!/usr/bin/env bash
# Instructions per write (callgrind, every thread: the background checkpointer's work counts)
# of `DiskCache::set` and `DiskStore::insert` of new keys with 1 KiB values:
# (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up and warm-up drop out.
#
#   bash crates/diskstore/examples/cache_icount.sh [N1 N2]     (default 1000 5000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
n1=${1:-1000}
n2=${2:-5000}
cargo build -q --release -p diskstore --example cache_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/cache_bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ir() { # op n -> total instructions, all threads
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" count "$1" "$2" >/dev/null 2>&1
    awk '/^summary:/ {s += $2} END {print s}' "$out"/cg*
    rm -f "$out"/cg*
}
for op in ${OPS:-cache-set store-set}; do
    a=$(ir "$op" "$n1")
    b=$(ir "$op" "$n2")
    echo "$op: $(( (b - a) / (n2 - n1) )) instructions per write"
done
