#!/usr/bin/env python3
"""vision_modules_maps.py: one picture of the attention maps of several
modules for the same test images, from the maps.png that `attn vision maps`
wrote for each (scripts/experiments/vision_modules_table.sh draws them in
RUNS/maps-<arm>/). Row i: test image i, then per arm its map: the whole
panel of a module with one spatial map per image (spatial, cbam, sag, gc),
the panel of query QUERY for a module drawn per query (psa, aaconv, sagan:
query 0 is (H/4, W/2), 1 the centre (H/2, W/2), 2 (3H/4, W/2), 3 the corner
(0, 0), as maps.txt says). Writes OUT (PNG) and OUT.txt (the columns).

Reads and writes only the PNG form attn writes (8-bit RGB, filter 0, no
interlace): standard library only.

usage: vision_modules_maps.py [--runs DIR] [--query Q] [--out FILE] ARM...
(default: --runs runs/vision-modules --query 1 --out DIR/maps-compare.png,
arms cbam sag gc psa)
"""
import argparse
import struct
import sys
import zlib

SCALE, GAP = 8, 4
S = 28 * SCALE
PW = S + GAP
PER_QUERY = {"psa", "aaconv", "sagan", "sagan-code", "simple"}


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour != 2 or interlace:
                raise ValueError(f"{path}: expected 8-bit RGB without interlace (attn's form)")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows, stride = [], 3 * w + 1
    for y in range(h):
        r = raw[y * stride:(y + 1) * stride]
        if r[0] != 0:
            raise ValueError(f"{path}: row {y} has filter {r[0]}; attn writes filter 0")
        rows.append(bytearray(r[1:]))
    return w, h, rows


def write_png(path, w, h, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arms", nargs="*", default=["cbam", "sag", "gc", "psa"])
    ap.add_argument("--runs", default="runs/vision-modules")
    ap.add_argument("--query", type=int, default=1, choices=range(4))
    ap.add_argument("--out")
    a = ap.parse_args()
    out = a.out or f"{a.runs}/maps-compare.png"
    pics = {arm: read_png(f"{a.runs}/maps-{arm}/maps.png") for arm in a.arms}
    n_img = min((h + GAP) // PW for _, h, _ in pics.values())
    W, H = (1 + len(a.arms)) * PW - GAP, n_img * PW - GAP
    canvas = [bytearray(b"\xff" * (3 * W)) for _ in range(H)]

    def paste(rows, col_src, col_dst, row):
        for y in range(S):
            src = rows[row * PW + y]
            canvas[row * PW + y][3 * col_dst * PW:3 * (col_dst * PW + S)] = src[3 * col_src * PW:3 * (col_src * PW + S)]

    first = pics[a.arms[0]][2]
    for i in range(n_img):
        paste(first, 0, 0, i)
        for k, arm in enumerate(a.arms):
            paste(pics[arm][2], 1 + a.query if arm in PER_QUERY else 1, 1 + k, i)
    write_png(out, W, H, canvas)
    with open(out + ".txt", "w") as f:
        f.write(f"columns: test image, then {', '.join(a.arms)} (maps of {a.runs}/maps-<arm>/maps.png; "
                f"per-query modules: query {a.query} of maps.txt); {n_img} rows (test images 0..{n_img - 1})\n")
    print(f"wrote {out} ({n_img} images x {len(a.arms)} maps) and {out}.txt")


if __name__ == "__main__":
    sys.exit(main())
