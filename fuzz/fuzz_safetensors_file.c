/* fuzz_safetensors_file: the file readers of safetensors.h on arbitrary
 * bytes: attn_safetensors_open (which must agree with open_memory) and
 * attn_safetensors_load_params into a small store (fz_store), with each of
 * the four flag combinations (chosen by the input's size). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(0, data, size);
    attn_safetensors *f = NULL, *g = NULL;
    const attn_status a = attn_safetensors_open(&f, path);
    const attn_status b = attn_safetensors_open_memory(&g, data, size);
    if ((a == ATTN_OK) != (b == ATTN_OK)) fz_fail("open and open_memory disagree");
    if (a == ATTN_OK && attn_safetensors_count(f) != attn_safetensors_count(g))
        fz_fail("open and open_memory count different tensors");
    attn_safetensors_close(f);
    attn_safetensors_close(g);

    attn_params *ps = fz_store();
    if (!ps) return 0;
    (void)attn_safetensors_load_params(path, ps, (unsigned)(size & 3u));
    attn_params_free(ps);
    return 0;
}
