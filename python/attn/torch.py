"""attn.torch: attn's fused attention as a torch.autograd.Function (CPU).

    from attn.torch import scaled_dot_product_attention as attn_sdpa
    y = attn_sdpa(q, k, v, is_causal=True)     # in place of F.scaled_dot_product_attention

q, k, v: float32 CPU tensors [B, H, T, D] / [B, Hkv, S, D] / [B, Hkv, S, Dv]
(or 3-d, one head). The forward runs attn's fused kernel on the tensors'
memory (contiguous tensors are not copied); the backward runs the fused
backward, which recomputes the weights tile by tile, so only q, k, v are
saved: O(T) memory instead of the [B, H, T, S] weights. Gradients flow to q,
k and v (and to a float attn_mask that requires one).

Differences from torch: is_causal aligns the diagonal bottom-right (the same
as torch when T == S); a query with no visible key gives zeros (torch gives
NaN); dropout uses attn's own random stream (a seed per call), so results
with dropout_p > 0 match torch only in distribution.
"""
import itertools

import torch

from . import flash_sdpa_backward, flash_sdpa, sdpa, sdpa_backward

_seeds = itertools.count(1)


def _np(t):
    """A float32 CPU tensor as a numpy array on the same memory (contiguous
    tensors are not copied)."""
    if t.device.type != "cpu":
        raise ValueError(f"attn.torch: tensors must be on the CPU, got {t.device}")
    if t.dtype != torch.float32:
        raise TypeError(f"attn.torch: tensors must be float32, got {t.dtype}")
    return t.detach().contiguous().numpy()


class AttnSDPA(torch.autograd.Function):
    """Function form: AttnSDPA.apply(q, k, v, attn_mask, is_causal, scale, dropout_p,
    seed, fused, threads). Prefer scaled_dot_product_attention below."""

    @staticmethod
    def forward(ctx, q, k, v, attn_mask, is_causal, scale, dropout_p, seed, fused, threads):
        mask_np = None if attn_mask is None else (
            attn_mask.detach().cpu().numpy() if attn_mask.dtype == torch.bool else _np(attn_mask))
        fn = flash_sdpa if fused else sdpa
        out = fn(_np(q), _np(k), _np(v), mask_np, causal=is_causal, scale=scale,
                 dropout=dropout_p, seed=seed, threads=threads)
        ctx.save_for_backward(q, k, v)
        ctx.mask = attn_mask
        ctx.opts = dict(causal=is_causal, scale=scale, dropout=dropout_p, seed=seed, threads=threads)
        ctx.fused = fused
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        m = ctx.mask
        mask_grad = m is not None and m.dtype != torch.bool and ctx.needs_input_grad[3]
        mask_np = None if m is None else (
            m.detach().cpu().numpy() if m.dtype == torch.bool else _np(m))
        fn = flash_sdpa_backward if ctx.fused else sdpa_backward
        if mask_grad:
            # a float mask with a gradient goes in as the bias, whose gradient is
            # summed over its broadcast dimensions
            dq, dk, dv, db = fn(_np(q), _np(k), _np(v), _np(grad_out), bias=mask_np,
                                bias_grad=True, **ctx.opts)
            dmask = torch.from_numpy(db)
        else:
            dq, dk, dv = fn(_np(q), _np(k), _np(v), _np(grad_out), mask_np, **ctx.opts)
            dmask = None
        return (torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), dmask,
                None, None, None, None, None, None)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, *, fused=True, seed=None,
                                 threads=None):
    """torch.nn.functional.scaled_dot_product_attention's arguments, computed by
    attn (fused kernel by default; fused=False: attn's reference op). attn_mask:
    boolean (True: attend) or additive float, broadcast to [B, H, T, S]. seed:
    the dropout stream (None: a new one per call). threads: None is torch's
    own count (torch.get_num_threads())."""
    if seed is None:
        seed = next(_seeds) if dropout_p > 0 else 0
    if threads is None:
        threads = torch.get_num_threads()
    return AttnSDPA.apply(query, key, value, attn_mask, bool(is_causal), scale, float(dropout_p),
                          int(seed), bool(fused), int(threads))


class MultiheadSelfAttention(torch.nn.Module):
    """A multi-head self-attention layer whose attention is attn's fused kernel:
    x [B, T, E] -> [B, T, E] (qkv projection, heads, attention, output
    projection)."""

    def __init__(self, d_model, n_heads, causal=False, bias=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiheadSelfAttention: d_model {d_model} is not a multiple of "
                             f"n_heads {n_heads}")
        self.n_heads, self.causal = n_heads, causal
        self.qkv = torch.nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = torch.nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, attn_mask=None, attention=None):
        B, T, E = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).view(B, T, 3, H, E // H).permute(2, 0, 3, 1, 4)
        fn = attention or scaled_dot_product_attention
        y = fn(q, k, v, attn_mask=attn_mask, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(B, T, E))


__all__ = ["AttnSDPA", "scaled_dot_product_attention", "MultiheadSelfAttention"]
