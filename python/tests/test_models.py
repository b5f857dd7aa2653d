"""Models through the Python package: GPT (logits, generation with the KV
cache, text in and out), BERT (encoder, embeddings, classifier), files.
Small random models made here (GPT.new, BERT.new), saved and loaded back."""
import numpy as np
import pytest

import attn

ALPHABET = " abcdefgh"


def write_char_vocab(path, chars=ALPHABET):
    """An attn character vocabulary file (the format of attn_vocab_save)."""
    cps = sorted(ord(c) for c in chars)
    with open(path, "w") as f:
        f.write(f"attn-vocab 1 char {len(cps)} 0\n")
        for cp in cps:
            f.write(f"{cp:X}\n")


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt")
    write_char_vocab(d / "vocab")
    m = attn.GPT.new(vocab=attn.N_SPECIALS + len(ALPHABET), ctx_len=32, n_layers=2, n_heads=2,
                     d_model=16, pos="learned", seed=3)
    m.save(d / "model.safetensors")
    return d, m


def test_gpt_save_load_gives_the_same_logits(gpt_dir):
    d, m = gpt_dir
    ids = np.array([[1, 5, 6, 7, 8], [1, 9, 9, 4, 5]], dtype=np.int32)
    loaded = attn.GPT.load(d)
    assert loaded.config == m.config and loaded.config["n_layers"] == 2
    a, b = m.logits(ids), loaded.logits(ids)
    assert a.shape == (2, 5, attn.N_SPECIALS + len(ALPHABET))
    np.testing.assert_array_equal(a, b)
    # causal: a position's logits do not depend on later tokens
    c = m.logits(np.array([[1, 5, 6, 4, 4]], dtype=np.int32))
    np.testing.assert_allclose(c[0, :3], a[0, :3], atol=1e-5)


def test_gpt_greedy_generation_equals_argmax_of_the_full_forward(gpt_dir):
    """Generation runs with a KV cache; greedy decoding must pick, at each
    step, the arg max of the logits of the whole sequence run without one."""
    _, m = gpt_dir
    prompt = np.array([1, 5, 6], dtype=np.int32)
    new = m.generate(prompt, 10, temperature=0)
    seq = list(prompt)
    for _ in range(10):
        seq.append(int(np.argmax(m.logits(np.array(seq, dtype=np.int32))[-1])))
    assert list(new) == seq[3:]
    # sampling is a function of the seed
    a = m.generate(prompt, 12, temperature=1.0, top_k=5, seed=11)
    b = m.generate(prompt, 12, temperature=1.0, top_k=5, seed=11)
    np.testing.assert_array_equal(a, b)


def test_gpt_text_in_and_out(gpt_dir):
    d, _ = gpt_dir
    m = attn.GPT.load(d)
    v = m.vocab
    assert len(v) == attn.N_SPECIALS + len(ALPHABET)
    assert v.decode(v.encode("bad cafe")) == "bad cafe"
    text = m.generate("abc", 20, temperature=0.8, seed=1)
    assert isinstance(text, str) and len(text) == 20 and set(text) <= set(ALPHABET)


def test_gpt_errors(gpt_dir, tmp_path):
    d, m = gpt_dir
    with pytest.raises(attn.AttnError, match="id"):
        m.logits(np.array([[1, 99]], dtype=np.int32))
    with pytest.raises(ValueError, match="int32"):  # would wrap to the valid id 5
        m.logits(np.array([[1, 2 ** 32 + 5]], dtype=np.int64))
    with pytest.raises(TypeError, match="integers"):
        m.logits(np.array([[1.0, 2.0]]))
    with pytest.raises(attn.AttnError):
        attn.GPT.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(attn.AttnError):
        attn.GPT.load(bad)
    with pytest.raises(ValueError, match="vocabulary"):
        attn.GPT.new(vocab=10, ctx_len=8, n_layers=1, n_heads=1, d_model=8).generate("ab", 3)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bert")
    write_char_vocab(d / "vocab")
    m = attn.BERT.new(vocab=attn.N_SPECIALS + len(ALPHABET) + 1, max_len=16, n_layers=2,
                      n_heads=2, d_model=16, n_classes=3, seed=5)
    m.save(d / "model.safetensors")
    return d, m


def test_bert_padding_does_not_change_the_results(bert_dir):
    d, m = bert_dir
    loaded = attn.BERT.load(d)
    short = np.array([[1, 5, 6, 7]], dtype=np.int32)
    padded = np.array([[1, 5, 6, 7, 0, 0, 0], [1, 8, 9, 10, 11, 12, 4]], dtype=np.int32)
    lengths = np.array([4, 7], dtype=np.int32)
    h1 = loaded.encode(short)
    h2 = loaded.encode(padded, lengths)
    assert h2.shape == (2, 7, 16)
    np.testing.assert_allclose(h2[0, :4], h1[0], atol=1e-5)
    c1, c2 = loaded.classify(short), loaded.classify(padded, lengths)
    assert c2.shape == (2, 3)
    np.testing.assert_allclose(c2[0], c1[0], atol=1e-5)
    np.testing.assert_array_equal(m.classify(padded, lengths), c2)
    assert list(loaded.predict(padded, lengths)) == list(np.argmax(c2, axis=1))


def test_bert_embeddings(bert_dir):
    d, _ = bert_dir
    m = attn.BERT.load(d)
    texts = ["a bad cafe", "head", "a bad cafe"]
    ids, lengths = m.tokenize(texts)
    assert ids[0, 0] == attn.BOS and list(lengths) == [11, 5, 11]
    e = m.embed(texts)
    assert e.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(e[0], e[2], atol=1e-6)
    h = m.encode(ids, lengths)
    mean1 = h[1, :5].mean(0)
    np.testing.assert_allclose(m.embed(ids, lengths, normalize=False)[1], mean1, atol=1e-5)
    np.testing.assert_allclose(m.embed(ids, lengths, pooling="cls", normalize=False)[1], h[1, 0], atol=0)


def test_bert_errors(bert_dir):
    _, m = bert_dir
    with pytest.raises(attn.AttnError):
        m.encode(np.zeros((1, 17), dtype=np.int32))  # longer than max_len
    with pytest.raises(attn.AttnError):
        m.encode(np.ones((1, 4), dtype=np.int32), lengths=[0])
    enc = attn.BERT.new(vocab=20, max_len=8, n_layers=1, n_heads=1, d_model=8, n_classes=0)
    with pytest.raises(attn.AttnError, match="classifier"):
        enc.classify(np.ones((1, 3), dtype=np.int32))
