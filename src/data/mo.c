/* mo.c: the strict reader of GNU gettext .mo catalogs (include/attn/text.h).
 *
 * The whole file is copied into one block; entries point into the copy, in
 * which the context separator 0x04 and the singular/plural NUL already end
 * C strings (the file's own NUL ends each table string). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/internal.h"
#include "text_internal.h"
#include "attn/text.h"

#define MO_MAGIC 0x950412deu
#define MO_HEADER_BYTES 28

static uint32_t rd32(const unsigned char *p, int big_endian) {
    if (big_endian)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

void attn_mo_free(attn_mo *mo) {
    if (!mo) return;
    free(mo->entries);
    free(mo->storage_);
    memset(mo, 0, sizeof *mo);
    mo->header = "";
}

/* Checks that table `which` (N pairs at `off`) lies in the file. */
static attn_status check_table(const char *name, const char *which, uint64_t off, uint64_t n,
                               uint64_t size) {
    if (off > size || n * 8 > size - off)
        return attn__error(ATTN_ERR_FORMAT,
                           "mo: %s: the %s table (%llu entries at offset %llu) ends past the end "
                           "of the file (%llu bytes)",
                           name, which, (unsigned long long)n, (unsigned long long)off,
                           (unsigned long long)size);
    return ATTN_OK;
}

/* Locates string i of a table; checks it and its NUL lie in the file. */
static attn_status table_string(const char *name, const char *which, const unsigned char *data,
                                uint64_t size, uint32_t table, int64_t i, int be, uint32_t *len,
                                uint32_t *off) {
    const unsigned char *p = data + table + 8 * (uint64_t)i;
    *len = rd32(p, be);
    *off = rd32(p + 4, be);
    if ((uint64_t)*off + *len + 1 > size)
        return attn__error(ATTN_ERR_FORMAT,
                           "mo: %s: %s string %lld (%u bytes at offset %u) and its NUL end past "
                           "the end of the file (%llu bytes)",
                           name, which, (long long)i, *len, *off, (unsigned long long)size);
    if (data[*off + *len] != 0)
        return attn__error(ATTN_ERR_FORMAT,
                           "mo: %s: %s string %lld (%u bytes at offset %u) is not followed by a "
                           "NUL",
                           name, which, (long long)i, *len, *off);
    return ATTN_OK;
}

/* Reads "charset=" from the header into cs (cap bytes); "UTF-8" if absent. */
static void header_charset(const char *header, char *cs, size_t cap) {
    const char *p = strstr(header, "charset=");
    snprintf(cs, cap, "UTF-8");
    if (!p) return;
    p += 8;
    size_t n = 0;
    while (p[n] && p[n] != '\n' && p[n] != ';' && p[n] != ' ' && n + 1 < cap) n++;
    if (n == 0) return;
    memcpy(cs, p, n);
    cs[n] = '\0';
}

attn_status attn_mo_parse(const void *bytes, size_t size, const char *name, attn_mo *out) {
    if (out) {
        memset(out, 0, sizeof *out);
        out->header = "";
    }
    if (!bytes || !out) return attn__error(ATTN_ERR_INVALID_ARG, "mo: NULL bytes or out");
    if (!name) name = "(memory)";
    const unsigned char *src = bytes;
    if (size < MO_HEADER_BYTES)
        return attn__error(ATTN_ERR_FORMAT,
                           "mo: %s: %zu bytes, shorter than the %d-byte header of a .mo file", name,
                           size, MO_HEADER_BYTES);
    int be;
    if (rd32(src, 0) == MO_MAGIC)
        be = 0;
    else if (rd32(src, 1) == MO_MAGIC)
        be = 1;
    else
        return attn__error(ATTN_ERR_FORMAT,
                           "mo: %s: bad magic %02x %02x %02x %02x: a .mo file starts with "
                           "0x950412de (de 12 04 95 little-endian, 95 04 12 de big-endian)",
                           name, src[0], src[1], src[2], src[3]);
    const uint32_t revision = rd32(src + 4, be);
    if (revision >> 16 > 1)
        return attn__error(ATTN_ERR_FORMAT,
                           "mo: %s: format revision %u.%u: only major revisions 0 and 1 exist",
                           name, revision >> 16, revision & 0xffff);
    const uint64_t n = rd32(src + 8, be);
    const uint32_t ids = rd32(src + 12, be), strs = rd32(src + 16, be);
    attn_status st = check_table(name, "msgid", ids, n, size);
    if (st == ATTN_OK) st = check_table(name, "msgstr", strs, n, size);
    if (st != ATTN_OK) return st;

    char *storage = malloc(size);
    attn_mo_entry *entries = n ? calloc((size_t)n, sizeof *entries) : NULL;
    if (!storage || (n && !entries)) {
        free(storage);
        free(entries);
        return attn__error(ATTN_ERR_OOM, "mo: %s: cannot allocate %zu bytes for %llu messages",
                           name, size, (unsigned long long)n);
    }
    memcpy(storage, src, size);
    const char *header = "";
    int64_t count = 0;
    for (int64_t i = 0; i < (int64_t)n; i++) {
        uint32_t id_len, id_off, str_len, str_off;
        st = table_string(name, "msgid", src, size, ids, i, be, &id_len, &id_off);
        if (st == ATTN_OK)
            st = table_string(name, "msgstr", src, size, strs, i, be, &str_len, &str_off);
        if (st != ATTN_OK) break;
        /* Separators are searched in the original bytes: two entries may
         * share a string, and the copy is being modified. */
        const char *id = (const char *)src + id_off, *str = (const char *)src + str_off;
        /* At most one context mark (0x04) and at most one NUL (singular /
         * plural) in a msgid, the mark first. */
        const char *ctx_mark = memchr(id, 0x04, id_len);
        const char *nul = memchr(id, 0, id_len);
        if (ctx_mark && memchr(ctx_mark + 1, 0x04, id_len - (size_t)(ctx_mark + 1 - id))) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "mo: %s: msgid %lld has more than one context separator 0x04", name,
                             (long long)i);
            break;
        }
        if (nul && memchr(nul + 1, 0, id_len - (size_t)(nul + 1 - id))) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "mo: %s: msgid %lld has more than one NUL (one separates singular "
                             "and plural)",
                             name, (long long)i);
            break;
        }
        if (ctx_mark && nul && ctx_mark > nul) {
            st = attn__error(ATTN_ERR_FORMAT,
                             "mo: %s: msgid %lld has its context separator inside the plural form",
                             name, (long long)i);
            break;
        }
        if (id_len == 0) {
            if (i != 0) {
                st = attn__error(ATTN_ERR_FORMAT,
                                 "mo: %s: msgid %lld is empty: only entry 0 (the header) may be",
                                 name, (long long)i);
                break;
            }
            header = storage + str_off;
            continue;
        }
        attn_mo_entry *e = &entries[count++];
        if (ctx_mark) {
            const size_t k = (size_t)(ctx_mark - id);
            storage[id_off + k] = '\0';
            e->context = storage + id_off;
            e->msgid = storage + id_off + k + 1;
        } else {
            e->msgid = storage + id_off;
        }
        e->msgid_plural = nul ? storage + id_off + (size_t)(nul - id) + 1 : NULL;
        e->msgstr = storage + str_off;
        e->n_forms = 1;
        for (uint32_t k = 0; k < str_len; k++) e->n_forms += str[k] == '\0';
    }
    if (st != ATTN_OK) {
        free(storage);
        free(entries);
        return st;
    }
    out->n = count;
    out->entries = entries;
    out->header = header;
    out->big_endian = be;
    out->revision = revision;
    out->storage_ = storage;
    header_charset(header, out->charset, sizeof out->charset);
    return ATTN_OK;
}

attn_status attn_mo_load(const char *path, attn_mo *out) {
    if (out) {
        memset(out, 0, sizeof *out);
        out->header = "";
    }
    if (!path || !out) return attn__error(ATTN_ERR_INVALID_ARG, "mo: NULL path or out");
    FILE *f = fopen(path, "rb");
    if (!f) return attn__error(ATTN_ERR_IO, "mo: cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return attn__error(ATTN_ERR_IO, "mo: %s is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return attn__error(ATTN_ERR_OOM, "mo: cannot allocate %zu bytes for %s", size, path);
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != size || err) {
        free(buf);
        return attn__error(ATTN_ERR_IO, "mo: cannot read %s (%zu of %zu bytes)", path, got, size);
    }
    attn_status st = attn_mo_parse(buf, size, path, out);
    free(buf);
    return st;
}
