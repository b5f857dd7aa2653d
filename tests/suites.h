/* suites.h: every test suite, in the order they run: X(name). The runner's
 * --suite NAME runs one. */
#define TEST_SUITES(X) \
    X(core)            \
    X(rng)             \
    X(gemm)            \
    X(ops)             \
    X(conv)            \
    X(rnn)             \
    X(attention)       \
    X(positions)       \
    X(sdpa)            \
    X(flash)           \
    X(transformer)     \
    X(seq2seq)         \
    X(t2t)             \
    X(optim)           \
    X(safetensors)     \
    X(eval)            \
    X(viz)             \
    X(data)            \
    X(text)            \
    X(s2s_data)        \
    X(lm_data)         \
    X(gpt)             \
    X(bert)
