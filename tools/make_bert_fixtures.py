#!/usr/bin/env python3
"""make_bert_fixtures.py: the PyTorch reference of the BERT-style encoder of
include/attn/bert.h (tests/test_bert.c): weights, a padded batch, the
encoder's output, the MLM loss, the classification loss, and every
parameter's gradient of each loss; plus BERT's masking rule of
attn_bert_mask recomputed from its written definition (Philox, rng.h).

    /usr/bin/python3 tools/make_bert_fixtures.py tests/fixtures

Writes, per case k (k = 0, 1):

  tests/fixtures/bert_c<k>.safetensors  the weights under attn's names
  tests/fixtures/bert_c<k>.atfx         (tests/fixture.h), names "c0.":
      label        text
      cfg          i32 [10]: vocab, max_len, layers, heads, d_model, d_ff,
                   norm_first, n_classes, B, T
      eps          f32 [1]  LayerNorm eps
      ids          i32 [B, T]   [CLS] first, padding after lengths[b]
      lengths      i32 [B]
      mlm_labels   i32 [B, T]   -1, or the target id (at real tokens only)
      cls_labels   i32 [B]
      hidden       f32 [B, T, E]  the encoder's output (padded rows too)
      mlm_loss     f32 scalar   mean over the labelled positions
      mlm_logits   f32 [N, V]   logits of the labelled positions, row-major order
      cls_logits   f32 [B, C]
      cls_loss     f32 scalar
      grad_mlm.<name>, grad_cls.<name>   every parameter's gradient of each loss
  tests/fixtures/bert_mask.atfx: the masking rule, names "m0.":
      cfg   i32 [8]: B, T, mask_id, first_id, random_lo, random_hi, seed (low
            31 bits), stream
      prob  f32 [1]
      ids, lengths, inputs, labels   the batch and its masking

Case 0: post-LN (BERT), eps 1e-12, V 40, max_len 12, 2 layers, 4 heads,
d_model 32, d_ff 64, 3 classes, B 4, T 10 < max_len, lengths 10, 7, 3, 1.
Case 1: pre-LN with the final norm, eps 1e-5, V 37, max_len 12, 2 layers,
2 heads, d_model 24, d_ff 48, 5 classes, B 3, T 12, lengths 12, 5, 9.
Weights are drawn with std 0.2 (LayerNorm weights 1 + N(0, 0.1), biases
drawn too) so that logits and gradients are far from zero and from uniform.
Padding positions hold random ids: masked keys must not matter.

Oracle precision as make_fixtures.py: weights and data drawn in float32,
the model run in float64 on those values, results rounded once to float32.
Deterministic; needs torch (1.13 tested) and numpy, never at run time.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE, philox4x32, MASK32, check_philox  # noqa: E402
from gpt_torch_model import save_safetensors  # noqa: E402

SPECIALS = 4  # <pad> <bos>=[CLS] <eos> <unk>
CLS = 1


class MLMHead(nn.Module):
    def __init__(self, E, V, eps):
        super().__init__()
        self.transform = nn.Linear(E, E)
        self.norm = nn.LayerNorm(E, eps=eps)
        self.bias = nn.Parameter(torch.zeros(V))


class Bert(nn.Module):
    """The model of bert.h; parameter names are attn's."""

    def __init__(self, V, P, L, H, E, Fd, norm_first, eps, C):
        super().__init__()
        self.norm_first = norm_first
        self.tok_emb = nn.Embedding(V, E)
        self.pos_emb = nn.Embedding(P, E)
        self.emb_norm = nn.LayerNorm(E, eps=eps)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(E, H, Fd, dropout=0.0, activation="gelu",
                                       layer_norm_eps=eps, batch_first=True,
                                       norm_first=bool(norm_first))
            for _ in range(L)])
        self.norm_f = nn.LayerNorm(E, eps=eps) if norm_first else None
        self.mlm = MLMHead(E, V, eps)
        self.pooler = nn.Linear(E, E)
        self.classifier = nn.Linear(E, C)

    def encode(self, ids, lengths):
        B, T = ids.shape
        x = self.tok_emb(ids) + self.pos_emb.weight[:T][None]
        x = self.emb_norm(x)
        pad = torch.arange(T)[None, :] >= lengths[:, None]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        if self.norm_f is not None:
            x = self.norm_f(x)
        return x

    def mlm_loss(self, h, labels):
        E = h.shape[-1]
        flat = labels.reshape(-1)
        sel = (flat >= 0).nonzero().reshape(-1)
        z = h.reshape(-1, E)[sel]
        z = self.mlm.norm(F.gelu(self.mlm.transform(z)))
        logits = z @ self.tok_emb.weight.t() + self.mlm.bias
        return logits, F.cross_entropy(logits, flat[sel])

    def cls_loss(self, h, labels):
        p = torch.tanh(self.pooler(h[:, 0]))
        logits = self.classifier(p)
        return logits, F.cross_entropy(logits, labels)


CASES = [
    # label, V, P, L, H, E, F, norm_first, eps, C, B, T, lengths
    ("post-LN, 4 heads, T < max_len", 40, 12, 2, 4, 32, 64, 0, 1e-12, 3, 4, 10, [10, 7, 3, 1]),
    ("pre-LN + final norm, 2 heads", 37, 12, 2, 2, 24, 48, 1, 1e-5, 5, 3, 12, [12, 5, 9]),
]


def gen_case(fx, out_dir, k, label, V, P, L, H, E, Fd, nf, eps, C, B, T, lengths):
    p = "c0."
    torch.manual_seed(2000 + k)
    model = Bert(V, P, L, H, E, Fd, nf, eps, C)
    named = []
    for name, prm in model.named_parameters():
        if "norm" in name and name.endswith("weight"):
            v = 1.0 + fx.normal(*prm.shape, scale=0.1)
        else:
            v = fx.normal(*prm.shape, scale=0.2)
        named.append((name, v))
        with torch.no_grad():
            prm.copy_(torch.from_numpy(v))
    save_safetensors(os.path.join(out_dir, "bert_c%d.safetensors" % k), named,
                     {"format": "attn-bert-fixture", "case": str(k)})
    model = model.double()
    model.train()  # dropout is 0; train mode keeps torch off its inference fast path

    ids = fx.ints(0, V, B, T)  # padding positions keep random ids
    ids[:, 0] = CLS
    lens = np.array(lengths, np.int32)
    mlm = np.full((B, T), -1, np.int32)
    for b in range(B):
        for t in range(1, lens[b]):
            ids[b, t] = fx.ints(SPECIALS, V, 1)[0]
            if fx.rng.random() < 0.4:
                mlm[b, t] = fx.ints(SPECIALS, V, 1)[0]
    assert (mlm >= 0).sum() > 0
    cls = fx.ints(0, C, B)

    fx.text(p + "label", label)
    fx.put(p + "cfg", np.array([V, P, L, H, E, Fd, nf, C, B, T], np.int32))
    fx.put(p + "eps", np.array([eps], np.float32))
    fx.put(p + "ids", ids)
    fx.put(p + "lengths", lens)
    fx.put(p + "mlm_labels", mlm)
    fx.put(p + "cls_labels", cls)

    x = torch.from_numpy(ids.astype(np.int64))
    ln = torch.from_numpy(lens.astype(np.int64))
    h = model.encode(x, ln)
    fx.put(p + "hidden", h.detach().numpy())
    logits, loss = model.mlm_loss(h, torch.from_numpy(mlm.astype(np.int64)))
    model.zero_grad()
    loss.backward()
    fx.put(p + "mlm_logits", logits.detach().numpy())
    fx.put(p + "mlm_loss", np.array(loss.item(), np.float32))
    for name, prm in model.named_parameters():
        g = prm.grad if prm.grad is not None else torch.zeros_like(prm)
        fx.put(p + "grad_mlm." + name, g.numpy())
    mlm_loss = loss.item()

    h = model.encode(x, ln)
    logits, loss = model.cls_loss(h, torch.from_numpy(cls.astype(np.int64)))
    model.zero_grad()
    loss.backward()
    fx.put(p + "cls_logits", logits.detach().numpy())
    fx.put(p + "cls_loss", np.array(loss.item(), np.float32))
    for name, prm in model.named_parameters():
        g = prm.grad if prm.grad is not None else torch.zeros_like(prm)
        fx.put(p + "grad_cls." + name, g.numpy())
    fx.ncases += 1
    print("  case %d %-32s mlm loss %.6f, cls loss %.6f" % (k, label, mlm_loss, loss.item()))


def rng_u32(seed, offset, index):
    """attn_rng_u32(seed, offset, index): counter offset + index / 4, word index % 4."""
    c = offset + index // 4
    words = philox4x32((c & MASK32, (c >> 32) & MASK32, 0, 0), (seed & MASK32, (seed >> 32) & MASK32))
    return words[index % 4]


def gen_mask(fx):
    """attn_bert_mask's rule, from its comment in bert.h."""
    p = "m0."
    B, T, V = 6, 32, 50
    mask_id, first_id, lo, hi = V - 1, SPECIALS, SPECIALS, V - 1
    seed, stream, prob = 12345, 7, 0.7
    ids = fx.ints(SPECIALS, V - 1, B, T)
    ids[:, 0] = CLS
    ids[2, 5] = mask_id  # an existing [MASK] is never selected
    lens = np.array([32, 13, 32, 1, 7, 25], np.int32)
    for b in range(B):
        ids[b, lens[b]:] = 0
    inputs, labels = ids.copy(), np.full((B, T), -1, np.int32)
    sel_t = int(prob * 2.0 ** 32)
    t_mask, t_rand = int(0.8 * 2.0 ** 32), int(0.9 * 2.0 ** 32)
    off = stream << 32
    for b in range(B):
        for t in range(T):
            q = b * T + t
            i = int(ids[b, t])
            if t >= lens[b] or i < first_id or i == mask_id:
                continue
            if rng_u32(seed, off, 3 * q) >= sel_t:
                continue
            labels[b, t] = i
            u1 = rng_u32(seed, off, 3 * q + 1)
            if u1 < t_mask:
                inputs[b, t] = mask_id
            elif u1 < t_rand:
                inputs[b, t] = lo + ((rng_u32(seed, off, 3 * q + 2) * (hi - lo)) >> 32)
    fx.put(p + "cfg", np.array([B, T, mask_id, first_id, lo, hi, seed, stream], np.int32))
    fx.put(p + "prob", np.array([prob], np.float32))
    fx.put(p + "ids", ids)
    fx.put(p + "lengths", lens)
    fx.put(p + "inputs", inputs)
    fx.put(p + "labels", labels)
    fx.ncases += 1
    n = int((labels >= 0).sum())
    print("  mask: %d selected, %d [MASK], %d random, %d kept" % (
        n, int((inputs == mask_id).sum()) - 1, int(((labels >= 0) & (inputs != mask_id) & (inputs != labels)).sum()),
        int(((labels >= 0) & (inputs == labels)).sum())))


def write(fx, out_dir, name):
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        raise SystemExit("%s: %d bytes exceeds %d" % (name, len(data), MAX_FILE))
    with open(os.path.join(out_dir, name + ".atfx"), "wb") as f:
        f.write(data)
    print("%-17s %2d cases %7d bytes" % (name, fx.ncases, len(data)))


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else "tests/fixtures"
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    check_philox()
    for k, c in enumerate(CASES):
        name = "bert_c%d" % k
        fx = Fixture(name)
        gen_case(fx, out_dir, k, *c)
        write(fx, out_dir, name)
    fx = Fixture("bert_mask")
    gen_mask(fx)
    write(fx, out_dir, "bert_mask")


if __name__ == "__main__":
    main(sys.argv)
