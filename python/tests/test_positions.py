"""Positional encodings through the Python package against the formulas of
include/attn/positions.h, computed here in float64."""
import numpy as np
import pytest

import attn


def test_sinusoidal_table():
    T, E, pos0 = 7, 10, 3
    pe = attn.sinusoidal_positions(T, E, pos0=pos0)
    p = (pos0 + np.arange(T))[:, None].astype(np.float64)
    i = np.arange(E // 2)[None, :]
    ang = p / 10000.0 ** (2 * i / E)
    want = np.empty((T, E))
    want[:, 0::2], want[:, 1::2] = np.sin(ang), np.cos(ang)
    assert pe.shape == (T, E) and pe.dtype == np.float32
    np.testing.assert_allclose(pe, want, atol=1e-6, rtol=0)


def rope_ref(x, pos, theta=10000.0, interleaved=False):
    x = x.astype(np.float64)
    D = x.shape[-1]
    i = np.arange(D // 2)
    phi = pos[:, None] * theta ** (-2.0 * i / D)  # [T, D/2]
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., : D // 2], x[..., D // 2:]
    ra = a * np.cos(phi) - b * np.sin(phi)
    rb = b * np.cos(phi) + a * np.sin(phi)
    out = np.empty_like(x)
    if interleaved:
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., : D // 2], out[..., D // 2:] = ra, rb
    return out


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_forward_and_backward(interleaved):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 8)).astype(np.float32)
    g = rng.standard_normal((2, 3, 5, 8)).astype(np.float32)
    pos = np.array([0, 4, 9, 100, 1000], dtype=np.int32)
    y = attn.rope(x, pos, interleaved=interleaved)
    np.testing.assert_allclose(y, rope_ref(x, pos.astype(np.float64), interleaved=interleaved),
                               atol=2e-6, rtol=0)
    # the backward is the transpose of the (linear) forward: <R x, g> = <x, R^T g>
    dx = attn.rope_backward(g, pos, interleaved=interleaved)
    lhs = float((y.astype(np.float64) * g).sum())
    rhs = float((x.astype(np.float64) * dx).sum())
    assert abs(lhs - rhs) < 1e-4 * max(1.0, abs(lhs))
    # a rotation keeps the norm of each pair
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)


def test_rope_pos0_equals_explicit_positions():
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(attn.rope(x, pos0=5), attn.rope(x, np.arange(5, 9)))


def test_alibi_slopes_and_bias():
    np.testing.assert_allclose(attn.alibi_slopes(8), 2.0 ** -np.arange(1, 9), rtol=1e-7)
    # 6 heads: the 4 slopes of 4 heads, then every other slope of 8 heads
    s8 = 2.0 ** -np.arange(1, 9)
    np.testing.assert_allclose(attn.alibi_slopes(6), np.concatenate((2.0 ** (-2.0 * np.arange(1, 5)), s8[0::2][:2])),
                               rtol=1e-7)
    b = attn.alibi_bias(4, 3, 5, causal=False)
    m = attn.alibi_slopes(4).astype(np.float64)
    t = np.arange(3)[:, None] + 2
    s = np.arange(5)[None, :]
    np.testing.assert_allclose(b[0], -m[:, None, None] * np.abs(t - s)[None], atol=1e-6)
    bc = attn.alibi_bias(4, 3, 5, causal=True)
    assert np.all(np.isneginf(bc[0][:, s > t])) and np.all(np.isfinite(bc[0][:, s <= t]))


def test_position_errors():
    with pytest.raises(attn.AttnError):
        attn.sinusoidal_positions(0, 4)
    with pytest.raises(attn.AttnError):
        attn.rope(np.zeros((1, 1, 2, 5), np.float32))  # odd head size


def rel_index(T, S, K, offset):
    t = np.arange(T)[:, None]
    s = np.arange(S)[None, :]
    return np.clip(s - (t + offset), -K, K) + K  # [T, S]


def test_shaw_relative_positions_forward_and_backward():
    rng = np.random.default_rng(3)
    B, H, T, S, D, K = 2, 2, 3, 5, 4, 2
    q = rng.standard_normal((B, H, T, D)).astype(np.float32)
    rk = rng.standard_normal((2 * K + 1, D)).astype(np.float32)
    rv = rng.standard_normal((2 * K + 1, 6)).astype(np.float32)
    p = rng.random((B, H, T, S)).astype(np.float32)
    j = rel_index(T, S, K, S - T)
    E = np.eye(2 * K + 1)[j]  # [T, S, 2K+1] one-hot of the clipped distance
    want_l = np.einsum("bhtd,tsk,kd->bhts", q.astype(np.float64), E, rk.astype(np.float64))
    np.testing.assert_allclose(attn.rel_logits(q, rk, S), want_l, atol=1e-5)
    want_v = np.einsum("bhts,tsk,kd->bhtd", p.astype(np.float64), E, rv.astype(np.float64))
    np.testing.assert_allclose(attn.rel_values(p, rv), want_v, atol=1e-5)
    g = rng.standard_normal(want_l.shape).astype(np.float32)
    dq, drk = attn.rel_logits_backward(q, rk, g, S)
    np.testing.assert_allclose(dq, np.einsum("bhts,tsk,kd->bhtd", g, E, rk), atol=1e-5)
    np.testing.assert_allclose(drk, np.einsum("bhts,tsk,bhtd->kd", g, E, q), atol=1e-5)
    gv = rng.standard_normal(want_v.shape).astype(np.float32)
    dp, drv = attn.rel_values_backward(p, rv, gv)
    np.testing.assert_allclose(dp, np.einsum("bhtd,tsk,kd->bhts", gv, E, rv), atol=1e-5)
    np.testing.assert_allclose(drv, np.einsum("bhtd,tsk,bhts->kd", gv, E, p), atol=1e-5)
    with pytest.raises(attn.AttnError):
        attn.rel_logits(q, rk[:4], S)  # an even number of rows
