/* fuzz_checkpoint: attn_checkpoint_load on arbitrary bytes, into the store
 * of fz_store with an optimizer of each kind (SGD with momentum, Adam,
 * AdamW) or none, chosen by the input's size; seeds are checkpoints of
 * each kind written by attn (make_seeds.c). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(0, data, size);
    attn_params *ps = fz_store();
    if (!ps) return 0;
    attn_optim *opt = NULL;
    const int which = (int)(size % 4);
    if (which < 3) {
        attn_optim_config oc = {0};
        oc.kind = which == 0 ? ATTN_OPTIM_SGD : which == 1 ? ATTN_OPTIM_ADAM : ATTN_OPTIM_ADAMW;
        oc.lr = 0.01f;
        oc.momentum = which == 0 ? 0.9f : 0.0f;
        if (attn_optim_new(&opt, ps, &oc) != ATTN_OK) {
            attn_params_free(ps);
            return 0;
        }
    }
    int64_t step = -1;
    if (attn_checkpoint_load(path, ps, opt, &step) == ATTN_OK && step < 0)
        fz_fail("a loaded checkpoint has a negative step");
    attn_optim_free(opt);
    attn_params_free(ps);
    return 0;
}
