"""attn.torch: the fused attention as a torch.autograd.Function on the CPU,
against PyTorch's own attention (F.scaled_dot_product_attention where the
installed torch has it, torch >= 2.0; else the explicit
softmax(Q K^T / sqrt(d)) V), and a small PyTorch model trained with it.
Skipped (counted) when torch is not installed."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import attn.torch as at  # noqa: E402

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
TOL = dict(atol=2e-5, rtol=1e-4)


def torch_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    if HAS_SDPA:
        if scale is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                              scale=scale)
    s = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if is_causal:
        T, S = q.shape[-2], k.shape[-2]
        s = s.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(1), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    return torch.softmax(s, dim=-1) @ v


def leaves(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("case", ["plain", "causal", "scale", "bool_mask", "float_mask"])
def test_gradients_match_torch(fused, case):
    q, k, v = leaves((2, 3, 9, 8), (2, 3, 9, 8), (2, 3, 9, 6), seed=1)
    q2, k2, v2 = (x.detach().clone().requires_grad_() for x in (q, k, v))
    kw = {}
    if case == "causal":
        kw["is_causal"] = True
    elif case == "scale":
        kw["scale"] = 0.2
    elif case == "bool_mask":
        m = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(2)) > 0.3
        m[..., 0] = True
        kw["attn_mask"] = m
    elif case == "float_mask":
        kw["attn_mask"] = torch.randn(1, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    y = at.scaled_dot_product_attention(q, k, v, fused=fused, **kw)
    y2 = torch_attention(q2, k2, v2, **kw)
    torch.testing.assert_close(y, y2, **TOL)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(4))
    (y * g).sum().backward()
    (y2 * g).sum().backward()
    for a, b in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(a.grad, b.grad, **TOL)


def test_float_mask_gradient():
    q, k, v = leaves((1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4), seed=5)
    bias = torch.randn(1, 2, 5, 5, requires_grad=True)
    bias2 = bias.detach().clone().requires_grad_()
    y = at.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    y2 = torch_attention(q.detach(), k.detach(), v.detach(), attn_mask=bias2)
    y.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(bias.grad, bias2.grad, **TOL)


def test_gradcheck_in_float32():
    """torch.autograd.gradcheck in float32 (attn computes in float32) with
    loose tolerances: the Function's backward is its forward's derivative."""
    q, k, v = (x.detach().double().requires_grad_() for x in leaves((1, 1, 4, 3), (1, 1, 4, 3), (1, 1, 4, 3), seed=6))

    def f(q, k, v):
        return at.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True).double()
    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-3, atol=2e-3, rtol=1e-2)


class TinyClassifier(torch.nn.Module):
    """Token embedding + positions, one self-attention layer with a residual
    and LayerNorm, mean pooling, a linear head."""

    def __init__(self, vocab, T, E, H, C, attention):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, E)
        self.pos = torch.nn.Parameter(torch.randn(T, E) * 0.1)
        self.att = at.MultiheadSelfAttention(E, H)
        self.norm = torch.nn.LayerNorm(E)
        self.head = torch.nn.Linear(E, C)
        self.attention = attention

    def forward(self, ids):
        x = self.emb(ids) + self.pos
        x = self.norm(x + self.att(x, attention=self.attention))
        return self.head(x.mean(1))


def task(n, T, gen):
    """Label 1 iff token 2 occurs before token 3 (both occur once): needs
    attention across positions."""
    ids = torch.randint(4, 10, (n, T), generator=gen)
    for i in range(n):
        a, b = torch.randperm(T, generator=gen)[:2].tolist()
        ids[i, a], ids[i, b] = 2, 3
    return ids, (ids == 2).float().argmax(1).lt((ids == 3).float().argmax(1)).long()


def test_trains_a_pytorch_model_like_torch_attention():
    """Two copies of one model, one with attn's fused attention and one with
    PyTorch's, trained by the same steps: the losses and every parameter's
    gradient agree step after step, and the model learns the task."""
    torch.manual_seed(0)
    T, steps = 12, 120
    m1 = TinyClassifier(10, T, 32, 4, 2, at.scaled_dot_product_attention)
    m2 = TinyClassifier(10, T, 32, 4, 2, torch_attention)
    m2.load_state_dict(m1.state_dict())
    o1 = torch.optim.Adam(m1.parameters(), lr=3e-3)
    o2 = torch.optim.Adam(m2.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    worst = 0.0
    for step in range(steps):
        ids, y = task(32, T, gen)
        l1 = F.cross_entropy(m1(ids), y)
        l2 = F.cross_entropy(m2(ids), y)
        o1.zero_grad()
        o2.zero_grad()
        l1.backward()
        l2.backward()
        if step < 5:
            for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
                torch.testing.assert_close(p1.grad, p2.grad, atol=1e-5, rtol=1e-4, msg=n)
        worst = max(worst, abs(l1.item() - l2.item()))
        o1.step()
        o2.step()
    assert worst < 1e-3, f"loss trajectories differ by {worst}"
    ids, y = task(512, T, torch.Generator().manual_seed(99))
    with torch.no_grad():
        acc = (m1(ids).argmax(1) == y).float().mean().item()
    assert acc > 0.85, f"held-out accuracy {acc:.3f}"


def test_dropout_gradients_are_those_of_the_same_mask():
    """With a fixed seed the dropout mask is a function of it, so the Function
    is deterministic and gradcheck applies to it."""
    q, k, v = (x.detach().double().requires_grad_() for x in leaves((1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 3), seed=7))

    def f(q, k, v):
        return at.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=0.3,
                                               seed=5).double()
    y1, y2 = f(q, k, v), f(q, k, v)
    assert torch.equal(y1, y2)
    assert not torch.allclose(y1, at.scaled_dot_product_attention(q.float(), k.float(), v.float()).double())
    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-3, atol=2e-3, rtol=1e-2)


def test_grouped_query_attention_matches_repeated_heads():
    q, k, v = leaves((2, 4, 6, 8), (2, 2, 6, 8), (2, 2, 6, 8), seed=8)
    q2, k2, v2 = (x.detach().clone().requires_grad_() for x in (q, k, v))
    y = at.scaled_dot_product_attention(q, k, v, is_causal=True)
    y2 = torch_attention(q2, k2.repeat_interleave(2, dim=1), v2.repeat_interleave(2, dim=1),
                         is_causal=True)
    torch.testing.assert_close(y, y2, **TOL)
    y.sum().backward()
    y2.sum().backward()
    for a, b in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(a.grad, b.grad, **TOL)
