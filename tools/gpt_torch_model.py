"""gpt_torch_model.py: the decoder-only GPT of include/attn/gpt.h in PyTorch,
shared by tools/make_gpt_fixtures.py (the parity fixture) and
bench/gpt_torch.py (the training comparison).

The modules are created in the order attn_gpt_new adds its parameters, so
named_parameters() gives attn's names in attn's order:

    tok_emb.weight                 [V, E]
    pos_emb.weight                 [ctx, E]         (learned positions only)
    layers.<i>.<...>               torch.nn.TransformerEncoderLayer names
                                   (pre-LN: norm_first=True; GELU, erf form;
                                   batch_first)
    norm_f.weight, norm_f.bias     [E]
    head.weight                    [V, E]           (untied head only; a tied
                                                     head is tok_emb.weight)

Initialisation (GPT-2): every weight matrix and embedding N(0, 0.02), the two
residual projections of each block (self_attn.out_proj.weight and
linear2.weight) N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm weight 1, bias 0.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class GPT(nn.Module):
    def __init__(self, vocab, ctx, layers, heads, d_model, d_ff, tied=True, dropout=0.0,
                 learned_pos=True):
        super().__init__()
        self.tied, self.ctx = tied, ctx
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(ctx, d_model) if learned_pos else None
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers)])
        self.norm_f = nn.LayerNorm(d_model)
        self.head = None if tied else nn.Linear(d_model, vocab, bias=False)
        self.n_layers = layers

    def init_gpt2(self, gen):
        """GPT-2 initialisation from a torch.Generator (for the benchmark; the
        fixture draws its weights with numpy)."""
        std_res = 0.02 / math.sqrt(2 * self.n_layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("out_proj.weight") or name.endswith("linear2.weight"):
                    p.normal_(0.0, std_res, generator=gen)
                elif "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                elif name.endswith("bias"):
                    p.zero_()
                else:
                    p.normal_(0.0, 0.02, generator=gen)

    def forward(self, ids, targets=None):
        B, T = ids.shape
        x = self.tok_emb(ids)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(T, device=ids.device))[None]
        x = self.drop(x)
        mask = torch.triu(torch.full((T, T), float("-inf"), dtype=x.dtype, device=x.device), 1)
        for layer in self.layers:
            x = layer(x, src_mask=mask)
        x = self.norm_f(x)
        w = self.tok_emb.weight if self.tied else self.head.weight
        logits = x @ w.t()
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


# ---- the seeded window sampler of include/attn/lm_data.h ------------------------------

MASK64 = (1 << 64) - 1


def window_starts(seed, step, B, n, T):
    """attn_lm_window_start for rows 0 .. B-1 of batch `step`."""
    out = np.empty(B, dtype=np.int64)
    for r in range(B):
        i = (step * B + r + 1) & MASK64
        z = (seed + i * 0x9E3779B97F4A7C15) & MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        out[r] = z % (n - T)
    return out


def save_safetensors(path, named, metadata=None):
    """Writes float32 tensors (name -> numpy array, in the given order) as a
    safetensors file."""
    import json
    import struct
    header, blobs, off = {}, [], 0
    for name, arr in named:
        a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
