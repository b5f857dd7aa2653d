/* fuzz_wavenet_load: the WaveNet's configuration metadata and model loader
 * on arbitrary bytes: attn_wavenet_config_load, then attn_wavenet_load (a
 * model built from the metadata after the file's tensors were checked, its
 * parameters read from them), then one incremental step of a loaded model. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(0, data, size);
    attn_wavenet_config cfg;
    const attn_status c = attn_wavenet_config_load(path, &cfg);
    attn_params *ps = NULL;
    if (attn_params_new(&ps) != ATTN_OK) return 0;
    attn_wavenet *m = NULL;
    const attn_status st = attn_wavenet_load(path, ps, &m);
    if (st == ATTN_OK && c != ATTN_OK) fz_fail("a model loads whose configuration does not");
    if ((st == ATTN_OK) != (m != NULL)) fz_fail("status and model disagree");
    if (m && m->cfg.vocab <= 4096) {
        attn_wavenet_state s;
        float *row = malloc((size_t)m->cfg.vocab * sizeof *row);
        if (row && attn_wavenet_state_init(m, &s) == ATTN_OK) {
            if (attn_wavenet_step(m, &s, 0, row) != ATTN_OK) fz_fail("a step of a loaded model failed");
            attn_wavenet_state_free(&s);
        }
        free(row);
    }
    attn_wavenet_free(m);
    attn_params_free(ps);
    return 0;
}
