/* fuzz_bert_load: the BERT's configuration metadata and model loader on
 * arbitrary bytes: attn_bert_config_load, attn_bert_load, and when a model
 * loads, attn_bert_load_encoder of the same file into it. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(0, data, size);
    attn_bert_config cfg;
    const attn_status c = attn_bert_config_load(path, &cfg);
    attn_params *ps = NULL;
    if (attn_params_new(&ps) != ATTN_OK) return 0;
    attn_bert *m = NULL;
    const attn_status st = attn_bert_load(path, ps, &m);
    if (st == ATTN_OK && c != ATTN_OK) fz_fail("a model loads whose configuration does not");
    if ((st == ATTN_OK) != (m != NULL)) fz_fail("status and model disagree");
    if (m && attn_bert_load_encoder(path, m) != ATTN_OK)
        fz_fail("a model's own file does not load as its encoder");
    attn_bert_free(m);
    attn_params_free(ps);
    return 0;
}
