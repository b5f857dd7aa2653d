#!/usr/bin/env python3
"""make_txl_fixtures.py: Hugging Face references for the Transformer-XL model
(include/attn/txl.h), read by the txl suite (tests/test_txl.c).

    /opt/txl-venv/bin/python tools/make_txl_fixtures.py tests/fixtures

Needs transformers < 5 (the last releases with TransfoXLLMHeadModel; 4.30.2
tested with torch 1.13) in a virtual environment made for this script only:
    /usr/bin/python3 -m venv --system-site-packages /opt/txl-venv
    /opt/txl-venv/bin/pip install transformers==4.30.2
`make fixtures` runs it with TXL_PYTHON (default /opt/txl-venv/bin/python)
and skips it, saying so, when that interpreter cannot import transformers.
CI never runs it: the file it writes is committed.

Writes txl_hf.atfx. For each configuration <c> ("a": mem_len 5 > segment 4;
"b": mem_len 3 < segment 5) of a tiny TransfoXLLMHeadModel (div_val 1, no
cutoffs, tied output layer, pre_lnorm False, same_length False, clamp_len 0,
untie_r True, no dropout), in float64, from its own random initialisation:
  <c>.cfg        i32 [9]: vocab, n_layer, n_head, d_head, d_model, d_inner,
                 mem_len, T, B
  <c>.p.<name>   every parameter, Hugging Face's state_dict name
                 (crit.out_layers.0.weight is the tied embedding: left out)
  <c>.ids1, <c>.ids2          i32 [B, T], two consecutive segments
  <c>.logits1, <c>.logits2    [B, T, V] raw logits (out_layers[0] of the
                              last hidden state)
  <c>.loss1, <c>.loss2        [1] the model's loss with labels = ids (it
                              shifts them: mean over B (T - 1) targets)
  <c>.mem1.<l>   [B, mem_len, E] the memory of layer l after segment 1
  <c>.g.<name>   the gradient of loss1 + loss2 (segment 2 reads segment 1's
                 memory, detached as the model does) for every parameter
The memory starts as Hugging Face's init_mems makes it: mem_len rows of
zeros (not empty), which segment 1 attends to.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture, MAX_FILE  # noqa: E402  (the ATFX writer)

CONFIGS = [
    # (key, vocab, n_layer, n_head, d_head, d_model, d_inner, mem_len, T, B, seed)
    ("a", 13, 2, 3, 5, 12, 20, 5, 4, 2, 1),
    ("b", 11, 2, 2, 4, 10, 16, 3, 5, 2, 2),
]


class _TorchFloat32Finfo:
    """The torch module as seen by modeling_transfo_xl, except that finfo
    answers for float32: its attention casts the scores to float32 for the
    masked_fill with finfo(scores.dtype).min, which overflows for a float64
    model. With this the scores of the float64 model are rounded once to
    float32 there (relative 6e-8, far below the fixture tolerances) and
    everything else stays float64."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def finfo(dtype=None):
        return torch.finfo(torch.float32)


def one(fx, key, V, L, H, D, E, F, mem_len, T, B, seed):
    import transformers.models.transfo_xl.modeling_transfo_xl as mtxl
    from transformers import TransfoXLConfig, TransfoXLLMHeadModel
    mtxl.torch = _TorchFloat32Finfo()
    torch.manual_seed(seed)
    cfg = TransfoXLConfig(vocab_size=V, d_model=E, d_embed=E, n_head=H, d_head=D, d_inner=F,
                          n_layer=L, mem_len=mem_len, tgt_len=T, cutoffs=[], div_val=1,
                          same_length=False, clamp_len=0, dropout=0.0, dropatt=0.0,
                          adaptive=True, untie_r=True, pre_lnorm=False)
    model = TransfoXLLMHeadModel(cfg).double()
    model.eval()  # no dropout anyway; eval keeps it explicit
    emb = model.transformer.word_emb.emb_layers[0].weight
    assert model.crit.out_layers[0].weight is emb, "the output layer must be tied"
    with torch.no_grad():  # spread the parameters a little beyond the init's 0.02
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith("bias") or "r_w_bias" in name or "r_r_bias" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / np.sqrt(p.shape[-1]))
    # parameters rounded to float32 values, so that C (float32) reads the same
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.float().double())
    fx.put(key + ".cfg", np.array([V, L, H, D, E, F, mem_len, T, B], dtype=np.int32))
    for name, p in model.named_parameters():
        fx.put(key + ".p." + name, p.detach().numpy().astype(np.float32))
    g = torch.Generator().manual_seed(seed + 100)
    ids1 = torch.randint(0, V, (B, T), generator=g)
    ids2 = torch.randint(0, V, (B, T), generator=g)
    fx.put(key + ".ids1", ids1.numpy().astype(np.int32))
    fx.put(key + ".ids2", ids2.numpy().astype(np.int32))

    out1 = model(input_ids=ids1, labels=ids1)
    out2 = model(input_ids=ids2, labels=ids2, mems=out1.mems)
    with torch.no_grad():
        h1 = model.transformer(input_ids=ids1)
        h2 = model.transformer(input_ids=ids2, mems=h1.mems)
        lg1 = model.crit.out_layers[0](h1.last_hidden_state)
        lg2 = model.crit.out_layers[0](h2.last_hidden_state)
    fx.put(key + ".logits1", lg1.numpy().astype(np.float32))
    fx.put(key + ".logits2", lg2.numpy().astype(np.float32))
    fx.put(key + ".loss1", np.array([out1.loss.item()], dtype=np.float32))
    fx.put(key + ".loss2", np.array([out2.loss.item()], dtype=np.float32))
    for l in range(L):  # mems[l]: [mem_len, B, E], the input of layer l
        fx.put(key + ".mem1.%d" % l, out1.mems[l].transpose(0, 1).numpy().astype(np.float32))
    (out1.loss + out2.loss).backward()
    for name, p in model.named_parameters():
        gr = p.grad if p.grad is not None else torch.zeros_like(p)
        fx.put(key + ".g." + name, gr.numpy().astype(np.float32))
    print("%s: loss1 %.6f loss2 %.6f" % (key, out1.loss.item(), out2.loss.item()))


def main(argv):
    if len(argv) != 2:
        print("usage: make_txl_fixtures.py OUTDIR", file=sys.stderr)
        return 2
    fx = Fixture("txl_hf")
    for c in CONFIGS:
        one(fx, *c)
    fx.ncases = len(CONFIGS)
    data = fx.to_bytes()
    if len(data) > MAX_FILE:
        raise SystemExit("txl_hf.atfx: %d bytes, over the %d limit" % (len(data), MAX_FILE))
    os.makedirs(argv[1], exist_ok=True)
    path = os.path.join(argv[1], "txl_hf.atfx")
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (path, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
