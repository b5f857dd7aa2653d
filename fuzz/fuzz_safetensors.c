/* fuzz_safetensors: attn_safetensors_open_memory on arbitrary bytes; on
 * success every tensor, lookup and metadata entry of the parsed file is
 * visited and the float tensors are converted (attn_safetensors_read_f32). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_safetensors *f = NULL;
    if (attn_safetensors_open_memory(&f, data, size) != ATTN_OK) {
        if (f) fz_fail("*out not NULL after an error");
        return 0;
    }
    const int n = attn_safetensors_count(f);
    for (int i = 0; i < n; i++) {
        const attn_st_tensor *t = attn_safetensors_at(f, i);
        if (!t || !t->name) fz_fail("attn_safetensors_at returned NULL in range");
        const attn_st_tensor *u = attn_safetensors_find(f, t->name);
        if (!u || strcmp(u->name, t->name) != 0) fz_fail("a tensor is not found by its name");
        if (t->ndim < 0 || t->ndim > ATTN_ST_MAX_DIMS) fz_fail("ndim out of range");
        if (t->offset > size || t->nbytes > size - t->offset) fz_fail("tensor data outside the file");
        if (t->nbytes != (uint64_t)t->numel * attn_st_dtype_size(t->dtype)) fz_fail("nbytes != numel * size");
        if ((t->dtype == ATTN_ST_F32 || t->dtype == ATTN_ST_F16 || t->dtype == ATTN_ST_BF16) &&
            t->numel > 0 && t->numel <= (1 << 16)) {
            float *dst = malloc((size_t)t->numel * sizeof *dst);
            if (dst) {
                if (attn_safetensors_read_f32(t, dst) != ATTN_OK) fz_fail("read_f32 failed on a float tensor");
                free(dst);
            }
        }
    }
    if (attn_safetensors_at(f, n) || attn_safetensors_at(f, -1)) fz_fail("at() out of range not NULL");
    const int m = attn_safetensors_metadata_count(f);
    for (int i = 0; i < m; i++) {
        const char *k = NULL, *v = NULL;
        if (attn_safetensors_metadata_at(f, i, &k, &v) != 0 || !k || !v) fz_fail("metadata_at in range");
        const char *w = attn_safetensors_metadata(f, k);
        if (!w) fz_fail("a metadata key is not found");
        (void)strlen(v);
    }
    attn_safetensors_close(f);
    return 0;
}
