#!/usr/bin/env python3
"""make_reformer_fixtures.py: PyTorch references for include/attn/reformer.h.

    /usr/bin/python3 tools/make_reformer_fixtures.py tests/fixtures
    /opt/txl-venv/bin/python tools/make_reformer_fixtures.py tests/fixtures --hf

Writes, in the ATFX format (tests/fixture.h; the writer is make_fixtures.py's):

  lsh_attention.atfx: op fixtures of the graph op LSH_ATTENTION, read by the
      op suite (tests/test_ops.c) through build_lsh_attention of
      tests/op_cases.c: c<k>.qk [B,H,T,D], c<k>.v [B,H,T,Dv], the fixed
      rotations c<k>.rot [H,D,R,NB/2] (not an input: the hashing has no
      gradient), attributes n_hashes, n_buckets, chunk_len, causal, and
      out, grad_out, grad.qk, grad.v from lsh_attention_ref below, the
      equations of docs/reformer.md written directly in torch (float64).
      It covers what Hugging Face cannot express: a length that is not a
      multiple of the chunk (ragged last chunk), Dv != D, one chunk only.
  reformer_rope.atfx: the Reformer LM's rotary path (docs/reformer.md
      section 4): the shared query-keys are rotated by RoPE (rotate-half
      pairs (i, i + D/2), angle p theta^(-2i/D)) BEFORE the LSH op hashes,
      normalises and multiplies them. Per case key k: k.cfg i32 [9] (B, H,
      T, D, Dv, R, NB, L, causal), k.theta f32 [1] (the base as given; 0
      means 10000), k.rope_dims i32 [1] (only when not all D rotate),
      k.qk [B,H,T,D] (before the rotation), k.v, k.rot,
      k.buckets i32 [B,H,R,T] (of the ROTATED vectors), k.out, k.grad_out,
      k.grad.qk, k.grad.v. The script checks that in every case the
      rotated vectors hash differently from the unrotated ones (so the
      fixture tells the two orders apart) and that the fixture is
      sensitive to the rotation (out differs from plain LSH's by > 1e-2).
  reformer_hf.atfx (with --hf, needs transformers < 5, e.g. the venv
      /opt/txl-venv: transformers 4.30.2 on torch 1.13): Hugging Face's
      LSHSelfAttention with its rotations FIXED (torch.randn is replaced,
      during its forward only, by a function returning ours), in float64.
      Per case key k: k.cfg i32 [9] (B, T, E, H, D, R, NB, L, causal),
      k.x [B,T,E], k.w_qk [H D, E], k.w_v [H D, E] (nn.Linear weights, no
      bias), k.rot [H,D,R,NB/2], k.buckets i32 [B,H,R,T] (Hugging Face's,
      the round offsets removed), k.out [B,T,H D] (before the output
      dense layer, which is ReformerSelfOutput's), k.grad_out, and
      k.grad.x, k.grad.w_qk, k.grad.w_v. The script also checks that
      lsh_attention_ref equals Hugging Face on each case (1e-10).

Finite differences (tests/test_ops.c (d), step 1e-2) must not move a
bucket: the inputs are redrawn until every hash decision has a margin
larger than the largest change a probe can make.

Inputs drawn in float32 and computed in float64, results rounded once.
Deterministic; needs torch and numpy.
"""

import contextlib
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

MASK, SELF_MASK, EPS = -1e9, -1e5, 1e-6
FD_STEP = 1e-2


def lsh_buckets(qk, rot):
    """qk [B,H,T,D], rot [H,D,R,NB/2] -> buckets [B,H,R,T] (argmax of [y; -y])."""
    y = torch.einsum("bhtd,hdrm->bhrtm", qk, rot)
    return torch.argmax(torch.cat([y, -y], dim=-1), dim=-1)


def lsh_sort(buckets):
    """[B,H,R,T] -> pos [B,H,R T]: each round's positions stably sorted by bucket."""
    B, H, R, T = buckets.shape
    key = buckets * T + torch.arange(T).view(1, 1, 1, T)
    order = torch.argsort(key, dim=-1)  # keys are distinct: the sort is stable
    return order.reshape(B, H, R * T)


def lsh_attention_ref(qk, v, rot, n_hashes, n_buckets, chunk_len, causal):
    """The equations of docs/reformer.md, directly: qk [B,H,T,D], v [B,H,T,Dv]."""
    B, H, T, D = qk.shape
    R, L = n_hashes, chunk_len
    pos = lsh_sort(lsh_buckets(qk.detach(), rot))          # [B,H,N]
    N = R * T
    NC = (N + L - 1) // L
    key = qk * torch.rsqrt((qk ** 2).mean(-1, keepdim=True) + EPS) / np.sqrt(D)
    outs, lses = [], []
    for i in range(N):
        c = i // L
        rows = list(range(c * L, min(c * L + L, N)))
        if NC > 1:
            p = (c - 1) % NC
            rows = list(range(p * L, min(p * L + L, N))) + rows
        rows = torch.tensor(rows)
        pj = pos[:, :, rows]                                 # [B,H,W]
        pi = pos[:, :, i]                                    # [B,H]
        q = torch.gather(qk, 2, pi[..., None, None].expand(B, H, 1, D))          # [B,H,1,D]
        k = torch.gather(key, 2, pj[..., None].expand(B, H, len(rows), D))       # [B,H,W,D]
        vv = torch.gather(v, 2, pj[..., None].expand(B, H, len(rows), v.shape[-1]))
        s = (q * k).sum(-1)                                  # [B,H,W]
        if causal:
            s = torch.where(pj > pi[..., None], torch.full_like(s, MASK), s)
        s = torch.where(pj == pi[..., None], torch.full_like(s, SELF_MASK), s)
        lse = torch.logsumexp(s, dim=-1)                     # [B,H]
        p = torch.exp(s - lse[..., None])
        outs.append((p[..., None] * vv).sum(2))              # [B,H,Dv]
        lses.append(lse)
    O = torch.stack(outs, 2)                                 # [B,H,N,Dv] sorted
    S = torch.stack(lses, 2)                                 # [B,H,N]
    # unsort: sorted index i holds (round i // T, position pos[i])
    rnd = torch.arange(N) // T
    flat = rnd.view(1, 1, N) * T + pos                       # original (r, t) index
    inv = torch.argsort(flat, dim=-1)
    O = torch.gather(O, 2, inv[..., None].expand(B, H, N, O.shape[-1])).reshape(B, H, R, T, -1)
    S = torch.gather(S, 2, inv).reshape(B, H, R, T)
    w = torch.softmax(S, dim=2)
    return (w[..., None] * O).sum(2)


def hash_margin_ok(qk, rot, step):
    """Every argmax over [y; -y] wins by more than twice the largest change a
    probe of `step` on one qk element can make."""
    y = np.einsum("bhtd,hdrm->bhrtm", qk.astype(np.float64), rot.astype(np.float64))
    z = np.sort(np.concatenate([y, -y], axis=-1), axis=-1)
    gap = z[..., -1] - z[..., -2]
    return gap.min() > 4.0 * step * np.abs(rot).max()


def draw_qk(fx, shape, rot, step, scale=1.0):
    for _ in range(10000):
        qk = fx.normal(*shape, scale=scale)
        if hash_margin_ok(qk, rot, step):
            return qk
    raise RuntimeError("no qk with safe hash margins for %s" % (shape,))


# (label, B, H, T, D, Dv, R, NB, L, causal)
OP_CASES = [
    ("one round, causal, T 8 L 4", 1, 2, 8, 4, 4, 1, 4, 4, 1),
    ("one round, not causal, T 8 L 2", 2, 1, 8, 4, 4, 1, 4, 2, 0),
    ("4 rounds, causal, T 6 L 3, Dv 5", 1, 2, 6, 4, 5, 4, 4, 3, 1),
    ("3 rounds, not causal, ragged: T 5 L 4", 1, 1, 5, 3, 2, 3, 2, 4, 0),
    ("2 rounds, causal, ragged: T 7 L 3, 6 buckets", 2, 1, 7, 3, 3, 2, 6, 3, 1),
    ("one chunk only: T 3 L 8", 1, 1, 3, 4, 3, 2, 4, 8, 1),
]


def gen_op(fx):
    for (label, B, H, T, D, Dv, R, NB, L, causal) in OP_CASES:
        rot = fx.normal(H, D, R, NB // 2)
        qk = draw_qk(fx, (B, H, T, D), rot, FD_STEP)
        v = fx.normal(B, H, T, Dv)
        fx.put("c%d.rot" % fx.ncases, rot)
        rot64 = torch.tensor(rot.astype(np.float64))

        def f(t, a, rot64=rot64, R=R, NB=NB, L=L, causal=causal):
            return lsh_attention_ref(t["qk"], t["v"], rot64, R, NB, L, causal)
        fx.case(label, {"qk": qk, "v": v}, f,
                {"n_hashes": np.int32(R), "n_buckets": np.int32(NB), "chunk_len": np.int32(L),
                 "causal": np.int32(causal)})


# ---------------------------------------------------------------------------
# Rotary shared query-keys (the Reformer LM's --pos rope)


def rope_ref(x, theta, rdims=0):
    """x [B,H,T,D] -> RoPE of the leading r = rdims (0: D) dims with
    rotate-half pairs (i, i + r/2) and the angle p * theta^(-2i/r) at
    position p; dims r .. D-1 unchanged (include/attn/positions.h)."""
    T, D = x.shape[2], x.shape[3]
    r = rdims or D
    half = r // 2
    base = 10000.0 if theta == 0 else float(theta)
    inv = base ** (-2.0 * torch.arange(half, dtype=torch.float64) / r)
    phi = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    c, s = torch.cos(phi), torch.sin(phi)
    a, b = x[..., :half], x[..., half:r]
    return torch.cat([a * c - b * s, b * c + a * s, x[..., r:]], dim=-1)


# (key, B, H, T, D, Dv, R, NB, L, causal, theta, rotated dims (0: all))
ROPE_CASES = [
    ("r1_causal_t100", 1, 2, 8, 4, 4, 1, 4, 4, 1, 100.0, 0),
    ("r4_causal_default", 1, 2, 12, 4, 3, 4, 4, 3, 1, 0.0, 0),
    ("r2_causal_ragged_t10", 2, 1, 10, 6, 6, 2, 6, 4, 1, 10.0, 0),
    ("r2_bidir_t50", 1, 1, 8, 4, 4, 2, 4, 2, 0, 50.0, 0),
]
# appended after the others (which keep their random draws): 4 of 6 dims rotate
ROPE_CASES_PARTIAL = [
    ("r2_causal_partial_t20", 1, 2, 10, 6, 4, 2, 4, 4, 1, 20.0, 4),
]


def gen_rope(fx):
    keys = []
    for (key, B, H, T, D, Dv, R, NB, L, causal, theta, rd) in ROPE_CASES + ROPE_CASES_PARTIAL:
        rot = fx.normal(H, D, R, NB // 2)
        rot64 = torch.tensor(rot.astype(np.float64))
        for _ in range(10000):
            qk = fx.normal(B, H, T, D)
            q64 = torch.tensor(qk.astype(np.float64))
            rq = rope_ref(q64, theta, rd)
            # the rotation is orthogonal: a probe of FD_STEP on qk moves the rotated vector by <= FD_STEP
            if hash_margin_ok(rq.numpy(), rot, FD_STEP) and not torch.equal(
                    lsh_buckets(rq, rot64), lsh_buckets(q64, rot64)):
                break
        else:
            raise RuntimeError("no qk with safe hash margins for " + key)
        v = fx.normal(B, H, T, Dv)
        qt = torch.tensor(qk.astype(np.float64), requires_grad=True)
        vt = torch.tensor(v.astype(np.float64), requires_grad=True)
        out = lsh_attention_ref(rope_ref(qt, theta, rd), vt, rot64, R, NB, L, causal)
        plain = lsh_attention_ref(qt.detach(), vt.detach(), rot64, R, NB, L, causal)
        sens = (out.detach() - plain).abs().max().item()
        if sens < 1e-2:
            raise RuntimeError("%s: the rotation changes the output by only %g" % (key, sens))
        g = fx.normal(*out.shape)
        gq, gv = torch.autograd.grad(out, [qt, vt], torch.tensor(g.astype(np.float64)))
        fx.put(key + ".cfg", np.array([B, H, T, D, Dv, R, NB, L, causal], dtype=np.int32))
        fx.put(key + ".theta", np.array([theta], dtype=np.float32))
        if rd:
            fx.put(key + ".rope_dims", np.array([rd], dtype=np.int32))
        fx.put(key + ".qk", qk)
        fx.put(key + ".v", v)
        fx.put(key + ".rot", rot)
        fx.put(key + ".buckets", lsh_buckets(rope_ref(q64, theta, rd), rot64).numpy().astype(np.int32))
        fx.put(key + ".out", out.detach().numpy())
        fx.put(key + ".grad_out", g)
        fx.put(key + ".grad.qk", gq.numpy())
        fx.put(key + ".grad.v", gv.numpy())
        keys.append(key)
        print("  %s: out max %.3g, rotation changes it by %.3g" % (key, out.abs().max().item(), sens))
    fx.text("keys", ",".join(keys))


# ---------------------------------------------------------------------------
# Hugging Face


@contextlib.contextmanager
def fixed_randn(rot):
    """torch.randn returns `rot` (float64) while active: Hugging Face's
    _hash_vectors draws its rotations with torch.randn(shape, ...)."""
    orig = torch.randn

    def fake(*shape, **kw):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        if tuple(shape) != tuple(rot.shape):
            raise RuntimeError("unexpected torch.randn%s (rotations are %s)" % (shape, tuple(rot.shape)))
        return rot.clone()
    torch.randn = fake
    try:
        yield
    finally:
        torch.randn = orig


# (key, B, T, E, H, D, R, NB, L, causal)
HF_CASES = [
    ("r1_causal", 2, 8, 6, 2, 4, 1, 4, 4, 1),
    ("r1_bidir", 1, 12, 5, 2, 3, 1, 4, 3, 0),
    ("r4_causal", 1, 8, 6, 2, 4, 4, 4, 2, 1),
    ("r4_bidir_l4", 2, 16, 8, 1, 4, 4, 8, 4, 0),
    ("r2_causal_l8", 1, 16, 6, 3, 2, 2, 2, 8, 1),
]


def gen_hf(fx):
    from transformers import ReformerConfig
    from transformers.models.reformer.modeling_reformer import LSHSelfAttention
    keys = []
    for (key, B, T, E, H, D, R, NB, L, causal) in HF_CASES:
        cfg = ReformerConfig(hidden_size=E, num_attention_heads=H, attention_head_size=D,
                             num_buckets=NB, num_hashes=R, lsh_attn_chunk_length=L,
                             lsh_num_chunks_before=1, lsh_num_chunks_after=0,
                             is_decoder=bool(causal), lsh_attention_probs_dropout_prob=0.0,
                             attn_layers=["lsh"], hash_seed=None)
        att = LSHSelfAttention(cfg).double().eval()
        rot = fx.normal(H, D, R, NB // 2)
        w_qk = fx.normal(H * D, E, scale=0.5)
        w_v = fx.normal(H * D, E, scale=0.5)
        # inputs whose buckets are robust (the C side hashes in float32)
        for _ in range(10000):
            x = fx.normal(B, T, E)
            qk = np.einsum("bte,fe->btf", x.astype(np.float64), w_qk.astype(np.float64))
            qk = qk.reshape(B, T, H, D).transpose(0, 2, 1, 3)
            if hash_margin_ok(qk, rot, 1e-3):
                break
        else:
            raise RuntimeError("no x with safe hash margins for " + key)
        with torch.no_grad():
            att.query_key.weight.copy_(torch.tensor(w_qk.astype(np.float64)))
            att.value.weight.copy_(torch.tensor(w_v.astype(np.float64)))
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        rot64 = torch.tensor(rot.astype(np.float64))
        with fixed_randn(rot64):
            res = att(xt)
        out = res.hidden_states
        g = fx.normal(*out.shape)
        grads = torch.autograd.grad(out, [xt, att.query_key.weight, att.value.weight],
                                    torch.tensor(g.astype(np.float64)))
        bk = res.buckets.reshape(B, H, R, T) - (torch.arange(R) * NB).view(1, 1, R, 1)
        # our oracle on the same inputs
        qk_t = (xt.detach() @ att.query_key.weight.detach().T).reshape(B, T, H, D).transpose(1, 2)
        v_t = (xt.detach() @ att.value.weight.detach().T).reshape(B, T, H, D).transpose(1, 2)
        mine = lsh_attention_ref(qk_t, v_t, rot64, R, NB, L, causal)
        mine = mine.transpose(1, 2).reshape(B, T, H * D)
        err = (mine - out.detach()).abs().max().item()
        if err > 1e-10:
            raise RuntimeError("%s: lsh_attention_ref differs from Hugging Face by %g" % (key, err))
        if not torch.equal(bk, lsh_buckets(qk_t, rot64)):
            raise RuntimeError("%s: buckets differ from Hugging Face" % key)
        fx.put(key + ".cfg", np.array([B, T, E, H, D, R, NB, L, causal], dtype=np.int32))
        fx.put(key + ".x", x)
        fx.put(key + ".w_qk", w_qk)
        fx.put(key + ".w_v", w_v)
        fx.put(key + ".rot", rot)
        fx.put(key + ".buckets", bk.numpy().astype(np.int32))
        fx.put(key + ".out", out.detach().numpy())
        fx.put(key + ".grad_out", g)
        for name, gr in zip(["x", "w_qk", "w_v"], grads):
            fx.put(key + ".grad." + name, gr.numpy())
        keys.append(key)
        print("  %s: HF out max %.3g, oracle agrees to %.2g" % (key, out.abs().max().item(), err))
    fx.text("keys", ",".join(keys))


def write(fx, path):
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        raise SystemExit("%s is %d bytes, limit %d" % (path, len(data), MAX_FILE))
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (path, len(data)))


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--hf"):
        print("usage: make_reformer_fixtures.py OUTDIR [--hf]", file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    if len(argv) == 3:
        fx = Fixture("reformer_hf")
        gen_hf(fx)
        write(fx, os.path.join(out, "reformer_hf.atfx"))
    else:
        fx = Fixture("lsh_attention")
        gen_op(fx)
        write(fx, os.path.join(out, "lsh_attention.atfx"))
        fx = Fixture("reformer_rope")
        gen_rope(fx)
        write(fx, os.path.join(out, "reformer_rope.atfx"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
