"""attn's attention ops through the Python package, against a float64 numpy
reference written here (forward, and the backward derived in
docs/transformer.md), with finite differences of that reference."""
import numpy as np
import pytest

import attn
from attn import _attn

# float32 kernels against a float64 reference, values of order 1
FWD_TOL = 2e-6
BWD_TOL = 1e-5


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def visible(B, H, T, S, causal=False, window=0, key_lengths=None, mask=None):
    vis = np.ones((B, H, T, S), dtype=bool)
    t = np.arange(T)[:, None] + (S - T)
    s = np.arange(S)[None, :]
    if causal:
        vis &= (s <= t)[None, None]
    if window:
        vis &= ((s > t - window) if causal else (np.abs(s - t) < window))[None, None]
    if key_lengths is not None:
        vis &= (s[None] < np.asarray(key_lengths)[:, None, None])[:, None]
    if mask is not None:
        vis &= np.broadcast_to(mask, vis.shape)
    return vis


def ref_forward(q, k, v, scale=None, bias=None, **mask_opts):
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    k = np.repeat(k, H // Hkv, axis=1)
    v = np.repeat(v, H // Hkv, axis=1)
    sc = 1 / np.sqrt(D) if scale is None else scale
    logits = sc * q @ k.transpose(0, 1, 3, 2)
    if bias is not None:
        logits = logits + bias
    vis = visible(B, H, T, S, **mask_opts) & np.isfinite(logits)
    logits = np.where(vis, logits, -np.inf)
    m = np.max(np.where(vis, logits, -1e300), axis=-1, keepdims=True)
    e = np.where(vis, np.exp(logits - m), 0.0)
    z = e.sum(-1, keepdims=True)
    p = np.divide(e, z, out=np.zeros_like(e), where=z > 0)
    return p @ v, p, k, v, sc


def ref_backward(q, k, v, g, scale=None, bias=None, **mask_opts):
    out, p, kk, vv, sc = ref_forward(q, k, v, scale, bias, **mask_opts)
    g = g.astype(np.float64)
    dv = p.transpose(0, 1, 3, 2) @ g
    dp = g @ vv.transpose(0, 1, 3, 2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    dq = sc * ds @ kk
    dk = sc * ds.transpose(0, 1, 3, 2) @ q.astype(np.float64)
    H, Hkv = q.shape[1], k.shape[1]
    B, S = k.shape[0], k.shape[2]
    dk = dk.reshape(B, Hkv, H // Hkv, S, -1).sum(2)
    dv = dv.reshape(B, Hkv, H // Hkv, S, -1).sum(2)
    return dq, dk, dv, ds


CASES = [
    dict(),
    dict(causal=True),
    dict(causal=True, scale=0.3),
    dict(window=3),
    dict(causal=True, window=2),
    dict(key_lengths=[5, 2]),
]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("opts", CASES)
def test_forward_matches_reference(fused, opts):
    q, k, v = rand((2, 4, 6, 8), 1), rand((2, 2, 7, 8), 2), rand((2, 2, 7, 5), 3)  # GQA, T < S
    fn = attn.flash_sdpa if fused else attn.sdpa
    out = fn(q, k, v, **opts)
    want = ref_forward(q, k, v, **opts)[0]
    assert out.shape == (2, 4, 6, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, want, atol=FWD_TOL, rtol=0)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("opts", CASES)
def test_backward_matches_reference(fused, opts):
    q, k, v = rand((2, 4, 6, 8), 4), rand((2, 2, 7, 8), 5), rand((2, 2, 7, 5), 6)
    g = rand((2, 4, 6, 5), 7)
    fn = attn.flash_sdpa_backward if fused else attn.sdpa_backward
    dq, dk, dv, out = fn(q, k, v, g, return_out=True, **opts)
    rq, rk, rv, _ = ref_backward(q, k, v, g, **opts)
    for got, want in ((dq, rq), (dk, rk), (dv, rv)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=BWD_TOL, rtol=0)
    np.testing.assert_allclose(out, ref_forward(q, k, v, **opts)[0], atol=FWD_TOL, rtol=0)


def test_reference_backward_is_the_derivative():
    """The numpy backward used above against central differences of the
    float64 forward, so the comparison cannot pass with a wrong reference."""
    q, k, v = (rand((1, 2, 3, 4), s).astype(np.float64) for s in (8, 9, 10))
    g = rand((1, 2, 3, 4), 11).astype(np.float64)
    dq, dk, dv, _ = ref_backward(q, k, v, g, causal=True)
    eps = 1e-6
    for x, d in ((q, dq), (k, dk), (v, dv)):
        for idx in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 1, 1, 2)]:
            xp, xm = x.copy(), x.copy()
            xp[idx] += eps
            xm[idx] -= eps
            args = lambda y: [y if x is z else z for z in (q, k, v)]  # noqa: E731
            fp = (ref_forward(*args(xp), causal=True)[0] * g).sum()
            fm = (ref_forward(*args(xm), causal=True)[0] * g).sum()
            assert abs((fp - fm) / (2 * eps) - d[idx]) < 1e-6


@pytest.mark.parametrize("fused", [False, True])
def test_masks_bias_and_its_gradient(fused):
    q, k, v = rand((2, 2, 5, 4), 12), rand((2, 2, 5, 4), 13), rand((2, 2, 5, 4), 14)
    g = rand((2, 2, 5, 4), 15)
    boolmask = np.random.default_rng(16).random((2, 1, 5, 5)) > 0.3
    boolmask[..., 0] = True
    fwd = attn.flash_sdpa if fused else attn.sdpa
    bwd = attn.flash_sdpa_backward if fused else attn.sdpa_backward
    np.testing.assert_allclose(fwd(q, k, v, boolmask), ref_forward(q, k, v, mask=boolmask)[0],
                               atol=FWD_TOL, rtol=0)
    bias = rand((1, 2, 5, 5), 17)  # broadcast over the batch: its gradient sums over it
    dq, dk, dv, db = bwd(q, k, v, g, bias=bias, bias_grad=True)
    rq, rk, rv, ds = ref_backward(q, k, v, g, bias=bias)
    np.testing.assert_allclose(dq, rq, atol=BWD_TOL, rtol=0)
    np.testing.assert_allclose(db, ds.sum(0, keepdims=True), atol=BWD_TOL, rtol=0)


def test_weights_and_three_dimensional_inputs():
    q, k, v = rand((3, 6, 4), 18), rand((3, 6, 4), 19), rand((3, 6, 4), 20)
    out, w = attn.sdpa(q, k, v, causal=True, return_weights=True)
    out2, w2 = attn.flash_sdpa(q, k, v, causal=True, return_weights=True)
    assert out.shape == (3, 6, 4) and w.shape == (3, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.triu(w[0], 1) == 0)
    np.testing.assert_allclose(w2, w, atol=1e-6)
    np.testing.assert_allclose(out, ref_forward(q[:, None], k[:, None], v[:, None], causal=True)[0][:, 0],
                               atol=FWD_TOL)


def test_alibi_in_kernel_equals_alibi_bias():
    q, k, v = rand((1, 4, 6, 8), 21), rand((1, 4, 6, 8), 22), rand((1, 4, 6, 8), 23)
    a = attn.flash_sdpa(q, k, v, causal=True, alibi_slopes=attn.alibi_slopes(4))
    b = attn.sdpa(q, k, v, bias=attn.alibi_bias(4, 6, causal=True))
    np.testing.assert_allclose(a, b, atol=FWD_TOL)


def test_dropout_is_a_function_of_the_seed():
    q, k, v = rand((1, 2, 8, 4), 24), rand((1, 2, 8, 4), 25), rand((1, 2, 8, 4), 26)
    a = attn.flash_sdpa(q, k, v, dropout=0.5, seed=7)
    b = attn.flash_sdpa(q, k, v, dropout=0.5, seed=7)
    c = attn.flash_sdpa(q, k, v, dropout=0.5, seed=8)
    r = attn.sdpa(q, k, v, dropout=0.5, seed=7)  # the same mask in both ops
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(a, r, atol=FWD_TOL)
    # the backward recomputes the same mask: its output is the forward's
    _, _, _, out = attn.flash_sdpa_backward(q, k, v, np.ones_like(a), dropout=0.5, seed=7,
                                            return_out=True)
    np.testing.assert_array_equal(out, a)


def test_row_with_no_visible_key_is_zero():
    q, k, v = rand((1, 1, 3, 4), 27), rand((1, 1, 3, 4), 28), rand((1, 1, 3, 4), 29)
    mask = np.ones((1, 1, 3, 3), dtype=bool)
    mask[0, 0, 1] = False
    for fn in (attn.sdpa, attn.flash_sdpa):
        out = fn(q, k, v, mask)
        assert np.all(out[0, 0, 1] == 0) and np.all(np.isfinite(out))


def test_inputs_are_read_in_place():
    """The C layer takes C-contiguous float32 buffers as they are and refuses
    anything else (the Python layer's one conversion is the only copy)."""
    q = rand((1, 1, 4, 4), 30)
    out = np.empty_like(q)
    _attn.sdpa(q, q, q, out)
    with pytest.raises(TypeError, match="C-contiguous"):
        _attn.sdpa(q.transpose(0, 1, 3, 2), q, q, out)
    with pytest.raises(TypeError, match="float32"):
        _attn.sdpa(q.astype(np.float64), q, q, out)
    with pytest.raises(TypeError, match="writable"):
        ro = np.empty_like(q)
        ro.flags.writeable = False
        _attn.sdpa(q, q, q, ro)
    # a strided view in the Python layer is converted, with the same result
    x = rand((1, 1, 4, 8), 31)
    np.testing.assert_allclose(attn.sdpa(x[..., ::2], x[..., ::2], x[..., ::2]),
                               attn.sdpa(*(np.ascontiguousarray(x[..., ::2]),) * 3), atol=0)


def test_errors_name_the_op_and_the_shapes():
    q, k, v = rand((1, 2, 3, 4), 32), rand((1, 2, 3, 5), 33), rand((1, 2, 3, 4), 34)
    with pytest.raises(attn.AttnError, match="sdpa"):
        attn.sdpa(q, k, v)
    with pytest.raises(attn.AttnError, match="flash_sdpa"):
        attn.flash_sdpa(q, k, v)
    with pytest.raises(attn.AttnError):
        attn.flash_sdpa(q, q, q, dropout=1.5)
    with pytest.raises(attn.AttnError):
        attn.sdpa(q, q, q, key_lengths=[9])
    for bad in (dict(window=-1), dict(scale=-1.0), dict(scale=float("nan")), dict(dropout=-0.1),
                dict(alibi_slopes=[1.0]), dict(key_lengths=[-1])):
        for fn in (attn.sdpa, attn.flash_sdpa):
            with pytest.raises(attn.AttnError):
                fn(q, q, q, **bad)
        with pytest.raises(attn.AttnError):
            attn.flash_sdpa_backward(q, q, q, q, **bad)
    with pytest.raises(attn.AttnError):
        attn.sdpa(q, q, q, mask=np.ones((3, 3, 3, 3), dtype=bool))  # does not broadcast
    with pytest.raises(ValueError, match="grad_out"):  # the right size, not the right shape
        attn.flash_sdpa_backward(q, q, q, q.reshape(1, 2, 4, 3))
    with pytest.raises(ValueError, match="dimensions|shape"):
        attn.sdpa(q[0, 0], q[0, 0], q[0, 0])
    assert issubclass(attn.AttnError, ValueError)


def test_info():
    i = attn.info()
    assert i["version"] == attn.__version__ and i["abi"] == attn.ABI_VERSION


def test_python_threads_run_attention_at_once():
    """The GIL is released while attn computes and every call has its own
    context: threads calling at once get the results of serial calls."""
    import threading
    xs = [rand((1, 2, 64, 16), 40 + i) for i in range(4)]
    want = [attn.flash_sdpa_backward(x, x, x, x, causal=True) for x in xs]
    got = [None] * len(xs)

    def work(i):
        for _ in range(5):
            got[i] = attn.flash_sdpa_backward(xs[i], xs[i], xs[i], xs[i], causal=True)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got):
        for a, b in zip(w, g):
            np.testing.assert_array_equal(a, b)
