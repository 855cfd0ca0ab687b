#!/usr/bin/env bash
# Instructions per call, ours vs the rusqlite floor, counted by callgrind inside
# icount's measured() only. Each figure is (count at n2 - count at n1) / (n2 - n1), so the
# one-time statement preparation drops out.
#
#   bash crates/diskstore/benches/icount.sh [op ...]     # default: every op
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
bin="$(cargo bench -q -p diskstore --bench icount --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "icount" and m["executable"]:
        print(m["executable"])')"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

count() { # op side n -> instructions inside measured()
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' \
        --callgrind-out-file="$out/cg" "$bin" "$1" "$2" "$3" >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$out/cg"
}

ops=("$@")
[[ ${#ops[@]} -gt 0 ]] || ops=(get get_miss contains len insert overwrite remove txn_get txn_insert iterate scan bulk)
printf '%-12s %12s %12s %7s   (instructions per call; iterate per row, bulk per entry)\n' op ours floor ratio
for op in "${ops[@]}"; do
    case "$op" in
        iterate | scan) n1=1 n2=2 per=20000 ;;
        bulk) n1=1 n2=3 per=1000 ;;
        *) n1=100 n2=600 per=1 ;;
    esac
    declare -A ic=()
    for side in ours floor; do
        a="$(count "$op" "$side" "$n1")"
        b="$(count "$op" "$side" "$n2")"
        ic[$side]=$(( (b - a) / ((n2 - n1) * per) ))
    done
    ratio="$(python3 -c "print(f'{${ic[ours]} / ${ic[floor]}:.3f}')")"
    printf '%-12s %12d %12d %7s\n' "$op" "${ic[ours]}" "${ic[floor]}" "$ratio"
done
