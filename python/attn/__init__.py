"""attn: neural attention mechanisms, forward and backward, from the attn C library.

numpy arrays in and out. Inputs that are already C-contiguous float32 (int32
for ids and lengths) are read in place, without a copy; anything else is
converted once with numpy.ascontiguousarray. Gradients are written straight
into the arrays returned. docs/python.md has the design and an example.

    import numpy as np, attn
    q = k = v = np.random.default_rng(0).standard_normal((1, 4, 128, 32), dtype=np.float32)
    out = attn.flash_sdpa(q, k, v, causal=True)                       # [1, 4, 128, 32]
    dq, dk, dv = attn.flash_sdpa_backward(q, k, v, np.ones_like(out), causal=True)

Errors from the library raise attn.AttnError (a ValueError) with its message,
which names the op, the shapes and what was expected.
"""
import os

import numpy as np

from . import _attn
from ._attn import AttnError

__version__ = _attn.VERSION
ABI_VERSION = _attn.ABI_VERSION

__all__ = [
    "AttnError", "info", "sdpa", "flash_sdpa", "sdpa_backward", "flash_sdpa_backward",
    "sinusoidal_positions", "rope", "rope_backward", "alibi_slopes", "alibi_bias",
    "rel_logits", "rel_logits_backward", "rel_values", "rel_values_backward",
    "Vocab", "GPT", "BERT", "Translator",
]


def info():
    """The library's version, ABI, SIMD level, matrix library and threads (a dict)."""
    return _attn.info()


def _f32(x, name):
    """C-contiguous float32: the array itself when it already is one, else one copy."""
    return np.ascontiguousarray(x, dtype=np.float32)


def _i32(x, name):
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got {a.dtype}")
    if a.dtype != np.int32 and a.size and (a.min() < -2 ** 31 or a.max() >= 2 ** 31):
        # astype would wrap them silently into other, valid-looking ids
        raise ValueError(f"{name}: values outside int32 ({a.min()} .. {a.max()})")
    return np.ascontiguousarray(a, dtype=np.int32)


def _heads(x, name):
    """[B, T, D] becomes [B, 1, T, D] (a view); [B, H, T, D] stays."""
    a = _f32(x, name)
    if a.ndim == 3:
        return a[:, None], True
    if a.ndim != 4:
        raise ValueError(f"{name}: expected [B, H, T, D] or [B, T, D], got shape {a.shape}")
    return a, False


def _mask_to_bias(mask, bias):
    """A boolean mask (True: the key is visible, as torch's attn_mask) or an
    additive float mask becomes attn's additive bias; None stays None."""
    if mask is None:
        return bias
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        add = np.where(m, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
    else:
        add = _f32(m, "mask")
    return add if bias is None else np.ascontiguousarray(add + _f32(bias, "bias"))


def _bias_4d(bias, squeeze):
    if bias is None:
        return None
    b = _f32(bias, "bias")
    if squeeze and b.ndim == 3:  # [B, T, S] of 3-d inputs: one head
        b = b[:, None]
    return b


def _opts(causal, scale, window, key_lengths, alibi_slopes, dropout, seed, threads):
    return dict(
        causal=bool(causal), scale=float(scale or 0.0), window=int(window),
        key_lengths=None if key_lengths is None else _i32(key_lengths, "key_lengths"),
        alibi_slopes=None if alibi_slopes is None else _f32(alibi_slopes, "alibi_slopes"),
        dropout=float(dropout), seed=int(seed), threads=int(threads))


def _sdpa(fused, q, k, v, mask, bias, causal, scale, window, key_lengths, alibi_slopes,
          dropout, seed, threads, return_weights):
    q4, squeeze = _heads(q, "q")
    k4, _ = _heads(k, "k")
    v4, _ = _heads(v, "v")
    b = _bias_4d(_mask_to_bias(mask, bias), squeeze)
    B, H, T, _ = q4.shape
    out = np.empty((B, H, T, v4.shape[3]), dtype=np.float32)
    w = np.empty((B, H, T, k4.shape[2]), dtype=np.float32) if return_weights else None
    _attn.sdpa(q4, k4, v4, out, w, fused=fused, bias=b,
               **_opts(causal, scale, window, key_lengths, alibi_slopes, dropout, seed, threads))
    if squeeze:
        out = out[:, 0]
        w = None if w is None else w[:, 0]
    return (out, w) if return_weights else out


def sdpa(q, k, v, mask=None, *, bias=None, causal=False, scale=None, window=0, key_lengths=None,
         alibi_slopes=None, dropout=0.0, seed=0, threads=0, return_weights=False):
    """Scaled dot-product attention, the reference op (materialises the weights).

    q [B, H, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv] (H a multiple of Hkv:
    grouped-query attention), or [B, T, D] / [B, S, D] / [B, S, Dv] for one
    head. Returns out [B, H, T, Dv] (and the weights [B, H, T, S] with
    return_weights). Options (include/attn/sdpa.h has the exact rules):
      mask          boolean, True where the key is visible (torch's attn_mask
                    convention), or an additive float mask; broadcast to
                    [B, H, T, S]
      bias          an additive float bias, broadcast to [B, H, T, S]
      causal        key s is visible to query t iff s <= t + (S - T)
                    (bottom-right aligned; torch's is_causal when T == S)
      scale         None: 1 / sqrt(D)
      window        > 0: a sliding window of that many keys
      key_lengths   int [B]: keys at or beyond key_lengths[b] are padding
      alibi_slopes  float [H]: ALiBi inside the kernel (attn.alibi_slopes)
      dropout, seed dropout on the weights (inverted), a pure function of seed
      threads       0: all available
    A query row with no visible key gives zeros, not NaN.
    """
    return _sdpa(False, q, k, v, mask, bias, causal, scale, window, key_lengths, alibi_slopes,
                 dropout, seed, threads, return_weights)


def flash_sdpa(q, k, v, mask=None, *, bias=None, causal=False, scale=None, window=0,
               key_lengths=None, alibi_slopes=None, dropout=0.0, seed=0, threads=0,
               return_weights=False):
    """The fused (flash-style) attention: the function of attn.sdpa computed tile by
    tile with an online softmax (O(T) memory). Same arguments and result."""
    return _sdpa(True, q, k, v, mask, bias, causal, scale, window, key_lengths, alibi_slopes,
                 dropout, seed, threads, return_weights)


def _sdpa_backward(fused, q, k, v, grad_out, mask, bias, causal, scale, window, key_lengths,
                   alibi_slopes, dropout, seed, threads, bias_grad, return_out):
    q4, squeeze = _heads(q, "q")
    k4, _ = _heads(k, "k")
    v4, _ = _heads(v, "v")
    g4, _ = _heads(grad_out, "grad_out")
    b = _bias_4d(_mask_to_bias(mask, bias), squeeze)
    dq = np.zeros(q4.shape, dtype=np.float32)
    dk = np.zeros(k4.shape, dtype=np.float32)
    dv = np.zeros(v4.shape, dtype=np.float32)
    db = np.zeros(b.shape, dtype=np.float32) if (bias_grad and b is not None) else None
    out = np.empty(g4.shape, dtype=np.float32) if return_out else None
    _attn.sdpa_backward(q4, k4, v4, g4, dq, dk, dv, db, out, fused=fused, bias=b,
                        **_opts(causal, scale, window, key_lengths, alibi_slopes, dropout, seed,
                                threads))
    if squeeze:
        dq, dk, dv = dq[:, 0], dk[:, 0], dv[:, 0]
        out = None if out is None else out[:, 0]
        if db is not None and np.ndim(bias) == 3:
            db = db[:, 0]
    res = (dq, dk, dv)
    if bias_grad:
        res += (db,)
    if return_out:
        res += (out,)
    return res


def sdpa_backward(q, k, v, grad_out, mask=None, *, bias=None, causal=False, scale=None, window=0,
                  key_lengths=None, alibi_slopes=None, dropout=0.0, seed=0, threads=0,
                  bias_grad=False, return_out=False):
    """Gradients of attn.sdpa: (dq, dk, dv) for the upstream gradient grad_out
    [B, H, T, Dv], with the options of the forward (the same seed gives the same
    dropout mask). The forward is run again first (one forward's cost; nothing is
    kept between calls). bias_grad=True adds the bias's gradient (its own shape,
    summed over broadcast dimensions); return_out=True adds the forward's output."""
    return _sdpa_backward(False, q, k, v, grad_out, mask, bias, causal, scale, window, key_lengths,
                          alibi_slopes, dropout, seed, threads, bias_grad, return_out)


def flash_sdpa_backward(q, k, v, grad_out, mask=None, *, bias=None, causal=False, scale=None,
                        window=0, key_lengths=None, alibi_slopes=None, dropout=0.0, seed=0,
                        threads=0, bias_grad=False, return_out=False):
    """Gradients of attn.flash_sdpa (the fused kernel's backward, which recomputes
    the weights from two saved statistics per row). As attn.sdpa_backward."""
    return _sdpa_backward(True, q, k, v, grad_out, mask, bias, causal, scale, window, key_lengths,
                          alibi_slopes, dropout, seed, threads, bias_grad, return_out)


# ---- positions ---------------------------------------------------------------------


def sinusoidal_positions(T, E, pos0=0, base=10000.0):
    """The sinusoidal table of Vaswani et al. [T, E]: PE[t, 2i] = sin(p / base^(2i/E)),
    PE[t, 2i+1] = cos(...), p = pos0 + t."""
    out = np.empty((int(T), int(E)), dtype=np.float32)
    _attn.sinusoidal(out, pos0=int(pos0), base=float(base))
    return out


def _rope(x, grad, positions, pos0, theta, rotary_dim, interleaved, threads):
    x4, squeeze = _heads(x, "x")
    out = np.empty(x4.shape, dtype=np.float32)
    pos = None if positions is None else _i32(positions, "positions")
    _attn.rope(x4, out, positions=pos, pos0=int(pos0), theta=float(theta or 0.0),
               rotary_dim=int(rotary_dim or 0), interleaved=bool(interleaved), grad=grad,
               threads=int(threads))
    return out[:, 0] if squeeze else out


def rope(x, positions=None, *, pos0=0, theta=10000.0, rotary_dim=None, interleaved=False, threads=0):
    """Rotary position embedding of x [B, H, T, D] (or [B, T, D]). positions: None
    (pos0 + t), int [T] or [B, T]. rotary_dim: the leading dims that rotate (None:
    all). interleaved: adjacent pairs (RoFormer, GPT-J) instead of rotate-half
    (GPT-NeoX, Llama)."""
    return _rope(x, False, positions, pos0, theta, rotary_dim, interleaved, threads)


def rope_backward(grad_out, positions=None, *, pos0=0, theta=10000.0, rotary_dim=None,
                  interleaved=False, threads=0):
    """The gradient of attn.rope's input for the upstream gradient grad_out (the
    rotation by the opposite angles)."""
    return _rope(grad_out, True, positions, pos0, theta, rotary_dim, interleaved, threads)


def alibi_slopes(H):
    """The ALiBi slopes of H heads (Press et al. 2022) [H]."""
    out = np.empty(int(H), dtype=np.float32)
    _attn.alibi_slopes(out)
    return out


def alibi_bias(H, T, S=None, causal=False):
    """The ALiBi bias [1, H, T, S] for the bias= of attn.sdpa: -m_h |t + S - T - s|,
    and -inf above the diagonal when causal."""
    out = np.empty((1, int(H), int(T), int(T if S is None else S)), dtype=np.float32)
    _attn.alibi_bias(out, bool(causal))
    return out


def _rel(kind, a, table, S, offset, grad_out, threads):
    a4 = _f32(a, "q" if kind == 0 else "p")
    t = _f32(table, "rel_k" if kind == 0 else "rel_v")
    if a4.ndim != 4 or t.ndim != 2:
        raise ValueError("rel positions: expected a 4-d q or p and a 2-d table")
    B, H, T = a4.shape[:3]
    if kind == 0:
        S = T if S is None else int(S)
        oshape = (B, H, T, S)
    else:
        S = a4.shape[3]
        oshape = (B, H, T, t.shape[1])
    offset = (S - T) if offset is None else int(offset)
    out = np.empty(oshape, dtype=np.float32)
    if grad_out is None:
        _attn.rel(kind, a4, t, out, S=S, offset=offset, threads=int(threads))
        return out
    da, dt = np.zeros(a4.shape, np.float32), np.zeros(t.shape, np.float32)
    _attn.rel(kind, a4, t, out, _f32(grad_out, "grad_out"), da, dt, S=S, offset=offset,
              threads=int(threads))
    return da, dt


def rel_logits(q, rel_k, S=None, offset=None, *, threads=0):
    """Shaw et al. (2018) relative-position logits: q [B, H, T, D], rel_k [2K+1, D]
    -> [B, H, T, S], out[b,h,t,s] = q[b,h,t] . rel_k[clip(s - (t + offset), -K, K) + K].
    S: keys (None: T); offset: None is S - T (bottom-right aligned queries)."""
    return _rel(0, q, rel_k, S, offset, None, threads)


def rel_logits_backward(q, rel_k, grad_out, S=None, offset=None, *, threads=0):
    """(dq, drel_k) of attn.rel_logits for the upstream gradient grad_out [B, H, T, S]."""
    return _rel(0, q, rel_k, S, offset, grad_out, threads)


def rel_values(p, rel_v, offset=None, *, threads=0):
    """Shaw et al.'s value term: p [B, H, T, S] (attention weights), rel_v [2K+1, Dv]
    -> [B, H, T, Dv], out[b,h,t] = sum_s p[b,h,t,s] rel_v[clip(s - (t + offset), -K, K) + K]."""
    return _rel(1, p, rel_v, None, offset, None, threads)


def rel_values_backward(p, rel_v, grad_out, offset=None, *, threads=0):
    """(dp, drel_v) of attn.rel_values for the upstream gradient grad_out [B, H, T, Dv]."""
    return _rel(1, p, rel_v, None, offset, grad_out, threads)


# ---- models --------------------------------------------------------------------------

PAD, BOS, EOS, UNK = 0, 1, 2, 3  # the specials of attn's vocabularies (include/attn/text.h)
N_SPECIALS = 4


class Vocab:
    """An attn vocabulary (characters or BPE), the file `vocab` of a run directory."""

    def __init__(self, path):
        self._v = _attn.vocab_load(os.fspath(path))
        self.path = os.fspath(path)

    def __len__(self):
        return _attn.vocab_size(self._v)

    def encode(self, text):
        """str -> int32 ids [n]."""
        return np.frombuffer(_attn.vocab_encode(self._v, text), dtype=np.int32).copy()

    def decode(self, ids):
        """int ids -> str (specials decode to nothing)."""
        return _attn.vocab_decode(self._v, _i32(np.ravel(ids), "ids"))


def _model_files(path):
    """A run directory (model.safetensors, vocab) or a model file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        model = os.path.join(path, "model.safetensors")
        vocab = os.path.join(path, "vocab")
        return model, (vocab if os.path.exists(vocab) else None)
    return path, None


class GPT:
    """A decoder-only language model of `attn gpt train` (include/attn/gpt.h)."""

    def __init__(self, handle, vocab=None):
        self._m = handle
        self.vocab = vocab
        self.config = _attn.gpt_config(handle)

    @classmethod
    def load(cls, path, vocab=None):
        """path: a run directory of `attn gpt train` (model.safetensors and vocab) or
        a model file (then vocab= may name a vocabulary file, for text in and out)."""
        model, vpath = _model_files(path)
        vpath = vocab if vocab is not None else vpath
        v = Vocab(vpath) if vpath is not None else None
        m = cls(_attn.gpt_load(model), v)
        if v is not None and len(v) != m.config["vocab"]:
            raise AttnError(f"GPT.load: the vocabulary {v.path} has {len(v)} tokens, the model "
                            f"{model} was built for {m.config['vocab']}")
        return m

    @classmethod
    def new(cls, vocab, ctx_len, n_layers, n_heads, d_model, pos="learned", seed=0):
        """A new GPT-2-initialised model (tests, experiments). pos: none, sinusoidal,
        learned, rope or alibi."""
        kinds = {"none": 0, "sinusoidal": 1, "learned": 2, "rope": 4, "alibi": 5}
        if pos not in kinds:
            raise ValueError(f"GPT.new: pos '{pos}': expected one of {sorted(kinds)}")
        return cls(_attn.gpt_new(int(vocab), int(ctx_len), int(n_layers), int(n_heads),
                                 int(d_model), kinds[pos], int(seed)))

    def save(self, path):
        _attn.gpt_save(self._m, os.fspath(path))

    def logits(self, ids, threads=0):
        """int ids [B, T] (or [T]) -> logits float32 [B, T, V] (or [T, V])."""
        a = _i32(ids, "ids")
        one = a.ndim == 1
        a2 = a[None] if one else a
        if a2.ndim != 2:
            raise ValueError(f"GPT.logits: ids must be [B, T] or [T], got shape {a.shape}")
        out = np.empty(a2.shape + (self.config["vocab"],), dtype=np.float32)
        _attn.gpt_logits(self._m, a2, out, threads=int(threads))
        return out[0] if one else out

    def generate(self, prompt, n_new=100, *, temperature=1.0, top_k=0, top_p=0.0, seed=0,
                 threads=0):
        """Continues the prompt by n_new tokens (KV cache; temperature 0 is greedy;
        top_k > 0 and 0 < top_p < 1 limit the candidates; draw i uses the random
        number (seed, i), so a seed repeats its text). prompt: a str (needs the
        vocabulary; returns the new text) or int ids (returns int32 ids [n_new]).
        With a vocabulary the special tokens are never drawn, as in
        `attn gpt sample`, whose text this is for the same options."""
        text = isinstance(prompt, str)
        if text:
            if self.vocab is None:
                raise ValueError("GPT.generate: a text prompt needs the model's vocabulary "
                                 "(GPT.load(run_dir) or vocab=)")
            ids = self.vocab.encode(prompt)
            first = N_SPECIALS
        else:
            ids = _i32(np.ravel(prompt), "prompt")
            first = N_SPECIALS if self.vocab is not None else 0
        out = np.empty(int(n_new), dtype=np.int32)
        _attn.gpt_generate(self._m, ids, out, temperature=float(temperature), top_k=int(top_k),
                           top_p=float(top_p), seed=int(seed), first_id=first, threads=int(threads))
        return self.vocab.decode(out) if text else out


class BERT:
    """An encoder of `attn bert pretrain|finetune` (include/attn/bert.h)."""

    def __init__(self, handle, vocab=None):
        self._m = handle
        self.vocab = vocab
        self.config = _attn.bert_config(handle)

    @classmethod
    def load(cls, path, vocab=None):
        """path: a run directory (model.safetensors and vocab) or a model file."""
        model, vpath = _model_files(path)
        vpath = vocab if vocab is not None else vpath
        return cls(_attn.bert_load(model), Vocab(vpath) if vpath is not None else None)

    @classmethod
    def new(cls, vocab, max_len, n_layers, n_heads, d_model, n_classes=0, seed=0):
        """A new BERT-initialised model with an MLM head (and a classifier when
        n_classes > 0), for tests and experiments."""
        return cls(_attn.bert_new(int(vocab), int(max_len), int(n_layers), int(n_heads),
                                  int(d_model), int(n_classes), int(seed)))

    def save(self, path):
        _attn.bert_save(self._m, os.fspath(path))

    def tokenize(self, texts):
        """A list of str -> (ids int32 [B, T], lengths int32 [B]): [CLS] then the
        text's ids, cut to max_len, padded with 0."""
        if self.vocab is None:
            raise ValueError("BERT.tokenize: text needs the model's vocabulary "
                             "(BERT.load(run_dir) or vocab=)")
        if isinstance(texts, str):
            texts = [texts]
        rows = [np.concatenate(([BOS], self.vocab.encode(t)))[: self.config["max_len"]]
                for t in texts]
        T = max(len(r) for r in rows)
        ids = np.zeros((len(rows), T), dtype=np.int32)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        return ids, np.array([len(r) for r in rows], dtype=np.int32)

    def _inputs(self, x, lengths):
        if isinstance(x, str) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], str)):
            return self.tokenize(x)
        ids = _i32(x, "ids")
        if ids.ndim == 1:
            ids = ids[None]
        return ids, None if lengths is None else _i32(lengths, "lengths")

    def encode(self, x, lengths=None, threads=0):
        """The encoder's output [B, T, E] of ids [B, T] (lengths [B]: real tokens per
        row, None: all) or of a list of texts."""
        ids, lens = self._inputs(x, lengths)
        out = np.empty(ids.shape + (self.config["d_model"],), dtype=np.float32)
        _attn.bert_run(self._m, ids, lens, out, 0, threads=int(threads))
        return out

    def embed(self, x, lengths=None, pooling="mean", normalize=True, threads=0):
        """One vector per row [B, E]: the mean of the encoder's outputs over the real
        tokens ("mean") or the [CLS] position's output ("cls"); L2-normalised unless
        normalize=False."""
        ids, lens = self._inputs(x, lengths)
        h = self.encode(ids, lens, threads)
        if pooling == "cls":
            e = h[:, 0].copy()
        elif pooling == "mean":
            n = np.full(ids.shape[0], ids.shape[1], dtype=np.int32) if lens is None else lens
            keep = (np.arange(ids.shape[1])[None, :] < n[:, None]).astype(np.float32)
            e = (h * keep[:, :, None]).sum(axis=1) / np.maximum(n, 1)[:, None].astype(np.float32)
        else:
            raise ValueError(f"BERT.embed: pooling '{pooling}': expected mean or cls")
        if normalize:
            e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), np.float32(1e-12))
        return e.astype(np.float32, copy=False)

    def classify(self, x, lengths=None, threads=0):
        """The classifier's logits [B, C] (the model must have one: attn bert finetune)."""
        if not self.config["n_classes"]:
            raise AttnError("BERT.classify: this model has no classifier (n_classes 0)")
        ids, lens = self._inputs(x, lengths)
        out = np.empty((ids.shape[0], self.config["n_classes"]), dtype=np.float32)
        _attn.bert_run(self._m, ids, lens, out, 1, threads=int(threads))
        return out

    def predict(self, x, lengths=None, threads=0):
        """The arg max class of each row [B]."""
        return np.argmax(self.classify(x, lengths, threads), axis=1)


class Translator:
    """A translator of `attn transformer train` (encoder-decoder Transformer,
    include/attn/transformer_s2s.h) or `attn seq2seq train` (RNN encoder-decoder
    with attention, include/attn/seq2seq.h): a run directory with
    model.safetensors, src.vocab and tgt.vocab. translate() decodes as
    `attn transformer|seq2seq translate` does: the same outputs."""

    def __init__(self, path):
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"Translator: {path} is not a run directory of 'attn transformer train' "
                             "or 'attn seq2seq train'")
        self._m = _attn.s2s_load(os.path.join(path, "model.safetensors"))
        self.config = _attn.s2s_config(self._m)
        self.family = self.config["family"]
        self.src_vocab = Vocab(os.path.join(path, "src.vocab"))
        self.tgt_vocab = Vocab(os.path.join(path, "tgt.vocab"))
        if (len(self.src_vocab), len(self.tgt_vocab)) != (self.config["src_vocab"], self.config["tgt_vocab"]):
            raise AttnError(f"Translator: {path}: the vocabularies have {len(self.src_vocab)} and "
                            f"{len(self.tgt_vocab)} tokens, the model {self.config['src_vocab']} and "
                            f"{self.config['tgt_vocab']}")

    @classmethod
    def load(cls, path):
        return cls(path)

    def _caps(self):
        """(most source tokens, most output tokens) the model reads and writes, as the
        CLI's source_cap and decode_cap: learned positions bound both of a Transformer,
        location attention bounds an RNN's sources; None: no bound."""
        c = self.config
        if self.family == "transformer" and c["pos"] == "learned" and c["max_len"] > 0:
            return c["max_len"], c["max_len"]
        if self.family == "seq2seq" and c["attention"] == "location" and c["max_src_len"] > 1:
            return c["max_src_len"] - 1, None
        return None, None

    def translate_ids(self, src, beam=1, alpha=0.6, max_len=None, threads=0):
        """Source ids [n] -> output ids [m] (eos excluded). Sources longer than the
        model reads are cut there, as the CLI does; max_len None is 3 n + 10."""
        ids = _i32(np.ravel(src), "src")
        src_cap, out_cap = self._caps()
        if src_cap is not None:
            ids = ids[:src_cap]
        L = int(max_len) if max_len else 3 * len(ids) + 10
        if out_cap is not None:
            L = min(L, out_cap)
        out = np.empty(L, dtype=np.int32)
        n = _attn.s2s_translate(self._m, ids, out, beam=int(beam), alpha=float(alpha),
                                threads=int(threads))
        return out[:n].copy()

    def translate(self, text, beam=1, alpha=0.6, max_len=None, threads=0):
        """A str (or a list of str) -> its translation (or a list); greedy with beam=1,
        else beam search with the length normalisation log p / len^alpha."""
        if not isinstance(text, str):
            return [self.translate(t, beam, alpha, max_len, threads) for t in text]
        if not text:
            return ""
        src = self.src_vocab.encode(text)
        return self.tgt_vocab.decode(self.translate_ids(src, beam, alpha, max_len, threads))
