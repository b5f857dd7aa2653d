#!/usr/bin/env python3
"""long_context_torch.py: PyTorch references of include/attn/long_context.h
and of the Transformer-XL model (include/attn/txl.h), written from the
papers' equations, for the fixture writers (never imported at run time).

  txl_attention_ref(...)     Transformer-XL relative attention (Dai et al.
      2019, section 3.3), computed the way the paper's code does it: the
      position term for every (query, relative position) pair, then the
      "relative shift" (pad one column, reshape, drop the first row) that
      aligns it to (query, key). The shift leaves garbage above the causal
      diagonal; the mask hides it. The C op indexes distances directly, so
      this is an independent route to the same numbers.
  span_mask(...)             adaptive span (Sukhbaatar et al. 2019a) soft
      mask m_z(x) = clamp((R + z - x)/R, 0, 1), applied after the softmax and
      renormalised by (sum + eps) as the published code
      (facebookresearch/adaptive-span, AdaptiveSpan.forward: 1e-8).
  persistent vectors         all-attention (Sukhbaatar et al. 2019b): keys and
      values of each head concatenated to the context's inside one softmax;
      the span mask covers only the context part and the renormalisation is
      joint (as the published PersistentMemory.forward).
  TXLModelRef                a Transformer-XL language model (post-norm
      blocks, as Hugging Face's TransfoXLLMHeadModel with pre_lnorm False,
      div_val 1, no cutoffs, tied embedding, no dropout), with the segment
      recurrence, the span and the persistent vectors: the reference of the
      C model's variants, which Hugging Face does not have.

Everything in float64.
"""

import math

import torch


def sinusoid_table(n, d, clamp_len=0):
    """[n, d]: row x = [sin(x w_0..), cos(x w_0..)], w_i = 10000^(-2i/d)
    (Transformer-XL's layout: the sines in the first half, the cosines in the
    second; d even). clamp_len > 0: the distances above it are clamped to it
    (Transformer-XL's clamp_len, which clamps its pos_seq the same way)."""
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    pos = torch.arange(n, dtype=torch.float64)
    if clamp_len > 0:
        pos = pos.clamp(max=clamp_len)
    ang = pos[:, None] * inv[None, :]
    return torch.cat([ang.sin(), ang.cos()], -1)


def rel_shift(x):
    """x [..., T, S] with column c holding relative distance S - 1 - c of
    query row t; returns y with y[t, s] = x[t, s + T - 1 - t] where that
    exists (distance M + t - s for M = S - T), garbage above the diagonal
    s > M + t. The paper's code: pad a zero column on the left, view as
    [S + 1, T], drop the first row, view back."""
    *lead, T, S = x.shape
    pad = torch.zeros(*lead, T, 1, dtype=x.dtype)
    xp = torch.cat([pad, x], -1).view(*lead, S + 1, T)
    return xp[..., 1:, :].reshape(*lead, T, S)


def span_mask(z, R, S, M, T):
    """[H, T, S] soft mask: m = clamp((R + z_h - x)/R, 0, 1), x = M + t - s."""
    t = torch.arange(T, dtype=torch.float64)[:, None]
    s = torch.arange(S, dtype=torch.float64)[None, :]
    x = M + t - s
    return ((R + z[:, None, None] - x[None]) / R).clamp(0, 1)


def txl_attention_ref(q, k, v, rk, u, vb, scale=None, span=None, ramp=1.0, eps=0.0,
                      pers_k=None, pers_v=None):
    """q [B,H,T,D], k,v [B,H,S,*], rk [H,L,D] (row x = distance x), u, vb [H,D].
    Returns out [B,H,T,Dv] and the weights A [B,H,T,S+N]."""
    B, H, T, D = q.shape
    S = k.shape[2]
    M = S - T
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    ac = torch.einsum("bhtd,bhsd->bhts", q + u[None, :, None, :], k)
    # position term for the S distances S-1 .. 0 (descending, as the paper's r)
    r_desc = rk[:, :S, :].flip(1)                       # [H, S, D], column c: distance S-1-c
    bd = torch.einsum("bhtd,hcd->bhtc", q + vb[None, :, None, :], r_desc)
    bd = rel_shift(bd)
    logits = (ac + bd) * scale
    t = torch.arange(T)[:, None]
    s = torch.arange(S)[None, :]
    masked = s > M + t
    logits = logits.masked_fill(masked, float("-inf"))
    N = 0
    if pers_k is not None:
        N = pers_k.shape[1]
        lp = torch.einsum("bhtd,hnd->bhtn", q + u[None, :, None, :], pers_k) * scale
        logits = torch.cat([logits, lp], -1)
    P = torch.softmax(logits, -1)
    if span is not None:
        m = span_mask(span, ramp, S, M, T)               # [H, T, S]
        if N:
            m = torch.cat([m, torch.ones(H, T, N, dtype=m.dtype)], -1)
        A = P * m[None]
        A = A / (A.sum(-1, keepdim=True) + eps)
    else:
        A = P
    vals = v if pers_v is None else torch.cat([v, pers_v[None].expand(B, H, N, v.shape[3])], 2)
    return torch.einsum("bhts,bhsd->bhtd", A, vals), A


class TXLModelRef:
    """Transformer-XL language model (post-norm blocks, tied embedding, no
    dropout) with the adaptive span (the parameter is p in [0, 1], the span
    z = span_max p) and persistent vectors of txl_attention_ref, written from
    the equations of docs/long_context.md.
    Parameters: a dict name -> float64 tensor with attn's (Hugging Face's)
    names (include/attn/txl.h). The memory starts empty (the original
    Transformer-XL code) and is never trimmed here: the C model trims it to
    the span window, which changes the result by O(eps) only."""

    def __init__(self, p, V, L, H, D, E, no_ffn=False, span_max=1.0, span_ramp=1.0, span_eps=0.0,
                 eps=1e-5, pers_scaled=False, clamp_len=0):
        self.p, self.V, self.L, self.H, self.D, self.E = p, V, L, H, D, E
        self.no_ffn, self.span_max, self.ramp = no_ffn, span_max, span_ramp
        self.span_eps, self.eps = span_eps, eps
        # pers_scaled: the published code (facebookresearch/adaptive-span)
        # stores key / sqrt(D) and value / sqrt(N) and multiplies them back
        self.pers_scaled, self.clamp_len = pers_scaled, clamp_len

    def forward(self, ids, mems, mem_len):
        """ids [B, T] int64; mems: list of L tensors [B, M, E] (M may be 0).
        Returns logits [B, T, V] and the new memories (detached)."""
        p, H, D, E = self.p, self.H, self.D, self.E
        B, T = ids.shape
        emb = p["transformer.word_emb.emb_layers.0.weight"]
        h = emb[ids] * math.sqrt(E)
        new_mems = []
        for l in range(self.L):
            pre = "transformer.layers.%d." % l
            mem = mems[l]
            M = mem.shape[1]
            c = torch.cat([mem, h], 1)
            new_mems.append(c[:, -mem_len:].detach() if mem_len > 0 else c[:, :0].detach())
            S = M + T
            wh = c @ p[pre + "dec_attn.qkv_net.weight"].t()
            HD = H * D
            q = wh[:, M:, :HD].reshape(B, T, H, D).permute(0, 2, 1, 3)
            k = wh[:, :, HD:2 * HD].reshape(B, S, H, D).permute(0, 2, 1, 3)
            v = wh[:, :, 2 * HD:].reshape(B, S, H, D).permute(0, 2, 1, 3)
            R = sinusoid_table(S, E, self.clamp_len)
            rk = (R @ p[pre + "dec_attn.r_net.weight"].t()).reshape(S, H, D).permute(1, 0, 2)
            span = p.get(pre + "dec_attn.span")  # p in [0, 1]: z = span_max p
            pk, pv = p.get(pre + "dec_attn.pers_k"), p.get(pre + "dec_attn.pers_v")
            if pk is not None and self.pers_scaled:
                pk, pv = pk * math.sqrt(D), pv * math.sqrt(pk.shape[1])
            a, _ = txl_attention_ref(q, k, v, rk, p[pre + "dec_attn.r_w_bias"],
                                     p[pre + "dec_attn.r_r_bias"],
                                     span=None if span is None else self.span_max * span,
                                     ramp=self.ramp,
                                     eps=self.span_eps, pers_k=pk, pers_v=pv)
            a = a.permute(0, 2, 1, 3).reshape(B, T, HD) @ p[pre + "dec_attn.o_net.weight"].t()
            h = torch.nn.functional.layer_norm(h + a, (E,), p[pre + "dec_attn.layer_norm.weight"],
                                               p[pre + "dec_attn.layer_norm.bias"], self.eps)
            if not self.no_ffn:
                f = torch.relu(h @ p[pre + "pos_ff.CoreNet.0.weight"].t() + p[pre + "pos_ff.CoreNet.0.bias"])
                f = f @ p[pre + "pos_ff.CoreNet.3.weight"].t() + p[pre + "pos_ff.CoreNet.3.bias"]
                h = torch.nn.functional.layer_norm(h + f, (E,), p[pre + "pos_ff.layer_norm.weight"],
                                                   p[pre + "pos_ff.layer_norm.bias"], self.eps)
        logits = h @ emb.t() + p["crit.out_layers.0.bias"]
        return logits, new_mems
