/* consumer.c: a program outside attn's tree, built by tests/install_test.sh
 * against an installed attn with `pkg-config --cflags --libs attn` (shared)
 * and `pkg-config --static ...` (static). It checks that the library it runs
 * with is the one its headers describe (version, ABI), and that the fused
 * attention of the installed library agrees with the reference op,
 * forward and backward. Prints "consumer: ok <version> abi <n>" and exits
 * 0, or names what failed and exits 1. */
#include <attn/attn.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, attn_ctx *ctx) {
    fprintf(stderr, "consumer: %s: %s\n", what, ctx ? attn_ctx_error(ctx) : attn_last_error());
    return 1;
}

int main(void) {
    attn_info_t info;
    attn_info(&info);
    if (strcmp(info.version, ATTN_VERSION_STRING) != 0 || info.abi != ATTN_ABI_VERSION ||
        attn_abi_version() != ATTN_ABI_VERSION) {
        fprintf(stderr, "consumer: header %s (abi %d) but library %s (abi %d)\n", ATTN_VERSION_STRING,
                ATTN_ABI_VERSION, info.version, attn_abi_version());
        return 1;
    }
    attn_ctx *ctx = NULL;
    attn_ctx_config cfg = {.arena_bytes = (size_t)8 << 20, .n_threads = 1, .seed = 1};
    if (attn_ctx_new(&ctx, &cfg) != ATTN_OK) return fail("attn_ctx_new", NULL);
    enum { B = 1, H = 2, T = 5, D = 4 };
    const int64_t shape[4] = {B, H, T, D};
    float q[B * H * T * D], k[B * H * T * D], v[B * H * T * D], g[B * H * T * D];
    for (int i = 0; i < B * H * T * D; i++) {
        q[i] = sinf(0.37f * (float)i);
        k[i] = cosf(0.11f * (float)i + 0.5f);
        v[i] = 0.01f * (float)(i % 13) - 0.05f;
        g[i] = cosf(0.23f * (float)i);
    }
    float out[2][B * H * T * D], dq[2][B * H * T * D];
    attn_sdpa_opts opts = {.causal = 1};
    for (int fused = 0; fused < 2; fused++) {
        attn_ctx_reset(ctx);
        attn_tensor *tq = attn_tensor_from(ctx, ATTN_F32, 4, shape, q);
        attn_tensor *tk = attn_tensor_from(ctx, ATTN_F32, 4, shape, k);
        attn_tensor *tv = attn_tensor_from(ctx, ATTN_F32, 4, shape, v);
        if (!tq || !tk || !tv) return fail("attn_tensor_from", ctx);
        tq->requires_grad = 1;
        attn_tensor *o = fused ? attn_flash_sdpa(ctx, tq, tk, tv, &opts, NULL)
                               : attn_sdpa(ctx, tq, tk, tv, &opts, NULL);
        if (!o) return fail(fused ? "attn_flash_sdpa" : "attn_sdpa", ctx);
        if (attn_backward_from(ctx, o, g) != ATTN_OK) return fail("attn_backward_from", ctx);
        memcpy(out[fused], o->data, sizeof out[fused]);
        memcpy(dq[fused], tq->grad, sizeof dq[fused]);
    }
    for (int i = 0; i < B * H * T * D; i++) {
        if (fabsf(out[0][i] - out[1][i]) > 1e-5f || fabsf(dq[0][i] - dq[1][i]) > 1e-5f) {
            fprintf(stderr, "consumer: fused and reference attention differ at %d\n", i);
            return 1;
        }
    }
    attn_ctx_free(ctx);
    printf("consumer: ok %s abi %d\n", info.version, info.abi);
    return 0;
}
