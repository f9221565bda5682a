#!/usr/bin/env bash
# test_datasets.sh - datasets by name, as a user meets them: hcr data list,
# a letters model trained on a fixture in EMNIST's layout whose class names
# reach the model file, eval, the report, predict and read (a word);
# fetching EMNIST from an archive (a fake one, served from a file:// URL);
# idx:DIR with classes.txt; the errors for bad names and files; and a
# short real Fashion-MNIST run when Debian's dataset-fashion-mnist is
# installed. Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"
FIXTURE=${HCR_FIXTURE:-build/tests/fixture_letters}
HCR=$(cd "$(dirname "$HCR")" && pwd)/$(basename "$HCR") # the idx test runs elsewhere
export HCR_DATA="$TMP/cache" # never the user's cache

expect 0 "usage: hcr data list" -- "$HCR" data --help
expect 0 "emnist-letters" -- "$HCR" data list
expect 0 "idx:DIR" -- "$HCR" data list
"$HCR" data list --json >"$TMP/list.json" 2>&1
if python3 -c '
import json, sys
d = {x["name"]: x for x in json.load(open(sys.argv[1]))}
assert d["emnist-letters"]["classes"] == 26 and d["emnist-balanced"]["classes"] == 47
assert d["mnist"]["train"] == 60000 and d["emnist-byclass"]["classes"] == 62
assert not d["emnist-letters"]["present"] and d["emnist-letters"]["directory"].endswith("/cache/emnist")
for k in ("mnist", "fashion-mnist", "kmnist", "emnist-digits"): assert k in d
' "$TMP/list.json" 2>/dev/null; then ok; else bad "data list --json: $(cat "$TMP/list.json")"; fi

# unknown names and missing data say what to do
expect 2 "unknown dataset 'emnist-greek'" -- "$HCR" train --dataset emnist-greek
expect 2 "unknown dataset 'nope'" -- "$HCR" data fetch nope
expect 2 "nothing to fetch" -- "$HCR" data fetch "idx:$TMP"
expect 1 "emnist-letters-mapping.txt is missing" -- "$HCR" train --dataset emnist-letters --data "$TMP"
expect 1 "idx:$TMP/none" -- "$HCR" train --dataset "idx:$TMP/none"
expect 1 "cannot read 'banana'" -- "$HCR" train --dataset emnist-letters --arch conv32-banana

refused() { # refused SUBSTRING -- command...: exit 1 within 5 s, saying SUBSTRING
    local want=$1 out rc
    shift 2
    out=$(timeout 5 "$@" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" -eq 1 ] && grep -qF -- "$want" <<<"$out"; then ok; else bad "$* -> exit $rc: $out"; fi
}
clean() { # clean FILE: no ESC, BEL or C1 control (U+009B, CSI) in it
    ! LC_ALL=C grep -q "$(printf '[\033\007]')" "$1" && ! LC_ALL=C grep -q "$(printf '\302\233')" "$1"
}

# ---- letters: a fixture in EMNIST's layout (transposed, labels 1..26, mapping file)
L="$TMP/letters"
mkdir -p "$L"
"$FIXTURE" "$L" 100 12 || bad "fixture"
expect 0 "test accuracy" -- "$HCR" train --dataset emnist-letters --data "$L" --epochs 4 --arch conv32-pool-dense64 \
    --out "$TMP/letters.safetensors" --quiet
python3 - "$TMP/letters.safetensors" 2>/dev/null <<'EOF' && ok || bad "model metadata: class names / dataset"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
meta = json.loads(raw[8:8 + n])["__metadata__"]
names = json.loads(meta["class_names"])
assert names == [chr(65 + i) for i in range(26)], names
assert meta["dataset"] == "emnist-letters" and meta["num_classes"] == "26"
assert float(meta["test_accuracy"]) >= 0.9, meta["test_accuracy"]
EOF
"$HCR" eval "$TMP/letters.safetensors" --data "$L" >"$TMP/eval.txt" 2>&1
if grep -qE '^ +A +B +C' <(sed -n '/Confusion/,+1p' "$TMP/eval.txt" | tail -1 | sed 's/^ */ /') &&
    grep -qE '^Z +[0-9.]+ ' "$TMP/eval.txt"; then ok; else bad "eval table lacks letters: $(head -20 "$TMP/eval.txt")"; fi
"$HCR" eval "$TMP/letters.safetensors" --data "$L" --json >"$TMP/eval.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["classes"][:3]==["A","B","C"] and len(d["confusion"])==26' "$TMP/eval.json" 2>/dev/null && ok || bad "eval --json classes: $(head -c 300 "$TMP/eval.json")"
[ -s "$TMP/letters_report/samples.png" ] && grep -q ">Z<" "$TMP/letters_report/report.html" && ok || bad "letters report"
# a letters model evaluated on digits is refused, not mislabelled
expect 1 "trained on another dataset" -- "$HCR" eval "$TMP/letters.safetensors" --dataset mnist --data "$DATA"

# predict prints the letter, read reads a word
"$FIXTURE" --word K "$TMP/k.png" && "$FIXTURE" --word HELLO "$TMP/hello.png" && "$FIXTURE" --word WORD "$TMP/word.jpg" || bad "word images"
expect 0 "K (" -- "$HCR" predict "$TMP/letters.safetensors" "$TMP/k.png"
"$HCR" predict "$TMP/letters.safetensors" "$TMP/k.png" --json >"$TMP/k.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d[0] if isinstance(d,list) else d; assert d["prediction"]=="K"' "$TMP/k.json" 2>/dev/null && ok || bad "predict --json: $(cat "$TMP/k.json")"
expect 0 "HELLO" -- "$HCR" read "$TMP/letters.safetensors" "$TMP/hello.png" --min-confidence 0
expect 0 "WORD" -- "$HCR" read "$TMP/letters.safetensors" "$TMP/word.jpg" --min-confidence 0
"$HCR" read "$TMP/letters.safetensors" --eval --data "$L" --count 40 --json >"$TMP/read.json" 2>&1
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["separate"]["character_accuracy"] >= 0.8, d' "$TMP/read.json" 2>/dev/null &&
    ok || bad "read --eval on letters: $(cat "$TMP/read.json")"
expect 0 "#0  " -- "$HCR" show --dataset emnist-letters --data "$L" -n 2
# a mapping file that is a FIFO is refused at once, not waited on
mkdir -p "$TMP/L2"
ln -s "$L"/emnist-letters-*.gz "$TMP/L2/"
mkfifo "$TMP/L2/emnist-letters-mapping.txt"
refused "emnist-letters-mapping.txt: is a FIFO (named pipe), not a regular file" -- \
    "$HCR" show --dataset emnist-letters --data "$TMP/L2"

# ---- fetching EMNIST from its archive: a fake one with the fixture files under gzip/
if command -v unzip >/dev/null; then
    mkdir -p "$TMP/zip/gzip"
    cp "$L"/emnist-letters-* "$TMP/zip/gzip/"
    python3 -c '
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for f in sorted(os.listdir(sys.argv[2])):
        z.write(os.path.join(sys.argv[2], f), "gzip/" + f)
' "$TMP/emnist.zip" "$TMP/zip/gzip"
    md5=$(md5sum "$TMP/emnist.zip" | cut -c1-32)
    HCR_EMNIST_URL="file://$TMP/emnist.zip" HCR_EMNIST_MD5=0123456789abcdef0123456789abcdef \
        expect 1 "has md5 $md5, expected 0123456789abcdef0123456789abcdef" -- "$HCR" data fetch emnist-letters
    [ -e "$TMP/cache/emnist/gzip.zip" ] && bad "a wrong archive was kept" || ok
    HCR_EMNIST_URL="file://$TMP/emnist.zip" HCR_EMNIST_MD5=$md5 \
        expect 0 "emnist-letters is ready in $TMP/cache/emnist" -- "$HCR" data fetch emnist-letters
    [ -s "$TMP/cache/emnist/emnist-letters-mapping.txt" ] && [ -s "$TMP/cache/emnist/gzip.zip" ] && ok || bad "fetch left $(ls "$TMP/cache/emnist")"
    # now in the cache: used without --data, and listed as present
    expect 0 "#1  label B" -- "$HCR" show --dataset emnist-letters -n 2
    "$HCR" data list --json | python3 -c 'import json,sys; d={x["name"]:x for x in json.load(sys.stdin)}; assert d["emnist-letters"]["present"]' 2>/dev/null && ok || bad "list after fetch"
    # another split is looked for in the kept archive (which lacks it here)
    HCR_EMNIST_URL="file://$TMP/nowhere.zip" HCR_EMNIST_MD5=$md5 \
        expect 1 "does not hold gzip/emnist-balanced-train-images-idx3-ubyte.gz" -- "$HCR" data fetch emnist-balanced
    ls -a "$TMP/cache/emnist" | grep -q -e '\.part-' -e '\.fetch-' && bad "temporary files left: $(ls -a "$TMP/cache/emnist")" || ok
else
    echo "(skipped the EMNIST archive checks: unzip is not installed)"
fi

# ---- KMNIST's mirror: an MD5 mismatch is reported, nothing is kept
mkdir -p "$TMP/kmirror"
cp "$DATA"/*.gz "$TMP/kmirror/" 2>/dev/null
HCR_KMNIST_MIRRORS="file://$TMP/kmirror/" expect 1 "checksum mismatch: md5" -- "$HCR" data fetch kmnist
ls "$TMP/cache/kmnist" 2>/dev/null | grep -q . && bad "kmnist: files kept: $(ls "$TMP/cache/kmnist")" || ok

# ---- idx:DIR: any folder of IDX files, with classes.txt
S="$TMP/shapes"
mkdir -p "$S"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    cp "$DATA/$f.gz" "$S/" 2>/dev/null || cp "$DATA/$f" "$S/"
done
# (class names may hold a '/' and any printable character: C1 controls such
# as U+009B, CSI, are printed escaped)
printf 'zero\none/1\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\302\233\n' >"$S/classes.txt"
(cd "$TMP" && "$HCR" train --dataset "idx:$S" --limit 2000 --epochs 1 --no-report --quiet >"$TMP/idx.log" 2>&1) &&
    [ -s "$TMP/shapes_cnn.safetensors" ] && ok || bad "idx train: $(cat "$TMP/idx.log")"
expect 0 "seven" -- "$HCR" eval "$TMP/shapes_cnn.safetensors" --limit 200
"$HCR" eval "$TMP/shapes_cnn.safetensors" --limit 200 >"$TMP/idx-eval.txt" 2>&1
clean "$TMP/idx-eval.txt" && grep -qF 'nine\u0' "$TMP/idx-eval.txt" && ok || bad "eval prints a C1 control: $(cat -v "$TMP/idx-eval.txt")"
"$HCR" eval "$TMP/shapes_cnn.safetensors" --limit 20 --json >"$TMP/idx-eval.json" 2>&1
clean "$TMP/idx-eval.json" && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["classes"][9]=="nine\u009b"' "$TMP/idx-eval.json" &&
    ok || bad "eval --json with a C1 control: $(cat -v "$TMP/idx-eval.json")"
"$HCR" show --dataset "idx:$S" -n 8 >"$TMP/idx-show.txt" 2>&1
clean "$TMP/idx-show.txt" && grep -qF 'label nine\u009b' "$TMP/idx-show.txt" && grep -qF 'label one/1' "$TMP/idx-show.txt" &&
    ok || bad "show prints a C1 control: $(cat -v "$TMP/idx-show.txt")"
# read --eval --save-examples: a '/' in a class name stays in the file name
"$HCR" read "$TMP/shapes_cnn.safetensors" --eval --count 10 --digits 2 --save-examples "$TMP/shx" >/dev/null 2>&1 &&
    [ "$(find "$TMP/shx" -type f | wc -l)" -eq 20 ] && [ "$(find "$TMP/shx" -mindepth 1 -type d | wc -l)" -eq 0 ] &&
    ! ls "$TMP/shx" | LC_ALL=C grep -q "$(printf '\302\233')" && ok || bad "--save-examples names: $(ls -R "$TMP/shx" | cat -v)"
# the model says idx:DIR; when the folder has moved, --data names it
mv "$S" "$S.moved"
expect 1 "idx:$S" -- "$HCR" eval "$TMP/shapes_cnn.safetensors" --limit 200
expect 0 "seven" -- "$HCR" eval "$TMP/shapes_cnn.safetensors" --limit 200 --data "$S.moved"
mv "$S.moved" "$S"
printf 'zero\none\n' >"$S/classes.txt"
expect 1 "but there are only 2 classes" -- "$HCR" train --dataset "idx:$S" --limit 500 --epochs 1
# a classes.txt that is a FIFO is refused at once, not waited on (nor skipped)
rm "$S/classes.txt"
mkfifo "$S/classes.txt"
refused "classes.txt: is a FIFO (named pipe), not a regular file" -- "$HCR" show --dataset "idx:$S"
rm "$S/classes.txt"
ln -s /dev/zero "$S/classes.txt"
refused "classes.txt: is a character device, not a regular file" -- "$HCR" show --dataset "idx:$S"
rm "$S/classes.txt"

# ---- a fetch interrupted (Ctrl-C or SIGTERM) removes its scratch folder;
# one killed outright leaves it, and the next fetch removes it
mkdir -p "$TMP/bin"
printf '#!/bin/sh\necho $$ >"%s/npm.pid"\nexec sleep 30\n' "$TMP" >"$TMP/bin/npm" # an npm that never finishes
chmod +x "$TMP/bin/npm"
wait_scratch() { # wait_scratch DIR: until a .fetch-* folder is there (10 s at most)
    for _ in $(seq 1 50); do
        ls -a "$1" 2>/dev/null | grep -q '^\.fetch-' && return 0
        sleep 0.2
    done
    return 1
}
leftovers() { ls -a "$1" 2>/dev/null | grep -e '^\.fetch-' -e '\.part-'; }
for sig in INT TERM; do
    C="$TMP/fetch-$sig"
    PATH="$TMP/bin:$PATH" HCR_MNIST_MIRRORS="file:///nonexistent-hcr/" "$HCR" data fetch mnist --dir "$C" >"$TMP/f.log" 2>&1 &
    pid=$!
    wait_scratch "$C" || bad "no scratch folder: $(cat "$TMP/f.log")"
    kill -"$sig" "$pid"
    wait "$pid"
    rc=$?
    [ "$rc" -eq 130 ] && [ -z "$(leftovers "$C")" ] && ok || bad "data fetch, SIG$sig: exit $rc, left $(leftovers "$C"): $(cat "$TMP/f.log")"
done
# the same when a command fetches what it needs (here show, into the cache)
PATH="$TMP/bin:$PATH" HCR_DATA="$TMP/cache-show" HCR_MNIST_MIRRORS="file:///nonexistent-hcr/" "$HCR" show >"$TMP/f.log" 2>&1 &
pid=$!
wait_scratch "$TMP/cache-show/mnist" || bad "no scratch folder: $(cat "$TMP/f.log")"
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] && [ -z "$(leftovers "$TMP/cache-show/mnist")" ] && ok || bad "show, SIGTERM during the fetch: exit $rc, left $(leftovers "$TMP/cache-show/mnist"): $(cat "$TMP/f.log")"
# killed outright: the leftovers go at the next fetch, unless a fetch still
# running holds them (a lock on each)
C="$TMP/fetch-KILL"
PATH="$TMP/bin:$PATH" HCR_MNIST_MIRRORS="file:///nonexistent-hcr/" "$HCR" data fetch mnist --dir "$C" >"$TMP/f.log" 2>&1 &
pid=$!
wait_scratch "$C" || bad "no scratch folder: $(cat "$TMP/f.log")"
{
    kill -KILL "$pid"
    wait "$pid"
} 2>/dev/null
kill "$(cat "$TMP/npm.pid")" 2>/dev/null # what hcr would have stopped
: >"$C/train-images-idx3-ubyte.gz.part-AbC123"
mkdir "$C/.fetch-live"
python3 -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)' "$C/.fetch-live" >"$TMP/lock.log" 2>&1 &
lock_pid=$!
for _ in $(seq 1 50); do grep -q locked "$TMP/lock.log" && break; sleep 0.1; done
[ "$(leftovers "$C" | wc -l)" -eq 3 ] && ok || bad "the killed fetch left: $(leftovers "$C")"
HCR_FETCH_NO_NPM=1 HCR_MNIST_MIRRORS="file:///nonexistent-hcr/" expect 1 "left by an interrupted fetch" -- "$HCR" data fetch mnist --dir "$C"
[ "$(leftovers "$C")" = ".fetch-live" ] && ok || bad "after the next fetch: $(leftovers "$C")"
kill "$lock_pid" 2>/dev/null
wait "$lock_pid" 2>/dev/null

# ---- Fashion-MNIST: a short real run from Debian's package
if [ -s /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    expect 0 "test accuracy" -- "$HCR" train --dataset fashion-mnist --limit 6000 --epochs 1 --quiet --no-report \
        --out "$TMP/fashion.safetensors"
    "$HCR" eval "$TMP/fashion.safetensors" --json >"$TMP/f.json" 2>&1
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["images"]==10000 and d["classes"][9]=="Ankle boot" and d["accuracy"]>0.7, d["accuracy"]' "$TMP/f.json" 2>/dev/null &&
        ok || bad "fashion eval: $(head -c 300 "$TMP/f.json")"
    expect 0 "Ankle boot" -- "$HCR" show --dataset fashion-mnist -n 1
    # without the package: its mirror (here a file:// copy), verified by SHA-256
    HCR_SYSTEM_DATASETS=/nonexistent HCR_FASHION_MIRRORS="file:///usr/share/datasets/fashion-mnist/" \
        expect 0 "fashion-mnist is ready in $TMP/cache/fashion-mnist" -- "$HCR" data fetch fashion-mnist
    [ "$(ls "$TMP/cache/fashion-mnist" | wc -l)" -eq 4 ] && ok || bad "fashion fetch left $(ls -a "$TMP/cache/fashion-mnist")"
    expect 0 "using the installed copy in /usr/share/datasets/fashion-mnist" -- "$HCR" data fetch fashion-mnist
else
    echo "(skipped the Fashion-MNIST run: dataset-fashion-mnist is not installed)"
fi

finish test_datasets.sh
