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
# --raw takes gzip too, as the other IDX readers: a .gz of 784 bytes, and an
# IDX file of three images, plain and .gz
if [ -s "$TMP/seven.raw" ]; then
    gzip -c "$TMP/seven.raw" >"$TMP/seven.raw.gz"
    expect 0 "seven.raw.gz: 7" -- "$HCR" predict "$M" --raw "$TMP/seven.raw.gz" --min-confidence 0
    python3 -c 'import gzip,sys; d=gzip.open(sys.argv[1]).read(); open(sys.argv[2],"wb").write(b"\0\0\x08\x03\0\0\0\x03\0\0\0\x1c\0\0\0\x1c"+d[16:16+3*784])' \
        "$DATA/t10k-images-idx3-ubyte.gz" "$TMP/three.idx" 2>/dev/null && gzip -c "$TMP/three.idx" >"$TMP/three.idx.gz"
    expect 0 "three.idx.gz[2]: 1" -- "$HCR" predict "$M" --raw "$TMP/three.idx.gz" --min-confidence 0
    expect 0 "three.idx[0]: 7" -- "$HCR" predict "$M" --raw "$TMP/three.idx" --min-confidence 0
    "$HCR" predict "$M" --raw - --min-confidence 0 <"$TMP/three.idx.gz" | grep -q "^standard input\[1\]: 2" && ok || bad "--raw .gz from stdin"
    # a damaged .gz: the message names the file, not zlib's <fd:N>
    head -c 400 "$TMP/three.idx.gz" >"$TMP/cut.idx.gz"
    expect 1 "cut.idx.gz': corrupt gzip data" -- "$HCR" predict "$M" --raw "$TMP/cut.idx.gz"
    printf '\x1f\x8b\x08\x00garbage-garbage-garbage' >"$TMP/bad.gz"
    out=$("$HCR" predict "$M" --raw "$TMP/bad.gz" 2>&1)
    [ $? -eq 1 ] && grep -q "bad.gz': corrupt gzip data" <<<"$out" && ! grep -q "<fd:" <<<"$out" && ok || bad "bad .gz: $out"
    "$HCR" predict "$M" --raw "$TMP/bad.gz" --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "bad.gz" in d[0]["error"]' && ok || bad "--raw error in --json"
    # and through the library's IDX reader (eval --data)
    mkdir -p "$TMP/badidx"
    for g in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-labels-idx1-ubyte; do ln -s "$(cd "$DATA" && pwd)/$g.gz" "$TMP/badidx/$g.gz"; done
    cp "$TMP/bad.gz" "$TMP/badidx/t10k-images-idx3-ubyte.gz"
    out=$("$HCR" eval "$M" --data "$TMP/badidx" 2>&1)
    [ $? -eq 1 ] && grep -q "t10k-images-idx3-ubyte.gz: corrupt gzip data" <<<"$out" && ! grep -q "<fd:" <<<"$out" && ok || bad "eval of a bad .gz: $out"
fi

# read --eval --save-examples creates its folder (with its parents) and
# fails, exit 1, when it cannot write there
"$HCR" read "$M" --eval --data "$DATA" --count 3 --save-examples "$TMP/new/examples" >/dev/null 2>&1 &&
    [ "$(ls "$TMP/new/examples" | wc -l)" -eq 6 ] && ok || bad "--save-examples into a new folder: $(ls -R "$TMP/new" 2>&1)"
: >"$TMP/plainfile"
expect 1 "cannot create folder $TMP/plainfile/ex" -- "$HCR" read "$M" --eval --data "$DATA" --count 3 --save-examples "$TMP/plainfile/ex"
mkdir -p "$TMP/ro"
chmod 555 "$TMP/ro"
if [ ! -w "$TMP/ro" ]; then # (root can write anywhere)
    expect 1 "--save-examples" -- "$HCR" read "$M" --eval --data "$DATA" --count 3 --save-examples "$TMP/ro"
fi
chmod 755 "$TMP/ro"

# class names from a model are printed escaped: a model file can hold any
# text, and an escape sequence must not reach the terminal
python3 - "$M" "$TMP/hostile.safetensors" <<'EOF' && ok || bad "writing a model with hostile class names"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
names = ["\x1b[31mred", "a\nb", "t\tab", "c1\u009bx", "bell\x07", "\x1b]0;title\x07", "6", "7", "8", "9"]
head["__metadata__"]["class_names"] = json.dumps(names)
text = json.dumps(head).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
EOF
H=$TMP/hostile.safetensors
clean() { # clean FILE: no ESC, BEL or C1 CSI byte in it
    ! LC_ALL=C grep -q "$(printf '[\033\007]')" "$1" && ! LC_ALL=C grep -q "$(printf '\302\233')" "$1"
}
"$HCR" predict "$H" "$f" -k 10 --min-confidence 0 >"$TMP/h.txt" 2>&1
if [ "$(wc -l <"$TMP/h.txt")" -eq 1 ] && clean "$TMP/h.txt" && grep -qF '\x1b[31mred' "$TMP/h.txt" &&
    grep -qF 'a\nb' "$TMP/h.txt" && grep -qF 't\tab' "$TMP/h.txt" && grep -qF 'c1\u009bx' "$TMP/h.txt" &&
    grep -qF '\x1b]0;title\x07' "$TMP/h.txt"; then ok; else bad "predict with hostile names: $(cat -v "$TMP/h.txt")"; fi
"$HCR" predict "$H" "$f" -k 10 --json >"$TMP/h.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert {c["class"] for c in d[0]["top"]} >= {"\x1b[31mred", "a\nb"}' "$TMP/h.json" && clean "$TMP/h.json" && ok || bad "predict --json with hostile names: $(cat -v "$TMP/h.json")"
"$HCR" read "$H" "$f" --min-confidence 1 >"$TMP/h.txt" 2>&1
clean "$TMP/h.txt" && grep -q "is uncertain" "$TMP/h.txt" && ok || bad "read with hostile names: $(cat -v "$TMP/h.txt")"
"$HCR" read "$H" "$f" --json >"$TMP/h.json" 2>&1
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/h.json" && clean "$TMP/h.json" && ok || bad "read --json with hostile names: $(cat -v "$TMP/h.json")"
expect 1 "'\x1b[31mred' in the model" -- "$HCR" eval "$H" --data "$DATA"
"$HCR" eval "$H" --data "$DATA" >"$TMP/h.txt" 2>&1
clean "$TMP/h.txt" && ok || bad "eval with hostile names: $(cat -v "$TMP/h.txt")"
"$HCR" read "$H" --eval --data "$DATA" --count 2 >"$TMP/h.txt" 2>&1
clean "$TMP/h.txt" && grep -qF '\x1b[31mred' "$TMP/h.txt" && ok || bad "read --eval with hostile names: $(cat -v "$TMP/h.txt")"

# bad input: each with its message, exit 1
expect 1 "cannot open" -- "$HCR" predict "$M" "$TMP/missing.png"
: >"$TMP/empty.png"
expect 1 "is empty" -- "$HCR" predict "$M" "$TMP/empty.png"
echo "just some text" >"$TMP/text.png"
expect 1 "not an image" -- "$HCR" predict "$M" "$TMP/text.png"
head -c 300 "$f" >"$TMP/cut.png"
expect 1 "corrupt" -- "$HCR" predict "$M" "$TMP/cut.png"
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
