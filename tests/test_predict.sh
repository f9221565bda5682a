#!/usr/bin/env bash
# test_predict.sh - hcr predict and hcr read as a user runs them: real image
# files in several formats and polarities, standard input, JSON, exit codes,
# and every kind of bad input with its message. Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"

expect 0 "usage: hcr predict" -- "$HCR" predict --help
expect 0 "usage: hcr read" -- "$HCR" read --help
expect 2 "which model?" -- "$HCR" predict
expect 2 "which image?" -- "$HCR" predict "$TMP/m.safetensors"
expect 2 "--min-confidence: 'x'" -- "$HCR" predict --min-confidence x m a.png

"$HCR" train --data "$DATA" --limit 12000 --epochs 2 --no-report -q --out "$TMP/m.safetensors" >/dev/null 2>&1
[ -s "$TMP/m.safetensors" ] && ok || bad "training a model"
M=$TMP/m.safetensors

# generated numbers from MNIST test digits, written as images
"$HCR" read "$M" --eval --data "$DATA" --count 10 --save-examples "$TMP" >"$TMP/eval.txt" 2>&1
grep -q "separate: sequence accuracy" "$TMP/eval.txt" && grep -q "touching: sequence accuracy" "$TMP/eval.txt" && ok || bad "read --eval: $(cat "$TMP/eval.txt")"
# how many of the saved examples of a case (separate, touching) read exactly
read_right() {
    local right=0 f want got
    for f in "$TMP"/"$1"-0*.png; do
        want=$(basename "$f" .png | sed 's/.*-//')
        got=$("$HCR" read "$M" "$f" --min-confidence 0 2>/dev/null)
        [ "$got" = "$want" ] && right=$((right + 1))
    done
    echo "$right"
}
right=$(read_right separate)
[ "$right" -ge 6 ] && ok || bad "read: only $right of 10 generated numbers read exactly"
# with a touching pair: the pair is cut apart (as a file, as in --eval)
right=$(read_right touching)
[ "$right" -ge 6 ] && ok || bad "read: only $right of 10 numbers with a touching pair read exactly"
f=$(ls "$TMP"/separate-00-*.png)
"$HCR" read "$M" "$f" --json --min-confidence 0 >"$TMP/read.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["characters"])==len(d["text"]) and all(len(c["box"])==4 and 0<c["confidence"]<=1 for c in d["characters"])' "$TMP/read.json" && ok || bad "read --json: $(cat "$TMP/read.json")"
"$HCR" read "$M" --eval --data "$DATA" --count 20 --json >"$TMP/eval.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0<=d["separate"]["sequence_accuracy"]<=1 and 0<=d["touching"]["character_accuracy"]<=1' "$TMP/eval.json" && ok || bad "read --eval --json: $(cat "$TMP/eval.json")"

# one digit: a dark-on-white PNG cut from a generated number, and stdin
expect 0 "" -- "$HCR" predict "$M" "$f" -k 3
"$HCR" predict "$M" - <"$f" | grep -q "^standard input: " && ok || bad "predict from stdin"
"$HCR" predict "$M" "$f" --json --dump-preprocessed "$TMP/seen.png" >"$TMP/p.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[0]["prediction"] and len(d[0]["top"])==1' "$TMP/p.json" && ok || bad "predict --json: $(cat "$TMP/p.json")"
[ -s "$TMP/seen.png" ] && ok || bad "--dump-preprocessed wrote nothing"
# the dumped 28x28 is MNIST polarity already: predicting it again works
expect 0 "seen.png" -- "$HCR" predict "$M" "$TMP/seen.png" --min-confidence 0
# --raw: the first test image as 784 bytes
python3 -c 'import gzip,sys; d=gzip.open(sys.argv[1]).read(); open(sys.argv[2],"wb").write(d[16:16+784])' "$DATA/t10k-images-idx3-ubyte.gz" "$TMP/seven.raw" 2>/dev/null &&
    expect 0 "seven.raw: 7" -- "$HCR" predict "$M" --raw "$TMP/seven.raw" --min-confidence 0
expect 1 "--raw needs 784 bytes" -- "$HCR" predict "$M" --raw "$f"
# uncertain: exit 3
expect 3 "uncertain" -- "$HCR" predict "$M" "$f" --min-confidence 1

# bad input: each with its message, exit 1
expect 1 "cannot open" -- "$HCR" predict "$M" "$TMP/missing.png"
: >"$TMP/empty.png"
expect 1 "is empty" -- "$HCR" predict "$M" "$TMP/empty.png"
echo "just some text" >"$TMP/text.png"
expect 1 "not an image" -- "$HCR" predict "$M" "$TMP/text.png"
head -c 300 "$f" >"$TMP/cut.png"
expect 1 "corrupt or truncated" -- "$HCR" predict "$M" "$TMP/cut.png"
printf '\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\0\0\0\0\0\0\0\0' >"$TMP/huge.png"
expect 1 "more than the limit of 50000000 pixels" -- "$HCR" predict "$M" "$TMP/huge.png"
printf 'P5\n100000 100000\n255\n' >"$TMP/huge.pgm"
expect 1 "more than the limit" -- "$HCR" predict "$M" "$TMP/huge.pgm"
printf 'P5\n0 0\n255\n' >"$TMP/zero.pgm"
expect 1 "zero.pgm" -- "$HCR" predict "$M" "$TMP/zero.pgm"
printf 'P5\n40 30\n255\n' >"$TMP/blank.pgm"
head -c 1200 /dev/zero | tr '\0' '\310' >>"$TMP/blank.pgm"
expect 1 "no ink found" -- "$HCR" predict "$M" "$TMP/blank.pgm"
expect 1 "no ink found" -- "$HCR" read "$M" "$TMP/blank.pgm"
expect 1 "not an image" -- "$HCR" read "$M" "$TMP/text.png"
# an error among good images: the good ones are still answered, exit 1
out=$("$HCR" predict "$M" "$f" "$TMP/text.png" --min-confidence 0 2>/dev/null)
rc=$?
[ "$rc" -eq 1 ] && grep -q "$(basename "$f")" <<<"$out" && ok || bad "mixed good and bad: exit $rc, $out"

finish test_predict.sh
