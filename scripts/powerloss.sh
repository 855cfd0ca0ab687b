#!/usr/bin/env bash
# Power-loss and I/O-fault simulation (crates/diskstore/tests/powerloss/).
#
#   scripts/powerloss.sh                 # 3,000 cuts and 1,000 fault runs, random seed
#   N=10000 scripts/powerloss.sh         # more cuts (FAULTS= sets the fault runs)
#   SEED=123 scripts/powerloss.sh        # replay a campaign
#   CASE=cut:<workload>:<n> scripts/powerloss.sh   # replay one case (printed with a violation)
#   KIND=FileCache scripts/powerloss.sh  # only one kind of workload (Store, Cache, Migration,
#                                        # FileCache: the cache's value files)
#
# `make powerloss N=... SEED=... CASE=...` runs this. The last line is always
# `power-loss: N cuts, V violations`; the exit status is non-zero when V > 0.
set -uo pipefail
cd "$(dirname "$0")/.."

export POWERLOSS_CUTS="${N:-3000}"
export POWERLOSS_FAULTS="${FAULTS:-}"
export DISKSTORE_SEED="${SEED:-}"
export POWERLOSS_CASE="${CASE:-}"
export POWERLOSS_KIND="${KIND:-}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test -q -p diskstore --test powerloss -- --ignored --exact power_loss_campaign \
    --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

seed="$(grep -o 'DISKSTORE_SEED=[0-9]*' "$log" | head -1 | cut -d= -f2)"
line="$(grep '^power-loss:' "$log" | tail -1)"
echo
if [ -n "$seed" ] && [ -z "$POWERLOSS_CASE" ]; then
    echo "replay this campaign: make powerloss SEED=$seed N=$POWERLOSS_CUTS${FAULTS:+ FAULTS=$FAULTS}${KIND:+ KIND=$KIND}"
fi
if [ -z "$line" ]; then
    line="power-loss: 0 cuts, 1 violations (the run did not finish; see above)"
    [ "$status" -eq 0 ] && status=1
fi
echo "$line"
exit "$status"
