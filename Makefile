# attn: plain Makefile.
#   make              library (static + shared), the attn CLI, examples
#   make test         build and run the whole test suite (+ the example checks)
#   make sanitize     the same suite under ASan + UBSan (build-asan/)
#   make fixtures     regenerate tests/fixtures/ with PyTorch (development only)
#   make bench        build the benchmarks (bench/)
#   make fuzz         build the libFuzzer harnesses (clang) and run each for FUZZ_SECONDS
#   make WERROR=1     warnings are errors (CI)
#   make OPENMP=0     build without OpenMP (single-threaded portable core)

CC       ?= cc
BUILD    ?= build
# -O2 plus GCC's "cheap" vectoriser cost model: GCC 12's default at -O2
# ("very cheap") leaves most elementwise loops scalar. No -ffast-math: IEEE
# semantics are kept.
VECT   := $(shell $(CC) -fvect-cost-model=cheap -x c -c /dev/null -o /dev/null 2>/dev/null && echo -fvect-cost-model=cheap)
OPT      ?= -O2 $(VECT)
WERROR   ?= 0
PYTHON   ?= /usr/bin/python3
# transformers < 5 (Hugging Face parity of the Transformer-XL model), a venv of its own
TXL_PYTHON ?= /opt/txl-venv/bin/python

OPENMP ?= $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1 || echo 0)

CFLAGS_BASE = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow -Wno-unused-parameter \
              -Iinclude -fPIC -g $(OPT)
ifeq ($(WERROR),1)
CFLAGS_BASE += -Werror
endif
ifeq ($(OPENMP),1)
CFLAGS_BASE += -fopenmp
LDOMP = -fopenmp
endif
CFLAGS  += $(CFLAGS_BASE) $(EXTRA_CFLAGS)
LDLIBS  += $(LDOMP) -lm -ldl $(EXTRA_LDFLAGS)

LIB_SRC   := $(sort $(wildcard src/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC   := $(sort $(wildcard cli/*.c))
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(sort $(wildcard tests/*.c))
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
EX_SRC    := $(sort $(wildcard examples/*.c))
EX_BIN    := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Header dependencies: the compiler writes one .d file per object and per
# program (-MMD -MP), included at the end of this file; an edited header
# rebuilds exactly what includes it.
DEPFLAGS  = -MMD -MP

STATIC = $(BUILD)/libattn.a
SHARED = $(BUILD)/libattn.so
CLI    = $(BUILD)/attn
TESTS  = $(BUILD)/attn_tests

.PHONY: all test check sanitize fixtures bench examples clean deps headers-cxx alloc-fail fuzz

all: $(STATIC) $(SHARED) $(CLI) $(EX_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# sqrtf without errno in the optimizer (src/nn/optim.c): the same IEEE
# results, and the Adam(W) loop vectorises (with errno GCC keeps a scalar
# libm call for negative arguments, which never occur there).
$(BUILD)/src/nn/optim.o: CFLAGS += -fno-math-errno

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

$(CLI): $(CLI_OBJ) $(STATIC)
	$(CC) -o $@ $(CLI_OBJ) $(STATIC) $(LDLIBS)

$(TESTS): $(TEST_OBJ) $(STATIC)
	$(CC) -o $@ $(TEST_OBJ) $(STATIC) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $@.d -MT $@ -o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $@.d -MT $@ -Isrc -o $@ $< $(STATIC) $(LDLIBS)

examples: $(EX_BIN)
bench: $(BENCH_BIN)

# Data sets the tests and the demo need (installed from Debian's packages when
# missing and when we may: see scripts/setup.sh).
deps:
	@bash scripts/setup.sh --quiet

# The whole suite: unit tests of every op (fixtures, finite differences,
# reference vs fast path, guards), then the examples with their assertions,
# then the same op suite again with the built-in matrix kernel (no BLAS),
# and the fused attention's suite on its other kernels (the portable one, and
# AVX-512 BF16 instead of AMX for bf16) where this CPU picks a faster one,
# then the test of the runner itself (tests/check_runner.sh: deliberately
# broken suites must make it exit non-zero), the examples, and last the
# training driver's behaviour through the CLI (tests/cli_driver.sh), and the
# faults a run must survive (tests/fault_tests.sh: kill -9 during saves, a
# full disk, bit-identical resume, hostile option values). Needs
# neither root nor the network: data that is not there (Fashion-MNIST,
# gettext text) is a counted, named skip; `make deps` (or scripts/setup.sh)
# installs it.
test: all $(TESTS)
	$(TESTS)
	ATTN_BLAS=builtin $(TESTS) --suite ops
	ATTN_FLASH_GENERIC=1 $(TESTS) --suite flash
	ATTN_FLASH_NO_AMX=1 $(TESTS) --suite flash
	bash tests/check_runner.sh $(TESTS)
	bash tests/run_examples.sh $(BUILD)
	bash tests/cli_driver.sh $(BUILD)
	bash tests/fault_tests.sh $(BUILD)

check: test

# Public headers must also compile as C++.
headers-cxx:
	@echo '#include "attn/attn.h"' | c++ -std=c++11 -Wall -Wextra -Iinclude -x c++ -fsyntax-only -

sanitize:
	ATTN_SANITIZE=1 $(MAKE) BUILD=build-asan OPT="-O1" OPENMP=0 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" test

# Allocation-failure injection (tests/alloc_fail/alloc_fail.c): the library built with
# ASan + UBSan (LeakSanitizer) and without OpenMP in build-af/, the test
# linked with the allocator wrapped, so that the N-th allocation of a GPT,
# BERT and vocabulary scenario fails, for every N.
alloc-fail:
	$(MAKE) BUILD=build-af OPT="-O1" OPENMP=0 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" build-af/libattn.a
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Iinclude -g -O1 \
	  -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	  -o build-af/alloc_fail tests/alloc_fail/alloc_fail.c build-af/libattn.a \
	  -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc -lm -ldl
	ATTN_BLAS=builtin build-af/alloc_fail

# Needs PyTorch (1.13 or later: Debian's python3-torch) and numpy; CI never
# runs it (tools/check_op_coverage.py checks, without torch, that every op has
# a generator and a fixture).
fixtures:
	@$(PYTHON) -c 'import torch, numpy' 2>/dev/null || { echo "make fixtures: $(PYTHON) cannot import torch and numpy (apt-get install python3-torch; PyTorch 1.13 or later), or set PYTHON=" >&2; exit 1; }
	$(PYTHON) tools/make_fixtures.py tests/fixtures
	$(PYTHON) tools/make_optim_fixtures.py tests/fixtures
	$(PYTHON) tools/make_rnn_fixtures.py tests/fixtures
	$(PYTHON) tools/make_attention_fixtures.py tests/fixtures
	$(PYTHON) tools/make_seq2seq_fixtures.py tests/fixtures
	$(PYTHON) tools/make_sdpa_fixtures.py tests/fixtures
	$(PYTHON) tools/make_position_fixtures.py tests/fixtures
	$(PYTHON) tools/make_long_context_fixtures.py tests/fixtures
	$(PYTHON) tools/make_transformer_fixtures.py tests/fixtures
	$(PYTHON) tools/make_gpt_fixtures.py tests/fixtures
	$(PYTHON) tools/make_t2t_fixtures.py tests/fixtures
	$(PYTHON) tools/make_bert_fixtures.py tests/fixtures
	$(PYTHON) tools/make_vision_attention_fixtures.py tests/fixtures
	$(PYTHON) tools/make_gan_fixtures.py tests/fixtures
	$(PYTHON) tools/make_sparse_fixtures.py tests/fixtures
	$(PYTHON) tools/make_reformer_fixtures.py tests/fixtures
	$(PYTHON) tools/make_word2vec_fixtures.py tests/fixtures
	$(PYTHON) tools/make_png_fixtures.py tests/fixtures/png
	@if $(TXL_PYTHON) -c 'import transformers' 2>/dev/null; then \
	  echo "$(TXL_PYTHON) tools/make_txl_fixtures.py tests/fixtures"; \
	  $(TXL_PYTHON) tools/make_txl_fixtures.py tests/fixtures; \
	  echo "$(TXL_PYTHON) tools/make_reformer_fixtures.py tests/fixtures --hf"; \
	  $(TXL_PYTHON) tools/make_reformer_fixtures.py tests/fixtures --hf; \
	else \
	  echo "make fixtures: $(TXL_PYTHON) cannot import transformers: tests/fixtures/txl_hf.atfx left as it is (see tools/make_txl_fixtures.py for the venv)"; \
	fi

# The libFuzzer harnesses of fuzz/ (one per file reader), built with clang,
# ASan and UBSan in build-fuzz/, each run for FUZZ_SECONDS (default 60); a
# crash keeps its input in build-fuzz/crashes/<target>/ and fails the target
# (docs/testing.md, "Fuzzing"). Installs clang when missing and allowed
# (scripts/setup_fuzz.sh).
FUZZ_SECONDS ?= 60
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz

# The dependency files of the last build (absent on a clean tree).
-include $(wildcard $(BUILD)/src/*/*.d $(BUILD)/cli/*.d $(BUILD)/tests/*.d \
                    $(BUILD)/examples/*.d $(BUILD)/bench/*.d)
