#!/usr/bin/env bash
# test_serve.sh - hcr serve over real HTTP on loopback, as a client uses
# it: usage errors; the models found in the folder; every route with curl
# and each status (200, 400, 404, 405 with Allow, 413 before the body is
# read, declared or chunked, 415); the access log; /metrics counting them;
# a slow client cut after --timeout; 64 concurrent uploads of the largest
# body with the server's peak memory bounded; SIGTERM while a request is in
# flight: the request is answered, then the server exits 0 and listens no
# more. Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"
ROOT=$(pwd)
case $HCR in /*) ;; *) HCR=$ROOT/$HCR ;; esac # the tests run hcr from other folders too
IMG=$ROOT/docs/images
command -v curl >/dev/null || { bad "curl is missing (scripts/setup.sh --test installs it)"; finish test_serve; exit; }

expect 0 "usage: hcr serve" -- "$HCR" serve --help
expect 2 "--port: '70000' is not a whole number" -- "$HCR" serve --port 70000
expect 2 "--max-body: '0'" -- "$HCR" serve --max-body 0
expect 2 "--threads: 'x'" -- "$HCR" serve --threads x
mkdir -p "$TMP/empty"
(cd "$TMP/empty" && expect 1 "no model named and no *_cnn.safetensors in this folder" -- "$HCR" serve --port 0)
expect 1 "loading the model" -- "$HCR" serve "$TMP/missing.safetensors" --port 0

# a small model, found in its folder as mnist_cnn.safetensors, and a copy
mkdir -p "$TMP/models"
"$HCR" train --data "$DATA" --limit 6000 --epochs 1 --no-report --no-checkpoint -q \
    --out "$TMP/models/mnist_cnn.safetensors" >/dev/null 2>&1 && ok || bad "training a model"
cp "$TMP/models/mnist_cnn.safetensors" "$TMP/models/other_cnn.safetensors"
expect 2 "two models are named 'mnist_cnn'" -- "$HCR" serve "$TMP/models/mnist_cnn.safetensors" \
    "$TMP/models/mnist_cnn.safetensors" --port 0

# start a server in the background; sets PID and URL (waits for its line)
start() { # start LOG ERR ARGS...
    local log=$1 err=$2 i
    shift 2
    "$HCR" serve --port 0 "$@" >"$log" 2>"$err" &
    PID=$!
    URL=
    for ((i = 0; i < 100; i++)); do
        URL=$(sed -n 's|.*listening on \(http://127.0.0.1:[0-9]*\)/.*|\1|p' "$err")
        [ -n "$URL" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    bad "hcr serve $* did not start: $(cat "$err")"
    return 1
}
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID"; }

# req METHOD PATH [curl args...]: sets CODE, BODY (file), HEAD (file)
req() {
    local method=$1 path=$2
    shift 2
    CODE=$(curl -s -X "$method" -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$@" "$URL$path")
    BODY=$TMP/body
    HEAD=$TMP/head
}
# check CODE PYTHON-EXPRESSION-ON-j (the JSON body) [what]
check() {
    local want=$1 expr=$2 what=${3:-$2}
    if [ "$CODE" != "$want" ]; then
        bad "$what: status $CODE, expected $want: $(head -c 300 "$BODY")"
    elif ! python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" "$BODY" 2>/dev/null; then
        bad "$what: ($expr) is false for $(head -c 300 "$BODY")"
    else
        ok
    fi
}

cd "$TMP/models" || exit 1
start "$TMP/access.log" "$TMP/serve.err" --max-body 1000000 --timeout 2 --threads 2 || { finish test_serve; exit; }
cd "$ROOT" || exit 1
grep -q "mnist_cnn (10 classes), other_cnn (10 classes); 2 threads" "$TMP/serve.err" && ok ||
    bad "the models found: $(cat "$TMP/serve.err")"

# the routes
req GET /healthz
check 200 'j["status"] == "ok" and j["models"] == 2' "GET /healthz"
req GET /
[ "$CODE" = 200 ] && grep -qi '^content-type: text/html; charset=utf-8' "$HEAD" && grep -q '<canvas' "$BODY" && ok ||
    bad "GET /: $CODE $(cat "$HEAD")"
req GET /api/models
check 200 'j["default"] == "mnist_cnn" and [m["name"] for m in j["models"]] == ["mnist_cnn", "other_cnn"] and j["models"][0]["classes"] == [str(i) for i in range(10)]' "GET /api/models"
req GET /metrics
[ "$CODE" = 200 ] && grep -q '^hcr_http_requests_in_flight 1$' "$BODY" && ok || bad "GET /metrics: $CODE $(cat "$BODY")"

# predict: the same digit sent four ways gives the same answer
req POST /api/predict -H 'Content-Type: image/x-portable-graymap' --data-binary @"$IMG/digit.pgm"
check 200 'j["prediction"] == "7" and len(j["top"]) == 5 and j["top"][0]["class"] == "7" and j["model"] == "mnist_cnn" and j["ms"] >= 0' \
    "predict a raw image"
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["confidence"])' "$BODY" 2>/dev/null)
req POST '/api/predict?k=2&model=other_cnn' -F "image=@$IMG/digit.pgm"
check 200 "j['prediction'] == '7' and len(j['top']) == 2 and j['model'] == 'other_cnn' and j['confidence'] == $want" \
    "predict a multipart upload"
printf '{"image": "%s", "k": 3, "seen": true}' "$(base64 -w0 "$IMG/digit.pgm")" >"$TMP/req.json"
req POST /api/predict -H 'Content-Type: application/json' --data-binary @"$TMP/req.json"
check 200 "j['prediction'] == '7' and len(j['top']) == 3 and len(j['seen']) == 784 and j['confidence'] == $want" \
    "predict JSON base64"
python3 -c 'import json,sys; print(json.dumps({"pixels": json.load(open(sys.argv[1]))["seen"]}))' "$BODY" >"$TMP/px.json"
req POST /api/predict -H 'Content-Type: application/json' --data-binary @"$TMP/px.json"
check 200 "j['prediction'] == '7' and j['confidence'] == $want" "predict JSON pixels"
# read
req POST /api/read -F "image=@$IMG/number.png"
check 200 'len(j["text"]) == 4 and len(j["characters"]) == 4 and all(len(c["box"]) == 4 for c in j["characters"])' \
    "read a line"

# the errors
req POST /api/predict -H 'Content-Type: image/png' --data-binary 'not an image'
check 400 '"not an image hcr can read" in j["error"]' "400 for a bad image"
req POST /api/predict -H 'Content-Type: application/json' --data-binary '{"image": "Zm9v!"}'
check 400 '"not base64" in j["error"]' "400 for bad base64"
req POST /api/predict -H 'Content-Type: text/plain' --data-binary 'hello'
check 415 '"text/plain" in j["error"]' "415 for text"
req GET /nope
check 404 '"no such path" in j["error"]' "404"
req GET /api/predict
check 405 '"takes POST" in j["error"]' "405"
grep -qi '^allow: POST' "$HEAD" && ok || bad "405 without Allow: POST: $(cat "$HEAD")"
req DELETE /metrics
check 405 'True' "405 on /metrics"
grep -qi '^allow: GET, HEAD' "$HEAD" && ok || bad "405 without Allow: GET, HEAD: $(cat "$HEAD")"

# 413: a declared body over --max-body is refused before it is sent...
head -c 1000001 /dev/zero >"$TMP/big.bin"
req POST /api/predict -H 'Content-Type: image/png' --data-binary @"$TMP/big.bin"
check 413 '"larger than 1000000 bytes" in j["error"]' "413 (Content-Length)"
port=${URL##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 900000000\r\n\r\n' >&3
line=$(timeout 5 head -n 1 <&3)
exec 3<&-
[[ $line == "HTTP/1.1 413"* ]] && ok || bad "a declared 900 MB body: '$line' (expected 413 before any of it)"
# ...and a chunked one is counted as it comes; exactly the limit is taken
req POST /api/predict -H 'Content-Type: image/png' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.bin"
check 413 '"larger than" in j["error"]' "413 (chunked)"
head -c 1000000 /dev/zero >"$TMP/max.bin"
req POST /api/predict -H 'Content-Type: image/png' --data-binary @"$TMP/max.bin"
check 400 '"413" not in j["error"]' "a body of exactly --max-body"

# a slow client: cut after --timeout (2 s) of silence
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /api/predict HTTP/1.1\r\nHost: x\r\n' >&3
t0=$(date +%s%N)
timeout 10 cat <&3 >/dev/null
secs=$((($(date +%s%N) - t0) / 1000000000))
exec 3<&-
[ "$secs" -ge 1 ] && [ "$secs" -le 6 ] && ok || bad "a silent client was cut after ${secs}s (--timeout 2)"

# the access log: one line per request
grep -qE '^127\.0\.0\.1 - - \[[^]]+\] "GET /healthz HTTP/1\.1" 200 [0-9]+ [0-9]+us$' "$TMP/access.log" && ok ||
    bad "no log line for GET /healthz: $(head -3 "$TMP/access.log")"
grep -qE '"POST /api/predict\?k=2&model=other_cnn HTTP/1\.1" 200 ' "$TMP/access.log" && ok || bad "the log lacks the query"
grep -qE '"GET /nope HTTP/1\.1" 404 ' "$TMP/access.log" && ok || bad "the log lacks the 404"

# /metrics counts what came
req GET /metrics
for want in 'route="/api/predict",code="200"} 4' 'route="/api/read",code="200"} 1' \
    'route="/api/predict",code="400"} 3' 'route="/api/predict",code="415"} 1' \
    'route="/api/predict",code="405"} 1' 'route="/metrics",code="405"} 1' 'route="other",code="404"} 1' \
    'route="/api/predict",code="413"} 3' 'route="/metrics",code="200"} 1'; do
    grep -qF "hcr_http_requests_total{$want" "$BODY" && ok || bad "/metrics lacks '$want': $(grep requests_total "$BODY")"
done
grep -qE '^hcr_http_request_duration_seconds_count [0-9]+$' "$BODY" && grep -q '^hcr_http_requests_in_flight 1$' "$BODY" &&
    ok || bad "/metrics: the histogram or in-flight gauge"
# the page in a real browser (Debian's chromium, headless, offline): its
# script runs and fills the model picker from /api/models; the screenshot
# stays next to the binary (build/serve-screenshot.png)
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROMIUM" ]; then
    browse() {
        timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
            --user-data-dir="$(mktemp -d -p "$TMP")" --virtual-time-budget=5000 "$@" 2>>"$TMP/chromium.log"
    }
    dom=$(browse --dump-dom "$URL/")
    grep -qF '>mnist_cnn (0123456789)</option>' <<<"$dom" && grep -qF '>other_cnn (0123456789)</option>' <<<"$dom" &&
        ok || bad "the page's model picker is empty: $(grep -o '<select[^>]*>.*</select>' <<<"$dom" | head -c 300)"
    browse --screenshot="$(dirname "$HCR")/serve-screenshot.png" --window-size=1000,700 "$URL/" >/dev/null
    [ -s "$(dirname "$HCR")/serve-screenshot.png" ] && ok || bad "no screenshot of the page"
else
    bad "chromium is not installed (Debian: apt-get install chromium; scripts/setup.sh --test installs it)"
fi
stop
rc=$?
[ "$rc" -eq 0 ] && ok || bad "SIGTERM on an idle server: exit $rc"

# 64 uploads of the largest body at once: every one answered, and the
# server's peak memory bounded by the bodies it holds (64 x 4 MiB) plus
# room for the decoders
start "$TMP/load.log" "$TMP/load.err" --max-body 4194304 --threads 2 -q "$TMP/models/mnist_cnn.safetensors" || true
head -c 4194304 /dev/urandom >"$TMP/upload.bin"
base=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
for i in $(seq 64); do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: image/png' --data-binary @"$TMP/upload.bin" \
        "$URL/api/predict" >"$TMP/load-$i.code" &
done
wait_curls() { local p; for p in $(jobs -p); do [ "$p" = "$PID" ] || wait "$p"; done; }
wait_curls
peak=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
answered=$(cat "$TMP"/load-*.code | grep -c '^400$')
[ "$answered" -eq 64 ] && ok || bad "64 uploads: $answered answered 400 (not an image); codes: $(sort "$TMP"/load-*.code | uniq -c)"
limit=$((base + 64 * 4096 + 256 * 1024)) # KiB
[ "$peak" -le "$limit" ] && ok || bad "peak RSS ${peak} KiB over ${limit} KiB under 64 uploads of 4 MiB"
echo "test_serve: 64 concurrent 4 MiB uploads: RSS ${base} KiB at rest, peak ${peak} KiB"
stop

# SIGTERM while a request is in flight: it is answered, then exit 0
python3 - "$TMP/slow.pgm" <<'PY'
import sys
w, h = 600, 500
px = bytearray(b"\xff" * (w * h))
for y in range(100, 400):
    for x in range(280, 330):
        px[y * w + x] = 0
open(sys.argv[1], "wb").write(b"P5\n%d %d\n255\n" % (w, h) + bytes(px))
PY
start "$TMP/stop.log" "$TMP/stop.err" "$TMP/models/mnist_cnn.safetensors" || true
curl -s -o "$TMP/slow.json" -w '%{http_code}' --limit-rate 200K -H 'Content-Type: image/x-portable-graymap' \
    --data-binary @"$TMP/slow.pgm" "$URL/api/predict" >"$TMP/slow.code" &
cpid=$!
sleep 0.5
kill -TERM "$PID"
wait "$PID"
rc=$?
wait "$cpid"
[ "$rc" -eq 0 ] && ok || bad "SIGTERM with a request in flight: exit $rc: $(cat "$TMP/stop.err")"
[ "$(cat "$TMP/slow.code")" = 200 ] && grep -q '"prediction"' "$TMP/slow.json" && ok ||
    bad "the request in flight at SIGTERM: $(cat "$TMP/slow.code") $(cat "$TMP/slow.json")"
grep -q "finishing the requests in flight" "$TMP/stop.err" && grep -q "hcr serve: stopped$" "$TMP/stop.err" && ok ||
    bad "the stop's messages: $(cat "$TMP/stop.err")"
curl -s -o /dev/null "$URL/healthz"
[ $? -eq 7 ] && ok || bad "the server still answers after it stopped"

finish test_serve
