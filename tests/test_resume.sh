#!/usr/bin/env bash
# test_resume.sh - training that survives kill -9. A short run is killed
# with SIGKILL at random moments, and at chosen system calls while its
# checkpoint is being written (strace's fault injection: a write in the
# middle of the file, the fsync, the rename); each time `hcr train --resume`
# continues it (or, killed before its first checkpoint, a new run starts),
# and the weights at the end must be bit-identical to those of a run never
# stopped. Also: SIGTERM mid-epoch, checks of the outputs before any work,
# and a full disk that keeps the old model. Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"

# 1,800 training and 200 validation images, 4 epochs of 15 steps.
RECIPE=(--data "$DATA" --limit 2000 --val-split 200 --epochs 4 --arch conv8-pool-dense32-drop0.25
        --threads 2 -q --no-report)

# The data section of a model file (the tensors, without the header).
tensors() {
    python3 -c 'import struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; sys.stdout.buffer.write(b[8+n:])' "$1"
}

same_weights() { cmp -s <(tensors "$1") <(tensors "$2"); }

start=$(date +%s%N)
"$HCR" train "${RECIPE[@]}" --out "$TMP/ref.safetensors" >/dev/null 2>&1 || bad "reference run failed"
ref_seconds=$(awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.3f", ns / 1e9 }')
[ ! -e "$TMP/ref.safetensors.ckpt" ] && ok || bad "the checkpoint stays after a finished run"

# Continue a killed run to its end: --resume while there is a checkpoint,
# else (killed before the first one) a new run.
finish_run() {
    local out=$1
    if [ -e "$out.ckpt" ]; then
        "$HCR" train --resume --out "$out" "${RECIPE[@]}" >"$TMP/resume.log" 2>&1
    else
        "$HCR" train "${RECIPE[@]}" --out "$out" >"$TMP/resume.log" 2>&1
    fi
}

check_resumed() {
    local out=$1 what=$2
    if finish_run "$out" && same_weights "$out" "$TMP/ref.safetensors"; then
        ok
    else
        bad "$what: the resumed run differs from the uninterrupted one: $(cat "$TMP/resume.log")"
    fi
}

# SIGKILL at 12 random moments over the run's length (start-up, epochs,
# checkpoint writes, the final save).
for i in $(seq 1 12); do
    out="$TMP/k$i.safetensors"
    delay=$(awk -v s="$ref_seconds" -v r="$RANDOM" 'BEGIN { printf "%.3f", s * (0.05 + 0.95 * r / 32767) }')
    "$HCR" train "${RECIPE[@]}" --out "$out" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    check_resumed "$out" "killed after ${delay}s"
done

# SIGKILL exactly inside a checkpoint write (strace -f follows the OpenMP
# threads). Before the model, only the checkpoints are written: each with
# one fsync of the temporary file, its rename, then one fsync of the
# folder. So fsync 3 is epoch 2's file before its rename, fsync 2 the
# folder after epoch 1's rename, rename N epoch N's; write 40 falls in the
# middle of a checkpoint's data.
if command -v strace >/dev/null; then
    for inject in 'fsync:when=3' 'fsync:when=2' 'rename:when=2' 'rename:when=3' 'write:when=40'; do
        out="$TMP/s${inject%%:*}${inject##*=}.safetensors"
        { strace -f -o /dev/null -e trace="${inject%%:*}" -e inject="${inject%%:*}:signal=KILL:${inject#*:}" \
            "$HCR" train "${RECIPE[@]}" --out "$out" >/dev/null 2>&1; } 2>/dev/null
        [ ! -e "$out" ] && ok || bad "$inject: the run was not killed"
        # Never torn: a checkpoint left behind loads (or --resume fails).
        check_resumed "$out" "killed at $inject"
    done
else
    bad "strace is missing: scripts/setup.sh --test installs it"
fi

# Signals at a chosen instant, not after a guessed delay (a fast machine
# finishes this run in a tenth of a second): strace delivers the signal
# when the run renames its checkpoint into place.
# LeakSanitizer cannot run under ptrace: an ASan build's leak check is off
# for these runs (the others check it).
signal_at() {
    local sig=$1 when=$2; shift 2
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -o /dev/null -e trace=rename -e inject="rename:signal=$sig:when=$when" "$@"
}

# SIGTERM mid-epoch (delivered at epoch 1's checkpoint, noticed in epoch
# 2's first step): the model, history and a mid-epoch checkpoint are saved
# (exit 130), and the resumed run is still bit-identical.
out="$TMP/term.safetensors"
signal_at TERM 1 "$HCR" train "${RECIPE[@]}" --out "$out" >"$TMP/term.log" 2>&1
rc=$?
if [ "$rc" -eq 130 ] && [ -s "$out" ] && [ -s "$out.ckpt" ]; then ok; else bad "SIGTERM: exit $rc: $(cat "$TMP/term.log")"; fi
grep -q "Interrupted after 1 complete epoch" "$TMP/term.log" && ok || bad "SIGTERM: the run does not say where it stopped: $(cat "$TMP/term.log")"
check_resumed "$out" "SIGTERM"
[ ! -e "$out.ckpt" ] && ok || bad "the checkpoint stays after the resumed run finished"

# --resume refuses what does not fit the run, and says when there is none.
# Killed at epoch 2's rename: epoch 1's checkpoint is left.
{ signal_at KILL 2 "$HCR" train "${RECIPE[@]}" --out "$TMP/r.safetensors" >/dev/null 2>&1; } 2>/dev/null
if [ -e "$TMP/r.safetensors.ckpt" ]; then
    expect 2 "--batch-size differs from the run being resumed" -- \
        "$HCR" train --resume --out "$TMP/r.safetensors" --batch-size 64
    expect 2 "--arch differs" -- "$HCR" train --resume="$TMP/r.safetensors.ckpt" --arch conv8-dense8
    # No options at all: the checkpoint holds the recipe.
    expect 0 "Model saved to $TMP/r.safetensors" -- "$HCR" train --resume="$TMP/r.safetensors.ckpt" -q --no-report
else
    bad "no checkpoint after the first epoch"
fi
expect 1 "no checkpoint $TMP/none.safetensors.ckpt to resume from" -- \
    "$HCR" train --resume --out "$TMP/none.safetensors"
expect 1 "a model file, not a checkpoint" -- "$HCR" train --resume="$TMP/ref.safetensors"
expect 2 "do not go together" -- "$HCR" train --resume --no-checkpoint

# Outputs are checked before any data is read: well under a second, exit 1.
mkfifo "$TMP/fifo"
mkdir "$TMP/adir"
for bad_out in "$TMP/missing/m.safetensors" "$TMP/fifo" "$TMP/adir" /dev/null; do
    s=$(date +%s%N)
    expect 1 "$bad_out" -- "$HCR" train --out "$bad_out" --data "$TMP/nowhere"
    ms=$(( ($(date +%s%N) - s) / 1000000 ))
    [ "$ms" -lt 1000 ] && ok || bad "--out $bad_out took ${ms} ms to refuse"
done
[ -p "$TMP/fifo" ] && [ -d "$TMP/adir" ] && ok || bad "a FIFO or a folder was replaced"
expect 1 "--history" -- "$HCR" train --history "$TMP/missing/h.csv" --out "$TMP/x.safetensors"
touch "$TMP/afile"
expect 1 "Not a directory" -- "$HCR" train --out "$TMP/afile/m.safetensors"
touch "$TMP/m2_report"
expect 1 "the report folder: $TMP/m2_report: $TMP/m2_report is a file, not a folder" -- \
    "$HCR" train --out "$TMP/m2.safetensors"

# A symbolic link is written through: it still points at the new model.
mkdir "$TMP/real"
ln -s real/m.safetensors "$TMP/link.safetensors"
expect 0 "Model saved" -- "$HCR" train "${RECIPE[@]}" --epochs 1 --out "$TMP/link.safetensors"
[ -L "$TMP/link.safetensors" ] && [ -s "$TMP/real/m.safetensors" ] && ok || bad "the link was replaced"

# A full disk (a file size limit): the error names the file and the old
# model is kept whole.
cp "$TMP/ref.safetensors" "$TMP/full.safetensors"
out=$( (ulimit -f 64; "$HCR" train "${RECIPE[@]}" --epochs 1 --out "$TMP/full.safetensors") 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && grep -q "full.safetensors.ckpt: File too large" <<<"$out"; then ok; else bad "full disk: exit $rc: $out"; fi
cmp -s "$TMP/full.safetensors" "$TMP/ref.safetensors" && ok || bad "full disk: the old model changed"
out=$( (ulimit -f 64; "$HCR" train "${RECIPE[@]}" --epochs 1 --no-checkpoint --out "$TMP/full.safetensors") 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && grep -q "saving the model: .*full.safetensors: File too large" <<<"$out"; then ok; else bad "full disk, no checkpoint: exit $rc: $out"; fi
cmp -s "$TMP/full.safetensors" "$TMP/ref.safetensors" && ok || bad "full disk: the old model changed"
# The temporary files of the runs killed mid-write went with the next write.
[ -z "$(find "$TMP" -name '*.tmp-*')" ] && ok || bad "temporary files left: $(find "$TMP" -name '*.tmp-*')"

finish test_resume.sh
