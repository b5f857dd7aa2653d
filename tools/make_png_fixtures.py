#!/usr/bin/env python3
"""make_png_fixtures.py: PNG files for tests/test_png.c, made by an encoder
independent of attn's (Python's zlib, with its dynamic and fixed Huffman
coding and its stored blocks), and the pixels attn_png_read must return.

    python3 tools/make_png_fixtures.py [OUT_DIR]    (default tests/fixtures/png)

Every colour type at every bit depth the standard allows, odd sizes (rows
that end inside a byte), all five row filters chosen at random per row, one
IDAT or many, ancillary chunks to be skipped. OUT_DIR/manifest.txt lists
"name width height channels"; OUT_DIR/<name>.png is the file and
OUT_DIR/<name>.out the expected 8-bit pixels (rows top to bottom), after the
conversion documented in include/attn/png.h (16-bit samples keep their high
byte, sub-byte grey is scaled to 0-255, alpha is composited over black:
floor(c * a / 255) with 8-bit c and a). Only the standard library is used.
"""
import os
import random
import struct
import sys
import zlib

VERSION = 1


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, rng):
    out = bytearray()
    prev = bytes(len(rows[0]))
    for r in rows:
        f = rng.randrange(5)
        enc = bytearray()
        for i, x in enumerate(r):
            a = r[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f]
            enc.append((x - pred) & 0xFF)
        out.append(f)
        out += enc
        prev = r
    return bytes(out)


def pack_row(samples, depth):
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out = bytearray()
    per = 8 // depth
    for i in range(0, len(samples), per):
        byte = 0
        group = samples[i:i + per]
        for k, s in enumerate(group):
            byte |= s << (8 - depth * (k + 1))
        out.append(byte)
    return bytes(out)


def make(name, w, h, ctype, depth, rng, mode, out_dir, manifest, pattern=False):
    in_ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    maxv = (1 << depth) - 1
    palette = trns = None
    if ctype == 3:
        n_pal = min(256, 1 << depth)
        palette = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n_pal)]
        trns = [rng.randrange(256) for _ in range(n_pal // 2)]  # the rest opaque
        maxv = n_pal - 1
    rows, expect = [], bytearray()
    for y in range(h):
        if pattern:  # smooth stripes: long repeats for the back-references
            samples = [((x // 7) * 13 + (y // 5) * 29) % (maxv + 1) for x in range(w * in_ch)]
        else:
            samples = [rng.randrange(maxv + 1) for _ in range(w * in_ch)]
        rows.append(pack_row(samples, depth))
        for x in range(w):
            px = samples[x * in_ch:(x + 1) * in_ch]
            hi = [s >> 8 for s in px] if depth == 16 else px
            if ctype == 0:
                expect.append(hi[0] if depth >= 8 else px[0] * 255 // maxv)
            elif ctype == 2:
                expect += bytes(hi)
            elif ctype == 3:
                a = trns[px[0]] if px[0] < len(trns) else 255
                expect += bytes(c * a // 255 for c in palette[px[0]])
            elif ctype == 4:
                expect.append(hi[0] * hi[1] // 255)
            else:
                expect += bytes(c * hi[3] // 255 for c in hi[:3])
    bits = in_ch * depth
    bpp = max(1, bits // 8)
    raw = filter_rows(rows, bpp, rng)
    if mode == "fixed":
        co = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_FIXED)
        z = co.compress(raw) + co.flush()
    elif mode == "stored":
        z = zlib.compress(raw, 0)
    else:
        z = zlib.compress(raw, 9)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    png += chunk(b"tEXt", b"Comment\x00attn test fixture")
    if palette:
        png += chunk(b"PLTE", b"".join(bytes(p) for p in palette))
        png += chunk(b"tRNS", bytes(trns))
    if mode == "split":  # many IDAT chunks, some of one byte
        cuts = sorted(set([1, 2] + [rng.randrange(1, len(z)) for _ in range(5)]))
        prev = 0
        for c in cuts + [len(z)]:
            if c > prev:
                png += chunk(b"IDAT", z[prev:c])
            prev = c
    else:
        png += chunk(b"IDAT", z)
    png += chunk(b"IEND", b"")
    out_ch = 1 if ctype in (0, 4) else 3
    assert len(expect) == w * h * out_ch
    with open(os.path.join(out_dir, name + ".png"), "wb") as f:
        f.write(png)
    with open(os.path.join(out_dir, name + ".out"), "wb") as f:
        f.write(bytes(expect))
    manifest.append(f"{name} {w} {h} {out_ch}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/png"
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20261206)
    manifest = []
    combos = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4),
              (3, 8), (4, 8), (4, 16), (6, 8), (6, 16)]
    modes = ["dynamic", "fixed", "stored", "split"]
    for i, (ctype, depth) in enumerate(combos):
        w, h = [(13, 7), (1, 1), (56, 56), (33, 5)][i % 4]
        mode = modes[i % 4]
        make(f"c{ctype}_d{depth}_{mode}", w, h, ctype, depth, rng, mode, out_dir, manifest)
    # a larger grey image with long matches (repeating rows) for back-references
    make("c0_d8_big", 300, 200, 0, 8, rng, "dynamic", out_dir, manifest, pattern=True)
    make("c2_d8_big", 120, 90, 2, 8, rng, "fixed", out_dir, manifest, pattern=True)
    with open(os.path.join(out_dir, "manifest.txt"), "w") as f:
        f.write(f"# attn png fixtures v{VERSION}: name width height channels\n")
        f.write("\n".join(manifest) + "\n")
    print(f"wrote {len(manifest)} PNG fixtures to {out_dir}")


if __name__ == "__main__":
    main()
