#!/usr/bin/env bash
# run.sh - runs the libFuzzer harnesses built by fuzz.mk (make fuzz calls
# this; docs/reliability.md says more).
#
#   tests/fuzz/run.sh BUILD SECONDS [TARGET...]
#
# For each target (default: every tests/fuzz/fuzz_*.c), first replays its
# committed inputs (seeds/ and the minimized crashers in regress/), then
# fuzzes for SECONDS (0: replay only) starting from those and from the
# corpus kept in BUILD/corpus/<target>/, which grows between runs. A crash,
# leak, timeout or allocation over the target's limit fails the target; the
# input is saved in BUILD/artifacts/<target>/ and the command to reproduce
# it is printed. Exits 1 if any target failed.
#
# Per-target limits (the library's documented caps, with room for the
# sanitizers): largest input, -malloc_limit_mb (one allocation), -timeout.
# FUZZ_EXTRA adds libFuzzer options (campaign.sh uses it).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: run.sh BUILD SECONDS [TARGET...]}
seconds=${2:?usage: run.sh BUILD SECONDS [TARGET...]}
shift 2
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in tests/fuzz/fuzz_*.c; do
        t=${f#tests/fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi

# target: max_len malloc_limit_mb timeout_s
limits() {
    case $1 in
    idx)     echo "65536 256 10" ;;   # growth bounded by the data read (2x + 1 MiB)
    model)   echo "65536 256 10" ;;   # every allocation bounded by the file's size
    spec)    echo "512 512 10" ;;     # models of <= 2 M parameters are built
    mapping) echo "16384 64 10" ;;    # files of at most 1 MiB, read whole
    image)   echo "65536 512 20" ;;   # decoding: about 8 bytes a pixel (hcr.h)
    read)    echo "65536 256 20" ;;
    checkpoint) echo "65536 256 20" ;; # a model file plus the optimizer's state
    serve)   echo "81920 256 20" ;;   # a body of at most 64 KiB (over it: 413), images of 32K pixels
    *)       echo "4096 2048 10" ;;
    esac
}

# One thread for OpenBLAS (the fuzz build has no OpenMP of its own).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
    bin=$build/fuzz_$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing (build it with make fuzz)" >&2
        failed+=("$t")
        continue
    fi
    read -r max_len malloc_mb timeout_s < <(limits "$t")
    corpus=$build/corpus/$t
    artifacts=$build/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    dirs=()
    for d in tests/fuzz/$t/seeds tests/fuzz/$t/regress; do
        [ -d "$d" ] && dirs+=("$d")
    done
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    opts=(-max_len="$max_len" -malloc_limit_mb="$malloc_mb" -rss_limit_mb=2048 -timeout="$timeout_s"
          -artifact_prefix="$artifacts/" -print_final_stats=1 "${dict[@]}" ${FUZZ_EXTRA:-})
    log=$build/fuzz-$t.log
    if [ "$seconds" -gt 0 ]; then
        run=(-max_total_time="$seconds")
    else
        run=(-runs=0)
    fi
    echo "fuzz: $t (${seconds}s): $bin ${opts[*]} ${run[*]} $corpus ${dirs[*]}"
    "$bin" "${opts[@]}" "${run[@]}" "$corpus" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    stats=$(grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" | sed 's/^stat:://' | tr '\n' ' ')
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        echo "fuzz: $t FAILED (exit $rc); the end of $log:" >&2
        tail -40 "$log" >&2
        for a in "$artifacts"/*; do
            [ -f "$a" ] && echo "fuzz: reproduce with: $bin ${opts[*]} $a" >&2
        done
        failed+=("$t")
    else
        echo "fuzz: $t ok: $cov $stats"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
