#!/usr/bin/env bash
# test_cli.sh - the hcr program as a user runs it: --help everywhere, clear
# errors for bad options and files, a short real training run, eval (table
# and JSON), summary, and Ctrl-C during training still saving the model.
# Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"

# --help on every command, and hcr help COMMAND the same
expect 0 "usage: hcr <command>" -- "$HCR" --help
expect 0 "usage: hcr <command>" -- "$HCR" help
for c in train eval summary data report show predict read serve; do
    expect 0 "usage: hcr $c" -- "$HCR" "$c" --help
    expect 0 "usage: hcr $c" -- "$HCR" help "$c"
    [ "$("$HCR" help "$c" 2>&1)" = "$("$HCR" "$c" --help 2>&1)" ] && ok || bad "hcr help $c differs from hcr $c --help"
done
expect 2 "hcr help: unknown command 'nosuch'" -- "$HCR" help nosuch
expect 2 "one command at a time" -- "$HCR" help train eval
expect 2 "unknown command 'frobnicate'" -- "$HCR" frobnicate
expect 2 "usage: hcr" -- "$HCR"

# a bad option is one line in the command's own words (getopt says nothing
# itself), then the hint
one_error() { # one_error SUBSTRING -- command...: exit 2, exactly those two lines
    local want=$1 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] && grep -qF -- "$want" <<<"$out" &&
        grep -q "^Run 'hcr [a-z]* --help' for usage.$" <<<"$out"; then ok; else bad "$* -> exit $rc: $out"; fi
}
for c in train eval summary data report show predict read serve; do
    one_error "hcr $c: unknown option '--frobnicate'" -- "$HCR" "$c" --frobnicate
    one_error "hcr $c: unknown option '-Z'" -- "$HCR" "$c" -Z
done
one_error "hcr train: option '--epochs' needs a value" -- "$HCR" train --epochs
one_error "hcr eval: option '--data' needs a value" -- "$HCR" eval m.safetensors --data
one_error "hcr eval: option '--json' takes no value" -- "$HCR" eval m.safetensors --json=yes
one_error "hcr eval: option '--d' is ambiguous: --data, --dataset" -- "$HCR" eval m.safetensors --d x
one_error "hcr show: option '-n' needs a value" -- "$HCR" show -n
one_error "hcr predict: option '-k' needs a value" -- "$HCR" predict m.safetensors x.png -k
one_error "hcr eval: unknown option '-x'" -- "$HCR" eval --json -xh m.safetensors

# an unknown --dataset is a usage error (exit 2) before anything is loaded
for c in eval report; do
    one_error "hcr $c: unknown dataset 'nope'" -- "$HCR" "$c" "$TMP/missing.safetensors" --dataset nope
done
one_error "hcr show: unknown dataset 'nope'" -- "$HCR" show --dataset nope
one_error "hcr train: unknown dataset 'nope'" -- "$HCR" train --dataset nope
one_error "hcr read: unknown dataset 'nope'" -- "$HCR" read "$TMP/missing.safetensors" --eval --dataset nope
one_error "hcr data: unknown dataset 'nope'" -- "$HCR" data fetch nope
one_error "needs a folder (idx:DIR)" -- "$HCR" show --dataset idx:
# idx:DIR and --data together: which folder? (refused, not one of them ignored)
one_error "give one of them" -- "$HCR" show --dataset "idx:$TMP" --data "$DATA"
one_error "give one of them" -- "$HCR" train --dataset "idx:$TMP" --data "$DATA"
one_error "give one of them" -- "$HCR" eval "$TMP/missing.safetensors" --dataset "idx:$TMP" --data "$DATA"
one_error "is for --eval" -- "$HCR" read "$TMP/missing.safetensors" x.png --data "$DATA"

# summary takes the presets train takes
expect 0 "Total params: 329,962" -- "$HCR" summary --arch wide
expect 0 "BatchNormalization" -- "$HCR" summary --arch wide-bn
expect 0 "Total params: 225,034" -- "$HCR" summary --arch default
expect 1 "--arch" -- "$HCR" summary --arch wider

# -Werror for developers and CI (make check), not for a plain build
if command -v make >/dev/null && [ -f Makefile ]; then
    # (WERROR unset: make check and make sanitize pass WERROR=1 to the make
    # running this test, which puts it in the environment)
    mk() { env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u WERROR make -s -n -B BUILD="$TMP/mk" "$@" 2>/dev/null; }
    mk "$TMP/mk/src/core/error.o" | grep -q -- -Werror && bad "a plain build has -Werror" || ok
    mk WERROR=1 "$TMP/mk/src/core/error.o" | grep -q -- -Werror && ok || bad "WERROR=1 lacks -Werror"
    mk check | grep -q -- '-Werror.*src/core/error.c' && ok || bad "make check lacks -Werror"
fi

# bad option values
expect 2 "--epochs: 'zero' is not a whole number" -- "$HCR" train --epochs zero
expect 2 "--batch-size: '0' is not a whole number between 1" -- "$HCR" train --batch-size 0
expect 2 "--lr: 'abc' is not a number" -- "$HCR" train --lr abc
expect 2 "hcr train: unknown option '--frobnicate'" -- "$HCR" train --frobnicate
expect 1 "cannot read 'banana'" -- "$HCR" train --arch conv32-banana --data "$DATA"
expect 2 "which model?" -- "$HCR" eval
expect 1 "loading the model" -- "$HCR" eval "$TMP/missing.safetensors" --data "$DATA"
printf 'not a model' >"$TMP/junk.safetensors"
expect 1 "junk.safetensors" -- "$HCR" eval "$TMP/junk.safetensors" --data "$DATA"
expect 1 "loading mnist" -- "$HCR" train --data "$TMP/nowhere" --limit 100

# summary of the reference architecture
expect 0 "Total params: 225,034" -- "$HCR" summary
expect 0 "(None, 5, 5, 64)" -- "$HCR" summary

# a short real run, then eval as a table and as JSON
expect 0 "Test loss:" -- "$HCR" train --data "$DATA" --limit 3000 --epochs 1 --out "$TMP/m.safetensors"
[ -s "$TMP/m.safetensors" ] && ok || bad "no model file"
if [ -s "$TMP/m.history.csv" ] && head -1 "$TMP/m.history.csv" | grep -q '^epoch,loss,accuracy,val_loss,val_accuracy,seconds$' &&
    [ "$(wc -l <"$TMP/m.history.csv")" -eq 2 ]; then ok; else bad "history CSV"; fi
expect 0 "Confusion matrix" -- "$HCR" eval "$TMP/m.safetensors" --data "$DATA" --limit 500
expect 0 "Total params: 225,034" -- "$HCR" summary "$TMP/m.safetensors"
"$HCR" eval "$TMP/m.safetensors" --data "$DATA" --limit 500 --json >"$TMP/eval.json" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["images"]==500 and len(d["confusion"])==10 and sum(map(sum,d["confusion"]))==500 and 0<d["accuracy"]<=1' "$TMP/eval.json" 2>/dev/null; then ok; else bad "eval --json: $(cat "$TMP/eval.json")"; fi

# ---- inputs that are not plain files are refused at once, naming the file
# (a FIFO would block the program, /dev/zero would be read for 256 MiB);
# `timeout 5` makes a hang a failure
mkfifo "$TMP/fifo"
M=$TMP/m.safetensors
refused() { # refused SUBSTRING -- command...: exit 1 within 5 s, saying SUBSTRING
    local want=$1 out rc
    shift 2
    out=$(timeout 5 "$@" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" -eq 1 ] && grep -qF -- "$want" <<<"$out"; then ok; else bad "$* -> exit $rc: $out"; fi
}
for f in "$TMP/fifo" /dev/zero; do
    what="is a FIFO (named pipe), not a regular file"
    [ "$f" = /dev/zero ] && what="is a character device, not a regular file"
    refused "$f: $what" -- "$HCR" summary "$f"
    refused "$f: $what" -- "$HCR" eval "$f" --data "$DATA"
    refused "$f: $what" -- "$HCR" report "$f" --data "$DATA"
    refused "$f: $what" -- "$HCR" predict "$f" x.png
    refused "$f: $what" -- "$HCR" read "$f" x.png
    refused "$f: $what" -- "$HCR" predict "$M" "$f"
    refused "$f: $what" -- "$HCR" predict "$M" --raw "$f"
    refused "$f: $what" -- "$HCR" read "$M" "$f"
done
refused "$TMP: is a directory" -- "$HCR" predict "$M" "$TMP"
# IDX files: a FIFO, or a link to /dev/zero, in place of one
mkdir -p "$TMP/idx-fifo" "$TMP/idx-zero"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    for e in .gz ""; do
        if [ -e "$DATA/$f$e" ]; then
            ln -s "$(cd "$DATA" && pwd)/$f$e" "$TMP/idx-fifo/$f$e"
            ln -s "$(cd "$DATA" && pwd)/$f$e" "$TMP/idx-zero/$f$e"
            break
        fi
    done
done
rm -f "$TMP"/idx-fifo/t10k-images-idx3-ubyte* "$TMP"/idx-zero/train-labels-idx1-ubyte*
mkfifo "$TMP/idx-fifo/t10k-images-idx3-ubyte"
ln -s /dev/zero "$TMP/idx-zero/train-labels-idx1-ubyte"
refused "idx-fifo/t10k-images-idx3-ubyte: is a FIFO" -- "$HCR" eval "$M" --dataset "idx:$TMP/idx-fifo"
refused "idx-fifo/t10k-images-idx3-ubyte: is a FIFO" -- "$HCR" eval "$M" --data "$TMP/idx-fifo"
refused "idx-fifo/t10k-images-idx3-ubyte: is a FIFO" -- "$HCR" show --data "$TMP/idx-fifo"
refused "idx-zero/train-labels-idx1-ubyte: is a character device" -- "$HCR" train --data "$TMP/idx-zero" --limit 100
refused "idx-zero/train-labels-idx1-ubyte: is a character device" -- "$HCR" show --dataset "idx:$TMP/idx-zero" --split train

# Ctrl-C during training: exit 130, the model and history are still saved
"$HCR" train --data "$DATA" --limit 30000 --epochs 50 --out "$TMP/int.safetensors" >"$TMP/int.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q "Training on" "$TMP/int.log" 2>/dev/null && break
    sleep 0.2
done
sleep 1
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 130 ] && [ -s "$TMP/int.safetensors" ] && grep -q "Interrupted after" "$TMP/int.log"; then ok; else bad "interrupt: exit $rc, $(cat "$TMP/int.log")"; fi
ls "$TMP" | grep -q 'tmp' && bad "temporary files left: $(ls "$TMP")" || ok

finish test_cli.sh
