# attn: plain Makefile.
#   make              library (static + shared), the attn CLI, examples
#   make test         build and run the whole test suite (+ the example checks)
#   make sanitize     the same suite under ASan + UBSan (build-asan/)
#   make fixtures     regenerate tests/fixtures/ with PyTorch (development only)
#   make bench        build the benchmarks (bench/)
#   make fuzz         build the libFuzzer harnesses (clang) and run each for FUZZ_SECONDS
#   make explorer-test  the attention explorer's pages in headless Chromium
#   make WERROR=1     warnings are errors (CI)
#   make OPENMP=0     build without OpenMP (single-threaded portable core)
#   make install      headers, libattn.a, libattn.so.<version> (soname libattn.so.<abi>),
#                     the CLI and attn.pc into $(DESTDIR)$(PREFIX) (default /usr/local);
#                     make uninstall removes them (docs/install.md)
#   make MPI=0        the CLI without MPI (default MPI=auto: with Open MPI when
#                     found; MPI=1: required; docs/distributed.md)

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

# MPI, for data-parallel training (cli/train_dist.c, the only file that
# includes <mpi.h>; the library never links it). auto: Open MPI when
# pkg-config knows ompi-c or mpicc is on the PATH; 1: the same, an error
# when neither is; 0: without (train_dist.c's one-process stub).
MPI ?= auto
MPI_HAVE :=
ifneq ($(MPI),0)
MPI_HAVE := $(shell pkg-config --exists ompi-c 2>/dev/null && echo pkg-config || \
                    (command -v mpicc >/dev/null 2>&1 && echo mpicc))
ifeq ($(MPI_HAVE),pkg-config)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c)
MPI_LIBS   := $(shell pkg-config --libs ompi-c)
else ifeq ($(MPI_HAVE),mpicc)
MPI_CFLAGS := $(shell mpicc --showme:compile)
MPI_LIBS   := $(shell mpicc --showme:link)
else ifeq ($(MPI),1)
$(error MPI=1: no Open MPI found (pkg-config ompi-c, mpicc): bash scripts/setup.sh --mpi installs it)
endif
endif
# MPI's headers as system headers: their warnings are not attn's
MPI_DEFS := $(if $(MPI_HAVE),-DATTN_HAVE_MPI $(patsubst -I%,-isystem %,$(MPI_CFLAGS)))

LIB_SRC   := $(sort $(wildcard src/*/*.c))
# The attention explorer's page code (viz/), embedded as byte arrays into a
# generated source (tools/embed.c, built with the same compiler).
EXPLORER_ASSETS := viz/explorer.html viz/explorer.js viz/explorer.css
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/explorer_assets.o
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

# The version and the ABI version come from include/attn/info.h: the shared
# library is the file libattn.so.$(VERSION), its soname libattn.so.$(ABI)
# (what a program linked against it loads), and libattn.so links to the
# soname for -lattn.
VERSION := $(shell sed -n 's/^\#define ATTN_VERSION_STRING "\(.*\)"/\1/p' include/attn/info.h)
ABI     := $(shell sed -n 's/^\#define ATTN_ABI_VERSION \([0-9][0-9]*\).*/\1/p' include/attn/info.h)
SONAME  := libattn.so.$(ABI)
STATIC = $(BUILD)/libattn.a
SHARED = $(BUILD)/libattn.so
SHARED_REAL = $(BUILD)/libattn.so.$(VERSION)
CLI    = $(BUILD)/attn
TESTS  = $(BUILD)/attn_tests

.PHONY: all test check sanitize fixtures bench examples clean deps headers-cxx alloc-fail fuzz \
        install uninstall install-test python-test print-ldlibs explorer-test

all: $(STATIC) $(SHARED) $(CLI) $(EX_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O1 -o $@ $<

$(BUILD)/gen/explorer_assets.c: $(BUILD)/tools/embed $(EXPLORER_ASSETS)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ attn__explorer_html viz/explorer.html \
	  attn__explorer_js viz/explorer.js attn__explorer_css viz/explorer.css

$(BUILD)/gen/explorer_assets.o: $(BUILD)/gen/explorer_assets.c
	$(CC) $(CFLAGS) -c $< -o $@

# sqrtf without errno in the optimizer (src/nn/optim.c): the same IEEE
# results, and the Adam(W) loop vectorises (with errno GCC keeps a scalar
# libm call for negative arguments, which never occur there).
$(BUILD)/src/nn/optim.o: CFLAGS += -fno-math-errno

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED_REAL): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS)

$(SHARED): $(SHARED_REAL)
	ln -sf libattn.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(CLI): $(CLI_OBJ) $(STATIC)
	$(CC) -o $@ $(CLI_OBJ) $(STATIC) $(LDLIBS) $(if $(MPI_HAVE),$(MPI_LIBS))

# train_dist.o is rebuilt when the MPI choice changes ($(BUILD)/mpi.flags
# holds the flags of the last build and is rewritten only when they differ).
MPI_STAMP := $(BUILD)/mpi.flags
$(shell mkdir -p $(BUILD) && (echo '$(MPI_DEFS)' | cmp -s - $(MPI_STAMP) || echo '$(MPI_DEFS)' > $(MPI_STAMP)))
$(BUILD)/cli/train_dist.o: CFLAGS += $(MPI_DEFS)
$(BUILD)/cli/train_dist.o: $(MPI_STAMP)

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

# The attention explorer (attn ... --html) in headless Chromium: pages of tiny
# models checked through the DevTools protocol (a counted skip without a
# browser; scripts/setup.sh --browser installs one). CI runs it after make test.
explorer-test: all
	bash tests/explorer_test.sh $(BUILD)

# Public headers must also compile as C++.
headers-cxx:
	@echo '#include "attn/attn.h"' | c++ -std=c++11 -Wall -Wextra -Iinclude -x c++ -fsyntax-only -

sanitize:
	ATTN_SANITIZE=1 $(MAKE) BUILD=build-asan OPT="-O1" OPENMP=0 MPI=0 \
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
	$(PYTHON) tools/make_vision_modules_fixtures.py tests/fixtures
	$(PYTHON) tools/make_wavenet_fixtures.py tests/fixtures
	$(PYTHON) tools/make_gan_fixtures.py tests/fixtures
	$(PYTHON) tools/make_sparse_fixtures.py tests/fixtures
	$(PYTHON) tools/make_reformer_fixtures.py tests/fixtures
	$(PYTHON) tools/make_graph_attention_fixtures.py tests/fixtures
	$(PYTHON) tools/make_synthesizer_fixtures.py tests/fixtures
	$(PYTHON) tools/make_sha_lama_fixtures.py tests/fixtures
	$(PYTHON) tools/make_sinkroute_fixtures.py tests/fixtures
	$(PYTHON) tools/make_lstmn_fixtures.py tests/fixtures
	$(PYTHON) tools/make_seq2seq_lstmn_fixtures.py tests/fixtures
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

# ---- installation (docs/install.md) --------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=staging]: the public headers into
# include/attn/, libattn.a, libattn.so.$(VERSION) with its soname link
# libattn.so.$(ABI) and the development link libattn.so into lib/, the CLI
# into bin/, attn.pc into lib/pkgconfig/ (pkg-config --cflags --libs attn;
# --static adds Libs.private: -lm, -ldl, -lpthread and OpenMP, which the
# library needs when linked statically; OpenBLAS is never linked: attn loads
# it at run time).
PREFIX        ?= /usr/local
DESTDIR       ?=
BINDIR        ?= $(PREFIX)/bin
LIBDIR        ?= $(PREFIX)/lib
INCLUDEDIR    ?= $(PREFIX)/include
PKGCONFIGDIR  ?= $(LIBDIR)/pkgconfig
INSTALL       ?= install
PUBLIC_HEADERS := $(sort $(wildcard include/attn/*.h))
PC_PRIVATE    := $(LDOMP) -lm -ldl -lpthread

install: $(STATIC) $(SHARED) $(CLI)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/attn $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/attn/
	$(INSTALL) -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libattn.a
	$(INSTALL) -m 755 $(SHARED_REAL) $(DESTDIR)$(LIBDIR)/libattn.so.$(VERSION)
	ln -sf libattn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libattn.so
	$(INSTALL) -m 755 $(CLI) $(DESTDIR)$(BINDIR)/attn
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(strip $(PC_PRIVATE))|g' attn.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/attn.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/attn.pc

# Removes exactly what install wrote (and include/attn/ when it is then empty).
uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/attn/,$(notdir $(PUBLIC_HEADERS)))
	rmdir $(DESTDIR)$(INCLUDEDIR)/attn 2>/dev/null || true
	rm -f $(DESTDIR)$(LIBDIR)/libattn.a $(DESTDIR)$(LIBDIR)/libattn.so \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libattn.so.$(VERSION)
	rm -f $(DESTDIR)$(BINDIR)/attn $(DESTDIR)$(PKGCONFIGDIR)/attn.pc

# Installs into a temporary prefix, builds a program outside the tree with
# pkg-config (shared and --static), runs both, uninstalls (tests/install_test.sh).
install-test: all
	bash tests/install_test.sh

# What a program linking libattn.a needs after it (setup.py asks).
print-ldlibs:
	@echo $(LDLIBS)

# The Python package's tests (python/tests, numpy; torch tests skip without torch).
python-test:
	bash python/run_tests.sh

clean:
	rm -rf build build-asan build-fuzz
	rm -rf python/attn/_attn*.so python/attn.egg-info

# The dependency files of the last build (absent on a clean tree).
-include $(wildcard $(BUILD)/src/*/*.d $(BUILD)/cli/*.d $(BUILD)/tests/*.d \
                    $(BUILD)/examples/*.d $(BUILD)/bench/*.d)
