/* word2vec_io.c: word vectors in files (include/attn/word2vec.h): the
 * classic text format of word2vec.c / gensim, and safetensors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic_file_internal.h"
#include "../io/safetensors_internal.h"
#include "word2vec_internal.h"

static attn_status save_text(const attn_w2v *m, const char *path) {
    const char *fn = "attn_w2v_save";
    attn__atomic_file f;
    attn_status st = attn__atomic_open(&f, fn, path);
    if (st) return st;
    attn__c_locale loc = attn__c_locale_begin();
    fprintf(f.fp, "%lld %d\n", (long long)m->V, m->D);
    for (int64_t i = 0; i < m->V; i++) {
        fputs(m->words[i], f.fp);
        const float *v = m->in + (size_t)i * (size_t)m->D;
        for (int d = 0; d < m->D; d++) fprintf(f.fp, " %.9g", (double)v[d]);
        fputc('\n', f.fp);
    }
    attn__c_locale_end(loc);
    return attn__atomic_commit(&f);
}

static attn_status save_st(const attn_w2v *m, const char *path) {
    const char *fn = "attn_w2v_save";
    attn__strbuf words = {0}, counts = {0};
    for (int64_t i = 0; i < m->V; i++) {
        if (i) {
            attn__sb_putc(&words, '\n');
            attn__sb_putc(&counts, ' ');
        }
        attn__sb_puts(&words, m->words[i]);
        attn__sb_printf(&counts, "%lld", (long long)m->counts[i]);
    }
    if (words.oom || counts.oom) {
        attn__sb_free(&words);
        attn__sb_free(&counts);
        return attn__error(ATTN_ERR_OOM, "%s: out of memory for the vocabulary of %lld words", fn, (long long)m->V);
    }
    char dim[32];
    snprintf(dim, sizeof dim, "%d", m->D);
    const attn_kv meta[] = {{"format", "attn-word2vec"}, {"version", "1"}, {"dim", dim},
                            {"words", words.p}, {"counts", counts.p}};
    const int64_t shape[2] = {m->V, m->D};
    const attn__st_out t = {"vectors", 2, shape, m->in, m->V * (int64_t)m->D};
    attn_status st = attn__st_write(fn, path, &t, 1, meta, 5);
    attn__sb_free(&words);
    attn__sb_free(&counts);
    return st;
}

attn_status attn_w2v_save(const attn_w2v *m, const char *path, attn_w2v_format format) {
    const char *fn = "attn_w2v_save";
    if (!m || !path || !m->in) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL model or path", fn);
    for (int64_t i = 0; i < m->V; i++)
        for (const char *p = m->words[i]; *p; p++)
            if (*p == ' ' || *p == '\n' || *p == '\t')
                return attn__error(ATTN_ERR_INVALID_ARG, "%s: word %lld contains whitespace", fn, (long long)i);
    if (format == ATTN_W2V_TEXT) return save_text(m, path);
    if (format == ATTN_W2V_SAFETENSORS) return save_st(m, path);
    return attn__error(ATTN_ERR_INVALID_ARG, "%s: format %d (expected ATTN_W2V_TEXT or ATTN_W2V_SAFETENSORS)", fn,
                       (int)format);
}

/* ---- load --------------------------------------------------------------------------------- */

static attn_status load_st(attn_w2v **out, const char *path) {
    const char *fn = "attn_w2v_load";
    attn_safetensors *f;
    attn_status st = attn_safetensors_open(&f, path);
    if (st) return st;
    const char *fmt = attn_safetensors_metadata(f, "format");
    const char *words = attn_safetensors_metadata(f, "words");
    const char *counts = attn_safetensors_metadata(f, "counts");
    const attn_st_tensor *t = attn_safetensors_find(f, "vectors");
    attn_w2v *m = NULL;
    if (!fmt || strcmp(fmt, "attn-word2vec") != 0 || !words || !counts || !t || t->ndim != 2 || t->shape[0] < 1 ||
        t->shape[1] < 1 || t->shape[1] > ATTN_W2V_MAX_DIM || attn_safetensors_count(f) != 1) {
        st = attn__error(ATTN_ERR_FORMAT, "%s: %s is not an attn-word2vec file (expected metadata format, words, "
                                          "counts and one tensor 'vectors' [V, D], D <= %d)", fn, path,
                         ATTN_W2V_MAX_DIM);
        goto fail;
    }
    if ((st = attn__w2v_alloc(&m, t->shape[0], (int)t->shape[1], fn))) goto fail;
    if ((st = attn_safetensors_read_f32(t, m->in))) goto fail;
    const char *p = words, *q = counts;
    for (int64_t i = 0; i < m->V; i++) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n > ATTN_W2V_MAX_WORD || (i + 1 < m->V) != (e != NULL)) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: word %lld of the 'words' metadata is empty, too long, or the "
                                              "list does not hold %lld words", fn, path, (long long)i,
                             (long long)m->V);
            goto fail;
        }
        if (!(m->words[i] = malloc(n + 1))) {
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
            goto fail;
        }
        memcpy(m->words[i], p, n);
        m->words[i][n] = '\0';
        p = e ? e + 1 : p + n;
        char *end;
        errno = 0;
        long long c = strtoll(q, &end, 10);
        if (end == q || errno || c < 0 || (*end != ' ' && *end != '\0') || ((i + 1 < m->V) != (*end == ' '))) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: count %lld of the 'counts' metadata is bad or the list does "
                                              "not hold %lld counts", fn, path, (long long)i, (long long)m->V);
            goto fail;
        }
        m->counts[i] = c;
        m->train_words += c;
        q = *end ? end + 1 : end;
    }
    for (int64_t i = 0; i < m->V * (int64_t)m->D; i++)
        if (!isfinite(m->in[i])) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s: the vector of '%s' is not finite", fn, path,
                             m->words[i / m->D]);
            goto fail;
        }
    if ((st = attn__w2v_index(m, fn))) goto fail;
    attn_safetensors_close(f);
    *out = m;
    return ATTN_OK;
fail:
    attn_w2v_free(m);
    attn_safetensors_close(f);
    return st;
}

/* The next whitespace-separated field of a line: [*b, *e) from *pos. */
static int field(const char *s, size_t n, size_t *pos, size_t *b, size_t *e) {
    size_t i = *pos;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    if (i >= n) return 0;
    *b = i;
    while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r') i++;
    *e = i;
    *pos = i;
    return 1;
}

static attn_status load_text(attn_w2v **out, const char *path, const char *buf, size_t len) {
    const char *fn = "attn_w2v_load";
    size_t pos = 0, b, e, line_end;
    long long line = 1;
    const char *nl = memchr(buf, '\n', len);
    line_end = nl ? (size_t)(nl - buf) : len;
    long long V = 0, D = 0;
    {
        char hdr[64];
        size_t hl = line_end < sizeof hdr - 1 ? line_end : sizeof hdr - 1;
        memcpy(hdr, buf, hl);
        hdr[hl] = '\0';
        int used = 0;
        if (sscanf(hdr, "%lld %lld%n", &V, &D, &used) == 2)
            while (hdr[used] == ' ' || hdr[used] == '\r' || hdr[used] == '\t') used++;
        else
            used = -1;
        if (used != (int)line_end || hl != line_end || V < 1 || D < 1 ||
            D > ATTN_W2V_MAX_DIM || V > ((long long)1 << 31) - 1)
            return attn__error(ATTN_ERR_FORMAT, "%s: %s:1: the header is not \"V D\" (V >= 1 words, 1 <= D <= %d "
                                                "dimensions)", fn, path, ATTN_W2V_MAX_DIM);
    }
    if ((unsigned long long)V > len / (2 * (unsigned long long)D + 1))
        return attn__error(ATTN_ERR_FORMAT, "%s: %s: the header announces %lld words of %lld dimensions, more than "
                                            "the file's %zu bytes can hold", fn, path, V, D, len);
    attn_w2v *m;
    attn_status st = attn__w2v_alloc(&m, V, (int)D, fn);
    if (st) return st;
    attn__c_locale loc = attn__c_locale_begin();
    pos = line_end + 1;
    char num[64];
    for (int64_t i = 0; i < V; i++) {
        line++;
        if (pos >= len) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: the file ends after %lld of %lld words", fn, path, line,
                             (long long)i, V);
            goto fail;
        }
        nl = memchr(buf + pos, '\n', len - pos);
        line_end = nl ? (size_t)(nl - buf) : len;
        size_t p = pos;
        if (!field(buf, line_end, &p, &b, &e) || e - b > ATTN_W2V_MAX_WORD) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: no word, or a word of more than %d bytes", fn, path, line,
                             ATTN_W2V_MAX_WORD);
            goto fail;
        }
        if (!(m->words[i] = malloc(e - b + 1))) {
            st = attn__error(ATTN_ERR_OOM, "%s: out of memory", fn);
            goto fail;
        }
        memcpy(m->words[i], buf + b, e - b);
        m->words[i][e - b] = '\0';
        for (int d = 0; d < D; d++) {
            if (!field(buf, line_end, &p, &b, &e) || e - b >= sizeof num) {
                st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: '%s' has %d values (expected %lld)", fn, path, line,
                                 m->words[i], d, D);
                goto fail;
            }
            memcpy(num, buf + b, e - b);
            num[e - b] = '\0';
            char *end;
            float v = strtof(num, &end);
            if (*end != '\0' || !isfinite(v)) {
                st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: value %d of '%s' is '%s' (expected a finite number)",
                                 fn, path, line, d + 1, m->words[i], num);
                goto fail;
            }
            m->in[(size_t)i * (size_t)D + (size_t)d] = v;
        }
        if (field(buf, line_end, &p, &b, &e)) {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: '%s' has more than %lld values", fn, path, line,
                             m->words[i], D);
            goto fail;
        }
        pos = line_end + 1;
    }
    for (; pos < len; pos++)
        if (buf[pos] != ' ' && buf[pos] != '\n' && buf[pos] != '\r' && buf[pos] != '\t') {
            st = attn__error(ATTN_ERR_FORMAT, "%s: %s:%lld: data after the %lld words the header announces", fn,
                             path, line + 1, V);
            goto fail;
        }
    attn__c_locale_end(loc);
    if ((st = attn__w2v_index(m, fn))) {
        attn_w2v_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
fail:
    attn__c_locale_end(loc);
    attn_w2v_free(m);
    return st;
}

attn_status attn_w2v_load(attn_w2v **out, const char *path) {
    const char *fn = "attn_w2v_load";
    if (!out) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL output", fn);
    *out = NULL;
    if (!path) return attn__error(ATTN_ERR_INVALID_ARG, "%s: NULL path", fn);
    FILE *fp = fopen(path, "rb");
    if (!fp) return attn__error(ATTN_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    unsigned char head[9] = {0};
    size_t got = fread(head, 1, 9, fp);
    /* safetensors: an 8-byte little-endian header size, then '{'. */
    if (got == 9 && head[8] == '{') {
        fclose(fp);
        return load_st(out, path);
    }
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return attn__error(ATTN_ERR_IO, "%s: cannot seek %s", fn, path);
    }
    long sz = ftell(fp);
    if (sz <= 0) {
        fclose(fp);
        return attn__error(sz == 0 ? ATTN_ERR_FORMAT : ATTN_ERR_IO, "%s: %s is empty or unreadable", fn, path);
    }
    char *buf = malloc((size_t)sz);
    rewind(fp);
    if (!buf || fread(buf, 1, (size_t)sz, fp) != (size_t)sz) {
        fclose(fp);
        free(buf);
        return attn__error(buf ? ATTN_ERR_IO : ATTN_ERR_OOM, "%s: cannot read %s", fn, path);
    }
    fclose(fp);
    if (memchr(buf, '\0', (size_t)sz)) {
        free(buf);
        return attn__error(ATTN_ERR_FORMAT, "%s: %s holds a NUL byte (the binary format of word2vec.c is not read; "
                                            "expected the text format or safetensors)", fn, path);
    }
    attn_status st = load_text(out, path, buf, (size_t)sz);
    free(buf);
    return st;
}
