#!/usr/bin/python3
"""seq2seq_torch.py: training speed of the PyTorch twin of attn's seq2seq model.

The model is the one include/attn/seq2seq.h describes, written the way a
PyTorch user would write it (no fused tricks beyond the usual ones):
  encoder  nn.Embedding(Vs, E) -> nn.GRU / nn.LSTM (bidirectional, batch
           first) over pack_padded_sequence(enforce_sorted=False);
  bridge   s_0 = tanh(Linear([h_fwd(last valid); h_bwd(first)])) for every
           decoder layer (LSTM cell states start at zero);
  decoder  nn.Embedding(Vt, E), a stack of nn.GRUCell / nn.LSTMCell, one step
           at a time with teacher forcing:
    bahdanau  e = v^T tanh(W_q s_{i-1} + W_h h) (W_h h once per batch),
              c_i = sum a h, s_i = cell([emb(y_{i-1}); c_i], s_{i-1}),
              output layer reads [s_i; c_i];
    luong     h_t = cell([emb(y_{t-1}); h~_{t-1}], h_{t-1}) (h~_0 = 0),
    (dot,     score from h_t: dot h_t.h_s, general h_t^T W_a h_s (W_a h once
    general,  per batch), concat v^T tanh(W_q h_t + W_h h_s),
    concat)   h~_t = tanh(W_c [c_t; h_t]) (no bias), output layer reads h~_t;
    none      c = [h_fwd(last valid); h_bwd(first)] fixed, the cell reads
              [emb; c], the output layer [s_t; c];
  loss     ONE Linear over all steps' outputs, cross-entropy with
           ignore_index=pad (mean over the non-pad target tokens);
  update   AdamW (lr 1e-3, weight decay 0.01), clip_grad_norm_(1.0).
Source padding is masked with -inf before the softmax.

Data: synthetic batches with the date task's shapes (B sources of lengths
spread over [src-min, src-max], padded to the longest; targets of tgt-len
tokens plus eos). Lengths and ids come from a fixed formula that
bench/bench_seq2seq.c repeats, so both programs see the same shapes. A pool
of batches is built before timing; data preparation is not timed.

Threads: torch.set_num_threads(--threads). After --warmup untimed steps,
--steps timed steps, each timed alone; prints one JSON line:
  {"impl": "pytorch", "torch": ..., "threads": N, "attention": ..., "cell": ...,
   "tokens_per_s": the median over the timed steps of target tokens (eos
   included, pads excluded) per second of the step, "ms_per_step": the mean
   step time, "tokens_per_s_mean": all tokens / all time, ...sizes...}
The median resists a shared machine: a step slowed by another process moves
the mean, not the median.

Runs with Debian's torch 1.13 (/usr/bin/python3) and with torch 2.x from pip.
Usage: /usr/bin/python3 bench/seq2seq_torch.py --attention general --cell lstm --threads 2
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("seq2seq_torch.py: PyTorch is not installed "
                     "(apt-get install python3-torch, or pip install torch)\n")
    sys.exit(3)

PAD, BOS, EOS = 0, 1, 2  # attn's token ids (text.h); 3 is <unk>, real ids start at 4
ATTENTIONS = ("none", "bahdanau", "dot", "general", "concat")


# ---- data: the formula bench_seq2seq.c repeats ----------------------------------

def lcg_ids(seed, n, vocab):
    """n ids in [4, vocab) from a 32-bit LCG (Numerical Recipes constants)."""
    out = []
    x = seed & 0xFFFFFFFF
    for _ in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out.append(4 + (x >> 8) % (vocab - 4))
    return out


def make_batch(k, a):
    """Batch number k: src_len[b] = src_min + (7 b + 13 k) mod (src_max - src_min + 1),
    row 0 forced to src_max, so S = src_max in every batch."""
    span = a.src_max - a.src_min + 1
    lens = [a.src_min + (7 * b + 13 * k) % span for b in range(a.batch)]
    lens[0] = a.src_max
    S, T = a.src_max, a.tgt_len + 1
    ids = lcg_ids(1000 + k, a.batch * (S + a.tgt_len), a.src_vocab)
    tids = lcg_ids(5000 + k, a.batch * a.tgt_len, a.tgt_vocab)
    src = torch.full((a.batch, S), PAD, dtype=torch.long)
    tgt_in = torch.full((a.batch, T), PAD, dtype=torch.long)
    tgt_out = torch.full((a.batch, T), PAD, dtype=torch.long)
    for b in range(a.batch):
        for s in range(lens[b]):
            src[b, s] = ids[b * S + s]
        tgt_in[b, 0] = BOS
        for t in range(a.tgt_len):
            tgt_in[b, t + 1] = tids[b * a.tgt_len + t]
            tgt_out[b, t] = tids[b * a.tgt_len + t]
        tgt_out[b, a.tgt_len] = EOS
    return src, torch.tensor(lens, dtype=torch.long), tgt_in, tgt_out


# ---- the model ----------------------------------------------------------------------

class Seq2Seq(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.kind, self.cell_kind = a.attention, a.cell
        H, E = a.hidden, a.emb
        D = 2 if a.bidirectional else 1
        He = D * H
        A = a.attn_dim or H
        rnn = nn.GRU if a.cell == "gru" else nn.LSTM
        cell = nn.GRUCell if a.cell == "gru" else nn.LSTMCell
        self.D, self.H, self.dec_layers = D, H, a.dec_layers
        self.src_emb = nn.Embedding(a.src_vocab, E)
        self.encoder = rnn(E, H, num_layers=a.enc_layers, bidirectional=D == 2,
                           batch_first=True, dropout=a.dropout if a.enc_layers > 1 else 0.0)
        self.bridge = nn.Linear(He, H)
        self.tgt_emb = nn.Embedding(a.tgt_vocab, E)
        luong = self.kind in ("dot", "general", "concat")
        feed = H if luong else He  # what the cell reads besides the embedding
        self.cells = nn.ModuleList(
            [cell(E + feed if l == 0 else H, H) for l in range(a.dec_layers)])
        if self.kind in ("bahdanau", "concat"):
            self.W_q = nn.Linear(H, A, bias=False)
            self.W_h = nn.Linear(He, A, bias=False)
            self.v = nn.Linear(A, 1, bias=False)
        elif self.kind == "general":
            self.W_a = nn.Linear(He, H, bias=False)  # attn's W_a [Dq, Dh]
        elif self.kind == "dot" and He != H:
            raise SystemExit("seq2seq_torch.py: dot needs the encoder's state size %d "
                             "to equal the decoder's %d (use --no-bidirectional)" % (He, H))
        if luong:
            self.combine = nn.Linear(He + H, H, bias=False)
            self.out = nn.Linear(H, a.tgt_vocab)
        else:
            self.out = nn.Linear(H + He, a.tgt_vocab)
        self.drop = nn.Dropout(a.dropout)

    def encode(self, src, lens):
        x = self.drop(self.src_emb(src))
        packed = nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True,
                                                   enforce_sorted=False)
        out, hn = self.encoder(packed)
        if isinstance(hn, tuple):
            hn = hn[0]
        h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                total_length=src.shape[1])
        last = torch.cat([hn[-2], hn[-1]], dim=1) if self.D == 2 else hn[-1]
        return h, last

    def step_cells(self, x, state):
        new = []
        for l, cell in enumerate(self.cells):
            if l > 0:
                x = self.drop(x)
            st = cell(x, state[l])
            new.append(st)
            x = st[0] if isinstance(st, tuple) else st
        return x, new

    def forward(self, src, lens, tgt_in):
        h, last = self.encode(src, lens)  # h [B, S, He]
        B, S, _ = h.shape
        s0 = torch.tanh(self.bridge(last))
        if self.cell_kind == "lstm":
            z = torch.zeros_like(s0)
            state = [(s0, z) for _ in range(self.dec_layers)]
        else:
            state = [s0 for _ in range(self.dec_layers)]
        top = s0
        mask = (torch.arange(S).unsqueeze(0) >= lens.unsqueeze(1))  # [B, S] True at padding
        emb = self.drop(self.tgt_emb(tgt_in))  # [B, T, E]
        T = tgt_in.shape[1]
        if self.kind in ("bahdanau", "concat"):
            keys = self.W_h(h)  # [B, S, A]
        elif self.kind == "general":
            keys = self.W_a(h)  # [B, S, H]
        else:
            keys = h

        def attend(q):
            if self.kind in ("bahdanau", "concat"):
                e = self.v(torch.tanh(self.W_q(q).unsqueeze(1) + keys)).squeeze(2)
            else:
                e = torch.bmm(keys, q.unsqueeze(2)).squeeze(2)
            a = torch.softmax(e.masked_fill(mask, float("-inf")), dim=1)
            return torch.bmm(a.unsqueeze(1), h).squeeze(1)  # [B, He]

        outs = []
        if self.kind == "none":
            for t in range(T):
                top, state = self.step_cells(torch.cat([emb[:, t], last], 1), state)
                outs.append(torch.cat([top, last], 1))
        elif self.kind == "bahdanau":
            for t in range(T):
                c = attend(top)  # from s_{i-1}
                top, state = self.step_cells(torch.cat([emb[:, t], c], 1), state)
                outs.append(torch.cat([top, c], 1))
        else:
            ht = torch.zeros(B, self.H)  # h~_0
            for t in range(T):
                top, state = self.step_cells(torch.cat([emb[:, t], ht], 1), state)
                c = attend(top)  # from h_t
                ht = torch.tanh(self.combine(torch.cat([c, top], 1)))
                outs.append(ht)
        return self.out(self.drop(torch.stack(outs, 1)))  # [B, T, Vt]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attention", default="bahdanau", choices=ATTENTIONS)
    p.add_argument("--cell", default="gru", choices=("gru", "lstm"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--src-min", type=int, default=12)
    p.add_argument("--src-max", type=int, default=30)
    p.add_argument("--tgt-len", type=int, default=10, help="target tokens before eos")
    p.add_argument("--src-vocab", type=int, default=60)
    p.add_argument("--tgt-vocab", type=int, default=14)
    p.add_argument("--emb", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--attn-dim", type=int, default=0, help="A (0: hidden)")
    p.add_argument("--enc-layers", type=int, default=1)
    p.add_argument("--dec-layers", type=int, default=1)
    p.add_argument("--no-bidirectional", dest="bidirectional", action="store_false")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--pool", type=int, default=4, help="distinct batches, cycled")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if not (1 <= a.src_min <= a.src_max) or a.batch < 1 or a.tgt_len < 1 or a.steps < 1 \
            or min(a.src_vocab, a.tgt_vocab) < 5 or a.threads < 1:
        p.error("sizes must be positive, src-min <= src-max, vocabularies >= 5")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Seq2Seq(a)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    pool = [make_batch(k, a) for k in range(a.pool)]
    tokens = [int((b[3] != PAD).sum()) for b in pool]

    def step(k):
        src, lens, tgt_in, tgt_out = pool[k % len(pool)]
        opt.zero_grad(set_to_none=True)
        logits = model(src, lens, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                               ignore_index=PAD)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for k in range(a.warmup):
        step(k)
    rates, total_tok, total_t = [], 0, 0.0
    for k in range(a.warmup, a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step(k)
        dt = time.perf_counter() - t0
        rates.append(tokens[k % len(pool)] / dt)
        total_tok += tokens[k % len(pool)]
        total_t += dt
    rates.sort()
    n = len(rates)
    median = rates[n // 2] if n % 2 else 0.5 * (rates[n // 2 - 1] + rates[n // 2])
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "attention": a.attention, "cell": a.cell,
        "tokens_per_s": round(median, 1), "ms_per_step": round(1e3 * total_t / a.steps, 3),
        "tokens_per_s_mean": round(total_tok / total_t, 1),
        "batch": a.batch, "src_len": [a.src_min, a.src_max], "tgt_len": a.tgt_len + 1,
        "emb": a.emb, "hidden": a.hidden, "steps": a.steps,
        "params": sum(q.numel() for q in model.parameters()), "loss": round(loss, 4)}))


if __name__ == "__main__":
    main()
