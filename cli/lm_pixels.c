/* lm_pixels.c: images as pixel sequences for attn lm (lm_pixels.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_pixels.h"

int lm_pixels_order(const char *prog, const attn_sparse_pattern *p, int32_t order[LM_PIX_LEN]) {
    if (!p || p->kind != ATTN_SPARSE_LOCAL_2D) {
        for (int32_t i = 0; i < LM_PIX_LEN; i++) order[i] = i;
        return 0;
    }
    if (p->width != LM_PIX_SIDE || LM_PIX_SIDE % p->block_h || LM_PIX_SIDE % p->block_w) {
        fprintf(stderr,
                "%s: a local 2-D pattern over 28 x 28 images needs width=28 and blocks that tile "
                "the image (bh and bw divide 28), not width %lld, %lld x %lld\n",
                prog, (long long)p->width, (long long)p->block_h, (long long)p->block_w);
        return 1;
    }
    for (int64_t i = 0; i < LM_PIX_LEN; i++) {
        int64_t r, c;
        attn_sparse_local2d_pixel(p, i, &r, &c);
        order[i] = (int32_t)(r * LM_PIX_SIDE + c);
    }
    return 0;
}

int lm_pixels_load(const char *prog, const char *dir, const char *split, int levels,
                   const int32_t order[LM_PIX_LEN], lm_pixels *out) {
    memset(out, 0, sizeof *out);
    const int test = !strcmp(split, "test");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, test ? "t10k-images-idx3-ubyte" : "train-images-idx3-ubyte");
    attn_idx idx;
    if (attn_idx_load(path, &idx) != ATTN_OK) {
        fprintf(stderr, "%s: %s\n", prog, attn_last_error());
        return 1;
    }
    if (idx.ndim != 3 || idx.dims[1] != LM_PIX_SIDE || idx.dims[2] != LM_PIX_SIDE ||
        (!test && idx.dims[0] < 12)) {
        fprintf(stderr, "%s: %s: images [%lld, %lld, %lld]: expected [N, 28, 28]%s\n", prog, path,
                (long long)idx.dims[0], (long long)idx.dims[1], (long long)idx.dims[2],
                test ? "" : " with N >= 12 (the last N / 12 are the validation split)");
        attn_idx_free(&idx);
        return 1;
    }
    int64_t first = 0, n = idx.dims[0];
    const int64_t nv = n / 12; /* Fashion-MNIST: 5000 of 60000 */
    if (!strcmp(split, "train")) n -= nv;
    else if (!strcmp(split, "valid")) first = n - nv, n = nv;
    out->seq = malloc((size_t)n * LM_PIX_LEN);
    if (!out->seq) {
        fprintf(stderr, "%s: out of memory for %lld images\n", prog, (long long)n);
        attn_idx_free(&idx);
        return 1;
    }
    for (int64_t k = 0; k < n; k++) {
        const uint8_t *img = idx.data + (first + k) * LM_PIX_LEN;
        uint8_t *s = out->seq + k * LM_PIX_LEN;
        for (int i = 0; i < LM_PIX_LEN; i++) s[i] = (uint8_t)(((unsigned)img[order[i]] * (unsigned)levels) >> 8);
    }
    out->n = n;
    out->levels = levels;
    attn_idx_free(&idx);
    return 0;
}

void lm_pixels_free(lm_pixels *px) {
    free(px->seq);
    memset(px, 0, sizeof *px);
}

void lm_pixels_rows(const lm_pixels *px, int64_t k, int32_t *in, int32_t *tg) {
    const uint8_t *s = px->seq + k * LM_PIX_LEN;
    in[0] = px->levels;
    for (int i = 0; i < LM_PIX_LEN; i++) {
        if (i + 1 < LM_PIX_LEN) in[i + 1] = s[i];
        tg[i] = s[i];
    }
}
