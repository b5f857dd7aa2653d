/* fuzz_vocab: attn_vocab_load (character and BPE vocabularies) on arbitrary
 * bytes; a vocabulary that loads is used: every piece and merge is looked
 * up, and a fixed text and the input itself (up to 4 KiB) are encoded and
 * decoded. (Saving is not fuzzed: attn_vocab_save writes through a
 * temporary file and a rename, which the in-memory file cannot take.) */
#include "fuzz_common.h"

static void use(const attn_vocab *v, const char *text, size_t len) {
    size_t n = 0;
    if (attn_vocab_encode(v, text, len, NULL, 0, &n) != ATTN_OK) fz_fail("encode: length query");
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return;
    size_t n2 = 0;
    if (attn_vocab_encode(v, text, len, ids, n, &n2) != ATTN_OK || n2 != n) fz_fail("encode");
    size_t tl = 0;
    if (attn_vocab_decode(v, ids, n, NULL, 0, &tl) != ATTN_OK) fz_fail("decode: length query");
    char *out = malloc(tl + 1);
    if (out) {
        size_t tl2 = 0;
        if (attn_vocab_decode(v, ids, n, out, tl + 1, &tl2) != ATTN_OK || tl2 != tl) fz_fail("decode");
        free(out);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(0, data, size);
    attn_vocab *v = NULL;
    if (attn_vocab_load(path, &v) != ATTN_OK) {
        if (v) fz_fail("*out not NULL after an error");
        return 0;
    }
    const int n = attn_vocab_size(v);
    if (n < ATTN_TOKEN_SPECIALS) fz_fail("fewer ids than the specials");
    for (int32_t id = 0; id < n; id++) {
        const char *p = attn_vocab_piece(v, id);
        if (!p) fz_fail("no piece for an id in range");
        (void)attn_vocab_find(v, p);
    }
    for (int r = 0; r < attn_bpe_merge_count(v); r++) {
        int32_t l, rr;
        if (attn_bpe_merge(v, r, &l, &rr) != ATTN_OK) fz_fail("bpe_merge in range");
    }
    static const char sample[] = "Open the file. Über 42 \xe2\x80\x99quoted\xe2\x80\x99 words!";
    use(v, sample, sizeof sample - 1);
    use(v, (const char *)data, size < 4096 ? size : 4096);
    attn_vocab_free(v);
    return 0;
}
