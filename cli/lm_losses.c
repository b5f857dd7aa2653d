/* lm_losses.c: `attn lm eval --losses FILE`: the Transformer-XL's reading of
 * a held-out text with each predicted byte's loss written out, one line per
 * byte, so that two evaluation memories can be compared byte by byte (the
 * paired difference and its standard error: scripts/experiments/
 * long_context_memory_noise.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "lm_cmd.h"

int lm_eval_losses(attn_ctx *ctx, const lm_model *m, const int32_t *ids, int64_t n, int64_t segment, int64_t mem_len,
                   const char *path, double *bpb, double *seconds, int64_t *bytes) {
    if (!m->t) {
        fprintf(stderr, "attn lm eval: --losses is for a Transformer-XL\n");
        return 2;
    }
    double *loss = malloc((size_t)(n - 1) * sizeof *loss);
    if (!loss) return cli_fail("lm", "out of memory for the losses");
    const double t0 = attn_monotonic_s();
    if (attn_txl_eval_stream_losses(ctx, m->t, ids, n, segment, mem_len, loss) != ATTN_OK) {
        free(loss);
        return cli_fail("lm", "evaluation failed");
    }
    *seconds = attn_monotonic_s() - t0;
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "attn lm eval: cannot write %s\n", path);
        free(loss);
        return 1;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n - 1; i++) {
        sum += loss[i];
        fprintf(fp, "%.6f\n", loss[i] / log(2.0)); /* bits */
    }
    free(loss);
    if (fclose(fp) != 0) {
        fprintf(stderr, "attn lm eval: cannot write %s\n", path);
        return 1;
    }
    *bytes = n - 1;
    *bpb = sum / (double)(n - 1) / log(2.0);
    return 0;
}
