/* fuzz_gpt_load: the GPT's configuration metadata and model loader on
 * arbitrary bytes: attn_gpt_config_load, then attn_gpt_load (a model built
 * from the metadata, its parameters read from the tensors). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(0, data, size);
    attn_gpt_config cfg;
    const attn_status c = attn_gpt_config_load(path, &cfg);
    attn_params *ps = NULL;
    if (attn_params_new(&ps) != ATTN_OK) return 0;
    attn_gpt *m = NULL;
    const attn_status st = attn_gpt_load(path, ps, &m);
    if (st == ATTN_OK && c != ATTN_OK) fz_fail("a model loads whose configuration does not");
    if ((st == ATTN_OK) != (m != NULL)) fz_fail("status and model disagree");
    attn_gpt_free(m);
    attn_params_free(ps);
    return 0;
}
