/* op_table.h: THE list of graph ops: the single source of truth.
 *
 * One row per op:
 *   X(ENUM, name, atol, rtol, grad_atol, grad_rtol)
 * ENUM/name      : the op is ATTN_OP_<ENUM>; its kernels are
 *                  attn__<name>_forward, attn__<name>_backward and
 *                  attn__<name>_ref (the plain scalar reference, which
 *                  accumulates in double and must fill the output and every
 *                  saved tensor exactly like the forward).
 * atol, rtol     : float32 tolerance of the forward against the reference and
 *                  against the PyTorch fixtures, and of the backward against
 *                  the fixtures: |a - b| <= atol + rtol * |ref|.
 * grad_atol/rtol : tolerance of the analytic gradient against central
 *                  finite differences (f32 kernels, loss summed in double).
 *
 * The enum, the name table, the dispatch tables, the declarations of the
 * kernels and the test list are all generated from this list: adding an op is
 * one row plus its three kernels (plus a case in tests/op_cases.c, which
 * fails to compile until it exists).
 */
#ifndef ATTN_OP_TABLE_H
#define ATTN_OP_TABLE_H

#define ATTN_OP_LIST(X)                                    \
    X(VIEW,          view,          0.0f,  0.0f,  1e-3f, 1e-2f) \
    X(CONTIGUOUS,    contiguous,    0.0f,  0.0f,  1e-3f, 1e-2f) \
    X(CONCAT,        concat,        0.0f,  0.0f,  1e-3f, 1e-2f) \
    X(MATMUL,        matmul,        1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(BMM,           bmm,           1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(LINEAR,        linear,        1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(LINEAR_GELU,   linear_gelu,   1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(ADD,           add,           1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(SUB,           sub,           1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(MUL,           mul,           1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(DIV,           div,           1e-6f, 1e-5f, 2e-3f, 1e-2f) \
    X(SCALE,         scale,         1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(BIAS_ADD,      bias_add,      1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(SUM,           sum,           1e-5f, 1e-5f, 1e-3f, 1e-2f) \
    X(MEAN,          mean,          1e-6f, 1e-5f, 1e-3f, 1e-2f) \
    X(EXP,           exp,           1e-6f, 2e-6f, 1e-3f, 1e-2f) \
    X(LOG,           log,           1e-6f, 2e-6f, 2e-3f, 1e-2f) \
    X(TANH,          tanh,          1e-6f, 2e-6f, 1e-3f, 1e-2f) \
    X(SIGMOID,       sigmoid,       1e-6f, 2e-6f, 1e-3f, 1e-2f) \
    X(RELU,          relu,          0.0f,  0.0f,  1e-3f, 1e-2f) \
    X(GELU,          gelu,          1e-6f, 2e-6f, 1e-3f, 1e-2f) \
    X(SOFTMAX,       softmax,       1e-6f, 1e-5f, 1e-3f, 1e-2f) \
    X(LOG_SOFTMAX,   log_softmax,   1e-5f, 1e-5f, 1e-3f, 1e-2f) \
    X(CROSS_ENTROPY, cross_entropy, 1e-5f, 1e-5f, 1e-3f, 1e-2f) \
    X(LAYERNORM,     layernorm,     1e-5f, 1e-4f, 2e-3f, 2e-2f) \
    X(EMBEDDING,     embedding,     0.0f,  0.0f,  1e-3f, 1e-2f) \
    X(DROPOUT,       dropout,       1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(ADDITIVE_SCORE, additive_score, 1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(GRU_CELL,      gru_cell,      1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(LSTM_CELL,     lstm_cell,     1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(SDPA,          sdpa,          1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(FLASH_SDPA,    flash_sdpa,    1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(ROPE,          rope,          1e-6f, 1e-5f, 1e-3f, 1e-2f) \
    X(REL_LOGITS,    rel_logits,    1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(REL_VALUES,    rel_values,    1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(CONV2D,        conv2d,        1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(CONV1D,        conv1d,        1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(CONV_TRANSPOSE2D, conv_transpose2d, 1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(MAX_POOL2D,    max_pool2d,    1e-6f, 1e-6f, 1e-3f, 1e-2f) \
    X(AVG_POOL2D,    avg_pool2d,    1e-6f, 1e-5f, 1e-3f, 1e-2f) \
    X(BATCHNORM,     batchnorm,     1e-5f, 1e-4f, 2e-3f, 2e-2f) \
    X(SPECTRAL_NORM, spectral_norm, 1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(TXL_ATTENTION, txl_attention, 1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(LSH_ATTENTION, lsh_attention, 1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(GRAPH_ATTENTION, graph_attention, 1e-5f, 1e-4f, 2e-3f, 1e-2f) \
    X(LSTMN,         lstmn,         2e-5f, 1e-4f, 2e-3f, 1e-2f)

#endif
