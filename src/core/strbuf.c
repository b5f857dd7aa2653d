/* strbuf.c: the one copy of the small helpers every layer shares: the
 * growable string buffer and growable arrays, JSON string escaping, the
 * strict UTF-8 decoder, encoder and validator, and the "C" numeric locale
 * helper (SVG, JSON records, safetensors headers, the BLEU tokenizer, the
 * text data sets). Contracts: src/core/internal.h. */
#include <locale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int attn__sb_reserve(attn__strbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (extra > SIZE_MAX - 1 - b->len) { /* len + extra + 1 would wrap */
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    /* Doubling keeps appends amortised O(1); near SIZE_MAX take what is
     * needed instead of overflowing the doubling. */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int attn__sb_put(attn__strbuf *b, const void *s, size_t n) {
    if (attn__sb_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

void attn__sb_putc(attn__strbuf *b, char c) { attn__sb_put(b, &c, 1); }

void attn__sb_puts(attn__strbuf *b, const char *s) { attn__sb_put(b, s, strlen(s)); }

void attn__sb_printf(attn__strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    /* Short pieces (the usual case) are formatted once, on the stack; a
     * longer one is formatted again straight into the reserved space. */
    char tmp[256];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1; /* nothing sensible can be appended: mark the text incomplete */
    } else if ((size_t)n < sizeof tmp) {
        attn__sb_put(b, tmp, (size_t)n);
    } else if (attn__sb_reserve(b, (size_t)n) == 0) {
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void attn__sb_free(attn__strbuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

int attn__utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    int len = 0;
    uint32_t v = 0;
    /* Allowed range of the second byte: narrowed for E0 (overlongs), ED
     * (surrogates), F0 (overlongs) and F4 (above U+10FFFF). */
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    }
    if (!len || (size_t)len > n - i) return 0;
    for (int j = 1; j < len; j++) {
        unsigned d = s[i + (size_t)j];
        if (d < (j == 1 ? lo : 0x80u) || d > (j == 1 ? hi : 0xBFu)) return 0;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    return len;
}

void attn__sb_json_string(attn__strbuf *b, const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    attn__sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"') attn__sb_puts(b, "\\\"");
        else if (c == '\\') attn__sb_puts(b, "\\\\");
        else if (c == '\b') attn__sb_puts(b, "\\b");
        else if (c == '\f') attn__sb_puts(b, "\\f");
        else if (c == '\n') attn__sb_puts(b, "\\n");
        else if (c == '\r') attn__sb_puts(b, "\\r");
        else if (c == '\t') attn__sb_puts(b, "\\t");
        else if (c < 0x20) attn__sb_printf(b, "\\u%04x", c);
        else {
            uint32_t cp;
            size_t len = (size_t)attn__utf8_next(s, n, i, &cp);
            if (len == 0) {
                attn__sb_puts(b, "\\ufffd");
                i++;
                continue;
            }
            attn__sb_put(b, (const char *)s + i, len);
            i += len;
            continue;
        }
        i++;
    }
    attn__sb_put(b, "\"", 1);
}

int attn__utf8_encode(int32_t cp, char *out) {
    uint32_t v = (uint32_t)cp;
    if (cp < 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if (v < 0x80) {
        out[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (char)(0xC0 | v >> 6);
        out[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | v >> 12);
        out[1] = (char)(0x80 | (v >> 6 & 0x3F));
        out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | v >> 18);
    out[1] = (char)(0x80 | (v >> 12 & 0x3F));
    out[2] = (char)(0x80 | (v >> 6 & 0x3F));
    out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

int attn__utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
    uint32_t v;
    int len = attn__utf8_next(s, n, 0, &v);
    *cp = len ? (int32_t)v : -1;
    return len ? len : 1;
}

size_t attn__utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = attn__utf8_next(s, n, i, &cp);
        if (!k) return i;
        i += (size_t)k;
    }
    return n;
}

int attn__utf8_valid(const char *s, size_t n) {
    return attn__utf8_check((const unsigned char *)s, n) == n;
}

int attn__grow(void **items, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2) return -1;
        c *= 2;
    }
    if (elem && c > SIZE_MAX / elem) return -1;
    void *p = realloc(*items, c * elem);
    if (!p) return -1;
    *items = p;
    *cap = c;
    return 0;
}

attn__c_locale attn__c_locale_begin(void) {
    attn__c_locale l;
    l.c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    l.old = l.c ? uselocale(l.c) : (locale_t)0;
    return l;
}

void attn__c_locale_end(attn__c_locale l) {
    if (!l.c) return;
    uselocale(l.old);
    freelocale(l.c);
}
