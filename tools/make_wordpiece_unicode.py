#!/usr/bin/env python3
"""Writes src/data/wordpiece_unicode.c: the Unicode data of the BERT basic
tokenizer (src/data/wordpiece.c, docs/minilm.md).

    /usr/bin/python3 tools/make_wordpiece_unicode.py [--tokenizers] [OUT.c]

From Python's unicodedata, for every code point c (Hangul syllables
excepted: wordpiece.c decomposes them algorithmically), the uncased BERT
normalizer does, per character:
  1. drop c when c is U+0000, U+FFFD or a control character (general
     category Cc, Cf, Cs or Co, but not TAB, LF, CR; unassigned code
     points, Cn, are kept, as Hugging Face's tokenizers keeps them);
  2. turn c into a space when it is whitespace (TAB, LF, CR, category Zs,
     U+2028, U+2029);
  3. make c a word of its own when it is a CJK ideograph (BERT's blocks);
  4. otherwise decompose c canonically (NFD, recursively) and drop the
     nonspacing marks (category Mn) of the result, then lower-case each
     remaining character (str.lower of one character).
A normalised character is punctuation (a word of its own) when it is ASCII
punctuation (33-47, 58-64, 91-96, 123-126) or of category P*.

--tokenizers (development only; PYTHONPATH must reach Hugging Face's
tokenizers): the reference of the parity tests is BertTokenizerFast, whose
Rust tables are of an older Unicode version than Python's, and whose CJK
blocks differ from BERT's (U+2B920, not U+2B820, starts the last one). With
this flag each code point's answer is taken from tokenizers'
BertNormalizer and BertPreTokenizer where it differs from unicodedata's; the
differing code points are counted in the output file (all are characters
assigned in recent Unicode versions, or in U+2B820 .. U+2B91F).

The tables:
  attn__wp_class: sorted ranges [lo, hi] of the classes DROP (1), SPACE (2),
    CJK (4) of the original code point and PUNCT (3) of a normalised one;
    code points in no range are class 0 (KEEP).
  attn__wp_map: sorted code points whose step 4 result is not the code point
    itself, with the result (0 to 3 code points) in attn__wp_pool.
"""
import sys
import unicodedata

args = [a for a in sys.argv[1:] if not a.startswith('--')]
USE_TOK = '--tokenizers' in sys.argv[1:]
OUT = args[0] if args else 'src/data/wordpiece_unicode.c'
MAXCP = 0x110000
KEEP, DROP, SPACE, PUNCT, CJK = 0, 1, 2, 3, 4
CJK_BLOCKS = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def is_hangul(c):
    return 0xAC00 <= c <= 0xD7A3


def is_ascii_punct(c):
    return 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126


def ucd(c):
    """(class, normalised string) of code point c from unicodedata."""
    ch = chr(c)
    cat = unicodedata.category(ch)
    if c in (9, 10, 13) or cat == 'Zs' or c in (0x2028, 0x2029):
        return SPACE, ' '
    if c == 0 or c == 0xFFFD or cat in ('Cc', 'Cf', 'Cs', 'Co'):
        return DROP, ''
    d = unicodedata.normalize('NFD', ch)
    d = ''.join(x for x in d if unicodedata.category(x) != 'Mn')
    d = ''.join(x.lower() for x in d)
    if d == '':
        return DROP, ''  # a nonspacing mark alone
    if any(lo <= c <= hi for lo, hi in CJK_BLOCKS):
        return CJK, d
    if is_ascii_punct(c) or cat.startswith('P'):
        return PUNCT, d
    return KEEP, d


def tok_answer(nz, pt, c):
    """(class, normalised string) of code point c from tokenizers."""
    ch = chr(c)
    n = nz.normalize_str(ch)
    if n == '':
        return DROP, ''
    if n == ' ':
        return SPACE, ' '
    if len(n) >= 3 and n[0] == ' ' and n[-1] == ' ' and ch != ' ':
        return CJK, n[1:-1]
    words = [w for w, _ in pt.pre_tokenize_str('a' + ch + 'b')]
    return (PUNCT if len(words) == 3 else KEEP), n


def main():
    cls = [KEEP] * MAXCP
    maps = []
    n_diff = 0
    if USE_TOK:
        from tokenizers import normalizers, pre_tokenizers
        nz = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                        strip_accents=None, lowercase=True)
        pt = pre_tokenizers.BertPreTokenizer()
    for c in range(MAXCP):
        if 0xD800 <= c <= 0xDFFF:
            k, n = DROP, ''
        else:
            k, n = ucd(c)
            if USE_TOK:
                t = tok_answer(nz, pt, c)
                if t != (k, n) and not is_hangul(c):
                    n_diff += 1
                    k, n = t
        # PUNCT is read for normalised characters, the other classes for
        # original ones: a punctuation code point that normalises to
        # something else (U+037E -> ';') gets its mapping, whose characters
        # have classes of their own.
        if k in (KEEP, PUNCT, CJK) and not is_hangul(c) and n != chr(c):
            if len(n) > 3:
                sys.exit('U+%04X normalises to %d characters' % (c, len(n)))
            maps.append((c, [ord(x) for x in n]))
        cls[c] = k
    ranges = []
    c = 0
    while c < MAXCP:
        k = cls[c]
        e = c
        while e + 1 < MAXCP and cls[e + 1] == k:
            e += 1
        if k:
            ranges.append((c, e, k))
        c = e + 1
    src = ('Python %s unicodedata (Unicode %s)' % (sys.version.split()[0], unicodedata.unidata_version))
    if USE_TOK:
        import tokenizers
        src += (',\n * with the answers of tokenizers %s for %d code points where they differ'
                % (tokenizers.__version__, n_diff))
    with open(OUT, 'w') as f:
        f.write('/* wordpiece_unicode.c: generated by tools/make_wordpiece_unicode.py%s from\n'
                % (' --tokenizers' if USE_TOK else ''))
        f.write(' * %s;\n' % src)
        f.write(' * do not edit. The tables of the BERT basic tokenizer (src/data/wordpiece.c,\n')
        f.write(' * docs/minilm.md). */\n')
        f.write('#include "wordpiece_internal.h"\n\n')
        f.write('const char attn__wp_unicode_version[] = "%s%s";\n\n'
                % (unicodedata.unidata_version, ' (tokenizers)' if USE_TOK else ''))
        f.write('const int attn__wp_n_class = %d;\n' % len(ranges))
        f.write('const attn__wp_range attn__wp_class[%d] = {\n' % len(ranges))
        for i in range(0, len(ranges), 4):
            f.write('   ' + ''.join(' {0x%X, 0x%X, %d},' % r for r in ranges[i:i + 4]) + '\n')
        f.write('};\n\n')
        pool = []
        rows = []
        for c, out in maps:
            rows.append((c, len(pool), len(out)))
            pool.extend(out)
        f.write('const int attn__wp_n_map = %d;\n' % len(rows))
        f.write('const attn__wp_mapping attn__wp_map[%d] = {\n' % len(rows))
        for i in range(0, len(rows), 4):
            f.write('   ' + ''.join(' {0x%X, %d, %d},' % r for r in rows[i:i + 4]) + '\n')
        f.write('};\n\n')
        f.write('const uint32_t attn__wp_pool[%d] = {\n' % max(1, len(pool)))
        for i in range(0, len(pool), 10):
            f.write('   ' + ''.join(' 0x%X,' % x for x in pool[i:i + 10]) + '\n')
        if not pool:
            f.write('    0\n')
        f.write('};\n')
    print('%s: %d class ranges, %d mappings, %d pool entries (Unicode %s)%s'
          % (OUT, len(ranges), len(rows), len(pool), unicodedata.unidata_version,
             ', %d code points from tokenizers' % n_diff if USE_TOK else ''))


main()
