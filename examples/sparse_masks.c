/* sparse_masks.c: pictures of the block-sparse attention patterns
 * (include/attn/sparse.h, docs/sparse.md) and of the tiles the fused op
 * computes for them.
 *
 *   build/examples/sparse_masks OUTDIR [T]
 *
 * For each kind (the bench's patterns, scaled to T = S, default 256;
 * causal) writes OUTDIR/sparse_<kind>_h<head>.png, T x T pixels, row =
 * query, column = key, in RGB:
 *   white  visible entry,
 *   grey   hidden entry inside a tile the fused op computes (partial tile),
 *   black  entry of a skipped tile (never computed),
 * with the 64 x 64 tile grid in dark blue over the skipped area, and prints
 * per picture the visible and computed shares. Heads 0 and 1 differ for the
 * strided and fixed patterns (head 0 local / block, head 1 strided /
 * summary).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

#define TILE 64

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s OUTDIR [T]\n", argv[0]);
        return 2;
    }
    const int64_t T = argc == 3 ? atoll(argv[2]) : 256;
    if (T < 1 || T > 4096) {
        fprintf(stderr, "sparse_masks: T %lld outside [1, 4096]\n", (long long)T);
        return 2;
    }
    attn_sparse_pattern pats[7];
    memset(pats, 0, sizeof pats);
    const int64_t l = T >= 512 ? 128 : 32; /* blocks that fit the picture */
    pats[0].kind = ATTN_SPARSE_LOCAL_1D, pats[0].block = l;
    pats[1].kind = ATTN_SPARSE_LOCAL_2D, pats[1].width = 32, pats[1].block_h = 4;
    pats[1].block_w = 8, pats[1].margin_h = 4, pats[1].margin_w = 8;
    pats[2].kind = ATTN_SPARSE_STRIDED, pats[2].block = l, pats[2].heads = ATTN_SPARSE_HEADS_ALTERNATE;
    pats[3].kind = ATTN_SPARSE_FIXED, pats[3].block = l, pats[3].summary = l / 8;
    pats[3].heads = ATTN_SPARSE_HEADS_ALTERNATE;
    pats[4].kind = ATTN_SPARSE_SLIDING, pats[4].window = 2 * l;
    pats[5].kind = ATTN_SPARSE_DILATED, pats[5].window = 4 * l, pats[5].dilation = 4;
    pats[6].kind = ATTN_SPARSE_GLOBAL_SLIDING, pats[6].globals = l / 8, pats[6].window = 2 * l;
    static const char *names[7] = {"local1d", "local2d", "strided", "fixed",
                                   "sliding", "dilated", "global_sliding"};
    attn_ctx *ctx = NULL;
    attn_ctx_config cfg = {0};
    cfg.arena_bytes = (size_t)64 << 20;
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) {
        fprintf(stderr, "sparse_masks: %s\n", attn_last_error());
        return 1;
    }
    uint8_t *img = malloc((size_t)(T * T * 3));
    int rc = img ? 0 : 1;
    for (int k = 0; k < 7 && !rc; k++) {
        const attn_sparse_pattern *p = &pats[k];
        attn_sparse_layout L;
        attn_ctx_reset(ctx);
        if (attn_sparse_compile(ctx, p, 1, 0, 2, T, T, TILE, TILE, &L) != ATTN_OK) {
            fprintf(stderr, "sparse_masks: %s\n", attn_last_error());
            rc = 1;
            break;
        }
        const int heads = p->kind == ATTN_SPARSE_STRIDED || p->kind == ATTN_SPARSE_FIXED ? 2 : 1;
        for (int64_t h = 0; h < heads && !rc; h++) {
            /* black, with the tile grid */
            for (int64_t t = 0; t < T; t++)
                for (int64_t s = 0; s < T; s++) {
                    uint8_t *px = img + (t * T + s) * 3;
                    const int grid = t % TILE == 0 || s % TILE == 0;
                    px[0] = px[1] = 0, px[2] = grid ? 90 : 0;
                }
            const int64_t v = attn_sparse_head_variant(p, h);
            int64_t vis = 0, comp = 0;
            for (int64_t qt = 0; qt < L.nq; qt++)
                for (int64_t e = L.start[v * L.nq + qt]; e < L.start[v * L.nq + qt + 1]; e++) {
                    const int64_t kt = L.ktile[e];
                    for (int64_t t = qt * TILE; t < T && t < qt * TILE + TILE; t++)
                        for (int64_t s = kt * TILE; s < T && s < kt * TILE + TILE; s++) {
                            const int on = L.mask_at[e] < 0 ||
                                           (L.mask[L.mask_at[e] + (t - qt * TILE)] >> (s - kt * TILE) & 1u);
                            uint8_t *px = img + (t * T + s) * 3;
                            px[0] = px[1] = px[2] = on ? 255 : 110;
                            vis += on;
                            comp++;
                        }
                }
            char path[1024];
            snprintf(path, sizeof path, "%s/sparse_%s_h%lld.png", argv[1], names[k], (long long)h);
            if (attn_png_write(path, img, (int)T, (int)T, 3) != ATTN_OK) {
                fprintf(stderr, "sparse_masks: %s\n", attn_last_error());
                rc = 1;
                break;
            }
            printf("%-40s visible %5.1f%%  computed %5.1f%%\n", path,
                   100.0 * (double)vis / (double)(T * T), 100.0 * (double)comp / (double)(T * T));
        }
    }
    free(img);
    attn_ctx_free(ctx);
    return rc;
}
