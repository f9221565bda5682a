#!/usr/bin/env python3
"""make_images.py - writes the image seeds of the fuzz corpus
(tests/fuzz/image/seeds and read/seeds) with nothing but Python's standard
library: one drawn character (or a line of them) saved in every format
stb_image reads, and in the variants each format has (PNG bit depths,
colour types, palette, alpha, Adam7 interlacing; BMP 8/24/32-bit; TGA raw
and RLE; GIF; PSD; HDR; PGM/PPM binary and ASCII). JPEG seeds come from
make_seeds.c (stb_image_write). Run by make_seeds.sh.

    make_images.py TESTS_FUZZ_DIR
"""
import os, struct, sys, zlib

def canvas(w, h, strokes, ink=0, paper=255):
    px = [[paper] * w for _ in range(h)]
    for (x0, y0, x1, y1, r) in strokes:
        n = int(max(abs(x1 - x0), abs(y1 - y0), 1))
        for i in range(n + 1):
            cx = x0 + (x1 - x0) * i / n
            cy = y0 + (y1 - y0) * i / n
            for y in range(int(cy - r), int(cy + r) + 1):
                for x in range(int(cx - r), int(cx + r) + 1):
                    if 0 <= x < w and 0 <= y < h and (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                        px[y][x] = ink
    return px

def ring(cx, cy, rad, r, steps=24):
    import math
    pts = [(cx + rad * math.cos(2 * math.pi * i / steps), cy + rad * math.sin(2 * math.pi * i / steps)) for i in range(steps + 1)]
    return [(pts[i][0], pts[i][1], pts[i + 1][0], pts[i + 1][1], r) for i in range(steps)]

# ------------------------------------------------------------------- PNG
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

def png_f01(path, rows, ctype, depth, plte=None, trns=None, interlace=False):
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    h = len(rows); w = len(rows[0]) // ch
    def pack_row(samples):
        if depth == 16:
            return b"".join(struct.pack(">H", s) for s in samples)
        if depth == 8:
            return bytes(samples)
        out, acc, nbits = bytearray(), 0, 0
        for s in samples:
            acc = (acc << depth) | s; nbits += depth
            if nbits == 8:
                out.append(acc); acc = 0; nbits = 0
        if nbits:
            out.append(acc << (8 - nbits))
        return bytes(out)
    bpp = max(ch * depth // 8, 1)
    raw = bytearray()
    def line(sub, y):
        b = pack_row(sub)
        if y % 2 and depth >= 8:
            out = bytearray(b)
            for i in range(len(b) - 1, bpp - 1, -1):
                out[i] = (b[i] - b[i - bpp]) & 255
            return b"\x01" + bytes(out)
        return b"\x00" + b
    if not interlace:
        for y, r in enumerate(rows):
            raw += line(r, y)
    else:
        for (x0, y0, dx, dy) in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            for y in range(y0, h, dy):
                sub = []
                for x in range(x0, w, dx):
                    sub += rows[y][x * ch:(x + 1) * ch]
                if sub:
                    raw += line(sub, y)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte:
        data += chunk(b"PLTE", bytes(plte))
    if trns:
        data += chunk(b"tRNS", bytes(trns))
    z = zlib.compress(bytes(raw), 9)
    data += chunk(b"IDAT", z[:len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:]) + chunk(b"IEND", b"")
    open(path, "wb").write(data)

# ------------------------------------------------------------ other formats
def pgm(path, px, ascii=False):
    h, w = len(px), len(px[0])
    if ascii:
        open(path, "w").write("P2\n# hcr seed\n%d %d\n255\n" % (w, h) + "\n".join(" ".join(map(str, r)) for r in px) + "\n")
    else:
        open(path, "wb").write(b"P5\n%d %d\n255\n" % (w, h) + bytes(v for r in px for v in r))

def ppm(path, px):
    h, w = len(px), len(px[0])
    open(path, "wb").write(b"P6\n%d %d\n255\n" % (w, h) + bytes(c for r in px for v in r for c in (v, v // 2, 255 - v)))

def bmp(path, px, bits):
    h, w = len(px), len(px[0])
    if bits == 8:
        stride = (w + 3) & ~3
        pal = b"".join(bytes([i, i, i, 0]) for i in range(256))
        body = b"".join(bytes(r) + b"\0" * (stride - w) for r in reversed(px))
    else:
        bpp = bits // 8
        stride = (w * bpp + 3) & ~3
        pal = b""
        body = b"".join(b"".join(bytes([v, v, v] + ([255] if bpp == 4 else [])) for v in r) + b"\0" * (stride - w * bpp) for r in reversed(px))
    off = 14 + 40 + len(pal)
    hdr = b"BM" + struct.pack("<IHHI", off + len(body), 0, 0, off)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bits, 0, len(body), 2835, 2835, 256 if bits == 8 else 0, 0)
    open(path, "wb").write(hdr + info + pal + body)

def tga(path, px, rle=False):
    h, w = len(px), len(px[0])
    hdr = struct.pack("<BBBHHBHHHHBB", 0, 0, 11 if rle else 3, 0, 0, 0, 0, 0, w, h, 8, 0x20)
    if not rle:
        body = bytes(v for r in px for v in r)
    else:
        body = bytearray()
        flat = [v for r in px for v in r]
        i = 0
        while i < len(flat):
            j = i
            while j < len(flat) and j - i < 128 and flat[j] == flat[i]:
                j += 1
            if j - i >= 2:
                body += bytes([0x80 | (j - i - 1), flat[i]]); i = j
            else:
                body += bytes([0, flat[i]]); i += 1
    open(path, "wb").write(hdr + bytes(body))

def gif(path, px):
    h, w = len(px), len(px[0])
    pal = b"".join(bytes([i * 255 // 3] * 3) for i in range(4))
    idx = [v * 3 // 255 for r in px for v in r]
    # LZW with a minimum code size of 2: every pixel a literal 3-bit code
    # (a clear every 2 pixels keeps the table below 8 entries: 3-bit codes)
    codes = []
    out, acc, n = bytearray(), 0, 0
    for i, v in enumerate(idx):
        if i % 2 == 0:
            codes.append(4)
        codes.append(v)
    codes.append(5)
    for c in codes:
        acc |= c << n
        n += 3
        while n >= 8:
            out.append(acc & 255); acc >>= 8; n -= 8
    if n:
        out.append(acc & 255)
    sub = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    data = b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF1, 0, 0) + pal
    data += b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    data += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02" + sub + b"\x00\x3b"
    open(path, "wb").write(data)

def psd(path, px):
    h, w = len(px), len(px[0])
    # stb_image reads RGB mode (3) only; raw (uncompressed) planes
    data = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3)
    data += struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", 0)
    data += struct.pack(">H", 0) + bytes(v for r in px for v in r) * 3
    open(path, "wb").write(data)

def hdr(path, px):
    h, w = len(px), len(px[0])
    body = bytearray()
    for r in px:
        for v in r:
            body += bytes([v, v, v, 128]) if v else b"\0\0\0\0"
    open(path, "wb").write(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (h, w) + bytes(body))

def main():
    base = sys.argv[1]
    img, rd = os.path.join(base, "image/seeds"), os.path.join(base, "read/seeds")
    os.makedirs(img, exist_ok=True); os.makedirs(rd, exist_ok=True)
    one = canvas(28, 28, [(14, 4, 14, 23, 1.5), (9, 8, 14, 4, 1.5)])
    J = lambda *p: os.path.join(img, *p)
    grey = [r[:] for r in one]
    png_f01(J("one.png"), grey, ctype=0, depth=8)
    png_f01(J("one16.png"), [[v * 257 for v in r] for r in one], ctype=0, depth=16)
    png_f01(J("one-rgb16.png"), [[c for v in r for c in (v * 257, v * 200, 65535 - v * 257)] for r in one], ctype=2, depth=16)
    png_f01(J("one-1bit.png"), [[v // 255 for v in r] for r in one], ctype=0, depth=1)
    png_f01(J("one-4bit.png"), [[v // 17 for v in r] for r in one], ctype=0, depth=4)
    png_f01(J("one-rgba.png"), [[c for v in r for c in (v, v, v, 255 - v // 2)] for r in one], ctype=6, depth=8)
    png_f01(J("one-grey-alpha.png"), [[c for v in r for c in (0, 255 - v)] for r in one], ctype=4, depth=8)
    png_f01(J("one-palette.png"), [[v // 85 for v in r] for r in one], ctype=3, depth=2,
            plte=[c for i in range(4) for c in (i * 85, i * 85, i * 85)], trns=[255, 200, 100, 0])
    png_f01(J("one-interlaced.png"), grey, ctype=0, depth=8, interlace=True)
    pgm(J("one.pgm"), one)
    pgm(J("one-ascii.pgm"), one, ascii=True)
    ppm(J("one.ppm"), one)
    bmp(J("one8.bmp"), one, 8)
    bmp(J("one24.bmp"), one, 24)
    bmp(J("one32.bmp"), one, 32)
    tga(J("one.tga"), one)
    tga(J("one-rle.tga"), one, rle=True)
    gif(J("one.gif"), one)
    psd(J("one.psd"), one)
    hdr(J("one.hdr"), [[255 - v for v in r] for r in one])
    paper = [[200 - x - y for x in range(40)] for y in range(20)]
    for y in range(5, 15):
        paper[y][20] = 20
    pgm(J("paper-gradient.pgm"), paper)
    pgm(J("blank.pgm"), [[255] * 8 for _ in range(8)])
    pgm(J("pixel.pgm"), [[0]])
    open(J("bad-huge.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 65536, 65536, 8, 0, 0, 0, 0)))
    open(J("bad-zero.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)))
    open(J("bad-truncated.png"), "wb").write(open(J("one.png"), "rb").read()[:60])
    # Lines for the reader.
    R = lambda *p: os.path.join(rd, *p)
    line = canvas(96, 32, [(8, 6, 8, 26, 1.5)] + ring(28, 16, 8, 1.5) + [(44, 6, 52, 26, 1.5), (52, 6, 44, 26, 1.5),
                          (64, 6, 64, 26, 1.5), (64, 6, 76, 6, 1.5), (76, 6, 76, 26, 1.5)])
    pgm(R("line.pgm"), line)
    pieces = canvas(64, 28, [(10, 4, 10, 11, 1), (10, 15, 10, 24, 1), (30, 5, 30, 5, 1), (30, 10, 30, 24, 1),
                             (40, 4, 50, 24, 1), (47, 4, 37, 24, 1), (50, 4, 60, 24, 1)])
    pgm(R("pieces.pgm"), pieces)
    touching = canvas(48, 24, ring(12, 12, 8, 1.2) + ring(26, 12, 7, 1.2) + [(38, 2, 38, 22, 1.2)], ink=255, paper=0)
    png_f01(R("touching-inverted.png"), touching, ctype=0, depth=8)
    wide = canvas(120, 20, [(4, 10, 116, 10, 2)])
    pgm(R("wide-bar.pgm"), wide)
    pgm(R("one.pgm"), one)
    dots = [[0 if (x % 3 == 0 and y % 3 == 0) else 255 for x in range(30)] for y in range(12)]
    pgm(R("dots.pgm"), dots)

main()
