#!/usr/bin/env python3
"""make_long_context_fixtures.py: PyTorch references for include/attn/long_context.h.

    /usr/bin/python3 tools/make_long_context_fixtures.py tests/fixtures

Writes, in the ATFX format (tests/fixture.h; the writer is make_fixtures.py's):

  txl_attention.atfx: op fixtures of the graph op TXL_ATTENTION, read by the
      op suite (tests/test_ops.c) through build_txl_attention of
      tests/op_cases.c, with make_fixtures.py's case conventions (c<k>.<input>,
      c<k>.attr.<name>, c<k>.view.<input>, out, grad_out, grad.<input>).
  txl_variants.atfx: the Transformer-XL model's variants (include/attn/txl.h)
      against TXLModelRef, read by the txl suite (tests/test_txl.c): for each
      key, <k>.cfg i32 [12] (V, L, H, D, E, F, mem_len, T, B, n_persist,
      no_ffn, segments), <k>.span_cfg f32 [3] (span_max, ramp, eps),
      <k>.ext i32 [2] (pers_scaled, clamp_len; absent: 0, 0), <k>.p.<name> the parameters, <k>.ids<s>, <k>.logits<s>, <k>.loss<s> per
      segment (the memory starts empty), <k>.g.<name> the gradient of the sum
      of the segments' losses (each segment's memory held constant).

The reference (tools/long_context_torch.py) follows the papers' equations
and the published code's conventions: the relative shift of Transformer-XL's
code for the position term (the C op indexes distances directly), the span
mask applied after the softmax and renormalised by (sum + eps), persistent
vectors inside the one softmax with the span covering the context only.

Finite differences probe every input (tests/test_ops.c (d), step 1e-2): the
span values have fractional parts in [0.2, 0.6] with the ramp 2.25, so no
probe crosses a kink of the clamp (kinks at z = x and z = x - R, x integer).

Oracle precision as make_fixtures.py: inputs drawn in float32, everything
in float64, results rounded once. Deterministic; needs torch and numpy.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)
from long_context_torch import TXLModelRef, txl_attention_ref  # noqa: E402

TXL_CASES = [
    # (label, B, H, T, M, L extra rows, D, Dv, scale, span, N, strided q, eps)
    ("no memory, T = S = 4", 2, 2, 4, 0, 0, 4, 5, 0.0, False, 0, False, 0.0),
    ("memory M 5, T 3, L = S + 2, scale 0.4", 1, 2, 3, 5, 2, 6, 4, 0.4, False, 0, False, 0.0),
    ("strided q ([B,T,H,D] permuted), M 2, T 5", 2, 3, 5, 2, 0, 4, 4, 0.0, False, 0, True, 0.0),
    ("T 1 decoding step, M 6, D 9, Dv 11 (tail loops)", 1, 2, 1, 6, 1, 9, 11, 0.0, False, 0,
     False, 0.0),
    ("adaptive span, R 2.25, eps 1e-8, M 5, T 4", 2, 2, 4, 5, 0, 4, 3, 0.0, True, 0, False, 1e-8),
    ("adaptive span, eps 0, M 3, T 6 (some rows cut to a few keys)", 1, 3, 6, 3, 0, 5, 4, 0.0,
     True, 0, False, 0.0),
    ("persistent vectors N 3, M 2, T 4", 2, 2, 4, 2, 0, 4, 5, 0.0, False, 3, False, 0.0),
    ("persistent N 2 + adaptive span (joint renormalisation), M 4, T 3", 1, 2, 3, 4, 1, 6, 4, 0.0,
     True, 2, False, 1e-8),
]


def gen_txl_attention(fx):
    for (label, b, h, t, m, lx, d, dv, scale, span, n, strided, eps) in TXL_CASES:
        s = m + t
        ins = {"q": fx.normal(b, t, h, d) if strided else fx.normal(b, h, t, d),
               "k": fx.normal(b, h, s, d), "v": fx.normal(b, h, s, dv),
               "rk": fx.normal(h, s + lx, d), "u": fx.normal(h, d, scale=0.5),
               "vb": fx.normal(h, d, scale=0.5)}
        attrs = {"scale": np.float32(scale)}
        ramp = 2.25
        if span:
            whole = fx.ints(0, max(2, s - 1), h).astype(np.float32)
            ins["span"] = (whole + fx.uniform(0.2, 0.6, h)).astype(np.float32)
            attrs["ramp"] = np.float32(ramp)
            attrs["span_eps"] = np.float32(eps)
        if n:
            ins["pers_k"] = fx.normal(h, n, d)
            ins["pers_v"] = fx.normal(h, n, dv)

        def f(tt, a, span=span, n=n, scale=scale, ramp=ramp, eps=eps):
            out, _ = txl_attention_ref(
                tt["q"], tt["k"], tt["v"], tt["rk"], tt["u"], tt["vb"],
                scale=None if scale == 0.0 else float(np.float32(scale)),
                span=tt["span"] if span else None, ramp=ramp, eps=float(np.float32(eps)),
                pers_k=tt["pers_k"] if n else None, pers_v=tt["pers_v"] if n else None)
            return out
        fx.case("txl_attention " + label, ins, f, attrs,
                views={"q": (0, 2, 1, 3)} if strided else None)


VARIANTS = [
    # (key, V, L, H, D, E, F, mem_len, T, B, n_persist, no_ffn, spans of layer l, head h,
    #  span eps, pers_scaled, clamp_len)
    # eps 0 in "a": its random weights give some masked memory keys most of a
    # row's probability, where eps > 0 makes the trimmed and the whole memory
    # differ (docs/long_context.md, "Trimming"); "b" keeps the published 1e-8.
    ("a", 11, 2, 2, 3, 6, 10, 6, 4, 2, 3, 0, [[1.3, 2.6], [0.4, 3.3]], 0.0, 0, 0),
    ("b", 9, 2, 3, 2, 4, 0, 6, 4, 1, 4, 1, [[2.2, 0.7, 1.4], [3.2, 1.1, 0.3]], 1e-8, 0, 0),
    # "c": the published code's scaled persistent vectors (pers_scaled) and
    # Transformer-XL's clamp_len 3 (distances 4 .. 9 share the row of 3)
    ("c", 10, 2, 2, 3, 6, 8, 6, 4, 2, 5, 1, [[1.7, 2.4], [0.6, 3.1]], 0.0, 1, 3),
]
SPAN_MAX, SPAN_RAMP, SEGMENTS = 8.0, 1.5, 3


def gen_txl_variants(fx):
    """The C model's variants (span + persistent vectors + FFN; all-attention:
    persistent vectors, no FFN, span) against TXLModelRef: three segments
    from an empty memory of 6 (the third one trimmed to the span window by
    the C model, while the reference keeps the whole memory), logits, losses
    and the gradient of their sum."""
    import torch
    for key, V, L, H, D, E, F, mem_len, T, B, N, no_ffn, spans, SPAN_EPS, scaled, clamp in VARIANTS:
        fx.put(key + ".cfg", np.array([V, L, H, D, E, F, mem_len, T, B, N, no_ffn, SEGMENTS],
                                      dtype=np.int32))
        fx.put(key + ".span_cfg", np.array([SPAN_MAX, SPAN_RAMP, SPAN_EPS], dtype=np.float32))
        if scaled or clamp:
            fx.put(key + ".ext", np.array([scaled, clamp], dtype=np.int32))
        shapes = [("transformer.word_emb.emb_layers.0.weight", (V, E), 1.0)]
        for l in range(L):
            pre = "transformer.layers.%d." % l
            shapes += [(pre + "dec_attn.qkv_net.weight", (3 * H * D, E), 0.5),
                       (pre + "dec_attn.r_net.weight", (H * D, E), 0.5),
                       (pre + "dec_attn.o_net.weight", (E, H * D), 0.5),
                       (pre + "dec_attn.layer_norm.weight", (E,), -1.0),
                       (pre + "dec_attn.layer_norm.bias", (E,), 0.1),
                       (pre + "dec_attn.r_w_bias", (H, D), 0.3),
                       (pre + "dec_attn.r_r_bias", (H, D), 0.3),
                       (pre + "dec_attn.span", (H,), None),
                       (pre + "dec_attn.pers_k", (H, N, D), 0.7),
                       (pre + "dec_attn.pers_v", (H, N, D), 0.7)]
            if not no_ffn:
                shapes += [(pre + "pos_ff.CoreNet.0.weight", (F, E), 0.5),
                           (pre + "pos_ff.CoreNet.0.bias", (F,), 0.1),
                           (pre + "pos_ff.CoreNet.3.weight", (E, F), 0.5),
                           (pre + "pos_ff.CoreNet.3.bias", (E,), 0.1),
                           (pre + "pos_ff.layer_norm.weight", (E,), -1.0),
                           (pre + "pos_ff.layer_norm.bias", (E,), 0.1)]
        shapes.append(("crit.out_layers.0.bias", (V,), 0.1))
        params = {}
        for name, shape, scale in shapes:
            if scale is None:  # the spans, stored as p = z / span_max
                l = int(name.split(".")[2])
                arr = (np.array(spans[l]) / SPAN_MAX).astype(np.float32)
            elif scale < 0:    # LayerNorm weights around 1
                arr = (1.0 + 0.1 * fx.normal(*shape)).astype(np.float32)
            else:
                arr = fx.normal(*shape, scale=scale)
            fx.put(key + ".p." + name, arr)
            params[name] = torch.tensor(arr.astype(np.float64), requires_grad=True)
        model = TXLModelRef(params, V, L, H, D, E, no_ffn=bool(no_ffn), span_max=SPAN_MAX,
                            span_ramp=SPAN_RAMP, span_eps=SPAN_EPS, pers_scaled=bool(scaled),
                            clamp_len=clamp)
        mems = [torch.zeros(B, 0, E, dtype=torch.float64) for _ in range(L)]
        total = 0.0
        for seg in range(1, SEGMENTS + 1):
            ids = fx.ints(0, V, B, T)
            fx.put(key + ".ids%d" % seg, ids)
            logits, mems = model.forward(torch.tensor(ids.astype(np.int64)), mems, mem_len)
            tg = torch.tensor(ids[:, 1:].astype(np.int64))
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tg.reshape(-1))
            fx.put(key + ".logits%d" % seg, logits.detach().numpy().astype(np.float32))
            fx.put(key + ".loss%d" % seg, np.array([loss.item()], dtype=np.float32))
            total = total + loss
        total.backward()
        for name, t in params.items():
            fx.put(key + ".g." + name, t.grad.numpy().astype(np.float32))
    fx.ncases = len(VARIANTS)


def write(outdir, name, fx):
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        raise SystemExit("%s: %d bytes, over the %d limit" % (name, len(data), MAX_FILE))
    path = os.path.join(outdir, name)
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (path, len(data)))


def main(argv):
    if len(argv) != 2:
        print("usage: make_long_context_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    import torch
    torch.set_default_dtype(torch.float64)
    os.makedirs(argv[1], exist_ok=True)
    fx = Fixture("txl_attention")
    gen_txl_attention(fx)
    write(argv[1], "txl_attention.atfx", fx)
    fx = Fixture("txl_variants")
    gen_txl_variants(fx)
    write(argv[1], "txl_variants.atfx", fx)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
