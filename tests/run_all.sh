#!/usr/bin/env bash
# Run every test program given as an argument; print the overall tally as
# "N passed, N failed" and exit non-zero if anything failed.
set -u
passed=0
failed=0
for t in "$@"; do
    out=$("$t" 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed$/\1/')
    f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed$/\2/')
    if [ -z "$line" ]; then
        p=0
        f=1
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        printf '%s\n' "$out"
        echo "FAILED: $t (exit $rc)"
    else
        echo "ok: $t ($p tests)"
    fi
done
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
