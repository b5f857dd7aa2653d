#!/usr/bin/env python3
"""explorer_browser.py: opens attention explorer pages (attn ... --html) in
headless Chromium and checks them through the DevTools protocol, with the
standard library only (the WebSocket client is written here).

    python3 tests/explorer_browser.py --browser chromium [--screenshots DIR]
        PAGE.html:WEIGHTS.tsv:NAME [...] [BIG.html::NAME:MAX_MS]

For each page: no console error or uncaught exception while it loads and is
used; the mouse (Input.dispatchMouseEvent, a real hover) over a query token
and a key token of the head view, in the first and the last layer, shows
tables whose values equal the weights of WEIGHTS.tsv (attn's full-precision
weights of the same page) to the precision the page states, and whose
masked rows are the causal mask's; selecting one head shows one column;
the model view has layers x heads heatmaps; a click on one enlarges it, and
the mouse over a cell shows its exact weight, tokens, layer and head; an
alignment map's step view shows each step's source weights. Screenshots of
each view are checked for structure (a PNG of the viewport's size, not one
colour), never against pixels; with --screenshots they are kept as
DIR/explorer-NAME-VIEW.png. A page given as BIG.html::NAME:MAX_MS is only
timed: drawn and painted within MAX_MS of the start of navigation (the
page sets attnExplorer.paintedMs after its first frame), and its model view.

Prints one "ok"/"FAIL" line per check and "explorer: N passed, N failed";
exit status 1 on any failure.
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

PASSED = 0
FAILED = 0


def ok(msg):
    global PASSED
    PASSED += 1
    print("ok   " + msg, flush=True)


def fail(msg):
    global FAILED
    FAILED += 1
    print("FAIL " + msg, flush=True)


def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        fail(msg + (": " + detail if detail else ""))
    return cond


# ---- a minimal WebSocket client (RFC 6455), enough for the DevTools protocol ----------------

class WebSocket:
    def __init__(self, url, timeout=30):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise IOError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise IOError("websocket handshake refused: %r" % head[:200])

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + masked)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise IOError("websocket: connection closed")
            buf += chunk
        return buf

    def recv(self):
        """One whole message (fragments joined) as text."""
        parts = []
        while True:
            b0, b1 = self._exact(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            mask = self._exact(4) if b1 & 0x80 else None
            data = self._exact(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if op == 8:
                raise IOError("websocket: closed by the browser")
            if op in (9, 10):  # ping / pong: not used by Chromium here
                continue
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class DevTools:
    """Commands to one page target; events kept in self.events."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method, timeout=20):
        end = time.time() + timeout
        for e in self.events:
            if e["method"] == method:
                return e
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        raise TimeoutError(method)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expr, r["exceptionDetails"].get("exception", {}).get(
                "description", r["exceptionDetails"].get("text"))))
        return r["result"].get("value")

    def mouse(self, kind, x, y):
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left" if kind != "mouseMoved" else "none",
                  clickCount=1 if kind != "mouseMoved" else 0)

    def errors(self):
        """Console errors and uncaught exceptions seen so far."""
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(d.get("exception", {}).get("description") or d.get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text"))
        return out


# ---- the browser -----------------------------------------------------------------------------

W, H = 1280, 860


def start_browser(exe, profile):
    args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--allow-file-access-from-files", "--remote-debugging-port=0",
            "--user-data-dir=" + profile, "--window-size=%d,%d" % (W, H), "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, "DevToolsActivePort")
    end = time.time() + 30
    while time.time() < end:
        if os.path.exists(port_file):
            lines = open(port_file).read().split("\n")
            if len(lines) >= 2 and lines[0].strip():
                return proc, int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %d" % (exe, proc.returncode))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("%s did not open its DevTools port" % exe)


def page_target(port):
    end = time.time() + 10
    while time.time() < end:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/json/list")
        targets = json.loads(c.getresponse().read())
        c.close()
        for t in targets:
            if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                return t["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise RuntimeError("no page target")


# ---- screenshots: structure, not pixels -------------------------------------------------------

def png_info(data):
    """(width, height, distinct colours in a sample of rows) of an 8-bit RGB(A) PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, typ = struct.unpack("!I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, ctype = struct.unpack("!IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError("PNG colour type %d depth %d" % (ctype, depth))
            bpp = 3 if ctype == 2 else 4
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + w * bpp
    if len(raw) != stride * h:
        raise ValueError("PNG data of %d bytes for %dx%d" % (len(raw), w, h))
    # Undo the filters (PNG spec 9.2) and count colours.
    prev = bytearray(w * bpp)
    colours = set()
    for y in range(h):
        f = raw[y * stride]
        line = bytearray(raw[y * stride + 1:(y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:
            for x in range(0, w, 2):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
        prev = line
    return w, h, len(colours)


def screenshot(dt, name, view, keep_dir):
    """Checks a quarter-size screenshot of the viewport for structure (a PNG
    of the right size, many colours: the page drew something); with keep_dir
    also keeps a full-size one."""
    small = base64.b64decode(dt.call("Page.captureScreenshot", format="png",
                                     clip={"x": 0, "y": 0, "width": W, "height": H, "scale": 0.25})["data"])
    try:
        w, h, n = png_info(small)
        check(w == W // 4 and h == H // 4 and n >= 8,
              "%s: screenshot of the %s (%dx%d at 1/4, %d colours sampled)" % (name, view, w, h, n),
              "expected %dx%d with at least 8 colours" % (W // 4, H // 4))
    except (ValueError, zlib.error) as e:
        fail("%s: screenshot of the %s: %s" % (name, view, e))
    if keep_dir:
        shot = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
        os.makedirs(keep_dir, exist_ok=True)
        with open(os.path.join(keep_dir, "explorer-%s-%s.png" % (name, view)), "wb") as f:
            f.write(shot)


# ---- the checks -------------------------------------------------------------------------------

def load_weights(path):
    w = {}
    with open(path) as f:
        header = f.readline().split()
        if header != ["map", "layer", "head", "row", "col", "weight"]:
            raise ValueError("%s: unexpected header %r" % (path, header))
        for line in f:
            k, l, h, r, c, v = line.split("\t")
            w[(int(k), int(l), int(h), int(r), int(c))] = float(v)
    return w


def close_enough(shown, exact, decimals):
    # the page rounds to `decimals`; float32 weights near a rounding boundary
    # may round either way, hence the 1e-6
    return abs(float(shown) - exact) <= 0.5 * 10 ** -decimals + 1e-6


def check_table(dt, name, W8, k, layer, side, index, rows, cols, decimals, masked_fn):
    d = dt.js("attnExplorer.details()")
    if not check(d is not None and d["side"] == side and d["index"] == index and d["layer"] == layer,
                 "%s map %d layer %d: hovering %s token %d shows its table" % (name, k, layer, side, index), repr(d)[:200]):
        return
    n = cols if side == "row" else rows
    bad = []
    if len(d["rows"]) != n:
        bad.append("%d rows, expected %d" % (len(d["rows"]), n))
    for row in d["rows"]:
        j = row["index"]
        r, c = (index, j) if side == "row" else (j, index)
        for hi, h in enumerate(d["heads"]):
            exact = W8[(k, layer, h, r, c)]
            if not close_enough(row["values"][hi], exact, decimals):
                bad.append("head %d (%d,%d): shown %s, attn %.9g" % (h, r, c, row["values"][hi], exact))
        if row["masked"] != masked_fn(r, c):
            bad.append("(%d,%d) masked %s" % (r, c, row["masked"]))
    check(not bad, "%s map %d layer %d %s %d: %d heads x %d shown weights equal attn's to %d decimals, masks as expected"
          % (name, k, layer, side, index, len(d["heads"]), n, decimals), "; ".join(bad[:5]))


def run_page(dt, html, tsv, name, keep_dir):
    W8 = load_weights(tsv)
    dt.events.clear()
    dt.call("Page.navigate", url="file://" + os.path.abspath(html))
    dt.wait_event("Page.loadEventFired")
    t0 = time.time()
    ready = dt.js("!!(window.attnExplorer && window.attnExplorer.ready)")
    if not check(ready, "%s: the page starts (window.attnExplorer.ready)" % name, "; ".join(map(str, dt.errors()))):
        return
    dec = dt.js("attnExplorer.decimals")
    maps = dt.js("attnExplorer.maps()")
    text = dt.js("document.getElementById('precision').textContent")
    check(("%d decimals" % dec) in text, "%s: the page states its precision (%r)" % (name, text))
    for k, m in enumerate(maps):
        dt.js("attnExplorer.setMap(%d)" % k)
        L, Hh, R, C = m["layers"], m["heads"], m["rows"], m["cols"]
        # The masked cells: for a causal mask the rule itself (key c after the
        # query's position, shifted by a memory of C - R keys); for another
        # (a local-m window) the page's own mask, checked against attn's
        # weights: every masked cell has weight 0 in every layer and head.
        held = dt.js("attnExplorer.mask(%d)" % k) if m["masked"] else None
        if held is not None and m["maskName"] != "causal":
            bad = [(l, h, r, c) for (kk, l, h, r, c), w in W8.items()
                   if kk == k and held[r * C + c] == 0 and w != 0.0]
            check(not bad, "%s map %d: attn's weights are 0 wherever the %s mask masks" % (name, k, m["maskName"]),
                  "%d nonzero, first %r" % (len(bad), bad[:1]))

        def masked_fn(r, c, m=m, held=held, R=R, C=C):
            if not m["masked"]:
                return False
            if m["maskName"] == "causal":
                return c > r + (C - R if C > R else 0)
            return held[r * C + c] == 0

        if m["kind"] == "alignment":
            st = dt.js("attnExplorer.state()")
            check(st["view"] == "step", "%s map %d: an alignment opens in the step view" % (name, k), repr(st))
            bad = []
            for t in sorted({0, R // 2, R - 1}):
                dt.js("attnExplorer.setStep(%d)" % t)
                vals = dt.js("attnExplorer.stepValues()")
                if len(vals) != C:
                    bad.append("step %d: %d values" % (t, len(vals)))
                    continue
                for c in range(C):
                    if not close_enough(vals[c], W8[(k, 0, 0, t, c)], dec):
                        bad.append("step %d source %d: %s vs %.9g" % (t, c, vals[c], W8[(k, 0, 0, t, c)]))
            check(not bad, "%s map %d: the step view shows each step's source weights" % (name, k), "; ".join(bad[:5]))
            dt.js("attnExplorer.setStep(%d)" % min(R - 1, 2))
            screenshot(dt, name, "step", keep_dir)
            dt.js("attnExplorer.setView('head')")
        # head view: a real hover over a query token and a key token, first and last layer
        if k == 0:
            dt.mouse("mouseMoved", 2, 2)
            dt.js("attnExplorer.setLayer(%d); window.scrollTo(0, 0)" % (L - 1))
            screenshot(dt, name, "head-all", keep_dir)
        for layer in sorted({0, L - 1}):
            dt.js("attnExplorer.setLayer(%d)" % layer)
            q = R // 2
            p = dt.js("attnExplorer.tokenRect('row', %d)" % q)
            dt.mouse("mouseMoved", p["x"], p["y"])
            check_table(dt, name, W8, k, layer, "row", q, R, C, dec, masked_fn)
            if layer == L - 1 and k == 0:
                screenshot(dt, name, "head", keep_dir)
            kk = min(C - 1, 1)
            p = dt.js("attnExplorer.tokenRect('col', %d)" % kk)
            dt.mouse("mouseMoved", p["x"], p["y"])
            check_table(dt, name, W8, k, layer, "col", kk, R, C, dec, masked_fn)
            dt.mouse("mouseMoved", 2, 2)
        if Hh > 1:
            dt.js("attnExplorer.setHeads([%d])" % (Hh - 1))
            p = dt.js("attnExplorer.tokenRect('row', 0)")
            dt.mouse("mouseMoved", p["x"], p["y"])
            d = dt.js("attnExplorer.details()")
            check(d and d["heads"] == [Hh - 1], "%s map %d: selecting head %d shows that head only" % (name, k, Hh - 1),
                  repr(d and d["heads"]))
            dt.js("attnExplorer.setHeads(%s)" % json.dumps(list(range(Hh))))
            dt.mouse("mouseMoved", 2, 2)
        # model view: L x H heatmaps, click one, hover a cell
        dt.js("attnExplorer.setView('model')")
        n = dt.js("document.querySelectorAll('#grid canvas.heatmap').length")
        check(n == L * Hh, "%s map %d: the model view has %d x %d heatmaps" % (name, k, L, Hh), "found %d" % n)
        l, h = L - 1, Hh - 1
        p = dt.js("(function(){var c=document.querySelector('#grid canvas[data-layer=\"%d\"][data-head=\"%d\"]');"
                  "c.scrollIntoView({block:'center'});var b=c.getBoundingClientRect();"
                  "return {x:b.left+b.width/2,y:b.top+b.height/2};})()" % (l, h))
        dt.mouse("mousePressed", p["x"], p["y"])
        dt.mouse("mouseReleased", p["x"], p["y"])
        st = dt.js("attnExplorer.state()")
        check(st["zoom"] == {"layer": l, "head": h}, "%s map %d: a click enlarges layer %d head %d" % (name, k, l, h), repr(st))
        labels = dt.js("[document.querySelectorAll('#zoom-left .lab').length, document.querySelectorAll('#zoom-top .lab').length,"
                       " Math.min.apply(null, Array.from(document.querySelectorAll('#zoom-left .lab')).map(function(e){"
                       "return parseFloat(getComputedStyle(e).fontSize);}))]")
        check(labels[0] == R and labels[1] == C and labels[2] >= 11,
              "%s map %d: the enlarged map labels all %d rows and %d columns in readable type" % (name, k, R, C), repr(labels))
        bad = []
        for (r, c) in sorted({(R - 1, 0), (R // 2, C // 2), (0, C - 1)}):
            p = dt.js("attnExplorer.cellRect(%d, %d)" % (r, c))
            dt.mouse("mouseMoved", p["x"], p["y"])
            tip = dt.js("attnExplorer.tip()") or ""
            lines = tip.split("\n")
            exact = W8[(k, l, h, r, c)]
            if not (lines and close_enough(lines[0], exact, dec) and ("layer %d, head %d" % (l, h)) in tip
                    and (" %d \"" % r) in lines[1] and (" %d \"" % c) in lines[2]
                    and (("masked" in tip) == masked_fn(r, c))):
                bad.append("cell (%d,%d): tip %r, attn %.9g" % (r, c, tip, exact))
        check(not bad, "%s map %d: hovering cells of the enlarged map shows value, tokens, layer and head" % (name, k),
              "; ".join(bad))
        if k == 0 or m["kind"] == "cross":
            # the grid and the top of the enlarged map in view, a cell's tooltip shown
            dt.js("window.scrollTo(0, 0); document.getElementById('zoom-scroll').scrollTo(0, 0)")
            p = dt.js("attnExplorer.cellRect(%d, %d)" % (min(R - 1, 4), min(C - 1, 2)))
            dt.mouse("mouseMoved", p["x"], p["y"])
            screenshot(dt, name, "model" if k == 0 else "model-cross", keep_dir)
        dt.mouse("mouseMoved", 2, 2)
        dt.js("attnExplorer.setView('head')") if m["kind"] != "alignment" else None
    errs = dt.errors()
    check(not errs, "%s: no console errors or exceptions (%.1f s of checks)" % (name, time.time() - t0), "; ".join(map(str, errs))[:500])


def run_timing(dt, html, name, max_ms):
    """A big page: how long it takes to open (navigation to painted), and its model view."""
    dt.events.clear()
    t0 = time.time()
    dt.call("Page.navigate", url="file://" + os.path.abspath(html))
    dt.wait_event("Page.loadEventFired", timeout=60)
    painted = -1
    while time.time() - t0 < 60 and painted < 0:
        painted = dt.js("window.attnExplorer ? attnExplorer.paintedMs : -1")
        if painted < 0:
            time.sleep(0.02)
    ready = dt.js("attnExplorer.readyMs")
    m = dt.js("attnExplorer.maps()[0]")
    check(0 <= painted <= max_ms, "%s: a page of %d layers x %d heads at %d tokens (%.1f MB) is drawn %.0f ms and "
          "painted %.0f ms after navigation starts, under %d ms"
          % (name, m["layers"], m["heads"], m["rows"], os.path.getsize(html) / 1e6, ready, painted, max_ms))
    t1 = time.time()
    dt.js("attnExplorer.setView('model')")
    n = dt.js("document.querySelectorAll('#grid canvas.heatmap').length")
    check(n == m["layers"] * m["heads"], "%s: model view of %d heatmaps drawn in %.0f ms"
          % (name, n, (time.time() - t1) * 1000))
    errs = dt.errors()
    check(not errs, "%s: no console errors" % name, "; ".join(map(str, errs))[:500])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--browser", default="chromium")
    ap.add_argument("--screenshots", default=None)
    ap.add_argument("pages", nargs="+", help="PAGE.html:WEIGHTS.tsv:NAME, or PAGE.html::NAME:MAX_MS (timing only)")
    a = ap.parse_args()
    exe = shutil.which(a.browser) or a.browser
    profile = tempfile.mkdtemp(prefix="attn_explorer_chrome.")
    proc = None
    try:
        proc, port = start_browser(exe, profile)
        ws = WebSocket(page_target(port))
        dt = DevTools(ws)
        for dom in ("Runtime", "Log", "Page"):
            dt.call(dom + ".enable")
        dt.call("Emulation.setDeviceMetricsOverride", width=W, height=H, deviceScaleFactor=1, mobile=False)
        for spec in a.pages:
            html, tsv, name = spec.split(":")[:3]
            try:
                if not tsv:  # PAGE.html::NAME:MAX_MS: the time to open a big page
                    run_timing(dt, html, name, float(spec.split(":")[3]))
                else:
                    run_page(dt, html, tsv, name, a.screenshots)
            except (RuntimeError, TimeoutError, KeyError, TypeError, IOError) as e:
                fail("%s: %s: %s" % (name, type(e).__name__, e))
        ws.close()
    except (RuntimeError, OSError) as e:
        fail("browser: %s" % e)
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    print("explorer: %d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
