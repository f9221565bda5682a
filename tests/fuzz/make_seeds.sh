#!/usr/bin/env bash
# make_seeds.sh - (re)writes the named seeds in tests/fuzz/<target>/seeds/:
# valid files of each kind plus the bad cases the unit tests use. The
# results are committed; run this only to change them. The files named by
# their SHA-1 in the same folders are inputs of the long campaign merged
# back (libFuzzer -merge=1); they are left alone.
#
#   tests/fuzz/make_seeds.sh MAKE_SEEDS_BINARY
#
# MAKE_SEEDS_BINARY is make_seeds.c built against libhcr (it writes the
# model files and the JPEG seeds); make_images.py writes the other images.
set -euo pipefail
gen=$(realpath "$1")
cd "$(dirname "$0")"
py() { python3 - "$@"; }

# ------------------------------------------------------------------ spec
# 6 bytes: rows-1, cols-1, classes (big-endian 16-bit each), then the spec.
mkdir -p spec/seeds
spec() { # name rows cols classes text
    py "$@" <<'PY'
import sys, struct
name, r, c, n, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
open("spec/seeds/" + name, "wb").write(struct.pack(">HHH", r - 1, c - 1, n) + text.encode())
PY
}
spec default 28 28 10 "conv32-pool-conv64-pool-dense128-drop0.5"
spec wide 28 28 47 "conv32-conv32-pool-drop0.25-conv64-conv64-pool-drop0.25-dense256-drop0.5"
spec wide-bn 28 28 26 "conv32-bn-conv32-bn-pool-drop0.25-conv64-bn-conv64-bn-pool-drop0.25-dense256-bn-drop0.5"
spec small 8 8 2 "conv2x2-bn-pool3-dense4-bn-drop0.1"
spec kernel 16 12 3 "conv1x5-pool1-dense1"
spec dense-only 4 4 2 "dense8-dense8"
spec bad-empty 28 28 10 ""
spec bad-dash 28 28 10 "conv32-"
spec bad-token 28 28 10 "conv32--pool"
spec bad-after-dense 28 28 10 "dense10-conv3"
spec bad-bn-first 28 28 10 "bn-conv3"
spec bad-drop 28 28 10 "drop1.5"
spec bad-kernel 28 28 10 "conv3x16"
spec bad-nofit 5 5 10 "conv3-conv3-conv3"
spec bad-huge 4096 4096 1000 "conv100000-dense100000"
spec bad-classes 28 28 1 "dense4"

# --------------------------------------------------------------- mapping
mkdir -p mapping/seeds
printf '0 48\n1 49\n2 50\n3 51\n4 52\n5 53\n6 54\n7 55\n8 56\n9 57\n' > mapping/seeds/digits-mapping.txt
py <<'PY'
lines = ["%d %d %d" % (i + 1, 65 + i, 97 + i) for i in range(26)]
open("mapping/seeds/letters-mapping.txt", "w").write("\n".join(lines) + "\n")
chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
open("mapping/seeds/balanced-mapping.txt", "w").write("".join("%d %d\r\n" % (i, ord(c)) for i, c in enumerate(chars)))
PY
printf '3 51\n1 49\n0 48\n2 50\n\n' > mapping/seeds/unordered-mapping.txt
printf '0 233\n1 19968\n2 128512\n3 65\n' > mapping/seeds/unicode-mapping.txt
printf 'zero\none\ntwo\nthree\n' > mapping/seeds/classes.txt
printf 'T-shirt/top\r\nTrouser\r\nPullover\r\nDress\r\nCoat\r\n' > mapping/seeds/classes-crlf.txt
printf 'a\nb\nc\n\xc3\xa9\n' > mapping/seeds/classes-utf8.txt
printf '0 48\n0 49\n' > mapping/seeds/bad-twice.txt
printf '0 48\n2 50\n' > mapping/seeds/bad-gap.txt
printf '0 7\n' > mapping/seeds/bad-control.txt
printf '0 48 x\n' > mapping/seeds/bad-char.txt
printf '1000 48\n' > mapping/seeds/bad-label.txt
printf 'a\n\nc\nd\n' > mapping/seeds/bad-empty-line.txt
printf 'a\na\nb\nc\n' > mapping/seeds/bad-duplicate.txt
printf 'a\x01\nb\nc\nd\n' > mapping/seeds/bad-control-name.txt
printf 'only\n' > mapping/seeds/bad-one-class.txt
py <<'PY'
open("mapping/seeds/bad-long-name.txt", "w").write("a" * 64 + "\nb\nc\nd\n")
PY

# ------------------------------------------------------------------- idx
# One flag byte (bit 0: the harness gzips the rest), then the file.
mkdir -p idx/seeds
py <<'PY'
import gzip, struct
def w(name, flag, body):
    open("idx/seeds/" + name, "wb").write(bytes([flag]) + body)
def images(n, r, c):
    return struct.pack(">IIII", 0x803, n, r, c) + bytes((i * 37) & 255 for i in range(n * r * c))
def labels(n):
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
w("images", 0, images(3, 4, 5))
w("labels", 0, labels(7))
w("image-one", 0, images(1, 2, 2))
w("label-one", 0, labels(1))
w("images-gz", 0, gzip.compress(images(3, 4, 5), mtime=0))
w("labels-gz", 0, gzip.compress(labels(7), mtime=0))
w("images-gzip-me", 1, images(2, 3, 3))
w("labels-gzip-me", 1, labels(1))
w("bad-magic", 0, struct.pack(">IIII", 0x801, 1, 2, 2) + bytes(4))
w("bad-type", 0, struct.pack(">IIII", 0x903, 1, 2, 2) + bytes(4))
w("bad-short-header", 0, struct.pack(">II", 0x803, 1))
w("bad-zero-dim", 0, struct.pack(">IIII", 0x803, 0, 2, 2))
w("bad-huge", 0, struct.pack(">IIII", 0x803, 0x7fffffff, 4096, 4096) + bytes(16))
w("bad-side", 0, struct.pack(">IIII", 0x803, 1, 4097, 1) + bytes(16))
w("bad-truncated", 0, images(3, 4, 5)[:-1])
w("bad-trailing", 0, images(3, 4, 5) + b"x")
w("bad-truncated-gz", 1, images(3, 4, 5)[:-7])
g = bytearray(gzip.compress(images(3, 4, 5), mtime=0))
g[-5] ^= 1
w("bad-crc-gz", 0, bytes(g))
w("bad-cut-gz", 0, gzip.compress(images(3, 4, 5), mtime=0)[:-10])
w("bad-double-gz", 0, gzip.compress(gzip.compress(labels(3), mtime=0), mtime=0))
w("bad-empty", 0, b"")
PY

# --------------------------------------------------------- image and read
python3 make_images.py .

# ----------------------------------------------------------------- serve
# A request as text: "METHOD PATH?QUERY\nContent-Type\nbody" (fuzz_serve.c).
mkdir -p serve/seeds
py <<'PY'
import base64, json
def w(name, first, ctype, body=b""):
    open("serve/seeds/" + name, "wb").write(first.encode() + b"\n" + ctype.encode() + b"\n" + body)
one = open("image/seeds/one.png", "rb").read()
line = open("read/seeds/line.pgm", "rb").read()
pgm = open("image/seeds/pixel.pgm", "rb").read()
def form(boundary, parts):
    out = b""
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"
w("page", "GET /", "")
w("head", "HEAD /healthz", "")
w("models", "GET /api/models", "")
w("metrics", "GET /metrics", "")
w("notfound", "GET /nope?x=1", "")
w("method", "PUT /api/predict", "image/png", one)
w("predict-png", "POST /api/predict?k=3&seen=1", "image/png", one)
w("predict-raw", "POST /api/predict?model=abc&min_confidence=0.9", "", pgm)
w("predict-form", "POST /api/predict", "multipart/form-data; boundary=XyZ",
  form(b"XyZ", [(b'Content-Disposition: form-data; name="k"', b"2"),
                (b'Content-Disposition: form-data; name="image"; filename="one.png"\r\nContent-Type: image/png', one)]))
w("predict-json", "POST /api/predict", "application/json",
  json.dumps({"image": base64.b64encode(one).decode(), "k": 2, "model": "digits"}).encode())
w("predict-dataurl", "POST /api/predict", "application/json; charset=utf-8",
  json.dumps({"image": "data:image/png;base64," + base64.urlsafe_b64encode(one).decode().rstrip("=")}).encode())
w("predict-pixels", "POST /api/predict", "application/json",
  json.dumps({"pixels": [(i * 7) % 256 for i in range(784)], "seen": True}).encode())
w("read-line", "POST /api/read?seen=true", "image/x-portable-graymap", line)
w("read-form", "POST /api/read?model=abc", 'multipart/form-data; boundary="a b"',
  form(b"a b", [(b'Content-Disposition: form-data; name="file"; filename="l.pgm"', line)]))
w("bad-json", "POST /api/predict", "application/json", b'{"image": "Zm9v!", "k": 0}')
w("bad-form", "POST /api/predict", "multipart/form-data; boundary=b", b"--b\r\nX: y\r\n\r\nabc")
w("bad-type", "POST /api/read", "text/plain", b"hello")
w("bad-query", "POST /api/predict?k=%zz&model=%ff", "image/png", one)
PY

# ----------------------------------------------------------------- model
mkdir -p model/seeds
"$gen" model/seeds image/seeds
py <<'PY'
import json, struct
def w(name, header, data=b""):
    h = header.encode() if isinstance(header, str) else header
    open("model/seeds/" + name, "wb").write(struct.pack("<Q", len(h)) + h + data)
good = open("model/seeds/dense.safetensors", "rb").read()
n = struct.unpack("<Q", good[:8])[0]
hdr = json.loads(good[8:8 + n])
data = good[8 + n:]
def variant(name, f, d=data):
    h = json.loads(json.dumps(hdr)); f(h); w(name, json.dumps(h), d)
w("bad-not-json", "{not json}   ", data)
w("bad-array", "[]", data)
w("bad-no-metadata", json.dumps({k: v for k, v in hdr.items() if k != "__metadata__"}), data)
variant("bad-dtype", lambda h: h["dense.kernel"].update(dtype="F16"))
variant("bad-shape", lambda h: h["dense.kernel"].update(shape=[4, 16]))
variant("bad-offsets", lambda h: h["dense.kernel"].update(data_offsets=[0, 1 << 40]))
variant("bad-overlap", lambda h: h["dense.bias"].update(data_offsets=[0, 16]))
variant("bad-extra", lambda h: h.update(extra={"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}))
variant("bad-spec", lambda h: h["__metadata__"].update(spec="conv3-"))
variant("bad-rows", lambda h: h["__metadata__"].update(input_rows="4097"))
variant("bad-classes", lambda h: h["__metadata__"].update(class_names="[\"a\"]"))
variant("bad-truncated", lambda h: None, data[:-4])
variant("bad-nan", lambda h: None, b"\x00\x00\xc0\x7f" + data[4:])
open("model/seeds/bad-short", "wb").write(b"\x10\x00\x00")
open("model/seeds/bad-length", "wb").write(struct.pack("<Q", 1 << 62) + b"{}")
PY

echo "seeds: $(du -sh . | cut -f1) in tests/fuzz"
