/* suites.h: every test suite, in the order they run: X(name). The runner's
 * --suite NAME runs one. */
#define TEST_SUITES(X) \
    X(core)            \
    X(rng)             \
    X(gemm)            \
    X(gemm_bf16)       \
    X(ops)             \
    X(conv)            \
    X(vision_attention) \
    X(synthesizer)      \
    X(sha_rnn)          \
    X(lama)             \
    X(sinkroute)       \
    X(graph)            \
    X(vision_modules) \
    X(vision_masks) \
    X(cnn)             \
    X(rnn)             \
    X(attention)       \
    X(positions)       \
    X(sdpa)            \
    X(flash)           \
    X(batch_slice)     \
    X(sparse)          \
    X(sparse_gpt)      \
    X(transformer)     \
    X(seq2seq)         \
    X(location_attention) \
    X(t2t)             \
    X(optim)           \
    X(safetensors)     \
    X(png)             \
    X(eval)            \
    X(viz)             \
    X(data)            \
    X(text)            \
    X(s2s_data)        \
    X(lm_data)         \
    X(gpt)             \
    X(txl)             \
    X(reformer)        \
    X(reformer_lm)     \
    X(bert)            \
    X(wordpiece)       \
    X(minilm)          \
    X(model_files)     \
    X(caption)         \
    X(gan)             \
    X(explorer)        \
    X(lstmn)           \
    X(seq2seq_lstmn)   \
    X(wavenet)         \
    X(word2vec)

/* Suites that run only when named with --suite: the runner's self-test
 * (tests/test_runner.c). Each broken_* suite is wrong on purpose and must
 * make the runner exit non-zero; tests/check_runner.sh (run by `make test`)
 * asserts that it does. */
#define TEST_HIDDEN_SUITES(X) \
    X(runner_ok)              \
    X(broken_before_block)    \
    X(broken_empty_block)     \
    X(broken_unclosed)        \
    X(broken_numeric)         \
    X(broken_no_test)
