/* fuzz_idx: attn_idx_load on arbitrary bytes; a loaded array's first and
 * last items are converted to floats and ints. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_idx idx;
    memset(&idx, 0, sizeof idx);
    if (attn_idx_load(fz_file(0, data, size), &idx) != ATTN_OK) {
        if (idx.data || idx.ndim) fz_fail("*out not empty after an error");
        return 0;
    }
    if (idx.ndim < 1 || idx.ndim > ATTN_IDX_MAX_DIMS || idx.dims[0] < 1 || idx.item_size < 1 ||
        idx.numel != idx.dims[0] * idx.item_size || (uint64_t)idx.numel > size)
        fz_fail("inconsistent attn_idx");
    float *f = malloc((size_t)idx.item_size * sizeof *f);
    int32_t *k = malloc((size_t)idx.item_size * sizeof *k);
    if (f && k) {
        if (attn_idx_to_f32(&idx, 0, 1, 0.5f, 0.25f, f) != ATTN_OK ||
            attn_idx_to_i32(&idx, idx.dims[0] - 1, 1, k) != ATTN_OK)
            fz_fail("conversion of an item in range");
        if (attn_idx_to_i32(&idx, idx.dims[0], 1, k) == ATTN_OK) fz_fail("an item past the end converts");
    }
    free(f);
    free(k);
    attn_idx_free(&idx);
    attn_idx_free(&idx);
    return 0;
}
