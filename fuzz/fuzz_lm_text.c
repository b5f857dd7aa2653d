/* fuzz_lm_text: the language-model data path on an arbitrary text file:
 * attn_lm_text_load, a vocabulary learned on it (characters, or BPE with a
 * few merges on its first 2 KiB; chosen by the input's size), the token
 * stream, the seeded batches and the evaluation walk. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = NULL;
    size_t len = 0;
    if (attn_lm_text_load(fz_file(0, data, size), &text, &len) != ATTN_OK) {
        if (text) fz_fail("*text not NULL after an error");
        return 0;
    }
    if (len != size || text[len] != 0) fz_fail("length or terminator");
    const int bpe = (int)(size & 1);
    const size_t learn_len = bpe && len > 2048 ? 2048 : len;
    attn_vocab *v = NULL;
    attn_lm_tokens tok;
    memset(&tok, 0, sizeof tok);
    if (attn_lm_vocab_learn(text, learn_len, bpe ? ATTN_VOCAB_BPE : ATTN_VOCAB_CHAR, 16, 1, &v) !=
        ATTN_OK)
        goto done;
    if (attn_lm_tokenize(v, text, len, &tok) != ATTN_OK) goto done;
    if (attn_lm_token_chars(v, tok.ids, tok.n) != tok.chars) fz_fail("token_chars != chars encoded");
    for (int64_t T = 1; T <= 4; T++) {
        const int64_t B = 3;
        int32_t in[12], tg[12];
        const attn_status st = attn_lm_batch(&tok, 7, 5, B, T, in, tg);
        if ((st == ATTN_OK) != (tok.n > T)) fz_fail("attn_lm_batch: status vs stream length");
        const int64_t w = attn_lm_eval_windows(&tok, T);
        int64_t rows = -1;
        if (attn_lm_eval_batch(&tok, T, w > 1 ? w - 1 : 0, B, in, tg, &rows) != ATTN_OK) fz_fail("eval_batch");
        if (rows < 0 || rows > B) fz_fail("eval_batch rows");
    }
done:
    attn_lm_tokens_free(&tok);
    attn_vocab_free(v);
    free(text);
    return 0;
}
