/* fuzz_bert_corpus: the BERT's corpus reader and batcher on arbitrary
 * bytes. The input is: one options byte (bit 0: chunk; bits 1-4:
 * max_tokens - 1; bits 5-7: n_classes - 1), the fortune-format text, and,
 * after the first NUL byte if there is one, the labels file. The vocabulary
 * is a fixed character vocabulary of printable ASCII. A loaded corpus gives
 * batches of its first rows, sampled rows, and per-class subsets. */
#include "fuzz_common.h"

static attn_vocab *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char ascii[96];
    for (int i = 0; i < 95; i++) ascii[i] = (char)(32 + i);
    ascii[95] = 0;
    const char *texts[] = {ascii, "\n\xc3\xa9\xc3\xbc"};
    if (attn_vocab_build_chars(texts, 2, 1, &vocab) != ATTN_OK) fz_fail("vocabulary");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    const int chunk = opt & 1;
    const int64_t max_tokens = 1 + ((opt >> 1) & 15);
    const int n_classes = 1 + (opt >> 5);
    const uint8_t *body = data + 1;
    const size_t n = size - 1;
    const uint8_t *nul = memchr(body, 0, n);
    const size_t text_len = nul ? (size_t)(nul - body) : n;
    const char *text_path = fz_file(0, body, text_len);
    const char *labels_path = nul ? fz_file(1, nul + 1, n - text_len - 1) : NULL;

    attn_bert_corpus c;
    memset(&c, 0, sizeof c);
    if (attn_bert_corpus_load(vocab, text_path, labels_path, n_classes, max_tokens, chunk, &c) !=
        ATTN_OK) {
        if (c.n || c.ids || c.offsets || c.labels) fz_fail("*out not empty after an error");
        return 0;
    }
    if (c.n < 1 || c.offsets[0] != 0) fz_fail("corpus offsets");
    for (int64_t i = 0; i < c.n; i++) {
        const int64_t k = c.offsets[i + 1] - c.offsets[i];
        if (k < 1 || k > max_tokens) fz_fail("a sequence longer than max_tokens or empty");
        if (c.labels && (c.labels[i] < 0 || c.labels[i] >= n_classes)) fz_fail("label out of range");
    }
    enum { B = 4, T = 6 };
    int64_t rows[B];
    int32_t ids[B * T], lengths[B], labels[B];
    for (int r = 0; r < B; r++) rows[r] = r % c.n;
    if (attn_bert_batch(&c, rows, B, T, ids, lengths, c.labels ? labels : NULL) != ATTN_OK)
        fz_fail("batch of rows in range");
    attn_bert_sample_rows(11, 3, B, c.n, rows);
    for (int r = 0; r < B; r++)
        if (rows[r] < 0 || rows[r] >= c.n) fz_fail("sampled row out of range");
    if (attn_bert_batch(&c, rows, B, T, ids, lengths, NULL) != ATTN_OK) fz_fail("batch of sampled rows");
    if (c.labels && attn_bert_corpus_per_class(&c, n_classes, 2) != ATTN_OK) fz_fail("per_class");
    attn_bert_corpus_free(&c);
    return 0;
}
