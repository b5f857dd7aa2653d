#!/usr/bin/env python3
"""check_op_coverage.py: every op of the op table has its three oracles' inputs.

    python3 tools/check_op_coverage.py        (run by .ci/run; no PyTorch needed)

For each op of src/core/op_table.h (the X-macro ATTN_OP_LIST) it checks:

  1. a fixture generator: a key of GENERATORS in tools/make_fixtures.py, or of
     ELSEWHERE, whose script exists, names the op and is run by the Makefile's
     `fixtures` target (make_fixtures.py refuses to run otherwise, but only
     where PyTorch is installed: this check runs everywhere);
  2. a fixture file tests/fixtures/<op>.atfx: a well-formed ATFX file (magic,
     version 1, no trailing bytes) whose "op" text is the op and whose
     n_cases is at least 1;
  3. a finite-difference case: at least one case of that file with a float32
     input and PyTorch's gradient of it (c<k>.<input> and c<k>.grad.<input>),
     which the op suite's check (d) probes by central differences (it runs
     finite_diff for every fixture case, tests/test_ops.c, also checked here).

The generators are read as Python source (ast), never imported, so neither
torch nor numpy is needed. Prints one "FAIL op <name>: ..." line per missing
piece, then "coverage: N passed, N failed" (one per op) and exits 1 if any op
failed.
"""

import ast
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F32, I32 = 0, 2


def table_ops():
    with open(os.path.join(ROOT, "src", "core", "op_table.h")) as f:
        text = f.read()
    return re.findall(r"^\s*X\(\s*[A-Z0-9_]+\s*,\s*([a-z0-9_]+)\s*,", text, re.M)


def dict_keys(tree, name):
    """The string keys of the module-level dict literal `name`."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Dict):
                return {k.value: (v.value if isinstance(v, ast.Constant) else None)
                        for k, v in zip(node.value.keys, node.value.values)
                        if isinstance(k, ast.Constant)}
    return None


def read_atfx(path):
    """{name: (dtype, values or None)} of an ATFX file; raises ValueError."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 20 or b[:4] != b"ATFX":
        raise ValueError("not an ATFX file (bad magic)")
    version, n = struct.unpack_from("<II", b, 4)
    if version != 1:
        raise ValueError("version %d, expected 1" % version)
    o, out = 20, {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", b, o)
        o += 4
        name = b[o:o + ln].decode("utf-8")
        o += ln
        dtype, ndim = struct.unpack_from("<II", b, o)
        o += 8
        if dtype not in (F32, I32) or ndim > 8:
            raise ValueError("tensor '%s': dtype %d, %d dims" % (name, dtype, ndim))
        shape = struct.unpack_from("<%dq" % ndim, b, o)
        o += 8 * ndim
        numel = 1
        for d in shape:
            numel *= d
        if o + 4 * numel > len(b):
            raise ValueError("tensor '%s' is truncated" % name)
        vals = struct.unpack_from("<%di" % numel, b, o) if dtype == I32 and numel <= 256 else None
        out[name] = (dtype, vals)
        o += 4 * numel
    if o != len(b):
        raise ValueError("%d trailing bytes" % (len(b) - o))
    return out


def text_of(t):
    return bytes(v for v in t[1]).decode("utf-8", "replace") if t and t[1] is not None else ""


def main():
    ops = table_ops()
    if not ops:
        print("FAIL: no op found in src/core/op_table.h")
        return 1
    with open(os.path.join(ROOT, "tools", "make_fixtures.py")) as f:
        tree = ast.parse(f.read())
    gens = dict_keys(tree, "GENERATORS") or {}
    elsewhere = dict_keys(tree, "ELSEWHERE") or {}
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    with open(os.path.join(ROOT, "tests", "test_ops.c")) as f:
        fd_runs = re.search(r"\n\s*finite_diff\(ctx, e, fx, k,", f.read()) is not None
    passed = failed = 0
    for op in ops:
        why = []
        # 1. generator
        if op in gens:
            pass
        elif op in elsewhere:
            script = elsewhere[op] or ""
            path = os.path.join(ROOT, script)
            if not os.path.isfile(path):
                why.append("ELSEWHERE names %s, which does not exist" % script)
            else:
                with open(path) as f:
                    src = f.read()
                if '"%s"' % op not in src and "%s.atfx" % op not in src:
                    why.append("%s (its generator in ELSEWHERE) never names '%s'" % (script, op))
                if script not in makefile:
                    why.append("the Makefile's fixtures target does not run %s" % script)
        else:
            why.append("no generator: add it to GENERATORS (or ELSEWHERE) in tools/make_fixtures.py")
        # 2. fixture file
        fpath = os.path.join(ROOT, "tests", "fixtures", op + ".atfx")
        fx = None
        if not os.path.isfile(fpath):
            why.append("no fixture file tests/fixtures/%s.atfx (run make fixtures)" % op)
        else:
            try:
                fx = read_atfx(fpath)
            except (ValueError, struct.error, UnicodeDecodeError) as e:
                why.append("tests/fixtures/%s.atfx: %s" % (op, e))
        n_cases = 0
        if fx is not None:
            name = text_of(fx.get("op"))
            if name != op:
                why.append("tests/fixtures/%s.atfx is for op '%s'" % (op, name))
            nc = fx.get("n_cases")
            n_cases = nc[1][0] if nc and nc[0] == I32 and nc[1] else 0
            if n_cases < 1:
                why.append("tests/fixtures/%s.atfx has no cases (n_cases)" % op)
        # 3. a finite-difference case
        if fx is not None and n_cases >= 1:
            probed = [n for n in fx if re.match(r"c\d+\.grad\.", n)
                      and fx.get(n.replace(".grad.", ".", 1), (None,))[0] == F32]
            if not probed:
                why.append("no finite-difference case: no fixture case has a float input with "
                           "its gradient (c<k>.<input> and c<k>.grad.<input>)")
            if not fd_runs:
                why.append("tests/test_ops.c no longer runs finite_diff on the fixture cases")
        if why:
            failed += 1
            for w in why:
                print("FAIL op %s: %s" % (op, w))
        else:
            passed += 1
    print("coverage: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
