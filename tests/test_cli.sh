#!/usr/bin/env bash
# test_cli.sh - the hcr program as a user runs it: --help everywhere, clear
# errors for bad options and files, a short real training run, eval (table
# and JSON), summary, and Ctrl-C during training still saving the model.
# Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"

# --help on every command
expect 0 "usage: hcr <command>" -- "$HCR" --help
for c in train eval summary data; do
    expect 0 "usage: hcr $c" -- "$HCR" "$c" --help
done
expect 2 "unknown command 'frobnicate'" -- "$HCR" frobnicate
expect 2 "usage: hcr" -- "$HCR"

# bad option values
expect 2 "--epochs: 'zero' is not a whole number" -- "$HCR" train --epochs zero
expect 2 "--batch-size: '0' is not a whole number between 1" -- "$HCR" train --batch-size 0
expect 2 "--lr: 'abc' is not a number" -- "$HCR" train --lr abc
expect 2 "unknown or incomplete option" -- "$HCR" train --frobnicate
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
