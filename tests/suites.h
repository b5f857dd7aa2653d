/* suites.h: every test suite, in the order they run: X(name). The runner's
 * --suite NAME runs one. */
#define TEST_SUITES(X) \
    X(core)            \
    X(rng)             \
    X(gemm)            \
    X(ops)             \
    X(optim)           \
    X(safetensors)     \
    X(data)
