/* fuzz_pairs: the parallel-text TSV reader attn_pairs_load on arbitrary
 * bytes; every pair of a loaded file is read. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attn_pairs p;
    memset(&p, 0, sizeof p);
    if (attn_pairs_load(fz_file(0, data, size), &p) == ATTN_OK) {
        for (int64_t i = 0; i < p.n; i++) {
            if (!p.src[i] || !p.tgt[i] || !p.src[i][0] || !p.tgt[i][0]) fz_fail("an empty side");
            if (strchr(p.src[i], '\t') || strchr(p.tgt[i], '\t')) fz_fail("a tab inside a side");
        }
    }
    attn_pairs_free(&p);
    attn_pairs_free(&p);
    return 0;
}
