#!/usr/bin/env bash
# campaign.sh - the long fuzzing campaign (docs/reliability.md): each target
# in turn, one process at a time, for its own number of seconds or 10
# million executions, whichever comes first. libFuzzer's fork mode (one
# child at a time) keeps going after a crash, saving every crashing input
# in BUILD/campaign/artifacts/<target>/.
#
#   tests/fuzz/campaign.sh BUILD TARGET:SECONDS...
#   e.g. tests/fuzz/campaign.sh build/fuzz spec:600 mapping:900 image:1800
#
# Each target's binary is copied into BUILD/campaign/ when its turn comes,
# so a rebuild during the campaign reaches the targets not started yet. The
# log of each is BUILD/campaign/fuzz-<target>.log; the corpus grows in
# BUILD/campaign/corpus/<target>/.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: campaign.sh BUILD TARGET:SECONDS...}
shift
mkdir -p "$build/campaign"
for arg in "$@"; do
    t=${arg%%:*}
    s=${arg#*:}
    cp "$build/fuzz_$t" "$build/campaign/fuzz_$t" || continue
    echo "campaign: $t for ${s}s from $(date -u +%H:%M:%S)"
    FUZZ_EXTRA="-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -runs=10000000" \
        tests/fuzz/run.sh "$build/campaign" "$s" "$t"
    echo "campaign: $t done at $(date -u +%H:%M:%S); artifacts: $(ls "$build/campaign/artifacts/$t" 2>/dev/null | wc -l)"
done
