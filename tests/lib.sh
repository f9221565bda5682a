# lib.sh - shared by the shell tests: the hcr binary and data to use, a
# scratch folder removed on exit, and the pass/fail tally. Source it, then
# call `expect CODE SUBSTRING -- command...`, `ok`, `bad MESSAGE`, and
# finish with `finish NAME`, which prints "<n> passed, <m> failed".
HCR=${HCR_BIN:-build/hcr}
DATA=${HCR_TEST_DATA:-../shared/data/mnist}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect <exit code> <substring of output> -- command...
expect() {
    local code=$1 want=$2
    shift 3
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$code" ]; then
        bad "$* -> exit $rc, expected $code; output: $out"
    elif [ -n "$want" ] && ! grep -qF -- "$want" <<<"$out"; then
        bad "$* -> output lacks '$want': $out"
    else
        ok
    fi
}

finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
