/* fuzz_wordpiece: the WordPiece tokenizer on arbitrary bytes. The input is
 * one options byte (max_len = 2 + the byte), then a vocab.txt up to the
 * first NUL byte and the text after it (no NUL: the whole body is both).
 * When the vocabulary is rejected, the text is encoded with a fixed one.
 * Invariants: at most max_len ids, [CLS] first and [SEP] last, every id in
 * range, the piece count consistent with truncation; the basic tokenizer's
 * words are NUL-separated and their count matches its report. */
#include "fuzz_common.h"

static attn_wordpiece *fixed;
static char msg[512];
#define FAIL(...) (snprintf(msg, sizeof msg, __VA_ARGS__), fz_fail(msg))

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static const char v[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\n##b\n##a\nab\n\xe4\xb8\xad\n,\n";
    if (attn_wordpiece_from_text(v, sizeof v - 1, &fixed) != ATTN_OK) FAIL("fixed vocabulary");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int32_t max_len = 2 + data[0];
    const char *body = (const char *)data + 1;
    const size_t n = size - 1;
    const char *nul = memchr(body, 0, n);
    const size_t vn = nul ? (size_t)(nul - body) : n;
    const char *text = nul ? nul + 1 : body;
    const size_t tn = nul ? n - vn - 1 : n;
    attn_wordpiece *wp = NULL;
    if (attn_wordpiece_from_text(body, vn, &wp) != ATTN_OK) wp = NULL;
    const attn_wordpiece *use = wp ? wp : fixed;
    int32_t ids[260], n_ids = -1;
    int64_t pieces = -1;
    if (attn_wordpiece_encode(use, text, tn, max_len, ids, &n_ids, &pieces) != ATTN_OK)
        FAIL("encode failed: %s", attn_last_error());
    if (n_ids < 2 || n_ids > max_len || ids[0] != attn_wordpiece_cls_id(use) ||
        ids[n_ids - 1] != attn_wordpiece_sep_id(use))
        FAIL("encode: %d ids for max_len %d", n_ids, max_len);
    if (pieces < n_ids - 2 || (pieces > n_ids - 2 && n_ids != max_len))
        FAIL("encode: %lld pieces, %d ids, max_len %d", (long long)pieces, n_ids, max_len);
    for (int32_t k = 0; k < n_ids; k++)
        if (ids[k] < 0 || ids[k] >= attn_wordpiece_size(use)) FAIL("id %d out of range", ids[k]);
    int64_t words = 0;
    size_t need = 0;
    attn_status st = attn_wordpiece_basic(text, tn, NULL, 0, &words, &need);
    if (st != ATTN_OK && st != ATTN_ERR_SHAPE) FAIL("basic: %s", attn_last_error());
    char *out = malloc(need + 1);
    if (out) {
        int64_t w2 = 0;
        size_t used = 0;
        if (attn_wordpiece_basic(text, tn, out, need, &w2, &used) != ATTN_OK || w2 != words || used != need)
            FAIL("basic: %lld words in %zu bytes, then %lld in %zu", (long long)words, need,
                    (long long)w2, used);
        int64_t nuls = 0;
        for (size_t i = 0; i < used; i++) nuls += out[i] == '\0';
        if (nuls != words || (used > 0 && out[used - 1] != '\0')) FAIL("basic: words not NUL-separated");
        free(out);
    }
    attn_wordpiece_free(wp);
    return 0;
}
