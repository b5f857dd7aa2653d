/* fuzz_deb_graph: the Debian Packages reader (attn_deb_graph_load) on
 * arbitrary bytes, then, when it reads a graph, the invariants the graph op
 * relies on (attn_graph_check), labels and features in range, and one
 * forward of a tiny node classifier with a graph attention layer over it. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_deb_graph g;
    const attn_deb_graph_opts o = {4, 8};
    if (attn_deb_graph_load(fz_file(0, data, size), &o, &g) != ATTN_OK) {
        if (g.n || g.names || g.row_ptr) fz_fail("a failed load left a graph");
        return 0;
    }
    if (g.n < 1 || g.vocab < 0 || g.vocab > 8 || g.n_sections < 0) fz_fail("sizes");
    const attn_graph gg = {g.n, g.row_ptr, g.col};
    if (attn_graph_check(&gg) != ATTN_OK) fz_fail("the CSR is not valid");
    for (int64_t i = 0; i < g.n; i++) {
        if (g.label[i] < -1 || g.label[i] >= g.n_sections) fz_fail("label out of range");
        if (g.split[i] < 0 || g.split[i] > 2) fz_fail("split");
        for (int w = 0; w < 4; w++)
            if (g.feat[i * 4 + w] < 0 || g.feat[i * 4 + w] > g.vocab) fz_fail("word id out of range");
    }
    if (g.n <= 2000 && g.vocab >= 1 && g.n_sections >= 2) {
        attn_params *ps = NULL;
        attn_ctx *ctx = NULL;
        attn_ctx_config cc = {0};
        cc.arena_bytes = (size_t)16 << 20;
        cc.n_threads = 1;
        attn_node_classifier m;
        const attn_node_classifier_config c = {.vocab = g.vocab, .max_words = 4, .emb_dim = 2,
                                               .hidden = 4, .n_classes = g.n_sections,
                                               .n_layers = 1, .n_heads = 2};
        if (attn_params_new(&ps) == ATTN_OK && attn_node_classifier_init(&m, ps, &c, NULL) == ATTN_OK &&
            attn_ctx_new(&ctx, &cc) == ATTN_OK) {
            attn_tensor *f = attn_tensor_from(ctx, ATTN_I32, 2, (int64_t[]){g.n, 4}, g.feat);
            if (!attn_node_classifier_logits(ctx, &m, f, &gg, NULL)) fz_fail("forward failed on a valid graph");
        }
        attn_ctx_free(ctx);
        attn_params_free(ps);
    }
    attn_deb_graph_free(&g);
    return 0;
}
